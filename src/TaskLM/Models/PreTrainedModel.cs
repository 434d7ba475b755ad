// The model-family contract (HF's PreTrainedModel): each family declares its facts; loading, saving, init,
// presets, device and dispose handling exist once, here and in HfCheckpoint.
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using TaskLM.Hf;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace TaskLM.Models;

/// <summary>
/// What a model family declares about itself, as HF's <c>PreTrainedModel</c> subclasses do with
/// <c>base_model_prefix</c>, <c>_tied_weights_keys</c>, <c>_no_split_modules</c> and <c>_init_weights</c>.
/// Training, LoRA, the optimizer's decay grouping and the loader ask these questions instead of testing
/// model_type strings. A new family is one file with a <see cref="ModelFamily"/> subclass, its modules, and
/// a <see cref="PreTrainedModel"/> subclass per head, registered in <see cref="ModelFamilies.All"/>; its Hugging Face
/// names (<see cref="Names"/>) are its row of <see cref="HfFamilies"/>, where the libtorch-free side reads them.
/// </summary>
public abstract class ModelFamily
{
    /// <summary>The family's Hugging Face names (model_type, display name, architecture class per task): a row of
    /// <see cref="HfFamilies"/>, which the libtorch-free ONNX side reads too.</summary>
    public abstract HfFamily Names { get; }

    /// <summary>HF's config.json <c>model_type</c> ("gpt2", "bert").</summary>
    public string ModelType => Names.ModelType;

    /// <summary>The family's name in messages ("GPT-2").</summary>
    public string DisplayName => Names.DisplayName;

    /// <summary>HF's <c>base_model_prefix</c>: the body's field in every head model ("transformer", "bert").
    /// Parameters outside it are the head.</summary>
    public abstract string BaseModelPrefix { get; }

    /// <summary>Matches a numbered layer in a parameter name; group 1 is the layer index
    /// (GPT-2 <c>h.N.</c>, BERT <c>layer.N.</c>, a Llama-style family <c>layers.N.</c>).</summary>
    protected abstract Regex LayerPattern { get; }

    /// <summary>Embedding modules, relative to the body (GPT-2 "wte", "wpe"; BERT "embeddings").</summary>
    public abstract IReadOnlyList<string> EmbeddingModules { get; }

    /// <summary>The input token embedding's parameter (the one a tied LM head shares).</summary>
    public abstract string InputEmbeddingKey { get; }

    /// <summary>HF's <c>_tied_weights_keys</c>: head weights that are the input embedding when
    /// tie_word_embeddings is on; a checkpoint may hold them, the model does not.</summary>
    public abstract IReadOnlyList<string> TiedWeightKeys { get; }

    /// <summary>Normalisation module types, whose weights get no weight decay (HF Trainer's
    /// ALL_LAYERNORM_LAYERS). A Llama-style family would add its RMSNorm.</summary>
    public virtual IReadOnlyList<Type> NormModuleTypes => [typeof(LayerNorm)];

    /// <summary>PEFT's default LoRA target_modules for the family.</summary>
    public abstract IReadOnlyList<string> LoraTargetModules { get; }

    /// <summary>True when the family's LoRA targets are HF Conv1D layers (weights stored [in, out]):
    /// PEFT's <c>fan_in_fan_out</c>.</summary>
    public virtual bool FanInFanOut => false;

    /// <summary>A state-dict key whose weight HF stores [in, out] (Conv1D); ours is Linear [out, in], so it is
    /// transposed on load and save.</summary>
    public virtual bool IsConv1DWeight(string key) => false;

    /// <summary>The tokenizer a preset of this family speaks when a recipe names none ("gpt2"), or null.</summary>
    public virtual string? DefaultTokenizer => null;

    /// <summary>HF's architecture (class) name of each task head this family has.</summary>
    public IReadOnlyDictionary<string, string> Architectures => Names.Architectures;

    /// <summary>The tasks with a head in this family.</summary>
    public IReadOnlyList<string> Tasks => Names.Tasks;

