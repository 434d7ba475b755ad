// BERT as Hugging Face's modeling_bert builds it: config → embeddings → post-LN encoder → pooler → task heads → load/save.
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace TaskLM.Models;

// ───────────────────────────────────────── config ─────────────────────────────────────────

/// <summary>
/// HF's <c>BertConfig</c>: the config.json keys keep their Hugging Face names. Keys this class does not
/// know (transformers_version, use_cache, ...) are kept in <see cref="extra"/> and written back unchanged.
/// </summary>
public sealed class BertConfig
{
    public int vocab_size { get; set; } = 30522;
    public int hidden_size { get; set; } = 768;
    public int num_hidden_layers { get; set; } = 12;
    public int num_attention_heads { get; set; } = 12;
    public int intermediate_size { get; set; } = 3072;
    /// <summary>"gelu" is the exact (erf) GELU, as HF's ACT2FN["gelu"].</summary>
    public string hidden_act { get; set; } = "gelu";
    public double hidden_dropout_prob { get; set; } = 0.1;
    public double attention_probs_dropout_prob { get; set; } = 0.1;
    public int max_position_embeddings { get; set; } = 512;
    public int type_vocab_size { get; set; } = 2;
    public double initializer_range { get; set; } = 0.02;
    public double layer_norm_eps { get; set; } = 1e-12;
    public int pad_token_id { get; set; }
    /// <summary>Dropout before a classifier; null means hidden_dropout_prob (as HF).</summary>
    public double? classifier_dropout { get; set; }
    public bool tie_word_embeddings { get; set; } = true;
    /// <summary>regression | single_label_classification | multi_label_classification, or null: inferred
    /// from num_labels and the labels' dtype on the first loss, as HF does.</summary>
    public string? problem_type { get; set; }
    /// <summary>Label names by id (config.json's id2label); its length is num_labels. HF's default is 2.</summary>
    public List<string> id2label { get; set; } = ["LABEL_0", "LABEL_1"];
    public int num_labels => id2label.Count;
    public List<string> architectures { get; set; } = [];
    /// <summary>config.json keys this class does not interpret, kept as read.</summary>
    public JsonObject extra { get; set; } = new();

    /// <summary>The keys <see cref="FromJson"/> interprets (plus num_labels, label2id, model_type, dtype).</summary>
    public static readonly string[] Keys =
    [
        "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "hidden_act",
        "hidden_dropout_prob", "attention_probs_dropout_prob", "max_position_embeddings", "type_vocab_size",
        "initializer_range", "layer_norm_eps", "pad_token_id", "classifier_dropout", "tie_word_embeddings",
        "problem_type", "id2label", "label2id", "num_labels", "architectures", "position_embedding_type",
        "model_type", "dtype", "torch_dtype",
    ];

    /// <summary>Generated label names LABEL_0..LABEL_{n-1}, as HF makes them.</summary>
    public static List<string> DefaultLabels(int n) => Enumerable.Range(0, n).Select(i => $"LABEL_{i}").ToList();

    /// <summary>Reads a config.json object; <paramref name="source"/> names the file in error messages.</summary>
    public static BertConfig FromJson(JsonObject json, string source)
    {
        string mt = Str(json, "model_type", source) ?? "bert";
        if (mt != "bert") throw new InvalidDataException($"{source}: model_type is '{mt}', not 'bert'");
        string pe = Str(json, "position_embedding_type", source) ?? "absolute";
        if (pe != "absolute")
            throw new InvalidDataException($"{source}: position_embedding_type '{pe}' is not supported (only 'absolute')");
        foreach (string unsupported in (string[])["is_decoder", "add_cross_attention"])
            if (Bool(json, unsupported, source) == true)
                throw new InvalidDataException($"{source}: {unsupported} = true is not supported (TaskLM's BERT is an encoder)");
        var c = new BertConfig();
        c.vocab_size = Int(json, "vocab_size", source) ?? c.vocab_size;
        c.hidden_size = Int(json, "hidden_size", source) ?? c.hidden_size;
        c.num_hidden_layers = Int(json, "num_hidden_layers", source) ?? c.num_hidden_layers;
        c.num_attention_heads = Int(json, "num_attention_heads", source) ?? c.num_attention_heads;
        c.intermediate_size = Int(json, "intermediate_size", source) ?? c.intermediate_size;
        c.hidden_act = Str(json, "hidden_act", source) ?? c.hidden_act;
        c.hidden_dropout_prob = Num(json, "hidden_dropout_prob", source) ?? c.hidden_dropout_prob;
        c.attention_probs_dropout_prob = Num(json, "attention_probs_dropout_prob", source) ?? c.attention_probs_dropout_prob;
        c.max_position_embeddings = Int(json, "max_position_embeddings", source) ?? c.max_position_embeddings;
        c.type_vocab_size = Int(json, "type_vocab_size", source) ?? c.type_vocab_size;
        c.initializer_range = Num(json, "initializer_range", source) ?? c.initializer_range;
        c.layer_norm_eps = Num(json, "layer_norm_eps", source) ?? c.layer_norm_eps;
        c.pad_token_id = Int(json, "pad_token_id", source) ?? 0;
        c.classifier_dropout = Num(json, "classifier_dropout", source);
        c.tie_word_embeddings = Bool(json, "tie_word_embeddings", source) ?? true;
        c.problem_type = Str(json, "problem_type", source);
        if (c.problem_type is not (null or "regression" or "single_label_classification" or "multi_label_classification"))
            throw new InvalidDataException($"{source}: problem_type '{c.problem_type}' is not one of regression, single_label_classification, multi_label_classification");
        if (json["architectures"] is JsonArray arch) c.architectures = arch.Select(a => a?.GetValue<string>() ?? "").ToList();

        // id2label wins over num_labels, as in HF's PretrainedConfig.
        if (json["id2label"] is JsonObject id2label && id2label.Count > 0)
        {
            var names = new string[id2label.Count];
            foreach (var (k, v) in id2label)
            {
                if (!int.TryParse(k, NumberStyles.Integer, CultureInfo.InvariantCulture, out int id) || id < 0 || id >= names.Length)
                    throw new InvalidDataException($"{source}: id2label key '{k}' is not an id in 0..{names.Length - 1}");
                names[id] = v?.ToString() ?? throw new InvalidDataException($"{source}: id2label['{k}'] is null");
            }
            c.id2label = names.ToList();
        }
        else if (json["id2label"] is JsonArray list && list.Count > 0) // a plain list of names (recipe overrides)
            c.id2label = list.Select(v => v?.ToString() ?? throw new InvalidDataException($"{source}: id2label holds null")).ToList();
        else if (Int(json, "num_labels", source) is int n)
        {
            if (n < 1) throw new InvalidDataException($"{source}: num_labels must be at least 1, got {n}");
            c.id2label = DefaultLabels(n);
        }

        if (c.hidden_size % c.num_attention_heads != 0)
            throw new InvalidDataException($"{source}: hidden_size {c.hidden_size} is not a multiple of num_attention_heads {c.num_attention_heads}");
        _ = Activation(c.hidden_act, source); // fail now, not at the first forward pass
        foreach (var (k, v) in json)
            if (!Keys.Contains(k)) c.extra[k] = v?.DeepClone();
        return c;
    }

