// BERT WordPiece: basic tokenizer + greedy longest-match "##" subwords, [CLS]/[SEP] template, offsets.
using System.Text;
using System.Text.Json.Nodes;

namespace TaskLM.Data.Tokenization;

/// <summary>
/// WordPiece as Hugging Face's BERT tokenizers do it: split special tokens out of the raw text, run
/// <see cref="BertPreTokenizer"/> on the rest, then cut each word greedily into the longest vocabulary pieces
/// (continuations prefixed "##"); a word with no full cut, or longer than 100 code points, becomes [UNK].
/// </summary>
public sealed class WordPieceTokenizer : ITokenizer
{
    private readonly Dictionary<string, int> _vocab;
    private readonly string?[] _idToToken;
    private readonly string[] _specialStrings;  // matched in raw text, longest first
    private readonly HashSet<int> _specialIds;

    /// <summary>Creates a WordPiece tokenizer over <paramref name="vocab"/> (token → id).</summary>
    public WordPieceTokenizer(Dictionary<string, int> vocab, BertNormalizerOptions normalizer, TokenizerSpecials? specials = null,
        SpecialTokensTemplate? template = null, IEnumerable<string>? extraSpecialTokens = null, string continuingSubwordPrefix = "##",
        int maxInputCharsPerWord = 100, int? modelMaxLength = null)
    {
        _vocab = new Dictionary<string, int>(vocab, StringComparer.Ordinal);
        _idToToken = new string?[vocab.Count == 0 ? 0 : vocab.Values.Max() + 1];
        foreach (var (t, id) in vocab) _idToToken[id] = t;
        Normalizer = normalizer;
        Specials = specials ?? new TokenizerSpecials { Unk = "[UNK]" };
        ContinuingSubwordPrefix = continuingSubwordPrefix;
        MaxInputCharsPerWord = maxInputCharsPerWord;
        ModelMaxLength = modelMaxLength;
        var specialSet = Specials.All().Select(s => s.Token).Concat(extraSpecialTokens ?? []).Where(_vocab.ContainsKey).ToHashSet();
        _specialStrings = [.. specialSet.OrderByDescending(s => s.Length)];
        _specialIds = [.. specialSet.Select(s => _vocab[s])];
        Template = template ?? (ClsTokenId is int c && SepTokenId is int s2 ? SpecialTokensTemplate.Bert(c, s2) : SpecialTokensTemplate.None);
    }

    /// <summary>Reads a BERT <c>vocab.txt</c> (one token per line, id = line index); <c>do_lower_case</c> etc. from <paramref name="config"/>
    /// (default: lowercase, as HF's BertTokenizer).</summary>
    public static WordPieceTokenizer FromVocabTxt(string path, TokenizerConfig? config = null)
    {
        config ??= new TokenizerConfig();
        var vocab = new Dictionary<string, int>(StringComparer.Ordinal);
        int id = 0;
        foreach (var line in File.ReadLines(path))
        {
            var tok = line.TrimEnd('\r');
            if (!vocab.ContainsKey(tok)) vocab[tok] = id;  // HF keeps the first id of a duplicate line
            id++;
        }
        if (vocab.Count == 0) throw new FormatException($"{path}: the vocabulary is empty");
        var norm = new BertNormalizerOptions(true, config.TokenizeChineseChars ?? true, config.StripAccents, config.DoLowerCase ?? true);
        return new WordPieceTokenizer(vocab, norm, config.Names(vocab, gpt2: false), null, config.AddedSpecial.Keys, modelMaxLength: config.ModelMaxLength);
    }

    /// <summary>Builds from an HF tokenizer.json whose model is WordPiece.</summary>
    internal static WordPieceTokenizer FromTokenizerJson(string path, JsonObject root, TokenizerConfig config)
    {
        var model = root["model"]!.AsObject();
        var vocab = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var (k, v) in model["vocab"]?.AsObject() ?? throw new FormatException($"{path}: model.vocab is missing")) vocab[k] = v!.GetValue<int>();
        var added = TokenizerJson.AddedTokens(root);
        foreach (var (c, id, _) in added) vocab[c] = id;

