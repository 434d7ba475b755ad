// The results stage's baseline step: fit the TF-IDF baseline on a run's training texts and compare it with the model.
using TaskLM.Data.Tokenization;
using TaskLM.Models;
using TaskLM.Recipes;
using TaskLM.Tasks;
using TaskLM.Training;
using static TorchSharp.torch;

namespace TaskLM.Evaluation;

/// <summary>Runs the baseline beside a classification run or evaluation: reads the raw texts of the recipe's training
/// file and of the scored file (same columns, same rows as the model's examples), fits the baseline on the former,
/// scores the latter, and compares it with the model's probabilities (<see cref="BaselineComparison"/>).</summary>
public static class BaselineStage
{
    /// <summary>The model's class probabilities (softmax over the head's logits), one row per example: (N, C).</summary>
    public static float[][] Probabilities(ITaskModel model, IReadOnlyList<Example> examples, Collator collator, int batchSize)
    {
        var rows = new List<float[]>(examples.Count);
        model.Module.eval();
        using var _ = no_grad();
        for (int i = 0; i < examples.Count; i += batchSize)
        {
            using var scope = NewDisposeScope();
            var chunk = examples.Skip(i).Take(batchSize).ToList();
            var p = nn.functional.softmax(model.Forward(collator.Collate(chunk)).Logits!.to(float32), -1).cpu();   // (B, C)
            float[] flat = p.data<float>().ToArray();
            int c = (int)p.shape[1];
            for (int b = 0; b < chunk.Count; b++) rows.Add(flat[(b * c)..((b + 1) * c)]);
        }
        return rows.ToArray();
    }

