// Reports: reading a run folder fixture, Markdown + self-contained HTML with embedded PNG plots, `tasklm report`.
using System.Buffers.Binary;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using TaskLM.Evaluation;

namespace TaskLM.Tests.Evaluation;

public class ReportTests
{
    private static readonly string RunA = Fixture.Path("evaluation", "run-spam");
    private static readonly string RunB = Fixture.Path("evaluation", "run-spam-lora");

    // Checks a PNG: signature, IHDR size; returns (width, height).
    private static (int W, int H) CheckPng(byte[] png)
    {
        Assert.True(png.Length > 5000, $"PNG of {png.Length} bytes is suspiciously small");
        Assert.Equal(new byte[] { 0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A }, png[..8]);
        Assert.Equal("IHDR", System.Text.Encoding.ASCII.GetString(png, 12, 4));
        return (BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(16)), BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(20)));
    }

    [Fact]
    public void RunFolder_ReadsStepsEvalLinesAndEvalJson()
    {
        var run = RunFolder.Read(RunA);
        Assert.Equal("run-spam", run.Name);
        Assert.Equal(60, run.Steps.Count);
        Assert.Equal(3, run.Evals.Count);
        Assert.Equal(60, run.Evals[^1].Step);
        Assert.NotNull(run.Steps[0].Lr);
        var e = run.Eval!;
        Assert.Equal("classification", e.Task);
        Assert.Equal(605, e.N);
        Assert.Equal(181, e.ConfusionMatrix![1, 1]);
        Assert.Equal(190, e.PerClass!["spam"].Support);
        Assert.Equal(3, e.WorstExamples.Count);
        // eval.json survives a round trip through EvalResult.
        var again = EvalResult.FromJson(e.ToJson());
        Assert.Equal(e.ToJsonString(), again.ToJsonString());
    }

    [Fact]
    public void RunFolder_BadLine_NamesFileAndLine()
    {
        var dir = Fixture.TempDir();
        File.WriteAllLines(Path.Combine(dir, "metrics.jsonl"), ["{\"step\": 1, \"loss\": 0.5}", "{\"step\": 2, \"loss\": \"high\"}"]);
        var e = Assert.Throws<InvalidDataException>(() => RunFolder.Read(dir));
        Assert.Contains("metrics.jsonl line 2", e.Message);
        Assert.Contains("\"loss\"", e.Message);
    }

    [Fact]
    public void Html_IsSelfContained_WithDecodablePngPlots()
    {
        var report = ReportBuilder.ForRuns([RunFolder.Read(RunA)]);
        var dir = Fixture.TempDir();
        var html = File.ReadAllText(report.Write(dir));
        // Every figure is embedded; no external references (src/href to files or URLs).
        var images = Regex.Matches(html, "src=\"data:image/png;base64,([A-Za-z0-9+/=]+)\"");
        Assert.Equal(6, images.Count); // confusion matrix, loss, lr, and eval loss / accuracy / macro_f1
        Assert.DoesNotMatch("(src|href)=\"(?!data:)", html);
        foreach (Match m in images)
        {
            var (w, h) = CheckPng(Convert.FromBase64String(m.Groups[1].Value));
            Assert.True(w >= 400 && h >= 300);
        }
        Assert.Contains("<td>macro_f1</td>", html);
        Assert.Contains("Per class", html);
        Assert.Contains("WINNER!! As a valued network customer", html);
        Assert.Contains("&lt;b&gt;bring&lt;/b&gt;", html); // example text is escaped, not interpreted
        var md = File.ReadAllText(Path.Combine(dir, "report.md"));
        Assert.Contains("![Confusion matrix](plots/confusion_matrix.png)", md);
        Assert.Contains("| spam | 0.9731 | 0.9526 |", md); // 181/186 and 181/190
        CheckPng(File.ReadAllBytes(Path.Combine(dir, "plots", "loss.png")));
    }

    [Fact]
    public void Cli_Report_ComparesRunsSideBySide()
    {
        var dir = Fixture.TempDir();
        var r = CliRunner.Run("report", RunA, RunB, "--out", dir, "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var o = JsonNode.Parse(r.Stdout)!;
        var figures = o["figures"]!.AsArray().Select(f => f!.GetValue<string>()).ToList();
        Assert.Contains(figures, f => f.EndsWith("loss.png"));
        Assert.Contains(figures, f => f.EndsWith("run2_confusion_matrix.png"));
        foreach (var f in figures) CheckPng(File.ReadAllBytes(f));
        var md = File.ReadAllText(Path.Combine(dir, "report.md"));
        Assert.Contains("| metric | run-spam | run-spam-lora |", md);
        // Higher accuracy and lower loss are each marked best (*) for the full fine-tune.
        Assert.Matches(@"\| accuracy \| 0\.9769 \* \| 0\.9653 \|", md);
        Assert.Matches(@"\| loss \| 0\.1200 \* \| 0\.1600 \|", md);
    }

    [Fact]
    public void Cli_Report_MissingRunFolder_IsAClearError()
    {
        var r = CliRunner.Run("report", Path.Combine(Fixture.TempDir(), "nope"));
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("does not exist", r.Stderr);
    }

    [Fact]
    public void ClassificationResult_FromPredictions_FeedsTheReport()
    {
        // The seam `tasklm evaluate` uses: predictions, golds, texts and losses in, eval.json + report out.
        string[] gold = ["spam", "ham", "ham", "spam", "ham"], pred = ["spam", "ham", "spam", "ham", "ham"];
        string[] texts = ["win cash", "see you", "lunch?", "free prize", "ok"];
        var e = EvalResult.ForClassification(gold, pred, texts, losses: [0.1, 0.2, 1.5, 2.5, 0.05], worst: 3);
        Assert.Equal(0.6, e.Metrics["accuracy"], 12);
        Assert.Equal(["free prize", "lunch?", "see you"], e.WorstExamples.Select(w => w.Text));
        var report = new Report { Title = "eval" };
        ReportBuilder.AddEval(report, e);
        var png = report.Blocks.OfType<ReportFigure>().Single().Png;
        CheckPng(png);
        var json = JsonDocument.Parse(e.ToJsonString()).RootElement;
        Assert.Equal(0.6, json.GetProperty("metrics").GetProperty("accuracy").GetDouble(), 12);
        Assert.Equal(2, json.GetProperty("metrics").GetProperty("per_class").GetProperty("spam").GetProperty("support").GetInt32());
    }

    [Fact]
    public void GenerationAndLmResults_CarrySamplesAndWorstExamples()
    {
        // Generation: corpus BLEU equals sacrebleu's (HF fixture); the worst segment is the lowest sentence BLEU.
        var hf = Fixture.Json("hf", "bleu.expected.json");
        var hyps = Fixture.Strings(hf.GetProperty("hyps"));
        var refs = Fixture.Strings(hf.GetProperty("refs"));
        var g = EvalResult.ForGeneration(hyps.Select(h => "prompt: " + h).ToList(), hyps, refs, samples: 2, worst: 2);
        Assert.True(Math.Abs(hf.GetProperty("corpus_bleu").GetDouble() - g.Metrics["bleu"]) < 1e-6);
        Assert.Equal("a whale is a big fish", g.WorstExamples[0].Pred); // sentence BLEU 30.21, the lowest
        Assert.Equal(100 - 30.213753973567677, g.WorstExamples[0].Loss!.Value, 6);
        Assert.Equal(2, g.Samples.Count);
        var report = new Report { Title = "generation" };
        ReportBuilder.AddEval(report, g);
        var html = report.ToHtml();
        Assert.Contains("Generation samples", html);
        Assert.Contains("prompt: the cat sat on the mat", html);
        // Language model: perplexity = exp(loss); the highest-loss passage comes first.
        var lm = EvalResult.ForLanguageModel(LanguageModelMetrics.FromNll([Math.Log(2), Math.Log(8)]), bytes: 4,
            passages: [("calm sea", 0.5), ("Call me Ishmael", 2.5)]);
        Assert.Equal(4, lm.Metrics["perplexity"], 12);
        Assert.Equal(1, lm.Metrics["bits_per_byte"], 12);
        Assert.Equal("Call me Ishmael", lm.WorstExamples[0].Text);
    }
}
