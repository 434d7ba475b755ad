// The TF-IDF + logistic-regression baseline against scikit-learn on a committed 15-genre Brown sample: the same
// features, the same predictions, and C chosen on validation as sklearn would choose it.
using System.Text.Json.Nodes;
using TaskLM.Evaluation;

namespace TaskLM.Tests.Evaluation;

public class BaselineTests(Xunit.Abstractions.ITestOutputHelper output)
{
    static string Data(string name) => Fixture.Path("evaluation", "baseline", name);

    static JsonNode Expected() => JsonNode.Parse(File.ReadAllText(Data("sklearn_baseline.expected.json")))!;

    [Fact]
    public void MatchesSklearnOnBrownGenres()
    {
        var train = LabelledTexts.Read(Data("train.jsonl"));
        var test = LabelledTexts.Read(Data("test.jsonl"));
        var exp = Expected();

        // sklearn's TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True) + LogisticRegression(C=1): the same
        // vocabulary to the feature, so nearly every prediction agrees.
        var s = Baseline.FitAndScore(train, test, options: new BaselineOptions { C = 1 });
        var sub = exp["sklearn_sublinear"]!;
        Assert.Equal(sub["features"]!.GetValue<int>(), s.Model.Features);
        var subPred = sub["predictions"]!.AsArray().Select(x => x!.GetValue<string>()).ToList();
        int agree = s.Predictions.Zip(subPred).Count(p => p.First == p.Second);
        output.WriteLine($"TaskLM C=1: macro_f1 {s.Result.Metrics["macro_f1"]:F4} accuracy {s.Result.Metrics["accuracy"]:F4}, {s.Model.Features} features, fitted in {s.Model.FitSeconds:F1} s; "
            + $"sklearn {sub["macro_f1"]:F4}/{sub["accuracy"]:F4} ({agree}/{test.Texts.Count} predictions agree)");
        Assert.True(agree >= 0.97 * test.Texts.Count, $"{agree}/{test.Texts.Count} predictions agree with sklearn's");
        Assert.Equal(sub["macro_f1"]!.GetValue<double>(), s.Result.Metrics["macro_f1"], 0.01);
        Assert.Equal(sub["accuracy"]!.GetValue<double>(), s.Result.Metrics["accuracy"], 0.01);

        // Far above chance (1/15) and probabilities that are probabilities.
        Assert.True(s.Result.Metrics["macro_f1"] > 0.25);
        Assert.All(s.Probabilities, p => Assert.Equal(1.0, p.Sum(x => (double)x), 3));
        Assert.Equal(15, s.Model.Labels.Count);
    }

    [Fact]
    public void ChoosesCOnValidationAsSklearnDoes()
    {
        // Every fifth training row is validation (the fixture script's split); C from {0.1, 1, 10, 100} by macro-F1.
        var all = LabelledTexts.Read(Data("train.jsonl"));
        var test = LabelledTexts.Read(Data("test.jsonl"));
        LabelledTexts Rows(Func<int, bool> keep) => new(
            all.Texts.Where((_, i) => keep(i)).ToList(), all.Labels.Where((_, i) => keep(i)).ToList(), all.Source);
        var fit = Rows(i => i % 5 != 0); var val = Rows(i => i % 5 == 0);
        // Words only, as the fixture's sklearn pipeline (the choice of character n-grams is the next test's).
        var s = Baseline.FitAndScore(fit, test, options: new BaselineOptions { Validation = val, CharNgrams = false });
        var exp = Expected()["sklearn_c_by_validation"]!;
        output.WriteLine($"TaskLM chose C={s.Model.C} ({string.Join(", ", s.Model.CScores!.Select(kv => $"{kv.Key}: {kv.Value:F4}"))}); sklearn chose {exp["c"]}; "
            + $"test macro_f1 {s.Result.Metrics["macro_f1"]:F4} vs sklearn {exp["macro_f1"]:F4}");
        Assert.Equal(exp["c"]!.GetValue<double>(), s.Model.C);
        Assert.Equal("validation", s.Model.CChosenOn);
        foreach (var (c, f1) in s.Model.CScores!)
            Assert.Equal(exp["validation_macro_f1"]![c.ToString("0.0###", System.Globalization.CultureInfo.InvariantCulture)]!.GetValue<double>(), f1, 0.03);
        Assert.Equal(exp["macro_f1"]!.GetValue<double>(), s.Result.Metrics["macro_f1"], 0.015);
    }

    [Fact]
    public void WordsAndCharacterNgramsMatchSklearnsFeatureUnion()
    {
        // FeatureUnion(word 1-2 grams, char_wb 2-5 grams with min_df 2), both sublinear tf-idf, + LogisticRegression(C=1).
        var train = LabelledTexts.Read(Data("train.jsonl"));
        var test = LabelledTexts.Read(Data("test.jsonl"));
        var exp = Expected()["sklearn_word_char"]!;
        var s = Baseline.FitAndScore(train, test, options: new BaselineOptions { C = 1, CharNgrams = true });
        Assert.Equal(exp["features"]!.GetValue<int>(), s.Model.Features);
        Assert.Equal(exp["char_features"]!.GetValue<int>(), s.Model.Featurizer.CharTerms().Count);
        // The first character terms in sklearn's (sorted) numbering, with their idf.
        int words = s.Model.Featurizer.Terms().Count;
        foreach (var (pair, i) in exp["char_idf_first"]!.AsArray().Select((p, i) => (p!.AsArray(), i)))
        {
            Assert.Equal(pair[0]!.GetValue<string>(), s.Model.Featurizer.CharTerms()[i]);
            Assert.Equal(pair[1]!.GetValue<double>(), s.Model.Featurizer.Idf[words + i], 4);
        }
        var pred = exp["predictions"]!.AsArray().Select(x => x!.GetValue<string>()).ToList();
        int agree = s.Predictions.Zip(pred).Count(p => p.First == p.Second);
        output.WriteLine($"TaskLM words + chars, C=1: macro_f1 {s.Result.Metrics["macro_f1"]:F4}, {s.Model.Features} features, fitted in {s.Model.FitSeconds:F1} s; "
            + $"sklearn {exp["macro_f1"]:F4} ({agree}/{test.Texts.Count} predictions agree)");
        Assert.True(agree >= 0.97 * test.Texts.Count, $"{agree}/{test.Texts.Count} predictions agree with sklearn's");
        Assert.Equal(exp["macro_f1"]!.GetValue<double>(), s.Result.Metrics["macro_f1"], 0.01);
    }

