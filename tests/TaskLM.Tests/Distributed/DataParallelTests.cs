// Data-parallel training under MPICH's mpiexec on loopback: same curve and weights as one process, a killed rank ends the job, resume on another world size.
using System.Diagnostics;
using System.Text.Json.Nodes;
using TaskLM.Models;

namespace TaskLM.Tests.Distributed;

// Serial: two ranks of one thread each want the cores to themselves.
[Collection(SerialCollection.Name)]
public class DataParallelTests
{
    static string Mpiexec =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Select(d => Path.Combine(d, "mpiexec")).FirstOrDefault(File.Exists)
        ?? throw new InvalidOperationException("mpiexec not found: these tests need MPICH (apt-get install -y mpich)");

    /// <summary>A tiny causal LM on a deterministic language, dropout off (per-rank dropout masks cannot equal one
    /// process's), global batch 8 = 4 per rank.</summary>
    static string Recipe(string dir, int steps, int saveEvery)
    {
        var rng = new Random(5);
        var lines = Enumerable.Range(0, 40).Select(_ =>
        {
            int x = rng.Next(64); var ids = new List<int>();
            for (int i = 0; i < 12; i++) { ids.Add(x); x = (5 * x + 3) % 64; }
            return new JsonObject { ["input_ids"] = new JsonArray(ids.Select(v => (JsonNode)v).ToArray()) }.ToJsonString();
        }).ToList();
        File.WriteAllLines(Path.Combine(dir, "train.jsonl"), lines);
        File.WriteAllLines(Path.Combine(dir, "val.jsonl"), lines.Take(12));
        string recipe = Path.Combine(dir, "dp.yaml");
        File.WriteAllText(recipe, $$"""
            task: causal-lm
            model:
              init: gpt2-tiny
              config: {vocab_size: 64, n_layer: 1, n_head: 2, n_embd: 16, n_positions: 16, resid_pdrop: 0.0, embd_pdrop: 0.0, attn_pdrop: 0.0}
            data: {train: train.jsonl, validation: val.jsonl, max_length: 12}
            training: {max_steps: {{steps}}, batch_size: 8, lr: 3.0e-3, warmup: 0.1, save_every: {{saveEvery}}, keep_last: 5, eval_every: 6, tensorboard: false}
            """);
        return recipe;
    }

    static List<(int Step, double Loss)> Losses(string runDir) =>
        File.ReadAllLines(Path.Combine(runDir, "metrics.jsonl")).Select(l => JsonNode.Parse(l)!).Where(j => j["loss"] != null)
            .Select(j => ((int)j["step"]!, (double)j["loss"]!)).ToList();

