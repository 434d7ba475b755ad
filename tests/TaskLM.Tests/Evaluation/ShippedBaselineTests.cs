// The baseline a run saves beside best/ and ships when validation prefers it: saved exactly (ML.NET's probabilities
// recomputed from the file), and run by predict and evaluate as training scored it.
using System.Text.Json.Nodes;
using TaskLM.Evaluation;
using TaskLM.Tests.Transfer;

namespace TaskLM.Tests.Evaluation;

public class ShippedBaselineTests
{
    static string Data(string name) => Fixture.Path("evaluation", "baseline", name);

    [Theory]
    [InlineData(false)]
    [InlineData(true)]   // words and character n-grams: char_vocab.txt and the idf of both blocks
    public void A_saved_baseline_gives_the_probabilities_MLNET_gave(bool charNgrams)
    {
        var train = LabelledTexts.Read(Data("train.jsonl"));
        var test = LabelledTexts.Read(Data("test.jsonl"));
        var fitted = TextBaseline.Fit(train.Texts, train.Labels, options: new BaselineOptions { C = 10, CharNgrams = charNgrams });
        Assert.Equal(charNgrams, fitted.Featurizer.CharNgrams != null);
        string dir = Path.Combine(Directory.CreateTempSubdirectory("tasklm-shipped").FullName, "baseline");
        try
        {
            ShippedBaseline.Save(fitted, dir, 0.35, new JsonObject { ["chosen_by"] = "test" });
            var loaded = ShippedBaseline.Load(dir);
            Assert.Equal(fitted.Labels, loaded.Labels);
            Assert.Equal(0.35, loaded.ModelWeight);
            Assert.Equal("ensemble", loaded.Ships);
            Assert.Equal("test", loaded.Config["chosen_by"]!.GetValue<string>());
            // The reference is ML.NET's own scoring of the fitted transformer chain: softmax(W·x + b) recomputed from the
            // saved idf, vocabulary, weights and biases must give the same numbers.
            var expected = fitted.PredictProba(test.Texts);
            var actual = loaded.PredictProba(test.Texts);
            double maxDiff = 0;
            for (int i = 0; i < expected.Length; i++)
                for (int c = 0; c < expected[i].Length; c++) maxDiff = Math.Max(maxDiff, Math.Abs(expected[i][c] - actual[i][c]));
            Assert.True(maxDiff < 1e-5, $"max |Δp| = {maxDiff}");
            // A mix: w·model + (1 − w)·baseline.
            var model = expected.Select(r => r.Select(_ => 1f / r.Length).ToArray()).ToArray();
            var mixed = loaded.Mix(model, test.Texts);
            Assert.Equal(0.35f / expected[0].Length + 0.65f * actual[0][3], mixed[0][3], 5);
            // A damaged folder names its file.
            File.WriteAllText(Path.Combine(dir, "config.json"), "{\"labels\": [\"a\"], \"model_weight\": 2}");
            var e = Assert.Throws<InvalidDataException>(() => ShippedBaseline.Load(dir));
            Assert.Contains("config.json", e.Message);
            Assert.Contains("model_weight", e.Message);
        }
        finally { Directory.Delete(Path.GetDirectoryName(dir)!, true); }
    }