    /// <summary>Layer index of a parameter name, or -1 outside the numbered layers.</summary>
    public int LayerOf(string name) => LayerPattern.Match(name) is { Success: true } m ? int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture) : -1;

    /// <summary>True for the head's parameters (outside <see cref="BaseModelPrefix"/>).</summary>
    public bool IsHead(string name) => !name.StartsWith(BaseModelPrefix + ".", StringComparison.Ordinal);

    /// <summary>True for a parameter of an embedding module.</summary>
    public bool IsEmbedding(string name) =>
        EmbeddingModules.Any(e => name.StartsWith($"{BaseModelPrefix}.{e}.", StringComparison.Ordinal) || name.StartsWith(e + ".", StringComparison.Ordinal));

    /// <summary>True when the task needs class labels (num_labels / id2label apply).</summary>
    public static bool HasLabels(string task) => task is "classification" or "token-classification";

    /// <summary>The head model for <paramref name="task"/> on a config.json object, its weights not yet
    /// initialised (the caller loads or initialises them). <paramref name="source"/> names the config in errors.</summary>
    public abstract PreTrainedModel Build(JsonObject config, string source, string task);

    /// <summary>config.json for a preset shape with recipe overrides applied (config.json names; an unknown key
    /// is an error naming the closest known one). Labels come as "labels" (names) or "num_labels".</summary>
    public abstract JsonObject PresetConfig(ModelPreset preset, IDictionary<string, object>? overrides);

    /// <summary>The body's parameter count for a preset shape, as HF builds it.</summary>
    public abstract long CountParameters(ModelPreset preset);

    /// <summary>config.json keys the family's config reads: what a recipe's model.config may override on a model
    /// folder besides the keys its config.json already has.</summary>
    public abstract IEnumerable<string> ConfigKeys { get; }

    /// <summary>Renames an HF checkpoint key to ours (old names, aliases), or null for a key the model derives
    /// instead of storing (old buffers, a bias tied to another). <paramref name="checkpointKeys"/> is every key
    /// of the checkpoint, for aliases that apply only when the canonical key is absent.</summary>
    public virtual string? MapCheckpointKey(string key, IReadOnlySet<string> checkpointKeys) => key;

    public override string ToString() => ModelType;
}

/// <summary>The registered model families: the one place a new family's TorchSharp side is added (its names go in
/// <see cref="HfFamilies.All"/>).</summary>
public static class ModelFamilies
{
    /// <summary>Every family TaskLM builds.</summary>
    public static readonly IReadOnlyList<ModelFamily> All = [Gpt2Family.Instance, BertFamily.Instance, LlamaFamily.Instance, LlamaFamily.Qwen2, LlamaFamily.Mistral];

    /// <summary>The family of a model_type, or null.</summary>
    public static ModelFamily? Find(string? modelType) => All.FirstOrDefault(f => f.ModelType == modelType);

    /// <summary>The family of a model_type, or an error naming the source and the supported types.</summary>
    public static ModelFamily Get(string? modelType, string source) =>
        Find(modelType) ?? throw new NotSupportedException(modelType == null
            ? $"{source}: no \"model_type\""
            : $"{source}: model_type '{modelType}' is not supported ({string.Join(", ", All.Select(f => f.ModelType))})");

    /// <summary>True for a normalisation module of any family (no weight decay on its weights).</summary>
    public static bool IsNormModule(nn.Module module) => All.Any(f => f.NormModuleTypes.Any(t => t.IsInstanceOfType(module)));
}

/// <summary>
/// What every head model of every family shares (HF's PreTrainedModel): the family's facts, the config.json
/// it writes, one forward entry that moves inputs to the model's device inside one dispose scope, weight
/// initialisation driven by the family's <see cref="InitWeight"/>, HF-layout saving, and the load report.
/// A head implements <see cref="Run"/>; its body and head modules are fields with HF's names.
/// </summary>
public abstract class PreTrainedModel : nn.Module, ITaskModel
{
    protected PreTrainedModel(string name) : base(name) { }

    /// <summary>The family's declared facts.</summary>
    public abstract ModelFamily Family { get; }

    /// <summary>HF model_type.</summary>
    public string ModelType => Family.ModelType;

    /// <summary>The task this head serves.</summary>
    public abstract string Task { get; }

    /// <summary>HF's class name of this head, written to config.json's architectures.</summary>
    public string Architecture => Family.Architectures[Task];

    /// <summary>The config.json content (architectures, labels, dtype) as <see cref="SavePretrained"/> writes it.</summary>
    public JsonObject Config => ConfigJson();

    /// <summary>The family's config.json for this model.</summary>
    protected abstract JsonObject ConfigJson();

    /// <summary>The longest input the position table takes (n_positions, max_position_embeddings).</summary>
    public abstract int MaxPositions { get; }

