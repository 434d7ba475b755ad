// SentencePiece-style BPE from tokenizer.json (Llama 2, Mistral, TinyLlama): "▁" for spaces, merges over characters,
// byte fallback to <0xNN> tokens, and the normalizer / Metaspace / decoder steps those files use, as HF's tokenizers runs them.
using System.Collections.Concurrent;
using System.Text;
using System.Text.Json.Nodes;

namespace TaskLM.Data.Tokenization;

/// <summary>
/// BPE over characters, the way HF's <c>tokenizers</c> runs a SentencePiece-converted tokenizer.json: split added tokens
/// out of the raw text, normalize each remaining piece (Prepend, Replace), pre-tokenize (Metaspace or none), then merge
/// each piece's characters by rank; a character missing from the vocabulary becomes its UTF-8 bytes as <c>&lt;0xNN&gt;</c>
/// tokens (byte_fallback), or unk. Decoding runs the file's decoder chain (Replace, ByteFallback, Fuse, Strip, Metaspace).
/// Any other step is refused, naming it and the file. Thread-safe.
/// </summary>
public sealed class SentencePieceBpeTokenizer : ITokenizer
{
    private readonly Dictionary<string, int> _vocab;        // model vocabulary and added tokens (TokenToId)
    private readonly Dictionary<string, int> _modelVocab;   // what the BPE model itself looks up, as in HF
    private readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _lookup;
    private readonly string?[] _idToToken;
    private readonly Dictionary<long, (int Rank, int Id)> _merges = [];
    private readonly int[] _byteIds = new int[256];   // id of <0xNN>, -1 when absent
    private readonly int? _unkId;
    private readonly string? _unkToken;
    private readonly bool _fuseUnk, _byteFallback, _ignoreMerges;
    private readonly List<NormStep> _normalizer;
    private readonly Metaspace? _metaspace;
    private readonly List<DecodeStep>? _decoder;       // null: HF joins the tokens with spaces
    private readonly (string Text, int Id)[] _rawAdded, _normAdded;   // matched before / after normalization
    private readonly HashSet<int> _specialIds;
    private readonly JsonObject _root;                 // saved back as read
    private readonly ConcurrentDictionary<string, Piece[]> _cache = new(StringComparer.Ordinal);
    private const int MaxCache = 100_000, MaxCachedLength = 256;   // HF caches words shorter than 256 bytes too

    private abstract record NormStep;
    private sealed record PrependStep(string Text) : NormStep;
    private sealed record ReplaceStep(string Pattern, string Content) : NormStep;
    private enum PrependScheme { Always, First, Never }
    private sealed record Metaspace(string Replacement, PrependScheme Scheme, bool Split);
    private abstract record DecodeStep;
    private sealed record DecReplace(string Pattern, string Content) : DecodeStep;
    private sealed record DecByteFallback : DecodeStep;
    private sealed record DecFuse : DecodeStep;
    private sealed record DecStrip(int Content, int Start, int Stop) : DecodeStep;
    private sealed record DecMetaspace(string Replacement, bool DropFirst) : DecodeStep;

    /// <summary>One token of a piece: its id and its UTF-8 byte range in the piece (HF's Word offsets).</summary>
    private readonly record struct Piece(int Id, int ByteStart, int ByteEnd);

    /// <summary>Text with, for each UTF-16 unit, the span of the original text it came from (HF's NormalizedString alignments).</summary>
    private sealed class Aligned(string text, (int Start, int End)[] align)
    {
        public string Text = text;
        public (int Start, int End)[] Align = align;

        public static Aligned Of(string original, int start, int end)
        {
            var a = new (int, int)[end - start];
            for (int i = start; i < end; i++)
                a[i - start] = char.IsHighSurrogate(original[i]) && i + 1 < end ? (i, i + 2) : char.IsLowSurrogate(original[i]) && i > start ? (i - 1, i + 1) : (i, i + 1);
            return new Aligned(original[start..end], a);
        }

        public Aligned Slice(int start, int end) => new(Text[start..end], Align[start..end]);