    /// <summary>Model vs baseline on <paramref name="scoredPath"/> (whose examples the model sees as
    /// <paramref name="examples"/>). Returns null, after saying why, when the recipe turns the baseline off, the task
    /// is not sequence classification, or the data has no raw text (pre-tokenized files).
    /// <paramref name="runDir"/>: the run folder. With <paramref name="save"/> (training), the fitted baseline is saved
    /// there (baseline/) with the model weight the ensemble chose on validation, which is what the run ships; without
    /// it (evaluate), a run that ships the baseline or a mix is scored as it ships (the summary's <c>Shipped</c>).</summary>
    public static BaselineSummary? Run(Recipe r, string scoredPath, IReadOnlyList<Example> examples, ITaskModel model, Collator collator,
        IReadOnlyList<string> labels, ITokenizer? tokenizer, Action<string> say, string? runDir = null, bool save = false)
    {
        if (r.Task != "classification" || !r.Evaluation.Baseline || r.Data.Train == null) return null;
        var d = r.Data;
        LabelledTexts train, scored;
        try
        {
            train = Take(LabelledTexts.Read(d.Train, d.TextColumn, d.LabelColumn, d.TextPairColumn), d.MaxTrainExamples);
            scored = Take(LabelledTexts.Read(scoredPath, d.TextColumn, d.LabelColumn, d.TextPairColumn), examples.Count);
        }
        catch (InvalidDataException e) when (e.Message.Contains("no column", StringComparison.Ordinal))
        {
            say($"baseline: skipped ({e.Message.Split('\n')[0]}; the baseline needs raw text)");
            return null;
        }
        if (scored.Texts.Count != examples.Count)
        {
            say($"baseline: skipped ({scoredPath} has {scored.Texts.Count} rows, the model scored {examples.Count})");
            return null;
        }
        // C is chosen on the run's validation file when it has raw text, else on a held-out 10% of the training texts.
        LabelledTexts? validation = null;
        if (d.Validation != null)
            try { validation = LabelledTexts.Read(d.Validation, d.TextColumn, d.LabelColumn, d.TextPairColumn); }
            catch (InvalidDataException) { }
        var bs = Baseline.FitAndScore(train, scored, labels, new BaselineOptions { Validation = validation, Seed = r.Training.Seed }, split: "test");
        var modelProba = Probabilities(model, examples, collator, r.Training.EvalBatchSize);
        (IReadOnlyList<string>, float[][], float[][])? val = null;
        if (r.Evaluation.Ensemble)
        {
            if (d.Validation == null || tokenizer == null) say("baseline: no ensemble (it needs a validation file with raw text to choose its weight)");
            else
            {
                var vex = TaskData.Load(r, d.Validation, tokenizer, labels, d.MaxEvalExamples).Examples;
                var vtexts = Take(LabelledTexts.Read(d.Validation, d.TextColumn, d.LabelColumn, d.TextPairColumn), vex.Count);
                val = (vtexts.Labels, Probabilities(model, vex, collator, r.Training.EvalBatchSize), bs.Model.PredictProba(vtexts.Texts));
            }
        }
        string metric = r.Training.EarlyStopping?.Metric ?? "macro_f1";
        var summary = BaselineComparison.Compare(scored.Labels, labels, modelProba, bs, r.Evaluation.BootstrapSamples, r.Training.Seed, val, metric);
        say($"baseline ({train.Texts.Count} training texts, {bs.Model.Featurizer.Description}, C = {bs.Model.C} chosen on {bs.Model.CChosenOn}, fitted in {bs.Model.FitSeconds:F1} s): "
            + string.Join("  ", BaselineComparison.DifferenceMetrics.Select(m => $"{m}={EvalResult.Format(summary.Metrics[m])}")));
        // The shipped product scored on the split: its predictions, metrics, confusion matrix and worst examples.
        string split = save ? "test" : Path.GetFileNameWithoutExtension(scoredPath);
        EvalResult ScoreMix(float[][] mixed) => Baseline.Score(scored.Labels, BaselineComparison.Argmax(mixed, labels), mixed, labels, split, scored.Texts);
        if (save && runDir != null)
        {
            // The run ships what validation chose (BaselineComparison.Compare's grid: w = 1 is the model, w = 0 the baseline).
            double w = summary.Ensemble?.Weight ?? 1;
            var choice = new System.Text.Json.Nodes.JsonObject
            {
                ["chosen_by"] = summary.Ensemble?.ChosenBy ?? "no ensemble (evaluation.ensemble is off, or no validation file): the model ships",
                ["validation_score"] = summary.Ensemble?.ValidationScore,
            };
            ShippedBaseline.Save(bs.Model, Path.Combine(runDir, ShippedBaseline.FolderName), w, choice);
            if (w < 1) summary.Ship(ShippedBaseline.ShipsFor(w), ScoreMix(BaselineComparison.Mix(modelProba, bs.Probabilities, w)));
            say($"ships: {ShippedBaseline.ShipsFor(w)}" + (w < 1 ? $" (model weight {w:0.00}, chosen on validation; saved in {Path.Combine(runDir, ShippedBaseline.FolderName)})" : $" (the baseline is saved in {Path.Combine(runDir, ShippedBaseline.FolderName)} beside best/)"));
        }
        else if (ShippedBaseline.ForRun(runDir) is { } shipped)
        {
            var result = ScoreMix(shipped.Mix(modelProba, scored.Texts));
            summary.Ensemble ??= new EnsembleSummary(shipped.ModelWeight, "saved with the run: " + (shipped.Config["chosen_by"]?.ToString() ?? ""),
                EvalResult.AsNumber(shipped.Config["validation_score"]) ?? double.NaN, result.Metrics);
            summary.Ship(shipped.Ships, result);
            say($"ships: {shipped.Ships} (model weight {shipped.ModelWeight:0.00}, from {Path.Combine(runDir!, ShippedBaseline.FolderName)})");
        }
        return summary;
    }

    static LabelledTexts Take(LabelledTexts t, int max) =>
        max > 0 && t.Texts.Count > max ? t with { Texts = t.Texts.Take(max).ToList(), Labels = t.Labels.Take(max).ToList() } : t;
}