    /// <summary>config.json's pad_token_id, or null.</summary>
    public abstract int? PadTokenId { get; }

    /// <summary>config.json's vocab_size: rows of the token embedding.</summary>
    public abstract int VocabSize { get; }

    /// <summary>This module (the head model is the module, as in HF).</summary>
    public nn.Module Module => this;

    /// <summary>What loading a checkpoint did (null for a model built from a preset).</summary>
    public LoadReport? LoadReport { get; internal set; }

    /// <summary>The folder's generation_config.json as loaded with the model (HF's model.generation_config), or null when it
    /// had none; <see cref="SavePretrained"/> writes it back, so a fine-tuned model keeps its stop ids.</summary>
    public JsonObject? GenerationConfigJson { get; set; }

    /// <summary>The ids generation stops at: config.json's eos_token_id (each one when a list), then generation_config.json's.</summary>
    public IReadOnlyList<int> EosTokenIds => TaskLM.Data.Hub.GenerationConfig.EosTokenIds(Config, GenerationConfigJson);

    /// <summary>The device of the model's weights.</summary>
    public Device WeightsDevice => parameters().First().device;

    /// <summary>Runs the head on a batch already on the model's device; what it creates lives in the caller's scope.</summary>
    protected abstract ModelOutput Run(ModelBatch batch);

    /// <summary>Runs the model on a batch from any device: inputs are moved to the model's device, and one
    /// dispose scope per forward pass frees the intermediates (autograd keeps what backward needs); the
    /// outputs move to the caller's scope.</summary>
    public ModelOutput Forward(ModelBatch batch)
    {
        var device = WeightsDevice;
        Tensor? On(Tensor? t) => t is null ? null : t.device == device ? t : t.to(device);
        using var scope = NewDisposeScope();
        var o = Run(new ModelBatch
        {
            InputIds = On(batch.InputIds)!, AttentionMask = On(batch.AttentionMask), TokenTypeIds = On(batch.TokenTypeIds), PositionIds = On(batch.PositionIds),
            Labels = On(batch.Labels), StartPositions = On(batch.StartPositions), EndPositions = On(batch.EndPositions),
        });
        o.Loss?.MoveToOuterDisposeScope();
        o.Logits?.MoveToOuterDisposeScope();
        o.StartLogits?.MoveToOuterDisposeScope();
        o.EndLogits?.MoveToOuterDisposeScope();
        return o;
    }

    /// <summary>Checks an inference batch before it reaches the model, so a bad input is one line naming
    /// <paramref name="source"/>, the key, the position and the limit instead of libtorch's "index out of range
    /// in self": input_ids (B, T) non-empty and inside the vocabulary, attention_mask and token_type_ids of the
    /// same shape, token types inside type_vocab_size, T within the position table.</summary>
    public void CheckInputs(ModelBatch batch, string source)
    {
        var ids = batch.InputIds;
        if (ids.dim() != 2) throw new InvalidDataException($"{source}: input_ids must be a list of token-id rows (B, T), got {ids.dim()} dimensions");
        if (ids.numel() == 0) throw new InvalidDataException($"{source}: input_ids is empty (no tokens)");
        var cfg = Config;
        int vocab = VocabSize;
        CheckRange(ids, "input_ids", vocab, $"the vocabulary (vocab_size {vocab}: ids 0..{vocab - 1})", source);
        if (ids.shape[1] > MaxPositions)
            throw new InvalidDataException($"{source}: input_ids rows have {ids.shape[1]} tokens, more than the model's {MaxPositions} positions");
        foreach (var (key, t) in new[] { ("attention_mask", batch.AttentionMask), ("token_type_ids", batch.TokenTypeIds) })
        {
            if (t is null) continue;
            if (!t.shape.SequenceEqual(ids.shape))
                throw new InvalidDataException($"{source}: {key} has shape [{string.Join(", ", t.shape)}], input_ids [{string.Join(", ", ids.shape)}]; they must match");
        }
        if (batch.AttentionMask is { } mask) CheckRange(mask, "attention_mask", 2, "0 (padding) and 1 (token)", source);
        int types = HfConfig.Int(cfg, "type_vocab_size", "config.json") ?? 1;
        if (batch.TokenTypeIds is { } tt) CheckRange(tt, "token_type_ids", types, $"the token types (type_vocab_size {types}: 0..{types - 1})", source);
    }

