// `tasklm evaluate` on a token-classification run: BIO tags get seqeval's entity scores (per entity type, not per
// tag); other tag sets (part of speech) get token accuracy only, as training's evaluation reports.
using System.Text.Json.Nodes;
using TaskLM.Evaluation;

namespace TaskLM.Tests.Training;

public class EvaluateTaggerTests
{
    static JsonObject Sentence(string[] tokens, string[] tags) => new()
    {
        ["tokens"] = new JsonArray(tokens.Select(t => (JsonNode)t).ToArray()),
        ["tags"] = new JsonArray(tags.Select(t => (JsonNode)t).ToArray()),
    };

    static JsonNode TrainAndEvaluate(string dir, IEnumerable<JsonObject> rows)
    {
        string data = Path.Combine(dir, "tags.jsonl");
        File.WriteAllLines(data, rows.Select(r => r.ToJsonString()));
        File.WriteAllText(Path.Combine(dir, "tag.yaml"), """
            task: token-classification
            model:
              init: gpt2-tiny
              config: {n_layer: 1, n_head: 2, n_embd: 16, n_positions: 32, pad_token_id: 50256}
            data: {train: tags.jsonl, max_length: 24}
            training: {max_steps: 2, batch_size: 4, lr: 1.0e-3, eval_every: none, tensorboard: false}
            """);
        string run = Path.Combine(dir, "run");
        var t = CliRunner.Run(["train", "tag.yaml", "output_dir=" + run, "--threads", "1"], workingDirectory: dir);
        Assert.True(t.ExitCode == 0, t.Stderr);
        var e = CliRunner.Run(["evaluate", run, data, "--json", "--threads", "1"], workingDirectory: dir);
        Assert.True(e.ExitCode == 0, e.Stderr);
        return JsonNode.Parse(e.Stdout)!["metrics"]!;
    }

    [Fact]
    public void Bio_tags_get_seqeval_entity_scores_per_entity_type()
    {
        string dir = Path.Combine(Path.GetTempPath(), "tasklm-tagger-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            var rows = Enumerable.Range(0, 8).Select(i => i % 2 == 0
                ? Sentence(["John", "Smith", "lives", "in", "Paris"], ["B-PER", "I-PER", "O", "O", "B-LOC"])
                : Sentence(["Mary", "flew", "to", "New", "York"], ["B-PER", "O", "O", "B-LOC", "I-LOC"]));
            var m = TrainAndEvaluate(dir, rows);
            foreach (var k in new[] { "precision", "recall", "f1", "macro_f1", "weighted_f1", "token_accuracy", "loss" })
                Assert.True(m[k] != null, $"no '{k}' in {m.ToJsonString()}");
            Assert.InRange(m["f1"]!.GetValue<double>(), 0, 1);
            // seqeval groups B-/I- into entities: the per-class table is by entity type, with the gold support.
            var perClass = m["per_class"]!.AsObject();
            Assert.Subset(new HashSet<string> { "PER", "LOC" }, perClass.Select(kv => kv.Key).ToHashSet());
            Assert.Equal(8, perClass["PER"]!["support"]!.GetValue<int>());
            Assert.Equal(8, perClass["LOC"]!["support"]!.GetValue<int>());
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void Part_of_speech_tags_get_token_accuracy_and_no_entity_scores()
    {
        string dir = Path.Combine(Path.GetTempPath(), "tasklm-tagger-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            var rows = Enumerable.Range(0, 8).Select(_ => Sentence(["the", "dog", "runs"], ["DET", "NOUN", "VERB"]));
            var m = TrainAndEvaluate(dir, rows);
            Assert.InRange(m["token_accuracy"]!.GetValue<double>(), 0, 1);
            Assert.Null(m["f1"]);
            Assert.Null(m["per_class"]);
        }
        finally { Directory.Delete(dir, true); }
    }

    [Theory]
    [InlineData("O,B-PER,I-PER,B-LOC", true)]
    [InlineData("O,I-PER", false)]          // no B-: not IOB2 as seqeval's default scheme reads it
    [InlineData("DET,NOUN,VERB", false)]
    [InlineData("O,B-PER,NOUN", false)]
    public void Bio_detection(string tags, bool bio) => Assert.Equal(bio, ModelEvaluation.IsBio(tags.Split(',')));
}
