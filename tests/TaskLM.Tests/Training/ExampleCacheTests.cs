// data.cache: a split is tokenized once and read back from output_dir/cache/ with identical examples; a changed
// setting or file is tokenized again; a resumed run reads the cache.
using System.Text.Json.Nodes;
using TaskLM.Data.Tokenization;
using TaskLM.Recipes;
using TaskLM.Tasks;
using TaskLM.Training;

namespace TaskLM.Tests.Training;

public class ExampleCacheTests
{
    static readonly string[] Words = ["free", "prize", "meeting", "tomorrow", "winner", "lunch", "urgent", "call", "report", "cash"];

    static string WriteData(string dir, int seed = 3, int n = 40)
    {
        var rng = new Random(seed);
        string path = Path.Combine(dir, "train.jsonl");
        File.WriteAllLines(path, Enumerable.Range(0, n).Select(i => new JsonObject
        {
            ["text"] = string.Join(" ", Enumerable.Range(0, rng.Next(3, 30)).Select(_ => Words[rng.Next(Words.Length)])),
            ["label"] = i % 3 == 0 ? "spam" : "ham",
        }.ToJsonString()));
        return path;
    }

    static void Same(List<Example> a, List<Example> b)
    {
        Assert.Equal(a.Count, b.Count);
        for (int i = 0; i < a.Count; i++)
        {
            Assert.Equal(a[i].InputIds, b[i].InputIds);
            Assert.Equal(a[i].TokenTypeIds, b[i].TokenTypeIds);
            Assert.Equal(a[i].TokenLabels, b[i].TokenLabels);
            Assert.Equal((a[i].Label, a[i].StartPosition, a[i].EndPosition), (b[i].Label, b[i].StartPosition, b[i].EndPosition));
            Assert.Equal(a[i].Qa is null, b[i].Qa is null);
            if (a[i].Qa is { } qa)
            {
                Assert.Equal((qa.Question, qa.Context), (b[i].Qa!.Question, b[i].Qa!.Context));
                Assert.Equal(qa.Answers, b[i].Qa!.Answers);
                Assert.Equal(qa.Spans, b[i].Qa!.Spans);
            }
        }
    }

