// `tasklm bench train|predict|generate|tokenize`: speed of TaskLM's own training step, inference, generation and tokenizer, as figures (never pass/fail).
using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using TokenizerLoader = TaskLM.Data.Tokenization.TokenizerLoader;
using TaskLM.Hf;
using TaskLM.Models;
using TaskLM.Native;
using TaskLM.Recipes;
using TaskLM.Serving;
using TaskLM.Tasks;
using TaskLM.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace TaskLM.Cli.Commands;

public static class BenchCommand
{
    public static Command Create()
    {
        var cmd = new Command("bench", "Measure training-step, prediction, generation and tokenizer speed on this machine (figures, one JSON line each with --json)");
        cmd.Subcommands.Add(Train());
        cmd.Subcommands.Add(Predict());
        cmd.Subcommands.Add(Generate());
        cmd.Subcommands.Add(Tokenize());
        return cmd;
    }

    /// <summary>bench train's and bench generate's model: any model source (a preset at random init, a folder, a run, a Hub
    /// id, a NuGet model), shown as --model SPEC as on every model verb; --preset is its old name.</summary>
    static Option<string> ModelOpt() => new("--model", "--preset") { Description = "Model: a preset (random init), an HF folder, a run, a Hub id or a NuGet model name", DefaultValueFactory = _ => "gpt2-mini", HelpName = Global.ModelOption.Label };
    static Option<int> IntOpt(string name, string desc, int dflt) => new(name) { Description = desc, DefaultValueFactory = _ => dflt };

    // ---------------------------------------------------------------- train

    static Command Train()
    {
        var model = ModelOpt();
        var task = new Option<string?>("--task") { Description = "classification | token-classification | causal-lm | masked-lm (default: the model's own task; a preset's language-model task)" };
        var config = new Option<string[]>("--config") { Description = "Config overrides key=value (e.g. num_hidden_layers=6 hidden_size=384: another shape of a preset)", AllowMultipleArgumentsPerToken = true };
        var batch = IntOpt("--batch", "Sequences per step", 4);
        var seq = IntOpt("--seq", "Tokens per sequence", 128);
        var steps = IntOpt("--steps", "Timed optimizer steps", 10);
        var warmup = IntOpt("--warmup", "Untimed steps first (allocation, caches)", 2);
        var gemm = IntOpt("--gemm-size", "Largest side of the square fp32/bf16 matrix multiply timed beside the run (the rate MFU is against); smaller where one product would take over a second", 2048);
        var dropout = new Option<double?>("--dropout") { Description = "Override the model's dropout (0 = off, as the plain references); default: the model's" };
        var checkpointing = new Option<bool>("--gradient-checkpointing") { Description = "Recompute each block's activations in backward (training.gradient_checkpointing)" };
        var precision = new Option<string>("--precision") { Description = "fp32 | bf16 (training.precision: bf16 weights, fp32 masters in AdamW)", DefaultValueFactory = _ => "fp32" };
        var json = Global.JsonOption();
        var cmd = new Command("train", "Time TaskLM's real training step (the Trainer: forward, backward, grad norm, clipping, AdamW) on random token ids");
        foreach (var o in new Option[] { model, task, config, batch, seq, steps, warmup, gemm, dropout, checkpointing, precision, json }) cmd.Options.Add(o);
        cmd.SetAction(p =>
        {
            var device = Global.StartTorch(p);
            int b = p.GetValue(batch), t = p.GetValue(seq), n = p.GetValue(steps), w = p.GetValue(warmup), g = p.GetValue(gemm);
            if (b < 1 || t < 2 || n < 1 || w < 0 || g < 64) throw new ArgumentException("--batch, --steps must be >= 1, --seq >= 2, --warmup >= 0, --gemm-size >= 64");
            string prec = p.GetValue(precision)!;
            if (prec is not ("fp32" or "bf16")) throw new ArgumentException($"--precision: '{prec}' is not one of fp32 | bf16");
            var r = BenchTrain(p.GetValue(model)!, p.GetValue(task), ConfigOverrides(p.GetValue(config)), b, t, n, w, p.GetValue(dropout), device,
                p.GetValue(checkpointing), prec, g);
            Emit(r, p.GetValue(json), $"train {r["model"]} {r["task"]} ({r["params"]:N0} params) batch {b} x {t}, {r["precision"]}, {r["device"]}, {r["threads"]} threads: " +
                $"{r["ms_per_step"]} ms/step, {r["tokens_per_s"]} tokens/s, {r["tflops"]} TFLOP/s, MFU {r["mfu"]} of {r["matmul_gflops"]} GFLOP/s {prec} GEMM, peak RSS {r["peak_rss_mb"]} MB");
            return 0;
        });
        return cmd;
    }

