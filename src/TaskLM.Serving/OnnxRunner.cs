// The ONNX Runtime runtime of the engine: an exported folder (`tasklm export --format onnx`), no libtorch.
using TaskLM.Onnx;

namespace TaskLM.Serving;

/// <summary>
/// Runs an <see cref="OnnxTaskModel"/> for <see cref="ModelEngine"/>: the same right-padded encoder passes and
/// left-padded decoding steps as <see cref="TorchRunner"/>, through the graph's past/present key-values. Sampling
/// is HF's (temperature, top-k, top-p) in managed code with a per-sequence <see cref="Random"/>, because this runtime
/// never loads libtorch (the torch runtime samples with Generation.cs's TokenSampler): seeded samples are reproducible
/// here but are not libtorch's draws, and the repetition penalty is refused (by <see cref="TaskLMModel"/>, before a
/// sequence starts); greedy decoding matches the torch runtime.
/// <paramref name="eosTokenIds"/>: the export's config.json and generation_config.json eos_token_id.
/// </summary>
internal sealed class OnnxRunner(OnnxTaskModel model, IReadOnlyList<int> eosTokenIds) : IModelRunner
{
    OnnxKvCache? _cache;

    public int Positions { get; } = model.Task == "causal-lm" ? model.MaxLength : 0;
    public IReadOnlyList<int> EosTokenIds { get; } = eosTokenIds;
    public int? PadTokenId { get; } = model.Config.PadTokenId;
    public bool HasCache => _cache != null;
    public long CacheLength => _cache?.Length ?? 0;
    // The graph's presents grow by concatenation: the only bound is the context.
    public long CacheCapacity => Positions;

    public void OnEngineThread() { }

    public List<float[]> Forward(IReadOnlyList<EncoderRow> rows, RowKind kind)
    {
        if (kind == RowKind.Embedding)
            throw new BadRequestException("embeddings are not available with the onnx runtime (the exported graph outputs the head's logits only); serve the model folder with --runtime torch", code: "wrong_task");
        int b = rows.Count, t = rows.Max(r => r.Ids.Length);
        long pad = model.Config.PadTokenId ?? 0;
        var ids = new long[b][]; var mask = new long[b][];
        long[][]? types = rows.Any(r => r.TypeIds != null) ? new long[b][] : null;
        for (int i = 0; i < b; i++)
        {
            ids[i] = new long[t]; mask[i] = new long[t];
            Array.Fill(ids[i], pad);
            if (types != null) types[i] = new long[t];
            for (int j = 0; j < rows[i].Ids.Length; j++)
            {
                ids[i][j] = rows[i].Ids[j]; mask[i][j] = 1;
                if (types != null && rows[i].TypeIds != null) types[i][j] = rows[i].TypeIds![j];
            }
        }
        var outs = model.Forward(ids, mask, types);
        var result = new List<float[]>(b);
        if (outs.TryGetValue("start_logits", out var start))
        {
            var end = outs["end_logits"];                                                   // (B, T) each
            for (int i = 0; i < b; i++)
            {
                int n = rows[i].Ids.Length;
                result.Add([.. start.Data.AsSpan(i * t, n), .. end.Data.AsSpan(i * t, n)]);
            }
            return result;
        }
        var logits = outs["logits"];
        if (logits.Shape.Length == 2)                                                       // (B, C)
        {
            int c = (int)logits.Shape[1];
            for (int i = 0; i < b; i++) result.Add(logits.Data.AsSpan(i * c, c).ToArray());
        }
        else                                                                                // (B, T, C)
        {
            int c = (int)logits.Shape[2];
            for (int i = 0; i < b; i++) result.Add(logits.Data.AsSpan(i * t * c, rows[i].Ids.Length * c).ToArray());
        }
        return result;
    }

    public int[] Decode(List<List<int>> ids, List<List<int>> mask, int? newCapacity, IReadOnlyList<Sequence> rows)
    {
        int b = rows.Count;
        var fullMask = mask.Select(m => m.Select(x => (long)x).ToArray()).ToArray();       // (B, P+T)
        long[][] step, positions;
        if (newCapacity is not null || _cache is null)
        {
            _cache?.Dispose();
            _cache = model.NewCache(b);
            step = ids.Select(r => r.Select(x => (long)x).ToArray()).ToArray();             // (B, S)
            positions = mask.Select(RunnerInputs.Positions).ToArray();
        }
        else
        {
            step = ids.Select(r => new long[] { r[^1] }).ToArray();                         // (B, 1)
            positions = mask.Select(m => new[] { RunnerInputs.Positions(m)[^1] }).ToArray();
        }
        var logits = model.DecodeStep(step, fullMask, positions, _cache);                   // (B, T, V)
        int t = (int)logits.Shape[1], v = (int)logits.Shape[2];
        var next = new int[b];
        for (int r = 0; r < b; r++)
        {
            var s = rows[r];
            if (s.Finished) continue;
            var row = logits.Data.AsSpan((r * t + t - 1) * v, v);
            next[r] = s.Options.DoSample ? Sample(row, s) : OnnxTaskModel.Argmax(row.ToArray());
        }
        return next;
    }

    /// <summary>HF's processors in HF's order (temperature, top-k, top-p keeping at least one token), then a draw.</summary>
    static int Sample(ReadOnlySpan<float> scores, Sequence s)
    {
        var o = s.Options;
        var rng = (Random)(s.Sampler ??= o.Seed is long seed ? new Random(unchecked((int)(seed ^ (seed >> 32)))) : new Random());
        int v = scores.Length;
        var x = new double[v];
        for (int i = 0; i < v; i++) x[i] = scores[i] / o.Temperature;
        if (o.TopK > 0 && o.TopK < v)
        {
            double kth = x.OrderByDescending(z => z).ElementAt(o.TopK - 1);
            for (int i = 0; i < v; i++) if (x[i] < kth) x[i] = double.NegativeInfinity;
        }
        if (o.TopP < 1.0)
        {
            // Ascending order; drop tokens whose cumulative probability is <= 1 - top_p; the most likely always stays.
            var order = Enumerable.Range(0, v).OrderBy(i => x[i]).ToArray();
            var p = Softmax(x);
            double cum = 0;
            for (int k = 0; k < v - 1; k++)
            {
                cum += p[order[k]];
                if (cum <= 1 - o.TopP) x[order[k]] = double.NegativeInfinity;
            }
        }
        var probs = Softmax(x);
        double u = rng.NextDouble(), acc = 0;
        int last = 0;
        for (int i = 0; i < v; i++)
        {
            if (probs[i] <= 0) continue;
            last = i;
            acc += probs[i];
            if (u < acc) return i;
        }
        return last;
    }

    static double[] Softmax(double[] x)
    {
        double max = x.Max(), sum = 0;
        var p = new double[x.Length];
        for (int i = 0; i < x.Length; i++) sum += p[i] = double.IsNegativeInfinity(x[i]) ? 0 : Math.Exp(x[i] - max);
        for (int i = 0; i < p.Length; i++) p[i] /= sum;
        return p;
    }

    public void ResetCache() { _cache?.Dispose(); _cache = null; }

    public void Dispose()
    {
        ResetCache();
        model.Dispose();
    }
}