    [Fact]
    public void Question_answering_examples_come_back_with_their_text_and_spans()
    {
        // evaluate's SQuAD scores read each example's question, context, answers and token spans: the cache keeps them.
        string dir = Path.Combine(Path.GetTempPath(), "tasklm-excache-qa-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            string data = Path.Combine(dir, "qa.jsonl");
            File.WriteAllLines(data, Enumerable.Range(0, 6).Select(i => new JsonObject
            {
                ["question"] = $"who called the {Words[i]} meeting",
                ["context"] = $"the {Words[i]} meeting was called by winner {i} tomorrow",
                ["answers"] = new JsonObject { ["text"] = new JsonArray($"winner {i}"), ["answer_start"] = new JsonArray($"the {Words[i]} meeting was called by ".Length) },
            }.ToJsonString()));
            var tok = TokenizerLoader.Load("gpt2");
            var r = RecipeLoader.Parse($"task: question-answering\nmodel: {{init: gpt2-tiny}}\ndata: {{train: {data}, max_length: 48}}\n");
            var direct = TaskData.Load(r, data, tok, null);
            Assert.All(direct.Examples, e => Assert.NotNull(e.Qa));
            var log = new List<string>();
            ExampleCache.Load(r, "train", data, tok, null, 0, dir, log.Add);
            var cached = ExampleCache.Load(r, "train", data, tok, null, 0, dir, log.Add);
            Assert.StartsWith("examples: cached (train: 6", log[^1]);
            Same(direct.Examples, cached.Examples);
            Assert.Equal("winner 3", cached.Examples[3].Qa!.Answer(cached.Examples[3].StartPosition, cached.Examples[3].EndPosition).Trim());
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void The_second_load_reads_the_cache_with_identical_examples_and_a_changed_setting_or_file_tokenizes_again()
    {
        string dir = Path.Combine(Path.GetTempPath(), "tasklm-excache-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            string data = WriteData(dir);
            var tok = TokenizerLoader.Load("gpt2");
            var r = RecipeLoader.Parse($"task: classification\nmodel: {{init: gpt2-tiny}}\ndata: {{train: {data}, max_length: 16}}\n");
            var log = new List<string>();
            // The reference: a plain TaskData.Load, no cache involved.
            var direct = TaskData.Load(r, data, tok, null);

            var first = ExampleCache.Load(r, "train", data, tok, null, 0, dir, log.Add);
            Assert.StartsWith("examples: tokenized (train: 40", log[^1]);
            var second = ExampleCache.Load(r, "train", data, tok, null, 0, dir, log.Add);
            Assert.StartsWith("examples: cached (train: 40", log[^1]);
            Same(direct.Examples, first.Examples);
            Same(direct.Examples, second.Examples);
            Assert.Equal(direct.Labels, second.Labels);
            Assert.Single(Directory.GetFiles(ExampleCache.Folder(dir)));

            // max_length changes the encoding: tokenized again, truncated at 8, and the stale file replaced.
            r.Data.MaxLength = 8;
            var shorter = ExampleCache.Load(r, "train", data, tok, null, 0, dir, log.Add);
            Assert.StartsWith("examples: tokenized (train: 40", log[^1]);
            Assert.All(shorter.Examples, e => Assert.True(e.InputIds.Length <= 8));
            Assert.Contains(direct.Examples, e => e.InputIds.Length > 8);
            Same(TaskData.Load(r, data, tok, null).Examples, shorter.Examples);
            Assert.Single(Directory.GetFiles(ExampleCache.Folder(dir)));

            // A validation split keyed by the training label map: another map is another key.
            ExampleCache.Load(r, "validation", data, tok, ["ham", "spam"], 0, dir, log.Add);
            Assert.StartsWith("examples: tokenized (validation", log[^1]);
            ExampleCache.Load(r, "validation", data, tok, ["ham", "spam"], 0, dir, log.Add);
            Assert.StartsWith("examples: cached (validation", log[^1]);
            Assert.NotEqual(ExampleCache.Key(r, data, tok, ["ham", "spam"], 0), ExampleCache.Key(r, data, tok, ["spam", "ham"], 0));

            // Another file's bytes (same name): tokenized again, and the new examples are the new file's.
            WriteData(dir, seed: 4);
            var changed = ExampleCache.Load(r, "train", data, tok, null, 0, dir, log.Add);
            Assert.StartsWith("examples: tokenized (train", log[^1]);
            Same(TaskData.Load(r, data, tok, null).Examples, changed.Examples);

            // A damaged cache file is not trusted: tokenized again, never an error.
            string file = Directory.GetFiles(ExampleCache.Folder(dir), "examples-train-*").Single();
            var bytes = File.ReadAllBytes(file);
            File.WriteAllBytes(file, bytes[..(bytes.Length / 2)]);
            var again = ExampleCache.Load(r, "train", data, tok, null, 0, dir, log.Add);
            Assert.StartsWith("examples: tokenized (train", log[^1]);
            Same(changed.Examples, again.Examples);
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void A_resumed_run_reads_its_examples_from_the_cache_and_data_cache_false_writes_none()
    {
        string dir = Path.Combine(Path.GetTempPath(), "tasklm-excache-run-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            string data = WriteData(dir, n: 24);
            string run = Path.Combine(dir, "run");
            string yaml = $$"""
                task: classification
                model:
                  init: gpt2-tiny
                  config: {n_layer: 1, n_head: 2, n_embd: 16, n_positions: 32, pad_token_id: 50256}
                data: {train: {{data}}, validation: {{data}}, max_length: 32}
                training: {max_steps: 4, batch_size: 8, save_every: 2, eval_every: none, tensorboard: false}
                evaluation: {baseline: false}
                output_dir: {{run}}
                """;
            var log = new List<string>();
            TrainingRun.Run(RecipeLoader.Parse(yaml), new RunOptions { Say = log.Add });
            Assert.Contains(log, l => l.StartsWith("examples: tokenized (train: 24", StringComparison.Ordinal));
            Assert.Contains(log, l => l.StartsWith("examples: tokenized (validation: 24", StringComparison.Ordinal));
            // The plan in numbers before the first step (BatchPlan.PaddedTokens; GroupByLengthTests checks the count).
            Assert.Contains(log, l => l.StartsWith("plan: ", StringComparison.Ordinal) && l.Contains("; estimated ", StringComparison.Ordinal));

            log.Clear();
            TrainingRun.Run(RecipeLoader.Parse(yaml), new RunOptions { Say = log.Add, Resume = Path.Combine(run, "checkpoints", "step-2") });
            Assert.Contains(log, l => l.StartsWith("resumed from", StringComparison.Ordinal));
            Assert.Contains(log, l => l.StartsWith("examples: cached (train: 24", StringComparison.Ordinal));
            Assert.Contains(log, l => l.StartsWith("examples: cached (validation: 24", StringComparison.Ordinal));
            Assert.DoesNotContain(log, l => l.StartsWith("examples: tokenized", StringComparison.Ordinal));

            string off = Path.Combine(dir, "off");
            TrainingRun.Run(RecipeLoader.Parse(yaml.Replace(run, off), overrides: ["data.cache=false"]), new RunOptions { Say = log.Add });
            Assert.False(Directory.Exists(ExampleCache.Folder(off)));
        }
        finally { Directory.Delete(dir, true); }
    }
}
