// The black-box model verbs (`tasklm logits`, `tasklm generate`, `tasklm models`) against HF's fixture numbers.
using System.Text.Json.Nodes;

namespace TaskLM.Tests.Models;

public class Gpt2CliTests
{
    [Fact]
    public void LogitsVerbReproducesHfClassifierLogits()
    {
        var exp = Gpt2Tests.Expected("gpt2-cls");
        string dir = Path.Combine(Path.GetTempPath(), $"tasklm-logits-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        try
        {
            string input = Path.Combine(dir, "in.json"), output = Path.Combine(dir, "out.json");
            File.WriteAllText(input, new JsonObject { ["input_ids"] = exp["input_ids"]!.DeepClone(), ["attention_mask"] = exp["attention_mask"]!.DeepClone() }.ToJsonString());
            var r = CliRunner.Run("logits", Gpt2Tests.Fixture("gpt2-cls"), input, "--out", output, "--device", "cpu", "--threads", "1");
            Assert.True(r.ExitCode == 0, r.Stderr + r.Stdout);
            var logits = JsonNode.Parse(File.ReadAllText(output))!["logits"]!;
            Assert.Equal(3, logits.AsArray().Count);
            var e = Gpt2Tests.Flat(exp["logits"]!); var a = Gpt2Tests.Flat(logits);
            Assert.True(e.Zip(a, (x, y) => Math.Abs(x - y)).Max() <= 1e-4);

            // Bad input names the file and the key.
            File.WriteAllText(input, "{\"ids\": [[1, 2]]}");
            var bad = CliRunner.Run("logits", Gpt2Tests.Fixture("gpt2-cls"), input, "--out", output);
            Assert.Equal(1, bad.ExitCode);
            Assert.Contains("input_ids", bad.Stderr);
            Assert.Contains("in.json", bad.Stderr);
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void GenerateVerbReproducesHfGreedyTokens()
    {
        var exp = Gpt2Tests.Expected("gpt2-tiny");
        var prompt = Gpt2Tests.Flat(exp["prompt"]![0]!).Select(x => (int)x).ToArray();
        var greedy = Gpt2Tests.Flat(exp["greedy"]![0]!).Select(x => (int)x).ToArray();
        var r = CliRunner.Run("generate", Gpt2Tests.Fixture("gpt2-tiny"), "--prompt-ids", string.Join(",", prompt),
            "--max-new-tokens", (greedy.Length - prompt.Length).ToString(), "--greedy", "--json", "--device", "cpu", "--threads", "1");
        Assert.True(r.ExitCode == 0, r.Stderr + r.Stdout);
        var ids = JsonNode.Parse(r.Stdout)!["ids"]!.AsArray().Select(x => x!.GetValue<int>()).ToArray();
        Assert.Equal(greedy, ids);
    }

    [Fact]
    public void GenerateFromPromptTextEncodesWithTheGpt2TokenizerAsHf()
    {
        // HF's prompt ids [464, 2068, 7586, 21831] are GPT-2's encoding of "The quick brown fox".
        var greedy = Gpt2Tests.Flat(Gpt2Tests.Expected("gpt2-tiny")["greedy"]![0]!).Select(x => (int)x).ToArray();
        var r = CliRunner.Run("generate", Gpt2Tests.Fixture("gpt2-tiny"), "--tokenizer", "gpt2", "--prompt", "The quick brown fox",
            "--max-new-tokens", "12", "--greedy", "--json", "--device", "cpu", "--threads", "1");
        Assert.True(r.ExitCode == 0, r.Stderr + r.Stdout);
        var json = JsonNode.Parse(r.Stdout)!;
        Assert.Equal(greedy, json["ids"]!.AsArray().Select(x => x!.GetValue<int>()).ToArray());
        Assert.StartsWith("The quick brown fox", json["text"]!.GetValue<string>());
    }

    [Fact]
    public void ModelsVerbListsEveryPresetWithItsSize()
    {
        var r = CliRunner.Run("models", "--json", "--threads", "1");
        Assert.True(r.ExitCode == 0, r.Stderr + r.Stdout);
        var presets = JsonNode.Parse(r.Stdout)!["presets"]!.AsArray();
        var names = presets.Select(p => p!["name"]!.GetValue<string>()).ToList();
        foreach (var n in new[] { "gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl", "gpt2-mini", "gpt2-tiny", "bert-tiny", "bert-mini", "bert-small", "bert-medium", "bert-base", "bert-large" })
            Assert.Contains(n, names);
        var gpt2 = presets.First(p => p!["name"]!.GetValue<string>() == "gpt2")!;
        Assert.Equal(124_439_808, gpt2["parameters"]!.GetValue<long>());
        Assert.True(gpt2["est_train_tokens_per_second"]!.GetValue<double>() > 0);
    }
}
