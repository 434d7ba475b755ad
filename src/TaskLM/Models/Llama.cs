// The Llama family (Llama 2/3, Qwen2, Mistral, SmolLM2 shapes), top to bottom: config → RMSNorm → rotary embeddings → grouped-query attention → SwiGLU MLP → layer → model → declared facts and init → heads, with HF names.
using System.Text.Json.Nodes;
using TaskLM.Hf;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace TaskLM.Models;

// ───────────────────────────── config ─────────────────────────────

/// <summary>Llama-family hyperparameters under Hugging Face's config.json names (LlamaConfig, Qwen2Config,
/// MistralConfig). Keys this class does not know are kept as they were, so a loaded config saves back unchanged.</summary>
public sealed class LlamaConfig
{
    /// <summary>"llama", "qwen2" or "mistral": which HF classes (and q/k/v bias default) the config describes.</summary>
    public string model_type { get; set; } = "llama";
    public int vocab_size { get; set; } = 32000;
    public int hidden_size { get; set; } = 4096;
    public int intermediate_size { get; set; } = 11008;
    public int num_hidden_layers { get; set; } = 32;
    public int num_attention_heads { get; set; } = 32;
    /// <summary>Grouped-query attention: key/value heads (null = num_attention_heads, i.e. multi-head attention).</summary>
    public int? num_key_value_heads { get; set; }
    /// <summary>Per-head width; null = hidden_size / num_attention_heads.</summary>
    public int? head_dim { get; set; }
    public string hidden_act { get; set; } = "silu";
    public int max_position_embeddings { get; set; } = 2048;
    public double initializer_range { get; set; } = 0.02;
    public double rms_norm_eps { get; set; } = 1e-6;
    public double rope_theta { get; set; } = 10000.0;
    /// <summary>HF's rope_scaling: null, or {"rope_type" (or "type"): "linear" | "llama3" | "default", "factor", ...}.</summary>
    public JsonObject? rope_scaling { get; set; }
    /// <summary>Bias on q/k/v/o projections (Llama's attention_bias); Qwen2 always has q/k/v bias and no o bias.</summary>
    public bool attention_bias { get; set; }
    public bool mlp_bias { get; set; }
    public double attention_dropout { get; set; }
    public bool tie_word_embeddings { get; set; }
    /// <summary>Mistral's sliding-window attention span (null = full attention); longer inputs are refused.</summary>
    public int? sliding_window { get; set; }
    public int? bos_token_id { get; set; } = 1;
    public int? eos_token_id { get; set; } = 2;
    public int? pad_token_id { get; set; }
    /// <summary>Heads: number of labels (from id2label when present).</summary>
    public int num_labels { get; set; } = 2;
    public List<string> id2label { get; set; } = new() { "LABEL_0", "LABEL_1" };
    public string? problem_type { get; set; }

    /// <summary>Key/value heads.</summary>
    public int KvHeads => num_key_value_heads ?? num_attention_heads;
    /// <summary>Per-head width.</summary>
    public int HeadDim => head_dim ?? hidden_size / num_attention_heads;
    /// <summary>True when q/k/v projections have a bias (Qwen2, or attention_bias).</summary>
    public bool QkvBias => model_type == "qwen2" || attention_bias;
    /// <summary>True when o_proj has a bias (attention_bias; never in Qwen2).</summary>
    public bool OBias => model_type != "qwen2" && attention_bias;

    JsonObject _extra = new();
    bool _labelsSet;