    /// <summary>The config.json object HF writes (keys sorted, as <c>save_pretrained</c> does).</summary>
    public JsonObject ToJson(string? dtype = null)
    {
        var o = new SortedDictionary<string, JsonNode?>(StringComparer.Ordinal);
        foreach (var (k, v) in extra) o[k] = v?.DeepClone();
        o["architectures"] = new JsonArray(architectures.Select(a => (JsonNode)JsonValue.Create(a)).ToArray());
        o["attention_probs_dropout_prob"] = attention_probs_dropout_prob;
        o["classifier_dropout"] = classifier_dropout;
        if (dtype != null) o["dtype"] = dtype;
        o["hidden_act"] = hidden_act;
        o["hidden_dropout_prob"] = hidden_dropout_prob;
        o["hidden_size"] = hidden_size;
        // HF 5 leaves id2label/label2id out when they are the default two generated names.
        if (!id2label.SequenceEqual(DefaultLabels(2)))
        {
            var id2 = new JsonObject();
            var l2i = new JsonObject();
            for (int i = 0; i < id2label.Count; i++) { id2[i.ToString(CultureInfo.InvariantCulture)] = id2label[i]; l2i[id2label[i]] = i; }
            o["id2label"] = id2;
            o["label2id"] = l2i;
        }
        o["initializer_range"] = initializer_range;
        o["intermediate_size"] = intermediate_size;
        o["layer_norm_eps"] = layer_norm_eps;
        o["max_position_embeddings"] = max_position_embeddings;
        o["model_type"] = "bert";
        o["num_attention_heads"] = num_attention_heads;
        o["num_hidden_layers"] = num_hidden_layers;
        o["pad_token_id"] = pad_token_id;
        if (problem_type != null) o["problem_type"] = problem_type;
        o["tie_word_embeddings"] = tie_word_embeddings;
        o["type_vocab_size"] = type_vocab_size;
        o["vocab_size"] = vocab_size;
        var result = new JsonObject();
        foreach (var (k, v) in o) result[k] = v;
        return result;
    }

    /// <summary>The activation HF's ACT2FN maps a hidden_act name to.</summary>
    public static Func<Tensor, Tensor> Activation(string name, string source = "config.json") => name switch
    {
        "gelu" => x => F.gelu(x),                                                  // exact: 0.5 x (1 + erf(x/√2))
        "gelu_new" or "gelu_pytorch_tanh" => x => F.gelu(x, TorchSharp.Modules.GELU.Approximate.tanh),
        "relu" => x => F.relu(x),
        "silu" or "swish" => x => F.silu(x),
        "tanh" => x => F.tanh(x),
        _ => throw new InvalidDataException($"{source}: hidden_act '{name}' is not supported (gelu, gelu_new, gelu_pytorch_tanh, relu, silu, tanh)"),
    };

    // Readers that name the file and key on a wrong type. Numbers written as strings (YAML overrides) are accepted.
    static JsonNode? Node(JsonObject j, string key) => j.TryGetPropertyValue(key, out var v) ? v : null;

    // A JSON number (parsed or built from any CLR numeric type), or a string holding one.
    static double? AsNumber(JsonValue v) => v.GetValueKind() switch
    {
        JsonValueKind.Number => double.Parse(v.ToJsonString(), NumberStyles.Float, CultureInfo.InvariantCulture),
        JsonValueKind.String when double.TryParse(v.GetValue<string>(), NumberStyles.Float, CultureInfo.InvariantCulture, out double d) => d,
        _ => null,
    };

    static int? Int(JsonObject j, string key, string source)
    {
        var v = Node(j, key);
        if (v is null) return null;
        if (v is JsonValue jv && AsNumber(jv) is double d && d == Math.Floor(d) && Math.Abs(d) <= int.MaxValue) return (int)d;
        throw new InvalidDataException($"{source}: key '{key}' must be an integer, got {v.ToJsonString()}");
    }

    static double? Num(JsonObject j, string key, string source)
    {
        var v = Node(j, key);
        if (v is null) return null;
        if (v is JsonValue jv && AsNumber(jv) is double d) return d;
        throw new InvalidDataException($"{source}: key '{key}' must be a number, got {v.ToJsonString()}");
    }

    static bool? Bool(JsonObject j, string key, string source)
    {
        var v = Node(j, key);
        if (v is null) return null;
        if (v is JsonValue jv && jv.GetValueKind() is JsonValueKind.True or JsonValueKind.False) return jv.GetValueKind() == JsonValueKind.True;
        if (v is JsonValue sv && sv.GetValueKind() == JsonValueKind.String && bool.TryParse(sv.GetValue<string>(), out bool b)) return b;
        throw new InvalidDataException($"{source}: key '{key}' must be true or false, got {v.ToJsonString()}");
    }

