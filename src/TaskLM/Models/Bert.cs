// BERT as Hugging Face's modeling_bert builds it: config → embeddings → post-LN encoder → pooler → _init_weights → task heads → declared facts.
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using TaskLM.Hf;
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
    /// <summary>What BertForSequenceClassification classifies from: null or "cls" = HF's BERT (the pooler: [CLS] → dense →
    /// tanh), "mean" = the mean of last_hidden_state over the attention mask (what sentence-transformers pools, and
    /// what <c>strategy.method: features</c> trains a head on). This key is not BERT's: it is ModernBERT's
    /// (<c>ModernBertConfig.classifier_pooling</c>, values "cls" | "mean"), read by TaskLM for BERT too. Hugging Face's
    /// BertForSequenceClassification ignores it, so a "mean" folder classifies alike only in TaskLM (and its ONNX export).</summary>
    public string? classifier_pooling { get; set; }
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
        "problem_type", "id2label", "label2id", "num_labels", "architectures", "position_embedding_type", "classifier_pooling",
        "model_type", "dtype", "torch_dtype",
    ];

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
        c.classifier_pooling = Str(json, "classifier_pooling", source);
        if (c.classifier_pooling is not (null or "cls" or "mean"))
            throw new InvalidDataException($"{source}: classifier_pooling '{c.classifier_pooling}' is not one of cls, mean (TaskLM's and ModernBERT's key, not HF BERT's)");
        c.problem_type = Str(json, "problem_type", source);
        if (c.problem_type is not (null or "regression" or "single_label_classification" or "multi_label_classification"))
            throw new InvalidDataException($"{source}: problem_type '{c.problem_type}' is not one of regression, single_label_classification, multi_label_classification");
        if (json["architectures"] is JsonArray arch) c.architectures = arch.Select(a => a?.GetValue<string>() ?? "").ToList();

        // id2label wins over num_labels, as in HF's PretrainedConfig.
        if (HfConfig.LabelsOf(json, source) is { } labels) c.id2label = labels;

        if (c.hidden_size % c.num_attention_heads != 0)
            throw new InvalidDataException($"{source}: hidden_size {c.hidden_size} is not a multiple of num_attention_heads {c.num_attention_heads}");
        HfActivations.Parse(c.hidden_act, "hidden_act", source); // fail now, not at the first forward pass
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
        if (classifier_pooling != null) o["classifier_pooling"] = classifier_pooling;   // only when set: HF's BERT has no such key
        if (dtype != null) o["dtype"] = dtype;
        o["hidden_act"] = hidden_act;
        o["hidden_dropout_prob"] = hidden_dropout_prob;
        o["hidden_size"] = hidden_size;
        // HF 5 leaves id2label/label2id out when they are the default two generated names.
        if (!id2label.SequenceEqual(HfConfig.DefaultLabels(2)))
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

    static int? Int(JsonObject j, string key, string source) => HfConfig.Int(j, key, source);
    static double? Num(JsonObject j, string key, string source) => HfConfig.Num(j, key, source);
    static bool? Bool(JsonObject j, string key, string source) => HfConfig.Bool(j, key, source);
    static string? Str(JsonObject j, string key, string source) => HfConfig.Str(j, key, source);
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
    public Tensor Forward(Tensor input_ids, Tensor? token_type_ids)
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
public sealed class BertSelfAttention : nn.Module, ILoraTargets
{
    // Settable and typed as the layer interface (not Linear): LoRA puts a LoraLayer in their place (SwapLayer).
    nn.Module<Tensor, Tensor> query;
    nn.Module<Tensor, Tensor> key;
    nn.Module<Tensor, Tensor> value;
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
    public Tensor Forward(Tensor hidden, Tensor? mask)
    {
        long B = hidden.shape[0], T = hidden.shape[1];
        Tensor Heads(Tensor x) => x.view(B, T, numHeads, headSize).transpose(1, 2); // (B, nh, T, hs)
        // softmax(q kᵀ / √hs + mask) v; attention dropout only while training, as HF.
        var ctx = F.scaled_dot_product_attention(Heads(query.forward(hidden)), Heads(key.forward(hidden)),
            Heads(value.forward(hidden)), mask, training ? dropoutP : 0.0); // (B, nh, T, hs)
        return ctx.transpose(1, 2).reshape(B, T, numHeads * headSize);
    }

