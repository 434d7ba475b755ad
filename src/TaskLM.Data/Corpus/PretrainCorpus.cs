// TaskLM's pre-training corpus and its held-out classification tasks, built from the shipped corpora.
using System.Text;
using System.Text.Json.Nodes;

namespace TaskLM.Data.Corpus;

/// <summary>Rows written to one file by <see cref="PretrainCorpus.Write"/>.</summary>
public sealed record CorpusFileCount(string File, int Rows, long Words);

/// <summary>Builds the text TaskLM's base models are pre-trained on, and four classification tasks whose test
/// documents the pre-training never sees, from the corpora in <c>data/</c>:
/// <list type="bullet">
/// <item>Pre-training text: Brown (all but the validation and test documents of <c>tasklm data brown-pos</c>'s split),
/// State of the Union (all but every 8th address), Moby-Dick (all), the King James Bible (all but every 8th chapter), WordNet's definitions (all but every 8th synset).
/// SpamAssassin is left out entirely, so no spam or ham e-mail of any split was seen in pre-training.</item>
/// <item><c>brown-genre</c>: 15 genres, 150-word passages; train/validation/test by the brown-pos document split.</item>
/// <item><c>sotu-party</c>: Republican vs Democratic, 150-word passages; test = the held-out addresses.</item>
/// <item><c>kjv-division</c>: 8 divisions of the Bible, 150-word passages; test = the held-out chapters.</item>
/// <item><c>wordnet-supersense</c>: a noun's WordNet definition → its lexicographer file (25 classes); test = held-out synsets.</item>
/// </list>
/// Documents are cut into pieces of about <see cref="PieceWords"/> words; every 100th piece goes to the language-model
/// validation file. Output is deterministic (same files for the same corpora and seed).</summary>
public static class PretrainCorpus
{
    /// <summary>Words per pre-training piece (a piece is one JSONL row; packing joins pieces of a document).</summary>
    public const int PieceWords = 300;

    /// <summary>Words per task passage; a document's last passage is kept only when it has at least a third of that.</summary>
    public const int PassageWords = 150;

    /// <summary>Every <see cref="HoldEvery"/>th SOTU address, KJV chapter and WordNet synset (index mod 8 = 7) is held out for testing;
    /// index mod 8 = 3 is the tasks' validation split (seen in pre-training, as unlabelled text).</summary>
    public const int HoldEvery = 8;

