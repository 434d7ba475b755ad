// The improvement verbs' decisions without training: budgets, stratified samples and splits, the compare
// recommendation, the learning-curve verdict, and the SVG writer.
using System.Text.Json.Nodes;
using System.Xml.Linq;
using TaskLM.Improve;

namespace TaskLM.Tests.Improve;

public class ImproveUnitTests
{
    [Theory]
    [InlineData("300", 300, null)]
    [InlineData("300steps", 300, null)]
    [InlineData("10m", null, 600.0)]
    [InlineData("10min", null, 600.0)]
    [InlineData("90s", null, 90.0)]
    [InlineData("1.5h", null, 5400.0)]
    public void Budgets_are_steps_or_seconds(string text, int? steps, double? seconds)
    {
        var b = Budget.Parse(text)!;
        Assert.Equal(steps, b.Steps);
        Assert.Equal(seconds, b.Seconds);
    }

    [Theory]
    [InlineData("2.5")]
    [InlineData("abc")]
    [InlineData("-3m")]
    public void A_budget_that_is_neither_is_refused(string text) =>
        Assert.Contains("--budget", Assert.Throws<ArgumentException>(() => Budget.Parse(text)).Message);

    static List<JsonObject> Rows(int a, int b) =>
        Enumerable.Range(0, a).Select(i => new JsonObject { ["id"] = $"a{i}", ["label"] = "a" })
            .Concat(Enumerable.Range(0, b).Select(i => new JsonObject { ["id"] = $"b{i}", ["label"] = "b" })).ToList();

    static HashSet<string> Ids(IEnumerable<JsonObject> rows) => rows.Select(r => r["id"]!.GetValue<string>()).ToHashSet();

    [Fact]
    public void Stratified_samples_keep_each_labels_share_and_are_nested_per_seed()
    {
        var rows = Rows(90, 10);
        var s10 = LabelledRows.StratifiedSample(rows, "label", 0.1, 3, "t");
        var s50 = LabelledRows.StratifiedSample(rows, "label", 0.5, 3, "t");
        Assert.Equal(9, s10.Count(r => r["label"]!.GetValue<string>() == "a"));
        Assert.Equal(1, s10.Count(r => r["label"]!.GetValue<string>() == "b"));
        Assert.Equal(45 + 5, s50.Count);
        Assert.True(Ids(s10).IsSubsetOf(Ids(s50)));
        Assert.NotEqual(Ids(s10), Ids(LabelledRows.StratifiedSample(rows, "label", 0.1, 4, "t")));   // another seed, another sample
        // A label with one row still appears in the smallest sample.
        Assert.Contains(LabelledRows.StratifiedSample(Rows(50, 1), "label", 0.1, 3, "t"), r => r["label"]!.GetValue<string>() == "b");
    }

    [Fact]
    public void A_stratified_split_holds_out_each_labels_share_disjointly()
    {
        var rows = Rows(80, 20);
        var (kept, held) = LabelledRows.StratifiedSplit(rows, "label", 0.2, 1, "t");
        Assert.Equal(16, held.Count(r => r["label"]!.GetValue<string>() == "a"));
        Assert.Equal(4, held.Count(r => r["label"]!.GetValue<string>() == "b"));
        Assert.Empty(Ids(kept).Intersect(Ids(held)));
        Assert.Equal(Ids(rows), Ids(kept).Union(Ids(held)).ToHashSet());
        var missing = new JsonObject { ["id"] = "x" };
        Assert.Contains("no label column 'label'", Assert.Throws<InvalidDataException>(() => LabelledRows.StratifiedSplit([.. rows, missing], "label", 0.2, 1, "f.jsonl")).Message);
    }

    static JsonObject Row(string model, double value, double latency, long parameters) => new()
    {
        ["model"] = model, ["value"] = value, ["ci_low"] = value - 0.02, ["ci_high"] = value + 0.02, ["latency_ms_batch1"] = latency, ["parameters"] = parameters,
    };

