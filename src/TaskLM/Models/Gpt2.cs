// The GPT-2 family, top to bottom: config → attention → MLP → block → model → declared facts and init → heads, with HF names.
using System.Text.Json.Nodes;
using TaskLM.Hf;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace TaskLM.Models;

// ───────────────────────────── config ─────────────────────────────

/// <summary>GPT-2 hyperparameters under Hugging Face's config.json names. Keys this class does not know
/// are kept as they were, so a loaded config saves back unchanged.</summary>
public sealed class Gpt2Config
{
    public int vocab_size { get; set; } = 50257;
    public int n_positions { get; set; } = 1024;
    public int n_embd { get; set; } = 768;
    public int n_layer { get; set; } = 12;
    public int n_head { get; set; } = 12;
    /// <summary>MLP width; null means 4 * n_embd.</summary>
    public int? n_inner { get; set; }
    public string activation_function { get; set; } = "gelu_new";
    public double resid_pdrop { get; set; } = 0.1;
    public double embd_pdrop { get; set; } = 0.1;
    public double attn_pdrop { get; set; } = 0.1;
    public double layer_norm_epsilon { get; set; } = 1e-5;
    public double initializer_range { get; set; } = 0.02;
    public bool scale_attn_weights { get; set; } = true;
    public bool scale_attn_by_inverse_layer_idx { get; set; }
    public bool tie_word_embeddings { get; set; } = true;
    public int? bos_token_id { get; set; } = 50256;
    public int? eos_token_id { get; set; } = 50256;
    public int? pad_token_id { get; set; }
    /// <summary>Heads: number of labels (from id2label when present).</summary>
    public int num_labels { get; set; } = 2;
    /// <summary>Class names by id; HF's default is LABEL_0, LABEL_1, ...</summary>
    public List<string> id2label { get; set; } = new() { "LABEL_0", "LABEL_1" };
    /// <summary>regression | single_label_classification | multi_label_classification | null (inferred as HF does).</summary>
    public string? problem_type { get; set; }
    /// <summary>Token classification dropout; null means 0.1, as HF.</summary>
    public double? classifier_dropout { get; set; }

    /// <summary>MLP inner width.</summary>
    public int InnerSize => n_inner ?? 4 * n_embd;

    JsonObject _extra = new();
    bool _labelsSet; // HF writes id2label only for models that have labels

    /// <summary>Reads a config.json object (unknown keys are kept for saving); <paramref name="source"/> names the
    /// file in errors.</summary>
    public static Gpt2Config FromJson(JsonObject json, string source = "config.json")
    {
        var c = new Gpt2Config { _extra = (JsonObject)json.DeepClone() };
        int I(string k, int d) => HfConfig.Int(json, k, source) ?? d;
        double D(string k, double d) => HfConfig.Num(json, k, source) ?? d;
        bool B(string k, bool d) => HfConfig.Bool(json, k, source) ?? d;
        c.vocab_size = I("vocab_size", c.vocab_size); c.n_positions = I("n_positions", c.n_positions);
        c.n_embd = I("n_embd", c.n_embd); c.n_layer = I("n_layer", c.n_layer); c.n_head = I("n_head", c.n_head);
        c.n_inner = HfConfig.Int(json, "n_inner", source);
        c.activation_function = HfConfig.Str(json, "activation_function", source) ?? c.activation_function;
        c.resid_pdrop = D("resid_pdrop", c.resid_pdrop); c.embd_pdrop = D("embd_pdrop", c.embd_pdrop);
        c.attn_pdrop = D("attn_pdrop", c.attn_pdrop); c.layer_norm_epsilon = D("layer_norm_epsilon", c.layer_norm_epsilon);
        c.initializer_range = D("initializer_range", c.initializer_range);
        c.scale_attn_weights = B("scale_attn_weights", true);
        c.scale_attn_by_inverse_layer_idx = B("scale_attn_by_inverse_layer_idx", false);
        c.tie_word_embeddings = B("tie_word_embeddings", true);
        c.bos_token_id = json.ContainsKey("bos_token_id") ? HfConfig.Int(json, "bos_token_id", source) : c.bos_token_id;
        c.eos_token_id = json.ContainsKey("eos_token_id") ? HfConfig.Int(json, "eos_token_id", source) : c.eos_token_id;
        c.pad_token_id = HfConfig.Int(json, "pad_token_id", source);
        c.problem_type = HfConfig.Str(json, "problem_type", source);
        c.classifier_dropout = HfConfig.Num(json, "classifier_dropout", source);
        if (HfConfig.LabelsOf(json, source) is { } labels) c.SetLabels(labels.Count, json.ContainsKey("id2label") ? labels : null);
        if (HfConfig.Bool(json, "reorder_and_upcast_attn", source) == true)
            throw new NotSupportedException($"{source}: reorder_and_upcast_attn=true is not supported");
        if (c.n_head < 1 || c.n_embd % c.n_head != 0) throw new InvalidDataException($"{source}: n_embd {c.n_embd} is not divisible by n_head {c.n_head}");
        return c;
    }

