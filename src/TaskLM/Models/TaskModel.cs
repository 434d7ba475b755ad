// What every model family offers training, evaluation and serving: a batch in, logits (and loss) out.
using System.Text.Json.Nodes;
using TaskLM.Hf;
using TorchSharp;
using static TorchSharp.torch;

namespace TaskLM.Models;

/// <summary>One batch as Hugging Face models take it. All tensors (B, T) int64 unless noted.</summary>
public sealed class ModelBatch
{
    public required Tensor InputIds { get; init; }
    /// <summary>1 = real token, 0 = padding.</summary>
    public Tensor? AttentionMask { get; init; }
    public Tensor? TokenTypeIds { get; init; }
    /// <summary>Packed rows (data.packing, causal LM): (B, T) position ids restarting at 0 for each example; the
    /// decoder keeps attention inside each example (<see cref="CausalMask.Packed"/>). Null = one example per row.</summary>
    public Tensor? PositionIds { get; init; }
    /// <summary>Causal/masked LM: (B, T) with -100 ignored (causal LM shifts inside the model, as HF);
    /// sequence classification: (B,); token classification: (B, T) with -100 ignored.</summary>
    public Tensor? Labels { get; init; }
    /// <summary>Extractive QA answer span, (B,) each.</summary>
    public Tensor? StartPositions { get; init; }
    public Tensor? EndPositions { get; init; }
}

/// <summary>A forward pass's result: <c>Loss</c> when labels were given, as HF computes it.</summary>
public sealed class ModelOutput
{
    /// <summary>Scalar loss, or null without labels.</summary>
    public Tensor? Loss { get; init; }
    /// <summary>LM: (B, T, V); sequence classification: (B, C); token classification: (B, T, C);
    /// QA: null (see start/end).</summary>
    public Tensor? Logits { get; init; }
    /// <summary>QA: (B, T) each.</summary>
    public Tensor? StartLogits { get; init; }
    public Tensor? EndLogits { get; init; }
}

/// <summary>A model of one family with one task head, as training and evaluation drive it.</summary>
public interface ITaskModel
{
    /// <summary>HF model_type: "gpt2" or "bert".</summary>
    string ModelType { get; }

    /// <summary>The family's declared facts (body prefix, layer names, embeddings, LoRA targets); null for a
    /// model outside the registered families (a test stand-in).</summary>
    ModelFamily? Family => ModelFamilies.Find(ModelType);

    /// <summary>Head: causal-lm, masked-lm, classification, token-classification, question-answering.</summary>
    string Task { get; }

    /// <summary>The HF config.json content, including architectures, num_labels/id2label for heads.</summary>
    JsonObject Config { get; }

    /// <summary>The longest input the position table takes (config.json's n_positions / max_position_embeddings);
    /// a model outside the families (a test stand-in) reads its config, no limit when it names none.</summary>
    int MaxPositions => HfConfig.MaxPositionsOf(Config) ?? int.MaxValue;

    /// <summary>config.json's pad_token_id, or null.</summary>
    int? PadTokenId => HfConfig.PadTokenIdOf(Config);

    /// <summary>Rows of the input (and tied output) embedding, config.json's vocab_size: ids must stay below it. No limit
    /// when a model outside the families names none.</summary>
    int VocabSize => HfConfig.VocabSizeOf(Config) ?? int.MaxValue;

    /// <summary>The TorchSharp module (parameters named with HF's keys, e.g. transformer.h.0.attn.c_attn.weight).</summary>
    nn.Module Module { get; }

    /// <summary>Runs the model on a batch (on the module's device).</summary>
    ModelOutput Forward(ModelBatch batch);

    /// <summary>Writes config.json + model.safetensors that Python's from_pretrained loads.</summary>
    void SavePretrained(string directory);
}

/// <summary>Losses every family's heads compute the same way Hugging Face does.</summary>
public static class HeadLosses
{
    /// <summary>Logits in fp32 for the loss (a bf16 model's loss is computed in fp32, as under autocast); fp32 logits
    /// are returned as they are, without a copy.</summary>
    public static Tensor Fp32(Tensor logits) => logits.dtype == ScalarType.Float32 ? logits : logits.to(ScalarType.Float32);

    /// <summary>HF's sequence-classification loss: <paramref name="problemType"/> when set, else regression (MSE)
    /// when num_labels == 1, single-label CE for integer labels, multi-label BCE-with-logits otherwise.
    /// Returns the loss and the problem type it used (HF records it in the config).</summary>
    public static (Tensor Loss, string ProblemType) SequenceClassification(Tensor logits, Tensor labels, int numLabels, string? problemType)
    {
        logits = Fp32(logits);
        problemType ??= numLabels == 1 ? "regression"
            : labels.dtype is ScalarType.Int64 or ScalarType.Int32 ? "single_label_classification" : "multi_label_classification";
        var loss = problemType switch
        {
            "regression" => numLabels == 1 ? nn.functional.mse_loss(logits.squeeze(-1), labels.to(logits.dtype).squeeze(-1)) : nn.functional.mse_loss(logits, labels.to(logits.dtype)),
            "single_label_classification" => nn.functional.cross_entropy(logits.view(-1, numLabels), labels.view(-1).to(ScalarType.Int64)),
            "multi_label_classification" => nn.functional.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype)),
            _ => throw new InvalidDataException($"config.json: unknown problem_type '{problemType}'"),
        };
        return (loss, problemType);
    }

    /// <summary>HF's causal-LM loss: position t predicts label t+1, -100 ignored. The labels are shifted instead of the
    /// logits (the last position gets -100): the same mean without copying the (B, T-1, V) logits slice, and a backward
    /// without a (B, T, V) zero-filled gradient. <paramref name="logits"/>: (B, T, V); <paramref name="labels"/>: (B, T).</summary>
    public static Tensor CausalLm(Tensor logits, Tensor labels)
    {
        long b = logits.shape[0], t = logits.shape[1], v = logits.shape[2];
        var targets = torch.cat([labels.narrow(1, 1, t - 1), torch.full(b, 1, -100L, dtype: labels.dtype, device: labels.device)], 1);  // (B, T)
        var flat = logits.reshape(-1, v);                                                           // (B*T, V), no copy (contiguous)
        return nn.functional.cross_entropy(Fp32(flat), targets.view(-1), ignore_index: -100);
    }

    /// <summary>A decoder's sequence-classification logits as HF pools them: the row of the rightmost position whose id
    /// is not <paramref name="padTokenId"/> (0 when all are pads); without a pad id only a batch of one sequence
    /// (its last position). <paramref name="scores"/>: (B, T, C) per position; <paramref name="ids"/>: (B, T); returns (B, C).</summary>
    public static Tensor LastNonPad(Tensor scores, Tensor ids, int? padTokenId, string family)
    {
        long b = ids.shape[0], t = ids.shape[1];
        Tensor last;
        if (padTokenId is int pad)
            last = (torch.arange(t, dtype: ScalarType.Int64, device: ids.device) * ids.ne(pad).to(ScalarType.Int64)).argmax(-1);  // (B,)
        else
        {
            if (b != 1) throw new InvalidOperationException($"{family} sequence classification needs pad_token_id in config.json to pool batches of more than one sequence (as in HF)");
            last = torch.full(new long[] { 1 }, t - 1, dtype: ScalarType.Int64, device: ids.device);
        }
        long c = scores.shape[2];
        return scores.gather(1, last.view(b, 1, 1).expand(b, 1, c)).squeeze(1);                     // (B, C)
    }
}
