// `tasklm export --format gguf`: a causal LM of the Llama family or GPT-2 → one GGUF file llama.cpp runs (F32, F16, Q8_0), tokenizer and chat template inside, an Ollama Modelfile beside it.
using System.Text;
using System.Text.Json.Nodes;
using TaskLM.Data.Tokenization;
using TaskLM.Hf;
using TaskLM.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace TaskLM.Export;

/// <summary>
/// Writes a TaskLM causal LM as GGUF under llama.cpp's names (what its convert_hf_to_gguf.py writes): architecture
/// "llama" (Llama, Mistral, SmolLM2), "qwen2" or "gpt2"; hyperparameters as <c>{arch}.*</c> keys; the byte-level BPE
/// tokenizer as <c>tokenizer.ggml.*</c> (model "gpt2": tokens, token types, merges, special ids) and the chat template.
/// The Llama architecture's rotary embedding in llama.cpp rotates adjacent pairs (x0, x1), HF's rotates (x_i, x_{i+d/2}):
/// the q and k projection rows of each head are permuted so both compute the same attention. Qwen2 uses the half-split
/// rotation in llama.cpp too and is written unpermuted.
/// </summary>
public static class GgufExport
{
    /// <summary>Parses an --outtype value: f32, f16 or q8_0.</summary>
    public static GgmlType ParseType(string s) => s.ToLowerInvariant() switch
    {
        "f32" => GgmlType.F32,
        "f16" => GgmlType.F16,
        "q8_0" or "q8" => GgmlType.Q8_0,
        _ => throw new ArgumentException($"GGUF type '{s}' is not supported (f32, f16, q8_0)"),
    };

    /// <summary>llama.cpp's general.file_type of a whole-file type (LLAMA_FTYPE_ALL_F32 0, MOSTLY_F16 1, MOSTLY_Q8_0 7).</summary>
    static uint FileType(GgmlType t) => t switch { GgmlType.F32 => 0u, GgmlType.F16 => 1u, _ => 7u };