    /// <summary>Sets num_labels and id2label (default names LABEL_i).</summary>
    public void SetLabels(int numLabels, IReadOnlyList<string>? labels)
    {
        if (labels != null && labels.Count != numLabels) throw new ArgumentException($"{labels.Count} label names for num_labels={numLabels}");
        num_labels = numLabels;
        _labelsSet = true;
        id2label = labels?.ToList() ?? Enumerable.Range(0, numLabels).Select(i => $"LABEL_{i}").ToList();
    }

    /// <summary>The config.json object: the keys read in, updated with this object's values.</summary>
    public JsonObject ToJson(string? architecture = null)
    {
        var j = (JsonObject)_extra.DeepClone();
        j["model_type"] = "gpt2";
        if (architecture != null) j["architectures"] = new JsonArray(architecture);
        j["vocab_size"] = vocab_size; j["n_positions"] = n_positions; j["n_embd"] = n_embd; j["n_layer"] = n_layer;
        j["n_head"] = n_head; j["n_inner"] = n_inner; j["activation_function"] = activation_function;
        j["resid_pdrop"] = resid_pdrop; j["embd_pdrop"] = embd_pdrop; j["attn_pdrop"] = attn_pdrop;
        j["layer_norm_epsilon"] = layer_norm_epsilon; j["initializer_range"] = initializer_range;
        j["scale_attn_weights"] = scale_attn_weights; j["scale_attn_by_inverse_layer_idx"] = scale_attn_by_inverse_layer_idx;
        j["reorder_and_upcast_attn"] = false;
        j["tie_word_embeddings"] = tie_word_embeddings; j["bos_token_id"] = bos_token_id; j["eos_token_id"] = eos_token_id;
        j["pad_token_id"] = pad_token_id;
        if (!j.ContainsKey("dtype")) j["dtype"] = "float32";
        if (_labelsSet || (architecture != null && architecture != "GPT2LMHeadModel"))
        {
            var id2 = new JsonObject(); var l2i = new JsonObject();
            for (int i = 0; i < id2label.Count; i++) { id2[i.ToString()] = id2label[i]; l2i[id2label[i]] = i; }
            j["id2label"] = id2; j["label2id"] = l2i;
        }
        j.Remove("num_labels"); // HF derives it from id2label
        if (problem_type != null) j["problem_type"] = problem_type;
        if (classifier_dropout != null) j["classifier_dropout"] = classifier_dropout;
        return j;
    }
}

// ───────────────────────────── attention ─────────────────────────────

/// <summary>Causal self-attention. c_attn and c_proj are HF Conv1D layers: held here as Linear [out, in],
/// transposed from HF's [in, out] on load and back on save.</summary>
public sealed class GPT2Attention : nn.Module, ILoraTargets
{
    // Settable and typed as the layer interface (not Linear): LoRA puts a LoraLayer in their place (SwapLayer).
    nn.Module<Tensor, Tensor> c_attn, c_proj;
    readonly Dropout resid_dropout;
    readonly int _nHead, _nEmbd, _layer;
    readonly double _attnPdrop;
    readonly bool _inverseLayerScale;

    public GPT2Attention(Gpt2Config cfg, int layerIdx) : base(nameof(GPT2Attention))
    {
        _nHead = cfg.n_head; _nEmbd = cfg.n_embd; _layer = layerIdx; _attnPdrop = cfg.attn_pdrop;
        _inverseLayerScale = cfg.scale_attn_by_inverse_layer_idx;
        if (!cfg.scale_attn_weights) throw new NotSupportedException("config.json: scale_attn_weights=false is not supported");
        c_attn = nn.Linear(cfg.n_embd, 3 * cfg.n_embd);
        c_proj = nn.Linear(cfg.n_embd, cfg.n_embd);
        resid_dropout = nn.Dropout(cfg.resid_pdrop);
        RegisterComponents();
    }

