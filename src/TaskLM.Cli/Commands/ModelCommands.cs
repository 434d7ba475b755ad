// Model verbs: `tasklm logits` (raw head outputs for given ids), `tasklm generate` (decode from a causal LM), `tasklm models` (preset table; `models import` is ModelImportCommand; pull/list/rm: the Hub).
using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using Spectre.Console;
using TaskLM.Data.Tokenization;
using TaskLM.Models;
using TaskLM.Native;
using TorchSharp;
using static TorchSharp.torch;

namespace TaskLM.Cli.Commands;

/// <summary>Builds the model verbs (each registered at the root).</summary>
public static class ModelCommands
{
    /// <summary>All model verbs.</summary>
    public static IEnumerable<Command> Create() => new[] { Logits(), Generate(), Models() };

    static Command Logits()
    {
        var cmd = new Command("logits", "Run an HF model folder on token ids from a JSON file and write its logits as JSON");
        var model = new Global.ModelOption("The model to run: an HF model folder (config.json + weights), a run, a Hub id");
        var inputs = new Global.Inputs(cmd, model, "INPUT: JSON with input_ids and optional attention_mask, token_type_ids (nested lists)",
            overrides: false, ("INPUT", "--input"));
        var output = Global.OutOption("JSON file to write logits (or start_logits/end_logits) to", legacy: "--output").AddTo(cmd);
        cmd.SetAction(p =>
        {
            var (spec, values, _) = inputs.Read(p);
            string outPath = output.Read(p)!;
            var device = Global.StartTorch(p);
            string inPath = values[0];
            JsonObject json;
            try { json = JsonNode.Parse(File.ReadAllText(inPath))?.AsObject() ?? throw new InvalidDataException($"{inPath}: empty JSON"); }
            catch (JsonException e) { throw new InvalidDataException($"{inPath}: invalid JSON (line {e.LineNumber + 1}): {e.Message}", e); }
            using var scope = NewDisposeScope();
            var batch = new ModelBatch
            {
                InputIds = IdsTensor(json, "input_ids", inPath, CPU, required: true)!,
                AttentionMask = IdsTensor(json, "attention_mask", inPath, CPU, required: false),
                TokenTypeIds = IdsTensor(json, "token_type_ids", inPath, CPU, required: false),
            };
            var m = ModelFactory.ForInference(spec);
            m.CheckInputs(batch, inPath);
            m.to(device);
            using var noGrad = no_grad();
            var o = m.Forward(batch);
            var result = new JsonObject();
            if (o.Logits is not null) result["logits"] = Nested(o.Logits);
            if (o.StartLogits is not null) result["start_logits"] = Nested(o.StartLogits);
            if (o.EndLogits is not null) result["end_logits"] = Nested(o.EndLogits);
            string? dir = Path.GetDirectoryName(Path.GetFullPath(outPath));
            if (dir != null) Directory.CreateDirectory(dir);
            File.WriteAllText(outPath, result.ToJsonString());
            return 0;
        });
        return cmd;
    }

