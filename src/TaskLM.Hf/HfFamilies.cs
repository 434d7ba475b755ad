// Each model family's Hugging Face names (model_type, display name, architecture class per task), without TorchSharp.
namespace TaskLM.Hf;

/// <summary>
/// What a family is called in Hugging Face's files: its config.json <c>model_type</c>, its name in messages, the
/// architecture (class) name of each task head, and other classes that load as one of those heads. The TorchSharp
/// family (<c>TaskLM.Models.ModelFamily</c>) and the ONNX side answer "which task does this folder hold?" from here.
/// </summary>
/// <param name="ModelType">config.json's model_type ("gpt2").</param>
/// <param name="DisplayName">The family's name in messages ("GPT-2").</param>
/// <param name="Architectures">HF's class name of each task head this family has (task → class).</param>
/// <param name="OtherArchitectures">Classes that are not one of the heads but load as one (class → task); the key
/// "" is the task of a config.json without architectures.</param>
public sealed record HfFamily(string ModelType, string DisplayName, IReadOnlyDictionary<string, string> Architectures,
    IReadOnlyDictionary<string, string>? OtherArchitectures = null)
{
    /// <summary>The tasks with a head in this family.</summary>
    public IReadOnlyList<string> Tasks => Architectures.Keys.ToList();

    /// <summary>The task of an HF architecture name (null: a config.json without architectures), or null when the
    /// family has no head for it (a bare BertModel).</summary>
    public string? TaskOf(string? architecture) =>
        OtherArchitectures?.GetValueOrDefault(architecture ?? "") is string t ? t
        : Architectures.FirstOrDefault(kv => kv.Value == architecture).Key;

    /// <summary>The task a config.json's architectures name: that of the first entry with a head in this family; for a
    /// config without architectures, the family's default (GPT-2's LM), else null.</summary>
    public string? TaskOfArchitectures(IReadOnlyList<string> architectures) =>
        architectures.Count > 0 ? architectures.Select(a => TaskOf(a)).FirstOrDefault(t => t != null) : TaskOf(null);
}

/// <summary>The families' Hugging Face names: one row per model_type.</summary>
public static class HfFamilies
{
    public static readonly HfFamily Gpt2 = new("gpt2", "GPT-2",
        new Dictionary<string, string>
        {
            ["causal-lm"] = "GPT2LMHeadModel",
            ["classification"] = "GPT2ForSequenceClassification",
            ["token-classification"] = "GPT2ForTokenClassification",
        },
        // No architectures, the bare body and the double-heads model load as HF's LM.
        new Dictionary<string, string> { [""] = "causal-lm", ["GPT2Model"] = "causal-lm", ["GPT2DoubleHeadsModel"] = "causal-lm" });

    public static readonly HfFamily Bert = new("bert", "BERT",
        new Dictionary<string, string>
        {
            ["masked-lm"] = "BertForMaskedLM",
            ["classification"] = "BertForSequenceClassification",
            ["token-classification"] = "BertForTokenClassification",
            ["question-answering"] = "BertForQuestionAnswering",
        },
        // BertForPreTraining loads as masked LM; a bare BertModel names no head.
        new Dictionary<string, string> { ["BertForPreTraining"] = "masked-lm" });

    public static readonly HfFamily Llama = LlamaStyle("llama", "Llama");
    public static readonly HfFamily Qwen2 = LlamaStyle("qwen2", "Qwen2");
    public static readonly HfFamily Mistral = LlamaStyle("mistral", "Mistral");

    /// <summary>Every family's names.</summary>
    public static readonly IReadOnlyList<HfFamily> All = [Gpt2, Bert, Llama, Qwen2, Mistral];

    /// <summary>The family of a model_type, or null.</summary>
    public static HfFamily? Find(string? modelType) => All.FirstOrDefault(f => f.ModelType == modelType);

    // Llama, Qwen2 and Mistral name their heads alike: {Prefix}ForCausalLM, {Prefix}ForSequenceClassification.
    static HfFamily LlamaStyle(string modelType, string name) => new(modelType, name, new Dictionary<string, string>
    {
        ["causal-lm"] = name + "ForCausalLM",
        ["classification"] = name + "ForSequenceClassification",
    });
}

/// <summary>The activation functions TaskLM builds, as both the TorchSharp modules and the ONNX graphs compute them.</summary>
public enum HfActivation
{
    /// <summary>Exact GELU, 0.5 x (1 + erf(x/√2)): HF's "gelu" (BERT).</summary>
    Gelu,
    /// <summary>Tanh-approximated GELU: HF's "gelu_new", "gelu_pytorch_tanh", "gelu_fast" (GPT-2).</summary>
    GeluTanh,
    Relu,
    /// <summary>x · sigmoid(x): HF's "silu", "swish".</summary>
    Silu,
    Tanh,
}

/// <summary>HF's activation names (ACT2FN's keys, config.json's hidden_act / activation_function), read once.</summary>
public static class HfActivations
{
    /// <summary>The activation a config names; <paramref name="key"/> and <paramref name="source"/> name it in the error.</summary>
    public static HfActivation Parse(string name, string key, string source) => name switch
    {
        "gelu" => HfActivation.Gelu,
        "gelu_new" or "gelu_pytorch_tanh" or "gelu_fast" => HfActivation.GeluTanh,
        "relu" => HfActivation.Relu,
        "silu" or "swish" => HfActivation.Silu,
        "tanh" => HfActivation.Tanh,
        _ => throw new InvalidDataException($"{source}: {key} '{name}' is not supported (gelu, gelu_new, gelu_pytorch_tanh, gelu_fast, relu, silu, swish, tanh)"),
    };
}
