// Model inputs as Hugging Face's tokenizer(...) returns them: special-token template, truncation, padding.
namespace TaskLM.Data.Tokenization;

/// <summary>How to shorten a sequence (pair) that is longer than <see cref="EncodeOptions.MaxLength"/>
/// (Hugging Face's <c>truncation=</c> values).</summary>
public enum TruncationStrategy
{
    /// <summary>Never truncate (<c>do_not_truncate</c>).</summary>
    None,
    /// <summary>Shorten the longer sequence; when both must give, split the room in halves (<c>longest_first</c>).</summary>
    LongestFirst,
    /// <summary>Only truncate the first sequence (<c>only_first</c>).</summary>
    OnlyFirst,
    /// <summary>Only truncate the second sequence of a pair (<c>only_second</c>).</summary>
    OnlySecond,
}

/// <summary>How to pad (Hugging Face's <c>padding=</c> values). Padding is on the right.</summary>
public enum PaddingStrategy
{
    /// <summary>No padding (<c>do_not_pad</c>).</summary>
    None,
    /// <summary>Pad to <see cref="EncodeOptions.MaxLength"/> (<c>max_length</c>).</summary>
    MaxLength,
    /// <summary>Pad to the longest in the batch (<c>longest</c>); see <see cref="ModelInputBuilder.PadBatch"/>.</summary>
    Longest,
}

/// <summary>Options of <see cref="ITokenizer.EncodeForModel"/>, named as Hugging Face's call arguments.</summary>
public sealed record EncodeOptions
{
    /// <summary>Add the tokenizer's template ([CLS] A [SEP] B [SEP] for BERT; nothing for GPT-2).</summary>
    public bool AddSpecialTokens { get; init; } = true;
    /// <summary>Longest result, special tokens included (<c>max_length</c>); null = no limit.</summary>
    public int? MaxLength { get; init; }
    /// <summary>Truncation strategy, applied only when <see cref="MaxLength"/> is set.</summary>
    public TruncationStrategy Truncation { get; init; } = TruncationStrategy.LongestFirst;
    /// <summary>Padding strategy.</summary>
    public PaddingStrategy Padding { get; init; } = PaddingStrategy.None;
}

/// <summary>One token of a plain encoding: its id and its character span [Start, End) in the input (UTF-16 indices).</summary>
public readonly record struct TokenSpan(int Id, int Start, int End);

/// <summary>What a model takes for one example (Hugging Face's BatchEncoding for one row).</summary>
/// <param name="InputIds">token ids, special tokens and padding included</param>
/// <param name="TokenTypeIds">0 for the first sequence, 1 for the second (BERT segment ids)</param>
/// <param name="AttentionMask">1 for real tokens, 0 for padding</param>
/// <param name="Offsets">(start, end) character span in its own input string; (0, 0) for special and padding tokens</param>
/// <param name="SpecialTokensMask">1 for special and padding tokens</param>
/// <param name="SequenceIds">0 or 1 for tokens of the first/second text, null for special and padding tokens</param>
/// <param name="NumTruncatedTokens">how many text tokens truncation removed</param>
public sealed record TokenizedInput(
    int[] InputIds, int[] TokenTypeIds, int[] AttentionMask, (int Start, int End)[] Offsets,
    int[] SpecialTokensMask, int?[] SequenceIds, int NumTruncatedTokens)
{
    /// <summary>Number of positions (padding included).</summary>
    public int Length => InputIds.Length;
}

/// <summary>One piece of a post-processing template: a special token, or sequence A (0) / B (1).</summary>
public readonly record struct TemplatePiece(IReadOnlyList<int>? SpecialIds, int Sequence, int TypeId)
{
    /// <summary>A special token piece.</summary>
    public static TemplatePiece Special(int id, int typeId) => new([id], -1, typeId);
    /// <summary>A sequence piece (0 = A, 1 = B).</summary>
    public static TemplatePiece Seq(int sequence, int typeId) => new(null, sequence, typeId);
}

/// <summary>Hugging Face's TemplateProcessing: what surrounds a single text and a pair.</summary>
public sealed record SpecialTokensTemplate(IReadOnlyList<TemplatePiece> Single, IReadOnlyList<TemplatePiece> Pair)
{
    /// <summary>No special tokens: A, or A B with B's type id 1 (what GPT-2's tokenizer does).</summary>
    public static readonly SpecialTokensTemplate None = new([TemplatePiece.Seq(0, 0)], [TemplatePiece.Seq(0, 0), TemplatePiece.Seq(1, 1)]);

    /// <summary>BERT's template: [CLS] A [SEP] and [CLS] A [SEP] B [SEP] with B's part typed 1.</summary>
    public static SpecialTokensTemplate Bert(int cls, int sep) => new(
        [TemplatePiece.Special(cls, 0), TemplatePiece.Seq(0, 0), TemplatePiece.Special(sep, 0)],
        [TemplatePiece.Special(cls, 0), TemplatePiece.Seq(0, 0), TemplatePiece.Special(sep, 0), TemplatePiece.Seq(1, 1), TemplatePiece.Special(sep, 1)]);

    /// <summary>Number of special ids added for a single text or a pair.</summary>
    public int Count(bool pair) => (pair ? Pair : Single).Sum(p => p.SpecialIds?.Count ?? 0);
}

