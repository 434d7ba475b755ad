// The byte-level BPE merge loop for HF vocab/merges files, with a per-word cache and character offsets.
using System.Collections.Concurrent;
using System.Text;

namespace TaskLM.Data.Tokenization;

/// <summary>
/// Encodes text with a byte-level vocabulary and ranked merges, as HF's BPE model does: split out special tokens,
/// pre-tokenize with GPT-2's pattern, turn each piece's UTF-8 bytes into symbols, then apply the lowest-ranked
/// merge (leftmost on ties) until none applies. Pieces are cached, since words repeat. Thread-safe.
/// </summary>
/// <remarks>Ours rather than Microsoft.ML.Tokenizers' <c>BpeTokenizer</c>: that one gave HF's ids but encoded
/// Moby-Dick at about 0.3 MB/s on the dev box, too slow for corpus encoding.</remarks>
internal sealed class ByteLevelBpeModel
{
    private readonly int[] _byteToId = new int[256];
    private readonly Dictionary<long, (int Rank, int Id)> _merges = [];
    private readonly ConcurrentDictionary<string, int[]> _cache = new(StringComparer.Ordinal);
    private readonly (string Text, int Id)[] _special;
    private readonly int[] _byteLength;  // a byte-level token has one char per byte
    private const int MaxCache = 200_000;
    private readonly System.Text.RegularExpressions.Regex _pattern;
    private readonly bool _splitDigits;
    private readonly IReadOnlyDictionary<string, int>? _wholeWords;   // ignore_merges: a piece in the vocabulary is one token

    /// <param name="vocab">Byte-level token → id.</param>
    /// <param name="merges">Merges in rank order.</param>
    /// <param name="special">Added special tokens, split out before pre-tokenizing.</param>
    /// <param name="pattern">The pre-tokenizer's split pattern (GPT-2's when null).</param>
    /// <param name="splitDigits">HF's Digits(individual_digits=true) before the pattern: every digit is a piece of its own.</param>
    /// <param name="ignoreMerges">HF BPE's ignore_merges (Llama 3): a pre-tokenized piece that is itself a token is not merged.</param>
    public ByteLevelBpeModel(IReadOnlyDictionary<string, int> vocab, IReadOnlyList<(string A, string B)> merges, IReadOnlyDictionary<string, int> special,
        System.Text.RegularExpressions.Regex? pattern = null, bool splitDigits = false, bool ignoreMerges = false)
    {
        _pattern = pattern ?? ByteLevel.Gpt2Regex;
        _splitDigits = splitDigits;
        _wholeWords = ignoreMerges ? vocab : null;
        for (int b = 0; b < 256; b++)
            _byteToId[b] = vocab.TryGetValue(ByteLevel.ByteToChar[b].ToString(), out var id) ? id : -1;
        for (int r = 0; r < merges.Count; r++)
        {
            var (a, b) = merges[r];
            if (!vocab.TryGetValue(a, out var ia) || !vocab.TryGetValue(b, out var ib) || !vocab.TryGetValue(a + b, out var im))
                throw new FormatException($"merge {r + 1} ('{a} {b}') uses a token that is not in the vocabulary");
            _merges.TryAdd(Key(ia, ib), (r, im));
        }
        _byteLength = new int[vocab.Count == 0 ? 0 : vocab.Values.Max() + 1];
        foreach (var (t, id) in vocab) _byteLength[id] = special.ContainsKey(t) ? 0 : t.Length;
        _special = [.. special.OrderByDescending(s => s.Key.Length).Select(s => (s.Key, s.Value))];
    }

    private static long Key(int a, int b) => ((long)a << 32) | (uint)b;

    /// <summary>Appends the tokens of <paramref name="text"/> (with spans, when <paramref name="spans"/> is given).</summary>
    public void Encode(string text, List<int> ids, List<TokenSpan>? spans = null)
    {
        int pos = 0;
        while (pos < text.Length)
        {
            int hit = -1, hitId = 0, hitLen = 0;
            foreach (var (s, id) in _special)
            {
                int k = text.IndexOf(s, pos, StringComparison.Ordinal);
                if (k >= 0 && (hit < 0 || k < hit)) { hit = k; hitId = id; hitLen = s.Length; }
            }
            int end = hit < 0 ? text.Length : hit;
            if (end > pos) EncodeOrdinary(text, pos, end, ids, spans);
            if (hit < 0) break;
            ids.Add(hitId);
            spans?.Add(new TokenSpan(hitId, hit, hit + hitLen));
            pos = hit + hitLen;
        }
    }

