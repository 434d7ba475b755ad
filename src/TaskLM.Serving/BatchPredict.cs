// `tasklm predict` as a library: a model's predictions for every row of a data file, streamed in chunks, input columns kept.
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using TaskLM.Data.Corpus;

namespace TaskLM.Serving;

/// <summary>What <see cref="BatchPredict.Run"/> reads and writes.</summary>
public sealed record PredictOptions
{
    /// <summary>Column holding the text (classification, tagging, embeddings) or the prompt (causal LM; falls back to "prompt").</summary>
    public string TextColumn { get; init; } = "text";
    /// <summary>Second text of a pair (classification), if any.</summary>
    public string? TextPairColumn { get; init; }
    public string QuestionColumn { get; init; } = "question";
    public string ContextColumn { get; init; } = "context";
    /// <summary>Rows handed to the model at once (they are batched on it); also the memory bound: only this many rows are held.</summary>
    public int BatchSize { get; init; } = 32;
    /// <summary>Causal LM: generation settings.</summary>
    public GenerateOptions Generate { get; init; } = new() { MaxTokens = 32 };
    /// <summary>Called after each chunk with the rows written so far.</summary>
    public Action<long>? Progress { get; init; }
    /// <summary>An input without rows writes an empty output instead of failing (as the data verbs' --allow-empty).</summary>
    public bool AllowEmpty { get; init; }
}

/// <summary>Runs a model over a data file (any format <c>train</c> reads: CSV, TSV, JSONL, Parquet, .gz) and writes
/// each input row with its prediction beside it, as JSONL or CSV (by the output's extension). A prediction field whose
/// name the input already uses (a gold <c>label</c> or <c>tags</c> column) is written as <c>predicted_&lt;name&gt;</c>.</summary>
public static class BatchPredict
{
    /// <summary>The prediction fields one row gets, by task: classification label, score, probabilities;
    /// tagging tags, words, entities; QA answer, answer_start, answer_end, score; causal LM completion, finish_reason.</summary>
    public static async Task<JsonObject> PredictOne(TaskLMModel model, JsonObject row, PredictOptions o, CancellationToken ct = default) =>
        (await PredictChunk(model, [new DataRow(row, "--text", 1)], o, ct).ConfigureAwait(false))[0];

    /// <summary>Predicts every row of <paramref name="input"/> into <paramref name="output"/> (.jsonl/.jsonl.gz or .csv/.tsv);
    /// null output writes JSONL to <paramref name="stdout"/>. Returns the number of rows written.</summary>
    public static async Task<long> Run(TaskLMModel model, string input, string? output, PredictOptions o, TextWriter? stdout = null, CancellationToken ct = default)
    {
        if (!File.Exists(input)) throw new FileNotFoundException($"input file '{input}' does not exist", input);
        var rows = DataImport.Read(input, new ImportOptions(), new RowErrors(OnError.Fail));
        bool csv = output != null && (output.EndsWith(".csv", StringComparison.OrdinalIgnoreCase) || output.EndsWith(".tsv", StringComparison.OrdinalIgnoreCase));
        if (output != null && !csv && !output.EndsWith(".jsonl", StringComparison.OrdinalIgnoreCase) && !output.EndsWith(".jsonl.gz", StringComparison.OrdinalIgnoreCase) && !output.EndsWith(".json", StringComparison.OrdinalIgnoreCase))
            throw new ArgumentException($"--out '{output}': write .jsonl, .jsonl.gz, .csv or .tsv");
        string? tmp = output == null ? null : output + ".tmp";
        if (output != null && Path.GetDirectoryName(Path.GetFullPath(output)) is string dir) Directory.CreateDirectory(dir);
        TextWriter writer;
        try { writer = output == null ? stdout ?? Console.Out : JsonlFile.CreateWriter(tmp!); }
        catch (IOException) { DeleteQuietly(tmp); throw; }   // a full disk can fail the very first buffer
        bool done = false;
        long n = 0;
        List<string>? header = null;
        char sep = output?.EndsWith(".tsv", StringComparison.OrdinalIgnoreCase) == true ? '\t' : ',';
        try
        {
            var chunk = new List<DataRow>(o.BatchSize);
            async Task Flush()
            {
                var preds = await PredictChunk(model, chunk, o, ct).ConfigureAwait(false);
                for (int i = 0; i < chunk.Count; i++)
                {
                    var outRow = (JsonObject)chunk[i].Fields.DeepClone();
                    // A prediction never overwrites an input column: a labelled file keeps its gold label/tags, and the
                    // prediction beside it is predicted_label / predicted_tags (so the output can be scored afterwards).
                    foreach (var (k, v) in preds[i]) outRow[chunk[i].Fields.ContainsKey(k) ? "predicted_" + k : k] = v?.DeepClone();
                    if (!csv) { writer.Write(outRow.ToJsonString()); writer.Write('\n'); continue; }
                    var flat = Flatten(outRow);
                    if (header == null) { header = flat.Keys.ToList(); writer.Write(string.Join(sep, header.Select(h => Csv(h, sep)))); writer.Write('\n'); }
                    writer.Write(string.Join(sep, header.Select(h => Csv(flat.GetValueOrDefault(h) ?? "", sep)))); writer.Write('\n');
                }
                n += chunk.Count;
                chunk.Clear();
                o.Progress?.Invoke(n);
            }
            foreach (var row in rows)
            {
                chunk.Add(row);
                if (chunk.Count >= o.BatchSize) await Flush().ConfigureAwait(false);
            }
            if (chunk.Count > 0) await Flush().ConfigureAwait(false);
            if (n == 0 && !o.AllowEmpty)
                throw new InvalidDataException($"{input}: no rows to predict (an empty file); pass --allow-empty to write an empty output");
            if (output != null) writer.Dispose(); else writer.Flush();
            // Written to a temporary file and renamed: a failed run never leaves a half file under the name asked for.
            if (output != null) File.Move(tmp!, output, overwrite: true);
            done = true;
        }
        finally
        {
            // A failure (bad row, binary input, full disk) leaves neither a half output nor the temporary file.
            if (!done && output != null)
            {
                try { writer.Dispose(); } catch (IOException) { }
                DeleteQuietly(tmp);
            }
        }
        return n;
    }