/// <summary>Applies truncation, the special-token template and padding, the way Hugging Face's tokenizers do.</summary>
public static class ModelInputBuilder
{
    /// <summary>Builds one example from the plain encodings of text (<paramref name="a"/>) and optional pair (<paramref name="b"/>).</summary>
    public static TokenizedInput Build(IReadOnlyList<TokenSpan> a, IReadOnlyList<TokenSpan>? b, SpecialTokensTemplate template,
        EncodeOptions options, int padId)
    {
        var tpl = options.AddSpecialTokens ? template : SpecialTokensTemplate.None;
        int nA = a.Count, nB = b?.Count ?? 0, removed = 0;
        if (options.MaxLength is int ml)
        {
            // A result longer than max_length would break the caller's contract; refuse rather than return one.
            if (ml < 1) throw new ArgumentException($"max_length (--max-length) must be ≥ 1, got {ml}");
            if (ml < tpl.Count(b != null))
                throw new ArgumentException($"max_length {ml} leaves no room for text: the special tokens alone take {tpl.Count(b != null)} (use --no-special-tokens or a larger --max-length)");
        }
        if (options.MaxLength is int max && options.Truncation != TruncationStrategy.None)
        {
            int toRemove = nA + nB + tpl.Count(b != null) - max;
            if (toRemove > 0)
            {
                removed = toRemove;
                switch (options.Truncation)
                {
                    case TruncationStrategy.LongestFirst when b == null:
                        nA = Math.Max(0, nA - toRemove);
                        break;
                    case TruncationStrategy.LongestFirst:
                    {
                        // HF's rule: the shorter keeps its length if the longer can take the rest; otherwise both
                        // get half the room, the second the odd token.
                        int target = Math.Max(0, max - tpl.Count(true));
                        bool swap = nA > nB;
                        int n1 = Math.Min(nA, nB), n2 = Math.Max(nA, nB);
                        n2 = n1 > target ? n1 : Math.Max(n1, target - n1);
                        if (n1 + n2 > target) { n1 = target / 2; n2 = n1 + target % 2; }
                        if (swap) (n1, n2) = (n2, n1);
                        nA = Math.Min(nA, n1); nB = Math.Min(nB, n2);
                        removed = a.Count + b.Count - nA - nB;
                        break;
                    }
                    case TruncationStrategy.OnlyFirst:
                        if (toRemove >= nA) throw new ArgumentException($"only_first truncation to max_length {max} would need to remove {toRemove} tokens but the first sequence has {nA}");
                        nA -= toRemove;
                        break;
                    case TruncationStrategy.OnlySecond:
                        if (b == null) throw new ArgumentException("only_second truncation needs a text pair");
                        if (toRemove >= nB) throw new ArgumentException($"only_second truncation to max_length {max} would need to remove {toRemove} tokens but the second sequence has {nB}");
                        nB -= toRemove;
                        break;
                }
            }
        }

        var ids = new List<int>(nA + nB + 4);
        var types = new List<int>(ids.Capacity);
        var offsets = new List<(int, int)>(ids.Capacity);
        var special = new List<int>(ids.Capacity);
        var seqIds = new List<int?>(ids.Capacity);
        foreach (var piece in b != null ? tpl.Pair : tpl.Single)
        {
            if (piece.SpecialIds != null)
            {
                foreach (var id in piece.SpecialIds) { ids.Add(id); types.Add(piece.TypeId); offsets.Add((0, 0)); special.Add(1); seqIds.Add(null); }
                continue;
            }
            var seq = piece.Sequence == 0 ? a : b!;
            int n = piece.Sequence == 0 ? nA : nB;
            for (int i = 0; i < n; i++)
            {
                ids.Add(seq[i].Id); types.Add(piece.TypeId); offsets.Add((seq[i].Start, seq[i].End)); special.Add(0); seqIds.Add(piece.Sequence);
            }
        }
        var result = new TokenizedInput([.. ids], [.. types], Enumerable.Repeat(1, ids.Count).ToArray(), [.. offsets], [.. special], [.. seqIds], removed);
        if (options.Padding == PaddingStrategy.MaxLength)
        {
            if (options.MaxLength is not int len) throw new ArgumentException("padding=max_length needs max_length");
            result = Pad(result, len, padId);
        }
        return result;
    }

    /// <summary>Pads one example on the right to <paramref name="length"/> (no-op when already as long).</summary>
    public static TokenizedInput Pad(TokenizedInput x, int length, int padId)
    {
        int n = length - x.Length;
        if (n <= 0) return x;
        static T[] Grow<T>(T[] src, int extra, T fill) { var r = new T[src.Length + extra]; src.CopyTo(r, 0); Array.Fill(r, fill, src.Length, extra); return r; }
        return x with
        {
            InputIds = Grow(x.InputIds, n, padId), TokenTypeIds = Grow(x.TokenTypeIds, n, 0), AttentionMask = Grow(x.AttentionMask, n, 0),
            Offsets = Grow(x.Offsets, n, (0, 0)), SpecialTokensMask = Grow(x.SpecialTokensMask, n, 1), SequenceIds = Grow(x.SequenceIds, n, (int?)null),
        };
    }

    /// <summary>Pads every example to the longest of the batch (HF's <c>padding="longest"</c>).</summary>
    public static IReadOnlyList<TokenizedInput> PadBatch(IReadOnlyList<TokenizedInput> batch, int padId)
    {
        int len = batch.Count == 0 ? 0 : batch.Max(x => x.Length);
        return batch.Select(x => Pad(x, len, padId)).ToList();
    }
}
