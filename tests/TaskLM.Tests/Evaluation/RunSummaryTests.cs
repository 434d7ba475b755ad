// The run summary's test line: the metric best/ was chosen by comes first, per-class F1 included.
using TaskLM.Evaluation;

namespace TaskLM.Tests.Evaluation;

public class RunSummaryTests
{
    [Fact]
    public void The_test_line_leads_with_the_early_stopping_metric_even_when_it_is_a_per_class_f1()
    {
        // 4 spam, 6 ham; the model finds 3 spam and raises 1 false alarm: spam P = 3/4, R = 3/4, F1 = 0.75.
        string[] gold = ["spam", "spam", "spam", "spam", "ham", "ham", "ham", "ham", "ham", "ham"];
        string[] pred = ["spam", "spam", "spam", "ham", "spam", "ham", "ham", "ham", "ham", "ham"];
        var test = EvalResult.ForClassification(gold, pred, split: "test");
        var s = new RunSummary { RunDir = "runs/x", Wall = TimeSpan.FromSeconds(5), Steps = 10, BestStep = 8, BestMetric = 0.9, BestMetricName = "f1_spam", Test = test, Next = [] };
        string line = s.Lines().Single(l => l.StartsWith("test (n = 10): ", StringComparison.Ordinal));
        Assert.StartsWith("test (n = 10): f1_spam 0.7500  accuracy 0.8000", line);
    }
}