    /// <summary>--config key=value pairs as config overrides (values as a recipe's model.config gives them: numbers, booleans, strings).</summary>
    static Dictionary<string, object> ConfigOverrides(string[]? pairs)
    {
        var ov = new Dictionary<string, object>();
        foreach (var kv in pairs ?? [])
        {
            int eq = kv.IndexOf('=');
            if (eq <= 0) throw new ArgumentException($"--config {kv}: expected key=value, e.g. num_hidden_layers=6");
            string value = kv[(eq + 1)..];
            JsonNode? node;
            try { node = JsonNode.Parse(value); } catch (JsonException) { node = JsonValue.Create(value); }
            ov[kv[..eq]] = node ?? JsonValue.Create(value)!;
        }
        return ov;
    }

    /// <summary>Builds the model (any model source, with the task's head), a Trainer with HF-grouped AdamW, clipping at
    /// 1.0 and a constant lr on random ids (random labels for the heads), and times each whole optimizer step (loop
    /// included) after the warm-up steps; the fp32 and bf16 GEMM rates are measured in the same process for MFU.</summary>
    static JsonObject BenchTrain(string spec, string? taskAsked, Dictionary<string, object> overrides, int b, int t, int steps, int warmup, double? dropout, Device device,
        bool gradientCheckpointing = false, string precision = "fp32", int gemmSize = 2048)
    {
        var source = ModelSource.Resolve(spec);
        string family = source.ModelType ?? "bert";
        string task = taskAsked ?? (source.Kind == ModelSourceKind.Preset ? null : source.Task) ?? (family == "bert" ? "masked-lm" : "causal-lm");
        if (task is not (TaskNames.Classification or TaskNames.TokenClassification or TaskNames.CausalLm or TaskNames.MaskedLm))
            throw new ArgumentException($"--task {task}: use classification, token-classification, causal-lm or masked-lm");
        var ov = new Dictionary<string, object>(overrides);
        if (dropout is double d)
        {
            if (family == "gpt2") { ov["resid_pdrop"] = d; ov["embd_pdrop"] = d; ov["attn_pdrop"] = d; }
            else { ov["hidden_dropout_prob"] = d; ov["attention_probs_dropout_prob"] = d; }
        }
        bool heads = task is TaskNames.Classification or TaskNames.TokenClassification;
        manual_seed(0);
        var model = source.Load(task, numLabels: heads ? 2 : null, labels: heads ? ["a", "b"] : null, overrides: ov);
        model.Module.to(device);
        model.Module.train();
        if (gradientCheckpointing) ActivationCheckpoint.Enable(model.Module);
        var masters = precision == "bf16" ? MixedPrecision.CastToBf16(model.Module) : null;
        int vocab = model.VocabSize;
        int positions = model.MaxPositions;
        if (t > positions) throw new ArgumentException($"--seq {t} is longer than the model's {positions} positions");
        var rng = new Random(0);
        int total = warmup + steps;
        // Ids past the first 1,000 (BERT's specials and unused tokens live below); a label per sequence or per token.
        int low = Math.Min(1000, vocab / 2);
        var examples = Enumerable.Range(0, b * total).Select(_ => new Example
        {
            InputIds = Enumerable.Range(0, t).Select(_ => rng.Next(low, vocab)).ToArray(),
            Label = task == TaskNames.Classification ? rng.Next(2) : -1,
            TokenLabels = task == TaskNames.TokenClassification ? Enumerable.Range(0, t).Select(_ => rng.Next(2)).ToArray() : null,
        }).ToList();
        var collator = task == TaskNames.MaskedLm
            ? new Collator(task, 0, device) { MaskTokenId = 103, VocabSize = vocab, SpecialIds = new HashSet<int> { 0, 100, 101, 102, 103 } }
            : new Collator(task, 0, device);
        var (decay, noDecay) = AdamW.HfGroups(model.Module, 0.01);
        using var opt = new AdamW([decay, noDecay], masters: masters);
        if (masters != null) foreach (var m in masters.Values) m.Dispose();
        var trainer = new Trainer(model, examples, collator, new BatchPlan(examples.Count, b, 1, shuffle: false, seed: 0), opt,
            new LrSchedule("constant", 1e-4, 0, total), new TrainerOptions { TotalSteps = total, MaxGradNorm = 1.0 });
        var timer = new StepTimer();
        trainer.Callbacks.Add(timer);
        trainer.Train();
        double sec = Median(timer.Seconds.Skip(warmup).ToList());
        var distinct = model.Module.named_parameters().GroupBy(x => x.parameter.Handle).Select(g => g.First()).ToList();
        long nparams = distinct.Sum(x => x.parameter.numel());
        // Embedding tables are looked up, not multiplied: a head over tokens (classifier, tagger) counts only the rest.
        long embedding = distinct.Where(x => IsEmbedding(x.name)).Sum(x => x.parameter.numel());
        double tokens = (double)b * t;
        int layers = ShapeKey(model, "num_hidden_layers") ?? 0;
        int hidden = ShapeKey(model, "hidden_size") ?? 0;
        // Kaplan/PaLM estimate: 6 N per token (forward + backward through every weight that multiplies: for a language
        // model the tied head over the vocabulary, for a classifier or tagger every weight but the embedding tables) plus
        // attention's 12 · L · C · T per token (QK^T and AV, forward + backward).
        double perToken = 6.0 * (heads ? nparams - embedding : nparams) + 12.0 * layers * hidden * t;
        double flops = perToken * tokens;
        var (gemm32, side32) = TorchBackend.MeasureMatmulGflopsUpTo(device, gemmSize, ScalarType.Float32);
        var (gemm16, side16) = TorchBackend.MeasureMatmulGflopsUpTo(device, gemmSize, ScalarType.BFloat16);
        double gflops = precision == "bf16" ? gemm16 : gemm32;
        var r = Shape(spec, model, b, t, device);
        r["model"] = spec;
        r["task"] = task;
        r["params"] = nparams;
        r["non_embedding_params"] = nparams - embedding;
        r["dropout"] = HfConfig.Num(model.Config, "resid_pdrop", HfConfig.FileName) ?? HfConfig.Num(model.Config, "hidden_dropout_prob", HfConfig.FileName);
        r["steps"] = steps;
        r["gradient_checkpointing"] = gradientCheckpointing;
        r["precision"] = precision;
        r["ms_per_step"] = Math.Round(sec * 1000, 2);
        r["tokens_per_s"] = Math.Round(tokens / sec, 1);
        r["ms_per_step_all"] = new JsonArray(timer.Seconds.Skip(warmup).Select(s => (JsonNode)Math.Round(s * 1000, 1)).ToArray());
        r["mflop_per_token"] = Math.Round(perToken / 1e6, 2);
        r["tflops"] = Math.Round(flops / sec / 1e12, 4);
        r["gemm_size_fp32"] = side32;
        r["gemm_size_bf16"] = side16;
        r["gemm_gflops_fp32"] = Math.Round(gemm32, 1);
        r["gemm_gflops_bf16"] = Math.Round(gemm16, 1);
        r["matmul_gflops"] = Math.Round(gflops, 1);
        r["mfu"] = Math.Round(flops / sec / 1e9 / gflops, 3);
        r["peak_rss_mb"] = PeakRssMb();
        r["final_loss"] = Math.Round(timer.LastLoss, 4);
        r["machine"] = Machine();
        return r;
    }

