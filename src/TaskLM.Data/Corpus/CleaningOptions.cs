// What `tasklm data clean` does, as data: every step's switch and setting, readable from a recipe's `clean:` block.
using System.Text.Json;
using System.Text.Json.Serialization;

namespace TaskLM.Data.Corpus;

/// <summary>Settings of the cleaning pipeline. In a recipe or a JSON file the keys are the snake_case
/// property names (<c>strip_html</c>, <c>near_dedup</c>: {<c>threshold</c>, <c>shingles</c>, ...}); unknown keys fail.</summary>
public sealed class CleaningOptions
{
    /// <summary>Field holding the text to clean (written back in place).</summary>
    public string TextColumn { get; set; } = "text";

    /// <summary>Field holding the label, for validation and the class balance report; null = no labels.
    /// When the first row has no such field, label checks are skipped and the report says so.</summary>
    public string? LabelColumn { get; set; } = "label";

    /// <summary>The allowed labels; rows with any other label are removed as unknown. Null = any label.
    /// When set, a missing label column is an error.</summary>
    public List<string>? Labels { get; set; }

    /// <summary>Remove rows whose label is missing or empty (when a label column is in use).</summary>
    public bool DropMissingLabels { get; set; } = true;

    /// <summary>Remove a leading RFC 822 header block (and MIME part headers, boundaries, base64 blobs).</summary>
    public bool EmailHeaders { get; set; } = true;

    /// <summary>When removing headers, keep the Subject's value as the first line of the text.</summary>
    public bool EmailKeepSubject { get; set; } = true;

    /// <summary>Remove quoted replies ("&gt; ..." lines, their "On ... wrote:" line, "-----Original Message-----" and below).</summary>
    public bool EmailQuotes { get; set; } = true;

    /// <summary>Remove signatures ("-- " delimiter and below) and mailing-list footers near the end.</summary>
    public bool EmailSignatures { get; set; } = true;

    /// <summary>Strip HTML tags, scripts, styles and comments and decode entities (only where HTML tags occur).</summary>
    public bool StripHtml { get; set; } = true;

    /// <summary>Unicode NFKC normalisation (compatibility forms: ligatures, full-width letters, ...).</summary>
    public bool Nfkc { get; set; } = true;

    /// <summary>Line endings to \n, control and zero-width characters removed, runs of spaces and blank lines collapsed.</summary>
    public bool Whitespace { get; set; } = true;

    /// <summary>Replace e-mail addresses with <see cref="EmailMask"/>.</summary>
    public bool MaskEmails { get; set; }

    /// <summary>Replace URLs with <see cref="UrlMask"/>.</summary>
    public bool MaskUrls { get; set; }

    /// <summary>Replace phone numbers with <see cref="PhoneMask"/>.</summary>
    public bool MaskPhones { get; set; }

    /// <summary>Replacement for e-mail addresses.</summary>
    public string EmailMask { get; set; } = "[EMAIL]";

    /// <summary>Replacement for URLs.</summary>
    public string UrlMask { get; set; } = "[URL]";

    /// <summary>Replacement for phone numbers.</summary>
    public string PhoneMask { get; set; } = "[PHONE]";

    /// <summary>Remove rows whose cleaned text has fewer characters (1 = drop empty texts).</summary>
    public int MinChars { get; set; } = 1;

    /// <summary>Remove rows whose cleaned text has more characters; 0 = no limit.</summary>
    public int MaxChars { get; set; }

    /// <summary>Remove rows with fewer tokens; 0 = no limit. Tokens come from <see cref="TokenCounter"/>.</summary>
    public int MinTokens { get; set; }

    /// <summary>Remove rows with more tokens; 0 = no limit.</summary>
    public int MaxTokens { get; set; }

    /// <summary>Counts a text's tokens for the token-length filters (a tokenizer's Encode(...).Count);
    /// null = whitespace-separated words.</summary>
    [JsonIgnore]
    public Func<string, int>? TokenCounter { get; set; }

    /// <summary>Remove rows whose normalised text (lower-cased, whitespace collapsed) equals an earlier row's.</summary>
    public bool ExactDedup { get; set; } = true;

    /// <summary>Near-duplicate removal with MinHash + LSH; null = off.</summary>
    public NearDuplicateOptions? NearDedup { get; set; } = new();

    /// <summary>Examples kept per step in the report.</summary>
    public int ExamplesPerStep { get; set; } = 3;

    /// <summary>Worker threads for the per-row work; 0 = all cores.</summary>
    public int Threads { get; set; }

    /// <summary>Write an empty output when every row is removed (or the input has none) instead of failing.</summary>
    public bool AllowEmpty { get; set; }

    /// <summary>Checks every numeric setting's range; the message names the key (snake_case, as in a recipe's
    /// <c>clean:</c> block, and the command-line flag).</summary>
    public void Validate()
    {
        static void AtLeast(string key, long value, long min)
        {
            if (value < min)
                throw new ArgumentException($"{key} (--{key.Replace('_', '-')}) must be ≥ {min}, got {value}");
        }
        AtLeast("min_chars", MinChars, 0);
        AtLeast("max_chars", MaxChars, 0);
        AtLeast("min_tokens", MinTokens, 0);
        AtLeast("max_tokens", MaxTokens, 0);
        AtLeast("examples_per_step", ExamplesPerStep, 0);
        AtLeast("threads", Threads, 0);
        if (MaxChars > 0 && MaxChars < MinChars) throw new ArgumentException($"max_chars ({MaxChars}) is below min_chars ({MinChars}): every row would be removed");
        if (MaxTokens > 0 && MaxTokens < MinTokens) throw new ArgumentException($"max_tokens ({MaxTokens}) is below min_tokens ({MinTokens}): every row would be removed");
        if (Labels is { Count: 0 }) throw new ArgumentException("labels is an empty list: every labelled row would be removed (leave it out to allow any label)");
        if (NearDedup is { } nd)
        {
            if (nd.Threshold is <= 0 or > 1 || double.IsNaN(nd.Threshold)) throw new ArgumentException($"near_dedup.threshold must be in (0, 1], got {nd.Threshold}");
            if (nd.ShingleSize < 1) throw new ArgumentException($"near_dedup.shingle_size (--shingle-size) must be ≥ 1, got {nd.ShingleSize}");
            if (nd.NumPerm < 1) throw new ArgumentException($"near_dedup.num_perm (--num-perm) must be ≥ 1, got {nd.NumPerm}");
        }
    }

    /// <summary>Reads options from JSON with snake_case keys; unknown keys and wrong types are errors naming the key.</summary>
    public static CleaningOptions FromJson(string json, string source = "clean options")
    {
        try
        {
            return JsonSerializer.Deserialize<CleaningOptions>(json, JsonOptions)
                   ?? throw new InvalidDataException($"{source}: expected a JSON object");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{source}: {e.Message}", e);
        }
    }

    /// <summary>The options as JSON (what the report records as the settings used).</summary>
    public string ToJson() => JsonSerializer.Serialize(this, JsonOptions);

    internal static readonly JsonSerializerOptions JsonOptions = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower) },
        WriteIndented = true,
    };
}
