// Text generation for causal LMs: greedy or sampled decoding with a KV cache, batches with left padding, streaming.
using TorchSharp;
using static TorchSharp.torch;

namespace TaskLM.Models;

/// <summary>How to decode, with Hugging Face's generate() names and meanings.</summary>
public sealed class GenerationOptions
{
    public int MaxNewTokens { get; set; } = 20;
    /// <summary>false = greedy (argmax); true = sample from the processed distribution.</summary>
    public bool DoSample { get; set; }
    public double Temperature { get; set; } = 1.0;
    /// <summary>Keep the k most likely tokens (0 = off).</summary>
    public int TopK { get; set; }
    /// <summary>Keep the smallest set of tokens whose probability reaches p (1 = off).</summary>
    public double TopP { get; set; } = 1.0;
    /// <summary>HF's CTRL penalty: a seen token's logit is divided by it when positive, multiplied when negative (1 = off).</summary>
    public double RepetitionPenalty { get; set; } = 1.0;
    /// <summary>Seed of the sampling generator (null = torch's default generator).</summary>
    public long? Seed { get; set; }
    /// <summary>Stop a sequence at this id (default: config eos_token_id; set -1 to never stop at EOS).</summary>
    public int? EosTokenId { get; set; }
    /// <summary>Id used to left-pad prompts and to fill finished rows (default: pad_token_id, else EOS, else 0).</summary>
    public int? PadTokenId { get; set; }
    /// <summary>Stop a sequence once its decoded continuation contains one of these (needs a decoder).</summary>
    public IReadOnlyList<string>? StopStrings { get; set; }
    /// <summary>Use the KV cache (each new token runs one position); false reruns the whole sequence each step.</summary>
    public bool UseCache { get; set; } = true;
}

/// <summary>Decodes continuations of prompts with a GPT-2 LM head model.</summary>
public static class Generation
{
    /// <summary>
    /// Generates continuations of each prompt (token ids). Prompts of different lengths are left-padded and
    /// run as one batch, with position ids counted from the attention mask as HF does. Returns the new
    /// tokens of each row (ending with EOS when it stopped there). <paramref name="onToken"/>(row, token) is
    /// called as each token is chosen; <paramref name="decode"/> turns ids into text for stop strings.
    /// </summary>
    public static List<int[]> Generate(Gpt2 model, IReadOnlyList<IReadOnlyList<int>> prompts, GenerationOptions options,
        Action<int, int>? onToken = null, Func<IReadOnlyList<int>, string>? decode = null)
    {
        var lm = model.LMHead ?? throw new InvalidOperationException($"generation needs a causal-lm model, not '{model.Task}'");
        if (prompts.Count == 0) return new();
        if (prompts.Any(p => p.Count == 0)) throw new ArgumentException("every prompt needs at least one token");
        if (options.StopStrings is { Count: > 0 } && decode is null) throw new ArgumentException("stop strings need a tokenizer to decode with");
        var cfg = model.Cfg;
        int eos = options.EosTokenId ?? cfg.eos_token_id ?? -1;
        int pad = options.PadTokenId ?? cfg.pad_token_id ?? (eos >= 0 ? eos : 0);
        int b = prompts.Count, longest = prompts.Max(p => p.Count);
        if (longest + options.MaxNewTokens > cfg.n_positions)
            throw new ArgumentException($"prompt ({longest}) + max_new_tokens ({options.MaxNewTokens}) exceeds n_positions={cfg.n_positions}");
        var device = lm.Transformer.TokenEmbedding.device;
        var dtype = lm.Transformer.TokenEmbedding.dtype;

        // Rows as ids with left padding; mask 0 on pads. (B, L) each, kept host-side and grown per step.
        var ids = prompts.Select(p => Enumerable.Repeat(pad, longest - p.Count).Concat(p).ToList()).ToList();
        var mask = prompts.Select(p => Enumerable.Repeat(0, longest - p.Count).Concat(Enumerable.Repeat(1, p.Count)).ToList()).ToList();
        var outputs = Enumerable.Range(0, b).Select(_ => new List<int>()).ToArray();
        var done = new bool[b];
        using var gen = options.Seed is long seed ? new Generator((ulong)seed, device) : null;
        using var cache = options.UseCache ? new Gpt2KvCache(cfg, b, longest + options.MaxNewTokens, device, dtype) : null;
        bool wasTraining = lm.training;
        lm.eval();
        try
        {
            using var noGrad = no_grad();
            for (int step = 0; step < options.MaxNewTokens && !done.All(d => d); step++)
            {
                using var scope = NewDisposeScope();
                var fullMask = Tensor2D(mask, device);                                        // (B, S)
                // HF: position = (number of real tokens before it) - 1; pads get 1 (never attended).
                var positions = fullMask.cumsum(1, ScalarType.Int64).sub(1).masked_fill(fullMask.eq(0), 1);
                Tensor logits;
                if (cache is null || step == 0)
                {
                    logits = lm.Logits(Tensor2D(ids, device), fullMask, positions, cache);   // (B, S, V)
                }
                else
                {
                    var last = tensor(ids.Select(r => (long)r[^1]).ToArray(), dtype: int64, device: device).view(b, 1);
                    logits = lm.Logits(last, fullMask, positions.narrow(1, positions.shape[1] - 1, 1), cache); // (B, 1, V)
                }
                var scores = logits.select(1, logits.shape[1] - 1).to(float32);               // (B, V)
                scores = Process(scores, ids, device, options);
                Tensor next = options.DoSample
                    ? multinomial(softmax(scores, -1), 1, generator: gen).squeeze(1)
                    : scores.argmax(-1);                                                      // (B,)
                long[] chosen = next.cpu().data<long>().ToArray();
                for (int r = 0; r < b; r++)
                {
                    int tok = done[r] ? pad : (int)chosen[r];
                    ids[r].Add(tok);
                    mask[r].Add(1);
                    if (done[r]) continue;
                    outputs[r].Add(tok);
                    onToken?.Invoke(r, tok);
                    if (tok == eos) done[r] = true;
                    else if (options.StopStrings is { Count: > 0 } stops)
                    {
                        string text = decode!(outputs[r]);
                        if (stops.Any(s => text.Contains(s, StringComparison.Ordinal))) done[r] = true;
                    }
                }
            }
        }
        finally { if (wasTraining) lm.train(); }
        return outputs.Select(o => o.ToArray()).ToList();
    }

