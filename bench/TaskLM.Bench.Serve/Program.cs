// Load test: N concurrent clients on loopback against the TaskLM server for a bounded time, for a classifier and a
// causal LM, each with batching on (dynamic / continuous) and off (max batch 1); prints throughput and p50/p99 latency.
// Usage: dotnet TaskLM.Bench.Serve.dll [seconds=10] [clients=16] [threads=1] [new-tokens=32] [bert=bert-tiny] [tokens=64] [gpt2=gpt2-tiny]
//        [only=all|classify|generate|inproc] [order=on-first|off-first] [device=cpu|cuda] [runtime=torch|onnx]
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using TaskLM.Models;
using TaskLM.Native;
using TaskLM.Onnx;
using TaskLM.Serving;

var arg = args.Select(a => a.Split('=', 2)).Where(p => p.Length == 2).ToDictionary(p => p[0], p => p[1]);
double seconds = double.Parse(arg.GetValueOrDefault("seconds", "10"), CultureInfo.InvariantCulture);
int clients = int.Parse(arg.GetValueOrDefault("clients", "16"), CultureInfo.InvariantCulture);
int threads = int.Parse(arg.GetValueOrDefault("threads", "1"), CultureInfo.InvariantCulture);
int newTokens = int.Parse(arg.GetValueOrDefault("new-tokens", "32"), CultureInfo.InvariantCulture);
int inputTokens = int.Parse(arg.GetValueOrDefault("tokens", "64"), CultureInfo.InvariantCulture);   // classifier input, [CLS]/[SEP] included
string bertPreset = arg.GetValueOrDefault("bert", "bert-tiny"), gptPreset = arg.GetValueOrDefault("gpt2", "gpt2-tiny");
string only = arg.GetValueOrDefault("only", "all");   // all | classify | generate | inproc
var device = TorchBackend.ResolveDevice(arg.GetValueOrDefault("device", "cpu"));
// onnx: the same models exported (tasklm export --format onnx) and served by ONNX Runtime with `threads` intra-op threads.
string runtime = arg.GetValueOrDefault("runtime", "torch");
if (runtime is not ("torch" or "onnx")) throw new ArgumentException($"runtime={runtime}: torch or onnx");

TorchBackend.EnsureLoaded();
TorchBackend.SetThreads(threads);
TorchSharp.torch.manual_seed(0);
string root = Path.Combine(Path.GetTempPath(), "tasklm-bench-serve-" + Guid.NewGuid().ToString("N")[..8]);

// Randomly initialised presets (speed does not depend on the weights). The classifier gets a WordPiece vocab of
// "w<id>" words so every request is a known number of tokens; the LM uses GPT-2's embedded vocabulary.
string bertDir = Path.Combine(root, bertPreset + "-cls"), gptDir = Path.Combine(root, gptPreset);
var bert = ModelFactory.FromPreset(bertPreset, "classification", new Dictionary<string, object> { ["labels"] = new[] { "neg", "pos" } });
bert.SavePretrained(bertDir);
int vocab = (int)bert.Config["vocab_size"]!;
File.WriteAllLines(Path.Combine(bertDir, "vocab.txt"), new[] { "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]" }.Concat(Enumerable.Range(5, vocab - 5).Select(i => $"w{i}")));
ModelFactory.FromPreset(gptPreset, "causal-lm").SavePretrained(gptDir);
if (runtime == "onnx")
{
    OnnxExport.Export(bertDir, bertDir += "-onnx");
    OnnxExport.Export(gptDir, gptDir += "-onnx");
}
TaskLMModelOptions Options(int maxBatch, TimeSpan window) => runtime == "onnx"
    ? new() { Runtime = ModelRuntime.Onnx, IntraOpThreads = threads, MaxBatchSize = maxBatch, BatchWindow = window, MaxQueue = 4096 }
    : new() { Runtime = ModelRuntime.Torch, Device = device, MaxBatchSize = maxBatch, BatchWindow = window, MaxQueue = 4096 };

Console.WriteLine(runtime == "onnx"
    ? $"machine: {Environment.ProcessorCount} logical CPUs, load average {LoadAverage()}, ONNX Runtime (CPU), intra-op threads {threads}; {clients} clients, {seconds:0} s per run"
    : $"machine: {Environment.ProcessorCount} logical CPUs, load average {LoadAverage()}, device {device}, libtorch threads {threads}; {clients} clients, {seconds:0} s per run");
