// recipes/text-classification.yaml on a 3-class CSV made here: overrides only; eval.json has model and baseline metrics.
using System.Text;
using System.Text.Json.Nodes;
using TaskLM.Evaluation;

namespace TaskLM.Tests.Transfer;

public class TextClassificationRecipeTests
{
    internal static string Repo(params string[] parts)
    {
        // The test binary runs from tests/TaskLM.Tests/bin/<config>/<tfm>/: the repository root is five levels up.
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir != null && !File.Exists(Path.Combine(dir.FullName, "TaskLM.slnx"))) dir = dir.Parent;
        return Path.Combine([dir?.FullName ?? throw new DirectoryNotFoundException("repository root (TaskLM.slnx) not found"), .. parts]);
    }

    static readonly Dictionary<string, string[]> Topics = new()
    {
        ["sport"] = ["goal", "match", "team", "score", "league", "coach", "player", "win"],
        ["food"] = ["bread", "soup", "cook", "taste", "dinner", "spice", "bake", "salt"],
        ["tech"] = ["code", "chip", "server", "data", "cloud", "robot", "laptop", "app"],
    };

    // Short sentences: 40% topic words, the rest shared filler; sport is over-represented (imbalanced classes).
    static void WriteCsv(string path, int n, int seed)
    {
        var rng = new Random(seed);
        string[] filler = ["the", "a", "today", "we", "saw", "very", "and", "new", "of"], labels = ["sport", "food", "tech"];
        var sb = new StringBuilder("id,sentence,topic\n");
        for (int i = 0; i < n; i++)
        {
            string label = i % 5 == 0 ? "sport" : labels[rng.Next(3)];
            var words = Enumerable.Range(0, rng.Next(6, 20)).Select(_ => rng.NextDouble() < 0.4 ? Topics[label][rng.Next(8)] : filler[rng.Next(filler.Length)]);
            sb.Append(i).Append(",\"").Append(string.Join(' ', words)).Append("\",").Append(label).Append('\n');
        }
        File.WriteAllText(path, sb.ToString());
    }

    [Fact]
    public void TrainsEvaluatesAndComparesWithTheBaselineFromOverridesOnly()
    {
        string dir = Directory.CreateTempSubdirectory("tasklm-textcls").FullName;
        try
        {
            string train = Path.Combine(dir, "train.csv"), testCsv = Path.Combine(dir, "test.csv"), test = Path.Combine(dir, "test.jsonl"), run = Path.Combine(dir, "run");
            WriteCsv(train, 300, 1);
            WriteCsv(testCsv, 90, 2);
            var imp = CliRunner.Run("data", "import", testCsv, "--out", test);
            Assert.True(imp.ExitCode == 0, imp.Stderr + imp.Stdout);

            // Only overrides: the data and its columns; a tiny model and few steps keep the suite fast
            // (the recipe's own init is the shipped models/tasklm-bert-mini).
            var r = CliRunner.Run(["train", Repo("recipes", "text-classification.yaml"),
                $"data.train={train}", $"data.test={test}", "data.text_column=sentence", "data.label_column=topic",
                "model.init=bert-tiny", $"tokenizer={Repo("tests", "fixtures", "hf", "tok-wordpiece")}",
                "training.max_steps=24", "training.lr=1e-3", "training.eval_every=8", $"output_dir={run}", "--json", "--threads", "2"]);
            Assert.True(r.ExitCode == 0, r.Stderr + r.Stdout);

            // Each value the data decided is said (train.log keeps every line people see).
            string log = File.ReadAllText(Path.Combine(run, "train.log"));
            Assert.Contains("data.validation: none given, so 30 of 300 training rows", log);
            Assert.Matches(@"data\.max_length: \d+ \(95th percentile", log);
            Assert.Contains("training.class_weights: balanced", log);
            Assert.Contains("fine-tuning: lr 0.001", log);

            // The held-out validation split is stratified: each topic keeps its share (±1 row).
            var valRows = File.ReadAllLines(Path.Combine(run, "data", "validation.jsonl")).Select(l => JsonNode.Parse(l)!["topic"]!.GetValue<string>()).ToList();
            var trainRows = File.ReadAllLines(train).Skip(1).Select(l => l[(l.LastIndexOf(',') + 1)..]).ToList();
            foreach (var label in Topics.Keys)
                Assert.InRange(valRows.Count(x => x == label), trainRows.Count(x => x == label) / 10.0 - 1, trainRows.Count(x => x == label) / 10.0 + 1);

            // eval.json: the model's test metrics, the baseline's under the same names, and the paired difference.
            var eval = JsonNode.Parse(File.ReadAllText(Path.Combine(run, "eval.json")))!;
            Assert.Equal(90, eval["n"]!.GetValue<int>());
            // The model's own metrics: "model_metrics" when the run ships the baseline or a mix (the headline is then that).
            var model = (eval["model_metrics"] ?? eval["metrics"])!.AsObject();
            var baseline = eval["baseline"]!["metrics"]!.AsObject();
            foreach (var k in new[] { "accuracy", "macro_f1", "weighted_f1", "loss", "f1_food", "f1_sport", "f1_tech" })
            {
                Assert.True(model.ContainsKey(k), $"model metric {k}");
                Assert.True(baseline.ContainsKey(k), $"baseline metric {k}");
            }
            Assert.True(baseline["macro_f1"]!.GetValue<double>() > 0.9, "TF-IDF separates topic words");
            var diff = eval["baseline_difference"]!["macro_f1"]!;
            double est = diff["estimate"]!.GetValue<double>();
            Assert.Equal(model["macro_f1"]!.GetValue<double>() - baseline["macro_f1"]!.GetValue<double>(), est, 9);
            Assert.True(diff["low"]!.GetValue<double>() <= est && est <= diff["high"]!.GetValue<double>());

            // The run summary: where best/ and the report are, and what to run next.
            var summary = JsonNode.Parse(r.Stdout)!["summary"]!;
            Assert.Equal(Path.Combine(run, "best"), summary["best_dir"]!.GetValue<string>());
            Assert.True(File.Exists(summary["report"]!.GetValue<string>()));
            Assert.Contains("Model vs baseline", File.ReadAllText(Path.Combine(run, "report.md")));
            var next = summary["next"]!.AsArray().Select(x => x!.GetValue<string>()).ToList();
            Assert.Contains(next, n => n.StartsWith($"tasklm evaluate --model {run} ", StringComparison.Ordinal));
            Assert.Contains(next, n => n.StartsWith("tasklm report ", StringComparison.Ordinal));
            Assert.True(summary["wall_seconds"]!.GetValue<double>() > 0);

            // best/ carries the tokenizer: evaluate needs no --tokenizer, and scores what training scored.
            Assert.True(File.Exists(Path.Combine(run, "best", "vocab.txt")));
            var ev = CliRunner.Run("evaluate", "--model", Path.Combine(run, "best"), "--data", test, "--out", Path.Combine(dir, "ev"), "--json",
                "--set", "data.text_column=sentence", "--set", "data.label_column=topic", "--set", $"data.max_length={File.ReadAllText(Path.Combine(run, "recipe.resolved.yaml")).Split("max_length: ")[1].Split('\n')[0]}");
            Assert.True(ev.ExitCode == 0, ev.Stderr + ev.Stdout);
            Assert.Equal(model["accuracy"]!.GetValue<double>(), JsonNode.Parse(ev.Stdout)!["metrics"]!["accuracy"]!.GetValue<double>(), 6);
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void EnsembleWeightIsChosenOnValidationOnly()
    {
        // Two classes. The model is confident and right on the first half, unsure and wrong on the second; the baseline
        // the other way round. p_correct(w) = w·m + (1 − w)·b exceeds 1/2 on both halves only for 1/3 < w < 3/4 (the grid's
        // 0.35 ... 0.70); averaged with their neighbours, only 0.40 ... 0.65 keep accuracy 1 (0.35 and 0.70 have a neighbour
        // at 0.5 and 0.75), and among those ties the lowest validation log-loss, −½[ln(0.3 + 0.6w) + ln(0.8 − 0.4w)], which
        // falls up to w = 0.75: 0.65.
        string[] labels = ["a", "b"];
        var gold = Enumerable.Range(0, 20).Select(i => i % 2 == 0 ? "a" : "b").ToList();
        float[] Row(string g, float pCorrect) => g == "a" ? [pCorrect, 1 - pCorrect] : [1 - pCorrect, pCorrect];
        float[][] Model(IReadOnlyList<string> g) => g.Select((x, i) => Row(x, i < g.Count / 2 ? 0.9f : 0.4f)).ToArray();
        float[][] Base(IReadOnlyList<string> g) => g.Select((x, i) => Row(x, i < g.Count / 2 ? 0.3f : 0.8f)).ToArray();
        var baseProba = Base(gold);
        var basePred = baseProba.Select(p => labels[TextBaseline.ArgMax(p)]).ToArray();
        var bs = new BaselineScore(TextBaseline.Fit(["x y", "z w"], ["a", "b"]), basePred, baseProba,
            Baseline.Score(gold, basePred, baseProba, labels, "test"), 2);
        var s = BaselineComparison.Compare(gold, labels, Model(gold), bs, samples: 200, seed: 1, validation: (gold, Model(gold), Base(gold)), ensembleMetric: "accuracy");
        Assert.Equal(0.65, s.Ensemble!.Weight, 9);
        Assert.Equal(1.0, s.Ensemble.ValidationScore, 9);
        Assert.Equal(1.0, s.Ensemble.Metrics["accuracy"], 9);
        Assert.Equal(0.5, s.Metrics["accuracy"], 9);                                    // the baseline alone
        Assert.Equal(0.0, s.Difference["accuracy"].Estimate, 9);                        // model 0.5 − baseline 0.5
        // Round trip through eval.json.
        var o = new JsonObject { ["metrics"] = new JsonObject() };
        s.WriteTo(o);
        var back = EvalResult.FromJson(o).Baseline!;
        Assert.Equal(0.65, back.Ensemble!.Weight, 9);
        Assert.Equal(s.Difference["macro_f1"].High, back.Difference["macro_f1"].High, 12);
    }
}

public class AutoMaxLengthTests
{
    [Fact]
    public void A_preset_reshaped_by_model_config_caps_max_length_at_its_own_position_limit()
    {
        // bert-tiny's preset takes 512 positions; reshaped to 32 it must not be given 216-token sequences.
        Assert.Equal(512, TaskLM.Training.AutoSettings.ModelLimit("bert-tiny"));
        Assert.Equal(32, TaskLM.Training.AutoSettings.ModelLimit("bert-tiny", new JsonObject { ["max_position_embeddings"] = 32 }));
        string dir = Directory.CreateTempSubdirectory("tasklm-automax").FullName;
        try
        {
            string train = Path.Combine(dir, "train.jsonl");
            File.WriteAllLines(train, Enumerable.Range(0, 20).Select(i => new JsonObject { ["text"] = string.Join(' ', Enumerable.Repeat("word", 200)), ["label"] = i % 2 == 0 ? "a" : "b" }.ToJsonString()));
            var r = TaskLM.Recipes.RecipeLoader.Parse($"task: classification\nmodel: {{init: bert-tiny, config: {{max_position_embeddings: 32}}}}\ndata: {{train: '{train}', max_length: 0}}\n");
            var said = new List<string>();
            var tok = TaskLM.Data.Tokenization.TokenizerLoader.Load(TextClassificationRecipeTests.Repo("tests", "fixtures", "hf", "tok-wordpiece"));
            TaskLM.Training.AutoSettings.Resolve(r, dir, tok, said.Add);
            Assert.Equal(32, r.Data.MaxLength);
            Assert.Contains(said, s => s.StartsWith("data.max_length: 32 (", StringComparison.Ordinal) && s.EndsWith("model limit 32)", StringComparison.Ordinal));
        }
        finally { Directory.Delete(dir, true); }
    }
}