    /// <summary>Reads a config.json object (unknown keys are kept for saving); <paramref name="source"/> names the file in errors.</summary>
    public static LlamaConfig FromJson(JsonObject json, string source = "config.json")
    {
        var c = new LlamaConfig { _extra = (JsonObject)json.DeepClone() };
        c.model_type = HfConfig.Str(json, "model_type", source) ?? "llama";
        int I(string k, int d) => HfConfig.Int(json, k, source) ?? d;
        double D(string k, double d) => HfConfig.Num(json, k, source) ?? d;
        bool B(string k, bool d) => HfConfig.Bool(json, k, source) ?? d;
        c.vocab_size = I("vocab_size", c.vocab_size); c.hidden_size = I("hidden_size", c.hidden_size);
        c.intermediate_size = I("intermediate_size", c.intermediate_size); c.num_hidden_layers = I("num_hidden_layers", c.num_hidden_layers);
        c.num_attention_heads = I("num_attention_heads", c.num_attention_heads);
        c.num_key_value_heads = HfConfig.Int(json, "num_key_value_heads", source);
        c.head_dim = HfConfig.Int(json, "head_dim", source);
        c.hidden_act = HfConfig.Str(json, "hidden_act", source) ?? c.hidden_act;
        c.max_position_embeddings = I("max_position_embeddings", c.max_position_embeddings);
        c.initializer_range = D("initializer_range", c.initializer_range);
        c.rms_norm_eps = D("rms_norm_eps", c.rms_norm_eps);
        c.rope_theta = D("rope_theta", c.rope_theta);
        c.rope_scaling = json["rope_scaling"] is JsonObject rs ? (JsonObject)rs.DeepClone() : null;
        // transformers 5 moves rope_theta and the scaling into rope_parameters.
        if (json["rope_parameters"] is JsonObject rp)
        {
            c.rope_theta = HfConfig.Num(rp, "rope_theta", source + " rope_parameters") ?? c.rope_theta;
            c.rope_scaling ??= (JsonObject)rp.DeepClone();
        }
        c.attention_bias = B("attention_bias", false); c.mlp_bias = B("mlp_bias", false);
        c.attention_dropout = D("attention_dropout", 0.0);
        c.tie_word_embeddings = B("tie_word_embeddings", false);
        bool sliding = c.model_type != "qwen2" || B("use_sliding_window", false);
        c.sliding_window = sliding ? HfConfig.Int(json, "sliding_window", source) : null;
        c.bos_token_id = json.ContainsKey("bos_token_id") ? FirstId(json, "bos_token_id", source) : c.bos_token_id;
        c.eos_token_id = json.ContainsKey("eos_token_id") ? FirstId(json, "eos_token_id", source) : c.eos_token_id;
        c.pad_token_id = FirstId(json, "pad_token_id", source);
        c.problem_type = HfConfig.Str(json, "problem_type", source);
        if (HfConfig.LabelsOf(json, source) is { } labels) c.SetLabels(labels.Count, json.ContainsKey("id2label") ? labels : null);

        if (c.num_attention_heads < 1 || c.KvHeads < 1 || c.num_attention_heads % c.KvHeads != 0)
            throw new InvalidDataException($"{source}: num_attention_heads {c.num_attention_heads} is not a multiple of num_key_value_heads {c.KvHeads}");
        if (c.head_dim == null && c.hidden_size % c.num_attention_heads != 0)
            throw new InvalidDataException($"{source}: hidden_size {c.hidden_size} is not divisible by num_attention_heads {c.num_attention_heads}");
        if (c.HeadDim % 2 != 0) throw new InvalidDataException($"{source}: head_dim {c.HeadDim} must be even for rotary embeddings");
        if (c.hidden_act is not ("silu" or "swish")) throw new NotSupportedException($"{source}: hidden_act '{c.hidden_act}' is not supported (silu)");
        if (HfConfig.Int(json, "pretraining_tp", source) is int tp && tp != 1) throw new NotSupportedException($"{source}: pretraining_tp={tp} is not supported (1)");
        _ = Rope.InverseFrequencies(c, source);   // an unsupported rope_scaling fails here, naming the file
        return c;
    }

    // eos_token_id may be a list (Llama 3 instruct: [128001, 128008, 128009]); generation stops at the first.
    static int? FirstId(JsonObject json, string key, string source) =>
        json[key] is JsonArray a ? (a.Count == 0 ? null : HfConfig.Int(new JsonObject { [key] = a[0]?.DeepClone() }, key, source)) : HfConfig.Int(json, key, source);

    /// <summary>Sets num_labels and id2label (default names LABEL_i).</summary>
    public void SetLabels(int numLabels, IReadOnlyList<string>? labels)
    {
        if (labels != null && labels.Count != numLabels) throw new ArgumentException($"{labels.Count} label names for num_labels={numLabels}");
        num_labels = numLabels;
        _labelsSet = true;
        id2label = labels?.ToList() ?? HfConfig.DefaultLabels(numLabels);
    }

