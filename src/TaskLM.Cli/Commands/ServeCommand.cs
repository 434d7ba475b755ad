// `tasklm serve`: an OpenAI-compatible HTTP server and playground over a run folder or an HF folder.
using System.CommandLine;
using TaskLM.Serving;

namespace TaskLM.Cli.Commands;

public static class ServeCommand
{
    public static Command Create()
    {
        var model = new Global.ModelOption("The model to serve: a run folder (uses best/), a Hugging Face model folder or Hub id, or an ONNX export (tasklm export --format onnx)");
        var host = new Option<string>("--host") { Description = "Address to listen on (loopback by default; 0.0.0.0 exposes it)", DefaultValueFactory = _ => "127.0.0.1" };
        var port = new Option<int>("--port") { Description = "Port (0 = a free one, printed at start)", DefaultValueFactory = _ => 8000 };
        var apiKey = new Option<string?>("--api-key") { Description = "Require Authorization: Bearer KEY on /v1 routes (default: $TASKLM_API_KEY, else none)" };
        var tokenizer = new Option<string?>("--tokenizer") { Description = "Tokenizer folder or \"gpt2\" (default: the run's, else the model folder's)" };
        var maxBatch = new Option<int>("--max-batch-size") { Description = "Most rows per forward pass; 1 turns batching off", DefaultValueFactory = _ => 16 };
        var window = new Option<double>("--batch-window-ms") { Description = "How long an encoder batch waits for more rows", DefaultValueFactory = _ => 2.0 };
        var maxQueue = new Option<int>("--max-queue") { Description = "Rows/sequences that may wait for the model; more get 429", DefaultValueFactory = _ => 1024 };
        var timeout = new Option<double>("--timeout") { Description = "Per-request timeout in seconds", DefaultValueFactory = _ => 120.0 };
        var maxBody = new Option<long>("--max-body-bytes") { Description = "Largest request body (larger: 413)", DefaultValueFactory = _ => 1L << 20 };
        var runtime = RuntimeOption.Create();
        var cmd = new Command("serve", "Serve a model over HTTP: OpenAI-compatible /v1/completions, /v1/chat/completions, /v1/embeddings; /v1/classify, /v1/tag, /v1/answer; playground at /");
        foreach (var o in new Option[] { model, host, port, apiKey, tokenizer, maxBatch, window, maxQueue, timeout, maxBody, runtime }) cmd.Options.Add(o);
        cmd.SetAction(async (p, ct) =>
        {
            if (p.GetValue(maxBatch) < 1) throw new ArgumentException($"--max-batch-size must be at least 1, got {p.GetValue(maxBatch)}");
            if (p.GetValue(timeout) <= 0) throw new ArgumentException($"--timeout must be positive, got {p.GetValue(timeout)}");
            // Checked here, before anything loads, so the message names the option (ASP.NET's own names only 'value' or 'port').
            if (p.GetValue(port) is < 0 or > 65535) throw new ArgumentException($"--port must be between 0 and 65535 (0 = a free one), got {p.GetValue(port)}");
            if (p.GetValue(maxBody) < 1) throw new ArgumentException($"--max-body-bytes must be at least 1, got {p.GetValue(maxBody)}");
            if (p.GetValue(maxQueue) < 1) throw new ArgumentException($"--max-queue must be at least 1 (with 0 every request would get 429), got {p.GetValue(maxQueue)}");
            if (p.GetValue(window) < 0) throw new ArgumentException($"--batch-window-ms must not be negative, got {p.GetValue(window)}");
            string path = model.Read(p)!;
            var opts = RuntimeOption.Start(p, runtime, path) with
            {
                Tokenizer = p.GetValue(tokenizer), MaxBatchSize = p.GetValue(maxBatch),
                BatchWindow = TimeSpan.FromMilliseconds(p.GetValue(window)), MaxQueue = p.GetValue(maxQueue),
            };
            await using var server = await TaskLMServer.StartAsync(new ServerOptions
            {
                Host = p.GetValue(host)!, Port = p.GetValue(port), ApiKey = p.GetValue(apiKey) ?? Environment.GetEnvironmentVariable("TASKLM_API_KEY"),
                RequestTimeout = TimeSpan.FromSeconds(p.GetValue(timeout)), MaxBodyBytes = p.GetValue(maxBody), Verbose = p.GetValue(Global.Verbose),
            }, () => TaskLMModel.Load(path, opts), ct);
            Console.WriteLine($"tasklm serve: listening on {server.Url} (model loading; /health answers 200 when ready)");
            try
            {
                var m = await server.Ready;
                // Which runtime and precision serve this model, said first: an int8 export names the CPU's int8 instructions.
                Console.WriteLine($"tasklm serve: runtime: {TaskLM.Onnx.CpuInt8.Describe(m.Card.Runtime, m.Card.Precision)}");
                Console.WriteLine($"tasklm serve: ready: {m.Card.Id} ({m.Task}, {m.Card.Parameters:N0} parameters, {m.Card.Runtime} runtime{(m.Card.Ships != "model" ? $"; ships the {m.Card.Ships} chosen on validation, with the TF-IDF baseline saved in the run" : "")}); playground at {server.Url}/");
            }
            catch (Exception e)
            {
                Console.Error.WriteLine($"error: {e.Message.Split('\n')[0]}");
                return 1;
            }
            await server.WaitForShutdownAsync(ct);
            return 0;
        });
        return cmd;
    }
}