    static void CheckRange(Tensor t, string key, int limit, string what, string source)
    {
        using var scope = NewDisposeScope();
        var bad = t.lt(0).logical_or(t.ge(limit));
        if (!bad.any().item<bool>()) return;
        var at = bad.nonzero()[0].data<long>().ToArray();   // (row, col) of the first bad value
        long v = t[at[0], at[1]].item<long>();
        throw new InvalidDataException($"{source}: {key}[{at[0]}][{at[1]}] = {v} is outside {what}");
    }

    /// <summary>HF's <c>_init_weights</c> for one parameter (family rules: normal std, zero bias, norm weight 1).</summary>
    protected abstract void InitWeight(string name, Parameter p, Generator? generator);

    /// <summary>Initialises the named parameters (all when null), in named_parameters order, with the family's rule.</summary>
    public void InitWeights(IEnumerable<string>? names = null, Generator? generator = null)
    {
        var wanted = names?.ToHashSet(StringComparer.Ordinal);
        using var _ = no_grad();
        foreach (var (name, p) in named_parameters())
            if (wanted == null || wanted.Contains(name)) InitWeight(name, p, generator);
    }

    /// <summary>The state dict in HF's layout: Conv1D weights back to [in, out]; tied weights are not
    /// parameters, so they are left out, as HF saves them.</summary>
    public Dictionary<string, Tensor> HfStateDict()
    {
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (name, p) in state_dict())
            result[name] = Family.IsConv1DWeight(name) ? p.detach().t().contiguous() : p.detach();
        return result;
    }

    /// <summary>Writes config.json + model.safetensors that Python's from_pretrained loads.</summary>
    public void SavePretrained(string directory)
    {
        Directory.CreateDirectory(directory);
        using (var scope = NewDisposeScope())
            SafeTensors.Save(Path.Combine(directory, "model.safetensors"), HfStateDict(), new Dictionary<string, string> { ["format"] = "pt" });
        HfCheckpoint.WriteConfig(directory, ConfigJson());
        if (GenerationConfigJson is { } gen)
            File.WriteAllText(Path.Combine(directory, TaskLM.Data.Hub.GenerationConfig.FileName), gen.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
    }

    /// <summary>
    /// Loads an HF folder (config.json + weights) with the head for <paramref name="task"/> (null: the head
    /// config.json's architectures name). <paramref name="labels"/>/<paramref name="numLabels"/> set a
    /// classifier's classes. What the checkpoint lacks (a new head, or a head of another size) is initialised
    /// as the family's _init_weights does and listed in <see cref="LoadReport"/>. <paramref name="family"/>,
    /// when given, must be the folder's family.
    /// </summary>
    public static PreTrainedModel FromPretrained(string folder, string? task = null, int? numLabels = null,
        IReadOnlyList<string>? labels = null, long? seed = null, ModelFamily? family = null, IDictionary<string, object>? overrides = null)
    {
        if (!Directory.Exists(folder)) throw new DirectoryNotFoundException($"model folder '{folder}' does not exist");
        string source = Path.Combine(folder, "config.json");
        var json = HfCheckpoint.LoadConfig(folder);
        string? mt = json["model_type"] is JsonValue v && v.GetValueKind() == JsonValueKind.String ? v.GetValue<string>() : null;
        var f = family != null && mt == null ? family : ModelFamilies.Get(mt, source);
        if (family != null && f != family) throw new InvalidDataException($"{source}: model_type is '{mt}', not '{family.ModelType}'");
        task ??= f.Names.TaskOfArchitectures(HfConfig.ArchitecturesOf(json))
            ?? throw new ArgumentException($"{source}: architectures [{string.Join(", ", HfConfig.ArchitecturesOf(json))}] name no {f.DisplayName} task head; choose a task ({string.Join(", ", f.Tasks)})");
        // As HF's from_pretrained(folder, hidden_dropout_prob=0.0): a recipe's model.config overrides the folder's
        // config.json (dropout, pad_token_id, say); a key the family does not read is refused with the closest name,
        // and a changed shape fails the weight load below naming the tensor.
        if (overrides is { Count: > 0 }) ConfigOverrides.Apply(json, overrides, json.Select(kv => kv.Key).Concat(f.ConfigKeys).ToList(), $"{f.DisplayName} ({source})");
        if (ModelFamily.HasLabels(task)) HfConfig.SetLabels(json, numLabels, labels);
        var model = f.Build(json, source, task);
        var sd = HfCheckpoint.LoadStateDict(folder);
        try
        {
            model.LoadReport = HfCheckpoint.LoadInto(model, sd, folder);
            using var g = seed is long s ? new Generator((ulong)s) : null;
            model.InitWeights(model.LoadReport.NewlyInitialised, g);
        }
        finally { foreach (var t in sd.Values) t.Dispose(); }
        model.GenerationConfigJson = TaskLM.Data.Hub.GenerationConfig.Read(folder);
        model.eval();
        return model;
    }

    /// <summary>A randomly initialised model of a preset shape (see <see cref="ModelPresets"/>) with config.json
    /// keys overridden. Without a seed, torch's default generator draws (seed torch for a reproducible init).</summary>
    public static PreTrainedModel FromPreset(string name, string task, IDictionary<string, object>? overrides = null, long? seed = null)
    {
        var preset = ModelPresets.Get(name);
        var json = preset.Family.PresetConfig(preset, overrides);
        var model = preset.Family.Build(json, $"preset {name}" + (overrides is { Count: > 0 } ? " with overrides" : ""), task);
        using (var g = seed is long s ? new Generator((ulong)s) : null) model.InitWeights(null, g);
        model.eval();
        return model;
    }
}