    /// <summary>A parameter that is an embedding table (BERT's word/position/type embeddings, GPT-2's wte/wpe).</summary>
    static bool IsEmbedding(string name) =>
        name.Contains("embeddings.", StringComparison.Ordinal) && !name.Contains("LayerNorm", StringComparison.Ordinal)
        || name.EndsWith("wte.weight", StringComparison.Ordinal) || name.EndsWith("wpe.weight", StringComparison.Ordinal);

    // ---------------------------------------------------------------- predict

    static Command Predict()
    {
        var model = new Global.ModelOption("A trained model: a run, an HF folder, a Hub id, a NuGet model, or an ONNX export (--runtime onnx)");
        var runtime = RuntimeOption.Create();
        var seq = IntOpt("--seq", "Tokens per text (each text is cut to this length, special tokens included)", 128);
        var batches = new Option<int[]>("--batch") { Description = "Texts per call, one run each", DefaultValueFactory = _ => [1, 32], AllowMultipleArgumentsPerToken = true };
        var steps = IntOpt("--steps", "Timed calls per batch size", 20);
        var warmup = IntOpt("--warmup", "Untimed calls first", 2);
        var json = Global.JsonOption();
        var cmd = new Command("predict", "Time inference through TaskLM's in-process model (the serving path): texts/s and p50/p99 latency per call, one run per batch size");
        foreach (var o in new Option[] { model, runtime, seq, batches, steps, warmup, json }) cmd.Options.Add(o);
        cmd.SetAction(p =>
        {
            string spec = model.Read(p)!;
            int t = p.GetValue(seq), n = p.GetValue(steps), w = p.GetValue(warmup);
            var sizes = p.GetValue(batches) ?? [1, 32];
            if (t < 2 || n < 1 || w < 0 || sizes.Length == 0 || sizes.Any(x => x < 1)) throw new ArgumentException("--seq must be >= 2, --steps and every --batch >= 1, --warmup >= 0");
            // Every batch size in one forward pass, no waiting for more rows: the time is the model's, not the batcher's.
            var opts = RuntimeOption.Start(p, runtime, spec) with { MaxBatchSize = sizes.Max(), BatchWindow = TimeSpan.Zero, MaxLength = t };
            using var m = TaskLMModel.Load(spec, opts);
            // Texts long enough to be cut to --seq tokens by any tokenizer (the model's own truncation, as serving does).
            string text = string.Join(' ', Enumerable.Repeat(string.Join(' ', SampleLines().Take(4)), Math.Max(1, t / 20)));
            Func<IReadOnlyList<string>, Task> call = m.Task switch
            {
                TaskNames.Classification => xs => m.ClassifyAsync(xs),
                TaskNames.TokenClassification => xs => m.TagAsync(xs),
                _ => xs => m.EmbedAsync(xs),
            };
            string op = m.Task switch { TaskNames.Classification => "classify", TaskNames.TokenClassification => "tag", _ => "embed" };
            int tokens = Math.Min(m.CountTokens(text) + 2, m.MaxLength);
            foreach (int b in sizes)
            {
                var texts = Enumerable.Range(0, b).Select(i => $"{i} {text}").ToList();
                for (int i = 0; i < w; i++) call(texts).GetAwaiter().GetResult();
                var lat = new List<double>();
                var all = Stopwatch.StartNew();
                for (int i = 0; i < n; i++)
                {
                    var sw = Stopwatch.StartNew();
                    call(texts).GetAwaiter().GetResult();
                    lat.Add(sw.Elapsed.TotalMilliseconds);
                }
                double wall = all.Elapsed.TotalSeconds;
                var sorted = lat.Order().ToList();
                var r = new JsonObject
                {
                    ["bench"] = "predict", ["model"] = spec, ["task"] = m.Task, ["op"] = op, ["runtime"] = m.Card.Runtime, ["precision"] = m.Card.Precision,
                    ["model_type"] = m.Card.ModelType, ["params"] = m.Card.Parameters, ["batch"] = b, ["seq"] = tokens, ["calls"] = n,
                    ["threads"] = m.Card.Runtime == "torch" ? TorchThreads() : opts.IntraOpThreads,
                    ["texts_per_s"] = Math.Round(b * n / wall, 1), ["tokens_per_s"] = Math.Round((double)b * tokens * n / wall, 0),
                    ["p50_ms"] = Math.Round(Median(lat), 2), ["p99_ms"] = Math.Round(sorted[Math.Min(sorted.Count - 1, (int)Math.Ceiling(0.99 * sorted.Count) - 1)], 2),
                    ["peak_rss_mb"] = PeakRssMb(), ["machine"] = Machine(),
                };
                Emit(r, p.GetValue(json), $"predict {spec} ({m.Task}, {TaskLM.Onnx.CpuInt8.Describe(m.Card.Runtime, m.Card.Precision)}) batch {b} x {tokens} tokens: {r["texts_per_s"]} texts/s, p50 {r["p50_ms"]} ms, p99 {r["p99_ms"]} ms per call");
            }
            return 0;
        });
        return cmd;
    }

