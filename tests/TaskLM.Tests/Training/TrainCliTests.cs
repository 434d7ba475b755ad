// `tasklm train` end to end on a tiny GPT-2 preset: a SIGKILLed run resumed gives the uninterrupted loss curve; recipe errors.
using System.Diagnostics;
using System.Text.Json.Nodes;

namespace TaskLM.Tests.Training;

public class TrainCliTests
{
    static string Recipe(string dir)
    {
        // 48 pre-tokenized lines of a deterministic sequence rule; dropout on so resume must restore torch's RNG.
        var rng = new Random(5);
        var lines = Enumerable.Range(0, 48).Select(_ =>
        {
            int x = rng.Next(64); var ids = new List<int>();
            for (int i = 0; i < 12; i++) { ids.Add(x); x = (5 * x + 3) % 64; }
            return new JsonObject { ["input_ids"] = new JsonArray(ids.Select(v => (JsonNode)v).ToArray()) }.ToJsonString();
        });
        File.WriteAllLines(Path.Combine(dir, "train.jsonl"), lines);
        File.WriteAllLines(Path.Combine(dir, "val.jsonl"), lines.Take(8));
        string recipe = Path.Combine(dir, "tiny.yaml");
        File.WriteAllText(recipe, """
            task: causal-lm
            model:
              init: gpt2-tiny
              config: {vocab_size: 64, n_layer: 1, n_head: 2, n_embd: 16, n_positions: 16, resid_pdrop: 0.1, embd_pdrop: 0.1}
            data: {train: train.jsonl, validation: val.jsonl, max_length: 12}
            training: {max_steps: 36, batch_size: 4, lr: 3.0e-3, warmup: 0.1, save_every: 4, keep_last: 2, eval_every: 12, tensorboard: false}
            """);
        return recipe;
    }

    static List<(int step, double loss)> Losses(string runDir) =>
        File.ReadAllLines(Path.Combine(runDir, "metrics.jsonl")).Select(l => JsonNode.Parse(l)!).Where(j => j["loss"] != null)
            .Select(j => ((int)j["step"]!, (double)j["loss"]!)).ToList();