    /// <summary>x: (B, T, C). mask: null (plain causal) or bool (B, 1, T, S), true = may attend.</summary>
    public Tensor Forward(Tensor x, Tensor? mask, bool causal, KvCache? cache)
    {
        long b = x.shape[0], t = x.shape[1], hs = _nEmbd / _nHead;
        var qkv = c_attn.forward(x).split(_nEmbd, dim: 2);                      // 3 x (B, T, C)
        var q = qkv[0].view(b, t, _nHead, hs).transpose(1, 2);                   // (B, nh, T, hs)
        var k = qkv[1].view(b, t, _nHead, hs).transpose(1, 2);
        var v = qkv[2].view(b, t, _nHead, hs).transpose(1, 2);
        if (_inverseLayerScale) q = q / (_layer + 1.0);
        if (cache != null) (k, v) = cache.Append(_layer, k, v);                  // (B, nh, S, hs)
        var y = F.scaled_dot_product_attention(q, k, v, attn_mask: mask, p: training ? _attnPdrop : 0.0, is_casual: causal);
        y = y.transpose(1, 2).contiguous().view(b, t, _nEmbd);                   // (B, T, C)
        return resid_dropout.forward(c_proj.forward(y));
    }

    public nn.Module<Tensor, Tensor>? SwapLayer(string name, nn.Module<Tensor, Tensor> layer) => name switch
    {
        nameof(c_attn) => ILoraTargets.Swap(ref c_attn, layer),
        nameof(c_proj) => ILoraTargets.Swap(ref c_proj, layer),
        _ => null,
    };
}

// ───────────────────────────── MLP and block ─────────────────────────────

/// <summary>c_fc → activation (gelu_new = tanh GELU) → c_proj, both Conv1D in HF.</summary>
public sealed class GPT2MLP : nn.Module, ILoraTargets
{
    nn.Module<Tensor, Tensor> c_fc, c_proj;   // LoRA targets, as in GPT2Attention
    readonly Dropout dropout;
    readonly Func<Tensor, Tensor> _act;

    public GPT2MLP(Gpt2Config cfg) : base(nameof(GPT2MLP))
    {
        c_fc = nn.Linear(cfg.n_embd, cfg.InnerSize);
        c_proj = nn.Linear(cfg.InnerSize, cfg.n_embd);
        dropout = nn.Dropout(cfg.resid_pdrop);
        _act = Activations.Of(cfg.activation_function, "activation_function");
        RegisterComponents();
    }

    /// <summary>(B, T, C) → (B, T, C).</summary>
    public Tensor Forward(Tensor x) => dropout.forward(c_proj.forward(_act(c_fc.forward(x))));

    public nn.Module<Tensor, Tensor>? SwapLayer(string name, nn.Module<Tensor, Tensor> layer) => name switch
    {
        nameof(c_fc) => ILoraTargets.Swap(ref c_fc, layer),
        nameof(c_proj) => ILoraTargets.Swap(ref c_proj, layer),
        _ => null,
    };
}

/// <summary>Pre-LayerNorm block: x + attn(ln_1(x)), then x + mlp(ln_2(x)).</summary>
public sealed class GPT2Block : nn.Module
{
    readonly LayerNorm ln_1, ln_2;
    readonly GPT2Attention attn;
    readonly GPT2MLP mlp;

    public GPT2Block(Gpt2Config cfg, int layerIdx) : base(nameof(GPT2Block))
    {
        ln_1 = nn.LayerNorm(cfg.n_embd, cfg.layer_norm_epsilon);
        attn = new GPT2Attention(cfg, layerIdx);
        ln_2 = nn.LayerNorm(cfg.n_embd, cfg.layer_norm_epsilon);
        mlp = new GPT2MLP(cfg);
        RegisterComponents();
    }

    public Tensor Forward(Tensor x, Tensor? mask, bool causal, KvCache? cache)
    {
        x = x + attn.Forward(ln_1.forward(x), mask, causal, cache);
        return x + mlp.Forward(ln_2.forward(x));
    }
}

// ───────────────────────────── model ─────────────────────────────

/// <summary>GPT2Model ("transformer" in the head models): token + position embeddings, blocks, final LayerNorm.</summary>
public sealed class GPT2Model : nn.Module, IGradientCheckpointing
{
    readonly Embedding wte, wpe;
    readonly Dropout drop;
    readonly ModuleList<GPT2Block> h;
    readonly LayerNorm ln_f;
    readonly Gpt2Config _cfg;