    // Apart, so that the onnx path never compiles a method touching TorchSharp's types.
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    static int TorchThreads() => get_num_threads();

    sealed class StepTimer : ITrainerCallback
    {
        readonly Stopwatch _sw = new();
        public List<double> Seconds { get; } = [];
        public double LastLoss { get; private set; }
        public void OnTrainBegin(Trainer t) => _sw.Restart();
        public void OnStep(Trainer t, StepLog log) { Seconds.Add(_sw.Elapsed.TotalSeconds); LastLoss = log.Loss; _sw.Restart(); }
    }

    // ---------------------------------------------------------------- generate

    static Command Generate()
    {
        var preset = ModelOpt();
        var batch = IntOpt("--batch", "Prompts decoded together", 1);
        var seq = IntOpt("--seq", "Prompt length in tokens", 16);
        var steps = IntOpt("--steps", "New tokens per prompt", 64);
        var json = Global.JsonOption();
        var cmd = new Command("generate", "Time greedy decoding with the KV cache; batch 1 on CPU is compared with the memory-bandwidth limit");
        foreach (var o in new Option[] { preset, batch, seq, steps, json }) cmd.Options.Add(o);
        cmd.SetAction(p =>
        {
            var device = Global.StartTorch(p);
            string name = p.GetValue(preset)!;
            int b = p.GetValue(batch), t = p.GetValue(seq), n = p.GetValue(steps);
            // Any causal LM (GPT-2, the Llama family): a preset at random init, or trained weights.
            manual_seed(0);
            var model = ModelSource.Resolve(name).Load(TaskNames.CausalLm) as ICausalLM ?? throw new ArgumentException($"--model {name}: generation needs a causal LM (GPT-2 or the Llama family)");
            model.Module.to(device);
            int vocab = model.VocabSize;
            var rng = new Random(0);
            var prompts = Enumerable.Range(0, b).Select(_ => (IReadOnlyList<int>)Enumerable.Range(0, t).Select(_ => rng.Next(vocab)).ToArray()).ToList();
            var go = new GenerationOptions { MaxNewTokens = n, EosTokenId = -1, UseCache = true };
            Generation.Generate(model, prompts, new GenerationOptions { MaxNewTokens = 4, EosTokenId = -1 });   // warm-up
            var times = new List<double>();
            for (int rep = 0; rep < 3; rep++)
            {
                var sw = Stopwatch.StartNew();
                Generation.Generate(model, prompts, go);
                times.Add(sw.Elapsed.TotalSeconds);
            }
            double sec = Median(times);
            // Each decoded position reads every weight once: bytes per step / copy bandwidth is the fastest a step can be.
            long weightBytes = model.Module.parameters().Select(q => (q.Handle, q.numel() * q.element_size())).Distinct().Sum(x => x.Item2);
            double bw = MeasureCopyBandwidth(device);
            double stepsPerS = n / sec, limit = bw / weightBytes;
            var r = Shape(name, model, b, t, device);
            r["new_tokens"] = n;
            r["ms_per_step"] = Math.Round(1000 / stepsPerS, 2);
            r["tokens_per_s"] = Math.Round(stepsPerS * b, 1);
            r["weight_mb"] = Math.Round(weightBytes / 1e6, 1);
            r["copy_bandwidth_gb_s"] = Math.Round(bw / 1e9, 2);
            r["bandwidth_limit_steps_per_s"] = Math.Round(limit, 1);
            r["fraction_of_bandwidth_limit"] = Math.Round(stepsPerS / limit, 3);
            r["peak_rss_mb"] = PeakRssMb();
            r["machine"] = Machine();
            Emit(r, p.GetValue(json), $"generate {name} batch {b}, prompt {t}, {n} new tokens, {r["device"]}, {r["threads"]} threads: {r["tokens_per_s"]} tokens/s " +
                $"({r["ms_per_step"]} ms/step; weights {r["weight_mb"]} MB at {r["copy_bandwidth_gb_s"]} GB/s copy bandwidth allow {r["bandwidth_limit_steps_per_s"]} steps/s → {r["fraction_of_bandwidth_limit"]} of the limit)");
            return 0;
        });
        return cmd;
    }

