// LoRA as PEFT does it: low-rank A/B beside target linears, PEFT-format adapters (load/save), merge into the base.
using System.Text.Json.Nodes;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace TaskLM.Models;

/// <summary>LoRA settings, PEFT's adapter_config.json names.</summary>
public sealed record LoraConfig(int R, double Alpha, double Dropout, IReadOnlyList<string> TargetModules, bool UseRsLora = false)
{
    /// <summary>PEFT's scaling: alpha / r (alpha / √r with rsLoRA).</summary>
    public double Scaling => UseRsLora ? Alpha / Math.Sqrt(R) : Alpha / R;

    /// <summary>The family's usual targets when none are given (PEFT's defaults: gpt2 c_attn, bert query/value).</summary>
    public static IReadOnlyList<string> DefaultTargets(string modelType) =>
        ModelFamilies.Find(modelType)?.LoraTargetModules
        ?? throw new ArgumentException($"no default LoRA target_modules for model type '{modelType}'; set strategy.lora.target_modules");
}

/// <summary>A module whose forward calls layers LoRA may wrap, each named by its HF name (its child's name, e.g.
/// "c_attn"). PEFT replaces the attribute by name; a C# module declares the names it lets be replaced instead.
/// The replacement is not registered in the module: its state_dict keys stay the base model's, and
/// <see cref="LoraModel"/> registers the LoRA matrices itself.</summary>
public interface ILoraTargets
{
    /// <summary>Makes forward call <paramref name="layer"/> where it called the child <paramref name="name"/>, and
    /// returns the layer it called before; null (nothing replaced) when <paramref name="name"/> is not one of this
    /// module's LoRA targets.</summary>
    nn.Module<Tensor, Tensor>? SwapLayer(string name, nn.Module<Tensor, Tensor> layer);

    /// <summary>Stores <paramref name="layer"/> in <paramref name="slot"/> and returns what was there: one line per
    /// target in a <see cref="SwapLayer"/>.</summary>
    static nn.Module<Tensor, Tensor> Swap(ref nn.Module<Tensor, Tensor> slot, nn.Module<Tensor, Tensor> layer)
    {
        var previous = slot;
        slot = layer;
        return previous;
    }
}

/// <summary>A target layer with its low-rank update: y = base(x) + B(A(dropout(x))) · scaling.
/// A: (r, in), B: (out, r), the shapes PEFT saves whatever the base layer's layout.</summary>
public sealed class LoraLayer : nn.Module<Tensor, Tensor>
{
    public readonly nn.Module<Tensor, Tensor> base_layer;
    public readonly Linear lora_A;
    public readonly Linear lora_B;
    public readonly Dropout lora_dropout;
    public double Scaling { get; }
    /// <summary>HF Conv1D layout: the base weight is (in, out) rather than Linear's (out, in).</summary>
    public bool FanInFanOut { get; }
    public bool Merged { get; private set; }

    public LoraLayer(nn.Module<Tensor, Tensor> baseLayer, long inFeatures, long outFeatures, LoraConfig cfg, bool fanInFanOut) : base("LoraLayer")
    {
        base_layer = baseLayer;
        // PEFT's init: A as nn.Linear's default (kaiming-uniform, a=√5), B zeros, so training starts at the base model.
        lora_A = nn.Linear(inFeatures, cfg.R, hasBias: false);
        lora_B = nn.Linear(cfg.R, outFeatures, hasBias: false);
        using (no_grad()) lora_B.weight!.zero_();
        lora_dropout = nn.Dropout(cfg.Dropout);
        Scaling = cfg.Scaling;
        FanInFanOut = fanInFanOut;
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        var y = base_layer.forward(x);
        if (Merged) return y;
        return y + lora_B.forward(lora_A.forward(lora_dropout.forward(x))) * Scaling;
    }

    /// <summary>Adds B·A·scaling into the base weight ((out, in), transposed for Conv1D) and stops the side path.</summary>
    public void Merge()
    {
        if (Merged) return;
        using var _ = no_grad();
        using var delta = lora_B.weight!.matmul(lora_A.weight!).mul(Scaling);   // (out, in)
        var w = BaseWeight(base_layer);
        if (FanInFanOut) w.add_(delta.t()); else w.add_(delta);
        Merged = true;
    }

    internal static Parameter BaseWeight(nn.Module m) =>
        m.named_parameters(recurse: false).FirstOrDefault(p => p.name == "weight").parameter
        ?? throw new InvalidOperationException($"LoRA target {m.GetName()} has no 'weight' parameter");
}

