// A whole run from a recipe, in visible stages (torchtune-style): run folder, data, model, optimizer and schedule,
// collaborators, train, evaluate test, write results.
using System.Text.Json.Nodes;
using TaskLM.Data.Corpus;
using TaskLM.Data.Tokenization;
using TaskLM.Distributed;
using TaskLM.Evaluation;
using TaskLM.Models;
using TaskLM.Recipes;
using TaskLM.Tasks;
using TorchSharp;
using static TorchSharp.torch;

namespace TaskLM.Training;

/// <summary>How a run is started from the command line (or a program).</summary>
public sealed class RunOptions
{
    /// <summary>Resume from this checkpoint folder, "latest" for the run folder's newest, or null for a fresh run.</summary>
    public string? Resume { get; init; }
    /// <summary>A fresh run may replace the run already in output_dir (its checkpoints, best/, metrics); without it
    /// a fresh run into a folder that holds a run is refused (HF's overwrite_output_dir).</summary>
    public bool Overwrite { get; init; }
    /// <summary>The device asked for; null = the recipe's <c>training.device</c> decides (the rule is
    /// <see cref="Native.TorchBackend.ChooseDevice"/>). CPU unless set, so a library caller never lands on a GPU unasked.</summary>
    public Device? Device { get; init; } = CPU;
    /// <summary>Loads a tokenizer by folder or name (text data); null = only pre-tokenized data works.</summary>
    public Func<string, ITokenizer>? TokenizerLoader { get; init; } = Data.Tokenization.TokenizerLoader.Load;
    /// <summary>Progress lines for people (the CLI prints them).</summary>
    public Action<string> Say { get; init; } = _ => { };
    /// <summary>Extra observers (the CLI's progress bar).</summary>
    public IReadOnlyList<ITrainerCallback> Callbacks { get; init; } = [];
    /// <summary>Cancelled to stop gracefully (SIGINT/SIGTERM): the current step finishes, a checkpoint is written and
    /// the run returns with <see cref="RunResult.Interrupted"/> set.</summary>
    public CancellationToken Interrupt { get; init; }
    /// <summary>The data-parallel job this process is one rank of (see docs/distributed.md); null = alone.</summary>
    public DataParallel? Parallel { get; init; }
}

/// <summary>Result of a run: final state, last evaluation, where the best model is.</summary>
public sealed record RunResult(TrainerState State, IReadOnlyDictionary<string, double>? LastEval, string RunDir, string? StopReason, long TrainableParameters, long TotalParameters)
{
    /// <summary>The checkpoint written when the run was interrupted (<see cref="RunOptions.Interrupt"/>), else null.</summary>
    public string? Interrupted { get; init; }
    /// <summary>The test split's metrics (eval.json), when the recipe names data.test.</summary>
    public IReadOnlyDictionary<string, double>? Test { get; init; }
}

/// <summary>A recipe problem found while setting the run up (the run folder, resume): one line naming the folder or file.</summary>
public sealed class RunSetupException(string message) : Exception(message);

/// <summary>Builds everything a recipe names and runs the <see cref="Trainer"/>. The run folder gets
/// recipe.resolved.yaml, metrics.jsonl, TensorBoard events, checkpoints/step-N/ and best/.
/// Stages, in order (<see cref="Run"/>): <c>PrepareRunFolder</c> (refuse a foreign run, find the checkpoint, clean
/// stale temporary folders), <c>SetupData</c> (tokenizer, the values the data decides, examples), <c>SetupModel</c>
/// (init, strategy, LoRA), <c>SetupOptimizer</c> (AdamW groups and the schedule), <c>SetupCollaborators</c>
/// (evaluator, early stopping — the metric checked before the first step — data-parallel start),
/// <c>CommitRunFolder</c> (only now is anything of an earlier run replaced, the checkpoint restored and
/// recipe.resolved.yaml written), <c>Train</c>, <c>EvaluateTest</c>, <c>WriteResults</c>. With strategy.method features,
/// <c>TrainFeatures</c> (encode once, fit a logistic-regression head, save best/) takes the place of <c>SetupOptimizer</c>,
/// <c>SetupCollaborators</c> and <c>Train</c>. In a data-parallel job
/// every rank runs every stage; rank 0 alone writes files. Model and optimizer are disposed at the end.</summary>
public static class TrainingRun
{
    /// <summary>Everything the stages build, handed from one to the next.</summary>
    sealed class RunContext(Recipe recipe, RunOptions options) : IDisposable
    {
        public Recipe Recipe { get; } = recipe;
        public RunOptions Options { get; } = options;
        /// <summary>Where the model runs: the caller's device, else the recipe's (one rule for every caller).</summary>
        public Device Device { get; } = Native.TorchBackend.ChooseDevice(options.Device, recipe.Training.Device);
        public string RunDir => Recipe.OutputDir;
        public DataParallel? Parallel => Options.Parallel;
        /// <summary>Rank 0 (or a single process): the one that writes files.</summary>
        public bool IsMain => Options.Parallel?.IsMain ?? true;
        public int WorldSize => Options.Parallel?.WorldSize ?? 1;
        public string? ResumeDir;
        public string RunId = "";
        public ITokenizer? Tokenizer;
        /// <summary>Chat data: the template its conversations are rendered with (saved into model folders); else null.</summary>
        public HfChatTemplate? ChatTemplate;
        public TaskExamples Train = null!;
        public TaskExamples? Validation;
        public IReadOnlyList<string>? Labels;
        public ITaskModel Model = null!;
        public ITrainerCallback? Unfreezer;
        public long TrainableParameters, TotalParameters;
        public AdamW Optimizer = null!;
        public BatchPlan Plan = null!;
        public LrSchedule Schedule = null!;
        public int TotalSteps;
        public Collator Collator = null!;
        public Trainer Trainer = null!;
        public MetricsLogger? Metrics;
        public string? InterruptedAt;
        public JsonObject? TestJson;
        public IReadOnlyDictionary<string, double>? Test;
        public string ModelTask => TaskNames.ModelTask(Recipe.Task);