    static Command Generate()
    {
        var cmd = new Command("generate", "Continue a prompt with a causal LM (greedy or sampled)");
        var prompt = new Option<string?>("--prompt") { Description = "Prompt text (needs the folder's tokenizer)" };
        var promptIds = new Option<string?>("--prompt-ids") { Description = "Prompt token ids, comma-separated" };
        var maxNew = new Option<int>("--max-new-tokens") { Description = "Tokens to generate", DefaultValueFactory = _ => 20 };
        var greedy = new Option<bool>("--greedy") { Description = "Greedy decoding (the default unless a sampling option is given)" };
        var temperature = new Option<double?>("--temperature") { Description = "Sampling temperature" };
        var topK = new Option<int?>("--top-k") { Description = "Sample among the k most likely tokens" };
        var topP = new Option<double?>("--top-p") { Description = "Sample from the smallest set reaching probability p" };
        var seed = new Option<long?>("--seed") { Description = "Sampling seed" };
        var rep = new Option<double>("--repetition-penalty") { Description = "HF repetition penalty (1 = off)", DefaultValueFactory = _ => 1.0 };
        var tokenizerOpt = new Option<string?>("--tokenizer") { Description = "Tokenizer for --prompt/--stop text: a folder or \"gpt2\" (default: the model folder)" };
        var stop = new Option<string[]>("--stop") { Description = "Stop when the continuation contains this text (repeatable)", AllowMultipleArgumentsPerToken = false };
        var noCache = new Option<bool>("--no-cache") { Description = "Recompute the whole sequence every step (no KV cache)" };
        var json = Global.JsonOption();
        var inputs = new Global.Inputs(cmd, new Global.ModelOption("The causal LM to decode with (GPT-2 or the Llama family): an HF model folder, a run, a Hub id"), "", overrides: false);
        foreach (var o in new Option[] { prompt, promptIds, maxNew, greedy, temperature, topK, topP, seed, rep, stop, tokenizerOpt, noCache, json }) cmd.Options.Add(o);
        cmd.SetAction(async (p, ct) =>
        {
            string folder = inputs.Read(p).Model;
            string? text = p.GetValue(prompt), idText = p.GetValue(promptIds);
            // The request is validated in one place (GenerationRequest), before any model is loaded.
            var request = new GenerationRequest
            {
                Prompt = text, PromptIds = idText is null ? null : ParseIds(idText), MaxNewTokens = p.GetValue(maxNew),
                Greedy = p.GetValue(greedy) ? true : null, Temperature = p.GetValue(temperature), TopK = p.GetValue(topK), TopP = p.GetValue(topP),
                Seed = p.GetValue(seed), RepetitionPenalty = p.GetValue(rep), Stop = p.GetValue(stop), UseCache = !p.GetValue(noCache),
            };
            request.Validate();
            var device = Global.StartTorch(p);
            var m = ModelFactory.ForInference(folder);
            if (m.Task != "causal-lm") throw new ArgumentException($"{folder}: generation needs a causal LM, this folder is a '{m.Task}' model");
            m.to(device);
            ITokenizer? tok = text is not null || p.GetValue(stop) is { Length: > 0 } || p.GetValue(tokenizerOpt) is not null
                ? TokenizerLoader.Load(p.GetValue(tokenizerOpt) ?? folder) : null;
            var generator = new TextGenerator(m, tok);
            var ids = generator.PromptIds(request);
            bool asJson = p.GetValue(json);
            if (!asJson && tok is not null) Console.Write(text ?? tok.Decode(ids));
            var sw = System.Diagnostics.Stopwatch.StartNew();
            var newIds = new List<int>();
            FinishReason finish = FinishReason.Length;
            await foreach (var chunk in generator.StreamAsync(request, ct))
            {
                if (chunk.TokenId is int t) newIds.Add(t);
                if (chunk.Finish is FinishReason f) finish = f;
                if (!asJson) Console.Write(tok is null ? (chunk.TokenId is int id ? $"{id} " : "") : chunk.Text);
            }
            double secs = sw.Elapsed.TotalSeconds;
            if (asJson)
            {
                var all = ids.Concat(newIds).ToArray();
                var o = new JsonObject
                {
                    ["prompt_ids"] = new JsonArray(ids.Select(i => (JsonNode)i).ToArray()),
                    ["new_ids"] = new JsonArray(newIds.Select(i => (JsonNode)i).ToArray()),
                    ["ids"] = new JsonArray(all.Select(i => (JsonNode)i).ToArray()),
                    ["finish_reason"] = finish.ToString().ToLowerInvariant(),
                    ["tokens_per_second"] = newIds.Count / Math.Max(secs, 1e-9),
                };
                if (tok is not null) { o["text"] = tok.Decode(all); o["new_text"] = tok.Decode(newIds); }
                Console.WriteLine(o.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            }
            else Console.WriteLine();
            return 0;
        });
        return cmd;
    }

    static Command Models()
    {
        var cmd = new Command("models", "Model presets with their size, memory, FLOPs and training speed on this machine (measured when `tasklm train`, `compare` or `learning-curve` has trained the preset here, else estimated)");
        var json = Global.JsonOption();
        cmd.Options.Add(json);
        cmd.Subcommands.Add(ModelImportCommand.Create());
        ModelHubCommands.AddTo(cmd);   // models pull|list|rm
        cmd.SetAction(p =>
        {
            var device = Global.StartTorch(p);
            double gflops = TorchBackend.MeasureMatmulGflops(device, 512, 5);
            // Speeds measured on this machine (Training/MeasuredSpeeds.cs): the median of the runs on this device kind.
            var measured = TaskLM.Training.MeasuredSpeeds.Read();
            string kind = device.type.ToString().ToLowerInvariant();
            var rows = ModelPresets.All.Select(m =>
            {
                double est = gflops * 1e9 / m.TrainFlopsPerToken;
                var got = TaskLM.Training.MeasuredSpeeds.For(measured, m.Name, kind);
                return new
                {
                    name = m.Name, model_type = m.ModelType, layers = m.Layers, hidden = m.Hidden, heads = m.Heads,
                    parameters = m.Parameters, fp32_bytes = m.WeightBytesFp32, bf16_bytes = m.WeightBytesBf16,
                    adamw_training_bytes = m.AdamWTrainingBytes, train_flops_per_token = m.TrainFlopsPerToken, context = m.Context,
                    est_train_tokens_per_second = est,
                    measured_train_tokens_per_second = got?.TokensPerSecond, measured_runs = got?.Runs ?? 0,
                    measured_threads = got?.Threads, measured_max_length = got?.MaxLength,
                    train_tokens_per_second = got?.TokensPerSecond ?? est, tokens_per_second_source = got != null ? "measured" : "estimate",
                    source = m.Source,
                };
            }).ToList();
            if (p.GetValue(json))
            {
                Console.WriteLine(JsonSerializer.Serialize(new { device = device.ToString(), matmul_fp32_gflops = gflops, measurements = TaskLM.Training.MeasuredSpeeds.FilePath(), presets = rows }, Global.JsonOut));
                return 0;
            }
            var table = new Table().AddColumns("preset", "L x d/heads", "params", "fp32", "bf16", "AdamW", "FLOPs/tok", "train tok/s");
            foreach (var r in rows)
                table.AddRow(r.name, $"{r.layers}x{r.hidden}/{r.heads}", Count(r.parameters), Bytes(r.fp32_bytes), Bytes(r.bf16_bytes),
                    Bytes(r.adamw_training_bytes), $"{r.train_flops_per_token / 1e9:0.00}G",
                    r.measured_train_tokens_per_second is double v ? $"{v:N0} measured ({r.measured_runs} run(s), {r.measured_threads} thread(s), T={r.measured_max_length})" : $"{r.est_train_tokens_per_second:N0} est.");
            AnsiConsole.Write(table);
            AnsiConsole.MarkupLine($"[grey]Measured fp32 matmul rate on {device}: {gflops:0.0} GFLOP/s. FLOPs/tok = training FLOPs per token, " +
                "6N + 6·layers·context·hidden (context = max positions); est. = training tokens/s at that matmul rate (an upper bound). " +
                $"measured = median training tokens/s of the preset's runs by `tasklm train`, `compare` or `learning-curve` on this machine ({Markup.Escape(TaskLM.Training.MeasuredSpeeds.FilePath())}; T = max_length). " +
                "AdamW = fp32 weights + grads + 2 moments (16 bytes/param), activations excluded. Params: GPT2Model / BertModel with pooler.[/]");
            return 0;
        });
        return cmd;
    }

    static string Count(long n) => n >= 1e9 ? $"{n / 1e9:0.00}B" : n >= 1e6 ? $"{n / 1e6:0.0}M" : $"{n / 1e3:0.0}K";
    static string Bytes(long n) => n >= 1L << 30 ? $"{n / (double)(1L << 30):0.00} GiB" : $"{n / (double)(1L << 20):0} MiB";

    static IReadOnlyList<int> ParseIds(string s)
    {
        var parts = s.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        var ids = new List<int>();
        foreach (var part in parts)
            ids.Add(int.TryParse(part, out int v) && v >= 0 ? v : throw new ArgumentException($"--prompt-ids: '{part}' is not a token id"));
        if (ids.Count == 0) throw new ArgumentException("--prompt-ids: no ids given");
        return ids;
    }

    /// <summary>A (B, T) int64 tensor from a nested list in the input JSON (a flat list means one row).</summary>
    static Tensor? IdsTensor(JsonObject json, string key, string file, Device device, bool required)
    {
        if (json[key] is not JsonArray rows)
        {
            if (required) throw new InvalidDataException($"{file}: key \"{key}\" (a list of lists of token ids) is missing");
            return null;
        }
        try
        {
            var lists = rows.Count > 0 && rows[0] is JsonArray ? rows.Select(r => (r as JsonArray ?? throw new InvalidDataException($"{file}: \"{key}\" mixes lists and numbers")).Select(x => x!.GetValue<long>()).ToArray()).ToList()
                : new List<long[]> { rows.Select(x => x!.GetValue<long>()).ToArray() };
            if (lists.Count == 0 || lists[0].Length == 0) throw new InvalidDataException($"{file}: \"{key}\" is empty (no tokens)");
            int len = lists[0].Length;
            if (lists.Any(l => l.Length != len)) throw new InvalidDataException($"{file}: \"{key}\" rows have different lengths");
            return tensor(lists.SelectMany(x => x).ToArray(), new long[] { lists.Count, len }, dtype: int64, device: device);
        }
        catch (Exception e) when (e is InvalidOperationException or FormatException)
        {
            throw new InvalidDataException($"{file}: \"{key}\" must hold integers: {e.Message}", e);
        }
    }

    static JsonNode Nested(Tensor t)
    {
        var cpu = t.detach().to(float64).cpu().contiguous();
        double[] flat = cpu.data<double>().ToArray();
        long[] shape = cpu.shape;
        int pos = 0;
        JsonNode Build(int dim)
        {
            var a = new JsonArray();
            for (long i = 0; i < shape[dim]; i++)
                a.Add(dim == shape.Length - 1 ? JsonValue.Create(flat[pos++]) : Build(dim + 1));
            return a;
        }
        return shape.Length == 0 ? JsonValue.Create(flat[0]) : Build(0);
    }
}
