// The shipped Brown corpus as genre classification: ~150-word passages labelled with their document's genre, split by document.
using System.Text;
using System.Text.Json.Nodes;

namespace TaskLM.Data.Corpus;

/// <summary>Counts written by <see cref="BrownGenre.Write"/>.</summary>
public sealed record BrownGenreSplit(string Name, int Documents, int Passages, IReadOnlyDictionary<string, int> PerGenre);

/// <summary>Turns <c>data/brown/brown.jsonl.gz</c> into rows <c>{"text", "label", "doc"}</c>: each document is cut, at
/// sentence ends, into passages of at least <c>words</c> words (a short tail joins the passage before it), labelled
/// with the document's genre (15 genres). Documents, not passages, are split, so no document is in two splits:
/// per genre the seeded, shuffled documents go 10% (at least one) to validation, 10% (at least one) to test and the
/// rest to train — science_fiction has only 6 documents, and 5% of 6 would leave it out of the held-out splits.</summary>
public static class BrownGenre
{
    /// <summary>The split names, in output order.</summary>
    public static readonly IReadOnlyList<string> SplitNames = ["train", "validation", "test"];

    public static IReadOnlyList<BrownGenreSplit> Write(string corpusPath, string outDir, int words = 150, int seed = 42)
    {
        if (words < 10) throw new ArgumentException($"--words {words}: a passage needs at least 10 words");
        var docs = JsonlFile.Read(corpusPath).ToList();
        if (docs.Count == 0) throw new DataFormatException(corpusPath, 1, "no documents");
        var assign = new int[docs.Count];
        var rng = new Random(seed);
        foreach (var genre in docs.Select((d, i) => (g: d.Fields["genre"]?.ToString() ?? "", i)).GroupBy(x => x.g).OrderBy(g => g.Key, StringComparer.Ordinal))
        {
            var idx = genre.Select(x => x.i).ToArray();
            rng.Shuffle(idx);
            int nHeld = Math.Max(1, (int)Math.Round(idx.Length * 0.1));
            for (int k = 0; k < idx.Length; k++) assign[idx[k]] = k < nHeld ? 1 : k < 2 * nHeld ? 2 : 0;
        }
        Directory.CreateDirectory(outDir);
        var result = new List<BrownGenreSplit>();
        for (int s = 0; s < SplitNames.Count; s++)
        {
            int nDocs = 0, nPass = 0;
            var per = new SortedDictionary<string, int>(StringComparer.Ordinal);
            var rows = new List<JsonObject>();
            for (int i = 0; i < docs.Count; i++)
            {
                if (assign[i] != s) continue;
                var d = docs[i];
                string genre = d.Fields["genre"]?.ToString() ?? throw new DataFormatException(d.Source, d.Line, "no 'genre'");
                var sents = d.Fields["tokens"] as JsonArray ?? throw new DataFormatException(d.Source, d.Line, "no 'tokens' list");
                nDocs++;
                foreach (var passage in Passages(sents.Select(x => ((JsonArray)x!).Select(t => t!.ToString()).ToList()), words))
                {
                    rows.Add(new JsonObject { ["text"] = passage, ["label"] = genre, ["doc"] = d.Fields["id"]?.ToString() });
                    nPass++;
                    per[genre] = per.GetValueOrDefault(genre) + 1;
                }
            }
            // Rows in a seeded random order, so the first N (data.max_train_examples) hold every genre.
            var order = rows.ToArray();
            new Random(seed + 1 + s).Shuffle(order);
            using (var w = JsonlFile.CreateWriter(Path.Combine(outDir, SplitNames[s] + ".jsonl")))
                foreach (var row in order) JsonlFile.WriteRow(w, row);
            result.Add(new BrownGenreSplit(SplitNames[s], nDocs, nPass, per));
        }
        return result;
    }

    /// <summary>Whole sentences gathered until a passage has at least <paramref name="words"/> words; a tail shorter
    /// than half of that is added to the last passage.</summary>
    public static IEnumerable<string> Passages(IEnumerable<List<string>> sentences, int words)
    {
        var done = new List<List<string>>();
        var cur = new List<string>();
        foreach (var s in sentences)
        {
            cur.AddRange(s);
            if (cur.Count >= words) { done.Add(cur); cur = []; }
        }
        if (cur.Count > 0)
        {
            if (cur.Count >= words / 2 || done.Count == 0) done.Add(cur);
            else done[^1].AddRange(cur);
        }
        return done.Select(Detokenize);
    }

    /// <summary>Corpus tokens back to running text: Brown's `` and '' become ", no space before closing punctuation.</summary>
    public static string Detokenize(IReadOnlyList<string> tokens)
    {
        var sb = new StringBuilder();
        bool openQuote = false;
        foreach (var raw in tokens)
        {
            string t = raw is "``" or "''" ? "\"" : raw;
            bool opening = raw == "``" || (t == "\"" && raw != "''" && !openQuote);
            bool attachLeft = t is "," or "." or ";" or ":" or "?" or "!" or ")" or "'s" or "n't" || (t == "\"" && !opening);
            if (sb.Length > 0 && !attachLeft && !(sb[^1] == '(' || (sb[^1] == '"' && openQuote))) sb.Append(' ');
            sb.Append(t);
            if (t == "\"") openQuote = opening;
        }
        return sb.ToString();
    }
}