    static string? Str(JsonObject j, string key, string source)
    {
        var v = Node(j, key);
        if (v is null) return null;
        if (v is JsonValue jv && jv.GetValueKind() == JsonValueKind.String) return jv.GetValue<string>();
        throw new InvalidDataException($"{source}: key '{key}' must be a string, got {v.ToJsonString()}");
    }
}

// ───────────────────────────────────────── embeddings ─────────────────────────────────────────

/// <summary>word + absolute position + token type embeddings, then LayerNorm and dropout.</summary>
public sealed class BertEmbeddings : nn.Module
{
    readonly Embedding word_embeddings;
    readonly Embedding position_embeddings;
    readonly Embedding token_type_embeddings;
    readonly LayerNorm LayerNorm;
    readonly Dropout dropout;
    readonly int maxPositions;

    public BertEmbeddings(BertConfig c) : base(nameof(BertEmbeddings))
    {
        // padding_idx keeps the pad row's gradient at zero, as nn.Embedding(..., padding_idx=pad_token_id) in HF.
        word_embeddings = nn.Embedding(c.vocab_size, c.hidden_size, padding_idx: c.pad_token_id);
        position_embeddings = nn.Embedding(c.max_position_embeddings, c.hidden_size);
        token_type_embeddings = nn.Embedding(c.type_vocab_size, c.hidden_size);
        LayerNorm = nn.LayerNorm(c.hidden_size, eps: c.layer_norm_eps);
        dropout = nn.Dropout(c.hidden_dropout_prob);
        maxPositions = c.max_position_embeddings;
        RegisterComponents();
    }

    /// <summary>The input embedding matrix (V, H), which the masked-LM decoder shares.</summary>
    public Parameter WordEmbeddingWeight => word_embeddings.weight!;

    /// <summary>input_ids, token_type_ids (B, T) → (B, T, H).</summary>
    public Tensor forward(Tensor input_ids, Tensor? token_type_ids)
    {
        long T = input_ids.shape[1];
        if (T > maxPositions)
            throw new ArgumentException($"sequence length {T} exceeds max_position_embeddings {maxPositions}");
        var position_ids = arange(T, dtype: ScalarType.Int64, device: input_ids.device).unsqueeze(0); // (1, T)
        var tt = token_type_ids ?? zeros_like(input_ids);
        var x = word_embeddings.forward(input_ids) + token_type_embeddings.forward(tt) + position_embeddings.forward(position_ids);
        return dropout.forward(LayerNorm.forward(x));
    }
}

// ───────────────────────────────────────── encoder ─────────────────────────────────────────

/// <summary>Multi-head self-attention: query/key/value projections and PyTorch's fused SDPA.</summary>
public sealed class BertSelfAttention : nn.Module
{
    // Typed as the layer interface (not Linear) so LoRA can swap a LoraLayer in for a target.
    readonly nn.Module<Tensor, Tensor> query;
    readonly nn.Module<Tensor, Tensor> key;
    readonly nn.Module<Tensor, Tensor> value;
    readonly int numHeads;
    readonly int headSize;
    readonly double dropoutP;

    public BertSelfAttention(BertConfig c) : base(nameof(BertSelfAttention))
    {
        query = nn.Linear(c.hidden_size, c.hidden_size);
        key = nn.Linear(c.hidden_size, c.hidden_size);
        value = nn.Linear(c.hidden_size, c.hidden_size);
        numHeads = c.num_attention_heads;
        headSize = c.hidden_size / c.num_attention_heads;
        dropoutP = c.attention_probs_dropout_prob;
        RegisterComponents();
    }

    /// <summary>hidden (B, T, H), additive mask (B, 1, 1, T) or null → context (B, T, H).</summary>
    public Tensor forward(Tensor hidden, Tensor? mask)
    {
        long B = hidden.shape[0], T = hidden.shape[1];
        Tensor Heads(Tensor x) => x.view(B, T, numHeads, headSize).transpose(1, 2); // (B, nh, T, hs)
        // softmax(q kᵀ / √hs + mask) v; attention dropout only while training, as HF.
        var ctx = F.scaled_dot_product_attention(Heads(query.forward(hidden)), Heads(key.forward(hidden)),
            Heads(value.forward(hidden)), mask, training ? dropoutP : 0.0); // (B, nh, T, hs)
        return ctx.transpose(1, 2).reshape(B, T, numHeads * headSize);
    }
}

/// <summary>Projection to H, dropout, residual, LayerNorm (post-LN): HF's BertSelfOutput (after attention,
/// input H) and BertOutput (after the feed-forward, input intermediate_size) are this one shape.</summary>
public sealed class BertResidualOutput : nn.Module
{
    readonly Linear dense;
    readonly LayerNorm LayerNorm;
    readonly Dropout dropout;

    public BertResidualOutput(BertConfig c, int inFeatures) : base(nameof(BertResidualOutput))
    {
        dense = nn.Linear(inFeatures, c.hidden_size);
        LayerNorm = nn.LayerNorm(c.hidden_size, eps: c.layer_norm_eps);
        dropout = nn.Dropout(c.hidden_dropout_prob);
        RegisterComponents();
    }

    public Tensor forward(Tensor hidden, Tensor input) => LayerNorm.forward(dropout.forward(dense.forward(hidden)) + input);
}

/// <summary>HF's BertAttention: <c>attention.self</c> then <c>attention.output</c>.</summary>
public sealed class BertAttention : nn.Module
{
    readonly BertSelfAttention self;
    readonly BertResidualOutput output;   // attention.output

    public BertAttention(BertConfig c) : base(nameof(BertAttention))
    {
        self = new BertSelfAttention(c);
        output = new BertResidualOutput(c, c.hidden_size);
        RegisterComponents();
    }

