// The TorchSharp runtime of the engine: a TaskLM model (run folder or HF folder) on a libtorch device.
using TaskLM.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace TaskLM.Serving;

/// <summary>Runs a TaskLM <see cref="ITaskModel"/> for <see cref="ModelEngine"/>. All calls into Models/ are in this file.</summary>
internal sealed class TorchRunner : IModelRunner
{
    readonly ITaskModel _model;
    readonly ICausalLM? _lm;     // the causal LM that decodes (GPT-2, the Llama family; a LoRA run's base, its LoRA layers in place), else null
    readonly Device _device;
    readonly int _threads;
    KvCache? _cache;

    public TorchRunner(ITaskModel model, Device device)
    {
        _model = model; _device = device;
        // A LoRA model wraps its base; the adapters are swapped into the base's modules, so the base decodes with them.
        if ((model is LoraModel lora ? lora.Base : model) is ICausalLM lm)
        {
            _lm = lm;
            Positions = lm.MaxPositions;
            EosTokenIds = lm.EosTokenIds;
            PadTokenId = lm.PadTokenId;
        }
        // libtorch's intra-op thread count (OpenMP) is per OS thread: carry the caller's setting (--threads) to the model thread.
        _threads = get_num_threads();
    }

    public int Positions { get; }
    public IReadOnlyList<int> EosTokenIds { get; } = [];
    public int? PadTokenId { get; }
    public bool HasCache => _cache != null;
    public long CacheLength => _cache?.Length ?? 0;
    public long CacheCapacity => _cache?.Capacity ?? 0;

    public void OnEngineThread() => set_num_threads(_threads);

    public List<float[]> Forward(IReadOnlyList<EncoderRow> rows, RowKind kind)
    {
        int b = rows.Count, t = rows.Max(r => r.Ids.Length);
        int pad = _model.PadTokenId ?? 0;
        var ids = new long[b * t]; var mask = new long[b * t];
        long[]? types = rows.Any(r => r.TypeIds != null) ? new long[b * t] : null;
        Array.Fill(ids, pad);
        for (int i = 0; i < b; i++)
            for (int j = 0; j < rows[i].Ids.Length; j++)
            {
                ids[i * t + j] = rows[i].Ids[j]; mask[i * t + j] = 1;
                if (types != null && rows[i].TypeIds != null) types[i * t + j] = rows[i].TypeIds![j];
            }
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var input = tensor(ids, [b, t], device: _device);
        var attn = tensor(mask, [b, t], device: _device);
        var typeT = types == null ? null : tensor(types, [b, t], device: _device);
        var result = new List<float[]>(b);
        if (kind == RowKind.Embedding)
        {
            var hidden = LastHidden(input, attn, typeT);                                  // (B, T, H)
            var m = attn.unsqueeze(-1).to(hidden.dtype);                                   // (B, T, 1)
            var mean = (hidden * m).sum(1) / m.sum(1).clamp_min(1);                        // (B, H)
            var flat = mean.to(float32).cpu().data<float>().ToArray();
            int h = (int)mean.shape[1];
            for (int i = 0; i < b; i++) result.Add(flat.AsSpan(i * h, h).ToArray());
            return result;
        }
        var o = _model.Forward(new ModelBatch { InputIds = input, AttentionMask = attn, TokenTypeIds = typeT });
        if (o.StartLogits is not null)
        {
            var s = o.StartLogits.to(float32).cpu().data<float>().ToArray();               // (B, T)
            var e = o.EndLogits!.to(float32).cpu().data<float>().ToArray();
            for (int i = 0; i < b; i++)
            {
                int n = rows[i].Ids.Length;
                result.Add([.. s.AsSpan(i * t, n), .. e.AsSpan(i * t, n)]);
            }
            return result;
        }
        var logits = o.Logits!.to(float32).cpu();
        var data = logits.data<float>().ToArray();
        if (logits.dim() == 2)                                                              // (B, C)
        {
            int c = (int)logits.shape[1];
            for (int i = 0; i < b; i++) result.Add(data.AsSpan(i * c, c).ToArray());
        }
        else                                                                                // (B, T, C)
        {
            int c = (int)logits.shape[2];
            for (int i = 0; i < b; i++) result.Add(data.AsSpan(i * t * c, rows[i].Ids.Length * c).ToArray());
        }
        return result;
    }

    /// <summary>The family's last hidden states (B, T, H), from the base model module HF names "bert" / "transformer".</summary>
    Tensor LastHidden(Tensor ids, Tensor mask, Tensor? types)
    {
        foreach (var (name, child) in _model.Module.named_children())
        {
            if (child is BertModel bert) return bert.Forward(ids, mask, types).sequence_output;
            if (child is GPT2Model gpt) return gpt.Forward(ids, mask);
            if (name == "transformer" && child is GPT2Model g2) return g2.Forward(ids, mask);
        }
        if (_model.Module is GPT2LMHeadModel lm) return lm.Transformer.Forward(ids, mask);
        throw new BadRequestException($"embeddings are not available for this '{_model.Task}' model", code: "wrong_task");
    }

    public int[] Decode(List<List<int>> ids, List<List<int>> mask, int? newCapacity, IReadOnlyList<Sequence> rows)
    {
        var lm = _lm ?? throw new InvalidOperationException($"a '{_model.Task}' model does not generate");
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        if (newCapacity is int capacity)
        {
            _cache?.Dispose();
            _cache = lm.NewKvCache(rows.Count, capacity);
        }
        // The decoding pass and the sampler are generate's (Generation.cs); only the batching is the engine's.
        var scores = Generation.NextLogits(lm, ids, mask, _cache, prefill: newCapacity is not null);   // (B, V)
        var next = new int[rows.Count];
        for (int r = 0; r < rows.Count; r++)
        {
            var s = rows[r];
            if (s.Finished) continue;
            // Each sequence its own settings and seed; the repetition penalty sees its own ids (prompt + generated), no pads.
            var sampler = (TokenSampler)(s.Sampler ??= new TokenSampler(s.Options, lm.Device));
            next[r] = (int)sampler.Choose(scores.narrow(0, r, 1), [s.Ids]).item<long>();
        }
        return next;
    }

    public void ResetCache() { _cache?.Dispose(); _cache = null; }

    public void Dispose()
    {
        ResetCache();
        _model.Module.Dispose();
    }
}
