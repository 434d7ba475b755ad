// Tokenize once per run: a split's examples are written beside the run (output_dir/cache/) and read back on --resume
// and later runs, keyed by everything that changes the encoding.
using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using TaskLM.Data.Tokenization;
using TaskLM.Recipes;

namespace TaskLM.Tasks;

/// <summary>The run folder's cache of tokenized examples (<c>output_dir/cache/examples-&lt;split&gt;-&lt;key&gt;.bin</c>).
/// The key is a SHA-256 of the data file's bytes, the tokenizer's files (what <see cref="ITokenizer.Save"/> writes), and
/// every data setting that changes the encoding: task, format, the column names, max_length, the label map and the
/// example limit. A changed file, tokenizer or setting gives another key, so the old file is never read (and is
/// replaced). Token files (.tok) are already token ids and are not cached. A damaged cache file is ignored and
/// rewritten. The examples within one run are tokenized once in any case (the trainer reuses them every epoch); the
/// cache saves the tokenization on <c>--resume</c>, on a re-run with <c>--overwrite</c>, and in <c>tasklm tune</c> trials
/// that share an output folder.</summary>
public static class ExampleCache
{
    const int Magic = 0x4B534554;   // "TESK"
    const int Version = 2;          // part of the key: raise it when TaskData encodes the same row differently (2: QA text kept)

    /// <summary>The cache folder of a run.</summary>
    public static string Folder(string runDir) => Path.Combine(runDir, "cache");

