// Turns a recipe's data files into tokenized examples for its objective (pre-tokenized JSONL or text + tokenizer).
using System.IO.Compression;
using System.Text.Json;
using System.Text.Json.Nodes;
using TaskLM.Data.Corpus;
using TaskLM.Data.Tokenization;
using TaskLM.Recipes;
using TaskLM.Training;

namespace TaskLM.Tasks;

/// <summary>Examples of one split plus the label names the head uses.</summary>
public sealed record TaskExamples(List<Example> Examples, IReadOnlyList<string>? Labels)
{
    /// <summary>Chat rows left out because data.max_length cut them before their first reply (0 when read from the cache).</summary>
    public int LeftOut { get; init; }
}

/// <summary>Reads examples for every task. Pre-tokenized JSONL lines carry <c>input_ids</c> (and <c>labels</c>: an
/// id for classification, a per-token array for token classification / LM; <c>start_positions</c>/<c>end_positions</c>
/// for QA). Text lines are tokenized with the recipe's tokenizer: causal LM packs documents (EOS between them) into
/// blocks of max_length; masked LM likewise with [CLS]/[SEP]; classification encodes text (and pair); token
/// classification labels the first sub-token of each word (-100 for the rest and specials); QA maps the answer's
/// characters to token positions; generation puts loss on the completion only.</summary>
public static class TaskData
{
    /// <summary>Text data met without a tokenizer; training names the model that brought none (see TrainingRun.SetupData).</summary>
    public sealed class NoTokenizerException(string path)
        : InvalidOperationException($"{path}: text data needs a tokenizer (set 'tokenizer' in the recipe or give a model folder that has one)")
    {
        public string DataPath { get; } = path;
    }

    /// <summary>Loads <paramref name="path"/> for <paramref name="recipe"/>'s task (see the data-section overload).</summary>
    public static TaskExamples Load(Recipe recipe, string path, ITokenizer? tokenizer, IReadOnlyList<string>? labels, int maxExamples = 0, HfChatTemplate? chatTemplate = null) =>
        Load(recipe.Task, recipe.Data, path, tokenizer, labels, maxExamples, chatTemplate);

