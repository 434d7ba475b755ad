// The report `tasklm train` writes for a classifier: the confusion matrix and worst examples evaluate writes, with the original texts.
using System.Text.Json.Nodes;
using TaskLM.Evaluation;
using TaskLM.Tests.Faults;
using TaskLM.Tests.Serving;

namespace TaskLM.Tests.Evaluation;

public class TrainReportTests
{
    static CliResult Tasklm(string dir, params string[] args) => CliRunner.Run([.. args, "--threads", "1"], workingDirectory: dir);

    /// <summary>Mixed-case texts an uncased WordPiece tokenizer lower-cases (and "Hello"/"World" are not in its vocabulary),
    /// so a decoded text can never equal the original.</summary>
    static List<string> Texts()
    {
        var labels = new[] { "eggs", "ham", "spam" };
        var rows = new List<string>();
        for (int i = 0; i < 24; i++)
            rows.Add($"\"W{10 + i % 3} w{20 + i} Hello, World #{i}!\",{labels[i % 3]}");
        return rows;
    }

    [Fact]
    public void The_report_after_train_has_the_confusion_matrix_and_worst_examples_with_the_original_texts()
    {
        string dir = TrainingFaultTests.NewDir("train-report");
        try
        {
            var rows = Texts();
            File.WriteAllLines(Path.Combine(dir, "cls.csv"), ["text,label", .. rows]);
            string model = ServingFixtures.Bert("bert-cls", ["eggs", "ham", "spam"]);
            File.WriteAllText(Path.Combine(dir, "cls.yaml"), $$"""
                task: classification
                model: {init: '{{model}}'}
                data: {train: cls.csv, validation: cls.csv, test: cls.csv, max_length: 16}
                training: {max_steps: 2, batch_size: 8, eval_batch_size: 5, lr: 1.0e-3, eval_every: 2, tensorboard: false}
                evaluation: {baseline: false}
                """);
            var r = Tasklm(dir, "train", "cls.yaml", "output_dir=run");
            Assert.True(r.ExitCode == 0, r.Stderr);
            string run = Path.Combine(dir, "run");
            var originals = rows.Select(l => l[1..l.LastIndexOf('"')]).ToHashSet();

            // eval.json: training's metric names (the baseline and early stopping use them), plus what evaluate writes.
            var eval = JsonNode.Parse(File.ReadAllText(Path.Combine(run, "eval.json")))!;
            Assert.Equal("best", eval["model"]!.GetValue<string>());
            foreach (var k in new[] { "loss", "accuracy", "macro_f1", "f1_eggs", "f1_ham", "f1_spam" }) Assert.NotNull(eval["metrics"]![k]);
            Assert.Equal(["eggs", "ham", "spam"], eval["confusion_matrix"]!["labels"]!.AsArray().Select(x => x!.GetValue<string>()));
            Assert.Equal(24, eval["confusion_matrix"]!["matrix"]!.AsArray().SelectMany(row => row!.AsArray()).Sum(x => x!.GetValue<int>()));
            var worst = eval["worst_examples"]!.AsArray();
            Assert.Equal(10, worst.Count);
            // The texts as the file has them (case, punctuation, words outside the vocabulary), not re-tokenised.
            Assert.All(worst, w => Assert.Contains(w!["text"]!.GetValue<string>(), originals));

            string md = File.ReadAllText(Path.Combine(run, "report.md"));
            Assert.Contains("## Confusion matrix", md);
            Assert.Contains("## Worst examples", md);
            Assert.Contains("Hello, World #", md);
            Assert.True(File.Exists(Path.Combine(run, "plots", "confusion_matrix.png")));

            // evaluate on the same model and file gives the same matrix and the same worst examples: one evaluation, shared.
            var e = Tasklm(dir, "evaluate", "run", "cls.csv", "--out", "ev");
            Assert.True(e.ExitCode == 0, e.Stderr);
            var ev = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "ev", "eval.json")))!;
            Assert.Equal(eval["confusion_matrix"]!.ToJsonString(), ev["confusion_matrix"]!.ToJsonString());
            Assert.Equal(worst.Select(w => w!["text"]!.GetValue<string>()), ev["worst_examples"]!.AsArray().Select(w => w!["text"]!.GetValue<string>()));
            Assert.Equal(ev["metrics"]!["loss"]!.GetValue<double>(), eval["metrics"]!["loss"]!.GetValue<double>(), 6);
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void A_long_text_is_shown_as_written_and_cut_at_a_word_with_the_rest_counted()
    {
        Assert.Equal("Ünïcode STAYS as written!", EvalResult.Excerpt("  Ünïcode   STAYS\tas written!  "));
        Assert.Equal("question?\nits context", EvalResult.Excerpt("question?\r\n\r\n  its context"));
        string text = string.Join(' ', Enumerable.Range(0, 100).Select(i => $"Word{i}"));   // 689 characters
        string shown = EvalResult.Excerpt(text, 300);
        Assert.StartsWith("Word0 Word1", shown);
        Assert.Matches(@"^[^…]{240,300} … \(\+\d+ characters\)$", shown);
        int kept = shown.IndexOf(" …", StringComparison.Ordinal);
        Assert.True(text[kept] == ' ', "cut at a word boundary");
        Assert.EndsWith($"(+{text.Length - kept} characters)", shown);
    }
}
