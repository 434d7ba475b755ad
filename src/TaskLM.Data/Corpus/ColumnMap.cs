// Maps an input's columns onto the roles a task reads: text, text_pair, label, tokens+tags, QA, prompt/completion.
using System.Text.Json;
using System.Text.Json.Nodes;

namespace TaskLM.Data.Corpus;

/// <summary>Which input column plays each role. Output rows use the role names as keys (<c>text</c>,
/// <c>text_pair</c>, <c>label</c>, <c>tokens</c>, <c>tags</c>, <c>question</c>, <c>context</c>, <c>answers</c>,
/// <c>prompt</c>, <c>completion</c>), with SQuAD's <c>answers</c> shape <c>{"text": [...], "answer_start": [...]}</c>.
/// With no role set, rows pass through unchanged.</summary>
public sealed record ColumnMap
{
    public string? Text { get; init; }
    public string? TextPair { get; init; }
    public string? Label { get; init; }
    public string? Tokens { get; init; }
    public string? Tags { get; init; }
    public string? Question { get; init; }
    public string? Context { get; init; }
    public string? Answers { get; init; }
    public string? Prompt { get; init; }
    public string? Completion { get; init; }
    /// <summary>Extra input columns copied unchanged (e.g. an id), besides the roles.</summary>
    public IReadOnlyList<string> Keep { get; init; } = [];

    /// <summary>(role, column) for every role that is set, in output order.</summary>
    public IEnumerable<(string Role, string Column)> Roles()
    {
        (string, string?)[] all =
        [
            ("text", Text), ("text_pair", TextPair), ("label", Label), ("tokens", Tokens), ("tags", Tags),
            ("question", Question), ("context", Context), ("answers", Answers), ("prompt", Prompt), ("completion", Completion),
        ];
        foreach (var (role, col) in all)
            if (col != null) yield return (role, col);
        foreach (var k in Keep) yield return (k, k);
    }

    /// <summary>True when no role is set (rows pass through).</summary>
    public bool IsEmpty => !Roles().Any();

    /// <summary>Applies the mapping lazily. The first row's columns are checked against every role: a missing one
    /// stops the import with the list of columns that do exist. Later rows that lack a column, or whose values do
    /// not fit the role (tokens and tags of different lengths, an answer not found in its context), are
    /// malformed rows handed to <paramref name="errors"/>.</summary>
    public IEnumerable<DataRow> Apply(IEnumerable<DataRow> rows, RowErrors? errors = null)
    {
        if (IsEmpty)
        {
            foreach (var r in rows) yield return r;
            yield break;
        }
        bool first = true;
        foreach (var row in rows)
        {
            if (first)
            {
                first = false;
                var missing = Roles().Where(rc => !row.Fields.ContainsKey(rc.Column)).Select(rc => $"'{rc.Column}' (for {rc.Role})").ToList();
                if (missing.Count > 0)
                    throw new DataFormatException(row.Source, row.Line,
                        $"no column {string.Join(", ", missing)}; the columns are: {string.Join(", ", row.Fields.Select(kv => kv.Key))}");
            }
            JsonObject mapped;
            try { mapped = Map(row); }
            catch (DataFormatException e) { if (errors == null) throw; errors.Report(e); continue; }
            yield return row with { Fields = mapped };
        }
    }

    JsonObject Map(DataRow row)
    {
        var o = new JsonObject();
        foreach (var (role, col) in Roles())
        {
            if (!row.Fields.TryGetPropertyValue(col, out var v))
                throw new DataFormatException(row.Source, row.Line, $"no column '{col}' (for {role}) in this row");
            o[role] = role is "tokens" or "tags" ? AsList(v, row, col) : v?.DeepClone();
        }
        if (o["tokens"] is JsonArray toks && o["tags"] is JsonArray tags && toks.Count != tags.Count)
            throw new DataFormatException(row.Source, row.Line, $"'{Tokens}' has {toks.Count} tokens but '{Tags}' has {tags.Count} tags");
        if (Answers != null) o["answers"] = SquadAnswers(o["answers"], o["context"]?.GetValueKind() == JsonValueKind.String ? o["context"]!.GetValue<string>() : null, row);
        return o;
    }

    // Tokens/tags as a JSON array: an array stays, a string splits on whitespace.
    static JsonArray AsList(JsonNode? v, DataRow row, string col) => v switch
    {
        JsonArray a => (JsonArray)a.DeepClone(),
        JsonValue s when s.GetValueKind() == JsonValueKind.String =>
            new JsonArray(s.GetValue<string>().Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries).Select(t => (JsonNode?)t).ToArray()),
        _ => throw new DataFormatException(row.Source, row.Line, $"column '{col}' must be a list or a space-separated string"),
    };

    // SQuAD shape {"text": [..], "answer_start": [..]}; plain answer strings are located in the context.
    static JsonObject SquadAnswers(JsonNode? v, string? context, DataRow row)
    {
        if (v is JsonObject obj && obj["text"] is JsonArray && obj["answer_start"] is JsonArray) return obj;
        var texts = v switch
        {
            JsonArray a => a.Select(x => x?.ToString() ?? "").ToList(),
            JsonValue s when s.GetValueKind() == JsonValueKind.String => [s.GetValue<string>()],
            _ => throw new DataFormatException(row.Source, row.Line, "answers must be a string, a list of strings or {\"text\": [...], \"answer_start\": [...]}"),
        };
        var starts = new JsonArray();
        foreach (var t in texts)
        {
            int at = context == null ? -1 : context.IndexOf(t, StringComparison.Ordinal);
            if (at < 0) throw new DataFormatException(row.Source, row.Line, $"answer '{t}' does not occur in the context");
            starts.Add(at);
        }
        return new JsonObject { ["text"] = new JsonArray(texts.Select(t => (JsonNode?)t).ToArray()), ["answer_start"] = starts };
    }
}