    /// <summary>Bytes/s of a large tensor copy (read + write counted once each, as STREAM's copy), median of 5.</summary>
    static double MeasureCopyBandwidth(Device device)
    {
        using var scope = NewDisposeScope();
        long n = 64L << 20;   // 256 MB of fp32: well past every cache
        var a = ones(n, device: device); var c = empty(n, device: device);
        c.copy_(a);
        var times = new List<double>();
        for (int i = 0; i < 5; i++)
        {
            var sw = Stopwatch.StartNew();
            c.copy_(a);
            if (device.type == DeviceType.CUDA) cuda.synchronize(device);
            times.Add(sw.Elapsed.TotalSeconds);
        }
        return 2.0 * n * 4 / Median(times);
    }

    // ---------------------------------------------------------------- tokenize

    static Command Tokenize()
    {
        var tokenizer = new Option<string>("--tokenizer") { Description = "Tokenizer folder or name", DefaultValueFactory = _ => "gpt2" };
        var file = new Option<string?>("--file") { Description = "Text file to encode (default: a built-in English sample, repeated)" };
        var steps = IntOpt("--steps", "Timed passes over the text", 3);
        var json = Global.JsonOption();
        var cmd = new Command("tokenize", "Time a tokenizer's encoding (MB/s, tokens/s) on one thread");
        foreach (var o in new Option[] { tokenizer, file, steps, json }) cmd.Options.Add(o);
        cmd.SetAction(p =>
        {
            var tok = TokenizerLoader.Load(p.GetValue(tokenizer)!);
            string? path = p.GetValue(file);
            if (path != null && !File.Exists(path)) throw new FileNotFoundException($"--file {path}: no such file");
            var lines = path != null ? File.ReadAllLines(path).Where(l => l.Length > 0).ToArray() : SampleLines();
            long bytes = lines.Sum(l => (long)System.Text.Encoding.UTF8.GetByteCount(l));
            long tokens = 0;
            foreach (var l in lines.Take(200)) tok.Encode(l);   // warm-up (regex JIT, caches)
            var times = new List<double>();
            for (int rep = 0; rep < Math.Max(1, p.GetValue(steps)); rep++)
            {
                tokens = 0;
                var sw = Stopwatch.StartNew();
                foreach (var l in lines) tokens += tok.Encode(l).Count;
                times.Add(sw.Elapsed.TotalSeconds);
            }
            double sec = Median(times);
            var r = new JsonObject
            {
                ["bench"] = "tokenize", ["tokenizer"] = p.GetValue(tokenizer), ["kind"] = tok.Kind, ["vocab_size"] = tok.VocabSize,
                ["lines"] = lines.Length, ["bytes"] = bytes, ["tokens"] = tokens, ["threads"] = 1,
                ["mb_per_s"] = Math.Round(bytes / sec / 1e6, 2), ["tokens_per_s"] = Math.Round(tokens / sec, 0),
                ["ms_per_step"] = Math.Round(sec * 1000, 1), ["peak_rss_mb"] = PeakRssMb(), ["machine"] = Machine(),
            };
            Emit(r, p.GetValue(json), $"tokenize {r["tokenizer"]} ({r["kind"]}): {r["mb_per_s"]} MB/s, {r["tokens_per_s"]} tokens/s over {bytes:N0} bytes");
            return 0;
        });
        return cmd;
    }