/// <summary>An <see cref="ITaskModel"/> with LoRA layers swapped in for its target modules. Base parameters are
/// frozen; <see cref="Module"/> holds only what trains (the LoRA matrices, and the head for classification tasks,
/// PEFT's modules_to_save), named as in PEFT's saved adapter without the "base_model.model." prefix.</summary>
public sealed class LoraModel : ITaskModel
{
    readonly ITaskModel _inner;
    readonly Dictionary<string, LoraLayer> _layers = new(StringComparer.Ordinal);
    readonly Dictionary<string, (ILoraTargets parent, string child, nn.Module<Tensor, Tensor> original)> _swaps = new(StringComparer.Ordinal);
    readonly TrainableParts _trainable;

    public LoraConfig Lora { get; }
    /// <summary>Head modules trained and saved with the adapter (PEFT's modules_to_save), e.g. "score".</summary>
    public IReadOnlyList<string> ModulesToSave { get; }
    public ITaskModel Base => _inner;

    /// <summary>Wraps <paramref name="inner"/>: every module whose name ends with a target (PEFT's matching: the
    /// whole name or its last component) gets a <see cref="LoraLayer"/>.</summary>
    public LoraModel(ITaskModel inner, LoraConfig cfg, IReadOnlyList<string>? modulesToSave = null)
    {
        _inner = inner; Lora = cfg; ModulesToSave = modulesToSave ?? [];
        foreach (var p in inner.Module.parameters()) p.requires_grad = false;
        var modules = inner.Module.named_modules().ToList();
        foreach (var (name, module) in modules)
        {
            if (name.Length == 0 || !cfg.TargetModules.Any(t => name == t || name.EndsWith("." + t, StringComparison.Ordinal))) continue;
            if (module is not nn.Module<Tensor, Tensor> target) throw new InvalidOperationException($"LoRA target '{name}' is not a tensor→tensor layer");
            var w = LoraLayer.BaseWeight(module);
            bool conv1d = module is not Linear;   // HF GPT-2 Conv1D keeps (in, out)
            long inF = conv1d ? w.shape[0] : w.shape[1], outF = conv1d ? w.shape[1] : w.shape[0];
            var layer = new LoraLayer(target, inF, outF, cfg, conv1d);
            layer.to(w.device);
            Swap(name, target, layer, modules);
            _layers[name] = layer;
        }
        if (_layers.Count == 0) throw new InvalidOperationException($"LoRA: no module matches target_modules [{string.Join(", ", cfg.TargetModules)}]");
        foreach (var (name, p) in inner.Module.named_parameters())
            if (ModulesToSave.Any(m => name.StartsWith(m + ".", StringComparison.Ordinal))) p.requires_grad = true;
        _trainable = new TrainableParts(this);
    }

    /// <summary>Has the parent module call <paramref name="layer"/> in place of its child <paramref name="name"/>
    /// (<see cref="ILoraTargets"/>), so the family's forward goes through the LoRA side path.</summary>
    void Swap(string name, nn.Module<Tensor, Tensor> original, LoraLayer layer, List<(string name, nn.Module module)> modules)
    {
        int dot = name.LastIndexOf('.');
        var parent = dot < 0 ? _inner.Module : modules.First(m => m.name == name[..dot]).module;
        string child = name[(dot + 1)..];
        if (parent is not ILoraTargets targets || targets.SwapLayer(child, layer) is not { } replaced)
            throw new InvalidOperationException($"LoRA: {parent.GetType().Name} does not let '{name}' be replaced (not one of its LoRA targets)");
        if (!ReferenceEquals(replaced, original))
        {
            targets.SwapLayer(child, replaced);
            throw new InvalidOperationException($"LoRA: '{name}' is already replaced (a LoRA model on this model already exists)");
        }
        _swaps[name] = (targets, child, original);
    }

    public string ModelType => _inner.ModelType;
    public ModelFamily? Family => _inner.Family;
    public string Task => _inner.Task;
    public JsonObject Config => _inner.Config;
    public int MaxPositions => _inner.MaxPositions;
    public int? PadTokenId => _inner.PadTokenId;
    public int VocabSize => _inner.VocabSize;
    public nn.Module Module => _trainable;
    public IReadOnlyDictionary<string, LoraLayer> Layers => _layers;

