// tasklm tune on the spam recipe with a tiny model: TPE + ASHA prunes and finds a better-than-median trial, a re-run
// continues the study, a SIGKILL mid-trial leaves no duplicate, and two workers share a grid without repeats.
using System.Diagnostics;
using System.Text.Json.Nodes;
using Microsoft.Data.Sqlite;

namespace TaskLM.Tests.Cli;

[Collection(RecipeCollection.Name)]
public class TuneCliTests
{
    static readonly string Spam = Path.Combine(RecipeWorkspace.RecipesDir, "spam.yaml");

    // A small mixed sample of the spam splits (the splits list all ham first), so a 20-step trial sees both labels.
    static readonly Lazy<(string train, string val)> Small = new(() =>
    {
        RecipeWorkspace.Prepare(Spam);
        string dir = Path.Combine(RecipeWorkspace.Dir, "spam-small");
        Directory.CreateDirectory(dir);
        string Sample(string split, int n)
        {
            var rows = File.ReadAllLines(Path.Combine(RecipeWorkspace.Dir, "data/spam-assassin/splits", split + ".jsonl"));
            new Random(7).Shuffle(rows);
            string path = Path.Combine(dir, split + ".jsonl");
            File.WriteAllLines(path, rows.Take(n));
            return path;
        }
        return (Sample("train", 320), Sample("validation", 120));
    });

    static List<string> Tiny(string output, int steps = 20, int evalEvery = 5) =>
    [
        $"data.train={Small.Value.train}", $"data.validation={Small.Value.val}", "data.test=null", "data.max_length=64",
        "model.config.n_layer=1", "model.config.n_embd=32", "model.config.n_head=2",
        $"training.max_steps={steps}", $"training.eval_every={evalEvery}", "training.save_every=0", "training.eval_batch_size=64",
        "training.tensorboard=false", $"output_dir={output}",
    ];

    static List<(int number, string state, double? value, string config, int interrupted, int pid)> Rows(string studyDir)
    {
        var list = new List<(int, string, double?, string, int, int)>();
        using var db = new SqliteConnection($"Data Source={Path.Combine(studyDir, "study.db")};Pooling=False;Mode=ReadOnly");
        db.Open();
        using var cmd = db.CreateCommand();
        cmd.CommandText = "SELECT number, state, value, config, interrupted, pid FROM trials ORDER BY number";
        using var r = cmd.ExecuteReader();
        while (r.Read()) list.Add((r.GetInt32(0), r.GetString(1), r.IsDBNull(2) ? null : r.GetDouble(2), r.GetString(3), r.GetInt32(4), r.GetInt32(5)));
        return list;
    }

    static CliResult Tune(string study, int trials, IEnumerable<string> extra, List<string> overrides) =>
        CliRunner.Run(["tune", Spam, .. overrides, "--trials", trials.ToString(), "--study-dir", study, "--threads", "1", "--json", .. extra],
            timeoutSeconds: 900, workingDirectory: RecipeWorkspace.Dir);

    [Fact]
    public void Tpe_with_asha_prunes_finds_a_better_than_median_trial_and_a_rerun_continues()
    {
        string study = Path.Combine(RecipeWorkspace.Dir, "studies", "tpe-asha");
        var o = Tiny(Path.Combine(RecipeWorkspace.Dir, "runs", "tune-a"));
        var r = Tune(study, 10, ["--sampler", "tpe", "--pruner", "asha"], o);
        Assert.True(r.ExitCode == 0, r.Stderr);
        var first = Rows(study);
        Assert.Equal(10, first.Count);
        // Re-running with a larger budget continues: the first ten trials stay as they were, two more run.
        r = Tune(study, 12, ["--sampler", "tpe", "--pruner", "asha"], o);
        Assert.True(r.ExitCode == 0, r.Stderr);
        var board = JsonNode.Parse(r.Stdout)!;
        var rows = Rows(study);
        Assert.Equal(12, rows.Count);
        Assert.Equal(first, rows.Take(10));
        Assert.Equal(Enumerable.Range(0, 12), rows.Select(x => x.number));
        Assert.Equal(12, rows.Select(x => x.config).Distinct().Count());
        Assert.All(rows, x => Assert.Contains(x.state, new[] { "complete", "pruned" }));
        Assert.True(rows.Count(x => x.state == "pruned") >= 1, "ASHA pruned no trial");
        // The best trial (each trial's best evaluation) beats the median trial.
        var values = rows.Where(x => x.value != null).Select(x => x.value!.Value).Order().ToList();
        double median = values.Count % 2 == 1 ? values[values.Count / 2] : (values[values.Count / 2 - 1] + values[values.Count / 2]) / 2;
        double best = board["best"]!["value"]!.GetValue<double>();
        Assert.True(best > median, $"best {best} vs median {median}");
        Assert.Equal(rows.Where(x => x.state == "complete").Max(x => x.value), best);
        // Leaderboard, plots, the winner's model and a ready-to-train recipe; no other trial keeps a best/.
        Assert.Equal(12, board["trials"]!.AsArray().Count);
        Assert.Equal(best, board["trials"]![0]!["value"]!.GetValue<double>());
        Assert.True(File.Exists(Path.Combine(study, "leaderboard.json")));
        Assert.True(File.Exists(Path.Combine(study, "plots", "trials.png")));
        Assert.True(File.Exists(Path.Combine(study, "plots", "param-training.lr.png")));
        int bestTrial = board["best"]!["trial"]!.GetValue<int>();
        var withBest = Directory.EnumerateDirectories(Path.Combine(study, "trials")).Where(d => Directory.Exists(Path.Combine(d, "best"))).ToList();
        Assert.Equal([Path.Combine(study, "trials", $"trial-{bestTrial:D4}")], withBest);
        string bestRecipe = Path.Combine(study, "best-recipe.yaml");
        var lr = board["trials"]![0]!["params"]!["training.lr"]!.GetValue<double>();
        Assert.Contains($"lr: {lr.ToString("R", System.Globalization.CultureInfo.InvariantCulture)}", File.ReadAllText(bestRecipe));
        Assert.Equal(0, CliRunner.Run(["recipe", "validate", bestRecipe], workingDirectory: RecipeWorkspace.Dir).ExitCode);
        // The same command once more: the budget is spent, nothing runs again.
        r = Tune(study, 12, ["--sampler", "tpe", "--pruner", "asha"], o);
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Equal(rows, Rows(study));
    }

