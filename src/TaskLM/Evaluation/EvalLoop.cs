// Held-out evaluation during training: mean loss plus the task's headline metrics (what early stopping can watch).
using TaskLM.Distributed;
using TaskLM.Models;
using TaskLM.Recipes;
using TaskLM.Tasks;
using static TorchSharp.torch;

namespace TaskLM.Evaluation;

/// <summary>Runs a model over examples in batches (no grad) and computes loss and task metrics:
/// LM: loss, perplexity; classification: accuracy, micro_f1, macro_f1, weighted_f1; token classification:
/// token_accuracy; QA: exact_match (start and end both right).</summary>
public static class EvalLoop
{
    /// <summary>The metric names <see cref="Run"/> produces for a recipe task and label set (what early stopping may
    /// watch): known before the first step. Per-class f1_&lt;label&gt; appear for the labels the data or predictions hold.</summary>
    public static List<string> MetricNames(string task, IReadOnlyList<string>? labels)
    {
        var names = new List<string> { "loss" };
        switch (TaskNames.ModelTask(task))
        {
            case TaskNames.CausalLm or TaskNames.MaskedLm: names.Add("perplexity"); break;
            case TaskNames.Classification:
                names.AddRange(["accuracy", "micro_f1", "macro_f1", "weighted_f1", "macro_precision", "macro_recall"]);
                foreach (var l in labels ?? []) names.Add($"f1_{l}");
                break;
            case TaskNames.TokenClassification: names.Add("token_accuracy"); break;
            case TaskNames.QuestionAnswering: names.Add("exact_match"); break;
        }
        return names;
    }

    /// <summary>Evaluates <paramref name="model"/> on <paramref name="examples"/> in batches of <paramref name="batchSize"/>
    /// collated by <paramref name="collator"/>; <paramref name="labels"/> (class names) add f1_&lt;name&gt; per class.
    /// With <paramref name="parallel"/>, each rank scores every WorldSize-th batch and the sums are reduced, so
    /// every rank gets the single-process metrics.</summary>
    public static Dictionary<string, double> Run(ITaskModel model, IReadOnlyList<Example> examples, Collator collator, int batchSize, IReadOnlyList<string>? labels = null,
        DataParallel? parallel = null)
    {
        double lossSum = 0; int batches = 0;   // batches: the examples whose batch losses were summed
        var gold = new List<int>(); var pred = new List<int>();
        long tokOk = 0, tokAll = 0, spanOk = 0, spanAll = 0;
        for (int i = 0, bi = 0; i < examples.Count; i += batchSize, bi++)
        {
            if (parallel != null && bi % parallel.WorldSize != parallel.Rank) continue;   // another rank's batch
            using var scope = NewDisposeScope();
            var chunk = examples.Skip(i).Take(batchSize).ToList();
            var batch = collator.Collate(chunk, maskSeed: i);   // fixed masking seed: every evaluation masks alike
            var o = model.Forward(batch);
            // Each batch's mean loss weighted by its examples, as HF's evaluation loop repeats it batch_size times: a short
            // last batch counted as much as a full one (train's test loss 0.8048 vs evaluate's per-example 0.8104).
            if (o.Loss is { } l) { lossSum += l.item<float>() * chunk.Count; batches += chunk.Count; }
            switch (model.Task)
            {
                case "classification":
                    gold.AddRange(chunk.Select(e => e.Label));
                    pred.AddRange(o.Logits!.argmax(-1).data<long>().Select(x => (int)x));
                    break;
                case "token-classification":
                {
                    var p = o.Logits!.argmax(-1); var y = batch.Labels!;
                    var valid = y.ne(-100);
                    tokOk += p.eq(y).logical_and(valid).sum().item<long>();
                    tokAll += valid.sum().item<long>();
                    break;
                }
                case "question-answering":
                {
                    var ok = o.StartLogits!.argmax(-1).eq(batch.StartPositions!).logical_and(o.EndLogits!.argmax(-1).eq(batch.EndPositions!));
                    spanOk += ok.sum().item<long>(); spanAll += chunk.Count;
                    break;
                }
            }
        }
        if (parallel != null)
        {
            // Sums across ranks; class predictions travel as a (K, K) confusion count (the metrics ignore order).
            int k = labels?.Count ?? 0;
            if (model.Task == "classification") k = Math.Max(k, (int)parallel.Sum([gold.Concat(pred).DefaultIfEmpty(-1).Max() + 1.0])[0]);
            var sums = new double[6 + k * k];
            (sums[0], sums[1], sums[2], sums[3], sums[4], sums[5]) = (lossSum, batches, tokOk, tokAll, spanOk, spanAll);
            for (int j = 0; j < gold.Count; j++) if (gold[j] >= 0 && pred[j] >= 0) sums[6 + gold[j] * k + pred[j]]++;
            parallel.Sum(sums);
            (lossSum, batches, tokOk, tokAll, spanOk, spanAll) = (sums[0], (int)sums[1], (long)sums[2], (long)sums[3], (long)sums[4], (long)sums[5]);
            gold.Clear(); pred.Clear();
            for (int g = 0; g < k; g++)
                for (int q = 0; q < k; q++)
                    for (long c = (long)sums[6 + g * k + q]; c > 0; c--) { gold.Add(g); pred.Add(q); }
        }
        var m = new Dictionary<string, double>();
        if (batches > 0) m["loss"] = lossSum / batches;
        if (TaskNames.IsLanguageModel(model.Task) && batches > 0) m["perplexity"] = Math.Exp(m["loss"]);
        if (gold.Count > 0) AddClassificationMetrics(m, gold, pred, labels);
        if (tokAll > 0) m["token_accuracy"] = (double)tokOk / tokAll;
        if (spanAll > 0) m["exact_match"] = (double)spanOk / spanAll;
        return m;
    }

