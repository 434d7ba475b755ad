// The shipped Brown corpus as sentence-level token-classification JSONL (tokens + tags), split by document.
using System.Text.Json.Nodes;

namespace TaskLM.Data.Corpus;

/// <summary>Counts written by <see cref="BrownPos.Write"/>.</summary>
public sealed record BrownPosSplit(string Name, int Documents, int Sentences, int Tokens);

/// <summary>Turns <c>data/brown/brown.jsonl.gz</c> (one document per line: tokens and tags as lists of sentences)
/// into one row per sentence <c>{"tokens", "tags", "doc", "genre"}</c>, the columns a token-classification recipe
/// reads by default. Documents, not sentences, are split (so no document's sentences straddle train and test),
/// seeded and stratified by genre: per genre the shuffled documents go 90/5/5 to train/validation/test.</summary>
public static class BrownPos
{
    /// <summary>The split names, in output order.</summary>
    public static readonly IReadOnlyList<string> SplitNames = ["train", "validation", "test"];

    /// <summary>Writes train/validation/test.jsonl (and train.txt, the training sentences as text) under <paramref name="outDir"/>; <paramref name="tagset"/> is
    /// <c>universal</c> (12 tags, <see cref="BrownTagset"/>) or <c>full</c> (the corpus tags unchanged).</summary>
    public static IReadOnlyList<BrownPosSplit> Write(string corpusPath, string outDir, string tagset = "universal", int seed = 42)
    {
        if (tagset is not ("universal" or "full")) throw new ArgumentException($"tagset '{tagset}': use universal or full");
        var docs = JsonlFile.Read(corpusPath).ToList();
        if (docs.Count == 0) throw new DataFormatException(corpusPath, 1, "no documents");
        var assign = AssignDocuments(docs, seed);
        var result = new List<BrownPosSplit>();
        // Written into a staging folder and moved in complete: an error or Ctrl-C leaves an earlier outDir as it was.
        PartialFiles.WriteFolder(outDir, staging => WriteSplits(staging, docs, assign, tagset, result));
        return result;
    }

    static void WriteSplits(string outDir, List<DataRow> docs, int[] assign, string tagset, List<BrownPosSplit> result)
    {
        for (int s = 0; s < SplitNames.Count; s++)
        {
            int nDocs = 0, nSent = 0, nTok = 0;
            using var w = JsonlFile.CreateWriter(Path.Combine(outDir, SplitNames[s] + ".jsonl"));
            for (int i = 0; i < docs.Count; i++)
            {
                if (assign[i] != s) continue;
                var d = docs[i];
                var sents = d.Fields["tokens"] as JsonArray ?? throw new DataFormatException(d.Source, d.Line, "no 'tokens' list");
                var tags = d.Fields["tags"] as JsonArray ?? throw new DataFormatException(d.Source, d.Line, "no 'tags' list");
                if (sents.Count != tags.Count) throw new DataFormatException(d.Source, d.Line, $"{sents.Count} token sentences but {tags.Count} tag sentences");
                nDocs++;
                for (int k = 0; k < sents.Count; k++)
                {
                    var words = (JsonArray)sents[k]!; var t = (JsonArray)tags[k]!;
                    if (words.Count != t.Count) throw new DataFormatException(d.Source, d.Line, $"sentence {k + 1}: {words.Count} tokens but {t.Count} tags");
                    var outTags = t.Select(x => (JsonNode?)(tagset == "universal" ? BrownTagset.ToUniversal(x!.ToString()) : x!.ToString())).ToArray();
                    JsonlFile.WriteRow(w, new JsonObject
                    {
                        ["tokens"] = new JsonArray(words.Select(x => (JsonNode?)x!.ToString()).ToArray()),
                        ["tags"] = new JsonArray(outTags),
                        ["doc"] = d.Fields["id"]?.ToString(),
                        ["genre"] = d.Fields["genre"]?.ToString(),
                    });
                    nSent++; nTok += words.Count;
                }
            }
            result.Add(new BrownPosSplit(SplitNames[s], nDocs, nSent, nTok));
        }
        // The training sentences as plain text, one a line, to train a tokenizer on (tasklm tokenizer train --input).
        using (var txt = JsonlFile.CreateWriter(Path.Combine(outDir, "train.txt")))
            for (int i = 0; i < docs.Count; i++)
                if (assign[i] == 0)
                    foreach (var sent in (JsonArray)docs[i].Fields["tokens"]!)
                        txt.WriteLine(string.Join(' ', ((JsonArray)sent!).Select(x => x!.ToString())));
    }

    /// <summary>The split of each document (0 train, 1 validation, 2 test): per genre, in genre order, the documents
    /// are shuffled with one seeded generator and the first 5% go to validation, the next 5% to test. The pre-training
    /// corpus (<see cref="PretrainCorpus"/>) holds out the same validation and test documents.</summary>
    public static int[] AssignDocuments(IReadOnlyList<DataRow> docs, int seed)
    {
        var assign = new int[docs.Count];
        var rng = new Random(seed);
        foreach (var genre in docs.Select((d, i) => (g: d.Fields["genre"]?.ToString() ?? "", i)).GroupBy(x => x.g).OrderBy(g => g.Key, StringComparer.Ordinal))
        {
            var idx = genre.Select(x => x.i).ToArray();
            rng.Shuffle(idx);
            int nHeld = (int)Math.Round(idx.Length * 0.05);
            for (int k = 0; k < idx.Length; k++) assign[idx[k]] = k < nHeld ? 1 : k < 2 * nHeld ? 2 : 0;
        }
        return assign;
    }
}