    /// <summary>HF's logits processors, in HF's order: repetition penalty, then (sampling only) temperature,
    /// top-k, top-p. scores (B, V) float32.</summary>
    static Tensor Process(Tensor scores, List<List<int>> ids, Device device, GenerationOptions o)
    {
        if (o.RepetitionPenalty != 1.0)
        {
            var seen = Tensor2D(ids, device);                                                 // (B, S)
            var s = scores.gather(1, seen);
            s = where(s.lt(0), s * o.RepetitionPenalty, s / o.RepetitionPenalty);
            scores = scores.scatter(1, seen, s);
        }
        if (!o.DoSample) return scores;
        if (o.Temperature <= 0) throw new ArgumentException("temperature must be > 0 when sampling (use greedy decoding instead)");
        if (o.Temperature != 1.0) scores = scores / o.Temperature;
        if (o.TopK > 0 && o.TopK < scores.shape[1])
        {
            var kth = scores.topk(o.TopK, dim: -1).values.select(1, o.TopK - 1).unsqueeze(1); // (B, 1)
            scores = scores.masked_fill(scores.lt(kth), double.NegativeInfinity);
        }
        if (o.TopP < 1.0)
        {
            if (o.TopP <= 0) throw new ArgumentException("top_p must be in (0, 1]");
            // HF: sort ascending, drop tokens whose cumulative probability is <= 1 - top_p, keep at least one.
            var (sorted, order) = scores.sort(dim: -1, descending: false);
            var cum = softmax(sorted, -1).cumsum(-1);
            var remove = cum.le(1 - o.TopP);
            remove[TensorIndex.Colon, TensorIndex.Single(-1)] = tensor(false, device: device);
            var removeOrig = remove.scatter(1, order, remove);
            scores = scores.masked_fill(removeOrig, double.NegativeInfinity);
        }
        return scores;
    }

    static Tensor Tensor2D(List<List<int>> rows, Device device)
    {
        int b = rows.Count, l = rows[0].Count;
        var flat = new long[b * l];
        for (int r = 0; r < b; r++) for (int c = 0; c < l; c++) flat[r * l + c] = rows[r][c];
        return tensor(flat, new long[] { b, l }, dtype: int64, device: device);
    }
}
