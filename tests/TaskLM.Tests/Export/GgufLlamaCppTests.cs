// GGUF export checked by llama.cpp itself (LLamaSharp + its CPU backend): tiny random models of the Llama family (GQA)
// and GPT-2 give the same next-token logits and greedy continuations in llama.cpp as in TaskLM.
using LLama;
using LLama.Common;
using LLama.Native;
using TaskLM.Data.Tokenization;
using TaskLM.Export;
using TaskLM.Models;
using TaskLM.Native;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace TaskLM.Tests.Export;

public sealed class GgufLlamaCppTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("tasklm-gguf").FullName;
    readonly ITestOutputHelper _out;

    static GgufLlamaCppTests()
    {
        TorchBackend.EnsureLoaded();
        NativeLibraryConfig.All.WithLogCallback((level, message) => { });   // llama.cpp's load log is long; keep the test output readable
    }

    public GgufLlamaCppTests(ITestOutputHelper output) => _out = output;

    public void Dispose() { if (Directory.Exists(_dir)) Directory.Delete(_dir, recursive: true); }

    // A prompt of GPT-2 ids (the tiny models speak GPT-2's vocabulary).
    static readonly int[] Prompt = ByteLevelBpeTokenizer.Gpt2().Encode("The quick brown fox jumps over the lazy dog, and 42 cats can't stop it.").ToArray();

    /// <summary>A tiny random causal LM saved as an HF folder with GPT-2's tokenizer beside it.</summary>
    string TinyModel(string preset, Dictionary<string, object> overrides)
    {
        manual_seed(7);
        var model = PreTrainedModel.FromPreset(preset, "causal-lm", overrides, seed: 7);
        string folder = Path.Combine(_dir, preset);
        model.SavePretrained(folder);
        ByteLevelBpeTokenizer.Gpt2().Save(folder);
        return folder;
    }

    static Dictionary<string, object> LlamaTiny(string variant = "llama")
    {
        // GPT-2's vocabulary so llama.cpp gets a real tokenizer; wider init so logits spread (argmax margins are wide).
        var o = new Dictionary<string, object>
        {
            ["model_type"] = variant.Split('-')[0], ["vocab_size"] = 50257, ["bos_token_id"] = 50256, ["eos_token_id"] = 50256,
            ["initializer_range"] = 0.1, ["max_position_embeddings"] = 128,
        };
        if (variant.Contains("-untied")) o["tie_word_embeddings"] = false;
        // Llama 3.1's scaling with a short original context (16), so the 18 prompt positions cross all three bands.
        if (variant.Contains("-llama3rope"))
            o["rope_scaling"] = System.Text.Json.Nodes.JsonNode.Parse("""{"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 16}""")!;
        if (variant.Contains("-linear")) o["rope_scaling"] = System.Text.Json.Nodes.JsonNode.Parse("""{"type": "linear", "factor": 2.0}""")!;
        if (variant.Contains("-bias")) o["attention_bias"] = true;   // q/k biases are permuted like their weights
        if (variant.Contains("-theta")) o["rope_theta"] = 500000.0;
        return o;
    }

    static Dictionary<string, object> Gpt2Tiny() => new() { ["initializer_range"] = 0.1, ["n_positions"] = 128 };

    /// <summary>TaskLM's logits (T, V) for the prompt, from the exported folder as inference loads it. With
    /// <paramref name="ggmlGelu"/>, GPT-2's GELU sees and gives float16-rounded values, as ggml's CPU GELU does (it looks
    /// the result up in a float16 table indexed by the float16 input): that isolates the one place llama.cpp's F32 path
    /// is not F32.</summary>
    static float[][] TaskLMLogits(string folder, int[] ids, bool ggmlGelu = false)
    {
        var lm = (ICausalLM)ModelFactory.ForInference(folder, "causal-lm");
        if (ggmlGelu)
        {
            // GPT2MLP's activation, swapped by reflection for this diagnostic only.
            var act = typeof(GPT2MLP).GetField("_act", System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Instance)!;
            static Tensor Half(Tensor x) => x.to(ScalarType.Float16).to(ScalarType.Float32);
            foreach (var (_, m) in lm.Module.named_modules())
                if (m is GPT2MLP mlp)
                    act.SetValue(mlp, (Func<Tensor, Tensor>)(h => Half(TorchSharp.torch.nn.functional.gelu(Half(h), TorchSharp.Modules.GELU.Approximate.tanh))));
        }
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var logits = lm.Logits(tensor(ids.Select(i => (long)i).ToArray(), [1, ids.Length])).squeeze(0);   // (T, V)
        return Enumerable.Range(0, ids.Length).Select(t => logits[t].data<float>().ToArray()).ToArray();
    }

    /// <summary>A llama.cpp context that keeps F32 precision where the file is F32: its default KV cache is F16 (7e-3 off on
    /// these logits), and flash attention on CPU also works in F16.</summary>
    static ModelParams ContextParams(string gguf) => new(gguf)
    {
        ContextSize = 128, BatchSize = 128, Threads = 2, BatchThreads = 2,
        TypeK = GGMLType.GGML_TYPE_F32, TypeV = GGMLType.GGML_TYPE_F32, FlashAttention = false,
    };

    /// <summary>llama.cpp's logits (T, V) for the prompt: one batch, logits requested at every position.</summary>
    static float[][] LlamaCppLogits(string gguf, int[] ids, out int vocab)
    {
        using var weights = LLamaWeights.LoadFromFile(new ModelParams(gguf) { GpuLayerCount = 0 });
        using var ctx = weights.CreateContext(ContextParams(gguf));
        vocab = weights.Vocab.Count;
        var batch = new LLamaBatch();
        for (int i = 0; i < ids.Length; i++) batch.Add(ids[i], i, LLamaSeqId.Zero, true);
        var r = ctx.NativeHandle.Decode(batch);
        Assert.Equal(DecodeResult.Ok, r);
        return Enumerable.Range(0, ids.Length).Select(i => ctx.NativeHandle.GetLogitsIth(i).ToArray()).ToArray();
    }

    /// <summary>llama.cpp's greedy continuation: argmax of the last logits, fed back one token at a time.</summary>
    static List<int> LlamaCppGreedy(string gguf, int[] prompt, int n)
    {
        using var weights = LLamaWeights.LoadFromFile(new ModelParams(gguf) { GpuLayerCount = 0 });
        using var ctx = weights.CreateContext(ContextParams(gguf));
        var batch = new LLamaBatch();
        for (int i = 0; i < prompt.Length; i++) batch.Add(prompt[i], i, LLamaSeqId.Zero, i == prompt.Length - 1);
        Assert.Equal(DecodeResult.Ok, ctx.NativeHandle.Decode(batch));
        var outIds = new List<int>();
        int pos = prompt.Length;
        for (int k = 0; k < n; k++)
        {
            var logits = ctx.NativeHandle.GetLogitsIth(batch.TokenCount - 1).ToArray();
            int next = Array.IndexOf(logits, logits.Max());
            outIds.Add(next);
            batch.Clear();
            batch.Add(next, pos++, LLamaSeqId.Zero, true);
            Assert.Equal(DecodeResult.Ok, ctx.NativeHandle.Decode(batch));
        }
        return outIds;
    }

    /// <summary>Max and mean |a - b|, max |a|, and the argmax agreement at the positions whose top-2 margin in
    /// <paramref name="a"/> exceeds <paramref name="margin"/> (a near-tie may flip within the tolerance).</summary>
    static (double maxAbs, double meanAbs, double maxLogit, int same, int clear) Compare(float[][] a, float[][] b, double margin)
    {
        double max = 0, sum = 0, scale = 0;
        int same = 0, clear = 0;
        for (int t = 0; t < a.Length; t++)
        {
            for (int v = 0; v < a[t].Length; v++) { double d = Math.Abs(a[t][v] - b[t][v]); max = Math.Max(max, d); sum += d; scale = Math.Max(scale, Math.Abs(a[t][v])); }
            var top2 = a[t].OrderDescending().Take(2).ToArray();
            if (top2[0] - top2[1] <= margin) continue;
            clear++;
            if (Array.IndexOf(a[t], a[t].Max()) == Array.IndexOf(b[t], b[t].Max())) same++;
        }
        return (max, sum / (a.Length * (double)a[0].Length), scale, same, clear);
    }

    public static TheoryData<string, string, string, double> Cases => new()
    {
        // preset, model_type, GGUF type, tolerance on max |logit difference| over all positions and ids (logits span
        // about ±5.5). F32: llama.cpp computes in F32 (its F16 KV cache is turned off above): Llama family measured
        // 7e-6. GPT-2 F32: ggml's CPU GELU rounds its input and output through float16 (measured 2.1e-3); with that
        // rounding reproduced on TaskLM's side (gpt2-ggml-gelu) the difference falls to 6.0e-4 (mean 2.9e-4 → 5.6e-5). F16 and Q8_0:
        // llama.cpp also rounds the activations to the weight type in its matrix products (F16 measured 1.0e-2;
        // Q8_0 2.8e-1 Llama, 1.3e-1 GPT-2, about 20x F16 as the step sizes predict), and the argmax must still agree.
        { "llama-tiny", "llama", "f32", 1e-4 },
        { "llama-tiny", "qwen2", "f32", 1e-4 },
        { "llama-tiny", "mistral", "f32", 1e-4 },
        { "llama-tiny", "llama-untied-llama3rope-theta", "f32", 1e-4 },
        { "llama-tiny", "llama-linear-bias", "f32", 1e-4 },
        { "gpt2-tiny", "gpt2", "f32", 3e-3 },
        { "gpt2-tiny", "gpt2-ggml-gelu", "f32", 1e-3 },
        { "llama-tiny", "llama", "f16", 2e-2 },
        { "gpt2-tiny", "gpt2", "f16", 2e-2 },
        { "llama-tiny", "llama", "q8_0", 0.4 },
        { "llama-tiny", "qwen2", "q8_0", 0.4 },
        { "gpt2-tiny", "gpt2", "q8_0", 0.4 },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void Llama_cpp_computes_the_same_logits_from_the_exported_file(string preset, string modelType, string type, double tolerance)
    {
        bool gpt2 = modelType.StartsWith("gpt2", StringComparison.Ordinal);
        string folder = TinyModel(preset, gpt2 ? Gpt2Tiny() : LlamaTiny(modelType));
        string gguf = GgufExport.Export(HfExport.Resolve(folder), Path.Combine(_dir, $"out-{modelType}-{type}"), GgufExport.ParseType(type));
        Assert.True(File.Exists(Path.Combine(Path.GetDirectoryName(gguf)!, "Modelfile")));

        var want = TaskLMLogits(folder, Prompt, ggmlGelu: modelType == "gpt2-ggml-gelu");
        var got = LlamaCppLogits(gguf, Prompt, out int vocab);
        Assert.Equal(50257, vocab);
        double margin = Math.Min(2 * tolerance, 0.1);   // quantized: a few times the mean difference
        var (diff, mean, scale, same, clear) = Compare(want, got, margin);
        _out.WriteLine($"{preset} ({modelType}) {type}: max |logit diff| {diff:E2}, mean {mean:E2}, over {Prompt.Length} positions x {vocab}; max |logit| {scale:F2}; argmax agrees at {same}/{clear} positions with a top-2 margin over {margin:G2}");
        Assert.True(scale > 1, $"logits too flat to test ({scale})");
        Assert.True(diff < tolerance, $"llama.cpp's logits differ from TaskLM's by {diff:E3} (tolerance {tolerance:E1})");
        Assert.True(clear >= Prompt.Length / 2, $"only {clear} positions have a clear argmax");
        Assert.Equal(clear, same);
    }

    [Theory]
    [InlineData("llama-tiny", "llama")]
    [InlineData("gpt2-tiny", "gpt2")]
    public void Greedy_continuations_are_identical_in_llama_cpp(string preset, string modelType)
    {
        string folder = TinyModel(preset, modelType == "gpt2" ? Gpt2Tiny() : LlamaTiny(modelType));
        string gguf = GgufExport.Export(HfExport.Resolve(folder), Path.Combine(_dir, "greedy.gguf"), GgmlType.F32);
        var model = ModelFactory.ForInference(folder, "causal-lm");
        var ours = Generation.Generate(model, [Prompt], new GenerationOptions { MaxNewTokens = 12, EosTokenId = -1 })[0];
        var theirs = LlamaCppGreedy(gguf, Prompt, 12);
        _out.WriteLine($"TaskLM: {string.Join(" ", ours)}\nllama.cpp: {string.Join(" ", theirs)}");
        Assert.Equal(ours, theirs);
    }

    static readonly string[] TokenizerProbes =
    [
        "Hello world", "The year 2024 isn't 1999!", "12345678 and 3.14159", "I'LL say DON'T, we've you'd",
        "  two  spaces\nand a newline\n\n\nend  ", "naïve café – ünïcödé 東京", "tabs\tand\r\nCRLF", "<|endoftext|>after",
        "emoji 🤗🚀 ok", "x=1;y+=22;  // c0de", "   ", "a\n\n  \n b",
    ];

    /// <summary>GPT-2's vocabulary and merges behind another byte-level pre-tokenizer, as tokenizer.json names it.</summary>
    string TokenizerVariant(string folder, string variant)
    {
        string path = Path.Combine(folder, "tokenizer.json");
        var root = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        System.Text.Json.Nodes.JsonObject Split(string pattern) => new()
        {
            ["type"] = "Sequence",
            ["pretokenizers"] = new System.Text.Json.Nodes.JsonArray(
                new System.Text.Json.Nodes.JsonObject { ["type"] = "Split", ["pattern"] = new System.Text.Json.Nodes.JsonObject { ["Regex"] = pattern }, ["behavior"] = "Isolated", ["invert"] = false },
                new System.Text.Json.Nodes.JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["trim_offsets"] = true, ["use_regex"] = false }),
        };
        switch (variant)
        {
            case "llama3": root["pre_tokenizer"] = Split(ByteLevel.Llama3Pattern); root["model"]!["ignore_merges"] = true; break;
            case "qwen2": root["pre_tokenizer"] = Split(ByteLevel.Qwen2Pattern); root["normalizer"] = new System.Text.Json.Nodes.JsonObject { ["type"] = "NFC" }; break;
            case "smollm":
                root["pre_tokenizer"] = new System.Text.Json.Nodes.JsonObject
                {
                    ["type"] = "Sequence",
                    ["pretokenizers"] = new System.Text.Json.Nodes.JsonArray(
                        new System.Text.Json.Nodes.JsonObject { ["type"] = "Digits", ["individual_digits"] = true },
                        new System.Text.Json.Nodes.JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["trim_offsets"] = true, ["use_regex"] = true }),
                };
                break;
        }
        File.WriteAllText(path, root.ToJsonString());
        File.Delete(Path.Combine(folder, "vocab.json"));   // tokenizer.json wins anyway; keep one source of truth
        File.Delete(Path.Combine(folder, "merges.txt"));
        return folder;
    }

    /// <summary>llama.cpp's own pre-tokenizers (its unicode regex engine, chosen by tokenizer.ggml.pre) against
    /// TaskLM's, each running the same vocabulary and merges: GPT-2's pattern, Llama 3's (digits in threes,
    /// case-insensitive contractions, ignore_merges), Qwen2's (single digits) and SmolLM's (Digits pre-tokenizer).</summary>
    [Theory]
    [InlineData("gpt2", "gpt-2")]
    [InlineData("llama3", "llama-bpe")]
    [InlineData("qwen2", "qwen2")]
    [InlineData("smollm", "smollm")]
    public void Llama_cpp_tokenizes_text_as_the_exported_tokenizer_does(string variant, string pre)
    {
        string folder = TokenizerVariant(TinyModel("llama-tiny", LlamaTiny()), variant);
        var tok = (ByteLevelBpeTokenizer)TokenizerLoader.Load(folder);
        Assert.Equal(pre, GgufExport.PreTokenizerName(tok));
        string gguf = GgufExport.Export(HfExport.Resolve(folder), Path.Combine(_dir, $"tok-{variant}.gguf"), GgmlType.F16);
        Assert.Equal(pre, GgufFile.Read(gguf).Metadata["tokenizer.ggml.pre"]);
        using var weights = LLamaWeights.LoadFromFile(new ModelParams(gguf) { GpuLayerCount = 0 });
        // The variants must split differently from GPT-2 somewhere in the probes, or the check would prove nothing.
        var gpt2 = ByteLevelBpeTokenizer.Gpt2();
        int differ = TokenizerProbes.Count(t => !gpt2.Encode(t).SequenceEqual(tok.Encode(t)));
        Assert.True(variant == "gpt2" ? differ == 0 : differ >= 2, $"{variant}: {differ} probes split differently from GPT-2");
        foreach (var text in TokenizerProbes)
        {
            var theirs = weights.Tokenize(text, false, true, System.Text.Encoding.UTF8).Select(t => (int)t).ToArray();
            var ours = tok.Encode(text).ToArray();
            Assert.True(ours.SequenceEqual(theirs), $"{variant} '{text}': TaskLM [{string.Join(", ", ours)}], llama.cpp [{string.Join(", ", theirs)}]");
            Assert.Equal(text, tok.Decode(ours));
        }
    }

    [Fact]
    public void The_cli_exports_q8_0_gguf_with_a_modelfile_and_generates_from_a_llama_folder()
    {
        string folder = TinyModel("llama-tiny", LlamaTiny());
        string outDir = Path.Combine(_dir, "cli");
        var r = CliRunner.Run("export", "--model", folder, "--format", "gguf", "--outtype", "q8_0", "--out", outDir, "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        string file = System.Text.Json.Nodes.JsonNode.Parse(r.Stdout)!["out"]!.GetValue<string>();
        Assert.Equal(Path.Combine(Path.GetFullPath(outDir), "model.gguf"), file);
        var g = GgufFile.Read(file);
        Assert.Equal("llama", g.Metadata["general.architecture"]);
        Assert.Equal(7L, g.Metadata["general.file_type"]);                      // MOSTLY_Q8_0
        Assert.Equal(2L, g.Metadata["llama.attention.head_count_kv"]);
        Assert.Equal(GgmlType.Q8_0, g.Tensors["blk.0.attn_k.weight"].Type);
        Assert.Equal([128L, 64L], g.Tensors["blk.0.attn_k.weight"].Ne);        // ggml order: (in, out) for a (64, 128) weight
        Assert.Equal(GgmlType.F32, g.Tensors["blk.0.attn_norm.weight"].Type);
        Assert.False(g.Tensors.ContainsKey("output.weight"));                   // tied
        Assert.Equal(50257, ((List<object>)g.Metadata["tokenizer.ggml.tokens"]).Count);
        Assert.Equal(50256L, g.Metadata["tokenizer.ggml.eos_token_id"]);
        string modelfile = File.ReadAllText(Path.Combine(outDir, "Modelfile"));
        Assert.Contains("FROM ./model.gguf", modelfile);
        Assert.Contains("PARAMETER stop \"<|endoftext|>\"", modelfile);

        var gen = CliRunner.Run("generate", "--model", folder, "--prompt", "The quick brown fox", "--greedy", "--max-new-tokens", "5", "--json");
        Assert.True(gen.ExitCode == 0, gen.Stderr);
        Assert.Contains("\"new_ids\"", gen.Stdout.Replace(" ", ""), StringComparison.OrdinalIgnoreCase);
    }
}
