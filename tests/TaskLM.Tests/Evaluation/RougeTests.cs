// ROUGE against rouge-score's published tests (google-research rouge/rouge_scorer_test.py, ROUGE-1.5.5 values)
// and the Porter stemmer against NLTK 3.8's PorterStemmer (tests/fixtures/evaluation/porter.expected.json).
using System.Text.Json;
using TaskLM.Evaluation;

namespace TaskLM.Tests.Evaluation;

public class RougeTests
{
    private static readonly JsonElement Data = Fixture.Json("evaluation", "rouge_testdata.json");

    private static void Near(double expected, double actual, int places = 5) => Assert.Equal(expected, actual, places);

    [Fact]
    public void SmallExamples_MatchRougeScoreTests()
    {
        var r1 = Rouge.Score("testing one two", "testing", ["rouge1"])["rouge1"];
        Near(1, r1.Precision); Near(1 / 3.0, r1.Recall); Near(0.5, r1.FMeasure);
        var r2 = Rouge.Score("testing one two", "testing one", ["rouge2"])["rouge2"];
        Near(1, r2.Precision); Near(0.5, r2.Recall); Near(2 / 3.0, r2.FMeasure);
        var l = Rouge.Score("testing one two", "testing two", ["rougeL"])["rougeL"];
        Near(1, l.Precision); Near(2 / 3.0, l.Recall); Near(0.8, l.FMeasure);
        foreach (var t in Rouge.DefaultTypes) Assert.Equal(new RougeScore(0, 0, 0), Rouge.Score("testing one two", "", [t])[t]);
        var lsum = Rouge.Score("w1 w2 w3 w4 w5", "w1 w2 w6 w7 w8\nw1 w3 w8 w9 w5", ["rougeLsum"])["rougeLsum"];
        Near(0.8, lsum.Recall); Near(0.4, lsum.Precision); Near(0.5333, lsum.FMeasure, 3);
        Assert.Equal(0, Rouge.Score("w1 w2 w3 w4 w5", "/", ["rougeLsum"])["rougeLsum"].FMeasure);
        Assert.Throws<ArgumentException>(() => Rouge.Score("a", "a", ["rouge0"]));
        // rouge_scorer_test.testLcsTable: indices of the LCS read back from the table.
        Assert.Equal([1, 2, 3], Rouge.LcsIndices(["1", "2", "3", "4", "5"], ["2", "5", "3", "4"]));
    }

    [Theory]
    [InlineData("rouge1", false, "rouge1")]
    [InlineData("rouge1", true, "rouge1_stem")]
    [InlineData("rouge2", false, "rouge2")]
    [InlineData("rouge2", true, "rouge2")]
    [InlineData("rougeL", false, "rougeL")]
    public void AgainstRouge155_MatchesRougeScoreTests(string type, bool stem, string key)
    {
        var targets = Fixture.Strings(Data.GetProperty("targets"));
        var predictions = Fixture.Strings(Data.GetProperty("predictions"));
        for (int i = 0; i < 2; i++)
        {
            var s = Rouge.Score(targets[i], predictions[i], [type], stem)[type];
            var e = Data.GetProperty("expected").GetProperty(key)[i];
            Near(e[0].GetDouble(), s.Recall); Near(e[1].GetDouble(), s.Precision); Near(e[2].GetDouble(), s.FMeasure);
        }
    }

    [Fact]
    public void RougeLsum_MultiSentence_WithStemming_MatchesRougeScoreTests()
    {
        var s = Rouge.Score(Data.GetProperty("target_multi").GetString()!, Data.GetProperty("prediction_multi").GetString()!, ["rougeLsum"], useStemmer: true)["rougeLsum"];
        var e = Data.GetProperty("expected").GetProperty("rougeLsum_multi_stem");
        Near(e[0].GetDouble(), s.Recall); Near(e[1].GetDouble(), s.Precision); Near(e[2].GetDouble(), s.FMeasure);
    }

    [Fact]
    public void PorterStemmer_MatchesNltkOnEveryWord()
    {
        var stems = Fixture.Json("evaluation", "porter.expected.json").GetProperty("stems");
        var wrong = stems.EnumerateObject().Where(kv => PorterStemmer.Stem(kv.Name) != kv.Value.GetString())
            .Select(kv => $"{kv.Name}: {PorterStemmer.Stem(kv.Name)} (NLTK {kv.Value.GetString()})").ToList();
        Assert.True(wrong.Count == 0, string.Join("; ", wrong.Take(20)));
    }

    [Fact]
    public void Cli_Rouge_Json_HasOneEntryPerVariant()
    {
        var dir = Fixture.TempDir();
        File.WriteAllLines(Path.Combine(dir, "hyp.txt"), ["testing", "testing one"]);
        File.WriteAllLines(Path.Combine(dir, "ref.txt"), ["testing one two", "testing one two"]);
        var r = CliRunner.Run("metrics", "rouge", "--hyp", Path.Combine(dir, "hyp.txt"), "--ref", Path.Combine(dir, "ref.txt"), "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var o = JsonDocument.Parse(r.Stdout).RootElement;
        // Mean over the two segments of rouge-score's published F-measures (1/2 and 4/5 for rouge1; 0 and 2/3 for rouge2).
        Near((0.5 + 0.8) / 2, o.GetProperty("rouge1").GetDouble());
        Near((0 + 2 / 3.0) / 2, o.GetProperty("rouge2").GetDouble());
        Near((0.5 + 0.8) / 2, o.GetProperty("rougeL").GetDouble());
        Near((0.5 + 0.8) / 2, o.GetProperty("rougeLsum").GetDouble());
    }
}
