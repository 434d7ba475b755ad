// BERT as an ONNX graph: embeddings → post-LN encoder → pooler → task head, mirroring TaskLM's Bert.cs.
using TaskLM.Hf;
using TaskLM.Onnx.Proto;
using DT = TaskLM.Onnx.Proto.TensorProto.Types.DataType;

namespace TaskLM.Onnx;

/// <summary>
/// Writes a BERT checkpoint as ONNX. Inputs <c>input_ids</c>, <c>attention_mask</c>, <c>token_type_ids</c>
/// (B, T) int64, as HF optimum names them; outputs by head: sequence classification <c>logits</c> (B, C), token
/// classification <c>logits</c> (B, T, C), question answering <c>start_logits</c>/<c>end_logits</c> (B, T),
/// masked LM <c>logits</c> (B, T, V).
/// </summary>
internal static class BertOnnx
{
    const string Prefix = "bert.";

    /// <summary>Builds the graph of <paramref name="task"/>'s head from the folder's config and weights. With
    /// <paramref name="int8"/> the encoder's Linear layers (attention query/key/value/output, intermediate, output) are
    /// dynamic int8 (<see cref="OnnxGraph.DenseInt8"/>); embeddings, LayerNorm, softmax, the attention products, the
    /// pooler and the head stay fp32. <paramref name="keepFp32"/> leaves some of those layers fp32 too (as ONNX Runtime's
    /// nodes_to_exclude): "output.dense" (that layer in every encoder layer), "layer.5" (all of layer 5), or
    /// "layer.5.output.dense".</summary>
    public static ModelProto Build(HfConfig cfg, HfWeights w, string task, Int8Ops? int8 = null, bool reduceRange = false, IReadOnlyCollection<string>? keepFp32 = null)
    {
        int hdim = cfg.Int("hidden_size") ?? 768, nh = cfg.Int("num_attention_heads") ?? 12, layers = cfg.Int("num_hidden_layers") ?? 12;
        int inner = cfg.Int("intermediate_size") ?? 3072, vocab = cfg.Int("vocab_size") ?? 30522;
        int positions = cfg.Int("max_position_embeddings") ?? 512, types = cfg.Int("type_vocab_size") ?? 2, hs = hdim / nh;
        double eps = cfg.Num("layer_norm_eps") ?? 1e-12;
        var act = HfActivations.Parse(cfg.Str("hidden_act") ?? "gelu", "hidden_act", cfg.Source);
        if ((cfg.Str("position_embedding_type") ?? "absolute") != "absolute")
            throw new NotSupportedException($"{cfg.Source}: position_embedding_type '{cfg.Str("position_embedding_type")}' has no ONNX export");
        if (hdim % nh != 0) throw new InvalidDataException($"{cfg.Source}: hidden_size {hdim} is not a multiple of num_attention_heads {nh}");

        var g = new OnnxGraph("bert_" + task.Replace('-', '_'));
        var ids = g.Input("input_ids", DT.Int64, "batch_size", "sequence_length");
        var mask = g.Input("attention_mask", DT.Int64, "batch_size", "sequence_length");
        var types_ = g.Input("token_type_ids", DT.Int64, "batch_size", "sequence_length");

        string W(string key, params long[] shape) => g.Weight(key, shape, w.Get(key, Prefix, shape).Data);
        // nn.Linear stores [out, in]; the graph keeps the [in, out] transpose MatMul takes.
        string Lin(string key, int fin, int fout) => g.Weight(key + ".T", [fin, fout], w.Get(key, Prefix, fout, fin).Transposed().Data);
        // An encoder Linear layer "<name>.weight"/"<name>.bias": fp32 MatMul + Add, or dynamic int8.
        bool Fp32(string name)
        {
            // name: bert.encoder.layer.{i}.{local}
            string rest = name["bert.encoder.".Length..];
            string layer = rest[..rest.IndexOf('.', "layer.".Length)], local = rest[(layer.Length + 1)..];
            return keepFp32 != null && (keepFp32.Contains(local) || keepFp32.Contains(layer) || keepFp32.Contains(rest));
        }
        string Linear(string x, string name, int fin, int fout) => int8 is Int8Ops ops && !Fp32(name)
            ? g.DenseInt8(x, name + ".weight.T", w.Get(name + ".weight", Prefix, fout, fin).Transposed().Data, fin, fout, W(name + ".bias", fout), ops, reduceRange)
            : g.Dense(x, Lin(name + ".weight", fin, fout), W(name + ".bias", fout));

        // Embeddings: word + token type + absolute position (0..T-1), then LayerNorm (B, T, H).
        var t = g.Op("Gather", [g.Op("Shape", [ids]), g.I64([1], scalar: true)], null, ("axis", 0L));
        var pos = g.Op("Range", [g.I64([0], scalar: true), t, g.I64([1], scalar: true)]);                  // (T,)
        var words = W("bert.embeddings.word_embeddings.weight", vocab, hdim);
        var x = g.Op("Add", [g.Op("Add", [g.Op("Gather", [words, ids], null, ("axis", 0L)),
            g.Op("Gather", [W("bert.embeddings.token_type_embeddings.weight", types, hdim), types_], null, ("axis", 0L))]),
            g.Op("Gather", [W("bert.embeddings.position_embeddings.weight", positions, hdim), pos], null, ("axis", 0L))]);
        x = g.LayerNorm(x, W("bert.embeddings.LayerNorm.weight", hdim), W("bert.embeddings.LayerNorm.bias", hdim), eps);

        // HF's extended mask: (1 - mask) · float.MinValue (B, 1, 1, T); padded query rows are still computed.
        var bias = g.Op("Unsqueeze", [g.Op("Mul", [g.Op("Sub", [g.F32(1f), g.Op("Cast", [mask], null, ("to", (long)DT.Float))]), g.F32(float.MinValue)]), g.Ints(1, 2)]);

        for (int i = 0; i < layers; i++)
        {
            string L(string name) => $"bert.encoder.layer.{i}.{name}";
            var q = g.SplitHeads(Linear(x, L("attention.self.query"), hdim, hdim), nh, hs);
            var k = g.SplitHeads(Linear(x, L("attention.self.key"), hdim, hdim), nh, hs);
            var v = g.SplitHeads(Linear(x, L("attention.self.value"), hdim, hdim), nh, hs);
            var ctx = g.MergeHeads(g.Attention(q, k, v, bias, (float)(1.0 / Math.Sqrt(hs))), hdim);        // (B, T, H)
            var a = g.LayerNorm(g.Op("Add", [Linear(ctx, L("attention.output.dense"), hdim, hdim), x]),
                W(L("attention.output.LayerNorm.weight"), hdim), W(L("attention.output.LayerNorm.bias"), hdim), eps);
            var up = g.Activation(Linear(a, L("intermediate.dense"), hdim, inner), act);
            x = g.LayerNorm(g.Op("Add", [Linear(up, L("output.dense"), inner, hdim), a]),
                W(L("output.LayerNorm.weight"), hdim), W(L("output.LayerNorm.bias"), hdim), eps);           // (B, T, H)
        }

        int n = cfg.Labels.Count;
        switch (task)
        {
            case "classification":
            {
                string pooled;
                string pooling = cfg.Str("classifier_pooling") ?? "cls";
                if (pooling == "mean")
                {
                    // TaskLM's/ModernBERT's classifier_pooling "mean": Σ_t x·m / max(Σ_t m, 1e-9) over the attention mask (B, H).
                    var m = g.Op("Unsqueeze", [g.Op("Cast", [mask], null, ("to", (long)DT.Float)), g.Ints(2)]);         // (B, T, 1)
                    var sum = g.Op("ReduceSum", [g.Op("Mul", [x, m]), g.Ints(1)], null, ("keepdims", 0L));              // (B, H)
                    var count = g.Op("Max", [g.Op("ReduceSum", [m, g.Ints(1)], null, ("keepdims", 0L)), g.F32(1e-9f)]); // (B, 1)
                    pooled = g.Op("Div", [sum, count]);
                }
                else if (pooling == "cls")
                {
                    // Pooler: tanh(dense(hidden of [CLS])) (B, H), then the classifier (B, C).
                    var cls = g.Op("Gather", [x, g.I64([0], scalar: true)], null, ("axis", 1L));
                    pooled = g.Op("Tanh", [g.Dense(cls, Lin("bert.pooler.dense.weight", hdim, hdim), W("bert.pooler.dense.bias", hdim))]);
                }
                else throw new InvalidDataException($"{cfg.Source}: classifier_pooling '{pooling}' has no ONNX export (cls, mean)");
                g.Dense(pooled, Lin("classifier.weight", hdim, n), W("classifier.bias", n), "logits");
                g.Output("logits", DT.Float, "batch_size", n);
                break;
            }
            case "token-classification":
                g.Dense(x, Lin("classifier.weight", hdim, n), W("classifier.bias", n), "logits");           // (B, T, C)
                g.Output("logits", DT.Float, "batch_size", "sequence_length", n);
                break;
            case "question-answering":
            {
                var both = g.Dense(x, Lin("qa_outputs.weight", hdim, 2), W("qa_outputs.bias", 2));          // (B, T, 2)
                g.Op("Gather", [both, g.I64([0], scalar: true)], "start_logits", ("axis", 2L));            // (B, T)
                g.Op("Gather", [both, g.I64([1], scalar: true)], "end_logits", ("axis", 2L));
                g.Output("start_logits", DT.Float, "batch_size", "sequence_length");
                g.Output("end_logits", DT.Float, "batch_size", "sequence_length");
                break;
            }
            case "masked-lm":
            {
                // cls.predictions: dense → act → LayerNorm, then the decoder (tied to the word embeddings) + bias.
                var hcur = g.LayerNorm(g.Activation(g.Dense(x, Lin("cls.predictions.transform.dense.weight", hdim, hdim), W("cls.predictions.transform.dense.bias", hdim)), act),
                    W("cls.predictions.transform.LayerNorm.weight", hdim), W("cls.predictions.transform.LayerNorm.bias", hdim), eps);
                bool tied = cfg.Bool("tie_word_embeddings") ?? true;
                var decoder = tied ? g.Op("Transpose", [words], null, ("perm", new long[] { 1, 0 })) : Lin("cls.predictions.decoder.weight", hdim, vocab);
                g.Dense(hcur, decoder, W("cls.predictions.bias", vocab), "logits");                         // (B, T, V)
                g.Output("logits", DT.Float, "batch_size", "sequence_length", vocab);
                break;
            }
            default:
                throw new NotSupportedException($"BERT task '{task}' has no ONNX export (classification, token-classification, question-answering, masked-lm)");
        }
        var meta = new Dictionary<string, string> { ["model_type"] = "bert", ["task"] = task };
        if (int8 is Int8Ops used) meta[OnnxExport.QuantizationKey] = OnnxExport.Int8Dynamic + (reduceRange ? ", 7-bit weights (reduce_range)" : "") + (used == Int8Ops.Onnx ? ", standard ONNX ops" : "")
            + (keepFp32 is { Count: > 0 } ? $", kept fp32: {string.Join(" ", keepFp32)}" : "");
        return g.Model($"TaskLM export of a BERT {task} model" + (int8 != null ? ", encoder Linear layers dynamic int8" : ""), meta);
    }
}
