// Builds an ITaskModel from an HF folder or a preset name: the family comes from config.json's model_type
// (or the preset's row) through the shared PreTrainedModel machinery.
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

    /// <summary>Loads an HF model folder for inference (logits, generate, evaluate, predict, serve): a checkpoint
    /// that does not fill the body config.json describes (missing or unexpected body weights), or a head the
    /// checkpoint lacks, is a <see cref="ModelWeightsException"/> naming the keys. <paramref name="allowNewHead"/>:
    /// the base of a LoRA adapter, whose head comes with the adapter.</summary>
    public static PreTrainedModel ForInference(string folder, string? task = null, bool allowNewHead = false)
    {
        var m = PreTrainedModel.FromPretrained(folder, task);
        m.LoadReport!.EnsureUsableForInference(allowNewHead);
        return m;
    }

    /// <summary>A randomly initialised model of a preset shape (see <see cref="ModelPresets"/>), with
    /// config.json keys overridden (e.g. n_layer, n_embd, vocab_size, num_labels; "labels" = class names).
    /// Unknown keys fail with the closest known key suggested. Seed torch before calling for a reproducible init.</summary>
    public static ITaskModel FromPreset(string name, string task, IDictionary<string, object>? overrides = null) =>
        PreTrainedModel.FromPreset(name, task, overrides);

    /// <summary>The tokenizer a model init speaks when a recipe names none: a folder's own tokenizer files, else
    /// the preset family's default (GPT-2's vocabulary), else none (pre-tokenized data only).</summary>
    public static string? DefaultTokenizerSource(string init) =>
        Directory.Exists(init) ? (HasTokenizerFiles(init) ? init : null) : ModelPresets.Get(init).Family.DefaultTokenizer;

    /// <summary>True when a folder holds tokenizer files (tokenizer.json or a vocabulary).</summary>
    public static bool HasTokenizerFiles(string folder) =>
        File.Exists(Path.Combine(folder, "tokenizer.json")) || Directory.EnumerateFiles(folder, "*vocab*").Any();
}