    public nn.Module<Tensor, Tensor>? SwapLayer(string name, nn.Module<Tensor, Tensor> layer) => name switch
    {
        nameof(query) => ILoraTargets.Swap(ref query, layer),
        nameof(key) => ILoraTargets.Swap(ref key, layer),
        nameof(value) => ILoraTargets.Swap(ref value, layer),
        _ => null,
    };
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

    public Tensor Forward(Tensor hidden, Tensor input) => LayerNorm.forward(dropout.forward(dense.forward(hidden)) + input);
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

    public Tensor Forward(Tensor hidden, Tensor? mask) => output.Forward(self.Forward(hidden, mask), hidden);
}

/// <summary>Feed-forward up-projection H → intermediate_size with hidden_act.</summary>
public sealed class BertIntermediate : nn.Module
{
    readonly Linear dense;
    readonly Func<Tensor, Tensor> act;

    public BertIntermediate(BertConfig c) : base(nameof(BertIntermediate))
    {
        dense = nn.Linear(c.hidden_size, c.intermediate_size);
        act = Activations.Of(c.hidden_act, "hidden_act");
        RegisterComponents();
    }

    public Tensor Forward(Tensor hidden) => act(dense.forward(hidden));
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

    public Tensor Forward(Tensor hidden, Tensor? mask)
    {
        var a = attention.Forward(hidden, mask);
        return output.Forward(intermediate.Forward(a), a);
    }
}

/// <summary>The stack of layers (<c>encoder.layer.N</c>).</summary>
public sealed class BertEncoder : nn.Module, IGradientCheckpointing
{
    readonly ModuleList<BertLayer> layer;

    public BertEncoder(BertConfig c) : base(nameof(BertEncoder))
    {
        layer = nn.ModuleList(Enumerable.Range(0, c.num_hidden_layers).Select(_ => new BertLayer(c)).ToArray());
        RegisterComponents();
    }

    /// <summary>HF's gradient_checkpointing: in training, each layer's activations are recomputed in backward
    /// (<see cref="ActivationCheckpoint"/>).</summary>
    public bool GradientCheckpointing { get; set; }

    public Tensor Forward(Tensor hidden, Tensor? mask)
    {
        bool checkpoint = GradientCheckpointing && training;
        foreach (var l in layer) hidden = checkpoint ? ActivationCheckpoint.Run(l, (z, m) => l.Forward(z, m), hidden, mask) : l.Forward(hidden, mask);
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
    public Tensor Forward(Tensor hidden) => dense.forward(hidden.select(1, 0)).tanh();
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
    public (Tensor sequence_output, Tensor? pooled_output) Forward(Tensor input_ids, Tensor? attention_mask, Tensor? token_type_ids)
    {
        var x = embeddings.Forward(input_ids, token_type_ids);
        // HF's extended mask: 0 where attended, the dtype's minimum where padded, broadcast over heads and
        // queries (B, 1, 1, T). Padded query rows are still computed (they attend to the real tokens), as HF.
        Tensor? mask = null;
        if (attention_mask is not null)
        {
            double min = x.dtype switch { ScalarType.Float16 => -65504.0, ScalarType.BFloat16 => -3.3895313892515355e38, ScalarType.Float64 => double.MinValue, _ => float.MinValue };
            mask = (1.0 - attention_mask.to(x.dtype)).mul(min).view(attention_mask.shape[0], 1, 1, attention_mask.shape[1]);
        }
        var seq = encoder.Forward(x, mask);
        return (seq, pooler?.Forward(seq));
    }
}

// ───────────────────────────────────────── heads ─────────────────────────────────────────

/// <summary>HF's BertPreTrainedModel: what the four heads share (the config, the body, _init_weights,
/// config.json); loading, saving and the forward entry are the shared <see cref="PreTrainedModel"/>'s.</summary>
public abstract class BertPreTrainedModel : PreTrainedModel
{
    /// <summary>The HF config; heads read num_labels/problem_type from it.</summary>
    public BertConfig config { get; }
    protected readonly BertModel bert;

    protected BertPreTrainedModel(string name, BertConfig c, bool addPoolingLayer) : base(name)
    {
        config = c;
        bert = new BertModel(c, addPoolingLayer);
    }

    public override ModelFamily Family => BertFamily.Instance;
    public override int MaxPositions => config.max_position_embeddings;
    public override int? PadTokenId => config.pad_token_id;
    public override int VocabSize => config.vocab_size;

