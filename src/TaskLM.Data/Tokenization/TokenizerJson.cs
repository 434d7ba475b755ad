// Reading and writing Hugging Face tokenizer files: tokenizer.json sections and tokenizer_config.json.
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace TaskLM.Data.Tokenization;

/// <summary>Names of a tokenizer's special tokens (HF's <c>bos_token</c>, <c>eos_token</c> ...); null when absent.</summary>
public sealed record TokenizerSpecials
{
    /// <summary><c>bos_token</c></summary>
    public string? Bos { get; init; }
    /// <summary><c>eos_token</c></summary>
    public string? Eos { get; init; }
    /// <summary><c>unk_token</c></summary>
    public string? Unk { get; init; }
    /// <summary><c>pad_token</c></summary>
    public string? Pad { get; init; }
    /// <summary><c>cls_token</c></summary>
    public string? Cls { get; init; }
    /// <summary><c>sep_token</c></summary>
    public string? Sep { get; init; }
    /// <summary><c>mask_token</c></summary>
    public string? Mask { get; init; }

    /// <summary>All set names with their HF keys.</summary>
    public IEnumerable<(string Key, string Token)> All()
    {
        if (Bos != null) yield return ("bos_token", Bos);
        if (Eos != null) yield return ("eos_token", Eos);
        if (Unk != null) yield return ("unk_token", Unk);
        if (Sep != null) yield return ("sep_token", Sep);
        if (Pad != null) yield return ("pad_token", Pad);
        if (Cls != null) yield return ("cls_token", Cls);
        if (Mask != null) yield return ("mask_token", Mask);
    }
}

/// <summary>What <c>tokenizer_config.json</c> (and <c>special_tokens_map.json</c>) say, where present.</summary>
public sealed record TokenizerConfig
{
    /// <summary><c>do_lower_case</c> (BERT); null = not given.</summary>
    public bool? DoLowerCase { get; init; }
    /// <summary><c>strip_accents</c> (BERT); null = follow lowercasing.</summary>
    public bool? StripAccents { get; init; }
    /// <summary><c>tokenize_chinese_chars</c> (BERT).</summary>
    public bool? TokenizeChineseChars { get; init; }
    /// <summary><c>model_max_length</c>, when a real limit (HF writes 1e30 for none).</summary>
    public int? ModelMaxLength { get; init; }
    /// <summary>Special token names given by the files.</summary>
    public TokenizerSpecials Given { get; init; } = new();
    /// <summary><c>added_tokens_decoder</c> entries marked special: content → id.</summary>
    public Dictionary<string, int> AddedSpecial { get; init; } = [];

    /// <summary>Reads the config files of <paramref name="directory"/>; an empty config when there are none.</summary>
    public static TokenizerConfig Read(string directory)
    {
        var cfg = new TokenizerConfig();
        var specials = new TokenizerSpecials();
        foreach (var name in new[] { "special_tokens_map.json", "tokenizer_config.json" })
        {
            var path = Path.Combine(directory, name);
            if (!File.Exists(path)) continue;
            JsonObject o;
            try { o = JsonNode.Parse(File.ReadAllText(path))?.AsObject() ?? throw new JsonException("not an object"); }
            catch (Exception e) when (e is JsonException or InvalidOperationException) { throw new FormatException($"{path}: {e.Message}", e); }
            string? Tok(string key) => o[key] switch
            {
                JsonValue v when v.TryGetValue<string>(out var s) => s,
                JsonObject t => t["content"]?.GetValue<string>(),
                _ => null,
            };
            specials = specials with
            {
                Bos = Tok("bos_token") ?? specials.Bos, Eos = Tok("eos_token") ?? specials.Eos, Unk = Tok("unk_token") ?? specials.Unk,
                Pad = Tok("pad_token") ?? specials.Pad, Cls = Tok("cls_token") ?? specials.Cls, Sep = Tok("sep_token") ?? specials.Sep,
                Mask = Tok("mask_token") ?? specials.Mask,
            };
            bool? Bool(string key) => o[key] is JsonValue v && v.TryGetValue<bool>(out var b) ? b : null;
            cfg = cfg with
            {
                DoLowerCase = Bool("do_lower_case") ?? cfg.DoLowerCase,
                StripAccents = Bool("strip_accents") ?? cfg.StripAccents,
                TokenizeChineseChars = Bool("tokenize_chinese_chars") ?? cfg.TokenizeChineseChars,
            };
            if (o["model_max_length"] is JsonValue ml && ml.TryGetValue<double>(out var d) && d > 0 && d < 1e9) cfg = cfg with { ModelMaxLength = (int)d };
            if (o["added_tokens_decoder"] is JsonObject atd)
                foreach (var (k, v) in atd)
                    if (v is JsonObject t && t["special"]?.GetValue<bool>() == true && t["content"]?.GetValue<string>() is string c && int.TryParse(k, out var id))
                        cfg.AddedSpecial[c] = id;
        }
        return cfg with { Given = specials };
    }