Console.WriteLine();
Console.WriteLine("| model | batching | requests | failed | req/s | tokens/s | p50 ms | p99 ms | mean rows/pass |");
Console.WriteLine("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
int failures = 0;
var rng = new Random(1);
// order=off-first runs unbatched first: on a shared machine the load drifts, so compare both orders.
foreach (bool batching in arg.GetValueOrDefault("order", "on-first") == "off-first" ? new[] { false, true } : new[] { true, false })
{
    if (only is "all" or "classify") failures += await Run($"{bertPreset} classify ({inputTokens} tokens)", bertDir, batching, i =>
        ("/v1/classify", new JsonObject { ["input"] = string.Join(' ', Enumerable.Range(0, inputTokens - 2).Select(k => $"w{5 + (i * 31 + k * 7) % (vocab - 5)}")) }.ToJsonString()), 0);
    if (only is "all" or "generate") failures += await Run($"{gptPreset} completions ({newTokens} new tokens)", gptDir, batching, i =>
        ("/v1/completions", new JsonObject { ["prompt"] = $"Request {i}: the quick brown fox", ["max_tokens"] = newTokens, ["temperature"] = 0 }.ToJsonString()), newTokens);
}
if (only is "all" or "classify" or "inproc")
{
    // The same classifier load without HTTP: concurrent in-process callers of ClassifyAsync, to separate model time from the web stack.
    Console.WriteLine();
    Console.WriteLine("| in-process (no HTTP) | batching | requests | req/s | p50 ms | p99 ms | mean rows/pass |");
    Console.WriteLine("| --- | --- | --- | --- | --- | --- | --- |");
    foreach (bool batching in new[] { false, true })
    {
        using var model = TaskLMModel.Load(bertDir, Options(batching ? 32 : 1, batching ? TimeSpan.FromMilliseconds(2) : TimeSpan.Zero));
        string text = string.Join(' ', Enumerable.Range(0, inputTokens - 2).Select(k => $"w{5 + k * 7 % (vocab - 5)}"));
        await model.ClassifyAsync([text]);
        long batches = model.Stats.Batches, rows = model.Stats.BatchRows;
        var lat = new List<double>();
        var sw = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, clients).Select(async _ =>
        {
            while (sw.Elapsed.TotalSeconds < seconds)
            {
                var t0 = sw.Elapsed;
                await model.ClassifyAsync([text]);
                lock (lat) lat.Add((sw.Elapsed - t0).TotalMilliseconds);
            }
        }));
        double el = sw.Elapsed.TotalSeconds;
        lat.Sort();
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"| {bertPreset} classify ({inputTokens} tokens) | {(batching ? "on (max 32)" : "off")} | {lat.Count} | {lat.Count / el:0.0} | {lat[lat.Count / 2]:0} | {lat[(int)(lat.Count * 0.99)]:0} | {(model.Stats.BatchRows - rows) / Math.Max(1.0, model.Stats.Batches - batches):0.0} |"));
    }
}
Console.WriteLine();
Console.WriteLine($"load average after: {LoadAverage()}");
try { Directory.Delete(root, true); } catch (IOException) { }
return failures == 0 ? 0 : 1;

async Task<int> Run(string name, string dir, bool batching, Func<int, (string Route, string Body)> request, int tokensPerRequest)
{
    var opts = Options(batching ? 32 : 1, batching ? TimeSpan.FromMilliseconds(2) : TimeSpan.Zero);
    await using var server = await TaskLMServer.StartAsync(new ServerOptions { Port = 0, RequestTimeout = TimeSpan.FromMinutes(10) }, () => TaskLMModel.Load(dir, opts));
    var model = await server.Ready;
    using var http = new HttpClient { BaseAddress = new Uri(server.Url), Timeout = TimeSpan.FromMinutes(10) };
    // Warm-up: one request of each kind outside the measurement.
    var (r0, b0) = request(0);
    (await http.PostAsync(r0, new StringContent(b0, Encoding.UTF8, "application/json"))).EnsureSuccessStatusCode();
    long batches = model.Stats.Batches, rows = model.Stats.BatchRows;
    var latencies = new List<double>();
    int failed = 0, counter = 0;
    var sw = Stopwatch.StartNew();
    var stopAt = TimeSpan.FromSeconds(seconds);
    var workers = Enumerable.Range(0, clients).Select(async c =>
    {
        while (sw.Elapsed < stopAt)
        {
            var (route, body) = request(Interlocked.Increment(ref counter));
            var t0 = sw.Elapsed;
            try
            {
                var resp = await http.PostAsync(route, new StringContent(body, Encoding.UTF8, "application/json"));
                await resp.Content.ReadAsStringAsync();
                if (resp.StatusCode != HttpStatusCode.OK) { Interlocked.Increment(ref failed); continue; }
            }
            catch (HttpRequestException) { Interlocked.Increment(ref failed); continue; }
            lock (latencies) latencies.Add((sw.Elapsed - t0).TotalMilliseconds);
        }
    }).ToList();
    await Task.WhenAll(workers);
    double elapsed = sw.Elapsed.TotalSeconds;
    latencies.Sort();
    double P(double q) => latencies.Count == 0 ? double.NaN : latencies[Math.Min(latencies.Count - 1, (int)Math.Ceiling(q * latencies.Count) - 1)];
    double meanRows = (model.Stats.BatchRows - rows) / Math.Max(1.0, model.Stats.Batches - batches);
    string tps = tokensPerRequest > 0 ? (latencies.Count * tokensPerRequest / elapsed).ToString("0", CultureInfo.InvariantCulture) : "-";
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
        $"| {name} | {(batching ? "on (max 32)" : "off")} | {latencies.Count} | {failed} | {latencies.Count / elapsed:0.0} | {tps} | {P(0.5):0} | {P(0.99):0} | {meanRows:0.0} |"));
    return failed;
}

static string LoadAverage()
{
    try { return string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)); }
    catch (IOException) { return "n/a"; }
}