    public GPT2Model(Gpt2Config cfg) : base(nameof(GPT2Model))
    {
        _cfg = cfg;
        wte = nn.Embedding(cfg.vocab_size, cfg.n_embd);
        wpe = nn.Embedding(cfg.n_positions, cfg.n_embd);
        drop = nn.Dropout(cfg.embd_pdrop);
        h = nn.ModuleList(Enumerable.Range(0, cfg.n_layer).Select(i => new GPT2Block(cfg, i)).ToArray());
        ln_f = nn.LayerNorm(cfg.n_embd, cfg.layer_norm_epsilon);
        RegisterComponents();
    }

    /// <summary>Token embedding matrix (V, C); the LM head reuses it when tie_word_embeddings.</summary>
    public Parameter TokenEmbedding => wte.weight!;

    /// <summary>HF's gradient_checkpointing: in training, each block's activations are recomputed in backward
    /// (<see cref="ActivationCheckpoint"/>); ignored with a KV cache (generation).</summary>
    public bool GradientCheckpointing { get; set; }

    /// <summary>
    /// inputIds (B, T); attentionMask (B, past+T) 1 = real, 0 = pad (covers cached positions too, as HF);
    /// positionIds (B, T), default past..past+T-1 (HF's default when none are given). <paramref name="packed"/>: the
    /// rows hold several examples whose position ids restart at 0, and attention stays inside each
    /// (<see cref="CausalMask.Packed"/>; no cache). Returns (B, T, C).
    /// </summary>
    public Tensor Forward(Tensor inputIds, Tensor? attentionMask = null, Tensor? positionIds = null, KvCache? cache = null, bool packed = false)
    {
        if (packed && (positionIds is null || cache is not null)) throw new ArgumentException("packed rows need position ids and no KV cache");
        long b = inputIds.shape[0], t = inputIds.shape[1], past = cache?.Length ?? 0;
        if (past + t > _cfg.n_positions)
            throw new ArgumentException($"sequence of {past + t} tokens is longer than n_positions={_cfg.n_positions}");
        positionIds ??= arange(past, past + t, dtype: int64, device: inputIds.device).unsqueeze(0);  // (1, T)
        var x = drop.forward(wte.forward(inputIds) + wpe.forward(positionIds));                      // (B, T, C)

        // Attention mask: fused causal SDPA when nothing is padded; else an explicit (B, 1, T, S) bool mask.
        var (mask, causal) = packed ? (CausalMask.Packed(positionIds, attentionMask), false) : CausalMask.Build(attentionMask, b, past, t, inputIds.device);
        bool checkpoint = GradientCheckpointing && training && cache == null;
        foreach (var block in h)
            x = checkpoint ? ActivationCheckpoint.Run(block, (z, m) => block.Forward(z, m, causal, null), x, mask) : block.Forward(x, mask, causal, cache);
        if (cache != null) cache.Length = past + t;
        return ln_f.forward(x);
    }
}

// ───────────────────────────── the family's pre-trained model: init and declared facts ─────────────────────────────

/// <summary>HF's GPT2PreTrainedModel: what every GPT-2 head shares (the config, _init_weights, config.json);
/// loading, saving and the forward entry are the shared <see cref="PreTrainedModel"/>'s.</summary>
public abstract class Gpt2 : PreTrainedModel
{
    protected Gpt2(string name, Gpt2Config cfg) : base(name) { Cfg = cfg; }

    /// <summary>The HF config; heads read num_labels/pad_token_id/problem_type from it.</summary>
    public Gpt2Config Cfg { get; }
    public override ModelFamily Family => Gpt2Family.Instance;
    /// <summary>The LM head model (causal-lm only), for generation.</summary>
    public GPT2LMHeadModel? LMHead => this as GPT2LMHeadModel;

    protected override JsonObject ConfigJson() => Cfg.ToJson(Architecture);
    public override int MaxPositions => Cfg.n_positions;
    public override int? PadTokenId => Cfg.pad_token_id;
    public override int VocabSize => Cfg.vocab_size;

    /// <summary>HF's _init_weights: N(0, initializer_range), c_proj weights scaled by 1/sqrt(2 n_layer),
    /// LayerNorm 1/0, biases 0.</summary>
    protected override void InitWeight(string name, Parameter p, Generator? generator)
    {
        double std = Cfg.initializer_range;
        if (name.Contains(".ln_") || name.StartsWith("transformer.ln_f", StringComparison.Ordinal))
        { if (name.EndsWith(".weight", StringComparison.Ordinal)) p.fill_(1.0); else p.zero_(); }
        else if (name.EndsWith(".bias", StringComparison.Ordinal)) p.zero_();
        else if (name.EndsWith("c_proj.weight", StringComparison.Ordinal)) nn.init.normal_(p, 0, std / Math.Sqrt(2.0 * Cfg.n_layer), generator);
        else nn.init.normal_(p, 0, std, generator);
    }

