using System.Diagnostics;
using TaskLM.Models;
using TaskLM.Recipes;
using TorchSharp;
using static TorchSharp.torch;

namespace TaskLM.Training;

/// <summary>
/// <c>model.embedding_init: ppmi-svd</c> — before pre-training from random weights, the input word embeddings are set
/// from the training corpus's co-occurrence statistics (positive PMI with context smoothing, then a truncated SVD:
/// Levy, Goldberg &amp; Dagan 2015), the count-based cousin of word2vec.
///
/// Why: on a CPU budget masked-LM pre-training stays on its early plateau, where the word embeddings it learns carry
/// little lexical class. Measured on Brown POS (a linear probe on the first word piece's embedding, 2,000 training
/// sentences): the shipped encoder's MLM embeddings 0.786 token accuracy, random 0.714, PPMI-SVD of the same corpus
/// 0.864 (0.692 on word pieces unseen in training vs 0.577). The count statistics are exact after one pass over the
/// corpus and cost seconds (5.9 s for the 7M-token pre-training corpus and 8k vocabulary here); masked-LM pre-training then starts from embeddings that already group words by use.
/// </summary>
public static class EmbeddingInit
{
    /// <summary>Co-occurrence window (tokens either side), each neighbour weighted 1/distance (as GloVe).</summary>
    public const int Window = 4;
    /// <summary>At most this many (most frequent) tokens get a row: the count matrix is dense, K² floats (400 MB at
    /// 10k). Rarer tokens keep their random row.</summary>
    public const int MaxRows = 10_000;
    /// <summary>Per-coordinate RMS of the rows written: that of the word embeddings masked-LM training reached here
    /// (row norm 0.84 at hidden 128), several times the 0.02 of HF's random init, so AdamW's first updates (lr-sized
    /// per coordinate) do not wash the structure out before the layers learn to read it.</summary>
    public const double Scale = 0.075;

    /// <summary>Writes PPMI-SVD rows into <paramref name="model"/>'s input embedding, counting over
    /// <paramref name="sequences"/> (the tokenized training split); a window never crosses a special token
    /// ([CLS], [SEP], EOS: document boundaries). Returns a line saying what was done.</summary>
    public static string Apply(ITaskModel model, IEnumerable<int[]> sequences, IReadOnlySet<int> specials, long seed)
    {
        var sw = Stopwatch.StartNew();
        var family = model.Family ?? throw new RecipeException($"model.embedding_init: no model family for model_type {model.ModelType}");
        var weight = model.Module.named_parameters().First(p => p.name == family.InputEmbeddingKey).parameter; // (V, H)
        int vocab = (int)weight.shape[0], hidden = (int)weight.shape[1];
        var seqs = sequences as IReadOnlyList<int[]> ?? sequences.ToList();

        // Rows: the K most frequent non-special tokens.
        var freq = new long[vocab];
        long tokens = 0;
        foreach (var s in seqs) foreach (int id in s) if (id >= 0 && id < vocab && !specials.Contains(id)) { freq[id]++; tokens++; }
        var rowsOf = Enumerable.Range(0, vocab).Where(i => freq[i] > 0).OrderByDescending(i => freq[i]).ThenBy(i => i).Take(MaxRows).ToArray();
        int k = rowsOf.Length;
        int rank = Math.Min(hidden, k - 1);
        if (rank < 2) throw new RecipeException($"model.embedding_init: the training data has only {k} distinct tokens; too few to count co-occurrences");
        var row = new int[vocab]; Array.Fill(row, -1);
        for (int i = 0; i < k; i++) row[rowsOf[i]] = i;

        // Symmetric co-occurrence counts C (K, K), neighbours at distance d weighted 1/d, windows cut at special tokens.
        var counts = new float[(long)k * k];
        foreach (var s in seqs)
            for (int i = 0; i < s.Length; i++)
            {
                int a = s[i] >= 0 && s[i] < vocab ? row[s[i]] : -1;
                if (a < 0) continue;
                for (int d = 1; d <= Window && i + d < s.Length; d++)
                {
                    int t = s[i + d];
                    if (t < 0 || t >= vocab || specials.Contains(t)) break;
                    int b = row[t];
                    if (b < 0) continue;
                    float w = 1f / d;
                    counts[(long)a * k + b] += w; counts[(long)b * k + a] += w;
                }
            }

        Tensor embedding; // (K, rank)
        using (NewDisposeScope())
        using (no_grad())
        {
            var c = tensor(counts, [k, k]);                                   // (K, K)
            counts = null!;
            var rowSum = c.sum(1);                                            // (K): f_i
            // PPMI with context smoothing α = 0.75: max(0, log C_ij·Σ_j' f_j'^α / (f_i · f_j^α)); a zero count gives 0.
            var ctx = rowSum.pow(0.75);
            var pmi = (c * ctx.sum() / (rowSum.unsqueeze(1) * ctx.unsqueeze(0))).clamp_min_(1e-30).log_().clamp_min_(0);
            c.Dispose();
            // Randomized truncated SVD (Halko et al. 2011): range of P from P·Ω with 4 power iterations (P is
            // symmetric, so Pᵀ = P), then the SVD of the small (q, K) projection. Seeded: the same corpus gives the same rows.
            int q = Math.Min(k, rank + 16);
            var gen = new Generator((ulong)seed);
            var y = pmi.matmul(randn([k, q], generator: gen));             // (K, q)
            for (int it = 0; it < 4; it++) y = pmi.matmul(linalg.qr(y).Q);
            var qm = linalg.qr(y).Q;                                          // (K, q)
            var (ub, sv, _) = linalg.svd(qm.t().matmul(pmi), fullMatrices: false); // (q, q), (q)
            var u = qm.matmul(ub.narrow(1, 0, rank));                         // (K, rank)
            var e = u * sv.narrow(0, 0, rank).sqrt().unsqueeze(0);            // (K, rank): U·√Σ
            // Rank may be below hidden (a tiny vocabulary): the remaining coordinates stay zero.
            if (rank < hidden) e = cat([e, zeros(k, hidden - rank)], 1);
            var rms = e.pow(2).mean().sqrt();
            embedding = (e * (Scale / rms.item<float>())).to(weight.dtype).MoveToOuterDisposeScope();
        }
        using (no_grad())
        {
            var idx = tensor(rowsOf.Select(i => (long)i).ToArray(), device: weight.device);
            weight.index_copy_(0, idx, embedding.to(weight.device));
        }
        embedding.Dispose();
        return $"model.embedding_init: ppmi-svd rows for {k:N0} of {vocab:N0} tokens (window {Window}, rank {rank}) from {tokens:N0} training tokens in {sw.Elapsed.TotalSeconds:F1} s";
    }
}
