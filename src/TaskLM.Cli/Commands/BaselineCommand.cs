// `tasklm baseline <train> --test <file>`: fits the TF-IDF + logistic-regression baseline alone and scores it.
using System.CommandLine;
using System.Text.Json.Nodes;
using Spectre.Console;
using TaskLM.Evaluation;

namespace TaskLM.Cli.Commands;

public static class BaselineCommand
{
    public static Command Create()
    {
        var train = new Argument<string>("train") { Description = "Training file (CSV, TSV, JSONL, Parquet, or their .gz forms)" };
        var validation = new Option<string?>("--validation") { Description = "Validation file, scored too" };
        var test = new Option<string>("--test") { Description = "Test file to score", Required = true };
        var textCol = new Option<string>("--text-column") { Description = "Column holding the text", DefaultValueFactory = _ => "text" };
        var labelCol = new Option<string>("--label-column") { Description = "Column holding the class", DefaultValueFactory = _ => "label" };
        var pairCol = new Option<string?>("--text-pair-column") { Description = "Second text of a pair, appended to the text" };
        var json = Global.JsonOption();
        var cmd = new Command("baseline", "Fit the TF-IDF (word 1-2 grams, + char_wb 2-5 grams when validation prefers them) + logistic-regression baseline on a training file and score it (seconds, no GPU)");
        cmd.Arguments.Add(train);
        foreach (var o in new Option[] { validation, test, textCol, labelCol, pairCol, json }) cmd.Options.Add(o);
        cmd.SetAction(p =>
        {
            string tc = p.GetValue(textCol)!, lc = p.GetValue(labelCol)!;
            string? pc = p.GetValue(pairCol);
            var tr = LabelledTexts.Read(p.GetValue(train)!, tc, lc, pc);
            var te = LabelledTexts.Read(p.GetValue(test)!, tc, lc, pc);
            Baseline.CheckLabels(tr, p.GetValue(train)!, te, p.GetValue(test)!);
            // C is chosen on --validation when given, else on a held-out 10% of the training file.
            LabelledTexts? va = p.GetValue(validation) is string vp0 ? LabelledTexts.Read(vp0, tc, lc, pc) : null;
            if (va != null) Baseline.CheckLabels(tr, p.GetValue(train)!, va, va.Source);
            var scored = Baseline.FitAndScore(tr, te, options: new BaselineOptions { Validation = va });
            EvalResult? val = null;
            if (va != null)
            {
                var proba = scored.Model.PredictProba(va.Texts);
                val = Baseline.Score(va, proba.Select(x => scored.Model.Labels[TextBaseline.ArgMax(x)]).ToList(), proba, scored.Model.Labels, "validation");
            }
            if (p.GetValue(json))
            {
                var o = new JsonObject
                {
                    ["baseline"] = BaselineComparison.MethodName, ["c"] = scored.Model.C, ["c_chosen_on"] = scored.Model.CChosenOn,
                    ["features"] = scored.Model.Features, ["feature_set"] = scored.Model.Featurizer.Description,
                    ["feature_sets_validation_macro_f1"] = scored.Model.FeatureScores == null ? null
                        : new JsonObject(scored.Model.FeatureScores.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)kv.Value))),
                    ["train"] = tr.Texts.Count, ["labels"] = new JsonArray(scored.Model.Labels.Select(l => (JsonNode?)l).ToArray()),
                    ["fit_seconds"] = Math.Round(scored.Model.FitSeconds, 3),
                    ["test"] = scored.Result.ToJson(),
                };
                if (val != null) o["validation"] = val.ToJson();
                Console.WriteLine(o.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }));
                return 0;
            }
            AnsiConsole.MarkupLine($"TF-IDF ({scored.Model.Featurizer.Description}, sublinear tf) + logistic regression: fitted on {tr.Texts.Count} examples, {scored.Model.Labels.Count} classes, "
                + $"{scored.Model.Features:N0} features, C = {scored.Model.C} (chosen on {Markup.Escape(scored.Model.CChosenOn)}), in {scored.Model.FitSeconds:F1} s");
            var t = new Table().AddColumn("metric");
            if (val != null) t.AddColumn($"validation (n={val.N})");
            t.AddColumn($"test (n={scored.Result.N})");
            foreach (var (k, v) in scored.Result.Metrics)
            {
                var row = new List<string> { k };
                if (val != null) row.Add(val.Metrics.TryGetValue(k, out var vv) ? EvalResult.Format(vv) : "–");
                row.Add(EvalResult.Format(v));
                t.AddRow(row.Select(Markup.Escape).ToArray());
            }
            AnsiConsole.Write(t);
            return 0;
        });
        return cmd;
    }
}