    /// <summary>The config.json object: the keys read in, updated with this object's values.</summary>
    public JsonObject ToJson(string? architecture = null)
    {
        var j = (JsonObject)_extra.DeepClone();
        j["model_type"] = model_type;
        if (architecture != null) j["architectures"] = new JsonArray(architecture);
        j["vocab_size"] = vocab_size; j["hidden_size"] = hidden_size; j["intermediate_size"] = intermediate_size;
        j["num_hidden_layers"] = num_hidden_layers; j["num_attention_heads"] = num_attention_heads; j["num_key_value_heads"] = KvHeads;
        if (head_dim != null) j["head_dim"] = head_dim;
        j["hidden_act"] = hidden_act; j["max_position_embeddings"] = max_position_embeddings; j["initializer_range"] = initializer_range;
        j["rms_norm_eps"] = rms_norm_eps;
        if (!j.ContainsKey("rope_parameters")) { j["rope_theta"] = rope_theta; j["rope_scaling"] = rope_scaling?.DeepClone(); }
        if (model_type != "qwen2") { j["attention_bias"] = attention_bias; j["mlp_bias"] = mlp_bias; }
        j["attention_dropout"] = attention_dropout; j["tie_word_embeddings"] = tie_word_embeddings;
        if (model_type == "mistral") j["sliding_window"] = sliding_window;
        if (!j.ContainsKey("bos_token_id") || j["bos_token_id"] is not JsonArray) j["bos_token_id"] = bos_token_id;
        if (!j.ContainsKey("eos_token_id") || j["eos_token_id"] is not JsonArray) j["eos_token_id"] = eos_token_id;
        j["pad_token_id"] = pad_token_id;
        if (!j.ContainsKey("dtype") && !j.ContainsKey("torch_dtype")) j["dtype"] = "float32";
        if (_labelsSet || (architecture != null && !architecture.EndsWith("ForCausalLM", StringComparison.Ordinal)))
        {
            var id2 = new JsonObject(); var l2i = new JsonObject();
            for (int i = 0; i < id2label.Count; i++) { id2[i.ToString()] = id2label[i]; l2i[id2label[i]] = i; }
            j["id2label"] = id2; j["label2id"] = l2i;
        }
        j.Remove("num_labels");
        if (problem_type != null) j["problem_type"] = problem_type;
        return j;
    }
}

// ───────────────────────────── RMSNorm and rotary embeddings ─────────────────────────────

/// <summary>HF's LlamaRMSNorm: x · rsqrt(mean(x²) + eps) · weight, computed in float32 and cast back (as HF).</summary>
public sealed class LlamaRMSNorm : nn.Module<Tensor, Tensor>
{
    readonly Parameter weight;
    readonly double _eps;

    public LlamaRMSNorm(long size, double eps) : base(nameof(LlamaRMSNorm))
    {
        weight = nn.Parameter(ones(size));
        _eps = eps;
        RegisterComponents();
    }

    /// <summary>(..., C) → (..., C).</summary>
    public override Tensor forward(Tensor x)
    {
        var h = x.to(float32);
        h = h * rsqrt(h.pow(2).mean([-1L], keepdim: true) + _eps);
        return weight * h.to(x.dtype);
    }
}

/// <summary>Rotary position embeddings as HF's LlamaRotaryEmbedding: inverse frequencies θ^(-2i/d) (rescaled by
/// rope_scaling), and rotate_half's layout, where dimension i pairs with i + d/2 (not adjacent pairs).</summary>
public static class Rope
{
    /// <summary>The d/2 inverse frequencies (float64) of a config, with the linear or llama3 rope_scaling applied.</summary>
    public static double[] InverseFrequencies(LlamaConfig c, string source = "config.json")
    {
        int d = c.HeadDim;
        var inv = new double[d / 2];
        for (int i = 0; i < inv.Length; i++) inv[i] = 1.0 / Math.Pow(c.rope_theta, 2.0 * i / d);
        if (c.rope_scaling is not { } rs) return inv;
        string type = HfConfig.Str(rs, "rope_type", source + " rope_scaling") ?? HfConfig.Str(rs, "type", source + " rope_scaling") ?? "default";
        double Num(string k) => HfConfig.Num(rs, k, source + " rope_scaling") ?? throw new InvalidDataException($"{source}: rope_scaling ({type}) needs '{k}'");
        switch (type)
        {
            case "default":
                return inv;
            case "linear":
                // Positions divided by factor ⇔ frequencies divided by factor.
                double f = Num("factor");
                return inv.Select(x => x / f).ToArray();
            case "llama3":
            {
                // Llama 3.1: long wavelengths (past the original context / low_freq_factor) slowed by factor, short
                // ones (under original / high_freq_factor) kept, the band between interpolated smoothly.
                double factor = Num("factor"), low = Num("low_freq_factor"), high = Num("high_freq_factor"), orig = Num("original_max_position_embeddings");
                double lowWavelen = orig / low, highWavelen = orig / high;
                return inv.Select(x =>
                {
                    double wavelen = 2 * Math.PI / x;
                    if (wavelen < highWavelen) return x;
                    if (wavelen > lowWavelen) return x / factor;
                    double smooth = (orig / wavelen - low) / (high - low);
                    return (1 - smooth) * x / factor + smooth * x;
                }).ToArray();
            }
            default:
                throw new NotSupportedException($"{source}: rope_scaling type '{type}' is not supported (default, linear, llama3)");
        }
    }