        /// <summary>HF's prepend: the new characters take the alignment of the first character.</summary>
        public void Prepend(string s)
        {
            if (Text.Length == 0) return;
            Text = s + Text;
            Align = [.. Enumerable.Repeat(Align[0], s.Length), .. Align];
        }

        /// <summary>HF's replace: every non-overlapping match (leftmost first) becomes <paramref name="content"/>, whose
        /// characters take the alignment of the match's last character (transform_range's rule for inserted chars).</summary>
        public void Replace(string pattern, string content)
        {
            int k = Text.IndexOf(pattern, StringComparison.Ordinal);
            if (k < 0) return;
            var sb = new StringBuilder(Text.Length);
            var al = new List<(int, int)>(Align.Length);
            int pos = 0;
            while (k >= 0)
            {
                sb.Append(Text, pos, k - pos);
                for (int i = pos; i < k; i++) al.Add(Align[i]);
                sb.Append(content);
                for (int i = 0; i < content.Length; i++) al.Add(Align[k + pattern.Length - 1]);
                pos = k + pattern.Length;
                k = Text.IndexOf(pattern, pos, StringComparison.Ordinal);
            }
            sb.Append(Text, pos, Text.Length - pos);
            for (int i = pos; i < Text.Length; i++) al.Add(Align[i]);
            Text = sb.ToString();
            Align = [.. al];
        }
    }

    private SentencePieceBpeTokenizer(JsonObject root, Dictionary<string, int> modelVocab, Dictionary<string, int> vocab, IReadOnlyList<(string A, string B)> merges,
        string? unk, bool fuseUnk, bool byteFallback, bool ignoreMerges, List<NormStep> normalizer, Metaspace? metaspace,
        List<DecodeStep>? decoder, List<(string Content, int Id, bool Special, bool Normalized)> added, SpecialTokensTemplate template,
        TokenizerSpecials names, int? modelMaxLength)
    {
        _root = root;
        _vocab = vocab;
        _modelVocab = modelVocab;
        _lookup = modelVocab.GetAlternateLookup<ReadOnlySpan<char>>();
        _idToToken = new string?[vocab.Count == 0 ? 0 : vocab.Values.Max() + 1];
        foreach (var (t, id) in vocab) _idToToken[id] = t;
        for (int r = 0; r < merges.Count; r++)
        {
            var (a, b) = merges[r];
            if (!modelVocab.TryGetValue(a, out var ia) || !modelVocab.TryGetValue(b, out var ib) || !modelVocab.TryGetValue(a + b, out var im))
                throw new FormatException($"merge {r + 1} ('{a} {b}') uses a token that is not in the vocabulary");
            _merges[((long)ia << 32) | (uint)ib] = (r, im);   // HF collects the merges into a map: a repeated pair keeps its last rank
        }
        for (int b = 0; b < 256; b++) _byteIds[b] = modelVocab.TryGetValue($"<0x{b:X2}>", out var id) ? id : -1;
        _unkToken = unk;
        _unkId = unk != null && modelVocab.TryGetValue(unk, out var u) ? u : null;
        _fuseUnk = fuseUnk;
        _byteFallback = byteFallback;
        _ignoreMerges = ignoreMerges;
        _normalizer = normalizer;
        _metaspace = metaspace;
        _decoder = decoder;
        // HF matches added tokens leftmost-longest; longest first here so that the first hit at a position is the longest.
        _rawAdded = [.. added.Where(t => !t.Normalized).OrderByDescending(t => t.Content.Length).Select(t => (t.Content, t.Id))];
        _normAdded = [.. added.Where(t => t.Normalized).OrderByDescending(t => t.Content.Length).Select(t => (t.Content, t.Id))];
        _specialIds = [.. added.Where(t => t.Special).Select(t => t.Id)];
        Template = template;
        Specials = names;
        ModelMaxLength = modelMaxLength;
    }

