// Builds an ITaskModel from an HF folder or a preset name: the family comes from config.json's model_type
// (or the preset's row) through the shared PreTrainedModel machinery; specs are resolved by ModelSource.

namespace TaskLM.Models;

/// <summary>The one entry point that turns a folder or a preset name into a model of the right family.</summary>
public static class ModelFactory
{
    /// <summary>Loads an HF model folder (config.json + weights) with a task head. <paramref name="task"/>
    /// defaults to the folder's own architecture; a head the checkpoint lacks is newly initialised (see
    /// <see cref="PreTrainedModel.LoadReport"/>). <paramref name="numLabels"/>/<paramref name="labels"/> set the head's classes.</summary>
    public static ITaskModel FromPretrained(string folder, string? task = null, int? numLabels = null, IReadOnlyList<string>? labels = null,
        IDictionary<string, object>? overrides = null) =>
        PreTrainedModel.FromPretrained(folder, task, numLabels, labels, overrides: overrides);

    /// <summary>Loads a model for inference (logits, generate, evaluate, predict, serve): <paramref name="spec"/> is
    /// anything <see cref="ModelSource.Resolve"/> accepts that holds full weights (an HF folder, a run's best/). A
    /// checkpoint that does not fill the body config.json describes (missing or unexpected body weights), or a head the
    /// checkpoint lacks, is a <see cref="ModelWeightsException"/> naming the keys. <paramref name="allowNewHead"/>:
    /// the base of a LoRA adapter, whose head comes with the adapter.</summary>
    public static PreTrainedModel ForInference(string spec, string? task = null, bool allowNewHead = false)
    {
        var src = ModelSource.Resolve(spec);
        if (src.Kind == ModelSourceKind.Preset)
            throw new ArgumentException($"'{spec}' is a preset (random weights), not a trained model: give a model folder, a run folder or a Hub id");
        if (src.IsAdapter)
            throw new ArgumentException($"{src.Folder}: a LoRA adapter; load it with its base (a run folder), or merge it first (tasklm export --format hf)");
        return src.LoadFolder(task ?? (src.Recipe != null ? src.Task : null), forInference: true, allowNewHead);
    }

    /// <summary>A randomly initialised model of a preset shape (see <see cref="ModelPresets"/>), with
    /// config.json keys overridden (e.g. n_layer, n_embd, vocab_size, num_labels; "labels" = class names).
    /// Unknown keys fail with the closest known key suggested. Seed torch before calling for a reproducible init.</summary>
    public static ITaskModel FromPreset(string name, string task, IDictionary<string, object>? overrides = null) =>
        PreTrainedModel.FromPreset(name, task, overrides);

    /// <summary>The tokenizer a model init speaks when a recipe names none: a folder's own tokenizer files, else
    /// the preset family's default (GPT-2's vocabulary), else none (pre-tokenized data only). See <see cref="ModelSource.Tokenizer"/>.</summary>
    public static string? DefaultTokenizerSource(string init) => ModelSource.Resolve(init).Tokenizer;

    /// <summary>True when a folder holds tokenizer files (tokenizer.json or a vocabulary).</summary>
    public static bool HasTokenizerFiles(string folder) => ModelSource.HasTokenizerFiles(folder);
}
