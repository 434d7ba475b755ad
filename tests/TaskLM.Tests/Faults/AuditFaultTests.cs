// The 2026-12-07 fault audit's WEAK cases (../shared/reliability-cases.tsv), through the `tasklm` program: each refused
// up front with a message naming the key, option or file, and nothing left behind.
using TaskLM.Tests.Serving;

namespace TaskLM.Tests.Faults;

public class AuditFaultTests
{
    static string NewDir(string tag) => TrainingFaultTests.NewDir("audit-" + tag);

    static CliResult Tasklm(string dir, params string[] args) => CliRunner.Run([.. args, "--threads", "1"], workingDirectory: dir);

    static string OneLine(string s) => TrainingFaultTests.OneLine(s);

    /// <summary>A run folder as `tasklm train` leaves it: a 3-class BERT classifier in <paramref name="modelDir"/>
    /// (best/ or a checkpoint) and recipe.resolved.yaml with the given data section lines.</summary>
    static string FakeRun(string run, string modelDir, string data = "  train: train.jsonl\n")
    {
        string weights = Path.Combine(run, modelDir);
        Directory.CreateDirectory(weights);
        foreach (var f in Directory.GetFiles(ServingFixtures.Bert("bert-cls", ["ham", "spam", "eggs"]))) File.Copy(f, Path.Combine(weights, Path.GetFileName(f)));
        File.WriteAllText(Path.Combine(run, "recipe.resolved.yaml"), "task: classification\nmodel:\n  init: bert-tiny\ndata:\n" + data + "  max_length: 32\n");
        return weights;
    }

    /// <summary>A 2-class CSV and a tiny GPT-2 classifier recipe on it (32 positions).</summary>
    static string ClsRecipe(string dir, bool oneLabel = false)
    {
        var rows = new List<string> { "text,label" };
        for (int i = 0; i < 24; i++) rows.Add(i % 2 == 0 || oneLabel ? $"win a free prize now {i},spam" : $"meeting moved to monday {i},ham");
        File.WriteAllLines(Path.Combine(dir, "cls.csv"), rows);
        string recipe = Path.Combine(dir, "cls.yaml");
        File.WriteAllText(recipe, """
            task: classification
            model:
              init: gpt2-tiny
              config: {n_layer: 1, n_head: 2, n_embd: 16, n_positions: 32, pad_token_id: 50256}
            tokenizer: gpt2
            data: {train: cls.csv, validation: cls.csv, max_length: 16}
            training: {max_steps: 2, batch_size: 8, lr: 1.0e-3, eval_every: 2, tensorboard: false}
            evaluation: {baseline: false}
            """);
        return recipe;
    }

    [Fact]
    public void Training_setup_problems_are_refused_before_anything_is_written()
    {
        string dir = NewDir("train");
        try
        {
            string recipe = ClsRecipe(dir);
            // data.max_length past the model's positions: named with the limit, and the corrected rerun is not blocked.
            var r = Tasklm(dir, "train", recipe, "data.max_length=40", "output_dir=run");
            Assert.NotEqual(0, r.ExitCode);
            Assert.Contains("data.max_length 40", OneLine(r.Stderr));
            Assert.Contains("32 positions", OneLine(r.Stderr));
            Assert.False(File.Exists(Path.Combine(dir, "run", "recipe.resolved.yaml")));
            var ok = Tasklm(dir, "train", recipe, "output_dir=run");
            Assert.True(ok.ExitCode == 0, ok.Stderr);

            // A zero class weight (0/0 losses at batch 1, read as divergence) is refused naming the entry.
            r = Tasklm(dir, "train", recipe, "training.class_weights=[1.0,0.0]", "output_dir=run-cw");
            Assert.NotEqual(0, r.ExitCode);
            Assert.Contains("training.class_weights[1] is 0", OneLine(r.Stderr));

            // One label in the training file: refused before training, naming the user's file.
            string one = Path.Combine(dir, "one");
            Directory.CreateDirectory(one);
            string oneRecipe = ClsRecipe(one, oneLabel: true);
            r = Tasklm(one, "train", oneRecipe, "data.validation=null", "output_dir=run");
            Assert.NotEqual(0, r.ExitCode);
            Assert.Contains("cls.csv: every training example has the label 'spam'", OneLine(r.Stderr));
            Assert.False(File.Exists(Path.Combine(one, "run", "recipe.resolved.yaml")));

            // A model folder without tokenizer files is named, not the data file.
            string notok = Path.Combine(dir, "notok");
            Directory.CreateDirectory(notok);
            foreach (var f in new[] { "config.json", "model.safetensors" })
                File.Copy(Path.Combine(ServingFixtures.Hf("bert-cls"), f), Path.Combine(notok, f));
            r = Tasklm(dir, "train", recipe, "model.init=notok", "tokenizer=null", "model.config=null", "output_dir=run-notok");
            Assert.NotEqual(0, r.ExitCode);
            Assert.Contains("notok: the model folder has no tokenizer files", OneLine(r.Stderr));
        }
        finally { Directory.Delete(dir, true); }
    }