    public Tensor forward(Tensor hidden, Tensor? mask) => output.forward(self.forward(hidden, mask), hidden);
}

/// <summary>Feed-forward up-projection H → intermediate_size with hidden_act.</summary>
public sealed class BertIntermediate : nn.Module
{
    readonly Linear dense;
    readonly Func<Tensor, Tensor> act;

    public BertIntermediate(BertConfig c) : base(nameof(BertIntermediate))
    {
        dense = nn.Linear(c.hidden_size, c.intermediate_size);
        act = BertConfig.Activation(c.hidden_act);
        RegisterComponents();
    }

    public Tensor forward(Tensor hidden) => act(dense.forward(hidden));
}

/// <summary>One encoder layer: attention block then feed-forward block, each followed by its LayerNorm.</summary>
public sealed class BertLayer : nn.Module
{
    readonly BertAttention attention;
    readonly BertIntermediate intermediate;
    readonly BertResidualOutput output;   // output: feed-forward down-projection

    public BertLayer(BertConfig c) : base(nameof(BertLayer))
    {
        attention = new BertAttention(c);
        intermediate = new BertIntermediate(c);
        output = new BertResidualOutput(c, c.intermediate_size);
        RegisterComponents();
    }

    public Tensor forward(Tensor hidden, Tensor? mask)
    {
        var a = attention.forward(hidden, mask);
        return output.forward(intermediate.forward(a), a);
    }
}

/// <summary>The stack of layers (<c>encoder.layer.N</c>).</summary>
public sealed class BertEncoder : nn.Module
{
    readonly ModuleList<BertLayer> layer;

    public BertEncoder(BertConfig c) : base(nameof(BertEncoder))
    {
        layer = nn.ModuleList(Enumerable.Range(0, c.num_hidden_layers).Select(_ => new BertLayer(c)).ToArray());
        RegisterComponents();
    }

    public Tensor forward(Tensor hidden, Tensor? mask)
    {
        foreach (var l in layer) hidden = l.forward(hidden, mask);
        return hidden;
    }
}

/// <summary>tanh(dense(hidden state of the first token, [CLS])).</summary>
public sealed class BertPooler : nn.Module
{
    readonly Linear dense;

    public BertPooler(BertConfig c) : base(nameof(BertPooler))
    {
        dense = nn.Linear(c.hidden_size, c.hidden_size);
        RegisterComponents();
    }

    /// <summary>(B, T, H) → (B, H).</summary>
    public Tensor forward(Tensor hidden) => dense.forward(hidden.select(1, 0)).tanh();
}

/// <summary>HF's BertModel: embeddings, encoder and (for sequence classification) the pooler.</summary>
public sealed class BertModel : nn.Module
{
    readonly BertEmbeddings embeddings;
    readonly BertEncoder encoder;
    readonly BertPooler? pooler; // null: not registered, so no bert.pooler.* keys (HF's add_pooling_layer=False)

    public BertModel(BertConfig c, bool add_pooling_layer) : base(nameof(BertModel))
    {
        embeddings = new BertEmbeddings(c);
        encoder = new BertEncoder(c);
        pooler = add_pooling_layer ? new BertPooler(c) : null;
        RegisterComponents();
    }

    public Parameter WordEmbeddingWeight => embeddings.WordEmbeddingWeight;

    /// <summary>(B, T) ids → sequence output (B, T, H) and pooled output (B, H) when there is a pooler.</summary>
    public (Tensor sequence_output, Tensor? pooled_output) forward(Tensor input_ids, Tensor? attention_mask, Tensor? token_type_ids)
    {
        var x = embeddings.forward(input_ids, token_type_ids);
        // HF's extended mask: 0 where attended, the dtype's minimum where padded, broadcast over heads and
        // queries (B, 1, 1, T). Padded query rows are still computed (they attend to the real tokens), as HF.
        Tensor? mask = null;
        if (attention_mask is not null)
        {
            double min = x.dtype switch { ScalarType.Float16 => -65504.0, ScalarType.BFloat16 => -3.3895313892515355e38, ScalarType.Float64 => double.MinValue, _ => float.MinValue };
            mask = (1.0 - attention_mask.to(x.dtype)).mul(min).view(attention_mask.shape[0], 1, 1, attention_mask.shape[1]);
        }
        var seq = encoder.forward(x, mask);
        return (seq, pooler?.forward(seq));
    }
}

// ───────────────────────────────────────── heads ─────────────────────────────────────────

/// <summary>What loading a checkpoint did, in HF's terms. Newly initialised weights were drawn as
/// HF's <c>_init_weights</c> draws them: they need training before the model is useful.</summary>
public sealed record BertLoadReport(
    IReadOnlyList<string> Missing, IReadOnlyList<string> Unexpected, IReadOnlyList<string> Mismatched, string Source)
{
    /// <summary>Missing plus shape-mismatched keys: the weights that were initialised fresh.</summary>
    public IReadOnlyList<string> NewlyInitialised => Missing.Concat(Mismatched).OrderBy(k => k, StringComparer.Ordinal).ToList();

    public override string ToString()
    {
        var lines = new List<string>();
        if (Unexpected.Count > 0) lines.Add($"Some weights of the checkpoint at {Source} were not used: [{string.Join(", ", Unexpected)}]");
        if (NewlyInitialised.Count > 0)
            lines.Add($"Some weights were not initialized from the checkpoint at {Source} and are newly initialized: [{string.Join(", ", NewlyInitialised)}]");
        return lines.Count == 0 ? $"All weights were loaded from {Source}." : string.Join(Environment.NewLine, lines);
    }
}

/// <summary>What the four heads share (HF's BertPreTrainedModel): the config, the body, weight
/// initialisation, checkpoint loading and <see cref="SavePretrained"/>.</summary>
public abstract class BertPreTrainedModel : nn.Module, ITaskModel
{
    /// <summary>The HF config; heads read num_labels/problem_type from it.</summary>
    public BertConfig config { get; }
    protected readonly BertModel bert;