    internal static Gpt2 NewHead(Gpt2Config cfg, string task) => task switch
    {
        "causal-lm" => new GPT2LMHeadModel(cfg),
        "classification" => new GPT2ForSequenceClassification(cfg),
        "token-classification" => new GPT2ForTokenClassification(cfg),
        _ => throw new NotSupportedException($"GPT-2 has no '{task}' head{ModelPresets.Suggest(task, HfFamilies.Gpt2.Tasks)} (causal-lm, classification, token-classification)"),
    };

}

/// <summary>GPT-2's declared facts (HF's base_model_prefix "transformer", layers h.N, tied lm_head, Conv1D).</summary>
public sealed partial class Gpt2Family : ModelFamily
{
    public static readonly Gpt2Family Instance = new();
    Gpt2Family() { }

    public override HfFamily Names => HfFamilies.Gpt2;
    public override string BaseModelPrefix => "transformer";
    [System.Text.RegularExpressions.GeneratedRegex(@"(?:^|\.)h\.(\d+)\.")]
    private static partial System.Text.RegularExpressions.Regex Layer();
    protected override System.Text.RegularExpressions.Regex LayerPattern => Layer();
    public override IReadOnlyList<string> EmbeddingModules { get; } = ["wte", "wpe"];
    public override string InputEmbeddingKey => "transformer.wte.weight";
    public override IReadOnlyList<string> TiedWeightKeys { get; } = ["lm_head.weight"];
    public override IReadOnlyList<string> LoraTargetModules { get; } = ["c_attn"];
    public override bool FanInFanOut => true;
    public override string? DefaultTokenizer => "gpt2";
    public override bool IsConv1DWeight(string key) =>
        key.EndsWith(".attn.c_attn.weight", StringComparison.Ordinal) || key.EndsWith(".attn.c_proj.weight", StringComparison.Ordinal) ||
        key.EndsWith(".mlp.c_fc.weight", StringComparison.Ordinal) || key.EndsWith(".mlp.c_proj.weight", StringComparison.Ordinal) ||
        key.EndsWith(".attn.q_attn.weight", StringComparison.Ordinal);

    /// <summary>Old checkpoints hold the causal mask as buffers (attn.bias, attn.masked_bias): derived, skipped.</summary>
    public override string? MapCheckpointKey(string key, IReadOnlySet<string> checkpointKeys) =>
        key.EndsWith(".attn.bias", StringComparison.Ordinal) || key.EndsWith(".attn.masked_bias", StringComparison.Ordinal) ? null : key;

    public override PreTrainedModel Build(JsonObject config, string source, string task) => Gpt2.NewHead(Gpt2Config.FromJson(config, source), task);

    public override IEnumerable<string> ConfigKeys => new Gpt2Config().ToJson().Select(k => k.Key);

    public override JsonObject PresetConfig(ModelPreset p, IDictionary<string, object>? overrides)
    {
        var json = new JsonObject
        {
            ["model_type"] = "gpt2", ["vocab_size"] = p.Vocab, ["n_positions"] = p.MaxPositions, ["n_embd"] = p.Hidden,
            ["n_layer"] = p.Layers, ["n_head"] = p.Heads, ["n_inner"] = null, ["activation_function"] = "gelu_new",
        };
        ConfigOverrides.Apply(json, overrides, ConfigKeys, "GPT-2");
        return json;
    }

    /// <summary>GPT2Model's count (its LM head is tied to wte, so GPT2LMHeadModel has the same count).</summary>
    public override long CountParameters(ModelPreset p)
    {
        long c = p.Hidden, i = p.Inner, v = p.Vocab, n = p.MaxPositions, l = p.Layers;
        long block = 2 * c + (c * 3 * c + 3 * c) + (c * c + c) + 2 * c + (c * i + i) + (i * c + c);
        return v * c + n * c + l * block + 2 * c;
    }
}

// ───────────────────────────── heads ─────────────────────────────

/// <summary>Causal LM: logits = hidden @ wte^T when tied (HF ties lm_head.weight to wte), else lm_head.</summary>
public sealed class GPT2LMHeadModel : Gpt2, ICausalLM
{
    readonly GPT2Model transformer;
    readonly Linear? lm_head;

