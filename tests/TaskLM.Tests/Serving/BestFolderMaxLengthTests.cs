// predict on a run's best/ folder reads inputs as the run did (its recipe's max_length), not at the model's positions.
using System.Text.Json.Nodes;
using TaskLM.Tests.Transfer;

namespace TaskLM.Tests.Serving;

public class BestFolderMaxLengthTests
{
    [Fact]
    public void Predict_on_a_runs_best_folder_uses_the_runs_max_length()
    {
        string dir = Directory.CreateTempSubdirectory("tasklm-bestlen").FullName;
        try
        {
            // Texts of 30-40 words, truncated to 16 tokens in training: the class words sit at the end of the odd rows, so
            // a model that reads past 16 tokens sees other words than the run's evaluation did.
            var rng = new Random(3);
            string[] labels = ["a", "b"];
            string Row(int i)
            {
                string label = labels[i % 2];
                var words = Enumerable.Range(0, rng.Next(30, 40)).Select(_ => new[] { "alpha", "beta", "gamma", "delta", "the", "of" }[rng.Next(6)]).ToList();
                words.Add(label == "a" ? "apple" : "banana");
                return new JsonObject { ["text"] = string.Join(' ', words), ["label"] = label }.ToJsonString();
            }
            string train = Path.Combine(dir, "train.jsonl"), test = Path.Combine(dir, "test.jsonl"), run = Path.Combine(dir, "run");
            File.WriteAllLines(train, Enumerable.Range(0, 60).Select(Row));
            File.WriteAllLines(test, Enumerable.Range(0, 12).Select(Row));
            var r = CliRunner.Run(["train", TextClassificationRecipeTests.Repo("recipes", "text-classification.yaml"),
                $"data.train={train}", $"data.test={test}", "model.init=bert-tiny", "data.max_length=16",
                $"tokenizer={TextClassificationRecipeTests.Repo("tests", "fixtures", "hf", "tok-wordpiece")}",
                "training.max_steps=3", "training.eval_every=1", "evaluation.ensemble=false", $"output_dir={run}", "--threads", "2"]);
            Assert.True(r.ExitCode == 0, r.Stderr + r.Stdout);

            var viaRun = CliRunner.Run("predict", test, "--model", run, "--out", Path.Combine(dir, "run.jsonl"));
            Assert.True(viaRun.ExitCode == 0, viaRun.Stderr + viaRun.Stdout);
            var viaBest = CliRunner.Run("predict", test, "--model", Path.Combine(run, "best"), "--out", Path.Combine(dir, "best.jsonl"));
            Assert.True(viaBest.ExitCode == 0, viaBest.Stderr + viaBest.Stdout);
            var a = File.ReadAllLines(Path.Combine(dir, "run.jsonl")).Select(l => JsonNode.Parse(l)!["probabilities"]!).ToList();
            var b = File.ReadAllLines(Path.Combine(dir, "best.jsonl")).Select(l => JsonNode.Parse(l)!["probabilities"]!).ToList();
            for (int i = 0; i < a.Count; i++)
                foreach (var label in labels)
                    Assert.Equal(a[i][label]!.GetValue<double>(), b[i][label]!.GetValue<double>(), 6);
        }
        finally { Directory.Delete(dir, true); }
    }
}