    public ModelOutput Forward(ModelBatch batch) => _inner.Forward(batch);

    /// <summary>Keeps the base module's train/eval mode in step (dropout) when the trainer switches ours.</summary>
    sealed class TrainableParts : nn.Module
    {
        readonly LoraModel _owner;
        public TrainableParts(LoraModel owner) : base("LoraTrainable")
        {
            _owner = owner;
            foreach (var (name, layer) in owner._layers)
            {
                register_module(Key(name) + "__lora_A", layer.lora_A);
                register_module(Key(name) + "__lora_B", layer.lora_B);
            }
            foreach (var m in owner.ModulesToSave)
            {
                var module = owner._inner.Module.named_modules().FirstOrDefault(x => x.name == m).module
                    ?? throw new InvalidOperationException($"LoRA modules_to_save: no module '{m}'");
                register_module(Key(m), module);
            }
        }

        // Module names cannot contain '.', so paths are kept with '__' and mapped back when saving.
        internal static string Key(string path) => path.Replace(".", "__");

        public override void train(bool on = true)
        {
            _owner._inner.Module.train(on);
            // The LoRA layers replaced layers of the base model but are not its registered children: switch them
            // (their lora_dropout) too, or evaluation runs with dropout on.
            foreach (var layer in _owner._layers.Values) layer.train(on);
            base.train(on);
        }
    }

    /// <summary>Trainable-parameter figures as PEFT's print_trainable_parameters.</summary>
    public (long trainable, long total) CountParameters()
    {
        long total = _inner.Module.parameters().Sum(p => p.numel()) + _layers.Values.Sum(l => l.lora_A.weight!.numel() + l.lora_B.weight!.numel());
        long trainable = Module.parameters().Sum(p => p.numel());
        return (trainable, total);
    }