    /// <summary>Loads <paramref name="path"/> for <paramref name="task"/> as the <paramref name="data"/> section says
    /// (columns, max_length, format). Rows come from TaskLM.Data's readers: JSONL, CSV, TSV and Parquet, each also
    /// gzip'd (.gz), by extension or data.format; a .txt file is documents separated by blank lines; a .tok file is
    /// a token file. Errors name the file and line. <paramref name="labels"/>: the label names fixed by the training
    /// split (null = data.labels, else collected from this file, sorted). Causal LM and generation rows with a
    /// messages column (chat data) are rendered with <paramref name="chatTemplate"/> (null = ChatML) and train on the
    /// assistant turns only (<see cref="ChatData"/>); causal-LM rows with prompt and completion but no text column train
    /// on the completion only, as the generation task does.</summary>
    public static TaskExamples Load(string task, DataSection data, string path, ITokenizer? tokenizer, IReadOnlyList<string>? labels, int maxExamples = 0,
        HfChatTemplate? chatTemplate = null)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: data file not found");
        var d = data;
        var recipe = new Recipe { Task = task, Data = data };
        string format = d.Format != "auto" ? d.Format
            : path.EndsWith(".tok", StringComparison.OrdinalIgnoreCase) ? "tokens"
            : path.EndsWith(".txt", StringComparison.OrdinalIgnoreCase) || path.EndsWith(".txt.gz", StringComparison.OrdinalIgnoreCase) ? "txt"
            : DataImport.Detect(path) switch
            {
                InputFormat.Csv => "csv", InputFormat.Tsv => "tsv", InputFormat.Parquet => "parquet", InputFormat.Jsonl => "jsonl",
                _ => "jsonl",
            };
        if (format == "tokens") return new TaskExamples(TokenBlocks(recipe, path, maxExamples), null);
        var rows = format == "txt" ? ReadTextDocuments(path, d.TextColumn) : ReadRows(path, format);
        if (rows.Count == 0) throw new InvalidDataException($"{path}: no examples");
        bool preTokenized = rows[0].row.ContainsKey("input_ids");
        List<string>? labelNames = labels?.ToList() ?? d.Labels?.ToList();
        if (task is "classification" or "token-classification" && labelNames == null)
            labelNames = CollectLabels(rows, recipe, preTokenized, path);
        var examples = new List<Example>();
        if (!preTokenized && tokenizer == null) throw new NoTokenizerException(path);
        bool chat = !preTokenized && task is "causal-lm" or "generation" && ChatData.IsChatRow(rows[0].row, d);
        bool promptCompletion = !preTokenized && task == "causal-lm" && !chat && !rows[0].row.ContainsKey(d.TextColumn)
            && rows[0].row.ContainsKey(d.PromptColumn) && rows[0].row.ContainsKey(d.CompletionColumn);
        int leftOut = 0;
        if (chat)
        {
            chatTemplate ??= new HfChatTemplate(ChatData.ChatMl, "ChatML (TaskLM default)");
            foreach (var (row, line) in rows)
            {
                if (!ChatData.IsChatRow(row, d))
                    throw new InvalidDataException($"{path}:{line}: no '{d.MessagesColumn}' list (the file's first row is chat data; fields here: {string.Join(", ", row.Select(kv => kv.Key))})");
                try { if (ChatData.Encode(row, d, tokenizer!, chatTemplate) is { } e) examples.Add(e); else leftOut++; }
                catch (InvalidDataException e) { throw new InvalidDataException($"{path}:{line}: {e.Message}", e); }
            }
            if (examples.Count == 0) throw new InvalidDataException($"{path}: no row has an assistant token within data.max_length={d.MaxLength}");
        }
        else if (promptCompletion)
        {
            var asGeneration = new Recipe { Task = "generation", Data = data };   // the completion-only loss of the generation task
            foreach (var (row, line) in rows)
            {
                try { examples.Add(FromText(row, asGeneration, tokenizer!, labelNames)); }
                catch (InvalidDataException e) { throw new InvalidDataException($"{path}:{line}: {e.Message}", e); }
            }
        }
        else if (!preTokenized && task is "causal-lm" or "masked-lm")
            examples.AddRange(PackBlocks(rows, recipe, tokenizer!, path));
        else
            foreach (var (row, line) in rows)
            {
                try { examples.Add(preTokenized ? FromIds(row, recipe, labelNames) : FromText(row, recipe, tokenizer!, labelNames)); }
                catch (Exception e) when (e is not InvalidDataException) { throw new InvalidDataException($"{path}:{line}: {e.Message}", e); }
                catch (InvalidDataException e) { throw new InvalidDataException($"{path}:{line}: {e.Message}", e); }
            }
        if (maxExamples > 0 && examples.Count > maxExamples) examples = examples.Take(maxExamples).ToList();
        return new TaskExamples(examples, labelNames) { LeftOut = leftOut };
    }

    /// <summary>Rows of a JSONL / CSV / TSV / Parquet file (gzip'd or not) through TaskLM.Data's readers, which name
    /// file:line on a malformed row. CSV and TSV cells are strings.</summary>
    static List<(JsonObject row, long line)> ReadRows(string path, string format)
    {
        var fmt = format switch { "csv" => InputFormat.Csv, "tsv" => InputFormat.Tsv, "parquet" => InputFormat.Parquet, _ => InputFormat.Jsonl };
        string? tmp = null;
        string source = path;
        try
        {
            if (fmt == InputFormat.Parquet && JsonlFile.IsGzip(path))
            {
                // Parquet needs a seekable file: a .parquet.gz is decompressed to a temporary copy first.
                tmp = Path.Combine(Path.GetTempPath(), $"tasklm-{Guid.NewGuid():N}.parquet");
                using (var gz = new GZipStream(File.OpenRead(path), CompressionMode.Decompress))
                using (var o = File.Create(tmp)) gz.CopyTo(o);
                source = tmp;
            }
            var rows = DataImport.Read(source, new ImportOptions { Format = fmt }, new RowErrors(OnError.Fail)).Select(r => (r.Fields, r.Line)).ToList();
            return rows;
        }
        catch (DataFormatException e) when (tmp != null) { throw new InvalidDataException(e.Message.Replace(tmp, path), e); }
        catch (DataFormatException e) { throw new InvalidDataException(e.Message, e); }
        catch (InvalidDataException e) when (!e.Message.Contains(path)) { throw new InvalidDataException($"{path}: {e.Message}", e); }
        finally { if (tmp != null) File.Delete(tmp); }
    }

    // A text file: documents separated by blank lines.
    static List<(JsonObject row, long line)> ReadTextDocuments(string path, string column)
    {
        var rows = new List<(JsonObject, long)>();
        using var reader = OpenText(path);
        var sb = new System.Text.StringBuilder(); long start = 1, n = 0;
        for (string? l; (l = reader.ReadLine()) != null;)
        {
            n++;
            if (l.Trim().Length == 0) { Flush(); start = n + 1; continue; }
            if (sb.Length > 0) sb.Append('\n');
            sb.Append(l);
        }
        Flush();
        return rows;
        void Flush() { if (sb.Length > 0) rows.Add((new JsonObject { [column] = sb.ToString() }, start)); sb.Clear(); }
    }

    static StreamReader OpenText(string path) => path.EndsWith(".gz", StringComparison.OrdinalIgnoreCase)
        ? new StreamReader(new GZipStream(File.OpenRead(path), CompressionMode.Decompress))
        : new StreamReader(path);

    static List<string> CollectLabels(List<(JsonObject row, long line)> rows, Recipe r, bool preTokenized, string path)
    {
        if (preTokenized)
        {
            // Ids already: name them by number up to the largest seen.
            int max = rows.Max(x => (x.row["labels"] ?? x.row["label"]) switch { JsonArray a => a.Max(v => (int)v!), JsonValue v => (int)v, _ => -1 });
            return Enumerable.Range(0, max + 1).Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture)).ToList();
        }
        var set = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var (row, line) in rows)
        {
            if (r.Task == "classification") set.Add(Field(row, r.Data.LabelColumn, path, line));
            else foreach (var t in (row[r.Data.TagsColumn] as JsonArray) ?? throw new InvalidDataException($"{path}:{line}: no '{r.Data.TagsColumn}' list")) set.Add(t!.ToString());
        }
        return set.ToList();
    }

    static string Field(JsonObject row, string column, string path, long line) =>
        row[column] switch
        {
            null when row.ContainsKey(column) => throw new InvalidDataException($"{path}:{line}: field '{column}' is null; give every row a value or drop the row"),
            null => throw new InvalidDataException($"{path}:{line}: no field '{column}' (fields: {string.Join(", ", row.Select(kv => kv.Key))})"),
            JsonValue v when v.TryGetValue(out string? s) => s,
            var other => other.ToString(),
        };

    static int[] Ints(JsonNode? n, string name) => n is JsonArray a ? a.Select(v => (int)v!).ToArray() : throw new InvalidDataException($"'{name}' must be an array of integers");

    static Example FromIds(JsonObject row, Recipe r, List<string>? labels)
    {
        int max = r.Data.MaxLength;
        int[] ids = Ints(row["input_ids"], "input_ids");
        if (ids.Length == 0) throw new InvalidDataException("empty input_ids");
        int[] Cut(int[] a) => a.Length > max ? a[..max] : a;
        int[]? types = row["token_type_ids"] is JsonArray ? Cut(Ints(row["token_type_ids"], "token_type_ids")) : null;
        switch (r.Task)
        {
            case "classification":
                int label = row["labels"] is JsonValue lv ? (int)lv : row["label"] is JsonValue l2 ? (int)l2 : throw new InvalidDataException("classification needs an integer 'labels'");
                if (labels != null && (label < 0 || label >= labels.Count)) throw new InvalidDataException($"label {label} outside 0..{labels.Count - 1}");
                return new Example { InputIds = Cut(ids), TokenTypeIds = types, Label = label };
            case "question-answering":
                return new Example { InputIds = Cut(ids), TokenTypeIds = types, StartPosition = (int)row["start_positions"]!, EndPosition = (int)row["end_positions"]! };
            default:
                int[]? tl = row["labels"] is JsonArray ? Ints(row["labels"], "labels") : null;
                if (tl != null && tl.Length != ids.Length) throw new InvalidDataException($"labels has {tl.Length} entries, input_ids {ids.Length}");
                if (r.Task == "token-classification" && tl == null) throw new InvalidDataException("token classification needs a 'labels' array");
                return new Example { InputIds = Cut(ids), TokenTypeIds = types, TokenLabels = tl == null ? null : Cut(tl) };
        }
    }

    static bool IsWordPiece(ITokenizer t) => t.Kind == "wordpiece";

    static int Special(ITokenizer t, string token) => t.TokenToId(token) ?? throw new InvalidDataException($"tokenizer has no {token} token");

    // Classification, token classification and QA go through the one task encoder (TaskLM.Data's TaskEncoder) that
    // predict, serve and the ONNX runtime use too.
    static Example FromText(JsonObject row, Recipe r, ITokenizer tok, List<string>? labels)
    {
        var d = r.Data; int max = d.MaxLength;
        var encoder = new TaskEncoder(tok, max);
        switch (r.Task)
        {
            case "classification":
            {
                string label = row[d.LabelColumn]?.ToString() ?? throw new InvalidDataException(row.ContainsKey(d.LabelColumn) ? $"field '{d.LabelColumn}' is null; give every row a value or drop the row" : $"no field '{d.LabelColumn}'");
                int id = labels!.IndexOf(label);
                if (id < 0) throw new InvalidDataException($"label '{label}' is not among the training labels ({string.Join(", ", labels)})");
                var enc = encoder.Text(row[d.TextColumn]?.ToString() ?? throw new InvalidDataException($"no field '{d.TextColumn}'"),
                    d.TextPairColumn == null ? null : row[d.TextPairColumn]?.ToString());
                return new Example { InputIds = enc.InputIds, TokenTypeIds = encoder.ModelTypeIds(enc), Label = id };
            }
            case "token-classification":
            {
                var words = (row[d.TokensColumn] as JsonArray ?? throw new InvalidDataException($"no '{d.TokensColumn}' list")).Select(w => w!.ToString()).ToList();
                var tags = (row[d.TagsColumn] as JsonArray ?? throw new InvalidDataException($"no '{d.TagsColumn}' list")).Select(w => w!.ToString()).ToList();
                if (words.Count != tags.Count) throw new InvalidDataException($"{words.Count} tokens but {tags.Count} tags");
                // The first piece of each word carries its tag, the rest -100 (HF's is_split_into_words).
                var enc = encoder.Words(words);
                var lab = Enumerable.Repeat(-100, enc.Input.Length).ToArray();
                for (int i = 0; i < words.Count; i++)
                {
                    if (!enc.HasTokens[i]) continue;
                    int tag = labels!.IndexOf(tags[i]);
                    if (tag < 0) throw new InvalidDataException($"tag '{tags[i]}' is not among the training tags");
                    if (enc.FirstToken[i] >= 0) lab[enc.FirstToken[i]] = tag;
                }
                return new Example { InputIds = enc.Input.InputIds, TokenLabels = lab, TokenTypeIds = encoder.ModelTypeIds(enc.Input) };
            }
            case "question-answering":
                return QaExample(row, r, encoder);
            case "generation":
            {
                var p = tok.Encode(row[d.PromptColumn]?.ToString() ?? throw new InvalidDataException($"no field '{d.PromptColumn}'"));
                var c = tok.Encode(row[d.CompletionColumn]?.ToString() ?? throw new InvalidDataException($"no field '{d.CompletionColumn}'")).ToList();
                if (tok.EosTokenId is int eos) c.Add(eos);
                var ids = p.Concat(c).Take(max).ToArray();
                // Loss on the completion only: prompt positions are -100.
                var lab = ids.Select((x, i) => i < p.Count ? -100 : x).ToArray();
                return new Example { InputIds = ids, TokenLabels = lab };
            }
            default:
                throw new InvalidDataException($"task {r.Task} takes text through packing, not per line");
        }
    }

    /// <summary>Extractive QA: question + context (<see cref="TaskEncoder.Qa"/>), answer characters → token positions
    /// through per-word character offsets (each sub-token inherits its word's span; words split on whitespace as both
    /// tokenizers pre-split).</summary>
    static Example QaExample(JsonObject row, Recipe r, TaskEncoder encoder)
    {
        var d = r.Data;
        string q = row[d.QuestionColumn]?.ToString() ?? throw new InvalidDataException($"no field '{d.QuestionColumn}'");
        string ctx = row[d.ContextColumn]?.ToString() ?? throw new InvalidDataException($"no field '{d.ContextColumn}'");
        var ans = row[d.AnswersColumn] as JsonObject ?? throw new InvalidDataException($"no '{d.AnswersColumn}' object (SQuAD layout: text, answer_start)");
        string atext = ans["text"] is JsonArray ta ? ta[0]!.ToString() : ans["text"]!.ToString();
        int astart = ans["answer_start"] is JsonArray sa ? (int)sa[0]! : (int)ans["answer_start"]!;
        int aend = astart + atext.Length;
        var answers = ans["text"] is JsonArray all ? all.Select(a => a?.ToString() ?? "").ToList() : [atext];
        var enc = encoder.Qa(q, ctx);
        // Per token: its word's characters in the context, (-1, -1) outside it.
        var spans = Enumerable.Range(0, enc.Input.Length).Select(i => enc.IsContext(i) ? enc.Input.Offsets[i] : (-1, -1)).ToArray();
        int start = 0, end = 0;
        for (int i = 0; i < spans.Length; i++)
        {
            if (!enc.IsContext(i)) continue;
            var (ws, we) = spans[i];
            if (start == 0 && we > astart && ws <= astart) start = i;
            if (ws < aend) end = i;
        }
        bool cut = enc.CutAt < aend;
        if (cut || start == 0 || end < start) { start = 0; end = 0; }   // answer (partly) cut off: point at [CLS], as HF
        return new Example
        {
            InputIds = enc.Input.InputIds, TokenTypeIds = encoder.ModelTypeIds(enc.Input), StartPosition = start, EndPosition = end,
            Qa = new QaText(q, ctx, answers, spans),
        };
    }

    /// <summary>Causal LM on a token file (`tasklm data encode`): the documents, each already ending in EOS, are one
    /// stream cut into blocks of max_length (the remainder dropped, as group_texts).</summary>
    static List<Example> TokenBlocks(Recipe r, string path, int maxExamples)
    {
        if (r.Task != "causal-lm") throw new InvalidDataException($"{path}: token files train causal-lm only (task is {r.Task})");
        using var reader = new TokenFileReader(path);
        int block = r.Data.MaxLength;
        long n = reader.Count / block;
        if (maxExamples > 0) n = Math.Min(n, maxExamples);
        if (n == 0) throw new InvalidDataException($"{path}: {reader.Count} tokens, fewer than one block of data.max_length={block}");
        var list = new List<Example>((int)n);
        for (long i = 0; i < n; i++)
        {
            var ids = new int[block];
            reader.Read(i * block, ids);
            list.Add(new Example { InputIds = ids });
        }
        return list;
    }

    /// <summary>Causal/masked LM on text: documents tokenized, joined with EOS ([SEP] for WordPiece) so a document's
    /// end is marked, and cut into blocks of max_length (the remainder is dropped, as HF's group_texts).</summary>
    static IEnumerable<Example> PackBlocks(List<(JsonObject row, long line)> rows, Recipe r, ITokenizer tok, string path)
    {
        bool wp = IsWordPiece(tok);
        int sep = wp ? Special(tok, "[SEP]") : tok.EosTokenId ?? throw new InvalidDataException("tokenizer has no end-of-text token to mark document boundaries");
        int block = r.Data.MaxLength - (wp ? 2 : 0);
        var stream = new List<int>();
        foreach (var (row, line) in rows)
        {
            stream.AddRange(tok.Encode(Field(row, r.Data.TextColumn, path, line)));
            stream.Add(sep);
        }
        for (int i = 0; i + block <= stream.Count; i += block)
        {
            var ids = stream.GetRange(i, block);
            if (wp) { ids.Insert(0, Special(tok, "[CLS]")); ids.Add(sep); }
            yield return new Example { InputIds = ids.ToArray() };
        }
    }
}
