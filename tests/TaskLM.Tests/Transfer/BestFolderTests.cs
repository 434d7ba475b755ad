// best/ is a complete Hugging Face folder: weights, config and the tokenizer files, so no --tokenizer is needed.
using System.Text.Json.Nodes;

namespace TaskLM.Tests.Transfer;

public class BestFolderTests
{
    [Fact]
    public void GenerateFromBestNeedsNoTokenizerOption()
    {
        string dir = Directory.CreateTempSubdirectory("tasklm-best").FullName;
        try
        {
            string data = Path.Combine(dir, "lm.jsonl");
            File.WriteAllLines(data, Enumerable.Range(0, 12).Select(i => new JsonObject { ["text"] = $"The ship sailed north on day {i} and the crew sang." }.ToJsonString()));
            string recipe = Path.Combine(dir, "lm.yaml");
            File.WriteAllText(recipe, $"task: causal-lm\nmodel: {{init: gpt2-tiny}}\ntokenizer: gpt2\ndata: {{train: '{data}', validation: '{data}', max_length: 16}}\n"
                + $"training: {{max_steps: 2, batch_size: 4, eval_every: 2}}\noutput_dir: '{Path.Combine(dir, "run")}'\n");
            var t = CliRunner.Run("train", recipe, "--json", "--threads", "2");
            Assert.True(t.ExitCode == 0, t.Stderr + t.Stdout);
            string best = Path.Combine(dir, "run", "best");
            Assert.True(File.Exists(Path.Combine(best, "vocab.json")) && File.Exists(Path.Combine(best, "merges.txt")), "GPT-2 tokenizer files in best/");

            var g = CliRunner.Run("generate", "--model", best, "--prompt", "The ship", "--max-new-tokens", "3", "--greedy", "--json", "--threads", "2");
            Assert.True(g.ExitCode == 0, g.Stderr + g.Stdout);
            Assert.Contains("The ship", g.Stdout);
        }
        finally { Directory.Delete(dir, true); }
    }
}