    /// <summary>Writes adapter_config.json + adapter_model.safetensors with PEFT's key names
    /// (base_model.model.&lt;module&gt;.lora_A.weight, heads as base_model.model.&lt;module&gt;.weight).</summary>
    public void SaveAdapter(string directory, string? baseModelNameOrPath = null)
    {
        Directory.CreateDirectory(directory);
        var tensors = new List<KeyValuePair<string, Tensor>>();
        foreach (var (name, l) in _layers)
        {
            tensors.Add(new($"base_model.model.{name}.lora_A.weight", l.lora_A.weight!.detach().cpu()));
            tensors.Add(new($"base_model.model.{name}.lora_B.weight", l.lora_B.weight!.detach().cpu()));
        }
        foreach (var (name, p) in _inner.Module.named_parameters())
            if (ModulesToSave.Any(m => name.StartsWith(m + ".", StringComparison.Ordinal)))
                tensors.Add(new($"base_model.model.{name}", p.detach().cpu()));
        SafeTensors.Save(Path.Combine(directory, "adapter_model.safetensors"), tensors, new Dictionary<string, string> { ["format"] = "pt" });
        foreach (var t in tensors) t.Value.Dispose();
        var cfg = new JsonObject
        {
            ["peft_type"] = "LORA", ["task_type"] = PeftTaskType(Task), ["base_model_name_or_path"] = baseModelNameOrPath,
            ["r"] = Lora.R, ["lora_alpha"] = Lora.Alpha, ["lora_dropout"] = Lora.Dropout,
            ["target_modules"] = new JsonArray(Lora.TargetModules.Select(t => (JsonNode)t).ToArray()),
            // HF GPT-2's targets are Conv1D (weights saved (in, out)) even though we hold them as Linear.
            ["fan_in_fan_out"] = (Family?.FanInFanOut ?? false) || _layers.Values.First().FanInFanOut, ["bias"] = "none", ["use_rslora"] = Lora.UseRsLora,
            ["modules_to_save"] = ModulesToSave.Count == 0 ? null : new JsonArray(ModulesToSave.Select(t => (JsonNode)t).ToArray()),
            ["init_lora_weights"] = true, ["inference_mode"] = true, ["use_dora"] = false,
        };
        File.WriteAllText(Path.Combine(directory, "adapter_config.json"), cfg.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }));
    }

    static string PeftTaskType(string task) => task switch
    {
        "causal-lm" or "generation" => "CAUSAL_LM",
        "classification" => "SEQ_CLS",
        "token-classification" => "TOKEN_CLS",
        "question-answering" => "QUESTION_ANS",
        _ => "FEATURE_EXTRACTION",
    };

    /// <summary>Reads a PEFT adapter folder's config.</summary>
    public static (LoraConfig cfg, IReadOnlyList<string> modulesToSave) ReadAdapterConfig(string directory)
    {
        string path = Path.Combine(directory, "adapter_config.json");
        if (!File.Exists(path)) throw new FileNotFoundException($"{directory}: no adapter_config.json (not a PEFT adapter folder)", path);
        var j = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        if ((string?)j["peft_type"] is { } pt && pt != "LORA") throw new InvalidDataException($"{path}: peft_type {pt} is not LORA");
        var targets = j["target_modules"] switch
        {
            JsonArray a => a.Select(x => (string)x!).ToList(),
            JsonValue v => [(string)v!],
            _ => throw new InvalidDataException($"{path}: target_modules missing"),
        };
        var mts = j["modules_to_save"] is JsonArray m ? m.Select(x => (string)x!).ToList() : [];
        return (new LoraConfig((int)j["r"]!, (double)j["lora_alpha"]!, (double?)j["lora_dropout"] ?? 0, targets, (bool?)j["use_rslora"] ?? false), mts);
    }

    /// <summary>The number of classes of the head a classification adapter saved (modules_to_save: score or
    /// classifier), or null when it saved none.</summary>
    public static int? AdapterHeadRows(string directory)
    {
        string path = Path.Combine(directory, "adapter_model.safetensors");
        if (!File.Exists(path)) return null;
        var sd = SafeTensors.Load(path);
        try
        {
            foreach (var head in new[] { "base_model.model.score.weight", "base_model.model.classifier.weight" })
                if (sd.TryGetValue(head, out var t)) return (int)t.shape[0];
            return null;
        }
        finally { foreach (var t in sd.Values) t.Dispose(); }
    }

    /// <summary>Wraps <paramref name="inner"/> with the adapter saved in <paramref name="directory"/> (PEFT or ours).</summary>
    public static LoraModel FromAdapter(ITaskModel inner, string directory)
    {
        var (cfg, mts) = ReadAdapterConfig(directory);
        var m = new LoraModel(inner, cfg, mts);
        m.LoadAdapterWeights(directory);
        return m;
    }

    /// <summary>Copies adapter_model.safetensors into the LoRA matrices (and saved heads); every key must match.</summary>
    public void LoadAdapterWeights(string directory)
    {
        string path = Path.Combine(directory, "adapter_model.safetensors");
        var sd = SafeTensors.Load(path);
        try
        {
            using var _ = no_grad();
            var used = new HashSet<string>();
            foreach (var (name, l) in _layers)
                foreach (var (part, w) in new[] { ("lora_A", l.lora_A.weight!), ("lora_B", l.lora_B.weight!) })
                {
                    string key = $"base_model.model.{name}.{part}.weight";
                    if (!sd.TryGetValue(key, out var t)) throw new InvalidDataException($"{path}: missing '{key}'");
                    if (!t.shape.SequenceEqual(w.shape)) throw new InvalidDataException($"{path}: '{key}' has shape [{string.Join(", ", t.shape)}], the model needs [{string.Join(", ", w.shape)}]");
                    w.copy_(t); used.Add(key);
                }
            foreach (var (name, p) in _inner.Module.named_parameters())
                if (sd.TryGetValue($"base_model.model.{name}", out var t)) { p.copy_(t); used.Add($"base_model.model.{name}"); }
            var extra = sd.Keys.Where(k => !used.Contains(k)).ToList();
            if (extra.Count > 0) throw new InvalidDataException($"{path}: keys the model has no place for: {string.Join(", ", extra.Take(5))}");
        }
        finally { foreach (var t in sd.Values) t.Dispose(); }
    }

    /// <summary>Merges every adapter into its base weight and puts the original layers back (PEFT's merge_and_unload).
    /// Returns the plain base model, which now carries the merged weights.</summary>
    public ITaskModel MergeAndUnload()
    {
        foreach (var (name, layer) in _layers)
        {
            layer.Merge();
            var (parent, child, original) = _swaps[name];
            parent.SwapLayer(child, original);
        }
        foreach (var p in _inner.Module.parameters()) p.requires_grad = true;
        return _inner;
    }

    /// <summary>Checkpoint/best folder of a LoRA run: the adapter (PEFT format).</summary>
    public void SavePretrained(string directory) => SaveAdapter(directory);
}