    /// <summary>The post-processor's special tokens around a text or a pair (Llama 2: <c>&lt;s&gt;</c> first).</summary>
    public SpecialTokensTemplate Template { get; }
    /// <summary>The names of the special tokens (bos, eos, unk ...).</summary>
    public TokenizerSpecials Specials { get; }
    /// <summary>Ids of the added special tokens (skipped by Decode(skipSpecialTokens)).</summary>
    public IReadOnlySet<int> SpecialTokenIds => _specialIds;

    /// <summary>Builds from a BPE tokenizer.json with no ByteLevel step; a step other than those above is refused.</summary>
    internal static SentencePieceBpeTokenizer FromTokenizerJson(string path, JsonObject root, TokenizerConfig config)
    {
        string? Type(JsonNode? n) => n?["type"]?.GetValue<string>();
        NotSupportedException Refuse(string what) => new($"{path}: {what} is not supported for SentencePiece-style BPE");
        var model = root["model"]!.AsObject();
        if (model["dropout"] is JsonValue dv && dv.GetValue<double>() != 0) throw Refuse("model.dropout");
        if (model["continuing_subword_prefix"] is JsonValue) throw Refuse("model.continuing_subword_prefix");
        if (model["end_of_word_suffix"] is JsonValue) throw Refuse("model.end_of_word_suffix");
        var vocab = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var (k, v) in model["vocab"]?.AsObject() ?? throw new FormatException($"{path}: model.vocab is missing"))
            vocab[k] = v!.GetValue<int>();
        var merges = new List<(string, string)>();
        int i = 0;
        foreach (var m in model["merges"]?.AsArray() ?? [])
        {
            // Older files store "a b", newer ones ["a", "b"] ("▁" stands for the space, so "a b" splits cleanly).
            if (m is JsonArray pair && pair.Count == 2) merges.Add((pair[0]!.GetValue<string>(), pair[1]!.GetValue<string>()));
            else if (m is JsonValue s && s.GetValue<string>().Split(' ') is { Length: 2 } p) merges.Add((p[0], p[1]));
            else throw new FormatException($"{path}: model.merges[{i}] is neither \"a b\" nor [\"a\", \"b\"]");
            i++;
        }
        var added = new List<(string Content, int Id, bool Special, bool Normalized)>();
        foreach (var t in root["added_tokens"]?.AsArray() ?? [])
        {
            string content = t!["content"]!.GetValue<string>();
            bool special = t["special"]?.GetValue<bool>() ?? false;
            foreach (var flag in new[] { "single_word", "lstrip", "rstrip" })
                if (t[flag]?.GetValue<bool>() == true) throw Refuse($"added token '{content}' with {flag}=true");
            added.Add((content, t["id"]!.GetValue<int>(), special, t["normalized"]?.GetValue<bool>() ?? !special));
        }
        var modelVocab = new Dictionary<string, int>(vocab, StringComparer.Ordinal);
        foreach (var (content, id, _, _) in added) vocab[content] = id;

        // normalizer: Prepend and Replace (string patterns), alone or in a Sequence (nested ones flatten).
        var norm = new List<NormStep>();
        void Normalizer(JsonNode? n)
        {
            switch (Type(n))
            {
                case null when n == null: break;
                case "Sequence": foreach (var s in n!["normalizers"]!.AsArray()) Normalizer(s); break;
                case "Prepend": norm.Add(new PrependStep(n!["prepend"]!.GetValue<string>())); break;
                case "Replace": norm.Add(new ReplaceStep(StringPattern(n!, "normalizer Replace"), n!["content"]!.GetValue<string>())); break;
                case var t: throw Refuse($"normalizer '{t}'");
            }
        }
        string StringPattern(JsonNode n, string where) => n["pattern"]?["String"]?.GetValue<string>() is { Length: > 0 } s ? s
            : throw Refuse($"{where} with pattern {n["pattern"]?.ToJsonString()} (only a non-empty String pattern is)");
        Normalizer(root["normalizer"]);