    static CliResult RunMpi(int n, string dir, params string[] args)
    {
        var psi = new ProcessStartInfo(Mpiexec) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false, WorkingDirectory = dir };
        foreach (var a in new[] { "-n", n.ToString(), "dotnet", CliRunner.CliDll }.Concat(args)) psi.ArgumentList.Add(a);
        psi.Environment["NO_COLOR"] = "1";
        using var p = Process.Start(psi)!;
        var o = p.StandardOutput.ReadToEndAsync(); var e = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(300_000)) { p.Kill(true); throw new TimeoutException("mpiexec ran past 300 s"); }
        return new CliResult(p.ExitCode, o.Result, e.Result);
    }

    static void AssertSameWeights(string a, string b)
    {
        var wa = SafeTensors.Load(Path.Combine(a, "model.safetensors"));
        var wb = SafeTensors.Load(Path.Combine(b, "model.safetensors"));
        Assert.Equal(wa.Keys.Order(), wb.Keys.Order());
        foreach (var (k, t) in wa)
        {
            double d = (t - wb[k]).abs().max().item<float>();
            Assert.True(d < 1e-5, $"{k}: weights differ by {d}");
        }
    }

    [Fact]
    public void Two_ranks_give_the_single_process_losses_and_weights_and_one_metrics_file_then_resume_on_one_rank()
    {
        string dir = Path.Combine(Path.GetTempPath(), "tasklm-dp-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            string recipe = Recipe(dir, steps: 12, saveEvery: 6);
            var single = CliRunner.Run(["train", recipe, "output_dir=" + Path.Combine(dir, "one"), "--threads", "1"], workingDirectory: dir);
            Assert.True(single.ExitCode == 0, single.Stderr);
            var two = RunMpi(2, dir, "train", recipe, "output_dir=" + Path.Combine(dir, "two"), "--threads", "1");
            Assert.True(two.ExitCode == 0, two.Stderr);

            var l1 = Losses(Path.Combine(dir, "one")); var l2 = Losses(Path.Combine(dir, "two"));
            Assert.Equal(12, l1.Count);
            Assert.Equal(l1.Select(x => x.Step), l2.Select(x => x.Step));          // one line per step: only rank 0 wrote
            for (int i = 0; i < l1.Count; i++)
                Assert.True(Math.Abs(l1[i].Loss - l2[i].Loss) < 1e-5, $"step {l1[i].Step}: {l1[i].Loss} vs {l2[i].Loss}");
            Assert.Single(Directory.GetFiles(Path.Combine(dir, "two"), "metrics*.jsonl"));
            AssertSameWeights(Path.Combine(dir, "one", "checkpoints", "step-12"), Path.Combine(dir, "two", "checkpoints", "step-12"));
            var state = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "two", "checkpoints", "step-6", "trainer_state.json")))!;
            Assert.Equal(2, (int)state["world_size"]!);
            // Evaluation was sharded over the ranks and reduced: the same numbers as one process's.
            var ev1 = File.ReadAllLines(Path.Combine(dir, "one", "metrics.jsonl")).Where(l => l.Contains("\"eval\"")).Select(l => (double)JsonNode.Parse(l)!["eval"]!["loss"]!).ToList();
            var ev2 = File.ReadAllLines(Path.Combine(dir, "two", "metrics.jsonl")).Where(l => l.Contains("\"eval\"")).Select(l => (double)JsonNode.Parse(l)!["eval"]!["loss"]!).ToList();
            Assert.Equal(2, ev2.Count);
            for (int i = 0; i < ev1.Count; i++) Assert.True(Math.Abs(ev1[i] - ev2[i]) < 1e-5, $"eval {i}: {ev1[i]} vs {ev2[i]}");

            // The 2-rank checkpoint at step 6 resumed by one process continues the same curve.
            var resumed = CliRunner.Run(["train", recipe, "output_dir=" + Path.Combine(dir, "two"), "--threads", "1",
                "--resume", Path.Combine(dir, "two", "checkpoints", "step-6")], workingDirectory: dir);
            Assert.True(resumed.ExitCode == 0, resumed.Stderr);
            Assert.Contains("saved by 2 rank(s), now 1", resumed.Stdout);
            var lr = Losses(Path.Combine(dir, "two"));
            Assert.Equal(l1.Select(x => x.Step), lr.Select(x => x.Step));
            for (int i = 6; i < 12; i++)
                Assert.True(Math.Abs(l1[i].Loss - lr[i].Loss) < 1e-5, $"resumed step {lr[i].Step}: {lr[i].Loss} vs {l1[i].Loss}");
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public async Task Killing_one_rank_ends_the_job_with_an_error_naming_it()
    {
        _ = Mpiexec;
        string dir = Path.Combine(Path.GetTempPath(), "tasklm-dp-kill-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            string recipe = Recipe(dir, steps: 100000, saveEvery: 0);
            var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false, WorkingDirectory = dir };
            foreach (var a in new[] { CliRunner.CliDll, "train", recipe, "output_dir=" + Path.Combine(dir, "run"), "--threads", "1", "--nproc", "2" }) psi.ArgumentList.Add(a);
            psi.Environment["NO_COLOR"] = "1";
            psi.Environment["TMPDIR"] = dir;   // the launcher's rank → pid files land here
            using var p = Process.Start(psi)!;
            var o = p.StandardOutput.ReadToEndAsync(); var e = p.StandardError.ReadToEndAsync();
            // Wait until both ranks train (metrics.jsonl has lines), then kill rank 1.
            string metrics = Path.Combine(dir, "run", "metrics.jsonl");
            var sw = Stopwatch.StartNew();
            string? pidFile = null;
            while (sw.Elapsed.TotalSeconds < 240 && !p.HasExited)
            {
                pidFile = Directory.GetFiles(dir, "rank-1.pid", SearchOption.AllDirectories).FirstOrDefault();
                if (pidFile != null && File.Exists(metrics) && new FileInfo(metrics).Length > 0) break;
                await Task.Delay(200);
            }
            if (p.HasExited) Assert.Fail("the job ended before it could be killed: " + await e);
            Assert.NotNull(pidFile);
            Process.GetProcessById(int.Parse(File.ReadAllText(pidFile).Trim())).Kill();
            var killed = Stopwatch.StartNew();
            bool ended = p.WaitForExit(60_000);
            if (!ended) p.Kill(true);
            Assert.True(ended, "the job was still running 60 s after a rank was killed");
            Assert.NotEqual(0, p.ExitCode);
            string err = await e;
            await o;
            Assert.True(err.Contains("error: rank 1 of 2", StringComparison.Ordinal) && err.Contains("died", StringComparison.Ordinal), err);
            Assert.DoesNotContain("==== backtrace", err);   // the transport's native frames are left out (audit)
            Console.WriteLine($"job ended {killed.Elapsed.TotalSeconds:F1} s after rank 1 was killed");
        }
        finally { Directory.Delete(dir, true); }
    }
}