    [Fact]
    public void A_study_killed_mid_trial_resumes_without_a_duplicate_trial()
    {
        string study = Path.Combine(RecipeWorkspace.Dir, "studies", "killed");
        var o = Tiny(Path.Combine(RecipeWorkspace.Dir, "runs", "tune-k"), steps: 40, evalEvery: 10);
        var psi = new ProcessStartInfo("dotnet") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = RecipeWorkspace.Dir };
        foreach (var a in new[] { CliRunner.CliDll, "tune", Spam }.Concat(o).Concat(["--trials", "3", "--study-dir", study, "--threads", "1", "--pruner", "none", "--json"])) psi.ArgumentList.Add(a);
        using (var p = Process.Start(psi)!)
        {
            p.OutputDataReceived += (_, _) => { }; p.ErrorDataReceived += (_, _) => { };
            p.BeginOutputReadLine(); p.BeginErrorReadLine();
            // Wait until the second trial is training (its metrics.jsonl has step lines), then SIGKILL.
            var sw = Stopwatch.StartNew();
            string metrics = Path.Combine(study, "trials", "trial-0001", "metrics.jsonl");
            while (!(File.Exists(metrics) && File.ReadAllLines(metrics).Length >= 2))
            {
                Assert.False(p.HasExited, "tune ended before it could be killed");
                Assert.True(sw.Elapsed < TimeSpan.FromMinutes(8), "trial 1 never started");
                Thread.Sleep(100);
            }
            p.Kill(entireProcessTree: true);
            p.WaitForExit();
        }
        var killed = Rows(study);
        Assert.Equal(["complete", "running"], killed.Select(x => x.state));
        var r = CliRunner.Run(["tune", Spam, .. o, "--trials", "3", "--study-dir", study, "--threads", "1", "--pruner", "none", "--json"], timeoutSeconds: 900, workingDirectory: RecipeWorkspace.Dir);
        Assert.True(r.ExitCode == 0, r.Stderr);
        var rows = Rows(study);
        // The interrupted trial is marked failed (not counted); three trials ran to the end, none twice.
        Assert.Equal(4, rows.Count);
        Assert.Equal(("failed", 1), (rows[1].state, rows[1].interrupted));
        var live = rows.Where(x => x.interrupted == 0).ToList();
        Assert.Equal(3, live.Count);
        Assert.All(live, x => Assert.Equal("complete", x.state));
        Assert.Equal(3, live.Select(x => x.config).Distinct().Count());
        Assert.Equal(killed[0], rows[0]);
        var board = JsonNode.Parse(r.Stdout)!;
        Assert.Equal(1, board["counts"]!["failed"]!.GetValue<int>());
        Assert.Contains("interrupted", board["trials"]!.AsArray().First(t => t!["trial"]!.GetValue<int>() == 1)!["error"]!.GetValue<string>());
    }

    [Fact]
    public void Two_workers_share_a_grid_without_running_a_configuration_twice()
    {
        string dir = Path.Combine(RecipeWorkspace.Dir, "grid");
        Directory.CreateDirectory(dir);
        string recipe = Path.Combine(dir, "spam-grid.yaml");
        string text = File.ReadAllText(Spam);
        File.WriteAllText(recipe, text[..text.IndexOf("search:", StringComparison.Ordinal)] +
            "search:\n  training.batch_size: {choice: [4, 8]}\n  training.lr: {choice: [1.0e-3, 2.0e-3]}\n  training.warmup: {uniform: [0.0, 0.1], step: 0.1}\n");
        string study = Path.Combine(dir, "study");
        var o = Tiny(Path.Combine(dir, "run"), steps: 4, evalEvery: 4);
        var r = CliRunner.Run(["tune", recipe, .. o, "--trials", "10", "--study-dir", study, "--sampler", "grid", "--pruner", "none", "--workers", "2", "--threads", "1", "--json"],
            timeoutSeconds: 900, workingDirectory: RecipeWorkspace.Dir);
        Assert.True(r.ExitCode == 0, r.Stderr);
        var rows = Rows(study);
        Assert.Equal(8, rows.Count);                              // the grid has 2 × 2 × 2 points: the budget of 10 stops there
        Assert.Equal(8, rows.Select(x => x.config).Distinct().Count());
        Assert.Equal(2, rows.Select(x => x.pid).Distinct().Count());
        Assert.All(rows, x => Assert.Equal("complete", x.state));
    }
}
