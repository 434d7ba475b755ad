// The sentence the run summary and the report use to say who won, model or baseline (audit: no page said it in words).
using TaskLM.Evaluation;

namespace TaskLM.Tests.Evaluation;

public class BaselineVerdictTests
{
    static BaselineSummary Summary(double baseline, double low, double high)
    {
        var b = new BaselineSummary();
        b.Metrics["macro_f1"] = baseline;
        b.Difference["macro_f1"] = new ConfidenceInterval((low + high) / 2, low, high, 0.95, 1000, 0);
        return b;
    }

    [Fact]
    public void The_verdict_follows_the_interval_of_the_difference()
    {
        var model = new Dictionary<string, double> { ["macro_f1"] = 0.90 };
        Assert.StartsWith("The model beats the baseline: macro_f1 0.9000 vs 0.8000", BaselineComparison.Verdict(model, Summary(0.80, 0.05, 0.15)));
        Assert.StartsWith("The baseline beats the model", BaselineComparison.Verdict(model, Summary(0.95, -0.09, -0.01)));
        Assert.StartsWith("Model and baseline are tied", BaselineComparison.Verdict(model, Summary(0.89, -0.02, 0.04)));
        Assert.Null(BaselineComparison.Verdict(new Dictionary<string, double>(), Summary(0.8, 0, 0.1)));
    }
}