/// <summary>The activation functions of every family's modules (HF's ACT2FN), by config.json name.</summary>
public static class Activations
{
    /// <summary>The function <paramref name="name"/> (config.json's <paramref name="key"/>) names; an error naming both when
    /// TaskLM has none.</summary>
    public static Func<Tensor, Tensor> Of(string name, string key, string source = HfConfig.FileName) => HfActivations.Parse(name, key, source) switch
    {
        HfActivation.Gelu => x => nn.functional.gelu(x),                                  // exact: 0.5 x (1 + erf(x/√2))
        HfActivation.GeluTanh => x => nn.functional.gelu(x, GELU.Approximate.tanh),
        HfActivation.Relu => x => nn.functional.relu(x),
        HfActivation.Silu => x => nn.functional.silu(x),
        HfActivation.Tanh => x => nn.functional.tanh(x),
        var a => throw new ArgumentOutOfRangeException(nameof(name), a, null),
    };
}

/// <summary>A recipe's model.config overrides applied to a config.json object (the labels through
/// <see cref="HfConfig.SetLabels"/>); an unknown key is refused with the closest known one.</summary>
public static class ConfigOverrides
{
    /// <summary>Applies recipe overrides to a preset's config.json: "labels" (names) and "num_labels" through
    /// <see cref="HfConfig.SetLabels"/>, other keys must be one of <paramref name="known"/> (else the closest is suggested).</summary>
    public static void Apply(JsonObject json, IDictionary<string, object>? overrides, IEnumerable<string> known, string family,
        IReadOnlyDictionary<string, string>? aliases = null)
    {
        if (overrides == null) return;
        var knownSet = known.ToHashSet(StringComparer.Ordinal);
        IReadOnlyList<string>? labels = null;
        int? numLabels = null;
        foreach (var (rawKey, value) in overrides)
        {
            string key = aliases?.GetValueOrDefault(rawKey) ?? rawKey;
            if (key == "labels") { labels = ToStrings(value, key); continue; }
            if (key == "num_labels") { numLabels = Convert.ToInt32(value is JsonValue jv ? jv.ToString() : value, CultureInfo.InvariantCulture); continue; }
            if (key == "id2label" && value is not JsonObject) { labels = ToStrings(value, key); continue; }
            if (!knownSet.Contains(key))
                throw new ArgumentException($"unknown {family} config key '{rawKey}'{ModelPresets.Suggest(rawKey, knownSet.Append("labels").Append("num_labels"))}");
            json[key] = value is JsonNode node ? node.DeepClone() : JsonSerializer.SerializeToNode(value);
        }
        if (labels != null || numLabels != null)
        {
            json.Remove("id2label");
            json.Remove("label2id");
            HfConfig.SetLabels(json, numLabels, labels);
        }
    }

    static IReadOnlyList<string> ToStrings(object value, string key) => value switch
    {
        IEnumerable<string> s => s.ToList(),
        JsonArray a => a.Select(x => x?.ToString() ?? "").ToList(),
        System.Collections.IEnumerable e when value is not string => e.Cast<object>().Select(x => x.ToString() ?? "").ToList(),
        _ => throw new ArgumentException($"override '{key}' must be a list of class names"),
    };
}