    /// <summary>Exports <paramref name="src"/> (a run, LoRA adapter merged, or an HF folder) to <paramref name="outPath"/>
    /// (a .gguf file, or a folder that gets model.gguf) and an Ollama Modelfile beside it. Returns the file written.</summary>
    public static string Export(ExportSource src, string outPath, GgmlType type, string? name = null)
    {
        var model = HfExport.Load(src);
        var tokenizer = src.TokenizerSource != null ? TokenizerLoader.Load(src.TokenizerSource)
            : throw new ArgumentException($"{src.ModelDir}: no tokenizer to put in the GGUF file; pass --tokenizer <folder|gpt2>");
        string? tokDir = src.TokenizerSource != null && Directory.Exists(src.TokenizerSource) ? src.TokenizerSource : null;
        string file = outPath.EndsWith(".gguf", StringComparison.OrdinalIgnoreCase) ? outPath : Path.Combine(outPath, "model.gguf");
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(file))!);
        Write(model, tokenizer, tokDir, file, type, name ?? Path.GetFileName(Path.TrimEndingDirectorySeparator(src.ModelDir)));
        WriteModelfile(Path.Combine(Path.GetDirectoryName(Path.GetFullPath(file))!, "Modelfile"), Path.GetFileName(file), tokenizer);
        return file;
    }

    /// <summary>Writes <paramref name="model"/> (a causal LM) and <paramref name="tokenizer"/> as one GGUF file.
    /// <paramref name="tokenizerDir"/>, when given, supplies tokenizer_config.json's chat_template and add_bos_token.</summary>
    public static void Write(ITaskModel model, ITokenizer tokenizer, string? tokenizerDir, string file, GgmlType type, string name)
    {
        if (model.Task != "causal-lm") throw new ArgumentException($"GGUF export needs a causal LM; this model is a '{model.Task}' model");
        var g = new GgufWriter();
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var sd = model.Module.state_dict();
        float[] Values(Tensor t) => t.detach().to(float32).cpu().contiguous().data<float>().ToArray();
        // Matrices take the file's type; vectors (norms, biases) stay F32 as llama.cpp's convert keeps them;
        // Q8_0 needs rows of a multiple of 32 values, else the matrix is written F16.
        void Put(string ggufName, Tensor t, float[]? values)
        {
            var shape = t.shape;
            var tt = shape.Length < 2 ? GgmlType.F32 : type == GgmlType.Q8_0 && shape[^1] % 32 != 0 ? GgmlType.F16 : type;
            g.AddTensor(ggufName, values ?? Values(t), shape, tt);
        }

        switch (model)
        {
            case Llama llama: WriteLlama(g, llama, sd, Put); break;
            case GPT2LMHeadModel gpt2: WriteGpt2(g, gpt2, sd, Put); break;
            default: throw new NotSupportedException($"GGUF export supports the Llama family and GPT-2, not '{model.ModelType}'");
        }
        WriteTokenizer(g, tokenizer, tokenizerDir, model);
        g.Add("general.name", name);
        g.Add("general.file_type", FileType(type));
        g.Add("general.quantization_version", 2u);
        g.Write(file);
    }

    static void WriteLlama(GgufWriter g, Llama m, Dictionary<string, Tensor> sd, Action<string, Tensor, float[]?> tensor)
    {
        var c = m.Cfg;
        string arch = c.model_type == "qwen2" ? "qwen2" : "llama";
        g.Add("general.architecture", arch);
        g.Add($"{arch}.context_length", (uint)c.max_position_embeddings);
        g.Add($"{arch}.embedding_length", (uint)c.hidden_size);
        g.Add($"{arch}.block_count", (uint)c.num_hidden_layers);
        g.Add($"{arch}.feed_forward_length", (uint)c.intermediate_size);
        g.Add($"{arch}.attention.head_count", (uint)c.num_attention_heads);
        g.Add($"{arch}.attention.head_count_kv", (uint)c.KvHeads);
        g.Add($"{arch}.attention.layer_norm_rms_epsilon", (float)c.rms_norm_eps);
        g.Add($"{arch}.rope.freq_base", (float)c.rope_theta);
        g.Add($"{arch}.rope.dimension_count", (uint)c.HeadDim);
        if (c.head_dim is int hd && hd != c.hidden_size / c.num_attention_heads)
        {
            g.Add($"{arch}.attention.key_length", (uint)hd);
            g.Add($"{arch}.attention.value_length", (uint)hd);
        }
        g.Add($"{arch}.vocab_size", (uint)c.vocab_size);
        string? ropeType = c.rope_scaling is { } rs ? (rs["rope_type"] ?? rs["type"])?.GetValue<string>() : null;
        if (ropeType == "linear")
        {
            g.Add($"{arch}.rope.scaling.type", "linear");
            g.Add($"{arch}.rope.scaling.factor", (float)HfConfig.Num(c.rope_scaling!, "factor", "rope_scaling")!.Value);
        }
        else if (ropeType == "llama3")
        {
            // llama.cpp divides each rotary frequency by rope_freqs[i]: the ratio of the plain to the rescaled frequency.
            var plain = Rope.InverseFrequencies(new LlamaConfig { hidden_size = c.hidden_size, num_attention_heads = c.num_attention_heads, head_dim = c.head_dim, rope_theta = c.rope_theta });
            var scaled = Rope.InverseFrequencies(c);
            var factors = plain.Select((f, i) => (float)(f / scaled[i])).ToArray();
            using var ft = torch.tensor(factors);
            tensor("rope_freqs.weight", ft, factors);
        }

        bool permute = arch == "llama";
        tensor("token_embd.weight", sd["model.embed_tokens.weight"], null);
        for (int i = 0; i < c.num_hidden_layers; i++)
        {
            string p = $"model.layers.{i}.", b = $"blk.{i}.";
            tensor(b + "attn_norm.weight", sd[p + "input_layernorm.weight"], null);
            foreach (var (hf, gg, heads) in new[] { ("q_proj", "attn_q", c.num_attention_heads), ("k_proj", "attn_k", c.KvHeads), ("v_proj", "attn_v", 0), ("o_proj", "attn_output", 0) })
                foreach (var kind in new[] { "weight", "bias" })
                {
                    if (!sd.TryGetValue($"{p}self_attn.{hf}.{kind}", out var t)) continue;
                    tensor($"{b}{gg}.{kind}", t, permute && heads > 0 ? PermuteForInterleavedRope(t, heads) : null);
                }
            tensor(b + "ffn_norm.weight", sd[p + "post_attention_layernorm.weight"], null);
            foreach (var (hf, gg) in new[] { ("gate_proj", "ffn_gate"), ("up_proj", "ffn_up"), ("down_proj", "ffn_down") })
                foreach (var kind in new[] { "weight", "bias" })
                    if (sd.TryGetValue($"{p}mlp.{hf}.{kind}", out var t)) tensor($"{b}{gg}.{kind}", t, null);
        }
        tensor("output_norm.weight", sd["model.norm.weight"], null);
        // Tied embeddings: no output.weight; llama.cpp then uses token_embd for the output, as HF does.
        if (sd.TryGetValue("lm_head.weight", out var head)) tensor("output.weight", head, null);
    }

    /// <summary>HF's q/k rows per head are [rotary first halves | second halves]; llama.cpp's "llama" rope rotates
    /// adjacent pairs. Row r = 2j + s of a head (s = 0, 1) takes HF's row j + s·d/2: (heads, 2, d/2, in) → (heads, d/2, 2, in).
    /// The same for a bias vector.</summary>
    public static float[] PermuteForInterleavedRope(Tensor w, int heads)
    {
        long rows = w.shape[0], rest = w.numel() / rows, hd = rows / heads;
        var permuted = w.detach().to(float32).cpu().reshape(heads, 2, hd / 2, rest).transpose(1, 2).contiguous();
        return permuted.data<float>().ToArray();
    }

    static void WriteGpt2(GgufWriter g, GPT2LMHeadModel m, Dictionary<string, Tensor> sd, Action<string, Tensor, float[]?> tensor)
    {
        var c = m.Cfg;
        if (c.activation_function is not ("gelu_new" or "gelu_pytorch_tanh" or "gelu_fast"))
            throw new NotSupportedException($"llama.cpp's gpt2 uses the tanh GELU; activation_function '{c.activation_function}' cannot be exported");
        if (c.scale_attn_by_inverse_layer_idx) throw new NotSupportedException("llama.cpp's gpt2 has no scale_attn_by_inverse_layer_idx");
        g.Add("general.architecture", "gpt2");
        g.Add("gpt2.context_length", (uint)c.n_positions);
        g.Add("gpt2.embedding_length", (uint)c.n_embd);
        g.Add("gpt2.feed_forward_length", (uint)c.InnerSize);
        g.Add("gpt2.block_count", (uint)c.n_layer);
        g.Add("gpt2.attention.head_count", (uint)c.n_head);
        g.Add("gpt2.attention.layer_norm_epsilon", (float)c.layer_norm_epsilon);
        // Our Linear weights are (out, in) already: HF's Conv1D [in, out] layout was transposed on load.
        tensor("token_embd.weight", sd["transformer.wte.weight"], null);
        tensor("position_embd.weight", sd["transformer.wpe.weight"], null);
        for (int i = 0; i < c.n_layer; i++)
        {
            string p = $"transformer.h.{i}.", b = $"blk.{i}.";
            foreach (var (hf, gg) in new[] { ("ln_1", "attn_norm"), ("attn.c_attn", "attn_qkv"), ("attn.c_proj", "attn_output"), ("ln_2", "ffn_norm"), ("mlp.c_fc", "ffn_up"), ("mlp.c_proj", "ffn_down") })
            {
                tensor($"{b}{gg}.weight", sd[$"{p}{hf}.weight"], null);
                tensor($"{b}{gg}.bias", sd[$"{p}{hf}.bias"], null);
            }
        }
        tensor("output_norm.weight", sd["transformer.ln_f.weight"], null);
        tensor("output_norm.bias", sd["transformer.ln_f.bias"], null);
        tensor("output.weight", sd.TryGetValue("lm_head.weight", out var head) ? head : sd["transformer.wte.weight"], null);
    }

    /// <summary>llama.cpp's pre-tokenizer name for a byte-level BPE pattern (tokenizer.ggml.pre).</summary>
    public static string PreTokenizerName(ByteLevelBpeTokenizer t) => t.PreTokenizer switch
    {
        ByteLevelPreTokenizer.Gpt2 => "gpt-2",
        ByteLevelPreTokenizer.Llama3 => "llama-bpe",
        ByteLevelPreTokenizer.Qwen2 => "qwen2",
        ByteLevelPreTokenizer.SmolLM => "smollm",
        _ => throw new NotSupportedException("a byte-level BPE pre-tokenizer pattern llama.cpp does not name; it cannot be exported to GGUF"),
    };

    static void WriteTokenizer(GgufWriter g, ITokenizer tokenizer, string? tokenizerDir, ITaskModel model)
    {
        if (tokenizer is not ByteLevelBpeTokenizer bpe)
            throw new NotSupportedException($"GGUF export writes byte-level BPE tokenizers (tokenizer.ggml.model \"gpt2\"); this one is '{tokenizer.Kind}'");
        int vocab = model is ICausalLM lm ? lm.VocabSize : bpe.VocabSize;
        if (bpe.VocabSize > vocab) throw new ArgumentException($"the tokenizer has {bpe.VocabSize} ids, the model's vocab_size is {vocab}");
        var tokens = new List<string>(vocab);
        var types = new List<int>(vocab);
        var special = bpe.SpecialTokenIds;
        for (int id = 0; id < vocab; id++)
        {
            // llama.cpp's token types: 1 normal, 3 control (special), 4 user-defined (added, not special), 5 unused (padding rows).
            string? t = bpe.IdToToken(id);
            if (t == null) { tokens.Add($"[PAD{id}]"); types.Add(5); }
            else { tokens.Add(t); types.Add(special.Contains(id) ? 3 : bpe.IsAddedToken(id) ? 4 : 1); }
        }
        g.Add("tokenizer.ggml.model", "gpt2");
        g.Add("tokenizer.ggml.pre", PreTokenizerName(bpe));
        g.Add("tokenizer.ggml.tokens", tokens);
        g.Add("tokenizer.ggml.token_type", types);
        g.Add("tokenizer.ggml.merges", bpe.Merges.Select(m => m.A + " " + m.B).ToList());
        var cfg = model.Config;
        int? Cfg(string key) => cfg[key] is JsonArray a ? (a.Count > 0 ? (int?)a[0]!.GetValue<int>() : null) : HfConfig.Int(cfg, key, "config.json");
        if ((bpe.BosTokenId ?? Cfg("bos_token_id")) is int bos) g.Add("tokenizer.ggml.bos_token_id", (uint)bos);
        if ((bpe.EosTokenId ?? Cfg("eos_token_id")) is int eos) g.Add("tokenizer.ggml.eos_token_id", (uint)eos);
        if ((bpe.PadTokenId ?? Cfg("pad_token_id")) is int pad) g.Add("tokenizer.ggml.padding_token_id", (uint)pad);
        JsonObject? tc = null;
        if (tokenizerDir != null && File.Exists(Path.Combine(tokenizerDir, "tokenizer_config.json")))
            tc = JsonNode.Parse(File.ReadAllText(Path.Combine(tokenizerDir, "tokenizer_config.json"))) as JsonObject;
        // HF: add_bos_token in tokenizer_config.json, or a post-processor that prepends BOS (Llama 3).
        g.Add("tokenizer.ggml.add_bos_token", (tc != null ? HfConfig.Bool(tc, "add_bos_token", "tokenizer_config.json") : null) ?? bpe.AddsBos);
        g.Add("tokenizer.ggml.add_eos_token", false);
        if (tc?["chat_template"] is JsonValue tpl && tpl.GetValueKind() == System.Text.Json.JsonValueKind.String)
            g.Add("tokenizer.chat_template", tpl.GetValue<string>());
    }

    /// <summary>An Ollama Modelfile: FROM the GGUF file; the stop token; the chat template stays in the GGUF
    /// (tokenizer.chat_template), from which Ollama detects the template of known families.</summary>
    static void WriteModelfile(string path, string ggufFile, ITokenizer tokenizer)
    {
        var sb = new StringBuilder();
        sb.Append("# Ollama Modelfile written by `tasklm export --format gguf`: ollama create <name> -f Modelfile\n");
        sb.Append($"FROM ./{ggufFile}\n");
        if (tokenizer.EosTokenId is int eos && tokenizer.IdToToken(eos) is string eosText)
            sb.Append($"PARAMETER stop \"{eosText.Replace("\\", "\\\\").Replace("\"", "\\\"")}\"\n");
        File.WriteAllText(path, sb.ToString());
    }
}