    static string[] SampleLines()
    {
        string[] s =
        [
            "The quick brown fox jumps over the lazy dog, and the dog doesn't mind at all.",
            "In 2019, researchers released GPT-2: a 1.5B-parameter language model trained on 40GB of web text.",
            "Call me Ishmael. Some years ago—never mind how long precisely—having little or no money in my purse...",
            "Tokenizers split text into sub-word units; byte-level BPE never needs an unknown token.",
        ];
        return Enumerable.Range(0, 5000).Select(i => s[i % s.Length] + " #" + i).ToArray();
    }

    // ---------------------------------------------------------------- shared

    static JsonObject Shape(string preset, ITaskModel model, int b, int t, Device device) => new()
    {
        ["bench"] = null, ["preset"] = preset,
        ["n_layer"] = ShapeKey(model, "num_hidden_layers"),
        ["n_head"] = ShapeKey(model, "num_attention_heads"),
        ["n_embd"] = ShapeKey(model, "hidden_size"),
        ["vocab_size"] = model.VocabSize,
        ["batch"] = b, ["seq"] = t, ["device"] = device.ToString(), ["threads"] = get_num_threads(),
    };

    // HF's generic shape names, read under GPT-2's names where the config has them (GPT2Config's attribute_map).
    static readonly Dictionary<string, string> Gpt2Names = new() { ["num_hidden_layers"] = "n_layer", ["num_attention_heads"] = "n_head", ["hidden_size"] = "n_embd" };

