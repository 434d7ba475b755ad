// strategy.method: features — SetFit's "frozen body + logistic regression head": encode each text once with the frozen
// encoder, cache the mean-pooled features, fit a multinomial logistic regression on them, and hand the head back as
// the classifier of a BERT model whose config says classifier_pooling "mean" (so best/ predicts what the head predicted).
using System.Diagnostics;
using System.Security.Cryptography;
using System.Runtime.InteropServices;
using TaskLM.Models;
using TaskLM.Recipes;
using TaskLM.Tasks;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace TaskLM.Training;

/// <summary>The pieces of a features run (TrainingRun's <c>TrainFeatures</c> stage strings them together): the model
/// check, forward-only encoding (no_grad, eval mode, batches sorted by length, dynamic padding), the feature cache, and
/// the L2-regularised multinomial logistic regression with its strength chosen on validation.</summary>
public static class FeatureTraining
{
    /// <summary>The model a features run needs: a BERT-family sequence classifier (its body is the frozen encoder).</summary>
    public static BertForSequenceClassification Check(ITaskModel model, string init) =>
        model as BertForSequenceClassification
        ?? throw new RecipeException($"strategy.method: features needs a BERT-family encoder (a BertForSequenceClassification: minilm-l6, arctic-xs, bert-* presets, models/tasklm-bert-mini); model.init {init} is a {model.ModelType} model — use strategy.method full, freeze or lora for it");

    /// <summary>Mean-pooled features (N, H) of <paramref name="examples"/> in their own order, on the CPU. The model runs in eval
    /// mode under no_grad; examples go longest first (the largest batch, hence the memory peak and the speed estimate,
    /// come first) in batches of <paramref name="batchSize"/>, each padded only to its own longest. <paramref name="onFirstBatch"/>
    /// gets the first batch's tokens/s; progress goes to <paramref name="say"/> about every 10 seconds.</summary>
    public static Tensor Encode(BertForSequenceClassification model, IReadOnlyList<Example> examples, Collator collator, int batchSize,
        string split, Action<string> say, Action<double>? onFirstBatch = null)
    {
        int n = examples.Count, h = (int)model.config.hidden_size;
        var order = Enumerable.Range(0, n).OrderByDescending(i => examples[i].InputIds.Length).ThenBy(i => i).ToArray();
        var features = zeros(n, h);                                                   // (N, H), CPU, filled by index
        model.Module.eval();
        long tokens = 0, total = examples.Sum(e => (long)e.InputIds.Length);
        var clock = Stopwatch.StartNew(); var lastSay = clock.Elapsed;
        using (no_grad())
            for (int i = 0; i < n; i += batchSize)
            {
                using var scope = NewDisposeScope();
                var idx = order.AsSpan(i, Math.Min(batchSize, n - i)).ToArray();
                var batch = collator.Collate(idx.Select(j => examples[j]).ToList());    // (B, T) ids and mask, T = this batch's longest
                var pooled = model.Features(batch.InputIds, batch.AttentionMask, batch.TokenTypeIds).to(float32).cpu();   // (B, H)
                features.index_copy_(0, tensor(idx.Select(j => (long)j).ToArray()), pooled);
                tokens += idx.Sum(j => (long)examples[j].InputIds.Length);
                double rate = tokens / Math.Max(1e-9, clock.Elapsed.TotalSeconds);
                if (i == 0) onFirstBatch?.Invoke(rate);
                if (clock.Elapsed - lastSay > TimeSpan.FromSeconds(10) || i + batchSize >= n)
                {
                    lastSay = clock.Elapsed;
                    say($"features {split}: {Math.Min(i + batchSize, n):N0}/{n:N0} texts, {tokens:N0}/{total:N0} tokens, {rate:N0} tokens/s, {clock.Elapsed.TotalSeconds:N0} s"
                        + (i + batchSize < n ? $", about {(total - tokens) / Math.Max(1, rate):N0} s left" : ""));
                }
            }
        return features;
    }

