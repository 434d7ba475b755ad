// `tasklm bench train|generate|tokenize`: speed of TaskLM's own training step, generation and tokenizer, as figures (never pass/fail).
using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using TokenizerLoader = TaskLM.Data.Tokenization.TokenizerLoader;
using TaskLM.Models;
using TaskLM.Native;
using TaskLM.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace TaskLM.Cli.Commands;

public static class BenchCommand
{
    public static Command Create()
    {
        var cmd = new Command("bench", "Measure training-step, generation and tokenizer speed on this machine (figures, one JSON line each with --json)");
        cmd.Subcommands.Add(Train());
        cmd.Subcommands.Add(Generate());
        cmd.Subcommands.Add(Tokenize());
        return cmd;
    }

    static Option<string> PresetOpt() => new("--preset") { Description = "Model preset (random init)", DefaultValueFactory = _ => "gpt2-mini" };
    static Option<int> IntOpt(string name, string desc, int dflt) => new(name) { Description = desc, DefaultValueFactory = _ => dflt };

    // ---------------------------------------------------------------- train

    static Command Train()
    {
        var preset = PresetOpt();
        var batch = IntOpt("--batch", "Sequences per step", 4);
        var seq = IntOpt("--seq", "Tokens per sequence", 128);
        var steps = IntOpt("--steps", "Timed optimizer steps", 10);
        var warmup = IntOpt("--warmup", "Untimed steps first (allocation, caches)", 2);
        var dropout = new Option<double?>("--dropout") { Description = "Override the preset's dropout (0 = off, as the plain TorchSharp reference); default: the preset's" };
        var checkpointing = new Option<bool>("--gradient-checkpointing") { Description = "Recompute each block's activations in backward (training.gradient_checkpointing)" };
        var precision = new Option<string>("--precision") { Description = "fp32 | bf16 (training.precision: bf16 weights, fp32 masters in AdamW)", DefaultValueFactory = _ => "fp32" };
        var json = Global.JsonOption();
        var cmd = new Command("train", "Time TaskLM's real training step (the Trainer: forward, backward, grad norm, clipping, AdamW) on random token ids");
        foreach (var o in new Option[] { preset, batch, seq, steps, warmup, dropout, checkpointing, precision, json }) cmd.Options.Add(o);
        cmd.SetAction(p =>
        {
            var device = Global.StartTorch(p);
            int b = p.GetValue(batch), t = p.GetValue(seq), n = p.GetValue(steps), w = p.GetValue(warmup);
            if (b < 1 || t < 2 || n < 1 || w < 0) throw new ArgumentException("--batch, --steps must be >= 1, --seq >= 2, --warmup >= 0");
            string prec = p.GetValue(precision)!;
            if (prec is not ("fp32" or "bf16")) throw new ArgumentException($"--precision: '{prec}' is not one of fp32 | bf16");
            var r = BenchTrain(p.GetValue(preset)!, b, t, n, w, p.GetValue(dropout), device, p.GetValue(checkpointing), prec);
            Emit(r, p.GetValue(json), $"train {r["preset"]} ({r["params"]:N0} params) batch {b} x {t}, {r["device"]}, {r["threads"]} threads: " +
                $"{r["ms_per_step"]} ms/step, {r["tokens_per_s"]} tokens/s, {r["tflops"]} TFLOP/s, MFU {r["mfu"]} of {r["matmul_gflops"]} GFLOP/s matmul, peak RSS {r["peak_rss_mb"]} MB");
            return 0;
        });
        return cmd;
    }

    /// <summary>Builds a preset model, a Trainer with HF-grouped AdamW, clipping at 1.0 and a constant lr on
    /// random ids, and times each whole optimizer step (loop included) after the warm-up steps.</summary>
    static JsonObject BenchTrain(string presetName, int b, int t, int steps, int warmup, double? dropout, Device device,
        bool gradientCheckpointing = false, string precision = "fp32")
    {
        var preset = ModelPresets.Get(presetName);
        string task = preset.ModelType == "bert" ? "masked-lm" : "causal-lm";
        var ov = new Dictionary<string, object>();
        if (dropout is double d)
        {
            if (preset.ModelType == "gpt2") { ov["resid_pdrop"] = d; ov["embd_pdrop"] = d; ov["attn_pdrop"] = d; }
            else { ov["hidden_dropout_prob"] = d; ov["attention_probs_dropout_prob"] = d; }
        }
        manual_seed(0);
        var model = ModelFactory.FromPreset(presetName, task, ov);
        model.Module.to(device);
        if (gradientCheckpointing) ActivationCheckpoint.Enable(model.Module);
        var masters = precision == "bf16" ? MixedPrecision.CastToBf16(model.Module) : null;
        int vocab = (int?)model.Config["vocab_size"] ?? preset.Vocab;
        var rng = new Random(0);
        int total = warmup + steps;
        var examples = Enumerable.Range(0, b * total)
            .Select(_ => new Example { InputIds = Enumerable.Range(0, t).Select(_ => rng.Next(vocab)).ToArray() }).ToList();
        var collator = task == "masked-lm"
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
        long nparams = model.Module.parameters().Select(p => (p.Handle, p.numel())).Distinct().Sum(x => x.Item2);
        double tokens = (double)b * t;
        // Kaplan/PaLM estimate: 6 N per token (forward + backward through every weight, the tied head included)
        // plus attention's 12 · L · C · T per token (QK^T and AV, forward + backward).
        double flops = 6.0 * nparams * tokens + 12.0 * preset.Layers * preset.Hidden * t * tokens;
        double gflops = TorchBackend.MeasureMatmulGflops(device);
        var r = Shape(presetName, model, b, t, device);
        r["params"] = nparams;
        r["dropout"] = (double?)model.Config["resid_pdrop"] ?? (double?)model.Config["hidden_dropout_prob"];
        r["steps"] = steps;
        r["gradient_checkpointing"] = gradientCheckpointing;
        r["precision"] = precision;
        r["ms_per_step"] = Math.Round(sec * 1000, 2);
        r["tokens_per_s"] = Math.Round(tokens / sec, 1);
        r["ms_per_step_all"] = new JsonArray(timer.Seconds.Skip(warmup).Select(s => (JsonNode)Math.Round(s * 1000, 1)).ToArray());
        r["tflops"] = Math.Round(flops / sec / 1e12, 4);
        r["matmul_gflops"] = Math.Round(gflops, 1);
        r["mfu"] = Math.Round(flops / sec / 1e9 / gflops, 3);
        r["peak_rss_mb"] = PeakRssMb();
        r["final_loss"] = Math.Round(timer.LastLoss, 4);
        r["machine"] = Machine();
        return r;
    }

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
        var preset = PresetOpt();
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
            if (ModelPresets.Get(name).ModelType != "gpt2") throw new ArgumentException($"--preset {name}: generation needs a GPT-2 preset");
            manual_seed(0);
            var model = (Gpt2)ModelFactory.FromPreset(name, "causal-lm");
            model.Module.to(device);
            int vocab = (int?)model.Config["vocab_size"] ?? 50257;
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
        ["n_layer"] = (int?)model.Config["n_layer"] ?? (int?)model.Config["num_hidden_layers"],
        ["n_head"] = (int?)model.Config["n_head"] ?? (int?)model.Config["num_attention_heads"],
        ["n_embd"] = (int?)model.Config["n_embd"] ?? (int?)model.Config["hidden_size"],
        ["vocab_size"] = (int?)model.Config["vocab_size"],
        ["batch"] = b, ["seq"] = t, ["device"] = device.ToString(), ["threads"] = get_num_threads(),
    };

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