    static int? ShapeKey(ITaskModel model, string key) =>
        HfConfig.Int(model.Config, Gpt2Names[key], HfConfig.FileName) ?? HfConfig.Int(model.Config, key, HfConfig.FileName);

    static void Emit(JsonObject r, bool json, string human)
    {
        if (r["bench"] is null) r["bench"] = human.Split(' ')[0];
        if (json) Console.WriteLine(r.ToJsonString());
        else Console.WriteLine(human);
    }

    static double Median(List<double> xs)
    {
        if (xs.Count == 0) return double.NaN;
        var s = xs.Order().ToList();
        return s.Count % 2 == 1 ? s[s.Count / 2] : (s[s.Count / 2 - 1] + s[s.Count / 2]) / 2;
    }

    /// <summary>Peak resident set (VmHWM) in MB on Linux; the current working set elsewhere.</summary>
    static double PeakRssMb()
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/self/status"))
                if (line.StartsWith("VmHWM:")) return Math.Round(long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) / 1024.0, 1);
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return Math.Round(Environment.WorkingSet / 1048576.0, 1);
    }

    /// <summary>What the figure was measured on: CPU model, cores, OS, runtime, libtorch, and the load at the time.</summary>
    static JsonObject Machine()
    {
        var info = TorchBackend.Describe();
        string cpu = "?";
        string? load = null;
        try
        {
            cpu = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name"))?.Split(':', 2)[1].Trim() ?? "?";
            load = File.ReadAllText("/proc/loadavg").Trim();
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        var m = new JsonObject
        {
            ["cpu"] = cpu, ["logical_cores"] = info.LogicalCores, ["os"] = info.Os, ["dotnet"] = info.DotnetVersion,
            ["torchsharp"] = info.TorchSharpVersion, ["libtorch"] = info.LibTorchOrigin, ["cuda_devices"] = info.CudaDeviceCount,
            ["loadavg"] = load, ["allocator"] = TaskLM.Native.NativeMemory.Mode,
        };
        if (info.CudaAvailable) m["cuda"] = true;
        return m;
    }
}