        // pre_tokenizer: none (Llama 2's legacy files: the whole normalized text is one word) or Metaspace.
        Metaspace? meta = null;
        var pre = root["pre_tokenizer"];
        if (Type(pre) == "Sequence" && pre!["pretokenizers"] is JsonArray one && one.Count == 1) pre = one[0];
        switch (Type(pre))
        {
            case null when pre == null: break;
            case "Metaspace":
                meta = new Metaspace(ReadChar(pre!["replacement"], "pre_tokenizer Metaspace replacement"), ReadScheme(pre!, "pre_tokenizer"),
                    pre!["split"]?.GetValue<bool>() ?? true);
                break;
            case var t: throw Refuse($"pre_tokenizer '{t}'");
        }
        string ReadChar(JsonNode? n, string where) => n?.GetValue<string>() is string s && s.EnumerateRunes().Count() == 1 ? s
            : throw new FormatException($"{path}: {where} must be one character");
        PrependScheme ReadScheme(JsonNode n, string where)
        {
            // Older files say add_prefix_space; HF reads false as "never" and true (or nothing) as the default "always".
            var scheme = n["prepend_scheme"]?.GetValue<string>() switch
            {
                null or "always" => PrependScheme.Always, "first" => PrependScheme.First, "never" => PrependScheme.Never,
                var s => throw new FormatException($"{path}: {where} Metaspace prepend_scheme '{s}' (always, first, never)"),
            };
            if (n["add_prefix_space"]?.GetValue<bool>() == false)
            {
                if (n["prepend_scheme"] is JsonValue && scheme != PrependScheme.Never)
                    throw new FormatException($"{path}: {where} Metaspace add_prefix_space does not match declared prepend_scheme");
                scheme = PrependScheme.Never;
            }
            return scheme;
        }

        // decoder: the chain of steps, run over the token strings in order.
        List<DecodeStep>? dec = root["decoder"] == null ? null : [];
        void Decoder(JsonNode? n)
        {
            switch (Type(n))
            {
                case "Sequence": foreach (var s in n!["decoders"]!.AsArray()) Decoder(s); break;
                case "Replace": dec!.Add(new DecReplace(StringPattern(n!, "decoder Replace"), n!["content"]!.GetValue<string>())); break;
                case "ByteFallback": dec!.Add(new DecByteFallback()); break;
                case "Fuse": dec!.Add(new DecFuse()); break;
                case "Strip":
                    dec!.Add(new DecStrip(char.ConvertToUtf32(ReadChar(n!["content"], "decoder Strip content"), 0),
                        n!["start"]?.GetValue<int>() ?? 0, n!["stop"]?.GetValue<int>() ?? 0));
                    break;
                case "Metaspace":
                    dec!.Add(new DecMetaspace(ReadChar(n!["replacement"], "decoder Metaspace replacement"), ReadScheme(n!, "decoder") != PrependScheme.Never));
                    break;
                case var t: throw Refuse($"decoder '{t}'");
            }
        }
        if (root["decoder"] != null) Decoder(root["decoder"]);

        var template = SpecialTokensTemplate.None;
        switch (root["post_processor"])
        {
            case null: break;
            case JsonObject pp when Type(pp) == "TemplateProcessing": template = WordPieceTokenizer.ParseTemplate(path, pp, vocab); break;
            case var pp: throw Refuse($"post_processor '{Type(pp)}'");
        }

