// Language-model metrics: loss, perplexity, bits per token/byte, and sliding-window (stride) perplexity.
using TorchSharp;
using static TorchSharp.torch;

namespace TaskLM.Evaluation;

/// <summary>Loss and perplexity of a language model over scored tokens.</summary>
/// <param name="Loss">Mean negative log-likelihood per scored token, in nats.</param>
/// <param name="Perplexity">exp(Loss).</param>
/// <param name="Tokens">Number of scored tokens.</param>
/// <param name="TotalNll">Sum of the negative log-likelihoods, in nats.</param>
public sealed record LmScore(double Loss, double Perplexity, long Tokens, double TotalNll)
{
    /// <summary>Bits per token: loss / ln 2.</summary>
    public double BitsPerToken => Loss / Math.Log(2);

    /// <summary>Bits per UTF-8 byte of the scored text: total NLL / (ln 2 · bytes); comparable across tokenizers.</summary>
    public double BitsPerByte(long bytes) => bytes > 0 ? TotalNll / (Math.Log(2) * bytes) : throw new ArgumentException("bits per byte needs a positive byte count");
}

/// <summary>Language-model metrics over per-token negative log-likelihoods.</summary>
public static class LanguageModelMetrics
{
    /// <summary>Loss (mean NLL, nats) and perplexity exp(loss) from per-token NLLs.</summary>
    public static LmScore FromNll(IEnumerable<double> nll)
    {
        double sum = 0;
        long n = 0;
        foreach (var x in nll)
        {
            if (double.IsNaN(x) || x < 0) throw new ArgumentException($"token {n + 1}: negative log-likelihood {x} is not a number >= 0");
            sum += x; n++;
        }
        if (n == 0) throw new ArgumentException("no tokens to score");
        return new LmScore(sum / n, Math.Exp(sum / n), n, sum);
    }

    /// <summary>Perplexity of one long token sequence with a model that sees at most <paramref name="maxLength"/>
    /// tokens, as in Hugging Face's "Perplexity of fixed-length models" guide: windows start every
    /// <paramref name="stride"/> tokens, each ends at most maxLength later, and only the tokens past the previous
    /// window's end are scored, so each token is scored at most once, with at least maxLength − stride tokens of
    /// context (fewer near the start). A window's first token has no context and is never scored, so with
    /// stride == maxLength (disjoint chunks) each chunk's first token is skipped, as in the guide. (The guide weights each window's mean loss by
    /// "valid labels − 1", which undercounts later windows by one token; here the per-token NLLs are summed exactly.)</summary>
    /// <param name="ids">The token ids of the whole text.</param>
    /// <param name="maxLength">The model's context (window) length.</param>
    /// <param name="stride">Tokens between window starts.</param>
    /// <param name="perTokenNll">The model: given a window's ids (length L), returns L − 1 NLLs in nats, where
    /// entry j is −log p(ids[j+1] | ids[0..j]) (the shifted causal-LM loss with reduction "none").</param>
    /// <returns>The score and, per token position, the NLL it was scored with (NaN where unscored).</returns>
    public static (LmScore Score, double[] TokenNll) SlidingWindow(long[] ids, int maxLength, int stride, Func<long[], float[]> perTokenNll)
    {
        if (maxLength < 2) throw new ArgumentException($"max_length must be at least 2, got {maxLength}");
        if (stride < 1 || stride > maxLength) throw new ArgumentException($"stride must be in 1..max_length ({maxLength}), got {stride}");
        if (ids.Length < 2) throw new ArgumentException("perplexity needs at least two tokens");
        var tokenNll = new double[ids.Length];
        Array.Fill(tokenNll, double.NaN);
        int prevEnd = 0;
        for (int begin = 0; begin < ids.Length; begin += stride)
        {
            int end = Math.Min(begin + maxLength, ids.Length);
            int trgLen = end - prevEnd; // tokens not scored by an earlier window
            var window = ids[begin..end];
            var nll = perTokenNll(window);
            if (nll.Length != window.Length - 1)
                throw new InvalidOperationException($"the model returned {nll.Length} NLLs for a window of {window.Length} tokens (expected {window.Length - 1})");
            // Window position p (1..L-1) is predicted by nll[p-1]; score positions L-trgLen..L-1, never position 0.
            for (int p = Math.Max(1, window.Length - trgLen); p < window.Length; p++) tokenNll[begin + p] = nll[p - 1];
            prevEnd = end;
            if (end == ids.Length) break;
        }
        return (FromNll(tokenNll.Where(x => !double.IsNaN(x))), tokenNll);
    }

    /// <summary>Per-token NLLs of a causal LM's logits, the seam for <see cref="SlidingWindow"/>:
    /// logits (1, L, V) or (L, V) for ids (L) give L − 1 values, cross-entropy of position t's logits against ids[t+1].</summary>
    public static float[] NllFromLogits(Tensor logits, long[] ids)
    {
        using var scope = NewDisposeScope();
        var l = logits.dim() == 3 ? logits[0] : logits; // (L, V)
        if (l.shape[0] != ids.Length) throw new ArgumentException($"logits cover {l.shape[0]} positions but there are {ids.Length} ids");
        var target = tensor(ids[1..], device: l.device); // (L-1)
        var nll = nn.functional.cross_entropy(l[..^1].to_type(ScalarType.Float32), target, reduction: nn.Reduction.None); // (L-1)
        return nll.cpu().data<float>().ToArray();
    }
}