    /// <summary>The metrics of a classification result (<see cref="ModelEvaluation.Classify"/>) under the names and in the
    /// order <see cref="Run"/> gives them: loss, accuracy, micro/macro/weighted F1, macro precision/recall, f1_&lt;label&gt;.</summary>
    public static Dictionary<string, double> ClassificationMetricsOf(EvalResult e)
    {
        var m = new Dictionary<string, double>();
        if (e.Metrics.TryGetValue("loss", out double loss)) m["loss"] = loss;
        foreach (var k in new[] { "accuracy", "micro_f1", "macro_f1", "weighted_f1", "macro_precision", "macro_recall" }) m[k] = e.Metrics[k];
        foreach (var (name, score) in e.PerClass ?? []) m[$"f1_{name}"] = score.F1;
        return m;
    }

    /// <summary>Classification metrics of class ids (sklearn's definitions, Evaluation/ClassificationMetrics, over the
    /// classes present in gold or predictions): accuracy, micro/macro/weighted F1, macro precision/recall, f1_&lt;label&gt;.</summary>
    public static void AddClassificationMetrics(Dictionary<string, double> m, IReadOnlyList<int> gold, IReadOnlyList<int> pred, IReadOnlyList<string>? labels)
    {
        string Name(int c) => labels != null && c >= 0 && c < labels.Count ? labels[c] : c.ToString(System.Globalization.CultureInfo.InvariantCulture);
        var rep = ClassificationMetrics.Compute(gold.Select(Name).ToList(), pred.Select(Name).ToList());
        m["accuracy"] = rep.Accuracy;
        m["micro_f1"] = rep.Micro.F1; m["macro_f1"] = rep.Macro.F1; m["weighted_f1"] = rep.Weighted.F1;
        m["macro_precision"] = rep.Macro.Precision; m["macro_recall"] = rep.Macro.Recall;
        foreach (var (name, score) in rep.PerClass) m[$"f1_{name}"] = score.F1;
    }
}