    protected BertPreTrainedModel(string name, BertConfig c, bool addPoolingLayer) : base(name)
    {
        config = c;
        bert = new BertModel(c, addPoolingLayer);
    }

    public string ModelType => "bert";
    public abstract string Task { get; }
    /// <summary>HF's class name, written to config.json's architectures.</summary>
    public abstract string Architecture { get; }
    public JsonObject Config => ConfigJson();
    public nn.Module Module => this;
    /// <summary>Set by <see cref="Bert.FromPretrained"/>: what came from the checkpoint and what did not.</summary>
    public BertLoadReport? LoadReport { get; internal set; }

    /// <summary>Runs the head on (B, T) tensors; everything it creates lives in the caller's dispose scope.</summary>
    protected abstract ModelOutput Run(Tensor input_ids, Tensor? attention_mask, Tensor? token_type_ids, ModelBatch batch);

    public ModelOutput Forward(ModelBatch batch)
    {
        var device = bert.WordEmbeddingWeight.device;
        Tensor? On(Tensor? t) => t is null ? null : t.device == device ? t : t.to(device);
        // One scope per forward pass: intermediates go when it ends (autograd keeps what backward needs);
        // the outputs move to the caller's scope.
        using var scope = NewDisposeScope();
        var o = Run(On(batch.InputIds)!, On(batch.AttentionMask), On(batch.TokenTypeIds), batch);
        o.Loss?.MoveToOuterDisposeScope();
        o.Logits?.MoveToOuterDisposeScope();
        o.StartLogits?.MoveToOuterDisposeScope();
        o.EndLogits?.MoveToOuterDisposeScope();
        return o;
    }

    /// <summary>Moves a label tensor to the model's device.</summary>
    protected Tensor Labels(Tensor t) => t.device == bert.WordEmbeddingWeight.device ? t : t.to(bert.WordEmbeddingWeight.device);

    JsonObject ConfigJson()
    {
        config.architectures = [Architecture];
        var dtype = bert.WordEmbeddingWeight.dtype switch
        {
            ScalarType.Float16 => "float16", ScalarType.BFloat16 => "bfloat16", ScalarType.Float64 => "float64", _ => "float32",
        };
        return config.ToJson(dtype);
    }

    /// <summary>Writes config.json and model.safetensors with HF's keys and shapes (tied decoder left out, as HF).</summary>
    public void SavePretrained(string directory)
    {
        Directory.CreateDirectory(directory);
        string cfgPath = Path.Combine(directory, "config.json");
        File.WriteAllText(cfgPath + ".tmp", ConfigJson().ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
        File.Move(cfgPath + ".tmp", cfgPath, overwrite: true);
        SafeTensors.Save(Path.Combine(directory, "model.safetensors"), state_dict(), new Dictionary<string, string> { ["format"] = "pt" });
    }

    /// <summary>HF's <c>_init_weights</c> for the named parameters: Linear/Embedding weights ~ N(0, initializer_range),
    /// the pad row of word_embeddings zero, biases zero, LayerNorm weight 1 and bias 0.</summary>
    public void InitWeights(IEnumerable<string> names, Generator? generator = null)
    {
        var wanted = names.ToHashSet(StringComparer.Ordinal);
        using var _ = no_grad();
        foreach (var (name, p) in named_parameters())
        {
            if (!wanted.Contains(name)) continue;
            if (name.EndsWith(".bias", StringComparison.Ordinal)) nn.init.zeros_(p);
            else if (name.EndsWith("LayerNorm.weight", StringComparison.Ordinal)) nn.init.ones_(p);
            else
            {
                nn.init.normal_(p, 0.0, config.initializer_range, generator);
                if (name.EndsWith("word_embeddings.weight", StringComparison.Ordinal))
                {
                    using var padRow = p[config.pad_token_id];
                    padRow.zero_();
                }
            }
        }
    }

    /// <summary>Keys a checkpoint may hold that this model derives or ties instead of storing.</summary>
    static readonly string[] IgnoredKeys =
    [
        "bert.embeddings.position_ids", "bert.embeddings.token_type_ids", // buffers older HF versions saved
        "cls.predictions.decoder.bias",                                  // tied to cls.predictions.bias
    ];

    /// <summary>Copies an HF state dict into the model (converting fp16/bf16 to the model's dtype), initialises
    /// what the checkpoint lacks, and reports. Accepts keys without the "bert." prefix (a bare BertModel
    /// checkpoint) and TF-era LayerNorm names (gamma/beta). A head weight of another shape (a classifier for
    /// another number of labels) is re-initialised and reported; a body weight of another shape is an error.</summary>
    public BertLoadReport LoadHfStateDict(IReadOnlyDictionary<string, Tensor> checkpoint, string source, Generator? generator = null)
    {
        var own = named_parameters().ToDictionary(p => p.name, p => (Tensor)p.parameter, StringComparer.Ordinal);
        var loaded = new HashSet<string>(StringComparer.Ordinal);
        var unexpected = new List<string>();
        var mismatched = new List<string>();
        using (no_grad())
        {
            // cls.predictions.decoder.bias is the same tensor as cls.predictions.bias; old checkpoints may hold only it.
            if (!checkpoint.ContainsKey("cls.predictions.bias") && checkpoint.TryGetValue("cls.predictions.decoder.bias", out var db)
                && own.TryGetValue("cls.predictions.bias", out var pb) && db.shape.SequenceEqual(pb.shape))
            {
                pb.copy_(db);
                loaded.Add("cls.predictions.bias");
            }
            foreach (var (rawKey, value) in checkpoint)
            {
                string k = rawKey;
                if (k.EndsWith(".gamma", StringComparison.Ordinal)) k = k[..^6] + ".weight";
                else if (k.EndsWith(".beta", StringComparison.Ordinal)) k = k[..^5] + ".bias";
                if (!own.ContainsKey(k) && own.ContainsKey("bert." + k)) k = "bert." + k;
                if (own.TryGetValue(k, out var p))
                {
                    if (!p.shape.SequenceEqual(value.shape))
                    {
                        if (k.StartsWith("bert.", StringComparison.Ordinal))
                            throw new InvalidDataException(
                                $"{source}: weight '{rawKey}' has shape [{string.Join(", ", value.shape)}], the model built from config.json expects [{string.Join(", ", p.shape)}]");
                        mismatched.Add(k);
                        continue;
                    }
                    p.copy_(value);
                    loaded.Add(k);
                }
                else if (IgnoredKeys.Contains(k) || (k == "cls.predictions.decoder.weight" && config.tie_word_embeddings)) { }
                else unexpected.Add(rawKey);
            }
        }
        var missing = own.Keys.Where(k => !loaded.Contains(k) && !mismatched.Contains(k)).OrderBy(k => k, StringComparer.Ordinal).ToList();
        InitWeights(missing.Concat(mismatched), generator);
        unexpected.Sort(StringComparer.Ordinal);
        mismatched.Sort(StringComparer.Ordinal);
        return LoadReport = new BertLoadReport(missing, unexpected, mismatched, source);
    }
}

/// <summary>[CLS] → pooler → dropout → classifier (B, num_labels). Loss by problem_type, as HF.</summary>
public sealed class BertForSequenceClassification : BertPreTrainedModel
{
    readonly Dropout dropout;
    readonly Linear classifier;