    /// <summary>Loads <paramref name="split"/> (train, validation, test) of <paramref name="recipe"/> from the cache in
    /// <paramref name="runDir"/>, or tokenizes it with <see cref="TaskData.Load(Recipe, string, ITokenizer?, IReadOnlyList{string}?, int, HfChatTemplate?)"/>
    /// and writes the cache. <paramref name="say"/> gets one line: "examples: cached (...)" or "examples: tokenized (...)".</summary>
    public static TaskExamples Load(Recipe recipe, string split, string path, ITokenizer? tokenizer, IReadOnlyList<string>? labels,
        int maxExamples, string runDir, Action<string> say, HfChatTemplate? chatTemplate = null)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: data file not found");
        if (recipe.Data.Format == "tokens" || (recipe.Data.Format == "auto" && path.EndsWith(".tok", StringComparison.OrdinalIgnoreCase)))
            return TaskData.Load(recipe, path, tokenizer, labels, maxExamples, chatTemplate);
        var sw = Stopwatch.StartNew();
        string key = Key(recipe, path, tokenizer, labels, maxExamples, chatTemplate);
        string dir = Folder(runDir);
        string file = Path.Combine(dir, $"examples-{split}-{key[..16]}.bin");
        string shown = Path.Combine("cache", Path.GetFileName(file));
        if (File.Exists(file) && TryRead(file, key) is { } cached)
        {
            say($"examples: cached ({split}: {cached.Examples.Count:N0} from {shown} in {sw.Elapsed.TotalSeconds:0.00} s)");
            return cached;
        }
        var loaded = TaskData.Load(recipe, path, tokenizer, labels, maxExamples, chatTemplate);
        double took = sw.Elapsed.TotalSeconds;
        try
        {
            Write(file, key, loaded);
            foreach (var old in Directory.EnumerateFiles(dir, $"examples-{split}-*.bin").Where(f => f != file)) File.Delete(old);
            say($"examples: tokenized ({split}: {loaded.Examples.Count:N0} in {took:0.00} s, cached in {shown})");
        }
        catch (IOException e)
        {
            // A full disk or a read-only folder costs only the cache, never the run.
            say($"examples: tokenized ({split}: {loaded.Examples.Count:N0} in {took:0.00} s; not cached: {e.Message})");
        }
        return loaded;
    }

    /// <summary>The hex SHA-256 key of a split's encoding (see the class summary).</summary>
    public static string Key(Recipe recipe, string path, ITokenizer? tokenizer, IReadOnlyList<string>? labels, int maxExamples, HfChatTemplate? chatTemplate = null)
    {
        using var h = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        void Add(string s) { var b = Encoding.UTF8.GetBytes(s); h.AppendData(BitConverter.GetBytes(b.Length)); h.AppendData(b); }
        var d = recipe.Data;
        Add($"v{Version}");
        Add(recipe.Task);
        foreach (var s in new[] { d.Format, Path.GetExtension(path), d.TextColumn, d.TextPairColumn ?? "\0", d.LabelColumn, d.TokensColumn, d.TagsColumn,
                     d.QuestionColumn, d.ContextColumn, d.AnswersColumn, d.PromptColumn, d.CompletionColumn, d.MessagesColumn })
            Add(s);
        // Chat rows are rendered with the template (and its special tokens): another template, other tokens.
        Add(chatTemplate == null ? "\0no chat template" : chatTemplate.Source + "\0" + string.Join("\n", chatTemplate.SpecialTokens.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => $"{kv.Key}={kv.Value}")));
        Add(d.MaxLength.ToString(CultureInfo.InvariantCulture));
        Add(maxExamples.ToString(CultureInfo.InvariantCulture));
        Add(labels == null ? "\0labels: from the data" : string.Join("\n", labels));
        Add(d.Labels == null ? "\0" : string.Join("\n", d.Labels));
        AddFile(h, path);
        if (tokenizer == null) Add("\0no tokenizer");
        else
        {
            // The tokenizer's own files, as it saves them: the same whether it came from a folder or by name.
            string tmp = Path.Combine(Path.GetTempPath(), $"tasklm-tok-{Guid.NewGuid():N}");
            try
            {
                tokenizer.Save(tmp);
                Add(tokenizer.Kind);
                foreach (var f in Directory.GetFiles(tmp, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
                {
                    Add(Path.GetRelativePath(tmp, f));
                    AddFile(h, f);
                }
            }
            finally { if (Directory.Exists(tmp)) Directory.Delete(tmp, true); }
        }
        return Convert.ToHexStringLower(h.GetHashAndReset());
    }

    static void AddFile(IncrementalHash h, string path)
    {
        using var s = File.OpenRead(path);
        h.AppendData(BitConverter.GetBytes(s.Length));
        var buf = new byte[1 << 16];
        for (int n; (n = s.Read(buf, 0, buf.Length)) > 0;) h.AppendData(buf, 0, n);
    }

    static void Write(string file, string key, TaskExamples ex)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(file)!);
        string tmp = $"{file}.{Guid.NewGuid():N}.tmp";
        try
        {
            using (var w = new BinaryWriter(File.Create(tmp)))
            {
                w.Write(Magic); w.Write(Version); w.Write(key);
                w.Write(ex.Labels != null);
                if (ex.Labels != null) { w.Write(ex.Labels.Count); foreach (var l in ex.Labels) w.Write(l); }
                w.Write(ex.Examples.Count);
                foreach (var e in ex.Examples)
                {
                    Ints(w, e.InputIds); Ints(w, e.TokenTypeIds); Ints(w, e.TokenLabels);
                    w.Write(e.Label); w.Write(e.StartPosition); w.Write(e.EndPosition);
                    // Extractive QA from text: what evaluate's SQuAD scores turn a token span back into text with.
                    w.Write(e.Qa != null);
                    if (e.Qa is { } q)
                    {
                        w.Write(q.Question); w.Write(q.Context);
                        w.Write(q.Answers.Count); foreach (var a in q.Answers) w.Write(a);
                        Ints(w, q.Spans.SelectMany(x => new[] { x.Start, x.End }).ToArray());
                    }
                }
                w.Write(Magic);   // end marker: a truncated file is not trusted
            }
            File.Move(tmp, file, overwrite: true);
        }
        finally { if (File.Exists(tmp)) File.Delete(tmp); }
    }

    static void Ints(BinaryWriter w, int[]? a)
    {
        w.Write(a?.Length ?? -1);
        if (a != null) w.Write(System.Runtime.InteropServices.MemoryMarshal.AsBytes(a.AsSpan()));
    }

    static int[]? ReadInts(BinaryReader r)
    {
        int n = r.ReadInt32();
        if (n < 0) return null;
        var a = new int[n];
        int got = r.Read(System.Runtime.InteropServices.MemoryMarshal.AsBytes(a.AsSpan()));
        if (got != n * sizeof(int)) throw new EndOfStreamException();
        return a;
    }

    /// <summary>The cached examples, or null when the file is not this key's or is damaged.</summary>
    static TaskExamples? TryRead(string file, string key)
    {
        try
        {
            using var r = new BinaryReader(File.OpenRead(file));
            if (r.ReadInt32() != Magic || r.ReadInt32() != Version || r.ReadString() != key) return null;
            List<string>? labels = null;
            if (r.ReadBoolean()) { int k = r.ReadInt32(); labels = new List<string>(k); for (int i = 0; i < k; i++) labels.Add(r.ReadString()); }
            int count = r.ReadInt32();
            var list = new List<Example>(count);
            for (int i = 0; i < count; i++)
            {
                var ids = ReadInts(r) ?? throw new InvalidDataException("no input_ids");
                var types = ReadInts(r); var tl = ReadInts(r);
                int label = r.ReadInt32(), start = r.ReadInt32(), end = r.ReadInt32();
                QaText? qa = null;
                if (r.ReadBoolean())
                {
                    string question = r.ReadString(), context = r.ReadString();
                    var answers = new string[r.ReadInt32()];
                    for (int k = 0; k < answers.Length; k++) answers[k] = r.ReadString();
                    var flat = ReadInts(r) ?? throw new InvalidDataException("no QA spans");
                    qa = new QaText(question, context, answers, Enumerable.Range(0, flat.Length / 2).Select(k => (flat[2 * k], flat[2 * k + 1])).ToArray());
                }
                list.Add(new Example { InputIds = ids, TokenTypeIds = types, TokenLabels = tl, Label = label, StartPosition = start, EndPosition = end, Qa = qa });
            }
            if (r.ReadInt32() != Magic) return null;
            return new TaskExamples(list, labels);
        }
        catch (Exception e) when (e is IOException or InvalidDataException or EndOfStreamException or OverflowException or OutOfMemoryException)
        {
            return null;
        }
    }
}