    [Fact]
    public void A_killed_run_resumes_onto_the_uninterrupted_loss_curve()
    {
        string dir = Path.Combine(Path.GetTempPath(), "tasklm-train-cli-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            string recipe = Recipe(dir);
            var full = CliRunner.Run(["train", recipe, "output_dir=" + Path.Combine(dir, "full"), "--threads", "1"], workingDirectory: dir);
            Assert.True(full.ExitCode == 0, full.Stderr);
            Assert.Contains("trainable params:", full.Stdout);
            var reference = Losses(Path.Combine(dir, "full"));
            Assert.Equal(Enumerable.Range(1, 36), reference.Select(x => x.step));
            Assert.True(File.Exists(Path.Combine(dir, "full", "recipe.resolved.yaml")));
            Assert.True(File.Exists(Path.Combine(dir, "full", "best", "model.safetensors")));

            // Second run: SIGKILL as soon as a checkpoint exists, then resume from the latest.
            string run = Path.Combine(dir, "killed");
            var psi = new ProcessStartInfo("dotnet") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = dir };
            foreach (var a in new[] { CliRunner.CliDll, "train", recipe, "output_dir=" + run, "--threads", "1" }) psi.ArgumentList.Add(a);
            using (var p = Process.Start(psi)!)
            {
                p.OutputDataReceived += (_, _) => { }; p.ErrorDataReceived += (_, _) => { };
                p.BeginOutputReadLine(); p.BeginErrorReadLine();
                var sw = Stopwatch.StartNew();
                while (!Directory.Exists(Path.Combine(run, "checkpoints", "step-8")) && !p.HasExited && sw.Elapsed.TotalSeconds < 240) Thread.Sleep(10);
                Assert.False(p.HasExited, "the run ended before it could be killed");
                p.Kill();   // SIGKILL on Unix
                p.WaitForExit();
            }
            Assert.False(Directory.Exists(Path.Combine(run, "checkpoints", "step-36")));
            var resumed = CliRunner.Run(["train", recipe, "output_dir=" + run, "--resume", "--threads", "1"], workingDirectory: dir);
            Assert.True(resumed.ExitCode == 0, resumed.Stderr);
            Assert.Contains("resumed from", resumed.Stdout);
            var curve = Losses(run);
            Assert.Equal(Enumerable.Range(1, 36), curve.Select(x => x.step));
            for (int i = 0; i < 36; i++) Assert.InRange(Math.Abs(curve[i].loss - reference[i].loss), 0, 1e-6);
            // Both sessions appended to the run's log file: the killed one up to its kill, the resumed one to the end.
            string trainLog = File.ReadAllText(Path.Combine(run, "train.log"));
            Assert.Equal(2, System.Text.RegularExpressions.Regex.Matches(trainLog, "tasklm train ").Count);
            Assert.Contains("resumed from", trainLog);
            Assert.Contains("step 36/36", trainLog);
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void Resident_memory_stays_flat_over_a_long_run()
    {
        string dir = Path.Combine(Path.GetTempPath(), "tasklm-train-mem-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            string recipe = Recipe(dir);
            var r = CliRunner.Run(["train", recipe, "output_dir=" + Path.Combine(dir, "long"), "training.max_steps=600", "training.save_every=0",
                "training.eval_every=200", "--threads", "1"], workingDirectory: dir);
            Assert.True(r.ExitCode == 0, r.Stderr);
            var rss = File.ReadAllLines(Path.Combine(dir, "long", "metrics.jsonl")).Select(l => JsonNode.Parse(l)!)
                .Where(j => j["rss_mb"] != null).Select(j => ((int)j["step"]!, (double)j["rss_mb"]!)).ToList();
            Assert.Equal(600, rss.Count);
            // After warm-up (allocator and libtorch caches filled by step 100, first eval done at 200), the last
            // 100 steps use no more memory than steps 200-300, within 5% plus 8 MB of allocator noise.
            double early = rss.Where(x => x.Item1 > 200 && x.Item1 <= 300).Max(x => x.Item2);
            double late = rss.Where(x => x.Item1 > 500).Max(x => x.Item2);
            Assert.True(late <= early * 1.05 + 8, $"resident memory grew from {early} MB to {late} MB");
        }
        finally { Directory.Delete(dir, true); }
    }

    // Spectre wraps long error lines at the console width.
    static string OneLine(string s) => System.Text.RegularExpressions.Regex.Replace(s, @"\s+", " ");

    [Fact]
    public void Recipe_mistakes_fail_with_the_key_and_a_suggestion()
    {
        string dir = Path.Combine(Path.GetTempPath(), "tasklm-train-bad-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            string recipe = Recipe(dir);
            var r = CliRunner.Run(["train", recipe, "training.batch_sise=8"], workingDirectory: dir);
            Assert.Equal(1, r.ExitCode);
            Assert.Contains("unknown key 'training.batch_sise'; did you mean 'training.batch_size'?", OneLine(r.Stderr));
            var r2 = CliRunner.Run(["train", recipe, "training.early_stopping.metric=f1", "output_dir=" + Path.Combine(dir, "es")], workingDirectory: dir);
            Assert.Equal(1, r2.ExitCode);
            Assert.Contains("evaluation produced no metric 'f1'; it produced: loss, perplexity", OneLine(r2.Stderr));
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void Embedding_init_runs_from_a_preset_and_is_refused_for_a_trained_folder()
    {
        string dir = Path.Combine(Path.GetTempPath(), "tasklm-train-ei-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            string recipe = Recipe(dir), run = Path.Combine(dir, "ei");
            var r = CliRunner.Run(["train", recipe, "model.embedding_init=ppmi-svd", "training.max_steps=4", "output_dir=" + run], workingDirectory: dir);
            Assert.True(r.ExitCode == 0, r.Stderr);
            Assert.Contains("model.embedding_init: ppmi-svd rows for ", OneLine(r.Stdout + r.Stderr));
            // Redirected output: the run summary's rule is a short line, not one as wide as the 32,768-column console.
            Assert.All(r.Stdout.Split('\n'), l => Assert.True(l.Length < 1000, $"a {l.Length}-character line: {l[..Math.Min(60, l.Length)]}"));
            var r2 = CliRunner.Run(["train", recipe, "model.embedding_init=ppmi-svd", "model.init=" + Path.Combine(run, "best"), "output_dir=" + Path.Combine(dir, "ei2")], workingDirectory: dir);
            Assert.Equal(1, r2.ExitCode);
            Assert.Contains("model.embedding_init applies to a model started from random", OneLine(r2.Stderr));
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void The_device_comes_from_the_option_else_the_recipe()
    {
        string dir = Path.Combine(Path.GetTempPath(), "tasklm-train-device-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            string recipe = Recipe(dir);
            // No --device: the recipe's training.device is used, so a bad one is named.
            var r = CliRunner.Run(["train", recipe, "training.device=gpu", "output_dir=" + Path.Combine(dir, "bad")], workingDirectory: dir);
            Assert.Equal(1, r.ExitCode);
            Assert.Contains("unknown device 'gpu'", OneLine(r.Stderr));
            // --device cpu wins over the recipe's setting.
            var ok = CliRunner.Run(["train", recipe, "training.device=gpu", "training.max_steps=2", "training.eval_every=2", "output_dir=" + Path.Combine(dir, "cpu"),
                "--device", "cpu", "--threads", "1"], workingDirectory: dir);
            Assert.True(ok.ExitCode == 0, ok.Stderr);
            Assert.Contains("device: cpu", File.ReadAllText(Path.Combine(dir, "cpu", "train.log")));
        }
        finally { Directory.Delete(dir, true); }
    }
    [Fact]
    public void A_second_run_into_an_output_dir_in_use_is_refused_naming_the_first_and_a_killed_run_frees_it()
    {
        // Audit BAD 3: two runs into one output_dir both exited 0 and one run's results were gone.
        string dir = Path.Combine(Path.GetTempPath(), "tasklm-train-lock-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            string recipe = Recipe(dir), run = Path.Combine(dir, "run");
            using (TaskLM.Training.RunFolderLock.Acquire(run))   // this test process stands for the first run
            {
                var second = CliRunner.Run(["train", recipe, "output_dir=" + run, "--threads", "1"], workingDirectory: dir);
                Assert.NotEqual(0, second.ExitCode);
                Assert.Contains("another training run", second.Stderr);
                Assert.Contains($"pid {Environment.ProcessId}", second.Stderr);
                Assert.False(File.Exists(Path.Combine(run, "recipe.resolved.yaml")));
                Assert.False(File.Exists(Path.Combine(run, "train.log")));
            }
            // A run killed with SIGKILL holds nothing: the kernel drops its lock with the process.
            var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false, WorkingDirectory = dir };
            foreach (var a in new[] { CliRunner.CliDll, "train", recipe, "output_dir=" + run, "training.max_steps=100000", "--threads", "1" }) psi.ArgumentList.Add(a);
            using (var first = Process.Start(psi)!)
            {
                first.OutputDataReceived += (_, _) => { }; first.ErrorDataReceived += (_, _) => { };
                first.BeginOutputReadLine(); first.BeginErrorReadLine();
                var sw = Stopwatch.StartNew();
                while (!File.Exists(Path.Combine(run, "metrics.jsonl")) && sw.Elapsed < TimeSpan.FromMinutes(2) && !first.HasExited) Thread.Sleep(100);
                Assert.False(first.HasExited, "the first run ended before it was killed");
                var busy = CliRunner.Run(["train", recipe, "output_dir=" + run, "--overwrite", "--threads", "1"], workingDirectory: dir);
                Assert.Contains($"pid {first.Id}", busy.Stderr);
                Assert.Equal(0, CliRunner.Kill(first.Id, 9));
                first.WaitForExit();
            }
            var after = CliRunner.Run(["train", recipe, "output_dir=" + run, "--overwrite", "training.max_steps=2", "--threads", "1"], workingDirectory: dir);
            Assert.True(after.ExitCode == 0, after.Stderr);
        }
        finally { Directory.Delete(dir, true); }
    }
}