    public BertForSequenceClassification(BertConfig c) : base(nameof(BertForSequenceClassification), c, addPoolingLayer: true)
    {
        dropout = nn.Dropout(c.classifier_dropout ?? c.hidden_dropout_prob);
        classifier = nn.Linear(c.hidden_size, c.num_labels);
        RegisterComponents();
    }

    public override string Task => "classification";
    public override string Architecture => nameof(BertForSequenceClassification);

    protected override ModelOutput Run(Tensor input_ids, Tensor? attention_mask, Tensor? token_type_ids, ModelBatch batch)
    {
        var (_, pooled) = bert.forward(input_ids, attention_mask, token_type_ids);
        var logits = classifier.forward(dropout.forward(pooled!)); // (B, C)
        Tensor? loss = null;
        if (batch.Labels is not null)
        {
            // HF decides the problem type on the first labelled batch and records it in the config.
            (loss, config.problem_type) = HeadLosses.SequenceClassification(logits, Labels(batch.Labels), config.num_labels, config.problem_type);
        }
        return new ModelOutput { Logits = logits, Loss = loss };
    }
}

/// <summary>Sequence output → dropout → classifier (B, T, num_labels); CE over tokens, -100 ignored.</summary>
public sealed class BertForTokenClassification : BertPreTrainedModel
{
    readonly Dropout dropout;
    readonly Linear classifier;

    public BertForTokenClassification(BertConfig c) : base(nameof(BertForTokenClassification), c, addPoolingLayer: false)
    {
        dropout = nn.Dropout(c.classifier_dropout ?? c.hidden_dropout_prob);
        classifier = nn.Linear(c.hidden_size, c.num_labels);
        RegisterComponents();
    }

    public override string Task => "token-classification";
    public override string Architecture => nameof(BertForTokenClassification);

    protected override ModelOutput Run(Tensor input_ids, Tensor? attention_mask, Tensor? token_type_ids, ModelBatch batch)
    {
        var (seq, _) = bert.forward(input_ids, attention_mask, token_type_ids);
        var logits = classifier.forward(dropout.forward(seq)); // (B, T, C)
        Tensor? loss = batch.Labels is null ? null
            : F.cross_entropy(logits.view(-1, config.num_labels), Labels(batch.Labels).view(-1), ignore_index: -100);
        return new ModelOutput { Logits = logits, Loss = loss };
    }
}

/// <summary>HF's BertPredictionHeadTransform: dense → hidden_act → LayerNorm.</summary>
public sealed class BertPredictionHeadTransform : nn.Module
{
    readonly Linear dense;
    readonly Func<Tensor, Tensor> act;
    readonly LayerNorm LayerNorm;

    public BertPredictionHeadTransform(BertConfig c) : base(nameof(BertPredictionHeadTransform))
    {
        dense = nn.Linear(c.hidden_size, c.hidden_size);
        act = BertConfig.Activation(c.hidden_act);
        LayerNorm = nn.LayerNorm(c.hidden_size, eps: c.layer_norm_eps);
        RegisterComponents();
    }

    public Tensor forward(Tensor x) => LayerNorm.forward(act(dense.forward(x)));
}

/// <summary>HF's BertLMPredictionHead: transform, then the decoder onto the vocabulary plus <c>bias</c>.
/// The decoder weight is the word embedding matrix (tie_word_embeddings), passed in at each call rather than
/// held here, so the parameter exists once (one optimizer entry, no duplicate key in the state dict).</summary>
public sealed class BertLMPredictionHead : nn.Module
{
    readonly BertPredictionHeadTransform transform;
    readonly Linear? decoder; // only when tie_word_embeddings is false
    readonly Parameter bias;

    public BertLMPredictionHead(BertConfig c) : base(nameof(BertLMPredictionHead))
    {
        transform = new BertPredictionHeadTransform(c);
        decoder = c.tie_word_embeddings ? null : nn.Linear(c.hidden_size, c.vocab_size, hasBias: false);
        bias = new Parameter(zeros(c.vocab_size));
        RegisterComponents();
    }

    /// <summary>(B, T, H) → (B, T, V).</summary>
    public Tensor forward(Tensor hidden, Tensor wordEmbeddings)
        => F.linear(transform.forward(hidden), decoder?.weight ?? wordEmbeddings, bias);
}

/// <summary>HF's BertOnlyMLMHead (<c>cls.predictions</c>).</summary>
public sealed class BertOnlyMLMHead : nn.Module
{
    readonly BertLMPredictionHead predictions;