    [Theory]
    [InlineData("--port", "70000", "--port must be between 0 and 65535")]
    [InlineData("--max-body-bytes", "-1", "--max-body-bytes must be at least 1")]
    [InlineData("--max-queue", "0", "--max-queue must be at least 1")]
    public void Serve_options_out_of_range_name_the_option(string option, string value, string message)
    {
        string dir = NewDir("serve");
        try
        {
            var r = Tasklm(dir, "serve", "--model", ServingFixtures.Hf("gpt2-tiny"), option, value);
            Assert.Equal(1, r.ExitCode);
            Assert.Contains(message, OneLine(r.Stderr));
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void Predict_refuses_an_empty_input_and_a_failure_leaves_no_temporary_file()
    {
        string dir = NewDir("predict");
        try
        {
            string model = ServingFixtures.Bert("bert-cls", ["ham", "spam", "eggs"]);
            File.WriteAllText(Path.Combine(dir, "empty.jsonl"), "");
            var r = Tasklm(dir, "predict", "empty.jsonl", "--model", model, "--out", "p1.jsonl");
            Assert.NotEqual(0, r.ExitCode);
            Assert.Contains("no rows to predict", r.Stderr);
            Assert.Contains("--allow-empty", r.Stderr);
            Assert.Empty(Directory.GetFiles(dir, "p1*"));
            r = Tasklm(dir, "predict", "empty.jsonl", "--model", model, "--out", "p1.jsonl", "--allow-empty");
            Assert.True(r.ExitCode == 0, r.Stderr);
            Assert.True(File.Exists(Path.Combine(dir, "p1.jsonl")));

            // Row 3 lacks the text column: the error names it, and neither p2.jsonl nor p2.jsonl.tmp stays.
            File.WriteAllLines(Path.Combine(dir, "mid.jsonl"), ["""{"text": "a b c"}""", """{"text": "d e"}""", """{"label": "x"}"""]);
            r = Tasklm(dir, "predict", "mid.jsonl", "--model", model, "--out", "p2.jsonl", "--batch-size", "1");
            Assert.NotEqual(0, r.ExitCode);
            Assert.Contains("mid.jsonl:3", r.Stderr);
            Assert.Empty(Directory.GetFiles(dir, "p2*"));
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void Export_says_which_weights_a_run_without_best_gives_and_that_a_run_with_none_has_no_model()
    {
        string dir = NewDir("export");
        try
        {
            string run = Path.Combine(dir, "nobest"), step = FakeRun(run, Path.Combine("checkpoints", "step-2"));
            File.WriteAllText(Path.Combine(step, "trainer_state.json"), "{}");
            var r = Tasklm(dir, "export", "--model", run, "--format", "hf", "--out", "x2");
            Assert.True(r.ExitCode == 0, r.Stderr);
            Assert.Contains("has no best/", OneLine(r.Stderr));
            Assert.Contains("step-2", r.Stderr);

            string nothing = Path.Combine(dir, "nothing");
            Directory.CreateDirectory(nothing);
            File.Copy(Path.Combine(run, "recipe.resolved.yaml"), Path.Combine(nothing, "recipe.resolved.yaml"));
            r = Tasklm(dir, "export", "--model", nothing, "--format", "hf", "--out", "x3");
            Assert.NotEqual(0, r.ExitCode);
            Assert.Contains("the run has no model yet", OneLine(r.Stderr));
            Assert.DoesNotContain("resume", r.Stderr);
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void Evaluating_a_run_on_another_file_keeps_the_runs_test_result()
    {
        string dir = NewDir("evaluate");
        try
        {
            string run = Path.Combine(dir, "run");
            FakeRun(run, "best", "  train: other.jsonl\n  test: test.jsonl\n");
            File.WriteAllLines(Path.Combine(dir, "other.jsonl"), ["""{"text": "a b c", "label": "ham"}""", """{"text": "d e", "label": "spam"}"""]);
            string testResult = """{"task":"classification","split":"test","n":12,"metrics":{"accuracy":0.75}}""";
            File.WriteAllText(Path.Combine(run, "eval.json"), testResult);
            var r = Tasklm(dir, "evaluate", run, "other.jsonl");
            Assert.True(r.ExitCode == 0, r.Stderr);
            Assert.Equal(testResult, File.ReadAllText(Path.Combine(run, "eval.json")));
            Assert.True(File.Exists(Path.Combine(run, "eval-other", "eval.json")));
            Assert.Contains("eval-other", OneLine(r.Stdout + r.Stderr));
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void Baseline_refuses_one_training_class_and_a_label_it_never_saw()
    {
        string dir = NewDir("baseline");
        try
        {
            File.WriteAllLines(Path.Combine(dir, "one.jsonl"), ["""{"text": "win cash", "label": "spam"}""", """{"text": "win now", "label": "spam"}"""]);
            File.WriteAllLines(Path.Combine(dir, "two.jsonl"), ["""{"text": "win cash", "label": "spam"}""", """{"text": "lunch at noon", "label": "ham"}"""]);
            File.WriteAllLines(Path.Combine(dir, "new.jsonl"), ["""{"text": "win cash", "label": "spam"}""", """{"text": "click here", "label": "phishing"}"""]);
            var r = Tasklm(dir, "baseline", "one.jsonl", "--test", "two.jsonl");
            Assert.NotEqual(0, r.ExitCode);
            Assert.Contains("one.jsonl: every training example has the label 'spam'", OneLine(r.Stderr));
            r = Tasklm(dir, "baseline", "two.jsonl", "--test", "new.jsonl");
            Assert.NotEqual(0, r.ExitCode);
            Assert.Contains("new.jsonl: row 2: label 'phishing' is not among the training labels (ham, spam)", OneLine(r.Stderr));
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void Import_checks_the_encoding_name_for_every_format_and_tune_checks_a_grid_before_the_study_exists()
    {
        string dir = NewDir("import");
        try
        {
            File.WriteAllLines(Path.Combine(dir, "good.jsonl"), ["""{"text": "a", "label": "x"}"""]);
            var r = CliRunner.Run(["data", "import", "good.jsonl", "--encoding", "klingon", "--out", "o.jsonl"], workingDirectory: dir);
            Assert.NotEqual(0, r.ExitCode);
            Assert.Contains("--encoding 'klingon'", r.Stderr);
            Assert.False(File.Exists(Path.Combine(dir, "o.jsonl")));

            File.WriteAllText(Path.Combine(dir, "t.yaml"), "task: classification\nmodel: {init: gpt2-tiny}\ntokenizer: gpt2\ndata:\n  train: good.jsonl\n  validation: good.jsonl\n" +
                "search:\n  training.lr: {loguniform: [1.0e-4, 3.0e-3]}\n");
            r = Tasklm(dir, "tune", "t.yaml", "--trials", "2", "--sampler", "grid", "--out", "study");
            Assert.NotEqual(0, r.ExitCode);
            Assert.Contains("training.lr is a continuous range", r.Stderr);
            Assert.False(File.Exists(Path.Combine(dir, "study", "study.db")));
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void Refine_names_the_users_file_for_a_missing_column_and_leaves_no_folder()
    {
        string dir = NewDir("refine");
        try
        {
            string run = Path.Combine(dir, "run");
            FakeRun(run, "best", "  train: old.jsonl\n  test: old.jsonl\n");
            File.WriteAllLines(Path.Combine(dir, "old.jsonl"), ["""{"text": "a b c", "label": "ham"}""", """{"text": "d e", "label": "spam"}"""]);
            File.WriteAllLines(Path.Combine(dir, "new.jsonl"), Enumerable.Range(0, 20).Select(i => $$"""{"text": "row {{i}}", "label": "{{(i % 2 == 0 ? "ham" : "spam")}}"}"""));
            var r = Tasklm(dir, "refine", run, "new.jsonl", "data.text_column=body");
            Assert.NotEqual(0, r.ExitCode);
            Assert.Contains("new.jsonl: row 1 has no column 'body' (data.text_column", OneLine(r.Stderr));
            Assert.DoesNotContain("train-mix", r.Stderr);
            Assert.False(Directory.Exists(Path.Combine(run, "refinements", "1")));
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void A_recipes_own_missing_test_file_and_a_missing_column_are_named_before_training()
    {
        string dir = NewDir("newcomer");
        try
        {
            string recipe = ClsRecipe(dir);
            // The recipe keeps its own data.test when only data.train is overridden: a missing one is named up front.
            var r = Tasklm(dir, "train", recipe, "data.test=runs/corpus/tasks/kjv-division/test.jsonl", "output_dir=run");
            Assert.NotEqual(0, r.ExitCode);
            Assert.Contains("data.test: runs/corpus/tasks/kjv-division/test.jsonl does not exist", OneLine(r.Stderr));
            Assert.Contains("data.test=null", OneLine(r.Stderr));
            Assert.False(File.Exists(Path.Combine(dir, "run", "recipe.resolved.yaml")));
            // A missing label column is reported against the user's file with the key that names it.
            File.WriteAllLines(Path.Combine(dir, "team.csv"), ["message,team", "a b c,x", "d e f,y", "g h,x", "i j,y"]);
            r = Tasklm(dir, "train", recipe, "data.train=team.csv", "data.validation=null", "data.text_column=message", "output_dir=run2");
            Assert.NotEqual(0, r.ExitCode);
            Assert.Contains("team.csv: the first row has no column 'label'", OneLine(r.Stderr));
            Assert.Contains("data.label_column=", OneLine(r.Stderr));
        }
        finally { Directory.Delete(dir, true); }
    }
    [Fact]
    public void The_test_loss_train_reports_is_the_one_evaluate_reports_on_the_same_model_and_file()
    {
        // Audit: train printed 0.8048 and evaluate 0.8104 on the same best/ and file: train averaged batch means, a short
        // last batch weighing as much as a full one. 24 test rows in batches of 5 end with a batch of 4.
        string dir = NewDir("testloss");
        try
        {
            string recipe = ClsRecipe(dir);
            var r = Tasklm(dir, "train", recipe, "data.test=cls.csv", "training.eval_batch_size=5", "output_dir=run");
            Assert.True(r.ExitCode == 0, r.Stderr);
            double trained = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "run", "eval.json")))!["metrics"]!["loss"]!.GetValue<double>();
            var e = Tasklm(dir, "evaluate", "run", "cls.csv", "--out", "ev");
            Assert.True(e.ExitCode == 0, e.Stderr);
            double evaluated = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "ev", "eval.json")))!["metrics"]!["loss"]!.GetValue<double>();
            Assert.Equal(evaluated, trained, 4);
        }
        finally { Directory.Delete(dir, true); }
    }
}
