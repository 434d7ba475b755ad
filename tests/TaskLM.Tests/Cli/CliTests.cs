// The `tasklm` program as a user meets it: help, errors, quickstart.
namespace TaskLM.Tests.Cli;

public class CliTests
{
    [Fact]
    public void HelpListsEveryVerbWithOneLineEach()
    {
        var r = CliRunner.Run("--help");
        Assert.Equal(0, r.ExitCode);
        foreach (string verb in new[] { "env", "quickstart" })
            Assert.Matches($@"(?m)^\s+{verb}\s+\S", r.Stdout);
    }

    [Fact]
    public void BadDeviceIsOneLineErrorWithNonZeroExit()
    {
        var r = CliRunner.Run("env", "--device", "tpu");
        Assert.Equal(1, r.ExitCode);
        Assert.Equal("error: unknown device 'tpu': use auto, cpu, cuda or cuda:N", r.Stderr.Trim());

        var v = CliRunner.Run("env", "--device", "tpu", "--verbose");
        Assert.Equal(1, v.ExitCode);
        Assert.Contains("ResolveDevice", v.Stderr); // stack trace only with --verbose
    }

    [Fact]
    public void QuickstartRunsTheSpamJourneyAndWritesARunFolder()
    {
        string dir = Directory.CreateTempSubdirectory("tasklm-quickstart").FullName;
        try
        {
            string repo = new DirectoryInfo(AppContext.BaseDirectory).Parent!.Parent!.Parent!.Parent!.Parent!.FullName;
            Assert.True(File.Exists(Path.Combine(repo, "TaskLM.slnx")), repo);
            // A stand-in base encoder (2 masked-LM steps of bert-tiny on the fixture WordPiece vocabulary): the test
            // checks the journey, not the shipped model's quality, and stays cheap.
            string corpus = Path.Combine(dir, "mlm.jsonl");
            File.WriteAllLines(corpus, Enumerable.Range(0, 16).Select(i => $"{{\"text\": \"free money offer number {i} meeting notes attached\"}}"));
            string recipe = Path.Combine(dir, "mlm.yaml");
            File.WriteAllText(recipe, $"task: masked-lm\nmodel: {{init: bert-tiny, config: {{max_position_embeddings: 64}}}}\ntokenizer: '{Path.Combine(repo, "tests", "fixtures", "hf", "tok-wordpiece")}'\n"
                + $"data: {{train: '{corpus}', max_length: 32}}\ntraining: {{max_steps: 2, batch_size: 8, eval_every: none}}\noutput_dir: '{Path.Combine(dir, "base")}'\n");
            var b = CliRunner.Run("train", recipe, "--json", "--threads", "2");
            Assert.True(b.ExitCode == 0, b.Stderr + b.Stdout);

            string run = Path.Combine(dir, "qs");
            var r = CliRunner.Run("quickstart", "--model", Path.Combine(dir, "base", "checkpoints", "step-2"), "--data-dir", Path.Combine(repo, "data"),
                "--max-steps", "4", "--max-train", "200", "--max-eval", "60", "--max-length", "32", "--eval-every", "2", "--out", run, "--json", "--threads", "2");
            Assert.True(r.ExitCode == 0, r.Stderr + r.Stdout);
            var j = System.Text.Json.Nodes.JsonNode.Parse(r.Stdout)!;
            // Every stage left its file: import, clean report, splits, run folder with best/, eval.json, report.
            foreach (var f in new[] { "data/emails.jsonl", "data/clean-report.json", "data/train.jsonl", "data/validation.jsonl", "data/test.jsonl",
                         "recipe.resolved.yaml", "metrics.jsonl", "best/config.json", "best/vocab.txt", "eval.json", "report.html",
                         "baseline/config.json", "baseline/model.safetensors" })
                Assert.True(File.Exists(Path.Combine(run, f)), f);
            Assert.Equal(200, File.ReadAllLines(Path.Combine(run, "data", "train.jsonl")).Length);
            var eval = j["eval"]!;
            Assert.Equal(60, eval["n"]!.GetValue<int>());
            Assert.NotNull(eval["confusion_matrix"]);
            Assert.NotNull(eval["baseline"]!["metrics"]!["f1_spam"]);
            // The default path: frozen features, and the model + baseline mix weighed on validation (what ships is recorded).
            Assert.Contains("method: features", File.ReadAllText(Path.Combine(run, "recipe.resolved.yaml")));
            Assert.NotNull(eval["ensemble"]!["weight"]);
            // The header block follows the body in every split's text (appended after dedup).
            Assert.Contains("Received:", File.ReadAllText(Path.Combine(run, "data", "test.jsonl")));
            Assert.Contains("Model vs baseline", File.ReadAllText(Path.Combine(run, "report.md")));
            var tries = j["tries"]!.AsArray();
            Assert.Equal(3, tries.Count);
            Assert.All(tries, t => Assert.Contains(t!["output"]!.GetValue<string>(), new[] { "ham", "spam" }));
            // Clean and dedup removed the corpus' duplicate e-mails before the split.
            var clean = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(run, "data", "clean-report.json")))!;
            Assert.True(clean["removed_rows"]!.GetValue<long>() > 0);
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void QuickstartNamesAMissingBaseModel()
    {
        var r = CliRunner.Run("quickstart", "--model", "no/such/model", "--device", "cpu");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("base model folder 'no/such/model' not found", r.Stderr);
    }
}