    /// <summary>cos and sin for positions (B, T): each (B, T, d), the d/2 angles repeated twice (HF's cat(freqs, freqs)),
    /// computed in float32 as HF does and cast to <paramref name="dtype"/>.</summary>
    public static (Tensor cos, Tensor sin) CosSin(double[] invFreq, Tensor positionIds, ScalarType dtype)
    {
        var inv = tensor(invFreq.Select(x => (float)x).ToArray(), device: positionIds.device);        // (d/2,)
        var freqs = positionIds.to(float32).unsqueeze(-1) * inv;                                         // (B, T, d/2)
        var emb = cat([freqs, freqs], -1);                                                               // (B, T, d)
        return (emb.cos().to(dtype), emb.sin().to(dtype));
    }

    /// <summary>x (B, h, T, d) rotated: x·cos + rotate_half(x)·sin, rotate_half(x) = (-x[d/2:], x[:d/2]).</summary>
    public static Tensor Apply(Tensor x, Tensor cos, Tensor sin)
    {
        long half = x.shape[3] / 2;
        var rotated = cat([x.narrow(3, half, half).neg(), x.narrow(3, 0, half)], 3);
        return x * cos.unsqueeze(1) + rotated * sin.unsqueeze(1);                                      // cos (B, 1, T, d)
    }
}

// ───────────────────────────── attention ─────────────────────────────

/// <summary>Grouped-query self-attention: n_heads query heads share n_kv_heads key/value heads (each kv head serves
/// n_heads / n_kv_heads consecutive query heads, HF's repeat_kv); rotary embeddings on q and k.</summary>
public sealed class LlamaAttention : nn.Module, ILoraTargets
{
    // Settable and typed as the layer interface (not Linear): LoRA puts a LoraLayer in their place (SwapLayer).
    nn.Module<Tensor, Tensor> q_proj, k_proj, v_proj, o_proj;
    readonly int _nHead, _nKv, _hd, _layer;
    readonly double _dropout;

    public LlamaAttention(LlamaConfig cfg, int layerIdx) : base(nameof(LlamaAttention))
    {
        _nHead = cfg.num_attention_heads; _nKv = cfg.KvHeads; _hd = cfg.HeadDim; _layer = layerIdx; _dropout = cfg.attention_dropout;
        q_proj = nn.Linear(cfg.hidden_size, _nHead * _hd, hasBias: cfg.QkvBias);
        k_proj = nn.Linear(cfg.hidden_size, _nKv * _hd, hasBias: cfg.QkvBias);
        v_proj = nn.Linear(cfg.hidden_size, _nKv * _hd, hasBias: cfg.QkvBias);
        o_proj = nn.Linear(_nHead * _hd, cfg.hidden_size, hasBias: cfg.OBias);
        RegisterComponents();
    }

    /// <summary>x: (B, T, C); cos/sin (B, T, hd); mask null (plain causal) or bool (B, 1, T, S), true = may attend.</summary>
    public Tensor Forward(Tensor x, Tensor cos, Tensor sin, Tensor? mask, bool causal, KvCache? cache)
    {
        long b = x.shape[0], t = x.shape[1];
        var q = q_proj.forward(x).view(b, t, _nHead, _hd).transpose(1, 2);             // (B, nh, T, hd)
        var k = k_proj.forward(x).view(b, t, _nKv, _hd).transpose(1, 2);               // (B, nkv, T, hd)
        var v = v_proj.forward(x).view(b, t, _nKv, _hd).transpose(1, 2);
        q = Rope.Apply(q, cos, sin);
        k = Rope.Apply(k, cos, sin);
        if (cache != null) (k, v) = cache.Append(_layer, k, v);                          // (B, nkv, S, hd)
        if (_nKv != _nHead)
        {
            // repeat_kv: (B, nkv, S, hd) → (B, nkv, rep, S, hd) → (B, nh, S, hd); query head i reads kv head i / rep.
            long s = k.shape[2], rep = _nHead / _nKv;
            k = k.unsqueeze(2).expand(b, _nKv, rep, s, _hd).reshape(b, _nHead, s, _hd);
            v = v.unsqueeze(2).expand(b, _nKv, rep, s, _hd).reshape(b, _nHead, s, _hd);
        }
        var y = F.scaled_dot_product_attention(q, k, v, attn_mask: mask, p: training ? _dropout : 0.0, is_casual: causal);
        y = y.transpose(1, 2).contiguous().view(b, t, _nHead * _hd);                    // (B, T, nh·hd)
        return o_proj.forward(y);
    }

