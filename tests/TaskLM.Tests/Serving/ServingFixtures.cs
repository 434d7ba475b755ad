// Tiny HF fixture models made servable: a copy with a tokenizer beside the weights (the fixtures ship none).
using System.Text.Json.Nodes;

namespace TaskLM.Tests.Serving;

internal static class ServingFixtures
{
    public static string Hf(string name) => Path.Combine(AppContext.BaseDirectory, "fixtures", "hf", name);

    public static string TempDir()
    {
        var d = Path.Combine(Path.GetTempPath(), "tasklm-serve-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(d);
        return d;
    }

    /// <summary>A copy of a BERT fixture (vocab_size 1000) with a WordPiece vocab.txt: the five specials at HF's
    /// ids 0-4, then "w5" .. "w999", so the text "w17 w42" encodes to [CLS] 17 42 [SEP]. <paramref name="labels"/>
    /// renames the head's classes in config.json (id2label/label2id).</summary>
    public static string Bert(string name, IReadOnlyList<string>? labels = null)
    {
        string dir = TempDir();
        foreach (var f in Directory.GetFiles(Hf(name))) File.Copy(f, Path.Combine(dir, Path.GetFileName(f)));
        var vocab = new[] { "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]" }.Concat(Enumerable.Range(5, 995).Select(i => $"w{i}"));
        File.WriteAllLines(Path.Combine(dir, "vocab.txt"), vocab);
        if (labels != null)
        {
            string cfgPath = Path.Combine(dir, "config.json");
            var cfg = JsonNode.Parse(File.ReadAllText(cfgPath))!.AsObject();
            var id2 = new JsonObject(); var l2 = new JsonObject();
            for (int i = 0; i < labels.Count; i++) { id2[i.ToString()] = labels[i]; l2[labels[i]] = i; }
            cfg["id2label"] = id2; cfg["label2id"] = l2;
            File.WriteAllText(cfgPath, cfg.ToJsonString());
        }
        return dir;
    }

    /// <summary>Text of "w" tokens for the given ids (each id 5..999 one WordPiece token).</summary>
    public static string Words(params int[] ids) => string.Join(' ', ids.Select(i => $"w{i}"));
}
