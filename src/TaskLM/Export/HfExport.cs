// `tasklm export --format hf`: a run, LoRA adapter or HF folder → one self-contained HF folder (adapter merged, tokenizer files).
using System.Text.Json.Nodes;
using TaskLM.Data.Tokenization;
using TaskLM.Models;
using TaskLM.Recipes;
using static TorchSharp.torch;

namespace TaskLM.Export;

/// <summary>Where a model to export comes from: the resolved source (its weights folder and, for an adapter, its
/// base), its task, and the tokenizer it speaks.</summary>
/// <param name="Source">The model, resolved once (<see cref="ModelSource"/>).</param>
/// <param name="Task">TaskLM's model task, or null for the folder's own head.</param>
/// <param name="TokenizerSource">A tokenizer folder or "gpt2", or null when none is known.</param>
public sealed record ExportSource(ModelSource Source, string? Task, string? TokenizerSource)
{
    /// <summary>The folder holding the weights: an HF folder (config.json) or a PEFT adapter folder.</summary>
    public string ModelDir => Source.Folder!;
    /// <summary>The base model folder of an adapter; null for a full model.</summary>
    public string? BaseModel => Source.IsAdapter ? Source.Base?.Folder : null;

    /// <summary>Refuses an output that would write over what is being exported (the spec, its weights folder, an
    /// adapter's base) or over a run folder: every format exports into a new folder.</summary>
    public void CheckOutput(string output)
    {
        string full = Path.GetFullPath(output).TrimEnd(Path.DirectorySeparatorChar);
        foreach (var taken in new[] { Source.Spec, ModelDir, BaseModel }.OfType<string>())
            if (string.Equals(Path.GetFullPath(taken).TrimEnd(Path.DirectorySeparatorChar), full, StringComparison.Ordinal))
                throw new ArgumentException($"--out '{output}' is the model being exported ({taken}); export into a new folder");
        if (Directory.Exists(output) && File.Exists(Path.Combine(output, RunFolderFiles.Recipe)))
            throw new ArgumentException($"--out '{output}' is a run folder; export into a new folder");
    }
}

/// <summary>Writes a Hugging Face model folder that from_pretrained (and TaskLM) loads on its own: LoRA adapters merged
/// into the base weights (PEFT's merge_and_unload), config.json, model.safetensors and the tokenizer files.</summary>
public static class HfExport
{
    /// <summary>The tokenizer files of an HF folder, copied as they are.</summary>
    public static readonly string[] TokenizerFiles =
        ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt", "vocab.json", "merges.txt", "added_tokens.json"];

    /// <summary>Finds what <paramref name="modelPath"/> names (<see cref="ModelSource.Resolve"/>): a run folder (best/, else
    /// the newest checkpoint; the base and tokenizer from the recipe), a PEFT adapter folder (base from
    /// <paramref name="baseModel"/> or adapter_config.json's base_model_name_or_path) or an HF model folder.</summary>
    public static ExportSource Resolve(string modelPath, string? baseModel = null, string? tokenizer = null)
    {
        var src = ModelSource.Resolve(modelPath, baseModel);
        if (src.Kind == ModelSourceKind.Preset)
            throw new ArgumentException($"'{modelPath}' is a preset (random weights), not a trained model: export a run folder or a model folder");
        if (src.IsAdapter && src.Base?.Folder == null)
            throw new ArgumentException($"{Path.Combine(src.Folder!, "adapter_config.json")}: a LoRA adapter needs its base model folder: pass --base <folder>");
        return new ExportSource(src, src.Recipe != null ? src.Task : null, tokenizer ?? src.Tokenizer);
    }

    /// <summary>Loads the model of <paramref name="src"/> with TaskLM, merging a LoRA adapter into its base.</summary>
    public static ITaskModel Load(ExportSource src) =>
        src.Source.IsAdapter ? ((LoraModel)src.Source.Load(src.Task)).MergeAndUnload() : src.Source.Load(src.Task);

    /// <summary>Exports <paramref name="src"/> into <paramref name="outDir"/> (config.json, model.safetensors, tokenizer
    /// files, generation_config.json when the source has one) and returns the model it wrote.</summary>
    public static ITaskModel Export(ExportSource src, string outDir)
    {
        var model = Load(src);
        using (no_grad()) model.SavePretrained(outDir);
        foreach (var dir in new[] { src.ModelDir, src.BaseModel }.OfType<string>())
        {
            string gen = Path.Combine(dir, "generation_config.json");
            if (File.Exists(gen) && !File.Exists(Path.Combine(outDir, "generation_config.json"))) File.Copy(gen, Path.Combine(outDir, "generation_config.json"));
        }
        if (src.TokenizerSource != null)
        {
            if (Directory.Exists(src.TokenizerSource))
            {
                foreach (var f in TokenizerFiles)
                    if (File.Exists(Path.Combine(src.TokenizerSource, f))) File.Copy(Path.Combine(src.TokenizerSource, f), Path.Combine(outDir, f), overwrite: true);
            }
            else TokenizerLoader.Load(src.TokenizerSource).Save(outDir); // an embedded one ("gpt2") written as HF files
        }
        return model;
    }
}