    public nn.Module<Tensor, Tensor>? SwapLayer(string name, nn.Module<Tensor, Tensor> layer) => name switch
    {
        nameof(q_proj) => ILoraTargets.Swap(ref q_proj, layer),
        nameof(k_proj) => ILoraTargets.Swap(ref k_proj, layer),
        nameof(v_proj) => ILoraTargets.Swap(ref v_proj, layer),
        nameof(o_proj) => ILoraTargets.Swap(ref o_proj, layer),
        _ => null,
    };
}

// ───────────────────────────── MLP and layer ─────────────────────────────

/// <summary>SwiGLU: down_proj(silu(gate_proj(x)) · up_proj(x)).</summary>
public sealed class LlamaMLP : nn.Module<Tensor, Tensor>, ILoraTargets
{
    nn.Module<Tensor, Tensor> gate_proj, up_proj, down_proj;   // LoRA targets, as in LlamaAttention

    public LlamaMLP(LlamaConfig cfg) : base(nameof(LlamaMLP))
    {
        gate_proj = nn.Linear(cfg.hidden_size, cfg.intermediate_size, hasBias: cfg.mlp_bias);
        up_proj = nn.Linear(cfg.hidden_size, cfg.intermediate_size, hasBias: cfg.mlp_bias);
        down_proj = nn.Linear(cfg.intermediate_size, cfg.hidden_size, hasBias: cfg.mlp_bias);
        RegisterComponents();
    }

    /// <summary>(B, T, C) → (B, T, C) through (B, T, intermediate_size).</summary>
    public override Tensor forward(Tensor x) => down_proj.forward(F.silu(gate_proj.forward(x)) * up_proj.forward(x));

    public nn.Module<Tensor, Tensor>? SwapLayer(string name, nn.Module<Tensor, Tensor> layer) => name switch
    {
        nameof(gate_proj) => ILoraTargets.Swap(ref gate_proj, layer),
        nameof(up_proj) => ILoraTargets.Swap(ref up_proj, layer),
        nameof(down_proj) => ILoraTargets.Swap(ref down_proj, layer),
        _ => null,
    };
}

/// <summary>Pre-norm decoder layer: x + attn(input_layernorm(x)), then x + mlp(post_attention_layernorm(x)).</summary>
public sealed class LlamaDecoderLayer : nn.Module
{
    readonly LlamaAttention self_attn;
    readonly LlamaMLP mlp;
    readonly LlamaRMSNorm input_layernorm, post_attention_layernorm;

    public LlamaDecoderLayer(LlamaConfig cfg, int layerIdx) : base(nameof(LlamaDecoderLayer))
    {
        self_attn = new LlamaAttention(cfg, layerIdx);
        mlp = new LlamaMLP(cfg);
        input_layernorm = new LlamaRMSNorm(cfg.hidden_size, cfg.rms_norm_eps);
        post_attention_layernorm = new LlamaRMSNorm(cfg.hidden_size, cfg.rms_norm_eps);
        RegisterComponents();
    }

    public Tensor Forward(Tensor x, Tensor cos, Tensor sin, Tensor? mask, bool causal, KvCache? cache)
    {
        x = x + self_attn.Forward(input_layernorm.forward(x), cos, sin, mask, causal, cache);
        return x + mlp.forward(post_attention_layernorm.forward(x));
    }
}

// ───────────────────────────── model ─────────────────────────────

/// <summary>LlamaModel ("model" in the head models): token embeddings, decoder layers, final RMSNorm. Positions enter
/// only through the rotary embeddings (no position table).</summary>
public sealed class LlamaModel : nn.Module, IGradientCheckpointing
{
    readonly Embedding embed_tokens;
    readonly ModuleList<LlamaDecoderLayer> layers;
    readonly LlamaRMSNorm norm;
    readonly LlamaConfig _cfg;
    readonly double[] _invFreq;   // HF's non-persistent rotary_emb.inv_freq buffer, rebuilt from the config