    /// <summary>A hash of what decides a split's features: the encoder's weights and pooling, and the examples' token ids.</summary>
    public static string CacheKey(BertForSequenceClassification model, IReadOnlyList<Example> examples)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        sha.AppendData(System.Text.Encoding.UTF8.GetBytes($"features-v1|{model.config.classifier_pooling}|{model.config.hidden_size}|"));
        using (no_grad())
            foreach (var (name, p) in model.Module.named_parameters())
            {
                if (name.StartsWith("classifier.", StringComparison.Ordinal)) continue;   // the head is what we fit
                sha.AppendData(System.Text.Encoding.UTF8.GetBytes(name));
                using var c = p.detach().to(float32).cpu().contiguous();
                sha.AppendData(MemoryMarshal.AsBytes(c.data<float>().ToArray().AsSpan()));
            }
        foreach (var e in examples)
        {
            sha.AppendData(MemoryMarshal.AsBytes(e.InputIds.AsSpan()));
            if (e.TokenTypeIds != null) sha.AppendData(MemoryMarshal.AsBytes(e.TokenTypeIds.AsSpan()));
            sha.AppendData(BitConverter.GetBytes(-1));
        }
        return Convert.ToHexString(sha.GetHashAndReset())[..16].ToLowerInvariant();
    }

    /// <summary>The split's features from <c>cacheDir/features-&lt;split&gt;-&lt;key&gt;.safetensors</c>, else encoded and written there
    /// (atomically; older files of the split are removed). <paramref name="cacheDir"/> null = no cache.</summary>
    public static Tensor LoadOrEncode(BertForSequenceClassification model, IReadOnlyList<Example> examples, Collator collator, int batchSize,
        string split, string? cacheDir, Action<string> say, Action<double>? onFirstBatch = null)
    {
        string? path = null;
        if (cacheDir != null)
        {
            path = Path.Combine(cacheDir, $"features-{split}-{CacheKey(model, examples)}.safetensors");
            if (File.Exists(path))
            {
                var t = SafeTensors.Load(path);
                if (t.TryGetValue("features", out var f) && f.shape[0] == examples.Count)
                {
                    say($"features {split}: {examples.Count:N0} texts read from the cache ({Path.GetFileName(path)})");
                    return f;
                }
            }
        }
        var features = Encode(model, examples, collator, batchSize, split, say, onFirstBatch);
        if (path != null)
        {
            Directory.CreateDirectory(cacheDir!);
            foreach (var old in Directory.GetFiles(cacheDir!, $"features-{split}-*.safetensors")) File.Delete(old);
            string tmp = path + ".tmp";
            SafeTensors.Save(tmp, [new("features", features)], new Dictionary<string, string> { ["split"] = split, ["n"] = examples.Count.ToString(System.Globalization.CultureInfo.InvariantCulture) });
            File.Move(tmp, path, overwrite: true);
        }
        return features;
    }

    /// <summary>A fitted head in the model's own terms: logits = x·Weightᵀ + Bias for raw pooled features x (B, H).</summary>
    public sealed record Head(Tensor Weight, Tensor Bias, double C, int Iterations, double Loss);

    /// <summary>Multinomial logistic regression with sklearn's objective C·Σᵢ wᵢ·CE(xᵢ) + ½‖W‖² (bias not penalised),
    /// divided by C·N here so the loss reads in nats: Σᵢ wᵢ·CEᵢ / N + ‖W‖² / (2·C·N). Features are standardised
    /// (mean μ, std σ of <paramref name="x"/>) for the fit and the scaling is folded back into the head:
    /// W' = W / σ, b' = b − W'·μ, so the head applies to raw features. The problem is convex and small ((N, H) with
    /// H ≈ 384), so it is solved by L-BFGS (as sklearn's lbfgs solver) with a backtracking line search: loss and gradient
    /// in float64 by torch, the two-loop recursion on managed arrays; deterministic. <paramref name="classWeights"/> weight
    /// each example by its class (sklearn's class_weight). <paramref name="start"/> warm-starts from an earlier fit's
    /// standardised parameters (the C grid goes in order).</summary>
    public static Head Fit(Tensor x, Tensor y, int numLabels, double c, float[]? classWeights, int maxIterations = 500, double[]? start = null)
        => Fit(x, y, numLabels, c, classWeights, maxIterations, start, out _);

    /// <inheritdoc cref="Fit(Tensor, Tensor, int, double, float[], int, double[])"/>
    public static Head Fit(Tensor x, Tensor y, int numLabels, double c, float[]? classWeights, int maxIterations, double[]? start, out double[] theta)
    {
        using var scope = NewDisposeScope();
        long n = x.shape[0], h = x.shape[1];
        var xd = x.to(float64);
        var mu = xd.mean([0]);                                                        // (H)
        var sd = xd.sub(mu).pow(2).mean([0]).sqrt().clamp_min(1e-6);                // (H) population std
        var z1 = cat([xd.sub(mu).div(sd), ones(n, 1, dtype: float64)], 1);           // (N, H+1): standardised, then a 1 for the bias
        var sampleW = (classWeights != null ? tensor(classWeights).index_select(0, y) : ones(n)).to(float64).unsqueeze(1);   // (N, 1)
        var yOneHot = F.one_hot(y, numLabels).to(float64);                            // (N, C)
        var penalised = ones(numLabels, h + 1, dtype: float64);                       // (C, H+1): the bias column is not penalised
        penalised[.., (int)h] = 0;

        // Θ (C, H+1) = [W | b] on standardised features. f(Θ) and ∇f(Θ) with P = softmax(Z1·Θᵀ):
        // ∇ = ((P − Y)·w)ᵀ·Z1 / N + Θ·mask / (C·N).
        double Eval(double[] th, double[] grad)
        {
            using var s = NewDisposeScope();
            var t = tensor(th, [numLabels, h + 1], dtype: float64);                   // (C, H+1)
            var logits = z1.matmul(t.t());                                            // (N, C)
            var lse = logits.logsumexp(1, keepdim: true);                             // (N, 1)
            var ce = lse.sub(logits.mul(yOneHot).sum(1, keepdim: true));              // (N, 1)
            var tm = t.mul(penalised);
            var f = ce.mul(sampleW).sum().div(n).add(tm.pow(2).sum().div(2 * c * n));
            var g = logits.sub(lse).exp().sub(yOneHot).mul(sampleW).t().matmul(z1).div(n).add(tm.div(c * n));   // (C, H+1)
            g.contiguous().data<double>().CopyTo(grad);
            return f.item<double>();
        }

        int dim = numLabels * (int)(h + 1);
        theta = start != null && start.Length == dim ? (double[])start.Clone() : new double[dim];
        // One intra-op thread: the ops are small ((N, H+1)·(H+1, C)), and on a busy machine a thread pool per op costs
        // more than it saves (measured: several times slower at load 12 on 2 cores).
        int threads = get_num_threads();
        set_num_threads(1);
        (double loss, int iterations) = (0, 0);
        try { (loss, iterations) = Lbfgs(Eval, theta, maxIterations); }
        finally { set_num_threads(threads); }
        using (no_grad())
        {
            var t = tensor(theta, [numLabels, h + 1], dtype: float64);
            var wStd = t[.., ..(int)h]; var bStd = t[.., (int)h];                     // (C, H), (C)
            var wRaw = wStd.div(sd);                                                  // (C, H)
            var bRaw = bStd.sub(wRaw.matmul(mu));                                     // (C)
            return new Head(wRaw.to(float32).MoveToOuterDisposeScope(), bRaw.to(float32).MoveToOuterDisposeScope(), c, iterations, loss);
        }
    }

    /// <summary>Minimises f from <paramref name="x"/> (updated in place) by L-BFGS (history 10, Nocedal &amp; Wright alg. 7.4)
    /// with an Armijo backtracking line search; stops when the largest gradient entry is below 1e-6, the loss changes by
    /// less than 1e-10 (relative), or after <paramref name="maxIterations"/>. Returns the final loss and the iterations.</summary>
    static (double Loss, int Iterations) Lbfgs(Func<double[], double[], double> f, double[] x, int maxIterations, int history = 10)
    {
        int d = x.Length;
        var g = new double[d]; var gNew = new double[d]; var xNew = new double[d]; var dir = new double[d];
        var sHist = new List<double[]>(); var yHist = new List<double[]>(); var rho = new List<double>();
        double fx = f(x, g);
        static double Dot(double[] a, double[] b) { double s = 0; for (int i = 0; i < a.Length; i++) s += a[i] * b[i]; return s; }
        int it = 0;
        for (; it < maxIterations; it++)
        {
            if (g.Max(Math.Abs) < 1e-6) break;
            // Two-loop recursion: dir = −H·g with H the L-BFGS inverse-Hessian estimate (scaled by sᵀy / yᵀy).
            Array.Copy(g, dir, d);
            var alpha = new double[sHist.Count];
            for (int i = sHist.Count - 1; i >= 0; i--) { alpha[i] = rho[i] * Dot(sHist[i], dir); for (int j = 0; j < d; j++) dir[j] -= alpha[i] * yHist[i][j]; }
            double gamma = sHist.Count > 0 ? Dot(sHist[^1], yHist[^1]) / Dot(yHist[^1], yHist[^1]) : 1.0 / Math.Max(1.0, Math.Sqrt(Dot(g, g)));
            for (int j = 0; j < d; j++) dir[j] *= gamma;
            for (int i = 0; i < sHist.Count; i++) { double beta = rho[i] * Dot(yHist[i], dir); for (int j = 0; j < d; j++) dir[j] += sHist[i][j] * (alpha[i] - beta); }
            for (int j = 0; j < d; j++) dir[j] = -dir[j];
            double slope = Dot(g, dir);
            if (slope >= 0) { sHist.Clear(); yHist.Clear(); rho.Clear(); for (int j = 0; j < d; j++) dir[j] = -g[j] * gamma; slope = Dot(g, dir); }
            // Backtracking: the first step that decreases f enough (Armijo, c1 = 1e-4).
            double step = 1, fNew = double.NaN;
            for (int k = 0; k < 40; k++, step *= 0.5)
            {
                for (int j = 0; j < d; j++) xNew[j] = x[j] + step * dir[j];
                fNew = f(xNew, gNew);
                if (double.IsFinite(fNew) && fNew <= fx + 1e-4 * step * slope) break;
            }
            if (!(fNew <= fx)) break;   // no decrease along the direction: converged as far as float64 goes
            var sv = new double[d]; var yv = new double[d];
            for (int j = 0; j < d; j++) { sv[j] = xNew[j] - x[j]; yv[j] = gNew[j] - g[j]; }
            double sy = Dot(sv, yv);
            if (sy > 1e-12)
            {
                if (sHist.Count == history) { sHist.RemoveAt(0); yHist.RemoveAt(0); rho.RemoveAt(0); }
                sHist.Add(sv); yHist.Add(yv); rho.Add(1 / sy);
            }
            Array.Copy(xNew, x, d); Array.Copy(gNew, g, d);
            bool flat = Math.Abs(fx - fNew) < 1e-10 * Math.Max(1, Math.Abs(fx));
            fx = fNew;
            if (flat) { it++; break; }
        }
        return (fx, it);
    }

    /// <summary>Logits (N, C) of the head on raw features (N, H).</summary>
    public static Tensor Logits(Head head, Tensor x) => x.matmul(head.Weight.t()).add(head.Bias);
}