    /// <summary>HF's <c>BertModel(...).last_hidden_state</c>: the body's sequence output (B, T, H) for (B, T) ids, no
    /// head applied (what sentence encoders pool, and what an ONNX export of a bare BertModel outputs).</summary>
    public Tensor LastHiddenState(Tensor input_ids, Tensor? attention_mask = null, Tensor? token_type_ids = null)
        => bert.Forward(input_ids, attention_mask, token_type_ids).sequence_output;

    protected override JsonObject ConfigJson()
    {
        config.architectures = [Architecture];
        var dtype = bert.WordEmbeddingWeight.dtype switch
        {
            ScalarType.Float16 => "float16", ScalarType.BFloat16 => "bfloat16", ScalarType.Float64 => "float64", _ => "float32",
        };
        return config.ToJson(dtype);
    }

    /// <summary>HF's <c>_init_weights</c>: Linear/Embedding weights ~ N(0, initializer_range), the pad row of
    /// word_embeddings zero, biases zero, LayerNorm weight 1 and bias 0.</summary>
    protected override void InitWeight(string name, Parameter p, Generator? generator)
    {
        if (name.EndsWith(".bias", StringComparison.Ordinal) || name == "bias") nn.init.zeros_(p);
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

    internal static BertPreTrainedModel NewHead(BertConfig config, string task) => task switch
    {
        "classification" or "sequence-classification" => new BertForSequenceClassification(config),
        "token-classification" => new BertForTokenClassification(config),
        "masked-lm" => new BertForMaskedLM(config),
        "question-answering" => new BertForQuestionAnswering(config),
        "causal-lm" or "generation" => throw new ArgumentException($"BERT is an encoder and has no '{task}' head; use a GPT-2 model"),
        _ => throw new ArgumentException($"BERT has no head for task '{task}'{ModelPresets.Suggest(task, HfFamilies.Bert.Tasks)}; tasks: {string.Join(", ", HfFamilies.Bert.Tasks)}"),
    };
}

/// <summary>[CLS] → pooler → dropout → classifier (B, num_labels), as HF; with config.classifier_pooling "mean" (TaskLM's
/// and ModernBERT's key, not BERT's) the classifier reads the masked mean of last_hidden_state instead of the pooler.
/// Loss by problem_type, as HF.</summary>
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

    /// <summary>True when the head classifies the mean-pooled sequence output (classifier_pooling "mean").</summary>
    public bool MeanPooling => config.classifier_pooling == "mean";

    /// <summary>sentence-transformers' mean pooling: Σ_t h[b,t]·m[b,t] / max(Σ_t m[b,t], 1e-9) — (B, T, H), (B, T) → (B, H).
    /// A null mask averages every position.</summary>
    public static Tensor MeanPool(Tensor hidden, Tensor? attention_mask)
    {
        if (attention_mask is null) return hidden.mean([1]);
        var m = attention_mask.to(hidden.dtype).unsqueeze(-1);                    // (B, T, 1)
        return hidden.mul(m).sum(1).div(m.sum(1).clamp_min(1e-9));                // (B, H)
    }

    /// <summary>The pooled features the classifier reads (B, H): the pooler's output, or the masked mean (classifier_pooling "mean").</summary>
    public Tensor Features(Tensor input_ids, Tensor? attention_mask = null, Tensor? token_type_ids = null)
    {
        var (seq, pooled) = bert.Forward(input_ids, attention_mask, token_type_ids);
        return MeanPooling ? MeanPool(seq, attention_mask) : pooled!;
    }

    /// <summary>Replaces the classifier's weight (C, H) and bias (C) — a head trained elsewhere (strategy.method: features).</summary>
    public void SetClassifier(Tensor weight, Tensor bias)
    {
        using var _ = no_grad();
        classifier.weight!.copy_(weight);
        classifier.bias!.copy_(bias);
    }

