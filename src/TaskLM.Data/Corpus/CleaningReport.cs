// What cleaning did, step by step: counts and examples of every change and every removal (clean-report.json).
using System.Text.Json;
using System.Text.Json.Serialization;

namespace TaskLM.Data.Corpus;

/// <summary>The whole cleaning report: one entry per step in pipeline order, plus label statistics.</summary>
public sealed class CleaningReport
{
    /// <summary>Rows read.</summary>
    public long InputRows { get; set; }

    /// <summary>Rows written.</summary>
    public long OutputRows { get; set; }

    /// <summary>Rows removed, all steps together (= input − output).</summary>
    public long RemovedRows { get; set; }

    /// <summary>Characters of text before and after cleaning (kept and removed rows alike, before removal).</summary>
    public long CharsIn { get; set; }

    /// <summary>Characters of text after the transforms, over the rows that were kept.</summary>
    public long CharsOut { get; set; }

    /// <summary>Wall-clock seconds.</summary>
    public double ElapsedSeconds { get; set; }

    /// <summary>Each step in pipeline order: transforms report rows changed, filters rows removed.</summary>
    public List<CleaningStepReport> Steps { get; set; } = [];

    /// <summary>Label validation and class balance, when a label column is in use.</summary>
    public LabelReport? Labels { get; set; }

    /// <summary>The settings used.</summary>
    public JsonElement? Options { get; set; }

    /// <summary>The step entry called <paramref name="name"/>.</summary>
    public CleaningStepReport Step(string name) => Steps.First(s => s.Step == name);

    /// <summary>Indented snake_case JSON.</summary>
    public string ToJson() => JsonSerializer.Serialize(this, JsonOut);

    internal static readonly JsonSerializerOptions JsonOut = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DictionaryKeyPolicy = null,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower) },
    };
}

/// <summary>One step's effect.</summary>
public sealed class CleaningStepReport
{
    /// <summary>Step name: email_headers, html, email_quotes, email_signature, nfkc, mask_urls, mask_emails,
    /// mask_phones, whitespace (transforms); missing_text, length_chars, length_tokens, label, exact_dedup,
    /// near_dedup (filters).</summary>
    public string Step { get; set; } = "";

    /// <summary>"transform" or "filter".</summary>
    public string Kind { get; set; } = "";

    /// <summary>Transforms: rows whose text this step changed.</summary>
    public long RowsChanged { get; set; }

    /// <summary>Filters: rows this step removed.</summary>
    public long Removed { get; set; }

    /// <summary>Filters: removed rows by reason ("shorter than 1 chars", "unknown label 'x'", ...).</summary>
    public SortedDictionary<string, long> Reasons { get; set; } = new(StringComparer.Ordinal);

    /// <summary>The first few changes or removals, in input order.</summary>
    public List<CleaningExample> Examples { get; set; } = [];
}

/// <summary>One example of a change (before/after around the first difference) or a removal (reason, text).</summary>
public sealed class CleaningExample
{
    /// <summary>Input file.</summary>
    public string Source { get; set; } = "";

    /// <summary>Line (or record) number in the input.</summary>
    public long Line { get; set; }

    /// <summary>Why the row was removed.</summary>
    public string? Reason { get; set; }

    /// <summary>Text before the step (an excerpt).</summary>
    public string? Before { get; set; }

    /// <summary>Text after the step (an excerpt).</summary>
    public string? After { get; set; }

    /// <summary>The removed row's text (an excerpt).</summary>
    public string? Text { get; set; }

    /// <summary>Dedup: the kept row this one duplicates ("file:line").</summary>
    public string? DuplicateOf { get; set; }

    /// <summary>Near dedup: estimated Jaccard similarity with that row.</summary>
    public double? Jaccard { get; set; }
}

/// <summary>Labels seen, removed and kept.</summary>
public sealed class LabelReport
{
    /// <summary>The label field.</summary>
    public string Column { get; set; } = "";

    /// <summary>Set when label checks were skipped, with why.</summary>
    public string? Note { get; set; }

    /// <summary>Rows per label in the input ("" = missing).</summary>
    public SortedDictionary<string, long> Before { get; set; } = new(StringComparer.Ordinal);

    /// <summary>Rows per label in the output.</summary>
    public SortedDictionary<string, long> After { get; set; } = new(StringComparer.Ordinal);

    /// <summary>Rows without a label.</summary>
    public long Missing { get; set; }

    /// <summary>Rows per label not in the allowed list.</summary>
    public SortedDictionary<string, long> Unknown { get; set; } = new(StringComparer.Ordinal);

    /// <summary>Exact or near duplicates whose label differs from the kept row's (label noise worth a look).</summary>
    public long ConflictingDuplicates { get; set; }

    /// <summary>Largest class over smallest class in the output (1 = balanced).</summary>
    public double? ImbalanceRatio { get; set; }
}