        BertNormalizerOptions norm;
        switch (root["normalizer"])
        {
            case null: norm = new BertNormalizerOptions(false, false, false, false); break;
            case JsonObject n when n["type"]?.GetValue<string>() == "BertNormalizer":
                norm = new BertNormalizerOptions(n["clean_text"]?.GetValue<bool>() ?? true, n["handle_chinese_chars"]?.GetValue<bool>() ?? true,
                    n["strip_accents"] is JsonValue sa ? sa.GetValue<bool>() : null, n["lowercase"]?.GetValue<bool>() ?? true);
                break;
            case JsonObject n: throw new NotSupportedException($"{path}: normalizer type '{n["type"]}' is not supported for WordPiece (BertNormalizer is)");
            default: throw new FormatException($"{path}: normalizer must be an object or null");
        }
        var pre = root["pre_tokenizer"]?["type"]?.GetValue<string>();
        if (pre is not null and not "BertPreTokenizer")
            throw new NotSupportedException($"{path}: pre_tokenizer type '{pre}' is not supported for WordPiece (BertPreTokenizer is)");

        SpecialTokensTemplate? template = SpecialTokensTemplate.None;
        var post = root["post_processor"] as JsonObject;
        switch (post?["type"]?.GetValue<string>())
        {
            case null: break;
            case "TemplateProcessing": template = ParseTemplate(path, post, vocab); break;
            case "BertProcessing":
                template = SpecialTokensTemplate.Bert(post["cls"]![1]!.GetValue<int>(), post["sep"]![1]!.GetValue<int>());
                break;
            case var t: throw new NotSupportedException($"{path}: post_processor type '{t}' is not supported (TemplateProcessing, BertProcessing are)");
        }
        var specials = config.Names(vocab, gpt2: false) with { Unk = model["unk_token"]?.GetValue<string>() ?? config.Given.Unk ?? "[UNK]" };
        return new WordPieceTokenizer(vocab, norm, specials, template, added.Where(a => a.Special).Select(a => a.Content),
            model["continuing_subword_prefix"]?.GetValue<string>() ?? "##", model["max_input_chars_per_word"]?.GetValue<int>() ?? 100,
            config.ModelMaxLength);
    }

    /// <summary>HF's TemplateProcessing post-processor (single and pair) as a template; ids from its special_tokens, else the vocabulary.</summary>
    internal static SpecialTokensTemplate ParseTemplate(string path, JsonObject post, IReadOnlyDictionary<string, int> vocab)
    {
        var specialIds = new Dictionary<string, IReadOnlyList<int>>();
        foreach (var (k, v) in post["special_tokens"]?.AsObject() ?? [])
            specialIds[k] = v!["ids"]!.AsArray().Select(x => x!.GetValue<int>()).ToList();
        List<TemplatePiece> Parse(string key) => post[key]!.AsArray().Select(p =>
        {
            if (p!["SpecialToken"] is JsonObject st)
            {
                var id = st["id"]!.GetValue<string>();
                var ids = specialIds.TryGetValue(id, out var l) ? l : vocab.TryGetValue(id, out var one) ? [one]
                    : throw new FormatException($"{path}: post_processor special token '{id}' has no id");
                return new TemplatePiece(ids, -1, st["type_id"]!.GetValue<int>());
            }
            var seq = p["Sequence"]!;
            return TemplatePiece.Seq(seq["id"]!.GetValue<string>() == "A" ? 0 : 1, seq["type_id"]!.GetValue<int>());
        }).ToList();
        return new SpecialTokensTemplate(Parse("single"), Parse("pair"));
    }

    /// <summary>Normalizer settings.</summary>
    public BertNormalizerOptions Normalizer { get; }
    /// <summary>Special token names.</summary>
    public TokenizerSpecials Specials { get; }
    /// <summary>What surrounds one text or a pair ([CLS] A [SEP] B [SEP] for BERT).</summary>
    public SpecialTokensTemplate Template { get; }
    /// <summary>Prefix of word-continuing pieces ("##").</summary>
    public string ContinuingSubwordPrefix { get; }
    /// <summary>Longer words (in code points) become [UNK].</summary>
    public int MaxInputCharsPerWord { get; }

    /// <inheritdoc/>
    public string Kind => "wordpiece";
    /// <inheritdoc/>
    public int VocabSize => _idToToken.Length;
    /// <inheritdoc/>
    public int? EosTokenId => Id(Specials.Eos ?? Specials.Sep);
    /// <inheritdoc/>
    public int? PadTokenId => Id(Specials.Pad);
    /// <inheritdoc/>
    public int? UnkTokenId => Id(Specials.Unk);
    /// <inheritdoc/>
    public int? ClsTokenId => Id(Specials.Cls);
    /// <inheritdoc/>
    public int? SepTokenId => Id(Specials.Sep);
    /// <inheritdoc/>
    public int? MaskTokenId => Id(Specials.Mask);
    /// <inheritdoc/>
    public int? BosTokenId => Id(Specials.Bos);
    /// <inheritdoc/>
    public int? ModelMaxLength { get; }

    private int? Id(string? t) => t != null && _vocab.TryGetValue(t, out var id) ? id : null;

    /// <inheritdoc/>
    public IReadOnlyList<int> Encode(string text) => EncodeWithOffsets(text).Select(t => t.Id).ToList();

    /// <summary>Encodes without the template, each token with its span in <paramref name="text"/> (UTF-16 indices).</summary>
    public IReadOnlyList<TokenSpan> EncodeWithOffsets(string text)
    {
        var result = new List<TokenSpan>();
        int pos = 0;
        while (pos < text.Length)
        {
            // Special tokens in the raw text are kept whole (HF's added tokens, normalized=false).
            int hit = -1; string? which = null;
            foreach (var s in _specialStrings)
            {
                int k = text.IndexOf(s, pos, StringComparison.Ordinal);
                if (k >= 0 && (hit < 0 || k < hit)) { hit = k; which = s; }
            }
            int end = hit < 0 ? text.Length : hit;
            if (end > pos)
                foreach (var w in BertPreTokenizer.Split(text[pos..end], Normalizer, pos)) AddWord(w, result);
            if (which == null) break;
            result.Add(new TokenSpan(_vocab[which], hit, hit + which.Length));
            pos = hit + which.Length;
        }
        return result;
    }

    private void AddWord(BertWord w, List<TokenSpan> into)
    {
        int n = w.Length;
        int unk = UnkTokenId ?? throw new InvalidOperationException($"the vocabulary has no unk token '{Specials.Unk}'");
        if (n > MaxInputCharsPerWord) { into.Add(new TokenSpan(unk, w.Spans[0].Start, w.Spans[^1].End)); return; }
        // Candidates are looked up as spans of one scratch buffer: "##" followed by the word's text.
        var lookup = _vocab.GetAlternateLookup<ReadOnlySpan<char>>();
        int p = ContinuingSubwordPrefix.Length;
        Span<char> buf = p + w.Text.Length <= 256 ? stackalloc char[p + w.Text.Length] : new char[p + w.Text.Length];
        ContinuingSubwordPrefix.AsSpan().CopyTo(buf);
        w.Text.AsSpan().CopyTo(buf[p..]);
        int mark = into.Count, start = 0;
        while (start < n)
        {
            int end = n, found = -1, s0 = w.RuneStart(start);
            while (end > start)
            {
                int e0 = w.RuneEnds[end - 1];
                // A continuation is "##" + text[s0..e0]: move the prefix right before s0 in the buffer.
                // (Those buffer cells held text before s0, already consumed.)
                if (start > 0) ContinuingSubwordPrefix.AsSpan().CopyTo(buf.Slice(s0, p));
                ReadOnlySpan<char> candidate = start == 0 ? buf.Slice(p, e0) : buf.Slice(s0, p + e0 - s0);
                if (lookup.TryGetValue(candidate, out var id)) { found = id; break; }
                end--;
            }
            if (found < 0)
            {
                into.RemoveRange(mark, into.Count - mark);
                into.Add(new TokenSpan(unk, w.Spans[0].Start, w.Spans[^1].End));
                return;
            }
            into.Add(new TokenSpan(found, w.Spans[start].Start, w.Spans[end - 1].End));
            start = end;
        }
    }

    /// <summary>[CLS] A [SEP] (B [SEP]) with token_type_ids, offsets, truncation and padding, as HF's BERT tokenizers.</summary>
    public TokenizedInput EncodeForModel(string text, string? pair = null, EncodeOptions? options = null) =>
        ModelInputBuilder.Build(EncodeWithOffsets(text), pair == null ? null : EncodeWithOffsets(pair), Template,
            options ?? new EncodeOptions(), PadTokenId ?? 0);

    /// <summary>HF's WordPiece decoder: "##" pieces glue to the previous token, others are space-separated, then
    /// the tokenization-space clean-up (" ." → "." ...).</summary>
    public string Decode(IEnumerable<int> ids, bool skipSpecialTokens = false)
    {
        var sb = new StringBuilder();
        bool first = true;
        foreach (var id in ids)
        {
            if (IdToToken(id) is not string tok) continue;
            if (skipSpecialTokens && _specialIds.Contains(id)) continue;
            if (!first && tok.StartsWith(ContinuingSubwordPrefix, StringComparison.Ordinal)) sb.Append(tok, ContinuingSubwordPrefix.Length, tok.Length - ContinuingSubwordPrefix.Length);
            else { if (!first) sb.Append(' '); sb.Append(tok); }
            first = false;
        }
        return sb.Replace(" .", ".").Replace(" ?", "?").Replace(" !", "!").Replace(" ,", ",").Replace(" ' ", "'").Replace(" n't", "n't")
            .Replace(" 'm", "'m").Replace(" do not", " don't").Replace(" 's", "'s").Replace(" 've", "'ve").Replace(" 're", "'re").ToString();
    }

    /// <inheritdoc/>
    public int? TokenToId(string token) => _vocab.TryGetValue(token, out var id) ? id : null;

    /// <inheritdoc/>
    public string? IdToToken(int id) => (uint)id < (uint)_idToToken.Length ? _idToToken[id] : null;

    /// <summary>Writes <c>vocab.txt</c>, <c>tokenizer.json</c>, <c>tokenizer_config.json</c> and <c>special_tokens_map.json</c>.</summary>
    public void Save(string directory)
    {
        Directory.CreateDirectory(directory);
        var sb = new StringBuilder();
        for (int id = 0; id < _idToToken.Length; id++) sb.Append(_idToToken[id] ?? $"[unused{id}]").Append('\n');
        File.WriteAllText(Path.Combine(directory, "vocab.txt"), sb.ToString());

        var added = _specialIds.Order().Select(id => (_idToToken[id]!, id, true)).ToList();
        var vocab = new JsonObject();
        for (int id = 0; id < _idToToken.Length; id++) if (_idToToken[id] is string t) vocab[t] = id;
        var normalizer = new JsonObject
        {
            ["type"] = "BertNormalizer", ["clean_text"] = Normalizer.CleanText, ["handle_chinese_chars"] = Normalizer.HandleChineseChars,
            ["strip_accents"] = Normalizer.StripAccents, ["lowercase"] = Normalizer.Lowercase,
        };
        JsonObject? post = null;
        if (Template.Count(false) > 0)
        {
            JsonArray Pieces(IReadOnlyList<TemplatePiece> ps) => new(ps.Select(p => (JsonNode)(p.SpecialIds != null
                ? new JsonObject { ["SpecialToken"] = new JsonObject { ["id"] = _idToToken[p.SpecialIds[0]], ["type_id"] = p.TypeId } }
                : new JsonObject { ["Sequence"] = new JsonObject { ["id"] = p.Sequence == 0 ? "A" : "B", ["type_id"] = p.TypeId } })).ToArray());
            var specialMap = new JsonObject();
            foreach (var id in Template.Pair.Concat(Template.Single).Where(p => p.SpecialIds != null).SelectMany(p => p.SpecialIds!).Distinct())
                specialMap[_idToToken[id]!] = new JsonObject { ["id"] = _idToToken[id], ["ids"] = new JsonArray(id), ["tokens"] = new JsonArray(_idToToken[id]) };
            post = new JsonObject { ["type"] = "TemplateProcessing", ["single"] = Pieces(Template.Single), ["pair"] = Pieces(Template.Pair), ["special_tokens"] = specialMap };
        }
        var model = new JsonObject
        {
            ["type"] = "WordPiece", ["unk_token"] = Specials.Unk, ["continuing_subword_prefix"] = ContinuingSubwordPrefix,
            ["max_input_chars_per_word"] = MaxInputCharsPerWord, ["vocab"] = vocab,
        };
        TokenizerJson.Write(Path.Combine(directory, "tokenizer.json"), added, normalizer, new JsonObject { ["type"] = "BertPreTokenizer" }, post,
            new JsonObject { ["type"] = "WordPiece", ["prefix"] = ContinuingSubwordPrefix, ["cleanup"] = true }, model);
        TokenizerJson.WriteConfig(directory, "BertTokenizer", Specials, added, ModelMaxLength, new JsonObject
        {
            ["do_lower_case"] = Normalizer.Lowercase, ["strip_accents"] = Normalizer.StripAccents, ["tokenize_chinese_chars"] = Normalizer.HandleChineseChars,
        });
    }
}