    /// <summary>Writes <c>pretrain/train.jsonl</c>, <c>pretrain/validation.jsonl</c>, <c>pretrain/train.txt</c> (one
    /// piece per line, for tokenizer training), <c>heldout.json</c> and <c>tasks/NAME/{train,validation,test}.jsonl</c>
    /// under <paramref name="outDir"/>.</summary>
    public static IReadOnlyList<CorpusFileCount> Write(CorpusCatalog catalog, string outDir, int seed = 42)
    {
        var counts = new List<CorpusFileCount>();
        var heldout = new JsonObject
        {
            ["note"] = "documents never seen in pre-training; the tasks' test splits are drawn from them",
            ["spam-assassin"] = "all (no e-mail text is in the pre-training corpus)",
        };
        var pieces = new List<(string source, string doc, string text)>();
        var tasks = new Dictionary<string, List<(int split, string label, string doc, string text)>>
        {
            ["brown-genre"] = [], ["sotu-party"] = [], ["kjv-division"] = [], ["wordnet-supersense"] = [],
        };

        // Brown: documents as sentences of tokens; the brown-pos split decides (train 0, validation 1, test 2).
        var brown = JsonlFile.Read(catalog.PathOf(catalog.Get("brown"))).ToList();
        var assign = BrownPos.AssignDocuments(brown, seed);
        var brownHeld = new JsonArray();
        for (int i = 0; i < brown.Count; i++)
        {
            var d = brown[i].Fields;
            string id = d["id"]!.ToString(), genre = d["genre"]!.ToString();
            string text = BrownText((JsonArray)d["tokens"]!);
            if (assign[i] == 0) AddPieces(pieces, "brown", id, text); else brownHeld.Add(id);
            AddPassages(tasks["brown-genre"], assign[i], genre, id, text);
        }
        heldout["brown"] = new JsonObject { ["rule"] = $"validation and test documents of `tasklm data brown-pos --seed {seed}`", ["documents"] = brownHeld };

        // State of the Union: every 8th address held out; the party task keeps the two large parties.
        var sotu = JsonlFile.Read(catalog.PathOf(catalog.Get("sotu"))).ToList();
        var sotuHeld = new JsonArray();
        for (int i = 0; i < sotu.Count; i++)
        {
            var d = sotu[i].Fields;
            string id = d["id"]!.ToString(), party = d["party"]!.ToString(), text = d["text"]!.ToString();
            int split = SplitOf(i);
            if (split == 2) sotuHeld.Add(id); else AddPieces(pieces, "sotu", id, text);
            if (party is "Republican" or "Democratic") AddPassages(tasks["sotu-party"], split, party, id, text);
        }
        heldout["sotu"] = new JsonObject { ["rule"] = "addresses whose 0-based index in sotu.jsonl.gz is 7 mod 8", ["documents"] = sotuHeld };

        // Moby-Dick: no task, all of it pre-training text.
        foreach (var row in JsonlFile.Read(catalog.PathOf(catalog.Get("moby-dick"))))
            AddPieces(pieces, "moby-dick", row.Fields["chapter"]!.ToString(), row.Fields["text"]!.ToString());

        // King James Bible: every 8th chapter held out; the division task labels passages by division.
        var kjv = JsonlFile.Read(catalog.PathOf(catalog.Get("kjv"))).ToList();
        var kjvHeld = new JsonArray();
        for (int i = 0; i < kjv.Count; i++)
        {
            var d = kjv[i].Fields;
            string id = $"{d["book"]} {d["chapter"]}", text = d["text"]!.ToString();
            int split = SplitOf(i);
            if (split == 2) kjvHeld.Add(id); else AddPieces(pieces, "kjv", id, text);
            AddPassages(tasks["kjv-division"], split, d["division"]!.ToString(), id, text);
        }
        heldout["kjv"] = new JsonObject { ["rule"] = "chapters whose 0-based index in kjv.jsonl.gz is 7 mod 8", ["documents"] = kjvHeld };

        // WordNet: each synset as "lemma, lemma: gloss"; every 8th synset held out. The supersense task classifies noun
        // definitions into their 25 lexicographer files (noun.Tops left out), on a 1-in-8 sample so it stays 5k-15k rows.
        var wordnet = JsonlFile.Read(catalog.PathOf(catalog.Get("wordnet"))).ToList();
        var wnHeld = 0; var group = new StringBuilder(); int groupWords = 0, noun = 0;
        for (int i = 0; i < wordnet.Count; i++)
        {
            var d = wordnet[i].Fields;
            string lemmas = string.Join(", ", ((JsonArray)d["lemmas"]!).Select(x => x!.ToString()));
            string text = $"{lemmas}: {d["gloss"]}", lex = d["lexname"]!.ToString();
            if (SplitOf(i) == 2) wnHeld++;
            else
            {
                if (group.Length > 0) group.Append(' ');
                group.Append(text);
                groupWords += CountWords(text) is var n ? (int)n : 0;
                if (groupWords >= PieceWords) { pieces.Add(("wordnet", d["offset"]!.ToString(), group.ToString())); group.Clear(); groupWords = 0; }
            }
            if (d["pos"]!.ToString() != "noun") continue;
            int k = noun++ % 40;
            if (lex == "noun.Tops" || k is not (0 or 1 or 2 or 4 or 5 or 3 or 7)) continue;
            tasks["wordnet-supersense"].Add((k == 7 ? 2 : k == 3 ? 1 : 0, lex, d["offset"]!.ToString(), text));
        }
        if (group.Length > 0) pieces.Add(("wordnet", "end", group.ToString()));
        heldout["wordnet"] = new JsonObject { ["rule"] = "synsets whose 0-based index in wordnet.jsonl.gz is 7 mod 8", ["synsets"] = wnHeld };

        // Pre-training files: every 100th piece is language-model validation.
        string pre = Path.Combine(outDir, "pretrain");
        Directory.CreateDirectory(pre);
        using (var train = JsonlFile.CreateWriter(Path.Combine(pre, "train.jsonl")))
        using (var val = JsonlFile.CreateWriter(Path.Combine(pre, "validation.jsonl")))
        using (var txt = JsonlFile.CreateWriter(Path.Combine(pre, "train.txt")))
        {
            int nt = 0, nv = 0; long wt = 0, wv = 0;
            for (int k = 0; k < pieces.Count; k++)
            {
                var (source, doc, text) = pieces[k];
                var row = new JsonObject { ["text"] = text, ["source"] = source, ["doc"] = doc };
                long words = CountWords(text);
                if (k % 100 == 50) { JsonlFile.WriteRow(val, row); nv++; wv += words; }
                else { JsonlFile.WriteRow(train, row); txt.WriteLine(text); nt++; wt += words; }
            }
            counts.Add(new("pretrain/train.jsonl", nt, wt));
            counts.Add(new("pretrain/validation.jsonl", nv, wv));
        }
        File.WriteAllText(Path.Combine(outDir, "heldout.json"), heldout.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }) + "\n");

        string[] splitNames = ["train", "validation", "test"];
        foreach (var (name, rows) in tasks)
        {
            string dir = Path.Combine(outDir, "tasks", name);
            Directory.CreateDirectory(dir);
            for (int s = 0; s < 3; s++)
            {
                int n = 0; long w = 0;
                using var wr = JsonlFile.CreateWriter(Path.Combine(dir, splitNames[s] + ".jsonl"));
                foreach (var r in rows.Where(r => r.split == s))
                {
                    JsonlFile.WriteRow(wr, new JsonObject { ["text"] = r.text, ["label"] = r.label, ["doc"] = r.doc });
                    n++; w += CountWords(r.text);
                }
                counts.Add(new($"tasks/{name}/{splitNames[s]}.jsonl", n, w));
            }
        }
        return counts;
    }

    // 0 train, 1 validation, 2 test (held out of pre-training).
    static int SplitOf(int index) => index % HoldEvery == HoldEvery - 1 ? 2 : index % HoldEvery == 3 ? 1 : 0;

    static long CountWords(string text) => text.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries).LongLength;

    /// <summary>Brown's tokens as running text: words joined by spaces, `` and '' as straight quotes, one sentence
    /// after another.</summary>
    static string BrownText(JsonArray sentences)
    {
        var sb = new StringBuilder();
        foreach (var s in sentences)
            foreach (var w in (JsonArray)s!)
            {
                var t = w!.ToString();
                if (t is "``" or "''") t = "\"";
                if (sb.Length > 0) sb.Append(' ');
                sb.Append(t);
            }
        return sb.ToString();
    }

    static void AddPieces(List<(string, string, string)> pieces, string source, string doc, string text)
    {
        var words = text.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
        for (int i = 0; i < words.Length; i += PieceWords)
            pieces.Add((source, doc, string.Join(' ', words, i, Math.Min(PieceWords, words.Length - i))));
    }

    static void AddPassages(List<(int, string, string, string)> rows, int split, string label, string doc, string text)
    {
        var words = text.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
        for (int i = 0; i < words.Length; i += PassageWords)
        {
            int n = Math.Min(PassageWords, words.Length - i);
            if (n < PassageWords / 3) break;
            rows.Add((split, label, doc, string.Join(' ', words, i, n)));
        }
    }
}
