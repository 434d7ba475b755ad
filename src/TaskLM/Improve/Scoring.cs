// Scoring a trained model on a split for the improvement verbs: the model loaded through its model source, the
// split read the way training reads it, class predictions with a metric and its bootstrap interval, inference speed.
using System.Diagnostics;
using System.Globalization;
using TaskLM.Data.Tokenization;
using TaskLM.Evaluation;
using TaskLM.Models;
using TaskLM.Recipes;
using TaskLM.Tasks;
using TaskLM.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace TaskLM.Improve;

/// <summary>A model's predictions on one split (classification), with the label names of its head.</summary>
public sealed record SplitPredictions(string Split, IReadOnlyList<string> Gold, IReadOnlyList<string> Predicted, float[][] Probabilities, IReadOnlyList<string> Labels)
{
    /// <summary>The metric over a multiset of example indices (a bootstrap resample), sklearn's definitions.</summary>
    public double Metric(string name, IReadOnlyList<int>? indices = null)
    {
        var g = indices == null ? Gold : indices.Select(i => Gold[i]).ToList();
        var p = indices == null ? Predicted : indices.Select(i => Predicted[i]).ToList();
        return Scoring.Metric(name, g, p);
    }

    /// <summary>The metric with its 95% percentile bootstrap interval over the split's examples.</summary>
    public ConfidenceInterval WithInterval(string name, int samples = 1000, int seed = 0) =>
        Bootstrap.Compute(Gold.Count, idx => Metric(name, idx), samples, 0.95, seed);
}

/// <summary>Loads a trained model folder and scores it on a split the way training reads data.</summary>
public static class Scoring
{
    /// <summary>Metrics the improvement verbs can put an interval on (classification, from predictions).</summary>
    public static double Metric(string name, IReadOnlyList<string> gold, IReadOnlyList<string> pred)
    {
        var rep = ClassificationMetrics.Compute(gold, pred);
        return name switch
        {
            "accuracy" => rep.Accuracy,
            "macro_f1" => rep.Macro.F1, "micro_f1" => rep.Micro.F1, "weighted_f1" => rep.Weighted.F1,
            "macro_precision" => rep.Macro.Precision, "macro_recall" => rep.Macro.Recall,
            _ when name.StartsWith("f1_", StringComparison.Ordinal) => rep.PerClass.TryGetValue(name[3..], out var s) ? s.F1 : 0.0,
            _ => throw new ArgumentException($"metric '{name}': use accuracy, macro_f1, micro_f1, weighted_f1, macro_precision, macro_recall or f1_<label>"),
        };
    }

    /// <summary>The metric a recipe chooses its best model by (classification: macro_f1 when it names none or names loss).</summary>
    public static string TaskMetric(Recipe r, string? given)
    {
        if (given != null) return given;
        string? es = r.Training.EarlyStopping?.Metric;
        if (r.Task == "classification") return es is null or "loss" ? "macro_f1" : es;
        return es ?? "loss";
    }

    /// <summary>A loaded model folder with what it needs to read data: tokenizer, collator, label names.</summary>
    public sealed class LoadedModel(ITaskModel model, ITokenizer? tokenizer, Collator collator, IReadOnlyList<string>? labels, Recipe recipe) : IDisposable
    {
        public ITaskModel Model { get; } = model;
        public ITokenizer? Tokenizer { get; } = tokenizer;
        public Collator Collator { get; } = collator;
        public IReadOnlyList<string>? Labels { get; } = labels;
        public Recipe Recipe { get; } = recipe;
        public void Dispose() => Model.Module.Dispose();
    }

    /// <summary>Loads <paramref name="modelDir"/> (a run's best/, or anything <see cref="ModelSource.Resolve"/> accepts) for
    /// <paramref name="recipe"/>'s task, as inference does: weights that do not fill the model are refused.</summary>
    public static LoadedModel Load(string modelDir, Recipe recipe, Device device)
    {
        var source = ModelSource.Resolve(modelDir);
        var model = source.Load(TaskNames.ModelTask(recipe.Task), forInference: true);
        model.Module.to(device);
        model.Module.eval();
        IReadOnlyList<string>? labels = recipe.Task is TaskNames.Classification or TaskNames.TokenClassification ? source.Labels : null;
        string? tokSource = recipe.Tokenizer ?? source.Tokenizer ?? ModelSource.Resolve(recipe.Model.Init).Tokenizer;
        ITokenizer? tok = tokSource != null ? TokenizerLoader.Load(tokSource) : null;
        return new LoadedModel(model, tok, TrainingRun.MakeCollator(recipe, model, tok, device), labels, recipe);
    }

    /// <summary>Tokenized examples of <paramref name="path"/> as the model reads them.</summary>
    public static List<Example> Examples(LoadedModel m, string path) => TaskData.Load(m.Recipe, path, m.Tokenizer, m.Labels).Examples;

    /// <summary>Class probabilities and argmax predictions of a classifier on <paramref name="path"/>.</summary>
    public static SplitPredictions Predict(LoadedModel m, string path, string split, int batchSize = 32)
    {
        if (m.Labels == null) throw new InvalidOperationException($"{path}: scoring predictions needs a classification model with id2label");
        var ex = Examples(m, path);
        var proba = BaselineStage.Probabilities(m.Model, ex, m.Collator, batchSize);
        string Name(int c) => c >= 0 && c < m.Labels.Count ? m.Labels[c] : c.ToString(CultureInfo.InvariantCulture);
        var gold = ex.Select(e => Name(e.Label)).ToList();
        var pred = proba.Select(p => Name(Array.IndexOf(p, p.Max()))).ToList();
        return new SplitPredictions(split, gold, pred, proba, m.Labels);
    }

    /// <summary>Inference speed on real examples: median latency of one example (batch 1) and examples per
    /// second at batch 32, after warm-up forwards. Returns (ms, examples/s at 1, examples/s at 32).</summary>
    public static (double LatencyMs, double Throughput1, double Throughput32) Speed(LoadedModel m, IReadOnlyList<Example> examples, int single = 40, int batched = 256)
    {
        if (examples.Count == 0) throw new InvalidDataException("no examples to time inference on");
        using var _ = no_grad();
        m.Model.Module.eval();
        void Forward(IReadOnlyList<Example> chunk)
        {
            using var scope = NewDisposeScope();
            var o = m.Model.Forward(m.Collator.Collate(chunk.ToList()));
            // Reading one value waits for the device (CUDA runs asynchronously).
            (o.Logits ?? o.StartLogits)?.sum().item<float>();
        }
        var ones = Enumerable.Range(0, Math.Max(single, 1)).Select(i => examples[i % examples.Count]).ToList();
        for (int i = 0; i < 3; i++) Forward([ones[i % ones.Count]]);
        var times = new List<double>();
        var sw = new Stopwatch();
        foreach (var e in ones) { sw.Restart(); Forward([e]); times.Add(sw.Elapsed.TotalMilliseconds); }
        times.Sort();
        double median = times.Count % 2 == 1 ? times[times.Count / 2] : (times[times.Count / 2 - 1] + times[times.Count / 2]) / 2;
        var many = Enumerable.Range(0, Math.Max(batched, 32)).Select(i => examples[i % examples.Count]).ToList();
        Forward(many.Take(32).ToList());
        sw.Restart();
        for (int i = 0; i < many.Count; i += 32) Forward(many.Skip(i).Take(32).ToList());
        double secs = sw.Elapsed.TotalSeconds;
        return (median, 1000.0 / times.Average(), many.Count / Math.Max(secs, 1e-9));
    }
}