    public BertOnlyMLMHead(BertConfig c) : base(nameof(BertOnlyMLMHead))
    {
        predictions = new BertLMPredictionHead(c);
        RegisterComponents();
    }

    public Tensor forward(Tensor hidden, Tensor wordEmbeddings) => predictions.forward(hidden, wordEmbeddings);
}

/// <summary>Masked LM: vocabulary logits (B, T, V) at every position; CE over positions whose label is not -100.</summary>
public sealed class BertForMaskedLM : BertPreTrainedModel
{
    readonly BertOnlyMLMHead cls;

    public BertForMaskedLM(BertConfig c) : base(nameof(BertForMaskedLM), c, addPoolingLayer: false)
    {
        cls = new BertOnlyMLMHead(c);
        RegisterComponents();
    }

    public override string Task => "masked-lm";
    public override string Architecture => nameof(BertForMaskedLM);

    protected override ModelOutput Run(Tensor input_ids, Tensor? attention_mask, Tensor? token_type_ids, ModelBatch batch)
    {
        var (seq, _) = bert.forward(input_ids, attention_mask, token_type_ids);
        if (batch.Labels is not null && training)
        {
            // Sparse prediction (Geiping & Goldstein 2022, "Cramming"): while training, run the head only at the M
            // masked positions. The loss is the same mean over those positions that HF computes from full logits,
            // but the (V x H) decoder, most of a small model's FLOPs, sees ~15% of the tokens. Evaluation (eval
            // mode) still returns HF's full (B, T, V) logits. No logits come back here, so the trainer's label
            // smoothing does not apply to masked-LM training.
            var labels = Labels(batch.Labels).view(-1);                    // (B*T)
            var at = labels.ne(-100).nonzero().squeeze(1);                 // (M)
            var hidden = seq.reshape(-1, seq.shape[^1]).index_select(0, at); // (M, H)
            var sparse = cls.forward(hidden, bert.WordEmbeddingWeight);    // (M, V)
            return new ModelOutput { Loss = F.cross_entropy(sparse, labels.index_select(0, at)) };
        }
        var logits = cls.forward(seq, bert.WordEmbeddingWeight); // (B, T, V)
        Tensor? loss = batch.Labels is null ? null
            : F.cross_entropy(logits.view(-1, config.vocab_size), Labels(batch.Labels).view(-1), ignore_index: -100);
        return new ModelOutput { Logits = logits, Loss = loss };
    }
}

/// <summary>Extractive QA: qa_outputs → start and end logits (B, T) each. Loss as HF: positions clamped to
/// [0, T], T ignored, mean of the start and end cross-entropies.</summary>
public sealed class BertForQuestionAnswering : BertPreTrainedModel
{
    readonly Linear qa_outputs;

    public BertForQuestionAnswering(BertConfig c) : base(nameof(BertForQuestionAnswering), c, addPoolingLayer: false)
    {
        if (c.num_labels != 2) throw new InvalidDataException($"question answering needs num_labels = 2 (start, end), config has {c.num_labels}");
        qa_outputs = nn.Linear(c.hidden_size, c.num_labels);
        RegisterComponents();
    }

    public override string Task => "question-answering";
    public override string Architecture => nameof(BertForQuestionAnswering);

    protected override ModelOutput Run(Tensor input_ids, Tensor? attention_mask, Tensor? token_type_ids, ModelBatch batch)
    {
        var (seq, _) = bert.forward(input_ids, attention_mask, token_type_ids);
        var logits = qa_outputs.forward(seq); // (B, T, 2)
        var start = logits.select(-1, 0).contiguous(); // (B, T)
        var end = logits.select(-1, 1).contiguous();
        Tensor? loss = null;
        if (batch.StartPositions is not null && batch.EndPositions is not null)
        {
            long ignored = start.shape[1]; // an answer outside the window counts as position T, which is ignored
            var sp = Labels(batch.StartPositions).view(-1).clamp(0, ignored);
            var ep = Labels(batch.EndPositions).view(-1).clamp(0, ignored);
            loss = (F.cross_entropy(start, sp, ignore_index: ignored) + F.cross_entropy(end, ep, ignore_index: ignored)) / 2;
        }
        return new ModelOutput { StartLogits = start, EndLogits = end, Loss = loss };
    }
}

// ───────────────────────────────────────── entry points ─────────────────────────────────────────

/// <summary>Creates BERT models: from an HF folder, or from a named preset with random weights.</summary>
public static class Bert
{
    /// <summary>Tasks with a BERT head.</summary>
    public static readonly string[] Tasks = ["masked-lm", "classification", "token-classification", "question-answering"];

    /// <summary>GPT-2's names for the shape settings both families share.</summary>
    static readonly Dictionary<string, string> GptAliases = new()
    {
        ["n_layer"] = "num_hidden_layers", ["n_head"] = "num_attention_heads", ["n_embd"] = "hidden_size",
        ["n_positions"] = "max_position_embeddings", ["n_inner"] = "intermediate_size",
    };

    /// <summary>The preset names, smallest first (the BERT rows of <see cref="ModelPresets"/>).</summary>
    public static IReadOnlyList<string> PresetNames => ModelPresets.All.Where(p => p.ModelType == "bert").Select(p => p.Name).ToList();

    /// <summary>The config of a preset (no head settings): the shapes in <see cref="ModelPresets"/> (Turc et al.
    /// 2019 for tiny/mini/small/medium, Devlin et al. 2019 for base/large; intermediate = 4H), HF's defaults otherwise.</summary>
    public static BertConfig PresetConfig(string name)
    {
        var s = ModelPresets.Get(name);
        if (s.ModelType != "bert")
            throw new ArgumentException($"'{name}' is not a BERT preset; BERT presets: {string.Join(", ", PresetNames)}");
        return new BertConfig { num_hidden_layers = s.Layers, hidden_size = s.Hidden, num_attention_heads = s.Heads, intermediate_size = s.Inner };
    }