    [Fact]
    public void ValidationChoosesBetweenWordsAndWordsPlusCharacters()
    {
        var all = LabelledTexts.Read(Data("train.jsonl"));
        var test = LabelledTexts.Read(Data("test.jsonl"));
        LabelledTexts Rows(Func<int, bool> keep) => new(
            all.Texts.Where((_, i) => keep(i)).ToList(), all.Labels.Where((_, i) => keep(i)).ToList(), all.Source);
        var s = Baseline.FitAndScore(Rows(i => i % 5 != 0), test, options: new BaselineOptions { Validation = Rows(i => i % 5 == 0) });
        var scores = s.Model.FeatureScores!;
        output.WriteLine(string.Join(", ", scores.Select(kv => $"{kv.Key}: {kv.Value:F4}")) + $"; chose {s.Model.Featurizer.Description}, C = {s.Model.C}");
        Assert.Equal(["word 1-2 grams", "word 1-2 + char_wb 2-5 grams"], scores.Keys);
        // The better validation macro-F1 wins; a tie keeps words only.
        string expected = scores["word 1-2 + char_wb 2-5 grams"] > scores["word 1-2 grams"] ? "word 1-2 + char_wb 2-5 grams" : "word 1-2 grams";
        Assert.Equal(expected, s.Model.Featurizer.Description);
        Assert.Equal(scores[expected], s.Model.CScores![s.Model.C], 10);
    }

    [Fact]
    public void ProbabilityColumnsFollowTheGivenLabelOrder()
    {
        string[] texts = ["cheap pills buy now", "meeting notes attached", "buy cheap watches now", "notes from the meeting", "win cash now buy", "agenda for the meeting"];
        string[] labels = ["spam", "ham", "spam", "ham", "spam", "ham"];
        var m = TextBaseline.Fit(texts, labels, ["spam", "ham"]);
        Assert.Equal(["spam", "ham"], m.Labels);
        var p = m.PredictProba(["buy cheap now", "the meeting agenda"]);
        Assert.True(p[0][0] > 0.5 && p[1][1] > 0.5, $"spam-like {p[0][0]:F3}, ham-like {p[1][1]:F3}");
        Assert.Equal(["spam", "ham"], m.Predict(["buy cheap now", "the meeting agenda"]));
    }

    [Fact]
    public void BaselineVerbScoresCsvAndNamesAMissingColumn()
    {
        string dir = Fixture.TempDir();
        try
        {
            // The committed sample as CSV with other column names: the verb reads it through the import readers.
            string Csv(string name)
            {
                var lines = new List<string> { "genre,passage" };
                foreach (var l in File.ReadLines(Data(name + ".jsonl")))
                {
                    var o = JsonNode.Parse(l)!;
                    lines.Add($"{o["label"]},\"{o["text"]!.GetValue<string>().Replace("\"", "\"\"")}\"");
                }
                string p = Path.Combine(dir, name + ".csv");
                File.WriteAllLines(p, lines);
                return p;
            }
            string tr = Csv("train"), te = Csv("test");
            var r = CliRunner.Run("baseline", tr, "--test", te, "--validation", te, "--text-column", "passage", "--label-column", "genre", "--json");
            Assert.True(r.ExitCode == 0, r.Stderr + r.Stdout);
            var j = JsonNode.Parse(r.Stdout)!;
            Assert.Equal(405, j["train"]!.GetValue<int>());
            double f1 = j["test"]!["metrics"]!["macro_f1"]!.GetValue<double>();
            // The verb gives the library's result: C chosen on --validation, the same test score.
            var lib = Baseline.FitAndScore(LabelledTexts.Read(Data("train.jsonl")), LabelledTexts.Read(Data("test.jsonl")),
                options: new BaselineOptions { Validation = LabelledTexts.Read(Data("test.jsonl")) });
            Assert.Equal(lib.Model.C, j["c"]!.GetValue<double>());
            Assert.Equal("validation", j["c_chosen_on"]!.GetValue<string>());
            Assert.Equal(lib.Result.Metrics["macro_f1"], f1, 6);
            Assert.Equal(f1, j["validation"]!["metrics"]!["macro_f1"]!.GetValue<double>(), 9);

            var bad = CliRunner.Run("baseline", tr, "--test", te);
            Assert.Equal(1, bad.ExitCode);
            Assert.Contains("no column 'text'", bad.Stderr);
            Assert.Contains("train.csv", bad.Stderr);
        }
        finally { Directory.Delete(dir, true); }
    }
}