    [Fact]
    public void A_run_that_ships_the_baseline_or_a_mix_is_what_predict_and_evaluate_run()
    {
        string dir = Directory.CreateTempSubdirectory("tasklm-ships").FullName;
        try
        {
            // Topic words make the task lexical: the TF-IDF baseline gets it nearly right, a random-init bert-tiny after two
            // steps does not, so validation must choose the baseline or a mix over the model.
            string train = Path.Combine(dir, "train.jsonl"), test = Path.Combine(dir, "test.jsonl"), run = Path.Combine(dir, "run");
            WriteTopics(train, 240, 1);
            WriteTopics(test, 60, 2);
            var r = CliRunner.Run(["train", TextClassificationRecipeTests.Repo("recipes", "text-classification.yaml"),
                $"data.train={train}", $"data.test={test}", "model.init=bert-tiny",
                $"tokenizer={TextClassificationRecipeTests.Repo("tests", "fixtures", "hf", "tok-wordpiece")}",
                "training.max_steps=2", "training.eval_every=1", "evaluation.ensemble=true", $"output_dir={run}", "--json", "--threads", "2"]);
            Assert.True(r.ExitCode == 0, r.Stderr + r.Stdout);
            var eval = JsonNode.Parse(File.ReadAllText(Path.Combine(run, "eval.json")))!;
            string ships = eval["ships"]?.GetValue<string>() ?? "model";
            Assert.True(ships is "baseline" or "ensemble", $"ships {ships}: {eval}");
            double w = eval["ensemble"]!["weight"]!.GetValue<double>();
            Assert.True(w < 1);
            var saved = ShippedBaseline.Load(Path.Combine(run, "baseline"));
            Assert.Equal(w, saved.ModelWeight);
            // The headline is the shipped mix's; the model's own metrics are kept beside it and differ.
            Assert.Equal(eval["ensemble"]!["metrics"]!["macro_f1"]!.GetValue<double>(), eval["metrics"]!["macro_f1"]!.GetValue<double>(), 9);
            Assert.NotEqual(eval["model_metrics"]!["macro_f1"]!.GetValue<double>(), eval["metrics"]!["macro_f1"]!.GetValue<double>());
            Assert.Contains($"ships the {ships}", File.ReadAllText(Path.Combine(run, "report.md")));

            // predict on the run = w · predict on best/ (the model alone) + (1 − w) · the saved baseline.
            var pr = CliRunner.Run("predict", test, "--model", run, "--out", Path.Combine(dir, "run.jsonl"));
            Assert.True(pr.ExitCode == 0, pr.Stderr + pr.Stdout);
            var pm = CliRunner.Run("predict", test, "--model", Path.Combine(run, "best"), "--out", Path.Combine(dir, "best.jsonl"));
            Assert.True(pm.ExitCode == 0, pm.Stderr + pm.Stdout);
            var shipped = Rows(Path.Combine(dir, "run.jsonl"));
            var model = Rows(Path.Combine(dir, "best.jsonl"));
            var texts = File.ReadLines(test).Select(l => JsonNode.Parse(l)!["text"]!.GetValue<string>()).ToList();
            var gold = File.ReadLines(test).Select(l => JsonNode.Parse(l)!["label"]!.GetValue<string>()).ToList();
            var baseline = saved.PredictProba(texts);
            int agree = 0;
            for (int i = 0; i < texts.Count; i++)
            {
                for (int c = 0; c < saved.Labels.Count; c++)
                {
                    string label = saved.Labels[c];
                    double expect = w * model[i]["probabilities"]![label]!.GetValue<double>() + (1 - w) * baseline[i][c];
                    double got = shipped[i]["probabilities"]![label]!.GetValue<double>();
                    Assert.True(Math.Abs(expect - got) < 1e-4, $"row {i} {label}: {got} vs w·model + (1 − w)·baseline = {expect}");
                }
                if (shipped[i]["label"]!.GetValue<string>() == gold[i]) agree++;
            }
            // evaluate on the run's test file scores what the run ships: the same headline as training wrote.
            var ev = CliRunner.Run("evaluate", "--model", run, "--data", test, "--json");
            Assert.True(ev.ExitCode == 0, ev.Stderr + ev.Stdout);
            var evj = JsonNode.Parse(ev.Stdout)!;
            Assert.Equal(eval["metrics"]!["macro_f1"]!.GetValue<double>(), evj["metrics"]!["macro_f1"]!.GetValue<double>(), 6);
            Assert.Equal(eval["metrics"]!["accuracy"]!.GetValue<double>(), agree / (double)texts.Count, 6);
            Assert.Equal(ships, evj["ships"]!.GetValue<string>());
        }
        finally { Directory.Delete(dir, true); }
    }

    static List<JsonNode> Rows(string path) => File.ReadLines(path).Select(l => JsonNode.Parse(l)!).ToList();

    // Three topics told apart by their words (45% of a sentence), the rest shared filler.
    static void WriteTopics(string path, int n, int seed)
    {
        var rng = new Random(seed);
        var topics = new Dictionary<string, string[]>
        {
            ["sport"] = ["goal", "match", "team", "score", "league", "coach", "player", "win"],
            ["food"] = ["bread", "soup", "cook", "taste", "dinner", "spice", "bake", "salt"],
            ["tech"] = ["code", "chip", "server", "data", "cloud", "robot", "laptop", "app"],
        };
        string[] filler = ["the", "a", "today", "we", "saw", "very", "and", "new", "of"], labels = ["sport", "food", "tech"];
        File.WriteAllLines(path, Enumerable.Range(0, n).Select(i =>
        {
            string label = labels[rng.Next(3)];
            var words = Enumerable.Range(0, rng.Next(6, 16)).Select(_ => rng.NextDouble() < 0.45 ? topics[label][rng.Next(8)] : filler[rng.Next(filler.Length)]);
            return new JsonObject { ["text"] = string.Join(' ', words), ["label"] = label }.ToJsonString();
        }));
    }
}