    static void DeleteQuietly(string? path)
    {
        try { if (path != null) File.Delete(path); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }

    static async Task<List<JsonObject>> PredictChunk(TaskLMModel model, List<DataRow> rows, PredictOptions o, CancellationToken ct)
    {
        string Text(DataRow r, string col) => r.Fields[col] switch
        {
            null => throw new InvalidDataException($"{r.Source}:{r.Line}: no field '{col}' (fields: {string.Join(", ", r.Fields.Select(kv => kv.Key))}); name it with --text-column"),
            JsonValue v when v.TryGetValue(out string? s) => s,
            var other => other.ToJsonString(),
        };
        var result = new List<JsonObject>();
        switch (model.Task)
        {
            case "classification":
            {
                var texts = rows.Select(r => Text(r, o.TextColumn)).ToList();
                var pairs = o.TextPairColumn == null ? null : rows.Select(r => Text(r, o.TextPairColumn)).ToList();
                foreach (var c in await model.ClassifyAsync(texts, pairs, ct).ConfigureAwait(false))
                    result.Add(new JsonObject
                    {
                        ["label"] = c.Label, ["score"] = c.Score,
                        ["probabilities"] = new JsonObject(c.Probabilities.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)kv.Value))),
                    });
                break;
            }
            case "token-classification":
                foreach (var t in await model.TagAsync(rows.Select(r => Text(r, o.TextColumn)).ToList(), ct).ConfigureAwait(false))
                {
                    var obj = new JsonObject
                    {
                        ["words"] = new JsonArray(t.Words.Select(w => (JsonNode)w.Word).ToArray()),
                        ["tags"] = new JsonArray(t.Words.Select(w => (JsonNode)w.Tag).ToArray()),
                    };
                    if (t.Entities != null)
                        obj["entities"] = new JsonArray(t.Entities.Select(e => (JsonNode)new JsonObject { ["type"] = e.Type, ["text"] = e.Text, ["start"] = e.Start, ["end"] = e.End }).ToArray());
                    result.Add(obj);
                }
                break;
            case "question-answering":
                foreach (var a in await model.AnswerAsync(rows.Select(r => (Text(r, o.QuestionColumn), Text(r, o.ContextColumn))).ToList(), ct: ct).ConfigureAwait(false))
                    result.Add(new JsonObject { ["answer"] = a.Text, ["answer_start"] = a.Start, ["answer_end"] = a.End, ["score"] = a.Score });
                break;
            case "causal-lm":
            {
                // All rows of the chunk decode together (continuous batching); each keeps its own seed when one is set.
                var gens = await Task.WhenAll(rows.Select(r => model.GenerateTextAsync(
                    r.Fields.ContainsKey(o.TextColumn) || !r.Fields.ContainsKey("prompt") ? Text(r, o.TextColumn) : Text(r, "prompt"), o.Generate, ct))).ConfigureAwait(false);
                foreach (var g in gens) result.Add(new JsonObject { ["completion"] = g.Text, ["finish_reason"] = g.FinishReason.OpenAI() });
                break;
            }
            default:
                throw new NotSupportedException($"predict does not handle '{model.Task}' models (classification, token-classification, question-answering, causal-lm)");
        }
        return result;
    }

    // CSV columns: input fields as they are, lists joined by spaces, objects spread as prob_<name> or JSON text.
    static Dictionary<string, string> Flatten(JsonObject row)
    {
        var flat = new Dictionary<string, string>();
        foreach (var (k, v) in row)
        {
            switch (v)
            {
                case null: flat[k] = ""; break;
                case JsonObject probs when k == "probabilities":
                    foreach (var (name, p) in probs) flat["prob_" + name] = ((double)p!).ToString("R", CultureInfo.InvariantCulture);
                    break;
                case JsonArray a when a.All(x => x is JsonValue):
                    flat[k] = string.Join(' ', a.Select(x => x is JsonValue jv && jv.TryGetValue(out string? s) ? s : x!.ToJsonString())); break;
                case JsonValue jv when jv.TryGetValue(out string? s): flat[k] = s; break;
                default: flat[k] = v.ToJsonString(); break;
            }
        }
        return flat;
    }

    static string Csv(string s, char sep) =>
        s.IndexOfAny([sep, '"', '\n', '\r']) >= 0 ? "\"" + s.Replace("\"", "\"\"") + "\"" : s;
}