        string? unk = model["unk_token"]?.GetValue<string>();
        if (unk != null && !modelVocab.ContainsKey(unk)) throw new FormatException($"{path}: model.unk_token '{unk}' is not in model.vocab");
        string? Pick(string? given, string fallback) => given ?? (vocab.ContainsKey(fallback) ? fallback : null);
        var names = config.Given with { Bos = Pick(config.Given.Bos, "<s>"), Eos = Pick(config.Given.Eos, "</s>"), Unk = config.Given.Unk ?? unk };
        try
        {
            return new SentencePieceBpeTokenizer(root, modelVocab, vocab, merges, unk, model["fuse_unk"]?.GetValue<bool>() ?? false,
                model["byte_fallback"]?.GetValue<bool>() ?? false, model["ignore_merges"]?.GetValue<bool>() ?? false, norm, meta, dec,
                added, template, names, config.ModelMaxLength);
        }
        catch (FormatException e) { throw new FormatException($"{path}: {e.Message}", e); }   // a merge outside the vocabulary
    }

    /// <inheritdoc/>
    public string Kind => "sentencepiece-bpe";
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

    private int? Id(string? token) => token != null && _vocab.TryGetValue(token, out var id) ? id : null;

    /// <inheritdoc/>
    public int? TokenToId(string token) => _vocab.TryGetValue(token, out var id) ? id : null;

    /// <inheritdoc/>
    public string? IdToToken(int id) => (uint)id < (uint)_idToToken.Length ? _idToToken[id] : null;

    /// <inheritdoc/>
    public IReadOnlyList<int> Encode(string text) => EncodeWithOffsets(text).Select(t => t.Id).ToList();

    /// <summary>Encodes to ids with character offsets (UTF-16 indices into <paramref name="text"/>; a byte token covers its whole character).</summary>
    public IReadOnlyList<TokenSpan> EncodeWithOffsets(string text)
    {
        var spans = new List<TokenSpan>();
        if (text.Length == 0) return spans;
        text = ReplaceLoneSurrogates(text);
        // 1. added tokens whose normalized=false are found in the raw text; 2. the rest is normalized piece by piece
        // (so Prepend("▁") acts after every special token, as in HF); 3. normalized=true added tokens are found in that.
        foreach (var (s, e, id) in SplitAdded(text, _rawAdded))
        {
            if (id >= 0) { spans.Add(new TokenSpan(id, s, e)); continue; }
            var piece = Aligned.Of(text, s, e);
            foreach (var step in _normalizer)
                if (step is PrependStep p) piece.Prepend(p.Text);
                else if (step is ReplaceStep r) piece.Replace(r.Pattern, r.Content);
            foreach (var (ns, ne, nid) in SplitAdded(piece.Text, _normAdded))
            {
                if (nid >= 0) { spans.Add(new TokenSpan(nid, piece.Align[ns].Start, piece.Align[ne - 1].End)); continue; }
                foreach (var word in PreTokenize(piece.Slice(ns, ne))) Model(word, spans);
            }
        }
        return spans;
    }

    /// <summary>Lone surrogates as U+FFFD (one unit for one, so offsets still hold), as UTF-8 encoding treats them.</summary>
    private static string ReplaceLoneSurrogates(string text)
    {
        char[]? chars = null;
        for (int i = 0; i < text.Length; i++)
        {
            if (!char.IsSurrogate(text[i])) continue;
            if (char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1])) { i++; continue; }
            (chars ??= text.ToCharArray())[i] = '\ufffd';
        }
        return chars == null ? text : new string(chars);
    }

    /// <summary>Cuts <paramref name="text"/> around the added tokens, leftmost-longest as HF's trie does: (start, end, id or -1).</summary>
    private static List<(int Start, int End, int Id)> SplitAdded(string text, (string Text, int Id)[] tokens)
    {
        var result = new List<(int, int, int)>();
        if (tokens.Length == 0) { if (text.Length > 0) result.Add((0, text.Length, -1)); return result; }
        var next = new int[tokens.Length];   // next occurrence of each token at or after pos (-1: none left)
        for (int k = 0; k < tokens.Length; k++) next[k] = tokens[k].Text.Length == 0 ? -1 : text.IndexOf(tokens[k].Text, StringComparison.Ordinal);
        int pos = 0;
        while (true)
        {
            int hit = -1, best = -1;
            for (int k = 0; k < tokens.Length; k++)
            {
                if (next[k] >= 0 && next[k] < pos) next[k] = text.IndexOf(tokens[k].Text, pos, StringComparison.Ordinal);
                if (next[k] >= 0 && (hit < 0 || next[k] < hit)) { hit = next[k]; best = k; }
            }
            if (hit < 0) break;
            if (hit > pos) result.Add((pos, hit, -1));
            result.Add((hit, hit + tokens[best].Text.Length, tokens[best].Id));
            pos = hit + tokens[best].Text.Length;
        }
        if (pos < text.Length) result.Add((pos, text.Length, -1));
        return result;
    }

    /// <summary>HF's Metaspace: spaces become the replacement, which is prepended per the scheme ("first": only to the piece
    /// that starts the original text), then with split the piece is cut before every replacement (MergedWithNext).</summary>
    private IEnumerable<Aligned> PreTokenize(Aligned piece)
    {
        if (piece.Text.Length == 0) yield break;
        if (_metaspace is not { } m) { yield return piece; yield break; }
        piece.Replace(" ", m.Replacement);
        bool prepend = m.Scheme switch
        {
            PrependScheme.Always => !piece.Text.StartsWith(m.Replacement, StringComparison.Ordinal),
            PrependScheme.First => !piece.Text.StartsWith(m.Replacement, StringComparison.Ordinal) && piece.Align[0].Start == 0,
            _ => false,
        };
        if (prepend) piece.Prepend(m.Replacement);
        if (!m.Split) { yield return piece; yield break; }
        int start = 0;
        for (int k = piece.Text.IndexOf(m.Replacement, 1, StringComparison.Ordinal); k > 0; k = piece.Text.IndexOf(m.Replacement, k + 1, StringComparison.Ordinal))
        {
            if (k > start) yield return piece.Slice(start, k);
            start = k;
        }
        if (start < piece.Text.Length) yield return piece.Slice(start, piece.Text.Length);
    }

    /// <summary>Runs the BPE model on one pre-tokenized word and appends its tokens with original-text spans.</summary>
    private void Model(Aligned word, List<TokenSpan> spans)
    {
        var w = word.Text;
        if (w.Length == 0) return;
        var pieces = Word(w);
        // Byte offsets in the word → its UTF-16 units → the original text (HF: alignments of the first and last byte).
        var unitOfByte = new int[Encoding.UTF8.GetByteCount(w) + 1];
        var unitEnd = new int[unitOfByte.Length];
        for (int u = 0, b = 0; u < w.Length;)
        {
            int len = char.IsHighSurrogate(w[u]) && u + 1 < w.Length ? 2 : 1;
            int nb = len == 2 ? 4 : w[u] < 0x80 ? 1 : w[u] < 0x800 ? 2 : 3;
            for (int k = 0; k < nb; k++) { unitOfByte[b + k] = u; unitEnd[b + k] = u + len; }
            b += nb; u += len;
        }
        foreach (var p in pieces)
        {
            if (p.ByteEnd <= p.ByteStart) continue;
            spans.Add(new TokenSpan(p.Id, word.Align[unitOfByte[p.ByteStart]].Start, word.Align[unitEnd[p.ByteEnd - 1] - 1].End));
        }
    }

    /// <summary>HF's BPE merge_word (+ ignore_merges and the cache): one symbol per character, or its bytes as
    /// <c>&lt;0xNN&gt;</c> (byte_fallback), or unk (fused with the previous unk when fuse_unk); then merges by rank.</summary>
    private Piece[] Word(string w)
    {
        if (_cache.TryGetValue(w, out var cached)) return cached;
        int totalBytes = Encoding.UTF8.GetByteCount(w);
        if (_ignoreMerges && _modelVocab.TryGetValue(w, out int whole)) return [new Piece(whole, 0, totalBytes)];
        var ids = new List<int>(w.Length);
        var lens = new List<int>(w.Length);    // byte length each symbol covers, in the order HF adds them
        int unk = -1, unkLen = 0;
        Span<byte> buf = stackalloc byte[4];
        for (int i = 0; i < w.Length;)
        {
            int n = char.IsHighSurrogate(w[i]) && i + 1 < w.Length ? 2 : 1;
            var ch = w.AsSpan(i, n);
            i += n;
            int byteLen = Encoding.UTF8.GetBytes(ch, buf);
            if (_lookup.TryGetValue(ch, out int id))
            {
                if (unk >= 0) { ids.Add(unk); lens.Add(unkLen); unk = -1; }
                ids.Add(id); lens.Add(byteLen);
                continue;
            }
            if (_byteFallback)
            {
                bool all = true;
                for (int k = 0; k < byteLen; k++) all &= _byteIds[buf[k]] >= 0;
                if (all)
                {
                    // As in HF, a pending unk is not flushed first: it lands after these bytes.
                    for (int k = 0; k < byteLen; k++) { ids.Add(_byteIds[buf[k]]); lens.Add(1); }
                    continue;
                }
            }
            if (_unkToken == null) continue;   // HF drops the character when there is no unk token
            if (unk >= 0 && _fuseUnk) { unkLen += byteLen; continue; }
            if (unk >= 0) { ids.Add(unk); lens.Add(unkLen); }
            unk = _unkId!.Value; unkLen = byteLen;
        }
        if (unk >= 0) { ids.Add(unk); lens.Add(unkLen); }
        var result = MergeAll(ids, lens);
        if (w.Length < MaxCachedLength && _cache.Count < MaxCache) _cache.TryAdd(w, result);
        return result;
    }

    /// <summary>HF's Word::merge_all: a queue of adjacent pairs by (rank, position); a popped pair that is stale (a side
    /// was merged away, or the pair no longer makes that token) is skipped; each merge queues the pairs it forms.</summary>
    private Piece[] MergeAll(List<int> ids, List<int> lens)
    {
        int n = ids.Count;
        var c = ids.ToArray();
        var len = lens.ToArray();
        var prev = new int[n];
        var next = new int[n];
        for (int i = 0; i < n; i++) { prev[i] = i - 1; next[i] = i + 1 < n ? i + 1 : -1; }
        var queue = new PriorityQueue<(int Pos, int NewId), (int Rank, int Pos)>();
        for (int i = 0; i + 1 < n; i++)
            if (_merges.TryGetValue(((long)c[i] << 32) | (uint)c[i + 1], out var m)) queue.Enqueue((i, m.Id), (m.Rank, i));
        while (queue.TryDequeue(out var top, out _))
        {
            int pos = top.Pos;
            if (len[pos] == 0 || next[pos] < 0) continue;
            int right = next[pos];
            if (!_merges.TryGetValue(((long)c[pos] << 32) | (uint)c[right], out var cur) || cur.Id != top.NewId) continue;
            c[pos] = top.NewId;
            len[pos] += len[right];
            len[right] = 0;
            next[pos] = next[right];
            if (next[right] >= 0) prev[next[right]] = pos;
            if (prev[pos] >= 0 && _merges.TryGetValue(((long)c[prev[pos]] << 32) | (uint)c[pos], out var left))
                queue.Enqueue((prev[pos], left.Id), (left.Rank, prev[pos]));
            if (next[pos] >= 0 && _merges.TryGetValue(((long)c[pos] << 32) | (uint)c[next[pos]], out var after))
                queue.Enqueue((pos, after.Id), (after.Rank, pos));
        }
        var result = new List<Piece>(n);
        int offset = 0;
        for (int i = 0; i < n; i++)
        {
            if (len[i] == 0) continue;
            result.Add(new Piece(c[i], offset, offset + len[i]));
            offset += len[i];
        }
        return [.. result];
    }

    /// <summary>Llama 2 / Mistral add <c>&lt;s&gt;</c> in front (the file's TemplateProcessing), as HF's post-processor does.</summary>
    public TokenizedInput EncodeForModel(string text, string? pair = null, EncodeOptions? options = null) =>
        ModelInputBuilder.Build(EncodeWithOffsets(text), pair == null ? null : EncodeWithOffsets(pair), Template,
            options ?? new EncodeOptions(), PadTokenId ?? 0);

    /// <summary>HF's Tokenizer::decode: ids to token strings (unknown ids dropped, special ones too when asked), then the
    /// file's decoder chain; with no decoder the tokens are joined with spaces.</summary>
    public string Decode(IEnumerable<int> ids, bool skipSpecialTokens = false)
    {
        var tokens = new List<string>();
        foreach (var id in ids)
            if ((uint)id < (uint)_idToToken.Length && _idToToken[id] is string t && !(skipSpecialTokens && _specialIds.Contains(id))) tokens.Add(t);
        if (_decoder == null) return string.Join(" ", tokens);
        foreach (var step in _decoder) tokens = DecodeChain(step, tokens);
        return string.Concat(tokens);
    }

    private static List<string> DecodeChain(DecodeStep step, List<string> tokens) => step switch
    {
        DecReplace r => tokens.Select(t => t.Replace(r.Pattern, r.Content, StringComparison.Ordinal)).ToList(),
        DecFuse => [string.Concat(tokens)],
        DecByteFallback => ByteFallback(tokens),
        DecStrip s => tokens.Select(t => Strip(t, s)).ToList(),
        // HF's Metaspace decoder: every replacement becomes a space, except in the first token, where (unless the
        // scheme is "never") they are all dropped.
        DecMetaspace m => tokens.Select((t, i) => t.Replace(m.Replacement, i == 0 && m.DropFirst ? "" : " ", StringComparison.Ordinal)).ToList(),
        _ => throw new InvalidOperationException(step.ToString()),
    };

    /// <summary>HF's ByteFallback decoder: a run of <c>&lt;0xNN&gt;</c> tokens becomes the UTF-8 text of its bytes, or, when the
    /// run as a whole is not valid UTF-8, one U+FFFD per byte token.</summary>
    private static List<string> ByteFallback(List<string> tokens)
    {
        var result = new List<string>(tokens.Count);
        var run = new List<byte>();
        var strict = new UTF8Encoding(false, throwOnInvalidBytes: true);
        foreach (var t in tokens)
        {
            if (ByteOf(t) is byte b) { run.Add(b); continue; }
            Flush();
            result.Add(t);
        }
        Flush();
        return result;

        void Flush()
        {
            if (run.Count == 0) return;
            try { result.Add(strict.GetString([.. run])); }
            catch (DecoderFallbackException) { for (int k = 0; k < run.Count; k++) result.Add("\ufffd"); }
            run.Clear();
        }
    }

    /// <summary>The byte of a "&lt;0xNN&gt;" token: six UTF-8 bytes, and what Rust's u8::from_str_radix(_, 16) reads
    /// from the two in the middle (either case, or a '+' and one digit).</summary>
    private static byte? ByteOf(string t)
    {
        if (t.Length != 6 || !t.StartsWith("<0x", StringComparison.Ordinal) || t[5] != '>') return null;
        var hex = t.AsSpan(3, 2);
        if (hex[0] == '+') hex = hex[1..];
        return byte.TryParse(hex, System.Globalization.NumberStyles.AllowHexSpecifier, null, out var b) ? b : null;
    }

    /// <summary>HF's Strip decoder: up to Start leading and Stop trailing copies of the content character removed.</summary>
    private static string Strip(string token, DecStrip s)
    {
        var chars = token.EnumerateRunes().Select(r => r.Value).ToArray();
        int from = 0, to = chars.Length;
        for (int i = 0; i < s.Start && i < chars.Length && chars[i] == s.Content; i++) from = i + 1;
        for (int i = 0; i < s.Stop && chars.Length - i - 1 >= from && chars[chars.Length - i - 1] == s.Content; i++) to = chars.Length - i - 1;
        var sb = new StringBuilder();
        for (int i = from; i < to; i++) sb.Append(char.ConvertFromUtf32(chars[i]));
        return sb.ToString();
    }

    /// <summary>Writes the tokenizer.json as it was read, and tokenizer_config.json / special_tokens_map.json
    /// (<c>PreTrainedTokenizerFast</c>, so that transformers runs the file's own pipeline unchanged).</summary>
    public void Save(string directory)
    {
        Directory.CreateDirectory(directory);
        File.WriteAllText(Path.Combine(directory, "tokenizer.json"), _root.ToJsonString(new System.Text.Json.JsonSerializerOptions(TokenizerJson.Compact) { WriteIndented = true }));
        var added = TokenizerJson.AddedTokens(_root);
        TokenizerJson.WriteConfig(directory, "PreTrainedTokenizerFast", Specials, added, ModelMaxLength);
    }
}