    public LlamaModel(LlamaConfig cfg) : base(nameof(LlamaModel))
    {
        _cfg = cfg;
        embed_tokens = cfg.pad_token_id is int pad && pad >= 0 && pad < cfg.vocab_size
            ? nn.Embedding(cfg.vocab_size, cfg.hidden_size, padding_idx: pad) : nn.Embedding(cfg.vocab_size, cfg.hidden_size);
        layers = nn.ModuleList(Enumerable.Range(0, cfg.num_hidden_layers).Select(i => new LlamaDecoderLayer(cfg, i)).ToArray());
        norm = new LlamaRMSNorm(cfg.hidden_size, cfg.rms_norm_eps);
        _invFreq = Rope.InverseFrequencies(cfg);
        RegisterComponents();
    }

    /// <summary>Token embedding matrix (V, C); the LM head reuses it when tie_word_embeddings.</summary>
    public Parameter TokenEmbedding => embed_tokens.weight!;

    /// <summary>HF's gradient_checkpointing: in training, each layer's activations are recomputed in backward; ignored with a KV cache.</summary>
    public bool GradientCheckpointing { get; set; }

    /// <summary>
    /// inputIds (B, T); attentionMask (B, past+T) 1 = real, 0 = pad (covers cached positions too, as HF);
    /// positionIds (B, T), default past..past+T-1. <paramref name="packed"/>: the rows hold several examples whose
    /// position ids restart at 0, and attention stays inside each (<see cref="CausalMask.Packed"/>; no cache).
    /// Returns the final-norm hidden states (B, T, C).
    /// </summary>
    public Tensor Forward(Tensor inputIds, Tensor? attentionMask = null, Tensor? positionIds = null, KvCache? cache = null, bool packed = false)
    {
        if (packed && (positionIds is null || cache is not null)) throw new ArgumentException("packed rows need position ids and no KV cache");
        long b = inputIds.shape[0], t = inputIds.shape[1], past = cache?.Length ?? 0;
        if (_cfg.sliding_window is int w && past + t > w)
            throw new NotSupportedException($"sequence of {past + t} tokens is longer than sliding_window={w}; sliding-window attention is not implemented");
        positionIds ??= arange(past, past + t, dtype: int64, device: inputIds.device).unsqueeze(0).expand(b, t);   // (B, T)
        var x = embed_tokens.forward(inputIds);                                                                   // (B, T, C)
        var (cos, sin) = Rope.CosSin(_invFreq, positionIds, x.dtype);                                             // (B, T, hd) each
        var (mask, causal) = packed ? (CausalMask.Packed(positionIds, attentionMask), false) : CausalMask.Build(attentionMask, b, past, t, inputIds.device);
        bool checkpoint = GradientCheckpointing && training && cache == null;
        if (checkpoint)
        {
            // A checkpointed layer runs again in backward, after this pass's dispose scope has freed cos/sin: it may
            // close over host values only, so it rebuilds them from the positions.
            var pos = positionIds.to(int64).cpu().contiguous().data<long>().ToArray();
            long[] shape = [.. positionIds.shape];
            (Tensor, Tensor) Angles(Tensor z) => Rope.CosSin(_invFreq, tensor(pos, shape, device: z.device), z.dtype);
            foreach (var layer in layers)
                x = ActivationCheckpoint.Run(layer, (z, m) => { var (c, s) = Angles(z); return layer.Forward(z, c, s, m, causal, null); }, x, mask);
        }
        else
            foreach (var layer in layers) x = layer.Forward(x, cos, sin, mask, causal, cache);
        if (cache != null) cache.Length = past + t;
        return norm.forward(x);
    }
}

// ───────────────────────────── the family's pre-trained model: init and declared facts ─────────────────────────────

/// <summary>HF's LlamaPreTrainedModel (and Qwen2's, Mistral's): the config, _init_weights, config.json; loading,
/// saving and the forward entry are the shared <see cref="PreTrainedModel"/>'s.</summary>
public abstract class Llama : PreTrainedModel
{
    protected Llama(string name, LlamaConfig cfg) : base(name) { Cfg = cfg; }

    /// <summary>The HF config.</summary>
    public LlamaConfig Cfg { get; }
    public override ModelFamily Family => LlamaFamily.Of(Cfg.model_type);

    protected override JsonObject ConfigJson() => Cfg.ToJson(Architecture);
    public override int MaxPositions => Cfg.max_position_embeddings;
    public override int? PadTokenId => Cfg.pad_token_id;
    public override int VocabSize => Cfg.vocab_size;

