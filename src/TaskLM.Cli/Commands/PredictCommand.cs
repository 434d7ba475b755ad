// `tasklm predict`: run a trained model (run folder or HF folder) on a text or a data file; predictions beside the input columns.
using System.CommandLine;
using System.Text.Json.Nodes;
using TaskLM.Serving;

namespace TaskLM.Cli.Commands;

public static class PredictCommand
{
    public static Command Create()
    {
        var model = new Global.ModelOption("The model to predict with: a run folder (uses best/), a Hugging Face model folder or Hub id, or an ONNX export (tasklm export --format onnx)");
        var text = new Option<string?>("--text") { Description = "One text to predict (the prompt for a causal LM; for QA give --question too)" };
        var question = new Option<string?>("--question") { Description = "QA: the question about --text (the context)" };
        var input = new Argument<string?>("file") { Description = "Data file (CSV, TSV, JSONL, Parquet; .gz too) to predict row by row", Arity = ArgumentArity.ZeroOrOne };
        var output = new Option<string?>("--out") { Description = "Write rows with predictions to .jsonl(.gz), .csv or .tsv (default: JSONL on stdout)" };
        var textColumn = new Option<string>("--text-column") { Description = "Column with the text (or prompt)", DefaultValueFactory = _ => "text" };
        var pairColumn = new Option<string?>("--text-pair-column") { Description = "Column with the second text of a pair (classification)" };
        var qCol = new Option<string>("--question-column") { Description = "QA: question column", DefaultValueFactory = _ => "question" };
        var cCol = new Option<string>("--context-column") { Description = "QA: context column", DefaultValueFactory = _ => "context" };
        var batch = new Option<int>("--batch-size") { Description = "Rows handed to the model at once", DefaultValueFactory = _ => 32 };
        var tokenizer = new Option<string?>("--tokenizer") { Description = "Tokenizer folder or \"gpt2\" (default: the run's, else the model folder's)" };
        var maxTokens = new Option<int>("--max-tokens") { Description = "Causal LM: tokens to generate per row", DefaultValueFactory = _ => 32 };
        var temperature = new Option<double?>("--temperature") { Description = "Causal LM: sampling temperature (default: greedy)" };
        var topP = new Option<double>("--top-p") { Description = "Causal LM: nucleus sampling mass", DefaultValueFactory = _ => 1.0 };
        var seed = new Option<long?>("--seed") { Description = "Causal LM: sampling seed" };
        var allowEmpty = new Option<bool>("--allow-empty") { Description = "Write an empty output when the input has no rows (default: an error)" };
        var runtime = RuntimeOption.Create();
        var cmd = new Command("predict", "Predict with a trained model: labels and probabilities, tags and entities, answer spans, or continuations");
        cmd.Arguments.Add(input);
        foreach (var o in new Option[] { model, text, question, output, textColumn, pairColumn, qCol, cCol, batch, tokenizer, maxTokens, temperature, topP, seed, allowEmpty, runtime }) cmd.Options.Add(o);
        cmd.SetAction(async (p, ct) =>
        {
            string? file = p.GetValue(input), one = p.GetValue(text);
            if ((file is null) == (one is null)) throw new ArgumentException("give exactly one of --text \"...\" or a data file");
            if (p.GetValue(batch) < 1) throw new ArgumentException($"--batch-size must be at least 1, got {p.GetValue(batch)}");
            string spec = model.Read(p)!;
            using var m = TaskLMModel.Load(spec, RuntimeOption.Start(p, runtime, spec) with { Tokenizer = p.GetValue(tokenizer), MaxBatchSize = p.GetValue(batch) });
            var o = new PredictOptions
            {
                TextColumn = p.GetValue(textColumn)!, TextPairColumn = p.GetValue(pairColumn), QuestionColumn = p.GetValue(qCol)!, ContextColumn = p.GetValue(cCol)!,
                BatchSize = p.GetValue(batch), AllowEmpty = p.GetValue(allowEmpty),
                Generate = new GenerateOptions { MaxTokens = p.GetValue(maxTokens), Temperature = p.GetValue(temperature), TopP = p.GetValue(topP), Seed = p.GetValue(seed) },
            };
            if (one is not null)
            {
                var row = new JsonObject { [o.TextColumn] = one };
                if (m.Task == "question-answering")
                {
                    row = new JsonObject { [o.QuestionColumn] = p.GetValue(question) ?? throw new ArgumentException("a QA model needs --question with --text (the context)"), [o.ContextColumn] = one };
                }
                var pred = await BatchPredict.PredictOne(m, row, o, ct);
                Console.WriteLine(pred.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }));
                return 0;
            }
            string? outPath = p.GetValue(output);
            var sw = System.Diagnostics.Stopwatch.StartNew();
            long last = 0;
            o = o with
            {
                Progress = n =>
                {
                    // Progress on stderr (stdout may carry the predictions), about once a second.
                    if (sw.ElapsedMilliseconds - last < 1000) return;
                    last = sw.ElapsedMilliseconds;
                    Console.Error.WriteLine($"predict: {n:N0} rows, {n / sw.Elapsed.TotalSeconds:0.0} rows/s");
                },
            };
            long rows = await BatchPredict.Run(m, file!, outPath, o, Console.Out, ct);
            Console.Error.WriteLine($"predict: {rows:N0} rows in {sw.Elapsed.TotalSeconds:0.0} s" + (outPath != null ? $" -> {outPath}" : ""));
            return 0;
        });
        return cmd;
    }
}

/// <summary>`--runtime auto|torch|onnx` of predict and serve, and starting the runtime it names.</summary>
internal static class RuntimeOption
{
    public static Option<string> Create()
    {
        var o = new Option<string>("--runtime")
        {
            Description = "torch: TorchSharp (libtorch); onnx: ONNX Runtime over a `tasklm export --format onnx` folder, without libtorch; auto: onnx for such a folder, else torch",
            DefaultValueFactory = _ => "auto",
        };
        o.AcceptOnlyFromAmong("auto", "torch", "onnx");
        return o;
    }

    /// <summary>Load options for the runtime chosen: the torch runtime loads libtorch (--device, --threads); the onnx
    /// runtime never does (--threads becomes ONNX Runtime's intra-op threads).</summary>
    public static TaskLMModelOptions Start(ParseResult p, Option<string> runtime, string modelPath)
    {
        var asked = p.GetValue(runtime) switch { "torch" => ModelRuntime.Torch, "onnx" => ModelRuntime.Onnx, _ => ModelRuntime.Auto };
        // A folder may be an ONNX export; any other spec (a Hub id, a NuGet model) is resolved on the torch side.
        var chosen = Directory.Exists(modelPath) ? TaskLMModel.ResolveRuntime(modelPath, asked)
            : asked == ModelRuntime.Onnx ? throw new DirectoryNotFoundException($"model '{modelPath}' does not exist (--runtime onnx needs an ONNX export folder)")
            : ModelRuntime.Torch;
        if (chosen == ModelRuntime.Onnx)
        {
            int threads = p.GetResult(Global.Threads) != null ? p.GetValue(Global.Threads) : 0;
            return new TaskLMModelOptions { Runtime = ModelRuntime.Onnx, IntraOpThreads = threads > 0 ? threads : null };
        }
        return StartTorch(p);
    }

    // Apart, so that the onnx path never compiles a method touching TorchSharp's types.
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    static TaskLMModelOptions StartTorch(ParseResult p) => new() { Runtime = ModelRuntime.Torch, Device = Global.StartTorch(p) };
}