    [Fact]
    public void The_recommendation_is_the_fastest_model_within_the_tolerance_of_the_best()
    {
        var rows = new[] { Row("big", 0.950, 9.0, 30_000_000), Row("small", 0.946, 3.0, 10_000_000), Row("tiny", 0.900, 1.0, 1_000_000) };
        var (pick, reason) = Compare.Recommend(rows, "macro_f1", maximize: true, tolerance: 0.01);
        Assert.Equal("small", pick);
        Assert.Contains("within 0.004 macro_f1 of big", reason);
        Assert.Contains("0.33× its latency", reason);
        Assert.Contains("intervals overlap", reason);
        // A tighter tolerance leaves only the best.
        (pick, reason) = Compare.Recommend(rows, "macro_f1", maximize: true, tolerance: 0.001);
        Assert.Equal("big", pick);
        Assert.Contains("no other model is within 0.001", reason);
        // Loss: lower is better.
        Assert.Equal("tiny", Compare.Recommend(rows, "loss", maximize: false, tolerance: 0.0).Model);
    }

    [Fact]
    public void The_advice_is_the_baseline_when_it_beats_every_model()
    {
        // Audit BAD 2: the baseline in the same table beat every model and a model was still recommended.
        var rows = new[] { Row("big", 0.90, 9.0, 30_000_000), Row("small", 0.89, 3.0, 10_000_000) };
        rows[0]["baseline_value"] = 0.93; rows[1]["baseline_value"] = 0.93;
        var (pick, reason) = Compare.Advise(rows, "macro_f1", maximize: true, tolerance: 0.01);
        Assert.Equal(Compare.BaselineName, pick);
        Assert.Contains("baseline (0.930 macro_f1) beats every model (the best, 0.900)", reason);
        // Below the best model, the baseline changes nothing.
        rows[0]["baseline_value"] = 0.85; rows[1]["baseline_value"] = 0.85;
        Assert.Equal("small", Compare.Advise(rows, "macro_f1", maximize: true, tolerance: 0.01).Model);
    }

    static JsonArray Curve(params (int n, double mean, double low, double high)[] pts) =>
        new(pts.Select(p => (JsonNode)new JsonObject { ["train_examples"] = p.n, ["mean"] = p.mean, ["low"] = p.low, ["high"] = p.high }).ToArray());

    [Fact]
    public void The_curve_still_rises_when_the_last_doubling_gains_at_least_the_threshold()
    {
        var rising = LearningCurve.Verdict(Curve((100, 0.70, 0.65, 0.75), (200, 0.80, 0.76, 0.84), (400, 0.86, 0.83, 0.89)), 0.01, "macro_f1");
        Assert.True(rising["rising"]!.GetValue<bool>());
        Assert.Equal(0.06, Io.D(rising["gain_per_doubling"]), 6);
        Assert.StartsWith("still rising", rising["text"]!.GetValue<string>());
        // +0.01 over a quadrupling is +0.005 per doubling: flat at threshold 0.01.
        var flat = LearningCurve.Verdict(Curve((100, 0.80, 0.78, 0.82), (400, 0.81, 0.79, 0.83)), 0.01, "macro_f1");
        Assert.False(flat["rising"]!.GetValue<bool>());
        Assert.Equal(0.005, Io.D(flat["gain_per_doubling"]), 6);
        Assert.True(flat["intervals_overlap"]!.GetValue<bool>());
        Assert.Contains("within noise", flat["text"]!.GetValue<string>());
    }

    [Fact]
    public void The_svg_is_well_formed_with_one_point_and_error_bar_per_value()
    {
        var svg = SvgPlot.Chart("a <title> & more", "x", "y",
            [new SvgSeries("s1", [new SvgPoint(10, 0.5, 0.4, 0.6, "m1"), new SvgPoint(1000, 0.7, 0.6, 0.8, "m2")], Line: true), new SvgSeries("s2", [new SvgPoint(100, 0.6)])], logX: true);
        var root = XDocument.Parse(svg).Root!;
        Assert.Equal("svg", root.Name.LocalName);
        var circles = root.Descendants().Where(e => e.Name.LocalName == "circle").ToList();
        Assert.Equal(3 + 2, circles.Count);                                    // 3 points + 2 legend markers
        Assert.Single(root.Descendants(), e => e.Name.LocalName == "polyline");
        Assert.Contains(root.Descendants(), e => e.Value == "a <title> & more");   // escaped, read back as text
        Assert.Contains(root.Descendants(), e => e.Value == "m2");
    }
}
