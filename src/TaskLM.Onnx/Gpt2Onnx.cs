// GPT-2 as an ONNX graph: embeddings → pre-LN blocks with a key/value cache → ln_f → head, under HF optimum's names.
using TaskLM.Hf;
using TaskLM.Onnx.Proto;
using DT = TaskLM.Onnx.Proto.TensorProto.Types.DataType;

namespace TaskLM.Onnx;

/// <summary>
/// Writes a GPT-2 checkpoint as ONNX, mirroring TaskLM's Gpt2.cs (and HF's modeling_gpt2) op for op.
/// The causal LM takes <c>input_ids</c> (B, T), <c>attention_mask</c> (B, P+T), <c>position_ids</c> (B, T) and
/// <c>past_key_values.{i}.key/value</c> (B, nh, P, hs) and returns <c>logits</c> (B, T, V) and
/// <c>present.{i}.key/value</c> (B, nh, P+T, hs): the names and layout of HF optimum's decoder-with-past export,
/// one graph for every step (the first step feeds an empty past, P = 0). The classification heads take
/// <c>input_ids</c> and <c>attention_mask</c> (B, T).
/// </summary>
internal static class Gpt2Onnx
{
    const string Prefix = "transformer.";

    /// <summary>Builds the graph of the folder's head (<paramref name="task"/>: causal-lm, classification,
    /// token-classification) from its config and weights.</summary>
    public static ModelProto Build(HfConfig cfg, HfWeights w, string task)
    {
        int c = cfg.Need("n_embd"), nh = cfg.Need("n_head"), layers = cfg.Need("n_layer"), vocab = cfg.Need("vocab_size");
        int positions = cfg.Int("n_positions") ?? 1024, inner = cfg.Int("n_inner") ?? 4 * c, hs = c / nh;
        double eps = cfg.Num("layer_norm_epsilon") ?? 1e-5;
        var act = HfActivations.Parse(cfg.Str("activation_function") ?? "gelu_new", "activation_function", cfg.Source);
        bool inverseLayerScale = cfg.Bool("scale_attn_by_inverse_layer_idx") ?? false;
        if (cfg.Bool("scale_attn_weights") == false) throw new NotSupportedException($"{cfg.Source}: scale_attn_weights=false has no ONNX export");
        if (cfg.Bool("reorder_and_upcast_attn") == true) throw new NotSupportedException($"{cfg.Source}: reorder_and_upcast_attn=true has no ONNX export");
        if (c % nh != 0) throw new InvalidDataException($"{cfg.Source}: n_embd {c} is not divisible by n_head {nh}");

        var g = new OnnxGraph("gpt2_" + task.Replace('-', '_'));
        bool lm = task == "causal-lm";
        var ids = g.Input("input_ids", DT.Int64, "batch_size", "sequence_length");
        var mask = g.Input("attention_mask", DT.Int64, "batch_size", lm ? "past_sequence_length + sequence_length" : "sequence_length");
        string? positionIds = lm ? g.Input("position_ids", DT.Int64, "batch_size", "sequence_length") : null;
        var pastK = new string[layers]; var pastV = new string[layers];
        if (lm)
            for (int i = 0; i < layers; i++)
            {
                pastK[i] = g.Input($"past_key_values.{i}.key", DT.Float, "batch_size", nh, "past_sequence_length", hs);
                pastV[i] = g.Input($"past_key_values.{i}.value", DT.Float, "batch_size", nh, "past_sequence_length", hs);
            }

        // Lengths: T new tokens, S = P + T positions in all (the mask covers the cached ones too, as in HF).
        var t = g.Op("Gather", [g.Op("Shape", [ids]), g.I64([1], scalar: true)], null, ("axis", 0L));      // scalar T
        var s = g.Op("Gather", [g.Op("Shape", [mask]), g.I64([1], scalar: true)], null, ("axis", 0L));     // scalar S
        var p = g.Op("Sub", [s, t]);                                                                        // scalar P
        var one = g.I64([1], scalar: true);
        var qpos = g.Op("Range", [p, s, one]);                                                               // (T,) absolute query positions
        var kpos = g.Op("Range", [g.I64([0], scalar: true), s, one]);                                       // (S,)

        // Embeddings: wte[input_ids] + wpe[position_ids] (B, T, C); positions default to P..S-1 (HF's default).
        var wte = g.Weight("transformer.wte.weight", [vocab, c], w.Get("transformer.wte.weight", Prefix, vocab, c).Data);
        var wpe = g.Weight("transformer.wpe.weight", [positions, c], w.Get("transformer.wpe.weight", Prefix, positions, c).Data);
        var pos = positionIds ?? g.Op("Unsqueeze", [qpos, g.Ints(0)]);                                       // (B|1, T)
        var x = g.Op("Add", [g.Op("Gather", [wte, ids], null, ("axis", 0L)), g.Op("Gather", [wpe, pos], null, ("axis", 0L))]);

        // Additive attention bias (B, 1, T, S): key j is visible to query i when j <= i (causal) and the mask keeps j;
        // a query always sees itself, so a padded row never softmaxes over nothing (TaskLM's rule; real tokens never
        // attend to pads, so their outputs are unaffected).
        var kRow = g.Op("Unsqueeze", [kpos, g.Ints(0)]);                                                     // (1, S)
        var qCol = g.Op("Unsqueeze", [qpos, g.Ints(1)]);                                                     // (T, 1)
        var keep = g.Op("Unsqueeze", [g.Op("Cast", [mask], null, ("to", (long)DT.Bool)), g.Ints(1, 2)]);    // (B, 1, 1, S)
        var allowed = g.Op("Or", [g.Op("And", [g.Op("LessOrEqual", [kRow, qCol]), keep]), g.Op("Equal", [kRow, qCol])]);
        var bias = g.Op("Where", [allowed, g.F32(0f), g.F32(float.MinValue)]);                              // (B, 1, T, S)

        for (int i = 0; i < layers; i++)
        {
            string L(string name) => $"transformer.h.{i}.{name}";
            // HF's Conv1D weights are [in, out]: MatMul's layout already, no transpose.
            string Conv(string name, int fin, int fout) => g.Weight(L(name) + ".weight", [fin, fout], w.Get(L(name) + ".weight", Prefix, fin, fout).Data);
            string Vec(string name, int n) => g.Weight(L(name), [n], w.Get(L(name), Prefix, n).Data);

            var h1 = g.LayerNorm(x, Vec("ln_1.weight", c), Vec("ln_1.bias", c), eps);
            var qkv = g.Dense(h1, Conv("attn.c_attn", c, 3 * c), Vec("attn.c_attn.bias", 3 * c));           // (B, T, 3C)
            var parts = g.OpN("Split", [qkv, g.Ints(c, c, c)], 3, null, ("axis", 2L));
            var q = g.SplitHeads(parts[0], nh, hs);                                                          // (B, nh, T, hs)
            if (inverseLayerScale) q = g.Op("Div", [q, g.F32(i + 1f)]);
            var k = g.SplitHeads(parts[1], nh, hs);
            var v = g.SplitHeads(parts[2], nh, hs);
            if (lm)
            {
                // The cache grows along the sequence axis: present = concat(past, new) (B, nh, S, hs).
                k = g.Op("Concat", [pastK[i], k], $"present.{i}.key", ("axis", 2L));
                v = g.Op("Concat", [pastV[i], v], $"present.{i}.value", ("axis", 2L));
            }
            var y = g.MergeHeads(g.Attention(q, k, v, bias, (float)(1.0 / Math.Sqrt(hs))), c);               // (B, T, C)
            x = g.Op("Add", [x, g.Dense(y, Conv("attn.c_proj", c, c), Vec("attn.c_proj.bias", c))]);
            var h2 = g.LayerNorm(x, Vec("ln_2.weight", c), Vec("ln_2.bias", c), eps);
            var m = g.Activation(g.Dense(h2, Conv("mlp.c_fc", c, inner), Vec("mlp.c_fc.bias", inner)), act);
            x = g.Op("Add", [x, g.Dense(m, Conv("mlp.c_proj", inner, c), Vec("mlp.c_proj.bias", c))]);       // (B, T, C)
        }
        x = g.LayerNorm(x, g.Weight("transformer.ln_f.weight", [c], w.Get("transformer.ln_f.weight", Prefix, c).Data),
            g.Weight("transformer.ln_f.bias", [c], w.Get("transformer.ln_f.bias", Prefix, c).Data), eps);

        switch (task)
        {
            case "causal-lm":
            {
                // Tied head: logits = hidden @ wteᵀ (the Transpose of a constant is folded once when the session loads).
                bool tied = cfg.Bool("tie_word_embeddings") ?? true;
                var head = tied ? g.Op("Transpose", [wte], null, ("perm", new long[] { 1, 0 }))
                    : g.Weight("lm_head.weight.T", [c, vocab], w.Get("lm_head.weight", "", vocab, c).Transposed().Data);
                g.Op("MatMul", [x, head], "logits");
                g.Output("logits", DT.Float, "batch_size", "sequence_length", vocab);
                for (int i = 0; i < layers; i++)
                {
                    g.Output($"present.{i}.key", DT.Float, "batch_size", nh, "past_sequence_length + sequence_length", hs);
                    g.Output($"present.{i}.value", DT.Float, "batch_size", nh, "past_sequence_length + sequence_length", hs);
                }
                break;
            }
            case "classification":
            {
                int n = cfg.Labels.Count;
                var all = g.Op("MatMul", [x, g.Weight("score.weight.T", [c, n], w.Get("score.weight", "", n, c).Transposed().Data)]); // (B, T, n)
                // HF pools the rightmost position whose id is not pad_token_id (0 when all are pads), else the last.
                string last;
                if (cfg.Int("pad_token_id") is int pad)
                {
                    var notPad = g.Op("Cast", [g.Op("Not", [g.Op("Equal", [ids, g.I64([pad], scalar: true)])])], null, ("to", (long)DT.Int64));
                    last = g.Op("ArgMax", [g.Op("Mul", [g.Op("Unsqueeze", [kpos, g.Ints(0)]), notPad])], null, ("axis", 1L), ("keepdims", 1L)); // (B, 1)
                }
                else
                    last = g.Op("Expand", [g.Op("Reshape", [g.Op("Sub", [t, one]), g.Ints(1, 1)]),
                        g.Op("Concat", [g.Op("Slice", [g.Op("Shape", [ids]), g.Ints(0), g.Ints(1)]), g.Ints(1)], null, ("axis", 0L))]); // (B, 1) of T-1
                var index = g.Op("Expand", [g.Op("Unsqueeze", [last, g.Ints(2)]), g.Ints(1, 1, n)]);              // (B, 1, n)
                g.Op("Squeeze", [g.Op("GatherElements", [all, index], null, ("axis", 1L)), g.Ints(1)], "logits"); // (B, n)
                g.Output("logits", DT.Float, "batch_size", n);
                break;
            }
            case "token-classification":
            {
                int n = cfg.Labels.Count;
                g.Dense(x, g.Weight("classifier.weight.T", [c, n], w.Get("classifier.weight", "", n, c).Transposed().Data),
                    g.Weight("classifier.bias", [n], w.Get("classifier.bias", "", n).Data), "logits");                   // (B, T, n)
                g.Output("logits", DT.Float, "batch_size", "sequence_length", n);
                break;
            }
            default:
                throw new NotSupportedException($"GPT-2 task '{task}' has no ONNX export (causal-lm, classification, token-classification)");
        }
        return g.Model($"TaskLM export of a GPT-2 {task} model", new Dictionary<string, string> { ["model_type"] = "gpt2", ["task"] = task });
    }
}