    protected override ModelOutput Run(ModelBatch batch)
    {
        var features = Features(batch.InputIds, batch.AttentionMask, batch.TokenTypeIds);   // (B, H)
        var logits = classifier.forward(dropout.forward(features)); // (B, C)
        Tensor? loss = null;
        if (batch.Labels is not null)
        {
            // HF decides the problem type on the first labelled batch and records it in the config.
            (loss, config.problem_type) = HeadLosses.SequenceClassification(logits, batch.Labels, config.num_labels, config.problem_type);
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

    protected override ModelOutput Run(ModelBatch batch)
    {
        var (input_ids, attention_mask, token_type_ids) = (batch.InputIds, batch.AttentionMask, batch.TokenTypeIds);
        var (seq, _) = bert.Forward(input_ids, attention_mask, token_type_ids);
        var logits = classifier.forward(dropout.forward(seq)); // (B, T, C)
        Tensor? loss = batch.Labels is null ? null
            : F.cross_entropy(HeadLosses.Fp32(logits).view(-1, config.num_labels), batch.Labels.view(-1), ignore_index: -100);
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
        act = Activations.Of(c.hidden_act, "hidden_act");
        LayerNorm = nn.LayerNorm(c.hidden_size, eps: c.layer_norm_eps);
        RegisterComponents();
    }

    public Tensor Forward(Tensor x) => LayerNorm.forward(act(dense.forward(x)));
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
    public Tensor Forward(Tensor hidden, Tensor wordEmbeddings)
        => F.linear(transform.Forward(hidden), decoder?.weight ?? wordEmbeddings, bias);
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

    public Tensor Forward(Tensor hidden, Tensor wordEmbeddings) => predictions.Forward(hidden, wordEmbeddings);
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

    protected override ModelOutput Run(ModelBatch batch)
    {
        var (input_ids, attention_mask, token_type_ids) = (batch.InputIds, batch.AttentionMask, batch.TokenTypeIds);
        var (seq, _) = bert.Forward(input_ids, attention_mask, token_type_ids);
        if (batch.Labels is not null && training)
        {
            // Sparse prediction (Geiping & Goldstein 2022, "Cramming"): while training, run the head only at the M
            // masked positions. The loss is the same mean over those positions that HF computes from full logits,
            // but the (V x H) decoder, most of a small model's FLOPs, sees ~15% of the tokens. Evaluation (eval
            // mode) still returns HF's full (B, T, V) logits. No logits come back here, so the trainer's label
            // smoothing does not apply to masked-LM training.
            var labels = batch.Labels.view(-1);                            // (B*T); the batch is on the device already
            var at = labels.ne(-100).nonzero().squeeze(1);                 // (M)
            var hidden = seq.reshape(-1, seq.shape[^1]).index_select(0, at); // (M, H)
            var sparse = cls.Forward(hidden, bert.WordEmbeddingWeight);    // (M, V)
            return new ModelOutput { Loss = F.cross_entropy(HeadLosses.Fp32(sparse), labels.index_select(0, at)) };
        }
        var logits = cls.Forward(seq, bert.WordEmbeddingWeight); // (B, T, V)
        Tensor? loss = batch.Labels is null ? null
            : F.cross_entropy(HeadLosses.Fp32(logits).view(-1, config.vocab_size), batch.Labels.view(-1), ignore_index: -100);
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

    protected override ModelOutput Run(ModelBatch batch)
    {
        var (input_ids, attention_mask, token_type_ids) = (batch.InputIds, batch.AttentionMask, batch.TokenTypeIds);
        var (seq, _) = bert.Forward(input_ids, attention_mask, token_type_ids);
        var logits = qa_outputs.forward(seq); // (B, T, 2)
        var start = logits.select(-1, 0).contiguous(); // (B, T)
        var end = logits.select(-1, 1).contiguous();
        Tensor? loss = null;
        if (batch.StartPositions is not null && batch.EndPositions is not null)
        {
            long ignored = start.shape[1]; // an answer outside the window counts as position T, which is ignored
            var sp = batch.StartPositions.view(-1).clamp(0, ignored);
            var ep = batch.EndPositions.view(-1).clamp(0, ignored);
            loss = (F.cross_entropy(HeadLosses.Fp32(start), sp, ignore_index: ignored) + F.cross_entropy(HeadLosses.Fp32(end), ep, ignore_index: ignored)) / 2;
        }
        return new ModelOutput { StartLogits = start, EndLogits = end, Loss = loss };
    }
}

// ───────────────────────────────────────── declared facts and entry points ─────────────────────────────────────────

/// <summary>BERT's declared facts (HF's base_model_prefix "bert", layers encoder.layer.N, the MLM decoder tied
/// to the word embeddings, TF-era LayerNorm names).</summary>
public sealed partial class BertFamily : ModelFamily
{
    public static readonly BertFamily Instance = new();
    BertFamily() { }

    public override HfFamily Names => HfFamilies.Bert;
    public override string BaseModelPrefix => "bert";
    [System.Text.RegularExpressions.GeneratedRegex(@"(?:^|\.)layer\.(\d+)\.")]
    private static partial System.Text.RegularExpressions.Regex Layer();
    protected override System.Text.RegularExpressions.Regex LayerPattern => Layer();
    public override IReadOnlyList<string> EmbeddingModules { get; } = ["embeddings"];
    public override string InputEmbeddingKey => "bert.embeddings.word_embeddings.weight";
    public override IReadOnlyList<string> TiedWeightKeys { get; } = ["cls.predictions.decoder.weight"];
    public override IReadOnlyList<string> LoraTargetModules { get; } = ["query", "value"];
    /// <summary>TF-era LayerNorm gamma/beta are weight/bias; old buffers (position_ids, token_type_ids) are
    /// derived; cls.predictions.decoder.bias is cls.predictions.bias (old checkpoints may hold only it).</summary>
    public override string? MapCheckpointKey(string key, IReadOnlySet<string> checkpointKeys)
    {
        if (key.EndsWith("embeddings.position_ids", StringComparison.Ordinal) || key.EndsWith("embeddings.token_type_ids", StringComparison.Ordinal)) return null;
        if (key == "cls.predictions.decoder.bias") return checkpointKeys.Contains("cls.predictions.bias") ? null : "cls.predictions.bias";
        if (key.EndsWith(".gamma", StringComparison.Ordinal)) return key[..^6] + ".weight";
        if (key.EndsWith(".beta", StringComparison.Ordinal)) return key[..^5] + ".bias";
        return key;
    }

    public override PreTrainedModel Build(JsonObject config, string source, string task) => BertPreTrainedModel.NewHead(BertConfig.FromJson(config, source), task);

    /// <summary>GPT-2's names for the shape settings both families share.</summary>
    static readonly Dictionary<string, string> GptAliases = new()
    {
        ["n_layer"] = "num_hidden_layers", ["n_head"] = "num_attention_heads", ["n_embd"] = "hidden_size",
        ["n_positions"] = "max_position_embeddings", ["n_inner"] = "intermediate_size",
    };

    /// <summary>The preset's shape with HF's defaults otherwise; GPT-2's n_layer, n_head, n_embd, n_positions,
    /// n_inner are accepted as aliases; when hidden_size is overridden alone, heads (H/64) and
    /// intermediate_size (4H) follow it.</summary>
    public override IEnumerable<string> ConfigKeys => BertConfig.Keys;

    public override JsonObject PresetConfig(ModelPreset p, IDictionary<string, object>? overrides)
    {
        var cfg = new BertConfig
        {
            num_hidden_layers = p.Layers, hidden_size = p.Hidden, num_attention_heads = p.Heads, intermediate_size = p.Inner,
            vocab_size = p.Vocab, max_position_embeddings = p.MaxPositions,
        }.ToJson();
        cfg.Remove("architectures");
        if (overrides == null) return cfg;
        var keys = overrides.Keys.Select(k => GptAliases.GetValueOrDefault(k, k)).ToHashSet();
        var known = BertConfig.Keys.Where(k => k is not ("model_type" or "architectures" or "dtype" or "torch_dtype" or "num_labels"));
        ConfigOverrides.Apply(cfg, overrides, known, "BERT", GptAliases);
        if (keys.Contains("hidden_size"))
        {
            int h = HfConfig.Int(cfg, "hidden_size", $"preset {p.Name} with overrides") ?? p.Hidden;
            if (!keys.Contains("num_attention_heads")) cfg["num_attention_heads"] = Math.Max(1, h / 64);
            if (!keys.Contains("intermediate_size")) cfg["intermediate_size"] = 4 * h;
        }
        return cfg;
    }

    /// <summary>BertModel with its pooler.</summary>
    public override long CountParameters(ModelPreset p)
    {
        long c = p.Hidden, i = p.Inner, v = p.Vocab, n = p.MaxPositions, l = p.Layers;
        long embeddings = v * c + n * c + 2 * c + 2 * c;                               // word, position, token type (2), LayerNorm
        long layer = 4 * (c * c + c) + 2 * c + (c * i + i) + (i * c + c) + 2 * c;
        return embeddings + l * layer + (c * c + c);                                   // + pooler
    }
}
