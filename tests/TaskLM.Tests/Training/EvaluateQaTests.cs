// `tasklm evaluate` on an extractive-QA run: training's exact_match (start and end tokens both right) beside
// SQuAD's text exact match and F1 of the predicted span.
using System.Text.Json.Nodes;

namespace TaskLM.Tests.Training;

public class EvaluateQaTests
{
    static JsonObject Row(string question, string context, string answer) => new()
    {
        ["question"] = question, ["context"] = context,
        ["answers"] = new JsonObject { ["text"] = new JsonArray(answer), ["answer_start"] = new JsonArray(context.IndexOf(answer, StringComparison.Ordinal)) },
    };

    [Fact]
    public void Qa_run_gets_training_exact_match_and_squad_scores()
    {
        string dir = Path.Combine(Path.GetTempPath(), "tasklm-qa-eval-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            var rows = Enumerable.Range(0, 8).Select(i => i % 2 == 0
                ? Row("who lives in paris", "john smith lives in paris with a cat", "john smith")
                : Row("where did mary fly", "mary flew to new york last week", "new york"));
            string data = Path.Combine(dir, "qa.jsonl");
            File.WriteAllLines(data, rows.Select(r => r.ToJsonString()));
            string tok = Tokenization.HfParityTests.Hf("tok-wordpiece");
            File.WriteAllText(Path.Combine(dir, "qa.yaml"), $"""
                task: question-answering
                model:
                  init: bert-tiny
                  config: {"{"}num_hidden_layers: 1, hidden_size: 16, num_attention_heads: 2, intermediate_size: 32, vocab_size: 2000, max_position_embeddings: 64{"}"}
                tokenizer: '{tok.Replace("'", "''")}'
                data: {"{"}train: qa.jsonl, max_length: 32{"}"}
                training: {"{"}max_steps: 2, batch_size: 4, lr: 1.0e-3, eval_every: none, tensorboard: false{"}"}
                """);
            string run = Path.Combine(dir, "run");
            var t = CliRunner.Run(["train", "qa.yaml", "output_dir=" + run, "--threads", "1"], workingDirectory: dir);
            Assert.True(t.ExitCode == 0, t.Stderr);
            var e = CliRunner.Run(["evaluate", run, data, "--json", "--threads", "1"], workingDirectory: dir);
            Assert.True(e.ExitCode == 0, e.Stderr);
            var m = JsonNode.Parse(e.Stdout)!["metrics"]!;
            foreach (var k in new[] { "loss", "exact_match", "squad_exact_match", "squad_f1" })
                Assert.True(m[k] != null, $"no '{k}' in {m.ToJsonString()}");
            double em = m["exact_match"]!.GetValue<double>(), sem = m["squad_exact_match"]!.GetValue<double>(), sf1 = m["squad_f1"]!.GetValue<double>();
            Assert.InRange(em, 0, 1);
            Assert.InRange(sf1, 0, 100);
            // Right start and end tokens give the gold text, so SQuAD's exact match (percent) is never below training's.
            Assert.True(sem >= 100 * em - 1e-9 && sf1 >= sem - 1e-9, m.ToJsonString());
        }
        finally { Directory.Delete(dir, true); }
    }
}
