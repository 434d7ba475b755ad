// `tasklm export` of a real run folder: a LoRA classification run (adapter + trained head in best/) merged into its
// BERT base, exported as HF and as ONNX, gives the run's own predictions.
using System.Text.Json.Nodes;
using TaskLM.Models;
using TaskLM.Native;
using TaskLM.Onnx;
using TaskLM.Tests.Models;
using static TorchSharp.torch;

namespace TaskLM.Tests.Export;

public sealed class ExportRunTests : IDisposable
{
    readonly string _dir = Path.Combine(Path.GetTempPath(), "tasklm-export-run-" + Guid.NewGuid().ToString("N"));

    static ExportRunTests() => TorchBackend.EnsureLoaded();

    public void Dispose() { if (Directory.Exists(_dir)) Directory.Delete(_dir, recursive: true); }

    [Fact]
    public void A_lora_run_exports_to_hf_and_onnx_with_the_runs_logits()
    {
        Directory.CreateDirectory(_dir);
        // Pre-tokenized two-class data (the bert-cls base has three labels: the run's head has two rows, so export
        // must read the head size from the adapter).
        var rng = new Random(3);
        var rows = Enumerable.Range(0, 24).Select(i =>
        {
            var ids = new[] { 2 }.Concat(Enumerable.Range(0, 6).Select(_ => rng.Next(5, 1000))).Append(3).ToArray();
            return new JsonObject { ["input_ids"] = new JsonArray(ids.Select(v => (JsonNode)v).ToArray()), ["labels"] = i % 2 }.ToJsonString();
        }).ToList();
        File.WriteAllLines(Path.Combine(_dir, "train.jsonl"), rows);
        File.WriteAllLines(Path.Combine(_dir, "val.jsonl"), rows.Take(8));
        string recipe = Path.Combine(_dir, "lora.yaml");
        File.WriteAllText(recipe, $$$"""
            task: classification
            model: {init: '{{{Gpt2Tests.Fixture("bert-cls")}}}'}
            data: {train: train.jsonl, validation: val.jsonl, max_length: 16}
            strategy: {method: lora, lora: {r: 4, alpha: 8, dropout: 0.0, target_modules: [query, value]}}
            training: {max_steps: 6, batch_size: 4, lr: 1.0e-2, warmup: 0, eval_every: 3, tensorboard: false}
            """);
        string run = Path.Combine(_dir, "run");
        var train = CliRunner.Run(["train", recipe, "output_dir=" + run, "--threads", "1"], workingDirectory: _dir);
        Assert.True(train.ExitCode == 0, train.Stderr);
        string best = Path.Combine(run, "best");
        Assert.True(File.Exists(Path.Combine(best, "adapter_config.json")), "the LoRA run's best/ holds an adapter");

        // The run's model as evaluation loads it: base + adapter, not merged.
        var head = ModelFactory.FromPretrained(Gpt2Tests.Fixture("bert-cls"), "classification", 2);
        var lora = LoraModel.FromAdapter(head, best);
        lora.Module.eval();
        var ids = rows.Take(4).Select(r => JsonNode.Parse(r)!["input_ids"]!.AsArray().Select(x => (long)x!).ToArray()).ToArray();
        double[] want;
        using (var scope = NewDisposeScope())
        using (no_grad())
            want = lora.Forward(new ModelBatch { InputIds = tensor(ids.SelectMany(r => r).ToArray(), [4, ids[0].Length]) }).Logits!.to(float64).data<double>().ToArray();

        string hf = Path.Combine(_dir, "hf"), onnxDir = Path.Combine(_dir, "onnx");
        var r1 = CliRunner.Run("export", "--model", run, "--format", "hf", "--out", hf);
        Assert.True(r1.ExitCode == 0, r1.Stderr);
        var merged = ModelFactory.FromPretrained(hf);
        merged.Module.eval();
        Assert.Equal("classification", merged.Task);
        double[] got;
        using (var scope = NewDisposeScope())
        using (no_grad())
            got = merged.Forward(new ModelBatch { InputIds = tensor(ids.SelectMany(r => r).ToArray(), [4, ids[0].Length]) }).Logits!.to(float64).data<double>().ToArray();
        Assert.Equal(want.Length, got.Length);
        Assert.True(want.Zip(got, (a, b) => Math.Abs(a - b)).Max() < 1e-4, "merged HF export differs from the run's LoRA model");

        var r2 = CliRunner.Run("export", "--model", run, "--format", "onnx", "--out", onnxDir, "--json");
        Assert.True(r2.ExitCode == 0, r2.Stderr);
        var info = JsonNode.Parse(r2.Stdout)!;
        Assert.Equal("classification", (string)info["task"]!);
        using var onnx = OnnxTaskModel.Load(onnxDir);
        var ol = onnx.Forward(ids)["logits"];
        Assert.Equal([4L, 2L], ol.Shape);
        Assert.True(want.Zip(ol.Data, (a, b) => Math.Abs(a - b)).Max() < 1e-4, "ONNX export differs from the run's LoRA model");
    }
}