    private void EncodeOrdinary(string text, int start, int end, List<int> ids, List<TokenSpan>? spans)
    {
        if (_splitDigits)
        {
            // Digits(individual_digits): each numeric char is its own piece; the runs between go through the pattern.
            int run = start;
            for (int i = start; i < end; i++)
            {
                if (!char.IsNumber(text[i])) continue;
                if (i > run) EncodePattern(text, run, i, ids, spans);
                EncodePattern(text, i, i + 1, ids, spans);
                run = i + 1;
            }
            if (end > run) EncodePattern(text, run, end, ids, spans);
        }
        else EncodePattern(text, start, end, ids, spans);
    }

    private void EncodePattern(string text, int start, int end, List<int> ids, List<TokenSpan>? spans)
    {
        foreach (var m in _pattern.EnumerateMatches(text.AsSpan(start, end - start)))
        {
            int ps = start + m.Index;
            var piece = text.AsSpan(ps, m.Length);
            var pieceIds = Piece(piece);
            ids.AddRange(pieceIds);
            if (spans != null) AddSpans(piece, ps, pieceIds, spans);
        }
    }

    /// <summary>Token ids of one pre-tokenized piece.</summary>
    private int[] Piece(ReadOnlySpan<char> piece)
    {
        var lookup = _cache.GetAlternateLookup<ReadOnlySpan<char>>();
        if (lookup.TryGetValue(piece, out var cached)) return cached;
        int max = Encoding.UTF8.GetMaxByteCount(piece.Length);
        Span<byte> bytes = max <= 512 ? stackalloc byte[max] : new byte[max];
        int n = Encoding.UTF8.GetBytes(piece, bytes);  // lone surrogates become U+FFFD, as in HF
        if (_wholeWords != null && _wholeWords.TryGetValue(ByteLevel.Encode(bytes[..n]), out int whole))
        {
            int[] one = [whole];
            if (_cache.Count < MaxCache) lookup.TryAdd(piece, one);
            return one;
        }
        var symbols = new List<int>(n);
        for (int i = 0; i < n; i++)
        {
            int id = _byteToId[bytes[i]];
            if (id < 0) throw new InvalidOperationException($"the vocabulary has no symbol for byte 0x{bytes[i]:X2}");
            symbols.Add(id);
        }
        // Lowest-ranked merge first, the leftmost of equal ranks; O(n²) per piece, pieces are short and cached.
        while (symbols.Count > 1)
        {
            int best = -1, bestRank = int.MaxValue, bestId = 0;
            for (int i = 0; i + 1 < symbols.Count; i++)
                if (_merges.TryGetValue(Key(symbols[i], symbols[i + 1]), out var m) && m.Rank < bestRank) { best = i; bestRank = m.Rank; bestId = m.Id; }
            if (best < 0) break;
            symbols[best] = bestId;
            symbols.RemoveAt(best + 1);
        }
        var result = symbols.ToArray();
        if (_cache.Count < MaxCache) lookup.TryAdd(piece, result);
        return result;
    }

    /// <summary>Character spans of a piece's tokens: a token covers the characters its bytes belong to.</summary>
    private void AddSpans(ReadOnlySpan<char> piece, int pieceStart, int[] pieceIds, List<TokenSpan> spans)
    {
        // byteChar[b] = index (in piece) of the char where byte b starts, plus the char length.
        var byteChar = new List<(int Char, int Len)>();
        for (int i = 0; i < piece.Length;)
        {
            System.Text.Rune.DecodeFromUtf16(piece[i..], out var r, out int len);
            for (int k = 0; k < r.Utf8SequenceLength; k++) byteChar.Add((i, len));
            i += len;
        }
        int b = 0;
        foreach (var id in pieceIds)
        {
            int nb = (uint)id < (uint)_byteLength.Length ? _byteLength[id] : 0;
            var (s, _) = byteChar[b];
            var (e, el) = byteChar[Math.Min(b + nb, byteChar.Count) - 1];
            spans.Add(new TokenSpan(id, pieceStart + s, pieceStart + e + el));
            b += nb;
        }
    }

}
