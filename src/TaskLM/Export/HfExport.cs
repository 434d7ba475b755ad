// `tasklm export --format hf`: a run, LoRA adapter or HF folder → one self-contained HF folder (adapter merged, tokenizer files).
using System.Text.Json.Nodes;
using TaskLM.Data.Tokenization;
using TaskLM.Models;
using TaskLM.Training;
using static TorchSharp.torch;

namespace TaskLM.Export;

/// <summary>Where a model to export comes from: the folder holding its weights, the base it was trained from
/// (LoRA), its task, and the tokenizer it speaks.</summary>
/// <param name="ModelDir">An HF folder (config.json) or a PEFT adapter folder (adapter_config.json).</param>
/// <param name="BaseModel">The base HF folder of an adapter; null for a full model.</param>
/// <param name="Task">TaskLM's task name, or null for the folder's own head.</param>
/// <param name="TokenizerSource">A tokenizer folder or "gpt2", or null when none is known.</param>
public sealed record ExportSource(string ModelDir, string? BaseModel, string? Task, string? TokenizerSource);

/// <summary>Writes a Hugging Face model folder that from_pretrained (and TaskLM) loads on its own: LoRA adapters merged
/// into the base weights (PEFT's merge_and_unload), config.json, model.safetensors and the tokenizer files.</summary>
public static class HfExport
{
    /// <summary>The tokenizer files of an HF folder, copied as they are.</summary>
    public static readonly string[] TokenizerFiles =
        ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt", "vocab.json", "merges.txt", "added_tokens.json"];

    /// <summary>Finds what <paramref name="modelPath"/> names: a run folder (recipe.resolved.yaml: best/, else the newest
    /// checkpoint; the base and tokenizer from the recipe), a PEFT adapter folder (base from <paramref name="baseModel"/>
    /// or adapter_config.json's base_model_name_or_path) or an HF model folder.</summary>
    public static ExportSource Resolve(string modelPath, string? baseModel = null, string? tokenizer = null)
    {
        if (!Directory.Exists(modelPath)) throw new DirectoryNotFoundException($"model '{modelPath}' does not exist");
        string recipePath = Path.Combine(modelPath, "recipe.resolved.yaml");
        if (File.Exists(recipePath))
        {
            var recipe = RecipeLoader.Load(recipePath);
            string best = Path.Combine(modelPath, "best");
            string dir = File.Exists(Path.Combine(best, "config.json")) || File.Exists(Path.Combine(best, "adapter_config.json")) ? best : Checkpoints.Latest(modelPath);
            bool adapter = File.Exists(Path.Combine(dir, "adapter_config.json"));
            string task = recipe.Task == "generation" ? "causal-lm" : recipe.Task;
            string? tok = tokenizer ?? recipe.Tokenizer ?? (TrainingRun.HasTokenizerFiles(dir) ? dir : TrainingRun.DefaultTokenizerSource(recipe.Model.Init));
            return new ExportSource(dir, adapter ? baseModel ?? recipe.Model.Init : null, task, tok);
        }
        if (File.Exists(Path.Combine(modelPath, "adapter_config.json")))
        {
            string? b = baseModel ?? (string?)JsonNode.Parse(File.ReadAllText(Path.Combine(modelPath, "adapter_config.json")))?["base_model_name_or_path"];
            if (b is null || !Directory.Exists(b))
                throw new ArgumentException($"{Path.Combine(modelPath, "adapter_config.json")}: a LoRA adapter needs its base model folder: pass --base <folder>{(b is null ? "" : $" ('{b}' is not a folder)")}");
            string? tok = tokenizer ?? (TrainingRun.HasTokenizerFiles(modelPath) ? modelPath : TrainingRun.HasTokenizerFiles(b) ? b : null);
            return new ExportSource(modelPath, b, null, tok);
        }
        if (!File.Exists(Path.Combine(modelPath, "config.json")))
            throw new FileNotFoundException($"'{modelPath}' is neither a run folder (recipe.resolved.yaml), a LoRA adapter (adapter_config.json) nor a Hugging Face model folder (config.json)");
        return new ExportSource(modelPath, null, null, tokenizer ?? (TrainingRun.HasTokenizerFiles(modelPath) ? modelPath : null));
    }

    /// <summary>Loads the model of <paramref name="src"/> with TaskLM, merging a LoRA adapter into its base.</summary>
    public static ITaskModel Load(ExportSource src)
    {
        if (src.BaseModel is null) return ModelFactory.FromPretrained(src.ModelDir, src.Task);
        // A classification adapter saves its head (modules_to_save); its rows give the number of labels.
        int? numLabels = null;
        string adapterFile = Path.Combine(src.ModelDir, "adapter_model.safetensors");
        if (File.Exists(adapterFile))
        {
            var sd = SafeTensors.Load(adapterFile);
            try
            {
                foreach (var head in new[] { "base_model.model.score.weight", "base_model.model.classifier.weight" })
                    if (sd.TryGetValue(head, out var t)) numLabels = (int)t.shape[0];
            }
            finally { foreach (var t in sd.Values) t.Dispose(); }
        }
        var baseModel = ModelFactory.FromPretrained(src.BaseModel, src.Task, src.Task is "classification" or "token-classification" ? numLabels : null);
        return LoraModel.FromAdapter(baseModel, src.ModelDir).MergeAndUnload();
    }

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
