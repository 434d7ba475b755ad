// `tasklm evaluate` on Hugging Face's gpt2-cls fixture: predictions and loss are HF's, the report is written.
using System.Text.Json.Nodes;
using TaskLM.Recipes;

namespace TaskLM.Tests.Evaluation;

public class EvaluateCommandTests
{
    static string Fixture(params string[] parts) => Path.Combine(new[] { AppContext.BaseDirectory, "fixtures", "hf" }.Concat(parts).ToArray());

    // The fixture's three rows as pre-tokenized JSONL (row 3's right padding dropped: the collator pads).
    static string WriteData(string dir)
    {
        var exp = JsonNode.Parse(File.ReadAllText(Fixture("gpt2-cls.expected.json")))!;
        var lines = new List<string>();
        for (int i = 0; i < 3; i++)
        {
            var ids = exp["input_ids"]![i]!.AsArray().Select(x => x!.GetValue<int>());
            var mask = exp["attention_mask"]![i]!.AsArray().Select(x => x!.GetValue<int>()).ToArray();
            var kept = ids.Where((_, j) => mask[j] == 1).ToArray();
            lines.Add(new JsonObject { ["input_ids"] = new JsonArray(kept.Select(x => (JsonNode)x).ToArray()), ["labels"] = exp["labels"]![i]!.GetValue<int>() }.ToJsonString());
        }
        string path = Path.Combine(dir, "test.jsonl");
        File.WriteAllLines(path, lines);
        return path;
    }

    // HF's logits: argmax per row and mean cross-entropy (= HF's loss).
    static (double accuracy, double loss) Reference()
    {
        var exp = JsonNode.Parse(File.ReadAllText(Fixture("gpt2-cls.expected.json")))!;
        int right = 0;
        for (int i = 0; i < 3; i++)
        {
            var row = exp["logits"]![i]!.AsArray().Select(x => x!.GetValue<double>()).ToList();
            if (row.IndexOf(row.Max()) == exp["labels"]![i]!.GetValue<int>()) right++;
        }
        return (right / 3.0, exp["loss"]!.GetValue<double>());
    }

    [Fact]
    public void A_128_position_encoder_evaluates_text_without_a_max_length_override()
    {
        // The shipped masked LM has 128 positions; evaluate's default block length is 256, which it used to pass to
        // the model and fail ("sequence length 256 exceeds max_position_embeddings 128").
        string dir = Directory.CreateTempSubdirectory("tasklm-evaluate-mlm").FullName;
        try
        {
            string data = Path.Combine(dir, "text.jsonl"), outDir = Path.Combine(dir, "out");
            var text = string.Join(" ", Enumerable.Repeat("the whale swam under the ship and the sailors watched it from the deck .", 40));
            File.WriteAllLines(data, [new JsonObject { ["text"] = text }.ToJsonString()]);
            var r = CliRunner.Run("evaluate", TaskLM.Tests.Transfer.TextClassificationRecipeTests.Repo("models", "tasklm-bert-mini"), data, "--out", outDir, "--json", "--device", "cpu", "--threads", "1");
            Assert.True(r.ExitCode == 0, r.Stderr + r.Stdout);
            var json = JsonNode.Parse(File.ReadAllText(Path.Combine(outDir, "eval.json")))!;
            Assert.Equal("masked-lm", json["task"]!.GetValue<string>());
            Assert.True(json["n"]!.GetValue<int>() >= 3, json.ToJsonString()); // ~600 tokens in 128-token blocks
            Assert.InRange(json["metrics"]!["loss"]!.GetValue<double>(), 0.01, 9.0);
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void HfFolderIsScoredAsHfScoresIt()
    {
        string dir = Directory.CreateTempSubdirectory("tasklm-evaluate").FullName;
        try
        {
            string data = WriteData(dir), outDir = Path.Combine(dir, "out");
            var r = CliRunner.Run("evaluate", Fixture("gpt2-cls"), data, "--out", outDir, "--json", "--device", "cpu", "--threads", "1");
            Assert.True(r.ExitCode == 0, r.Stderr + r.Stdout);
            var (acc, loss) = Reference();
            var json = JsonNode.Parse(File.ReadAllText(Path.Combine(outDir, "eval.json")))!;
            Assert.Equal("classification", json["task"]!.GetValue<string>());
            Assert.Equal(3, json["n"]!.GetValue<int>());
            Assert.Equal(acc, json["metrics"]!["accuracy"]!.GetValue<double>(), 9);
            Assert.Equal(loss, json["metrics"]!["loss"]!.GetValue<double>(), 5);
            // Misclassified examples are listed for inspection, with the model's loss on each.
            var worst = json["worst_examples"]!.AsArray();
            Assert.Equal((int)Math.Round(3 * (1 - acc)), worst.Count(w => w!["gold"]!.GetValue<string>() != w["pred"]!.GetValue<string>()));
            Assert.True(File.Exists(Path.Combine(outDir, "report.html")));
            Assert.Equal(JsonNode.Parse(r.Stdout)!["metrics"]!["accuracy"]!.GetValue<double>(), acc, 9);
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void RunFolderUsesItsRecipeAndBestModel()
    {
        string dir = Directory.CreateTempSubdirectory("tasklm-evaluate-run").FullName;
        try
        {
            string data = WriteData(dir), run = Path.Combine(dir, "run"), best = Path.Combine(run, "best");
            Directory.CreateDirectory(best);
            foreach (var f in Directory.GetFiles(Fixture("gpt2-cls"))) File.Copy(f, Path.Combine(best, Path.GetFileName(f)));
            var recipe = RecipeLoader.Parse($"task: classification\nmodel: {{init: gpt2-tiny}}\ndata: {{train: '{data}'}}\noutput_dir: '{run}'\n");
            File.WriteAllText(Path.Combine(run, "recipe.resolved.yaml"), RecipeLoader.ToYaml(recipe));
            var r = CliRunner.Run("evaluate", run, data, "--device", "cpu", "--threads", "1");
            Assert.True(r.ExitCode == 0, r.Stderr + r.Stdout);
            var json = JsonNode.Parse(File.ReadAllText(Path.Combine(run, "eval.json")))!;
            Assert.Equal(Reference().accuracy, json["metrics"]!["accuracy"]!.GetValue<double>(), 9);
            Assert.Contains("accuracy", r.Stdout);

            var missing = CliRunner.Run("evaluate", Path.Combine(dir, "nothing-here"), data);
            Assert.Equal(1, missing.ExitCode);
            Assert.Contains("neither a run folder", missing.Stderr);
        }
        finally { Directory.Delete(dir, true); }
    }
}
