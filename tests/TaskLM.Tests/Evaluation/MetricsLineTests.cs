// metrics.jsonl's one line type: the bytes training writes (key order, number format, non-finite values) and reading them back.
using TaskLM.Evaluation;

namespace TaskLM.Tests.Evaluation;

public class MetricsLineTests
{
    [Fact]
    public void Step_and_eval_lines_are_written_as_the_file_has_them()
    {
        var step = new MetricsLine { Step = 3, Epoch = 0.25, Loss = 1.5, Lr = 0.001, GradNorm = 0.5, TokensPerS = 100.5, RssMb = 200.1 };
        Assert.Equal("""{"step":3,"epoch":0.25,"loss":1.5,"lr":0.001,"grad_norm":0.5,"tokens_per_s":100.5,"rss_mb":200.1}""", step.ToJson());
        var bad = step with { Step = 4, Loss = double.NaN, GradNorm = double.PositiveInfinity, Skipped = true };
        Assert.Equal("""{"step":4,"epoch":0.25,"loss":"NaN","lr":0.001,"grad_norm":"Infinity","tokens_per_s":100.5,"rss_mb":200.1,"skipped":true}""", bad.ToJson());
        var eval = new MetricsLine { Step = 5, Eval = new Dictionary<string, double> { ["loss"] = 0.5, ["accuracy"] = double.NaN } };
        Assert.Equal("""{"eval":{"loss":0.5,"accuracy":"NaN"},"step":5}""", eval.ToJson());
    }

    [Fact]
    public void Lines_read_back_as_written()
    {
        var step = new MetricsLine { Step = 4, Epoch = 0.25, Loss = double.NaN, Lr = 1e-3, GradNorm = 2, TokensPerS = 10, RssMb = 1, Skipped = true };
        Assert.Equal(step, MetricsLine.Parse(step.ToJson(), "metrics.jsonl", 1));
        var eval = MetricsLine.Parse("""{"eval":{"loss":0.5,"accuracy":"NaN"},"step":5}""", "metrics.jsonl", 2);
        Assert.Equal(5, eval.Step);
        Assert.Equal(new Dictionary<string, double> { ["loss"] = 0.5 }, eval.Eval);   // entries that are not numbers are left out, as before
        // A line written by another tool (spaces, fields missing) reads, and writes back without the missing fields.
        var other = MetricsLine.Parse("""{"step": 1, "epoch": 0.05, "loss": 0.6193}""", "metrics.jsonl", 3);
        Assert.Equal("""{"step":1,"epoch":0.05,"loss":0.6193}""", other.ToJson());
        var e = Assert.Throws<InvalidDataException>(() => MetricsLine.Parse("""{"step": 1, "loss": "high"}""", "m.jsonl", 7));
        Assert.Equal("m.jsonl line 7: \"loss\" should be a number, got \"high\"", e.Message);
        Assert.Contains("m.jsonl line 8: missing \"step\"", Assert.Throws<InvalidDataException>(() => MetricsLine.Parse("""{"loss": 1}""", "m.jsonl", 8)).Message);
    }
}