    /// <summary>A head for <paramref name="task"/> on a config, every weight initialised as HF's _init_weights.</summary>
    public static BertPreTrainedModel Create(BertConfig config, string task, long? seed = null)
    {
        var model = NewHead(config, task);
        using var g = seed is long s ? new Generator((ulong)s) : null;
        model.InitWeights(model.named_parameters().Select(p => p.name), g);
        return model;
    }

    /// <summary>A preset with random weights. <paramref name="overrides"/> use config.json names
    /// (hidden_size, num_hidden_layers, vocab_size, num_labels, id2label, ...; GPT-2's n_layer, n_head, n_embd,
    /// n_positions, n_inner are accepted as aliases); when hidden_size is overridden
    /// alone, heads (H/64) and intermediate_size (4H) follow it. An unknown key is an error naming the closest one.</summary>
    public static BertPreTrainedModel FromPreset(string name, string task, IDictionary<string, object>? overrides, long? seed = null)
    {
        var cfg = PresetConfig(name).ToJson();
        cfg.Remove("architectures");
        if (overrides != null)
        {
            // A recipe may use GPT-2's names for the shared shape settings; they mean the same here.
            // "labels" (class names, as the trainer passes them and the GPT-2 factory takes them) is id2label as a list.
            overrides = overrides.ToDictionary(kv => kv.Key == "labels" ? "id2label" : GptAliases.GetValueOrDefault(kv.Key, kv.Key), kv => kv.Value);
            foreach (var (k, v) in overrides)
            {
                if (!BertConfig.Keys.Contains(k) || k is "model_type" or "architectures" or "dtype" or "torch_dtype")
                    throw new ArgumentException($"unknown BERT config key '{k}'{ModelPresets.Suggest(k, BertConfig.Keys)}");
                cfg[k] = v as JsonNode ?? JsonSerializer.SerializeToNode(v);
            }
            if (overrides.ContainsKey("hidden_size"))
            {
                var probe = cfg.DeepClone().AsObject();
                probe["num_attention_heads"] = 1; // read H before the preset's head count is checked against it
                int h = BertConfig.FromJson(probe, $"preset {name} with overrides").hidden_size;
                if (!overrides.ContainsKey("num_attention_heads")) cfg["num_attention_heads"] = Math.Max(1, h / 64);
                if (!overrides.ContainsKey("intermediate_size")) cfg["intermediate_size"] = 4 * h;
            }
            if (overrides.ContainsKey("id2label") && !overrides.ContainsKey("label2id")) cfg.Remove("label2id");
            if (overrides.ContainsKey("num_labels") && !overrides.ContainsKey("id2label"))
            {
                cfg.Remove("id2label");
                cfg.Remove("label2id");
            }
        }
        return Create(BertConfig.FromJson(cfg, $"preset {name} with overrides"), task, seed);
    }

    /// <summary>Loads an HF BERT folder (config.json + model.safetensors or a sharded index) with the head for
    /// <paramref name="task"/> (null: the head config.json's architectures name). <paramref name="labels"/> or
    /// <paramref name="numLabels"/> set the classifier's labels; a classifier the checkpoint lacks or holds in
    /// another size is initialised fresh and listed in <see cref="BertPreTrainedModel.LoadReport"/>.</summary>
    public static BertPreTrainedModel FromPretrained(string folder, string? task, int? numLabels, IReadOnlyList<string>? labels, long? seed = null)
    {
        var config = BertConfig.FromJson(HfCheckpoint.LoadConfig(folder), Path.Combine(folder, "config.json"));
        task ??= TaskOf(config.architectures)
            ?? throw new ArgumentException($"{Path.Combine(folder, "config.json")}: architectures [{string.Join(", ", config.architectures)}] name no BERT task head; choose a task ({string.Join(", ", Tasks)})");
        if (task is "classification" or "token-classification")
        {
            if (labels != null)
            {
                if (numLabels != null && numLabels != labels.Count)
                    throw new ArgumentException($"{labels.Count} labels given but num_labels = {numLabels}");
                if (labels.Count < 1) throw new ArgumentException("the label list is empty");
                config.id2label = labels.ToList();
            }
            else if (numLabels is int n && n != config.num_labels)
            {
                if (n < 1) throw new ArgumentException($"num_labels must be at least 1, got {n}");
                config.id2label = BertConfig.DefaultLabels(n);
            }
        }
        var model = NewHead(config, task);
        var sd = HfCheckpoint.LoadStateDict(folder);
        try
        {
            using var g = seed is long s ? new Generator((ulong)s) : null;
            model.LoadHfStateDict(sd, folder, g);
        }
        finally { foreach (var t in sd.Values) t.Dispose(); }
        return model;
    }

    static BertPreTrainedModel NewHead(BertConfig config, string task) => task switch
    {
        "classification" or "sequence-classification" => new BertForSequenceClassification(config),
        "token-classification" => new BertForTokenClassification(config),
        "masked-lm" => new BertForMaskedLM(config),
        "question-answering" => new BertForQuestionAnswering(config),
        "causal-lm" or "generation" => throw new ArgumentException($"BERT is an encoder and has no '{task}' head; use a GPT-2 model"),
        _ => throw new ArgumentException($"BERT has no head for task '{task}'{ModelPresets.Suggest(task, Tasks)}; tasks: {string.Join(", ", Tasks)}"),
    };

    /// <summary>The task whose head HF's architectures entry names (BertForPreTraining loads as masked LM).</summary>
    static string? TaskOf(IEnumerable<string> architectures) => architectures.Select(a => a switch
    {
        "BertForSequenceClassification" => "classification",
        "BertForTokenClassification" => "token-classification",
        "BertForMaskedLM" or "BertForPreTraining" => "masked-lm",
        "BertForQuestionAnswering" => "question-answering",
        _ => null,
    }).FirstOrDefault(t => t != null);

}