    public GPT2LMHeadModel(Gpt2Config cfg) : base(nameof(GPT2LMHeadModel), cfg)
    {
        transformer = new GPT2Model(cfg);
        if (!cfg.tie_word_embeddings) lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, hasBias: false);
        RegisterComponents();
    }

    public override string Task => "causal-lm";
    public GPT2Model Transformer => transformer;

    /// <inheritdoc/>
    public KvCache NewKvCache(long batch, long capacity) =>
        new(Cfg.n_layer, batch, Cfg.n_head, capacity, Cfg.n_embd / Cfg.n_head, transformer.TokenEmbedding.device, transformer.TokenEmbedding.dtype);
    /// <inheritdoc/>
    public Device Device => transformer.TokenEmbedding.device;

    /// <summary>(B, T) ids → (B, T, V) logits; optionally with a KV cache and explicit positions.</summary>
    public Tensor Logits(Tensor inputIds, Tensor? attentionMask = null, Tensor? positionIds = null, KvCache? cache = null) =>
        Head(transformer.Forward(inputIds, attentionMask, positionIds, cache));

    Tensor Head(Tensor hidden) => lm_head is null ? F.linear(hidden, transformer.TokenEmbedding) : lm_head.forward(hidden);

    protected override ModelOutput Run(ModelBatch batch)
    {
        // Packed rows (batch.PositionIds): attention kept inside each example, positions from 0 in each.
        var logits = batch.PositionIds is { } pos ? Head(transformer.Forward(batch.InputIds, batch.AttentionMask, pos, packed: true))
            : Logits(batch.InputIds, batch.AttentionMask);
        // HF shifts inside the model: position t predicts label t+1; -100 is ignored (HeadLosses.CausalLm).
        return new ModelOutput { Logits = logits, Loss = batch.Labels is null ? null : HeadLosses.CausalLm(logits, batch.Labels) };
    }
}

/// <summary>Sequence classification: score (no bias) on every position, then the last non-pad token's row (HF).</summary>
public sealed class GPT2ForSequenceClassification : Gpt2
{
    readonly GPT2Model transformer;
    readonly Linear score;

    public GPT2ForSequenceClassification(Gpt2Config cfg) : base(nameof(GPT2ForSequenceClassification), cfg)
    {
        transformer = new GPT2Model(cfg);
        score = nn.Linear(cfg.n_embd, cfg.num_labels, hasBias: false);
        RegisterComponents();
    }

    public override string Task => "classification";

    protected override ModelOutput Run(ModelBatch batch)
    {
        var ids = batch.InputIds;
        var all = score.forward(transformer.Forward(ids, batch.AttentionMask));                 // (B, T, C)
        var logits = HeadLosses.LastNonPad(all, ids, Cfg.pad_token_id, "GPT-2");                   // (B, C): the last non-pad token, as HF pools
        Tensor? loss = null;
        // HF decides the problem type on the first labelled batch and records it in the config (as BERT's head does).
        if (batch.Labels is not null) (loss, Cfg.problem_type) = HeadLosses.SequenceClassification(logits, batch.Labels, Cfg.num_labels, Cfg.problem_type);
        return new ModelOutput { Logits = logits, Loss = loss };
    }
}

/// <summary>Token classification: dropout then classifier (with bias) on every position; CE ignoring -100.</summary>
public sealed class GPT2ForTokenClassification : Gpt2
{
    readonly GPT2Model transformer;
    readonly Dropout dropout;
    readonly Linear classifier;

    public GPT2ForTokenClassification(Gpt2Config cfg) : base(nameof(GPT2ForTokenClassification), cfg)
    {
        transformer = new GPT2Model(cfg);
        dropout = nn.Dropout(cfg.classifier_dropout ?? 0.1); // HF: classifier_dropout, else 0.1
        classifier = nn.Linear(cfg.n_embd, cfg.num_labels);
        RegisterComponents();
    }

    public override string Task => "token-classification";

    protected override ModelOutput Run(ModelBatch batch)
    {
        var logits = classifier.forward(dropout.forward(transformer.Forward(batch.InputIds, batch.AttentionMask))); // (B, T, C)
        Tensor? loss = batch.Labels is null ? null : F.cross_entropy(HeadLosses.Fp32(logits).view(-1, Cfg.num_labels), batch.Labels.view(-1), ignore_index: -100);
        return new ModelOutput { Logits = logits, Loss = loss };
    }
}
