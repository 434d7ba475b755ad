// The causal-LM contract the generation stack decodes with, its KV cache (key/value head count aware), and the one causal mask.
using TorchSharp;
using static TorchSharp.torch;

namespace TaskLM.Models;

/// <summary>
/// A causal language model as the generation stack sees it (<see cref="TextGenerator"/>, <see cref="DecodeSession"/>):
/// logits for ids with an optional KV cache and explicit positions, and the config facts decoding needs (with
/// <see cref="ITaskModel.MaxPositions"/> and <see cref="ITaskModel.PadTokenId"/>). GPT-2's and
/// the Llama family's LM heads implement it.
/// </summary>
public interface ICausalLM : ITaskModel
{
    /// <summary>(B, T) ids → (B, T, V) logits. <paramref name="attentionMask"/> (B, past+T) 1 = real, 0 = pad;
    /// <paramref name="positionIds"/> (B, T), default past..past+T-1; <paramref name="cache"/> is appended to.</summary>
    Tensor Logits(Tensor inputIds, Tensor? attentionMask = null, Tensor? positionIds = null, KvCache? cache = null);

    /// <summary>An empty cache for <paramref name="batch"/> rows of up to <paramref name="capacity"/> positions, on the
    /// model's device and in its dtype, with the model's layer count, key/value heads and head size.</summary>
    KvCache NewKvCache(long batch, long capacity);

    /// <summary>The ids a sequence ends at: config.json's eos_token_id (each one when it is a list), then
    /// generation_config.json's (an id or a list), without repeats; empty when neither gives one.</summary>
    IReadOnlyList<int> EosTokenIds { get; }

    /// <summary>The device the weights are on.</summary>
    Device Device { get; }
}

/// <summary>Per-layer key/value buffers for incremental decoding: (B, n_kv_heads, capacity, head_dim) each, filled up
/// to <see cref="Length"/>. Preallocated so each new token writes one position instead of copying the prefix. With
/// grouped-query attention only the key/value heads are stored (n_kv_heads &lt; n_heads); the attention repeats them.</summary>
public sealed class KvCache : IDisposable
{
    readonly Tensor[] _k, _v;
    /// <summary>Positions filled so far.</summary>
    public long Length { get; internal set; }
    public long Capacity { get; }
    /// <summary>Key/value heads per layer (num_key_value_heads; n_head for multi-head attention).</summary>
    public int KvHeads { get; }

    /// <summary>Zeroed buffers of (batch, kvHeads, capacity, headDim) for each of <paramref name="layers"/> layers.</summary>
    public KvCache(int layers, long batch, int kvHeads, long capacity, int headDim, Device device, ScalarType dtype)
    {
        Capacity = capacity; KvHeads = kvHeads;
        _k = new Tensor[layers]; _v = new Tensor[layers];
        for (int i = 0; i < layers; i++)
        {
            // outlive any dispose scope of the caller's steps
            _k[i] = zeros(new[] { batch, kvHeads, capacity, headDim }, dtype, device).DetachFromDisposeScope();
            _v[i] = zeros(new[] { batch, kvHeads, capacity, headDim }, dtype, device).DetachFromDisposeScope();
        }
    }

    /// <summary>Writes the new (B, n_kv, T, hd) keys/values of a layer at [Length, Length+T) and returns the
    /// views over all (B, n_kv, Length+T, hd) positions.</summary>
    internal (Tensor k, Tensor v) Append(int layer, Tensor k, Tensor v)
    {
        long t = k.shape[2];
        if (Length + t > Capacity) throw new InvalidOperationException($"KV cache full: {Length}+{t} > {Capacity} positions");
        if (k.shape[1] != KvHeads) throw new ArgumentException($"KV cache holds {KvHeads} key/value heads, got {k.shape[1]}");
        _k[layer].narrow(2, Length, t).copy_(k);
        _v[layer].narrow(2, Length, t).copy_(v);
        return (_k[layer].narrow(2, 0, Length + t), _v[layer].narrow(2, 0, Length + t));
    }

    public void Dispose()
    {
        foreach (var t in _k) t.Dispose();
        foreach (var t in _v) t.Dispose();
    }
}

/// <summary>The attention mask every decoder body builds the same way.</summary>
public static class CausalMask
{
    /// <summary>
    /// For T new queries after <paramref name="past"/> cached positions: null with <c>causal</c> true when the fused
    /// causal SDPA path applies (nothing padded, no cache prefix), else an explicit bool mask (B or 1, 1, T, past+T),
    /// true = may attend. <paramref name="attentionMask"/> (B, past+T): 1 = real, 0 = pad.
    /// </summary>
    public static (Tensor? mask, bool causal) Build(Tensor? attentionMask, long b, long past, long t, Device device)
    {
        bool padded = attentionMask is not null && attentionMask.eq(0).any().item<bool>();
        if (!padded && !(past > 0 && t > 1)) return (null, past == 0);
        long s = past + t;
        var qi = arange(past, s, device: device).view(t, 1);               // query positions (T, 1)
        var kj = arange(0, s, device: device).view(1, s);                  // key positions (1, S)
        var mask = kj.le(qi).view(1, 1, t, s);                             // causal (1, 1, T, S)
        if (padded)
        {
            var keep = attentionMask!.to(ScalarType.Bool).view(b, 1, 1, s);
            // A pad query that may attend to nothing would give NaN rows; let it see itself (its output is
            // never used: real tokens never attend to pads).
            mask = mask.logical_and(keep).logical_or(kj.eq(qi).view(1, 1, t, s));
        }
        return (mask, false);
    }

    /// <summary>
    /// Packed rows (data.packing): several examples laid end to end in one row, each with position ids restarting at
    /// 0. A new example starts wherever a position id is not its predecessor's + 1 (transformers' rule for packed
    /// position_ids). Returns a bool mask (B, 1, T, T), true = may attend: causal and block-diagonal, so no token
    /// sees another example's; padding (attentionMask 0) is masked as in <see cref="Build"/>.
    /// </summary>
    public static Tensor Packed(Tensor positionIds, Tensor? attentionMask)
    {
        long b = positionIds.shape[0], t = positionIds.shape[1];
        var pos = positionIds.to(ScalarType.Int64);                                             // (B, T)
        var prev = cat([pos.narrow(1, 0, 1) - 1, pos.narrow(1, 0, t - 1)], 1);                  // (B, T): each token's predecessor
        var segment = pos.ne(prev + 1).to(ScalarType.Int64).cumsum(1);                         // (B, T): example index in the row
        var same = segment.unsqueeze(2).eq(segment.unsqueeze(1));                               // (B, T, T)
        var idx = arange(t, device: positionIds.device);
        var causal = idx.view(1, t).le(idx.view(t, 1));                                         // (T, T): key j <= query i
        var mask = same.logical_and(causal).unsqueeze(1);                                       // (B, 1, T, T)
        if (attentionMask is not null)
        {
            var keep = attentionMask.to(ScalarType.Bool).view(b, 1, 1, t);
            mask = mask.logical_and(keep).logical_or(idx.view(t, 1).eq(idx.view(1, t)).view(1, 1, t, t));   // a pad sees itself (no NaN rows)
        }
        return mask;
    }
}
