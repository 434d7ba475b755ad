// Benchmarks: `dotnet run -c Release --project bench/TaskLM.Bench -- generation [preset] [new-tokens] [threads]`.
using System.Diagnostics;
using TaskLM.Models;
using TaskLM.Native;
using static TorchSharp.torch;

string what = args.Length > 0 ? args[0] : "generation";
if (what != "generation" && what != "forward") { Console.Error.WriteLine($"unknown benchmark '{what}' (generation, forward)"); return 1; }
string preset = args.Length > 1 ? args[1] : "gpt2-mini";
int newTokens = args.Length > 2 ? int.Parse(args[2]) : 128;
int threads = args.Length > 3 ? int.Parse(args[3]) : 0;

TorchBackend.EnsureLoaded();
TorchBackend.SetThreads(threads);
manual_seed(0);
var model = (Gpt2)ModelFactory.FromPreset(preset, "causal-lm");
if (what == "forward")
{
    // Forward passes with loss on (2, 16) ids, one dispose scope each: time per pass and resident memory.
    var ids = randint(0, 1000, new long[] { 2, 16 });
    void Step() { using var scope = NewDisposeScope(); using var _ = no_grad(); model.Forward(new ModelBatch { InputIds = ids, Labels = ids }).Loss!.item<float>(); }
    for (int i = 0; i < 20; i++) Step();
    long before = Environment.WorkingSet;
    var sw = Stopwatch.StartNew();
    for (int i = 0; i < newTokens; i++) Step();
    Console.WriteLine($"forward benchmark: {preset}, threads {get_num_threads()}: {sw.Elapsed.TotalMilliseconds / newTokens:0.00} ms/pass over {newTokens} passes; " +
                      $"resident {before >> 20} -> {Environment.WorkingSet >> 20} MiB");
    return 0;
}
var prompt = Enumerable.Range(0, 16).Select(i => 1000 + 37 * i).ToArray();
Console.WriteLine($"generation benchmark: {preset} ({model.Module.parameters().Sum(p => p.numel()) / 1e6:0.0}M params), prompt 16 tokens, " +
                  $"{newTokens} new tokens, greedy, batch 1, CPU threads {get_num_threads()}, {Environment.ProcessorCount} logical cores");

double Run(bool cache)
{
    var opts = new GenerationOptions { MaxNewTokens = newTokens, EosTokenId = -1, UseCache = cache };
    Generation.Generate(model, new[] { prompt }, new GenerationOptions { MaxNewTokens = 8, EosTokenId = -1, UseCache = cache }); // warm-up
    var times = new List<double>();
    List<int[]>? first = null;
    for (int rep = 0; rep < 3; rep++)
    {
        var sw = Stopwatch.StartNew();
        var outp = Generation.Generate(model, new[] { prompt }, opts);
        times.Add(sw.Elapsed.TotalSeconds);
        first ??= outp;
    }
    times.Sort();
    double tps = newTokens / times[1];
    Console.WriteLine($"  KV cache {(cache ? "on " : "off")}: {tps,8:0.0} tokens/s (median of 3 runs, {times[1]:0.00} s each)");
    return tps;
}

double on = Run(true), off = Run(false);
Console.WriteLine($"  speed-up from the cache: {on / off:0.0}x");
return 0;