        /// <summary>Model folders carry the tokenizer files, so generate/evaluate --model runs/x/best need no --tokenizer.</summary>
        public void SavePretrained(string dir)
        {
            Model.SavePretrained(dir);
            Tokenizer?.Save(dir);
            if (ChatTemplate != null && Tokenizer != null) ChatData.WriteTemplate(dir, ChatTemplate, Tokenizer);
            // A model card that says what the weights were fine-tuned from, when that came from outside the repo.
            if (Recipe.Model.Source is { } src)
                File.WriteAllText(Path.Combine(dir, "README.md"),
                    $"# {Path.GetFileName(Recipe.OutputDir.TrimEnd('/', '\\'))}\n\nA {Recipe.Task} model trained by TaskLM (run {RunId}) from `{Recipe.Model.Init}`.\n\n"
                    + "Base model provenance:\n\n```json\n" + src.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }) + "\n```\n");
        }

        public void Dispose()
        {
            Metrics?.Dispose();
            Optimizer?.Dispose();
            Model?.Module.Dispose();
        }
    }

    /// <summary>Runs the stages in order; see the class summary.</summary>
    public static RunResult Run(Recipe r, RunOptions o)
    {
        using var c = new RunContext(r, o);
        // One run per output_dir: a second process is refused naming the first (rank 0 writes, so rank 0 locks).
        using var folderLock = c.IsMain ? RunFolderLock.Acquire(r.OutputDir) : null;
        PrepareRunFolder(c);
        manual_seed(r.Training.Seed);
        SetupData(c);
        SetupModel(c);
        if (r.Strategy.Method == "features")
        {
            // No optimizer, schedule or Trainer: the features stage replaces the training loop (Training/FeatureTraining.cs).
            CommitRunFolder(c);
            var (fstate, lastEval) = TrainFeatures(c);
            if (r.Data.Test != null && c.IsMain) EvaluateTest(c);
            WriteResults(c);
            return new RunResult(fstate, lastEval, c.RunDir, null, c.TrainableParameters, c.TotalParameters) { Test = c.Test };
        }
        SetupOptimizer(c);
        SetupCollaborators(c);
        CommitRunFolder(c);
        var state = Train(c);
        if (c.InterruptedAt == null && r.Data.Test != null && c.IsMain) EvaluateTest(c);
        WriteResults(c);
        return new RunResult(state, c.Trainer.LastEval, c.RunDir, c.Trainer.Control.StopReason, c.TrainableParameters, c.TotalParameters)
        { Interrupted = c.InterruptedAt, Test = c.Test };
    }

    // ── Stage: the run folder ─────────────────────────────────────────────────────────────────────────────────

    /// <summary>Entries of a run folder that say a training run lives there (train.log, trial.log and data/ do not:
    /// a run that failed during setup, a tuning trial and quickstart's prepared data leave those).</summary>
    static readonly string[] RunMarkers = ["recipe.resolved.yaml", "metrics.jsonl", "checkpoints", "best", "eval.json"];

    /// <summary>What <c>--overwrite</c> removes: the earlier run's outputs (the markers, its TensorBoard events,
    /// reports, plots and samples); everything else in the folder (train.log, data/, the user's files) stays.</summary>
    static bool IsRunOutput(string name) =>
        RunMarkers.Contains(name) || name is "report.md" or "report.html" or "plots" or "samples"
        || name.StartsWith("events.out.tfevents", StringComparison.Ordinal);

    /// <summary>True when <paramref name="dir"/> holds a training run.</summary>
    public static bool HoldsRun(string dir) =>
        Directory.Exists(dir) && RunMarkers.Any(m => Path.Exists(Path.Combine(dir, m)));

    /// <summary>Checks, before anything is written, that a fresh run may use output_dir and that a resumed one
    /// continues this folder's own run. Called by <see cref="Run"/>; the CLI calls it first too, before it opens
    /// train.log in the folder.</summary>
    public static void CheckRunFolder(Recipe r, string? resume, bool overwrite)
    {
        string dir = r.OutputDir;
        if (r.Strategy.Method == "features" && resume != null)
            throw new RunSetupException($"{dir}: strategy.method: features writes no checkpoints to resume; run it again with --overwrite (the features cached in {Path.Combine(dir, "cache")} are reused, so only the head is fitted again)");
        if (resume == null)
        {
            if (HoldsRun(dir) && !overwrite)
            {
                var found = RunMarkers.Where(m => Path.Exists(Path.Combine(dir, m)));
                throw new RunSetupException($"{dir}: output_dir already holds a run ({string.Join(", ", found)}); pass --overwrite to replace it, --resume to continue it, or set output_dir to a new folder");
            }
            return;
        }
        string ckpt = ResolveResume(dir, resume);
        string? ckptRun = ReadMeta(ckpt).RunId;
        string resolved = Path.Combine(dir, "recipe.resolved.yaml");
        if (File.Exists(resolved))
        {
            string? folderRun = ReadRunId(resolved);
            if (folderRun != ckptRun)
                throw new RunSetupException($"{ckpt}: this checkpoint belongs to run {ckptRun ?? "(no run id)"}, but {resolved} is run {folderRun ?? "(no run id)"}; resume a checkpoint of this run, or start a fresh run in a new output_dir");
        }
    }

    static string ResolveResume(string runDir, string resume)
    {
        string dir = resume == "latest" ? Checkpoints.Latest(runDir) : resume;
        if (!File.Exists(Path.Combine(dir, "trainer_state.json")))
            throw new FileNotFoundException($"{dir}: not a checkpoint (no trainer_state.json)");
        return dir;
    }

    static Checkpoints.CheckpointMeta ReadMeta(string ckpt) => Checkpoints.ReadMeta(Path.Combine(ckpt, "trainer_state.json"));

    static string? ReadRunId(string resolvedYaml)
    {
        try { return RecipeLoader.Load(resolvedYaml).RunId; }
        catch (RecipeException e) { throw new RunSetupException($"{resolvedYaml}: cannot read the run's resolved recipe ({e.Message})"); }
    }

    static void PrepareRunFolder(RunContext c)
    {
        if (c.Recipe.Strategy.Method == "features" && c.Parallel is { WorldSize: > 1 })
            throw new RunSetupException("strategy.method: features runs in one process (encoding once and a seconds-long fit); start it without a data-parallel launcher");
        CheckRunFolder(c.Recipe, c.Options.Resume, c.Options.Overwrite);
        if (c.Options.Resume != null)
        {
            c.ResumeDir = ResolveResume(c.RunDir, c.Options.Resume);
            c.RunId = ReadMeta(c.ResumeDir).RunId ?? c.Recipe.RunId ?? NewRunId();
        }
        else c.RunId = NewRunId();
        c.Recipe.RunId = c.RunId;
        // Left by a kill or a full disk: never trusted, only in the way (and holding space).
        if (c.IsMain && (c.Options.Resume != null || !c.Options.Overwrite))
            foreach (var stale in Checkpoints.StaleTemporaries(c.RunDir))
            {
                Directory.Delete(stale, true);
                c.Options.Say($"removed stale temporary folder {stale}");
            }
    }

    static string NewRunId() => $"{DateTime.UtcNow:yyyyMMdd-HHmmss}-{Guid.NewGuid().ToString("N")[..8]}";

    /// <summary>Setup succeeded: now replace an earlier run (with --overwrite), restore the checkpoint, and write
    /// recipe.resolved.yaml atomically, so a run that fails during setup leaves the folder as it was.</summary>
    static void CommitRunFolder(RunContext c)
    {
        string dir = c.RunDir;
        var t = c.Recipe.Training;
        Directory.CreateDirectory(dir);
        if (c.IsMain && c.ResumeDir == null && c.Options.Overwrite && HoldsRun(dir))
        {
            foreach (var e in Directory.EnumerateFileSystemEntries(dir).Where(e => IsRunOutput(Path.GetFileName(e))).ToList())
                if (Directory.Exists(e)) Directory.Delete(e, true); else File.Delete(e);
            c.Options.Say($"--overwrite: replaced the earlier run in {dir}");
        }
        if (c.ResumeDir != null)
        {
            // Before anything is written: a checkpoint of another schedule is refused with the folder untouched.
            int was = Checkpoints.Restore(c.Trainer, c.ResumeDir);   // also torch's RNG, after every init draw above
            c.Options.Say($"resumed from {c.ResumeDir} at step {c.Trainer.State.Step}" + (was != c.WorldSize
                ? $" (saved by {was} rank(s), now {c.WorldSize}: the global batch stays {t.BatchSize}, each rank takes {t.BatchSize / (double)c.WorldSize:0.#} of it)" : ""));
        }
        // Dropout differs per rank, as DDP (rank 0 keeps the single-process stream).
        if (c.Parallel is { Rank: > 0 } dp) manual_seed(t.Seed + 7919L * dp.Rank + (c.Trainer?.State.Step ?? 0));
        if (!c.IsMain) return;
        string path = Path.Combine(dir, "recipe.resolved.yaml"), tmp = path + ".tmp";
        File.WriteAllText(tmp, RecipeLoader.ToYaml(c.Recipe));
        File.Move(tmp, path, overwrite: true);

        c.Metrics = new MetricsLogger(dir, t.LogEvery, t.Tensorboard, c.ResumeDir != null ? c.Trainer!.State.Step : -1);
        c.Trainer?.Callbacks.Insert(1, c.Metrics);   // after ScheduleFlags, before early stopping (features: no Trainer)
    }

    // ── Stage: data ───────────────────────────────────────────────────────────────────────────────────────────

    static void SetupData(RunContext c)
    {
        var r = c.Recipe; var o = c.Options;
        // The tokenizer: the recipe's, else the model folder's (when it has tokenizer files).
        string? tokSource = r.Tokenizer ?? DefaultTokenizerSource(r.Model.Init);
        if (tokSource != null && o.TokenizerLoader != null) c.Tokenizer = o.TokenizerLoader(tokSource);
        // Values the data decides (validation split, max_length 0, class_weights auto): Training/AutoSettings.cs.
        string trainFile = r.Data.Train!;   // the user's file (a held-out validation split replaces it with our copy)
        AutoSettings.Resolve(r, c.RunDir, c.Tokenizer, o.Say);
        AutoSettings.ResolvePrecision(r, c.Device, o.Say);
        if (c.Tokenizer != null && r.Task is TaskNames.CausalLm or TaskNames.Generation && IsChatData(r))
            c.ChatTemplate = ChatData.Resolve(r.Data.ChatTemplate, tokSource, c.Tokenizer, o.Say);
        try { c.Train = LoadSplit(c, "train", r.Data.Train!, null, r.Data.MaxTrainExamples); }
        catch (TaskData.NoTokenizerException) when (c.Tokenizer == null)
        {
            // Name the model that brought no tokenizer, not only the data file (the audit's newcomer tripped over it).
            throw new RecipeException(ModelSource.Resolve(r.Model.Init).Kind == ModelSourceKind.Preset
                ? $"{trainFile} is text, and model.init {r.Model.Init} (a preset) brings no tokenizer; set 'tokenizer' in the recipe (a tokenizer folder, or gpt2)"
                : $"{r.Model.Init}: the model folder has no tokenizer files (tokenizer.json, vocab.txt, or vocab.json + merges.txt), and {trainFile} is text; set 'tokenizer' in the recipe to a tokenizer folder");
        }
        c.Labels = c.Train.Labels;
        // A classifier of one class learns nothing: refused before training (it trained to the end, then failed on the test file).
        if (r.Task == TaskNames.Classification && c.Labels is { Count: < 2 } one)
            throw new RecipeException($"{trainFile}: every training example has the label '{one.FirstOrDefault()}' (column '{r.Data.LabelColumn}'); a classifier needs at least two labels — check data.label_column and the file");
        c.Validation = r.Data.Validation != null ? LoadSplit(c, "validation", r.Data.Validation, c.Labels, r.Data.MaxEvalExamples) : null;
        foreach (var (split, ex) in new[] { ("training", c.Train), ("validation", c.Validation) })
            if (ex is { LeftOut: > 0 })
                o.Say($"data: {ex.LeftOut:N0} {split} conversations left out: data.max_length={r.Data.MaxLength} cuts them before the first assistant reply");
        if (r.Data.Packing) PackTraining(c);
        o.Say($"data: {c.Train.Examples.Count} training examples" + (c.Validation != null ? $", {c.Validation.Examples.Count} validation" : "") + (c.Labels != null ? $", {c.Labels.Count} labels" : ""));
    }

    /// <summary>A split's examples: from the run folder's cache (data.cache, Tasks/ExampleCache.cs), else tokenized.</summary>
    static TaskExamples LoadSplit(RunContext c, string split, string path, IReadOnlyList<string>? labels, int maxExamples) =>
        c.Recipe.Data.Cache
            ? ExampleCache.Load(c.Recipe, split, path, c.Tokenizer, labels, maxExamples, c.RunDir, c.Options.Say, c.ChatTemplate)
            : TaskData.Load(c.Recipe, path, c.Tokenizer, labels, maxExamples, c.ChatTemplate);

    /// <summary>True when the training file's first row is chat data (a messages list, or message-list prompt and
    /// completion): JSONL and Parquet only, where cells can be lists.</summary>
    static bool IsChatData(Recipe r)
    {
        string path = r.Data.Train!;
        if (!File.Exists(path) || r.Data.Format is not ("auto" or "jsonl" or "parquet")) return false;
        if (r.Data.Format == "auto" && DataImport.Detect(path) is not (InputFormat.Jsonl or InputFormat.Parquet)) return false;
        try
        {
            var first = DataImport.Read(path, new ImportOptions { Format = DataImport.Detect(path) }, new RowErrors(OnError.Fail)).FirstOrDefault();
            return first != null && ChatData.IsChatRow(first.Fields, r.Data);
        }
        catch (DataFormatException) { return false; }   // the loader reports the malformed row with its line
    }

    /// <summary>data.packing: training examples laid end to end in rows of max_length (ChatData.Pack); the model keeps
    /// attention inside each example (the causal-LM heads of the Llama and GPT-2 families read ModelBatch.PositionIds).</summary>
    static void PackTraining(RunContext c)
    {
        var r = c.Recipe;
        if (r.Task is not (TaskNames.CausalLm or TaskNames.Generation))
            throw new RecipeException($"data.packing: packs causal-lm and generation examples only (task is {r.Task})");
        if (r.Data.MaxLength <= 0) throw new RecipeException("data.packing needs data.max_length > 0 (the packed row length)");
        int before = c.Train.Examples.Count;
        var packed = ChatData.Pack(c.Train.Examples, r.Data.MaxLength);
        long tokens = packed.Sum(e => (long)e.InputIds.Length);
        c.Options.Say($"data.packing: {before:N0} training examples in {packed.Count:N0} rows of up to {r.Data.MaxLength} tokens " +
            $"({100.0 * tokens / Math.Max(1, (long)packed.Count * r.Data.MaxLength):0.#}% filled; attention stays inside each example)");
        c.Train = c.Train with { Examples = packed };
    }

    // ── Stage: model (init, strategy, LoRA) ───────────────────────────────────────────────────────────────────

    static void SetupModel(RunContext c)
    {
        var r = c.Recipe; var o = c.Options;
        // The checkpoint's weights when resuming a full run; otherwise the recipe's init.
        bool lora = r.Strategy.Method == "lora";
        string init = c.ResumeDir != null && !lora ? c.ResumeDir : r.Model.Init;
        var source = ModelSource.Resolve(init);
        if (r.Model.EmbeddingInit != null && source.Kind != ModelSourceKind.Preset && c.ResumeDir == null)
            throw new RecipeException($"model.embedding_init applies to a model started from random (a preset name); model.init is the folder {init}, whose embeddings are already trained");
        if (source.Note != null) o.Say(source.Note);
        // Provenance of the weights travels into recipe.resolved.yaml, eval.json and best/README.md.
        if (source.Provenance != null && c.ResumeDir == null) r.Model.Source = (JsonObject)source.Provenance.DeepClone();
        ITaskModel model;
        if (source.Kind != ModelSourceKind.Preset)
        {
            model = source.Load(c.ModelTask, numLabels: c.Labels?.Count, labels: c.Labels, overrides: ConfigOverrides(r));
            // HF's load report: a new head is normal when fine-tuning, and said so; so are unused weights.
            if (model is PreTrainedModel { LoadReport: { } report }) foreach (var line in report.ToString().Split(Environment.NewLine)) o.Say(line);
            CheckFinite(model, init);
        }
        else
        {
            model = ModelFactory.FromPreset(source.PresetName!, c.ModelTask, PresetOverrides(r, c.Labels));
            if (r.Model.EmbeddingInit == "ppmi-svd") o.Say(EmbeddingInit.Apply(model, c.Train.Examples.Select(e => e.InputIds), EmbeddingInitBoundaries(c.Tokenizer), r.Training.Seed));
        }
        model.Module.to(c.Device);
        if (lora)
        {
            var l = r.Strategy.Lora;
            var heads = TaskNames.HasHead(r.Task)
                ? model.Module.named_children().Select(ch => ch.name).Where(n => Strategies.IsHead(model, n + ".")).ToList() : [];
            string? adapter = c.ResumeDir ?? l.Adapter;
            if (adapter != null && c.ResumeDir == null) CheckAdapterSettings(l, adapter);
            model = adapter != null ? LoraModel.FromAdapter(model, adapter)
                : new LoraModel(model, new LoraConfig(l.R, l.Alpha, l.Dropout, l.TargetModules ?? LoraConfig.DefaultTargets(model.ModelType)), heads);
        }
        else if (r.Strategy.Method == "freeze") o.Say(Strategies.ApplyFreeze(model, r.Strategy.Freeze));
        else if (r.Strategy.Method == "features")
        {
            // The encoder stays frozen; the classifier reads the masked mean of last_hidden_state (what the head is fitted on).
            var bert = FeatureTraining.Check(model, init);
            bert.config.classifier_pooling = "mean";
            foreach (var p in model.Module.parameters()) p.requires_grad = false;
            foreach (var (name, p) in model.Module.named_parameters()) if (name.StartsWith("classifier.", StringComparison.Ordinal)) p.requires_grad = true;
        }
        if (r.Strategy.UnfreezeEvery > 0 && !lora) c.Unfreezer = new Strategies.GradualUnfreezing(model, r.Strategy.UnfreezeEvery);
        c.Model = model;
        if (r.Training.GradientCheckpointing)
        {
            int bodies = ActivationCheckpoint.Enable(model.Module);
            if (bodies == 0) throw new RecipeException($"training.gradient_checkpointing: the model ({model.ModelType}) has no blocks that can be checkpointed (GPT-2, BERT and Llama families can)");
            o.Say("training.gradient_checkpointing: on (each block's activations are recomputed in backward)");
        }

        c.TrainableParameters = model.Module.parameters().Where(p => p.requires_grad).Sum(p => p.numel());
        c.TotalParameters = model is LoraModel lm ? lm.CountParameters().total : model.Module.parameters().Sum(p => p.numel());
        o.Say($"trainable params: {c.TrainableParameters:N0} || all params: {c.TotalParameters:N0} || trainable%: {100.0 * c.TrainableParameters / Math.Max(1, c.TotalParameters):F4}");
        c.Collator = MakeCollator(r, model, c.Tokenizer, c.Device);
    }

    /// <summary>An adapter keeps the r, alpha and target modules it was trained with (its adapter_config.json): a recipe
    /// that sets other values beside <c>strategy.lora.adapter</c> is refused, naming each key, rather than silently
    /// ignored. A key left at its default is not a request (a recipe cannot tell "8" written from "8" by default).</summary>
    static void CheckAdapterSettings(LoraSection l, string adapter)
    {
        var (cfg, _) = LoraModel.ReadAdapterConfig(adapter);
        var defaults = new LoraSection();
        var clashes = new List<string>();
        if (l.R != defaults.R && l.R != cfg.R) clashes.Add($"strategy.lora.r is {l.R}, the adapter's r is {cfg.R}");
        if (l.Alpha != defaults.Alpha && l.Alpha != cfg.Alpha) clashes.Add($"strategy.lora.alpha is {l.Alpha:R}, the adapter's lora_alpha is {cfg.Alpha:R}");
        if (l.TargetModules is { } t && !t.Order(StringComparer.Ordinal).SequenceEqual(cfg.TargetModules.Order(StringComparer.Ordinal)))
            clashes.Add($"strategy.lora.target_modules is [{string.Join(", ", t)}], the adapter's is [{string.Join(", ", cfg.TargetModules)}]");
        if (clashes.Count > 0)
            throw new RecipeException($"strategy.lora.adapter: {adapter} keeps the settings it was trained with: {string.Join("; ", clashes)}. "
                + "Remove those keys to continue the adapter, or remove strategy.lora.adapter to train a new one with them");
    }

    /// <summary>A NaN or infinite weight in the folder a run starts or resumes from is an error naming the folder and
    /// the tensor (training would only report divergence a few steps later, blaming the learning rate).</summary>
    static void CheckFinite(ITaskModel model, string folder)
    {
        using var scope = NewDisposeScope();
        foreach (var (name, p) in model.Module.named_parameters())
            if (!isfinite(p).all().item<bool>())
                throw new InvalidDataException($"{folder}: weight '{name}' holds NaN or infinite values (a damaged or diverged checkpoint); resume from an earlier checkpoint or start from another model");
    }

    static Dictionary<string, object> PresetOverrides(Recipe r, IReadOnlyList<string>? labels)
    {
        var ov = ConfigOverrides(r);
        if (labels != null) ov["labels"] = labels.ToList();
        return ov;
    }

    // The recipe's model.config keys (for a preset and for a model folder alike).
    static Dictionary<string, object> ConfigOverrides(Recipe r)
    {
        var ov = new Dictionary<string, object>();
        foreach (var (k, v) in r.Model.Config ?? []) if (v != null) ov[k] = v.DeepClone();
        return ov;
    }

    // ── Stage: optimizer and schedule ─────────────────────────────────────────────────────────────────────────

    static void SetupOptimizer(RunContext c)
    {
        var t = c.Recipe.Training;
        // bf16: the module computes in bf16; AdamW's fp32 masters start from the exact fp32 weights taken before the cast.
        var masters = t.Precision == "bf16" ? MixedPrecision.CastToBf16(c.Model.Module) : null;
        if (masters != null) c.Options.Say($"training.precision: bf16 (bf16 weights and activations, fp32 master weights in AdamW, fp32 loss)");
        var (decay, noDecay) = AdamW.HfGroups(c.Model.Module, t.WeightDecay, c.Unfreezer != null ? (_, _) => true : null);
        c.Optimizer = new AdamW([decay, noDecay], t.Betas[0], t.Betas[1], t.Eps, masters);
        if (masters != null) foreach (var m in masters.Values) m.Dispose();
        c.Plan = new BatchPlan(c.Train.Examples.Count, t.BatchSize, t.GradAccum, c.Recipe.Data.Shuffle, t.Seed,
            t.GroupByLength ? c.Train.Examples.Select(e => e.InputIds.Length).ToList() : null);
        c.TotalSteps = t.MaxSteps > 0 ? t.MaxSteps : t.Epochs * c.Plan.StepsPerEpoch;
        c.Schedule = new LrSchedule(t.Scheduler, t.Lr, LrSchedule.WarmupStepsFor(t.Warmup, c.TotalSteps), c.TotalSteps);
        if (c.Schedule.WarmupSteps >= c.TotalSteps)
            c.Options.Say($"warning: training.warmup is {c.Schedule.WarmupSteps} steps but the run has {c.TotalSteps}: the learning rate never reaches training.lr={t.Lr:G3}");
    }

    // ── Stage: collaborators ──────────────────────────────────────────────────────────────────────────────────

    static void SetupCollaborators(RunContext c)
    {
        var r = c.Recipe; var t = r.Training; var dp = c.Parallel;
        var model = c.Model; var val = c.Validation; var collator = c.Collator; var labels = c.Labels;
        var es = t.EarlyStopping;
        if (val != null)
        {
            string metric = es?.Metric ?? "loss";
            // Checked now, not at the first evaluation: the names follow from the task and the label set.
            var names = EvalLoop.MetricNames(r.Task, labels);
            if (!names.Contains(metric))
                throw new RecipeException($"training.early_stopping.metric: evaluation produced no metric '{metric}'; it produced: {string.Join(", ", names)} (the metrics of task {r.Task}, checked before training)"
                    + (RecipeLoader.Closest(metric, names) is { } near ? $"; did you mean '{near}'?" : ""));
        }
        else if (es != null) c.Options.Say("warning: training.early_stopping is set but there is no data.validation: nothing to watch");
        // Only rank 0 writes checkpoints (they are written once the run folder is committed, during training).
        var ck = c.IsMain ? new Checkpoints(c.RunDir, t.KeepLast, c.SavePretrained) { WorldSize = c.WorldSize, RunId = c.RunId } : null;
        c.Trainer = new Trainer(model, c.Train.Examples, collator, c.Plan, c.Optimizer, c.Schedule, new TrainerOptions
        {
            TotalSteps = c.TotalSteps, MaxGradNorm = t.MaxGradNorm, LabelSmoothing = t.LabelSmoothing,
            ClassWeights = ClassWeights(t.ClassWeights, c.Train.Examples, labels), MaxBadSteps = t.MaxBadSteps, Seed = t.Seed,
            Interrupt = c.Options.Interrupt,
            Best = val != null ? new BestMetricRule(es?.Metric ?? "loss", es?.Mode ?? "auto", es?.MinDelta ?? 0) : null,
        },
        evaluator: val != null ? () => EvalLoop.Run(model, val.Examples, collator, t.EvalBatchSize, labels, dp) : null,
        saver: ck != null ? ck.Save : null);
        c.Trainer.Parallel = dp;
        if (dp != null) dp.BroadcastModule(model.Module);   // identical start on every rank, as DDP
        if (dp != null && c.Device.type == DeviceType.CUDA) dp.UseNccl();
        c.Trainer.Callbacks.Add(new ScheduleFlags(t.EvalEvery, t.SaveEvery));
        if (c.Unfreezer != null) c.Trainer.Callbacks.Add(c.Unfreezer);
        if (val != null)
        {
            string best = Path.Combine(c.RunDir, "best");
            c.Trainer.Callbacks.Add(new EarlyStopping(es?.Patience, _ => { if (c.IsMain) SaveAtomically(best, c.SavePretrained); }));
        }
        c.Trainer.Callbacks.AddRange(c.Options.Callbacks);
    }

    // ── Stage: train ──────────────────────────────────────────────────────────────────────────────────────────

    static TrainerState Train(RunContext c)
    {
        var t = c.Recipe.Training;
        c.Options.Say($"training: {c.TotalSteps} optimizer steps ({c.Plan.StepsPerEpoch}/epoch, batch {t.BatchSize} × accum {t.GradAccum}), {t.Scheduler} lr {t.Lr:G3}, warmup {c.Schedule.WarmupSteps}");
        if (c.IsMain) c.Options.Say(PlanEstimate(c));
        var speed = new SpeedAndBudget(null);
        c.Trainer.Callbacks.Add(speed);
        var state = c.Trainer.Train();
        // This machine's speed for the next run's estimate (and `tasklm models`); a few steps say little.
        if (c.IsMain && state.Step >= 20) MeasuredSpeeds.Record(c.Recipe.Model.Init, c.Recipe, c.Device, speed.TokensPerSecond, "train");
        if (c.Trainer.Control.Interrupted) c.InterruptedAt = c.Trainer.LastCheckpoint ?? Path.Combine(c.RunDir, "checkpoints", $"step-{state.Step}");
        if (c.Recipe.Strategy.Lora.Merge && c.Model is LoraModel && c.InterruptedAt == null && c.IsMain) MergeBest(c);
        return state;
    }

    /// <summary>The plan in numbers before the first step: the tokens training will compute (padding included), the
    /// validation passes, and the time that should take here — from this machine's earlier runs of the same model at
    /// the same thread count (MeasuredSpeeds) when there are some, else from the model's FLOPs at the matmul rate
    /// measured now (a bound; real runs reach roughly half of it on CPU).</summary>
    static string PlanEstimate(RunContext c)
    {
        var t = c.Recipe.Training;
        var lengths = c.Train.Examples.Select(e => e.InputIds.Length).ToList();
        long trainTokens = c.Plan.PaddedTokens(c.TotalSteps, lengths);
        int done = c.Trainer.State.Step;   // a resumed run has these steps behind it
        if (done > 0) trainTokens = trainTokens * Math.Max(0, c.TotalSteps - done) / c.TotalSteps;
        int evals = c.Validation == null ? 0
            : int.TryParse(t.EvalEvery, out int n) && n > 0 ? Math.Max(1, c.TotalSteps / n)
            : Math.Max(1, (c.TotalSteps + c.Plan.StepsPerEpoch - 1) / c.Plan.StepsPerEpoch);
        long valTokens = c.Validation?.Examples.Sum(e => (long)e.InputIds.Length) ?? 0;
        // A forward pass costs about a third of a training step per token (backward is twice the forward).
        double work = trainTokens + evals * valTokens / 3.0;
        string what = $"plan: {trainTokens / 1e6:0.00}M training tokens (padded per batch)" +
            (evals > 0 ? $" and {evals} validation pass(es) over {c.Validation!.Examples.Count:N0} examples" : "");
        string kind = c.Device.type.ToString().ToLowerInvariant();
        int threads = get_num_threads();
        if (MeasuredSpeeds.ForRun(c.Recipe.Model.Init, kind, threads, c.Recipe.Training.Precision) is double tps)
            return $"{what}; estimated {Duration(work / tps)} at {tps:N0} tokens/s (this machine's earlier runs of {c.Recipe.Model.Init}, {threads} thread(s), {c.Recipe.Training.Precision})";
        // 6 FLOPs per parameter per training token (forward 2, backward 4); embedding rows are looked up, not multiplied.
        long dense = 0;
        foreach (var (name, p) in c.Model.Module.named_parameters())
            if (!name.Contains("embed") && !name.Contains("wte") && !name.Contains("wpe")) dense += p.numel();
        double gflops = Native.TorchBackend.MeasureMatmulGflops(c.Device, 512, 3);
        double bound = gflops * 1e9 / (6.0 * dense);
        return $"{what}; estimated {Duration(work / bound)} to {Duration(2 * work / bound)} " +
            $"({6.0 * dense / 1e6:N0} MFLOP per token at 1 to 1/2 of the {gflops:N0} GFLOP/s matmul rate measured now; " +
            $"no earlier run of {c.Recipe.Model.Init} on this machine at {threads} thread(s) to time it by)";
    }

    static string Duration(double seconds) =>
        seconds < 90 ? $"{seconds:0} s" : seconds < 5400 ? $"{seconds / 60:0.#} min" : $"{seconds / 3600:0.#} h";

    /// <summary>strategy.lora.merge: best/ (the best adapter, else the final one) becomes a full model with the adapter
    /// merged into the base weights (PEFT's merge_and_unload); the adapter itself stays in best/adapter/.</summary>
    static void MergeBest(RunContext c)
    {
        string best = Path.Combine(c.RunDir, "best");
        string adapterDir = Path.Combine(best, "adapter");
        string source = File.Exists(Path.Combine(best, "adapter_config.json")) ? best : c.Trainer.LastCheckpoint ?? throw new InvalidOperationException("strategy.lora.merge: no adapter was saved");
        var r = c.Recipe;
        using var scope = NewDisposeScope();
        // The adapter holds only the LoRA matrices and the head: the base is rebuilt as training built it (a preset
        // base is random, so it is drawn again from the run's seed, as SetupModel drew it right after manual_seed).
        var baseSource = ModelSource.Resolve(r.Model.Init);
        bool preset = baseSource.Kind == ModelSourceKind.Preset;
        if (preset) manual_seed(r.Training.Seed);
        ITaskModel baseModel = preset
            ? ModelFactory.FromPreset(baseSource.PresetName!, c.ModelTask, PresetOverrides(r, c.Labels))
            : baseSource.Load(c.ModelTask, numLabels: c.Labels?.Count, labels: c.Labels, overrides: ConfigOverrides(r));
        var merged = LoraModel.FromAdapter(baseModel, source).MergeAndUnload();
        string tmp = best + ".merge.tmp";
        if (Directory.Exists(tmp)) Directory.Delete(tmp, true);
        merged.SavePretrained(tmp);
        c.Tokenizer?.Save(tmp);
        if (c.ChatTemplate != null && c.Tokenizer != null) ChatData.WriteTemplate(tmp, c.ChatTemplate, c.Tokenizer);
        string tmpAdapter = Path.Combine(tmp, "adapter");
        Directory.CreateDirectory(tmpAdapter);
        foreach (var f in Directory.GetFiles(source).Where(f => Path.GetFileName(f).StartsWith("adapter_", StringComparison.Ordinal)))
            File.Copy(f, Path.Combine(tmpAdapter, Path.GetFileName(f)));
        if (Directory.Exists(best)) Directory.Delete(best, true);
        Directory.Move(tmp, best);
        merged.Module.Dispose();
        c.Options.Say($"strategy.lora.merge: {best} holds the merged model (adapter in {adapterDir})");
    }

    // ── Stage: features (strategy.method: features, instead of the optimizer, collaborators and Train) ───────────

    /// <summary>Encodes train and validation once with the frozen encoder (cached in run/cache/), fits the logistic-
    /// regression head for each strategy.features.c, keeps the best by the validation early-stopping metric (macro_f1
    /// unless the recipe names one), and saves best/ as a BERT classifier with classifier_pooling "mean" whose logits
    /// are the head's. metrics.jsonl gets one evaluation line per C (step = its position in the grid).</summary>
    static (TrainerState State, IReadOnlyDictionary<string, double>? LastEval) TrainFeatures(RunContext c)
    {
        var r = c.Recipe; var fs = r.Strategy.Features; var say = c.Options.Say;
        var model = (BertForSequenceClassification)c.Model;
        int k = c.Labels!.Count, batch = fs.BatchSize;
        var val = c.Validation?.Examples;
        long trainTokens = c.Train.Examples.Sum(e => (long)e.InputIds.Length), valTokens = val?.Sum(e => (long)e.InputIds.Length) ?? 0;
        say($"features: encode {c.Train.Examples.Count:N0} training" + (val != null ? $" + {val.Count:N0} validation" : "") +
            $" texts once ({trainTokens + valTokens:N0} tokens, batches of {batch} sorted by length) with the frozen {model.ModelType} encoder on {c.Device.type}, " +
            $"mean-pool last_hidden_state ({model.config.hidden_size} features), then fit logistic regression for C in [{string.Join(", ", fs.C)}]" +
            (r.Data.Test != null ? "; the test split is scored afterwards by best/" : ""));
        string? cacheDir = r.Data.Cache && c.IsMain ? Path.Combine(c.RunDir, "cache") : null;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        void Estimate(double tokPerS) => say($"features: first batch at {tokPerS:N0} tokens/s: encoding takes about {(trainTokens + valTokens) / Math.Max(1, tokPerS):N0} s (the longest texts come first, so likely less)");
        using var scope = NewDisposeScope();
        var xTrain = FeatureTraining.LoadOrEncode(model, c.Train.Examples, c.Collator, batch, "train", cacheDir, say, Estimate);   // (N, H)
        var xVal = val != null ? FeatureTraining.LoadOrEncode(model, val, c.Collator, batch, "validation", cacheDir, say) : null;  // (M, H)
        double encodeS = clock.Elapsed.TotalSeconds;
        var yTrain = tensor(c.Train.Examples.Select(e => (long)e.Label).ToArray());   // (N)
        var weights = ClassWeights(r.Training.ClassWeights, c.Train.Examples, c.Labels);

        var rule = new BestMetricRule(r.Training.EarlyStopping?.Metric ?? "macro_f1", r.Training.EarlyStopping?.Mode ?? "auto", r.Training.EarlyStopping?.MinDelta ?? 0);
        var state = new TrainerState();
        FeatureTraining.Head? best = null; Dictionary<string, double>? bestEval = null;
        double[]? warm = null;
        var grid = fs.C.Order().ToList();   // strongest regularisation first: each fit starts from the previous C's solution (warm start, as sklearn's LogisticRegressionCV)
        for (int i = 0; i < grid.Count; i++)
        {
            var head = FeatureTraining.Fit(xTrain, yTrain, k, grid[i], weights, 500, warm, out warm);
            state.Step = i + 1;
            if (xVal is null)
            {
                // Nothing to choose on: sklearn's default C = 1 when it is in the grid, else the middle value.
                double pick = grid.Contains(1.0) ? 1.0 : grid[grid.Count / 2];
                if (grid[i] == pick) best = head;
                continue;
            }
            var logits = FeatureTraining.Logits(head, xVal!);                         // (M, C)
            var gold = val!.Select(e => e.Label).ToList();
            var m = new Dictionary<string, double> { ["loss"] = nn.functional.cross_entropy(logits, tensor(gold.Select(g => (long)g).ToArray())).item<float>() };
            EvalLoop.AddClassificationMetrics(m, gold, logits.argmax(-1).data<long>().Select(x => (int)x).ToList(), c.Labels);
            m["c"] = grid[i];
            c.Metrics?.LogEval(state.Step, m);
            say($"C={grid[i]:G4}: train loss {head.Loss:F4} ({head.Iterations} iterations), validation {rule.Metric} {m.GetValueOrDefault(rule.Metric, double.NaN):F4}, accuracy {m["accuracy"]:F4}");
            if (!m.TryGetValue(rule.Metric, out double v))
                throw new RecipeException($"training.early_stopping.metric: evaluation produced no metric '{rule.Metric}'; it produced: {string.Join(", ", m.Keys)}");
            if (rule.Improves(v, state.BestMetric)) { state.BestMetric = v; state.BestStep = state.Step; best = head; bestEval = m; }
        }
        say($"features: C={best!.C:G4} chosen" + (bestEval != null ? $" by validation {rule.Metric} {state.BestMetric:F4}" : " (no validation data to choose on)") +
            $"; encoding {encodeS:N1} s, fitting {clock.Elapsed.TotalSeconds - encodeS:N1} s");
        model.SetClassifier(best.Weight, best.Bias);
        if (c.IsMain) SaveAtomically(Path.Combine(c.RunDir, "best"), c.SavePretrained);
        // The saved classifier must reproduce the head: a few training texts through the whole model (eval mode).
        model.Module.eval();   // also when every split came from the cache (Encode sets it otherwise)
        using (no_grad())
        {
            var few = c.Train.Examples.Take(Math.Min(8, c.Train.Examples.Count)).ToList();
            var viaModel = model.Forward(c.Collator.Collate(few)).Logits!.cpu();                                  // (8, C)
            var viaHead = FeatureTraining.Logits(best, xTrain.index_select(0, arange(few.Count)));                // (8, C)
            double diff = viaModel.sub(viaHead).abs().max().item<float>();
            if (diff > 1e-3) throw new InvalidOperationException($"features: best/ gives logits {diff:G3} away from the fitted head (a pooling mismatch); please report it");
        }
        return (state, bestEval);
    }

    // ── Stage: evaluate test ──────────────────────────────────────────────────────────────────────────────────

    /// <summary>Scores the test split with best/ (or the final model when there is none). Classification is scored as
    /// <c>tasklm evaluate</c> scores it (<see cref="ModelEvaluation.Classify"/>), so eval.json and the report have the
    /// per-class table, the confusion matrix and the worst examples with the test file's own texts, and the TF-IDF
    /// baseline beside the model (Evaluation/BaselineStage.cs); its metrics keep training's names (<see cref="EvalLoop"/>).</summary>
    static void EvaluateTest(RunContext c)
    {
        var r = c.Recipe;
        var test = LoadSplit(c, "test", r.Data.Test!, c.Labels, r.Data.MaxEvalExamples);
        string best = Path.Combine(c.RunDir, "best");
        bool fromBest = (c.Model is not LoraModel || r.Strategy.Lora.Merge) && File.Exists(Path.Combine(best, "config.json"));
        var scored = fromBest ? ModelFactory.FromPretrained(best, c.ModelTask, c.Labels?.Count, c.Labels) : c.Model;
        try
        {
            scored.Module.to(c.Device);
            scored.Module.eval();
            EvalResult result;
            if (r.Task == TaskNames.Classification && c.Labels != null)
            {
                result = ModelEvaluation.Classify(scored, test.Examples, c.Collator, c.Labels, ModelEvaluation.SourceTexts(r.Data, r.Data.Test!, test.Examples.Count),
                    c.Tokenizer, r.Training.EvalBatchSize, worst: 10, split: "test");
                c.Test = EvalLoop.ClassificationMetricsOf(result);
            }
            else
            {
                using (no_grad()) c.Test = EvalLoop.Run(scored, test.Examples, c.Collator, r.Training.EvalBatchSize, c.Labels);
                result = new EvalResult { Task = r.Task, Split = "test", N = test.Examples.Count };
            }
            result.Metrics.Clear();
            foreach (var (k, v) in c.Test) if (double.IsFinite(v)) result.Metrics[k] = v;
            result.ModelSource = r.Model.Source;
            if (c.Labels != null) result.Baseline = BaselineStage.Run(r, r.Data.Test!, test.Examples, scored, c.Collator, c.Labels, c.Tokenizer, c.Options.Say, c.RunDir, save: true);
            if (result.Baseline?.Shipped != null)
            {
                // The run ships the baseline or a mix (chosen on validation): its metrics, confusion matrix and worst examples
                // are the headline, the model's metrics kept beside (model_metrics).
                result.Baseline.MakeHeadline(result);
                c.Test = new Dictionary<string, double>(result.Metrics);
            }
            var json = result.ToJson();
            json.Insert(3, "model", fromBest ? "best" : "final");
            foreach (var (k, v) in c.Test) if (!double.IsFinite(v)) json["metrics"]![k] = null;
            c.TestJson = json;
        }
        finally { if (fromBest) scored.Module.Dispose(); }
    }

    // ── Stage: write results ──────────────────────────────────────────────────────────────────────────────────

    /// <summary>eval.json ({"task", "split": "test", "n", "model", "metrics"}), atomically, when there was a test split.</summary>
    static void WriteResults(RunContext c)
    {
        if (c.TestJson == null || c.Test == null) return;
        string path = Path.Combine(c.RunDir, "eval.json"), tmp = path + ".tmp";
        File.WriteAllText(tmp, c.TestJson.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }));
        File.Move(tmp, path, overwrite: true);
        c.Options.Say("test: " + string.Join("  ", c.Test.Select(kv => $"{kv.Key}={kv.Value:G5}")));
    }

    /// <summary>The tokenizer a model init speaks when the recipe names none: the folder's own tokenizer files,
    /// else GPT-2's vocabulary for a GPT-2 preset, else none (pre-tokenized data only).</summary>
    internal static string? DefaultTokenizerSource(string init) => ModelFactory.DefaultTokenizerSource(init);

    internal static bool HasTokenizerFiles(string folder) => ModelFactory.HasTokenizerFiles(folder);

    static void SaveAtomically(string dir, Action<string> save)
    {
        string tmp = dir + ".tmp";
        if (Directory.Exists(tmp)) Directory.Delete(tmp, true);
        try { save(tmp); }
        catch (IOException e) when (Checkpoints.IsDiskFull(e))
        {
            if (Directory.Exists(tmp)) Directory.Delete(tmp, true);
            throw new IOException($"{dir}: no space left on device while writing the best model ({Checkpoints.FreeSpace(dir)}); free space and --resume", e);
        }
        if (Directory.Exists(dir)) Directory.Delete(dir, true);
        Directory.Move(tmp, dir);
    }

    internal static Collator MakeCollator(Recipe r, ITaskModel model, ITokenizer? tok, Device device)
    {
        // Padding id: the model's, else the tokenizer's pad or EOS; never past the embedding (a preset with a small vocab).
        int vocab = model.VocabSize;
        int pad = model.PadTokenId ?? tok?.PadTokenId ?? tok?.EosTokenId ?? 0;
        if (pad < 0 || pad >= vocab) pad = 0;
        if (r.Task != "masked-lm") return new Collator(r.Task, pad, device);
        if (tok == null) throw new InvalidOperationException("masked-lm needs a tokenizer (for [MASK] and the special tokens)");
        var specials = SpecialIds(tok);
        return new Collator(r.Task, pad, device)
        {
            MlmProbability = r.Data.MlmProbability, MaskTokenId = tok.TokenToId("[MASK]") ?? throw new InvalidOperationException("tokenizer has no [MASK] token"),
            VocabSize = tok.VocabSize, SpecialIds = specials,
        };
    }

    /// <summary>The BERT special ids ([CLS], [SEP], [PAD], [UNK], [MASK]) the tokenizer has: never masked.</summary>
    static HashSet<int> SpecialIds(ITokenizer tok)
    {
        var specials = new HashSet<int>();
        foreach (var s in new[] { "[CLS]", "[SEP]", "[PAD]", "[UNK]", "[MASK]" }) if (tok.TokenToId(s) is int id) specials.Add(id);
        return specials;
    }

    /// <summary>Where a co-occurrence window stops for model.embedding_init: the special ids and end-of-text.</summary>
    static HashSet<int> EmbeddingInitBoundaries(ITokenizer? tok)
    {
        if (tok == null) return [];
        var ids = SpecialIds(tok);
        if (tok.EosTokenId is int eos) ids.Add(eos);
        return ids;
    }

    /// <summary>"balanced" = n / (k · count_c) as sklearn's compute_class_weight; or the recipe's list.</summary>
    static float[]? ClassWeights(JsonNode? spec, List<Example> train, IReadOnlyList<string>? labels)
    {
        if (spec == null) return null;
        int k = labels?.Count ?? throw new InvalidOperationException("training.class_weights needs a classification task with labels");
        if (spec is JsonArray a)
        {
            if (a.Count != k) throw new InvalidOperationException($"training.class_weights has {a.Count} entries, the task has {k} labels ({string.Join(", ", labels)})");
            return a.Select(x => (float)RecipeLoader.JsonNumber(x)!.Value).ToArray();
        }
        var counts = new long[k];
        foreach (var e in train)
        {
            if (e.Label >= 0) counts[e.Label]++;
            if (e.TokenLabels != null) foreach (int l in e.TokenLabels) if (l >= 0) counts[l]++;
        }
        long n = counts.Sum();
        return counts.Select(c => c == 0 ? 0f : (float)(n / (double)(k * c))).ToArray();
    }
}