    /// <summary>HF's _init_weights: Linear and Embedding N(0, initializer_range), biases 0, the padding row 0, RMSNorm 1.</summary>
    protected override void InitWeight(string name, Parameter p, Generator? generator)
    {
        if (name.EndsWith("layernorm.weight", StringComparison.Ordinal) || name == "model.norm.weight") p.fill_(1.0);
        else if (name.EndsWith(".bias", StringComparison.Ordinal)) p.zero_();
        else
        {
            nn.init.normal_(p, 0, Cfg.initializer_range, generator);
            if (name == "model.embed_tokens.weight" && Cfg.pad_token_id is int pad && pad >= 0 && pad < Cfg.vocab_size) p[pad].zero_();
        }
    }

    internal static Llama NewHead(LlamaConfig cfg, string task) => task switch
    {
        "causal-lm" => new LlamaForCausalLM(cfg),
        "classification" => new LlamaForSequenceClassification(cfg),
        _ => throw new NotSupportedException($"the Llama family has no '{task}' head{ModelPresets.Suggest(task, ["causal-lm", "classification"])} (causal-lm, classification)"),
    };
}

/// <summary>The Llama family's declared facts, one instance per HF model_type (llama, qwen2, mistral): base_model_prefix
/// "model", layers model.layers.N, lm_head tied when tie_word_embeddings, RMSNorm, PEFT's q_proj/v_proj LoRA default.</summary>
public sealed partial class LlamaFamily : ModelFamily
{
    /// <summary>model_type "llama" (Llama 1-3, SmolLM2).</summary>
    public static readonly LlamaFamily Instance = new(HfFamilies.Llama);
    /// <summary>model_type "qwen2" (Qwen2, Qwen2.5): q/k/v with bias.</summary>
    public static readonly LlamaFamily Qwen2 = new(HfFamilies.Qwen2);
    /// <summary>model_type "mistral".</summary>
    public static readonly LlamaFamily Mistral = new(HfFamilies.Mistral);

    LlamaFamily(HfFamily names) { Names = names; }

    /// <summary>The family instance of a model_type of the Llama family (its entry in <see cref="ModelFamilies.All"/>).</summary>
    public static LlamaFamily Of(string modelType) => ModelFamilies.Find(modelType) as LlamaFamily ?? Instance;

    public override HfFamily Names { get; }
    public override string BaseModelPrefix => "model";
    [System.Text.RegularExpressions.GeneratedRegex(@"(?:^|\.)layers\.(\d+)\.")]
    private static partial System.Text.RegularExpressions.Regex Layer();
    protected override System.Text.RegularExpressions.Regex LayerPattern => Layer();
    public override IReadOnlyList<string> EmbeddingModules { get; } = ["embed_tokens"];
    public override string InputEmbeddingKey => "model.embed_tokens.weight";
    public override IReadOnlyList<string> TiedWeightKeys { get; } = ["lm_head.weight"];
    public override IReadOnlyList<Type> NormModuleTypes { get; } = [typeof(LlamaRMSNorm)];
    public override IReadOnlyList<string> LoraTargetModules { get; } = ["q_proj", "v_proj"];

    /// <summary>Old checkpoints store the rotary inverse frequencies (rotary_emb.inv_freq): derived, skipped.</summary>
    public override string? MapCheckpointKey(string key, IReadOnlySet<string> checkpointKeys) =>
        key.EndsWith("rotary_emb.inv_freq", StringComparison.Ordinal) ? null : key;

    public override PreTrainedModel Build(JsonObject config, string source, string task)
    {
        var json = config;
        if (json["model_type"] is null) { json = (JsonObject)json.DeepClone(); json["model_type"] = ModelType; }
        return Llama.NewHead(LlamaConfig.FromJson(json, source), task);
    }

    public override IEnumerable<string> ConfigKeys =>
        new LlamaConfig { model_type = ModelType }.ToJson().Select(k => k.Key).Concat(["rope_scaling", "head_dim", "sliding_window", "use_sliding_window"]).Distinct();

    public override JsonObject PresetConfig(ModelPreset p, IDictionary<string, object>? overrides)
    {
        var json = new JsonObject
        {
            ["model_type"] = ModelType, ["vocab_size"] = p.Vocab, ["hidden_size"] = p.Hidden, ["intermediate_size"] = p.Inner,
            ["num_hidden_layers"] = p.Layers, ["num_attention_heads"] = p.Heads, ["num_key_value_heads"] = p.KvHeads ?? p.Heads,
            ["max_position_embeddings"] = p.MaxPositions, ["rms_norm_eps"] = 1e-5, ["rope_theta"] = 10000.0,
            ["tie_word_embeddings"] = true, ["hidden_act"] = "silu",
        };
        foreach (var (k, v) in p.Config ?? new Dictionary<string, object>()) json[k] = System.Text.Json.JsonSerializer.SerializeToNode(v);
        ConfigOverrides.Apply(json, overrides, ConfigKeys, DisplayName);
        return json;
    }