    /// <summary>Special-token names: those the files give, else the family's defaults where the vocabulary has them.</summary>
    internal TokenizerSpecials Names(IReadOnlyDictionary<string, int> vocab, bool gpt2)
    {
        string? Pick(string? given, string fallback) => given ?? (vocab.ContainsKey(fallback) ? fallback : null);
        return gpt2
            ? Given with { Bos = Pick(Given.Bos, "<|endoftext|>"), Eos = Pick(Given.Eos, "<|endoftext|>"), Unk = Pick(Given.Unk, "<|endoftext|>") }
            : Given with
            {
                Unk = Pick(Given.Unk, "[UNK]"), Sep = Pick(Given.Sep, "[SEP]"), Pad = Pick(Given.Pad, "[PAD]"),
                Cls = Pick(Given.Cls, "[CLS]"), Mask = Pick(Given.Mask, "[MASK]"),
            };
    }

    /// <summary>Special tokens (content → id) among <paramref name="vocab"/>: the named ones and <c>added_tokens_decoder</c>'s.</summary>
    internal Dictionary<string, int> SpecialTokensIn(IReadOnlyDictionary<string, int> vocab, bool defaultGpt2)
    {
        var result = new Dictionary<string, int>(AddedSpecial, StringComparer.Ordinal);
        foreach (var (_, t) in Names(vocab, defaultGpt2).All())
            if (vocab.TryGetValue(t, out var id)) result[t] = id;
        return result;
    }
}

/// <summary>Helpers for HF's tokenizer.json layout.</summary>
internal static class TokenizerJson
{
    /// <summary>Compact JSON that keeps non-ASCII characters as they are (as HF writes them).</summary>
    public static readonly JsonSerializerOptions Compact = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
    private static readonly JsonSerializerOptions Indented = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping, WriteIndented = true };

    /// <summary>Reads the <c>added_tokens</c> section: (content, id, special).</summary>
    public static List<(string Content, int Id, bool Special)> AddedTokens(JsonObject root)
    {
        var list = new List<(string, int, bool)>();
        foreach (var t in root["added_tokens"]?.AsArray() ?? [])
            list.Add((t!["content"]!.GetValue<string>(), t["id"]!.GetValue<int>(), t["special"]?.GetValue<bool>() ?? false));
        return list;
    }

    /// <summary>Writes a tokenizer.json with HF's top-level keys.</summary>
    public static void Write(string path, IEnumerable<(string Content, int Id, bool Special)> added, JsonNode? normalizer, JsonNode? preTokenizer,
        JsonNode? postProcessor, JsonNode? decoder, JsonObject model)
    {
        var root = new JsonObject
        {
            ["version"] = "1.0", ["truncation"] = null, ["padding"] = null,
            ["added_tokens"] = new JsonArray(added.Select(t => (JsonNode)new JsonObject
            {
                ["id"] = t.Id, ["content"] = t.Content, ["single_word"] = false, ["lstrip"] = false, ["rstrip"] = false,
                ["normalized"] = false, ["special"] = t.Special,
            }).ToArray()),
            ["normalizer"] = normalizer, ["pre_tokenizer"] = preTokenizer, ["post_processor"] = postProcessor, ["decoder"] = decoder,
            ["model"] = model,
        };
        File.WriteAllText(path, root.ToJsonString(Indented));
    }

    /// <summary>Writes tokenizer_config.json and special_tokens_map.json as transformers does.</summary>
    public static void WriteConfig(string directory, string tokenizerClass, TokenizerSpecials specials,
        IEnumerable<(string Content, int Id, bool Special)> added, int? modelMaxLength, JsonObject? extra = null)
    {
        var cfg = new JsonObject
        {
            ["tokenizer_class"] = tokenizerClass,
            ["model_max_length"] = modelMaxLength is int m ? m : 1000000000000000019884624838656.0,
            ["clean_up_tokenization_spaces"] = tokenizerClass.StartsWith("Bert"),
        };
        var map = new JsonObject();
        foreach (var (key, token) in specials.All()) { cfg[key] = token; map[key] = token; }
        foreach (var (k, v) in extra ?? []) cfg[k] = v?.DeepClone();
        cfg["added_tokens_decoder"] = new JsonObject(added.Select(t => KeyValuePair.Create(t.Id.ToString(), (JsonNode?)new JsonObject
        {
            ["content"] = t.Content, ["lstrip"] = false, ["normalized"] = false, ["rstrip"] = false, ["single_word"] = false, ["special"] = t.Special,
        })));
        File.WriteAllText(Path.Combine(directory, "tokenizer_config.json"), cfg.ToJsonString(Indented));
        File.WriteAllText(Path.Combine(directory, "special_tokens_map.json"), map.ToJsonString(Indented));
    }
}
