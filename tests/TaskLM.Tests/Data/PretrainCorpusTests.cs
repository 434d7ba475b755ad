// `tasklm data pretrain-corpus`: the base models' pre-training text never contains a held-out test document.
using System.Text.Json.Nodes;
using TaskLM.Data.Corpus;

namespace TaskLM.Tests.Data;

public class PretrainCorpusTests
{
    [Fact]
    public void Held_out_documents_are_absent_from_pretraining_and_are_the_tasks_test_splits()
    {
        var dir = Path.Combine(Path.GetTempPath(), "tasklm-pretrain-" + Guid.NewGuid().ToString("N"));
        try
        {
            var r = CliRunner.Run("data", "pretrain-corpus", "--out", dir, "--json");
            Assert.True(r.ExitCode == 0, r.Stderr);
            var files = JsonNode.Parse(r.Stdout)!["files"]!.AsArray().ToDictionary(f => f!["file"]!.ToString(), f => (int)f!["rows"]!);
            Assert.True(files["pretrain/train.jsonl"] > 15_000, "pre-training pieces");
            var pre = JsonlFile.Read(Path.Combine(dir, "pretrain", "train.jsonl")).Concat(JsonlFile.Read(Path.Combine(dir, "pretrain", "validation.jsonl")))
                .Select(x => (source: x.Fields["source"]!.ToString(), doc: x.Fields["doc"]!.ToString())).ToHashSet();
            Assert.DoesNotContain(pre, p => p.source == "spam-assassin");
            var held = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "heldout.json")))!;

            // Brown: the held-out documents are exactly brown-pos's validation + test documents (same seed).
            var posDir = Path.Combine(dir, "pos");
            Assert.Equal(0, CliRunner.Run("data", "brown-pos", "--out-dir", posDir).ExitCode);
            var posHeld = new[] { "validation", "test" }.SelectMany(s => JsonlFile.Read(Path.Combine(posDir, s + ".jsonl")))
                .Select(x => x.Fields["doc"]!.ToString()).ToHashSet();
            var brownHeld = held["brown"]!["documents"]!.AsArray().Select(x => x!.ToString()).ToHashSet();
            Assert.Equal(posHeld.OrderBy(x => x), brownHeld.OrderBy(x => x));
            Assert.DoesNotContain(pre, p => p.source == "brown" && brownHeld.Contains(p.doc));
            var posTest = JsonlFile.Read(Path.Combine(posDir, "test.jsonl")).Select(x => x.Fields["doc"]!.ToString()).ToHashSet();
            Assert.Equal(posTest.OrderBy(x => x), TaskDocs(dir, "brown-genre", "test").OrderBy(x => x));

            // SOTU and KJV: every test document of their tasks is held out and absent from pre-training.
            foreach (var (task, source) in new[] { ("sotu-party", "sotu"), ("kjv-division", "kjv") })
            {
                var h = held[source]!["documents"]!.AsArray().Select(x => x!.ToString()).ToHashSet();
                var test = TaskDocs(dir, task, "test");
                Assert.NotEmpty(test);
                Assert.Subset(h, test);
                Assert.DoesNotContain(pre, p => p.source == source && h.Contains(p.doc));
                Assert.Empty(TaskDocs(dir, task, "train").Intersect(test));
            }
            // The tasks' sizes and label sets (2-40 classes, 5k-15k examples).
            Assert.Equal(15, Labels(dir, "brown-genre").Count);
            Assert.Equal(["Democratic", "Republican"], Labels(dir, "sotu-party"));
            Assert.Equal(8, Labels(dir, "kjv-division").Count);
            Assert.Equal(25, Labels(dir, "wordnet-supersense").Count);
            foreach (var t in new[] { "brown-genre", "sotu-party", "kjv-division", "wordnet-supersense" })
            {
                int n = new[] { "train", "validation", "test" }.Sum(s => files[$"tasks/{t}/{s}.jsonl"]);
                Assert.InRange(n, 5_000, 15_000);
            }
        }
        finally { if (Directory.Exists(dir)) Directory.Delete(dir, true); }
    }

    static HashSet<string> TaskDocs(string dir, string task, string split) =>
        JsonlFile.Read(Path.Combine(dir, "tasks", task, split + ".jsonl")).Select(x => x.Fields["doc"]!.ToString()).ToHashSet();

    static List<string> Labels(string dir, string task) =>
        JsonlFile.Read(Path.Combine(dir, "tasks", task, "train.jsonl")).Select(x => x.Fields["label"]!.ToString()).Distinct().OrderBy(x => x, StringComparer.Ordinal).ToList();
}
