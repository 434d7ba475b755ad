// What the engine's scheduler asks of a runtime: right-padded encoder passes, and decoding steps over a KV cache.
namespace TaskLM.Serving;

/// <summary>
/// A model runtime under <see cref="ModelEngine"/>: TorchSharp over a run or HF folder (<see cref="TorchRunner"/>), or
/// ONNX Runtime over an exported folder (<see cref="OnnxRunner"/>). Every call comes from the engine's one thread.
/// The scheduler (batching, queueing, cancellation, stop texts) is the engine's; a runner only runs passes.
/// </summary>
internal interface IModelRunner : IDisposable
{
    /// <summary>Context of a causal LM (n_positions); 0 for a model that does not generate.</summary>
    int Positions { get; }
    /// <summary>The ids a causal LM's sequence ends at: config.json's eos_token_id (each one when a list), then
    /// generation_config.json's; empty when neither gives one.</summary>
    IReadOnlyList<int> EosTokenIds { get; }
    /// <summary>config.json's pad_token_id of a causal LM, when it has one.</summary>
    int? PadTokenId { get; }

    /// <summary>Called once on the engine thread before its first pass (per-thread runtime settings).</summary>
    void OnEngineThread();

    /// <summary>One right-padded forward pass. Per row: classification (C); token classification (T·C) over the
    /// row's own T positions; QA start then end logits (2T); embedding (H).</summary>
    List<float[]> Forward(IReadOnlyList<EncoderRow> rows, RowKind kind);

    /// <summary>Whether a KV cache is held, its filled positions and its room.</summary>
    bool HasCache { get; }
    long CacheLength { get; }
    long CacheCapacity { get; }

    /// <summary>
    /// One decoding step of the running batch. <paramref name="ids"/> and <paramref name="mask"/> are the rows (B, S),
    /// left-padded (mask 0 on pads), the last column new. With <paramref name="newCapacity"/>, a fresh cache of that
    /// many positions is started and all S positions run (prefill); without, only the last column runs through the cache.
    /// Returns each row's next token, chosen by the row's own options and sampler (kept in <see cref="Sequence.Sampler"/>:
    /// the torch runtime's is Generation.cs's <c>TokenSampler</c>, the one <c>generate</c> uses); finished rows get any value.
    /// </summary>
    int[] Decode(List<List<int>> ids, List<List<int>> mask, int? newCapacity, IReadOnlyList<Sequence> rows);

    /// <summary>Drops the KV cache.</summary>
    void ResetCache();
}

/// <summary>Inputs shared by the runners: the position ids HF gives a left-padded row.</summary>
internal static class RunnerInputs
{
    /// <summary>HF: position = (number of real tokens before it) - 1; pads get 1 (never attended).</summary>
    public static long[] Positions(IReadOnlyList<int> mask)
    {
        var pos = new long[mask.Count];
        long seen = 0;
        for (int i = 0; i < mask.Count; i++) { seen += mask[i]; pos[i] = mask[i] == 0 ? 1 : seen - 1; }
        return pos;
    }
}
