// Classification metrics against scikit-learn 1.2.1's values (tests/fixtures/evaluation/sklearn.expected.json).
using System.Text.Json;
using TaskLM.Evaluation;

namespace TaskLM.Tests.Evaluation;

public class ClassificationMetricsTests
{
    private static readonly JsonElement Sk = Fixture.Json("evaluation", "sklearn.expected.json");

    public static TheoryData<int> Cases() { var d = new TheoryData<int>(); for (int i = 0; i < Sk.GetProperty("classification").GetArrayLength(); i++) d.Add(i); return d; }

    [Theory]
    [MemberData(nameof(Cases))]
    public void PrecisionRecallF1_AllAverages_MatchSklearn(int index)
    {
        // Cases: a class never predicted, one class only, a predicted class absent from gold, binary imbalanced.
        var c = Sk.GetProperty("classification")[index];
        var r = ClassificationMetrics.Compute(Fixture.Strings(c.GetProperty("gold")), Fixture.Strings(c.GetProperty("pred")));
        Assert.Equal(Fixture.Strings(c.GetProperty("labels")), r.Labels);
        Assert.Equal(c.GetProperty("accuracy").GetDouble(), r.Accuracy, 12);
        foreach (var label in r.Labels)
        {
            var e = c.GetProperty("per_class").GetProperty(label);
            var s = r.PerClass[label];
            Assert.Equal(e.GetProperty("precision").GetDouble(), s.Precision, 12);
            Assert.Equal(e.GetProperty("recall").GetDouble(), s.Recall, 12);
            Assert.Equal(e.GetProperty("f1").GetDouble(), s.F1, 12);
            Assert.Equal(e.GetProperty("support").GetInt32(), s.Support);
        }
        foreach (var (name, s) in new[] { ("micro", r.Micro), ("macro", r.Macro), ("weighted", r.Weighted) })
        {
            var e = c.GetProperty(name);
            Assert.Equal(e.GetProperty("precision").GetDouble(), s.Precision, 12);
            Assert.Equal(e.GetProperty("recall").GetDouble(), s.Recall, 12);
            Assert.Equal(e.GetProperty("f1").GetDouble(), s.F1, 12);
        }
        var cm = c.GetProperty("confusion_matrix");
        for (int i = 0; i < r.Labels.Count; i++)
            for (int j = 0; j < r.Labels.Count; j++)
                Assert.Equal(cm[i][j].GetInt32(), r.ConfusionMatrix[i, j]);
    }

    [Fact]
    public void RocAucAndAveragePrecision_WithTiedScores_MatchSklearn()
    {
        foreach (var c in Sk.GetProperty("ranking").EnumerateArray())
        {
            var y = c.GetProperty("y").EnumerateArray().Select(x => x.GetInt32() == 1).ToList();
            var s = Fixture.Doubles(c.GetProperty("score"));
            Assert.Equal(c.GetProperty("roc_auc").GetDouble(), ClassificationMetrics.RocAuc(y, s), 12);
            Assert.Equal(c.GetProperty("average_precision").GetDouble(), ClassificationMetrics.AveragePrecision(y, s), 12);
        }
    }

    [Fact]
    public void RocAuc_WithOneClassOnly_IsAnError()
    {
        var e = Assert.Throws<ArgumentException>(() => ClassificationMetrics.RocAuc([true, true], [0.2, 0.9]));
        Assert.Contains("one class", e.Message);
    }

    [Fact]
    public void TopKAccuracy_MatchesSklearn()
    {
        var t = Sk.GetProperty("top_k");
        var y = t.GetProperty("y").EnumerateArray().Select(x => x.GetInt32()).ToList();
        var scores = t.GetProperty("scores").EnumerateArray().Select(r => (IReadOnlyList<double>)Fixture.Doubles(r)).ToList();
        foreach (var kv in t.GetProperty("top_k").EnumerateObject())
            Assert.Equal(kv.Value.GetDouble(), ClassificationMetrics.TopKAccuracy(y, scores, int.Parse(kv.Name)), 12);
    }

    [Fact]
    public void Cli_Classification_Json_MatchesSklearn()
    {
        var c = Sk.GetProperty("classification")[0];
        var dir = Fixture.TempDir();
        File.WriteAllLines(Path.Combine(dir, "gold.txt"), Fixture.Strings(c.GetProperty("gold")));
        File.WriteAllLines(Path.Combine(dir, "pred.txt"), Fixture.Strings(c.GetProperty("pred")));
        var r = CliRunner.Run("metrics", "classification", "--gold", Path.Combine(dir, "gold.txt"), "--pred", Path.Combine(dir, "pred.txt"),
            "--bootstrap", "200", "--seed", "3", "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var m = JsonDocument.Parse(r.Stdout).RootElement.GetProperty("metrics");
        Assert.Equal(c.GetProperty("accuracy").GetDouble(), m.GetProperty("accuracy").GetDouble(), 12);
        Assert.Equal(c.GetProperty("micro").GetProperty("f1").GetDouble(), m.GetProperty("micro_f1").GetDouble(), 12);
        Assert.Equal(c.GetProperty("macro").GetProperty("f1").GetDouble(), m.GetProperty("macro_f1").GetDouble(), 12);
        Assert.Equal(c.GetProperty("weighted").GetProperty("f1").GetDouble(), m.GetProperty("weighted_f1").GetDouble(), 12);
        Assert.Equal(c.GetProperty("per_class").GetProperty("fish").GetProperty("support").GetInt32(),
            m.GetProperty("per_class").GetProperty("fish").GetProperty("support").GetInt32());
        var ci = JsonDocument.Parse(r.Stdout).RootElement.GetProperty("confidence_intervals").GetProperty("macro_f1");
        Assert.True(ci.GetProperty("low").GetDouble() <= ci.GetProperty("high").GetDouble());
    }

    [Fact]
    public void Cli_Classification_MisalignedFiles_NamesBothFiles()
    {
        var dir = Fixture.TempDir();
        File.WriteAllLines(Path.Combine(dir, "gold.txt"), ["a", "b", "a"]);
        File.WriteAllLines(Path.Combine(dir, "pred.txt"), ["a", "b"]);
        var r = CliRunner.Run("metrics", "classification", "--gold", Path.Combine(dir, "gold.txt"), "--pred", Path.Combine(dir, "pred.txt"));
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("gold.txt' has 3 lines", r.Stderr);
        Assert.Contains("pred.txt' has 2", r.Stderr);
    }
}