    /// <summary>LlamaModel's count (the body: with tied embeddings the causal LM has the same count, else lm_head adds
    /// vocab × hidden). Qwen2 adds its q/k/v biases.</summary>
    public override long CountParameters(ModelPreset p)
    {
        long c = p.Hidden, i = p.Inner, v = p.Vocab, l = p.Layers, kv = (long)(p.KvHeads ?? p.Heads) * (c / p.Heads);
        long layer = 2 * c + c * c + 2 * c * kv + c * c + 3 * c * i + (ModelType == "qwen2" ? c + 2 * kv : 0);
        return v * c + l * layer + c;
    }
}

// ───────────────────────────── heads ─────────────────────────────

/// <summary>Causal LM: logits = lm_head(hidden), or hidden @ embed_tokens^T when tie_word_embeddings.</summary>
public sealed class LlamaForCausalLM : Llama, ICausalLM
{
    readonly LlamaModel model;
    readonly Linear? lm_head;

    public LlamaForCausalLM(LlamaConfig cfg) : base(nameof(LlamaForCausalLM), cfg)
    {
        model = new LlamaModel(cfg);
        if (!cfg.tie_word_embeddings) lm_head = nn.Linear(cfg.hidden_size, cfg.vocab_size, hasBias: false);
        RegisterComponents();
    }

    public override string Task => "causal-lm";
    /// <summary>The body.</summary>
    public LlamaModel Model => model;

    /// <inheritdoc/>
    public KvCache NewKvCache(long batch, long capacity) =>
        new(Cfg.num_hidden_layers, batch, Cfg.KvHeads, capacity, Cfg.HeadDim, model.TokenEmbedding.device, model.TokenEmbedding.dtype);
    /// <inheritdoc/>
    public Device Device => model.TokenEmbedding.device;

    /// <summary>(B, T) ids → (B, T, V) logits; optionally with a KV cache and explicit positions.</summary>
    public Tensor Logits(Tensor inputIds, Tensor? attentionMask = null, Tensor? positionIds = null, KvCache? cache = null) =>
        Head(model.Forward(inputIds, attentionMask, positionIds, cache));

    Tensor Head(Tensor hidden) => lm_head is null ? F.linear(hidden, model.TokenEmbedding) : lm_head.forward(hidden);

    protected override ModelOutput Run(ModelBatch batch)
    {
        // Packed rows (batch.PositionIds): attention kept inside each example.
        var logits = batch.PositionIds is { } pos ? Head(model.Forward(batch.InputIds, batch.AttentionMask, pos, packed: true))
            : Logits(batch.InputIds, batch.AttentionMask);
        // HF shifts inside the model: position t predicts label t+1; -100 is ignored (HeadLosses.CausalLm).
        return new ModelOutput { Logits = logits, Loss = batch.Labels is null ? null : HeadLosses.CausalLm(logits, batch.Labels) };
    }
}

/// <summary>Sequence classification (LlamaForSequenceClassification): score (no bias) on every position, then the
/// last non-pad token's row, as HF pools.</summary>
public sealed class LlamaForSequenceClassification : Llama
{
    readonly LlamaModel model;
    readonly Linear score;

    public LlamaForSequenceClassification(LlamaConfig cfg) : base(nameof(LlamaForSequenceClassification), cfg)
    {
        model = new LlamaModel(cfg);
        score = nn.Linear(cfg.hidden_size, cfg.num_labels, hasBias: false);
        RegisterComponents();
    }

    public override string Task => "classification";

    protected override ModelOutput Run(ModelBatch batch)
    {
        var ids = batch.InputIds;
        var all = score.forward(model.Forward(ids, batch.AttentionMask));                 // (B, T, L)
        var logits = HeadLosses.LastNonPad(all, ids, Cfg.pad_token_id, "Llama");                   // (B, L): the last non-pad token, as HF pools
        Tensor? loss = null;
        // HF decides the problem type on the first labelled batch and records it in the config (as BERT's head does).
        if (batch.Labels is not null) (loss, Cfg.problem_type) = HeadLosses.SequenceClassification(logits, batch.Labels, Cfg.num_labels, Cfg.problem_type);
        return new ModelOutput { Logits = logits, Loss = loss };
    }
}
