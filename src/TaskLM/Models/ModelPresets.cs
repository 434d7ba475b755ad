// The one preset table: named model shapes (published GPT-2 and BERT sizes plus small CPU ones) and their cost in parameters, memory and FLOPs.
using System.Text.Json.Nodes;

namespace TaskLM.Models;

/// <summary>One named shape. GPT-2: n_layer/n_embd/n_head/n_positions; BERT: num_hidden_layers/
/// hidden_size/num_attention_heads/max_position_embeddings. Inner = MLP width (4 x hidden unless
/// <paramref name="InnerSize"/> says otherwise); <paramref name="KvHeads"/> = key/value heads (grouped-query attention,
/// Llama family); <paramref name="Config"/> = further config.json keys of the shape (rope_theta, token ids).</summary>
public sealed record ModelPreset(string Name, string ModelType, int Layers, int Hidden, int Heads, int Vocab, int MaxPositions, string Source,
    int? KvHeads = null, int? InnerSize = null, IReadOnlyDictionary<string, object>? Config = null)
{
    public int Inner => InnerSize ?? 4 * Hidden;

    /// <summary>The family that builds this shape (from <see cref="ModelType"/>).</summary>
    public ModelFamily Family => ModelFamilies.Get(ModelType, $"preset {Name}");

    /// <summary>Parameter count of the body as HF builds it (the family counts: GPT2Model, BertModel with its pooler).</summary>
    public long Parameters => Family.CountParameters(this);

    /// <summary>Context length the FLOP estimate assumes.</summary>
    public int Context => MaxPositions;

    /// <summary>Training FLOPs per token: 6N (forward 2N, backward 4N) plus attention scores and mixing,
    /// 6 · n_layer · T · d_model (Kaplan et al. 2020, forward 2·L·T·d), at T = the full context.</summary>
    public double TrainFlopsPerToken => 6.0 * Parameters + 6.0 * Layers * (double)Context * Hidden;

    /// <summary>Bytes of fp32 weights.</summary>
    public long WeightBytesFp32 => 4 * Parameters;
    public long WeightBytesBf16 => 2 * Parameters;

    /// <summary>fp32 training with AdamW: weights + gradients + two moments = 16 bytes a parameter,
    /// activations not included (they scale with batch x sequence).</summary>
    public long AdamWTrainingBytes => 16 * Parameters;
}

/// <summary>The preset table shared by the families and `tasklm models`.</summary>
public static class ModelPresets
{
    public static readonly IReadOnlyList<ModelPreset> All = new ModelPreset[]
    {
        new("gpt2-tiny", "gpt2", 2, 128, 2, 50257, 256, "TaskLM CPU size"),
        new("gpt2-mini", "gpt2", 4, 256, 4, 50257, 512, "TaskLM CPU size"),
        new("gpt2", "gpt2", 12, 768, 12, 50257, 1024, "Radford et al. 2019 (124M)"),
        new("gpt2-medium", "gpt2", 24, 1024, 16, 50257, 1024, "Radford et al. 2019 (355M)"),
        new("gpt2-large", "gpt2", 36, 1280, 20, 50257, 1024, "Radford et al. 2019 (774M)"),
        new("gpt2-xl", "gpt2", 48, 1600, 25, 50257, 1024, "Radford et al. 2019 (1.5B)"),
        new("bert-tiny", "bert", 2, 128, 2, 30522, 512, "Turc et al. 2019 (L=2, H=128)"),
        new("bert-mini", "bert", 4, 256, 4, 30522, 512, "Turc et al. 2019 (L=4, H=256)"),
        new("bert-small", "bert", 4, 512, 8, 30522, 512, "Turc et al. 2019 (L=4, H=512)"),
        new("bert-medium", "bert", 8, 512, 8, 30522, 512, "Turc et al. 2019 (L=8, H=512)"),
        new("bert-base", "bert", 12, 768, 12, 30522, 512, "Devlin et al. 2019 (uncased vocab)"),
        new("bert-large", "bert", 24, 1024, 16, 30522, 512, "Devlin et al. 2019 (uncased vocab)"),
        new("llama-tiny", "llama", 2, 128, 4, 4096, 512, "TaskLM test size (GQA 4/2)", KvHeads: 2, InnerSize: 352),
        new("smollm2-135m", "llama", 30, 576, 9, 49152, 8192, "HuggingFaceTB/SmolLM2-135M shape", KvHeads: 3, InnerSize: 1536,
            Config: new Dictionary<string, object> { ["rope_theta"] = 100000.0, ["bos_token_id"] = 0, ["eos_token_id"] = 0 }),
        new("qwen2.5-0.5b", "qwen2", 24, 896, 14, 151936, 32768, "Qwen/Qwen2.5-0.5B shape", KvHeads: 2, InnerSize: 4864,
            Config: new Dictionary<string, object> { ["rope_theta"] = 1000000.0, ["rms_norm_eps"] = 1e-6, ["bos_token_id"] = 151643, ["eos_token_id"] = 151643 }),
        new("mistral-7b", "mistral", 32, 4096, 32, 32000, 32768, "mistralai/Mistral-7B-v0.1 shape", KvHeads: 8, InnerSize: 14336,
            Config: new Dictionary<string, object> { ["tie_word_embeddings"] = false, ["sliding_window"] = 4096 }),
    };

    /// <summary>The preset of that name, or an error listing the names.</summary>
    public static ModelPreset Get(string name) =>
        All.FirstOrDefault(p => string.Equals(p.Name, name, StringComparison.OrdinalIgnoreCase))
        ?? throw new ArgumentException($"unknown model preset '{name}'{Suggest(name, All.Select(p => p.Name))}; presets: {string.Join(", ", All.Select(p => p.Name))}");

    /// <summary>" (did you mean 'x'?)" for the closest candidate by edit distance, or "".</summary>
    public static string Suggest(string given, IEnumerable<string> candidates)
    {
        var best = candidates.Select(c => (c, d: TaskLM.Data.EditDistance.Levenshtein(given.ToLowerInvariant(), c.ToLowerInvariant()))).OrderBy(x => x.d).FirstOrDefault();
        return best.c != null && best.d <= Math.Max(2, given.Length / 3) ? $" (did you mean '{best.c}'?)" : "";
    }
}
