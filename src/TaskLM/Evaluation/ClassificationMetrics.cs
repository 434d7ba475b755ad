// Classification metrics with scikit-learn's definitions: accuracy, per-class and averaged P/R/F1,
// confusion matrix, ROC-AUC, average precision (PR-AUC) and top-k accuracy.
using System.Text.Json.Serialization;

namespace TaskLM.Evaluation;

/// <summary>Precision, recall, F1 and support of one class (or one average).</summary>
public sealed record PrfScore(
    [property: JsonPropertyName("precision")] double Precision,
    [property: JsonPropertyName("recall")] double Recall,
    [property: JsonPropertyName("f1")] double F1,
    [property: JsonPropertyName("support")] int Support);

/// <summary>Everything <see cref="ClassificationMetrics.Compute"/> measures on one label set.</summary>
public sealed class ClassificationReport
{
    /// <summary>Labels in scikit-learn's order (sorted, ordinal), the row/column order of <see cref="ConfusionMatrix"/>.</summary>
    public required IReadOnlyList<string> Labels { get; init; }
    public required int N { get; init; }
    public required double Accuracy { get; init; }
    public required IReadOnlyDictionary<string, PrfScore> PerClass { get; init; }
    public required PrfScore Micro { get; init; }
    public required PrfScore Macro { get; init; }
    public required PrfScore Weighted { get; init; }
    /// <summary>[true label, predicted label] counts, sklearn's <c>confusion_matrix</c>.</summary>
    public required int[,] ConfusionMatrix { get; init; }

    /// <summary>The <c>metrics</c> object of eval.json / <c>tasklm metrics classification --json</c>.</summary>
    public Dictionary<string, object> ToMetrics() => new()
    {
        ["accuracy"] = Accuracy,
        ["micro_precision"] = Micro.Precision, ["micro_recall"] = Micro.Recall, ["micro_f1"] = Micro.F1,
        ["macro_precision"] = Macro.Precision, ["macro_recall"] = Macro.Recall, ["macro_f1"] = Macro.F1,
        ["weighted_precision"] = Weighted.Precision, ["weighted_recall"] = Weighted.Recall, ["weighted_f1"] = Weighted.F1,
        ["per_class"] = PerClass.ToDictionary(kv => kv.Key, kv => (object)kv.Value),
    };
}

/// <summary>scikit-learn's classification metrics. Where sklearn would warn about an undefined ratio
/// (no predicted samples, no true samples) the value is 0, as sklearn's <c>zero_division="warn"</c> returns.</summary>
public static class ClassificationMetrics
{
    /// <summary>sklearn's <c>unique_labels</c>: the sorted union of gold and predicted labels.</summary>
    public static List<string> UniqueLabels(IEnumerable<string> gold, IEnumerable<string> pred)
    {
        var set = new SortedSet<string>(gold, StringComparer.Ordinal);
        set.UnionWith(pred);
        return set.ToList();
    }

    /// <summary>Accuracy, P/R/F1 per class and micro/macro/weighted, and the confusion matrix.</summary>
    /// <param name="gold">Gold label per example.</param>
    /// <param name="pred">Predicted label per example.</param>
    /// <param name="labels">Label order; default: <see cref="UniqueLabels"/>.</param>
    public static ClassificationReport Compute(IReadOnlyList<string> gold, IReadOnlyList<string> pred, IReadOnlyList<string>? labels = null)
    {
        if (gold.Count != pred.Count)
            throw new ArgumentException($"{gold.Count} gold labels but {pred.Count} predictions: the two lists must be the same length");
        if (gold.Count == 0) throw new ArgumentException("no examples to score");
        labels ??= UniqueLabels(gold, pred);
        var index = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < labels.Count; i++) index[labels[i]] = i;
        int k = labels.Count;
        var cm = new int[k, k];
        int correct = 0;
        for (int i = 0; i < gold.Count; i++)
        {
            if (gold[i] == pred[i]) correct++;
            // Labels outside an explicit label list are left out of the matrix, as sklearn does.
            if (index.TryGetValue(gold[i], out int g) && index.TryGetValue(pred[i], out int p)) cm[g, p]++;
        }
        var tp = new double[k]; var predSum = new double[k]; var trueSum = new double[k];
        for (int a = 0; a < k; a++)
            for (int b = 0; b < k; b++)
            {
                if (a == b) tp[a] += cm[a, b];
                trueSum[a] += cm[a, b];
                predSum[b] += cm[a, b];
            }
        var perClass = new Dictionary<string, PrfScore>(StringComparer.Ordinal);
        var scores = new PrfScore[k];
        for (int c = 0; c < k; c++)
        {
            scores[c] = Prf(tp[c], predSum[c], trueSum[c]);
            perClass[labels[c]] = scores[c];
        }
        var micro = Prf(tp.Sum(), predSum.Sum(), trueSum.Sum());
        var macro = new PrfScore(scores.Average(s => s.Precision), scores.Average(s => s.Recall), scores.Average(s => s.F1), (int)trueSum.Sum());
        double wsum = trueSum.Sum();
        var weighted = wsum == 0 ? new PrfScore(0, 0, 0, 0) : new PrfScore(
            Enumerable.Range(0, k).Sum(c => scores[c].Precision * trueSum[c]) / wsum,
            Enumerable.Range(0, k).Sum(c => scores[c].Recall * trueSum[c]) / wsum,
            Enumerable.Range(0, k).Sum(c => scores[c].F1 * trueSum[c]) / wsum,
            (int)wsum);
        return new ClassificationReport
        {
            Labels = labels.ToList(), N = gold.Count, Accuracy = (double)correct / gold.Count,
            PerClass = perClass, Micro = micro, Macro = macro, Weighted = weighted, ConfusionMatrix = cm,
        };
    }

    // sklearn's F-beta (beta = 1) from counts: P = tp / predicted, R = tp / true, F = 2PR / (P + R); 0 where undefined.
    private static PrfScore Prf(double tp, double predicted, double actual)
    {
        double p = predicted == 0 ? 0 : tp / predicted;
        double r = actual == 0 ? 0 : tp / actual;
        double f = p + r == 0 ? 0 : 2 * p * r / (p + r);
        return new PrfScore(p, r, f, (int)actual);
    }

    /// <summary>Area under the ROC curve for a binary task (sklearn's <c>roc_auc_score</c>): the
    /// trapezoid over the curve whose points are the distinct score thresholds, so tied scores count half.</summary>
    /// <param name="isPositive">Gold: true for the positive class.</param>
    /// <param name="score">Higher means more positive (a probability, logit or margin).</param>
    public static double RocAuc(IReadOnlyList<bool> isPositive, IReadOnlyList<double> score)
    {
        var (tps, fps) = CurveCounts(isPositive, score);
        double p = tps[^1], n = fps[^1];
        if (p == 0 || n == 0)
            throw new ArgumentException("ROC-AUC is undefined when only one class is present in the gold labels");
        double area = 0, prevTpr = 0, prevFpr = 0;
        for (int i = 0; i < tps.Count; i++)
        {
            double tpr = tps[i] / p, fpr = fps[i] / n;
            area += (fpr - prevFpr) * (tpr + prevTpr) / 2;
            prevTpr = tpr; prevFpr = fpr;
        }
        return area;
    }

    /// <summary>Average precision, sklearn's <c>average_precision_score</c>: Σ (R_k − R_{k−1}) · P_k over
    /// the distinct thresholds in descending score order (a step function, no interpolation).</summary>
    public static double AveragePrecision(IReadOnlyList<bool> isPositive, IReadOnlyList<double> score)
    {
        var (tps, fps) = CurveCounts(isPositive, score);
        double p = tps[^1];
        if (p == 0) throw new ArgumentException("average precision is undefined when no gold label is positive");
        double ap = 0, prevRecall = 0;
        for (int i = 0; i < tps.Count; i++)
        {
            double recall = tps[i] / p, precision = tps[i] / (tps[i] + fps[i]);
            ap += (recall - prevRecall) * precision;
            prevRecall = recall;
        }
        return ap;
    }

    // Cumulative true/false positives at each distinct threshold, scores descending (sklearn's _binary_clf_curve).
    private static (List<double> Tps, List<double> Fps) CurveCounts(IReadOnlyList<bool> isPositive, IReadOnlyList<double> score)
    {
        if (isPositive.Count != score.Count) throw new ArgumentException($"{isPositive.Count} labels but {score.Count} scores");
        if (score.Count == 0) throw new ArgumentException("no examples to score");
        var order = Enumerable.Range(0, score.Count).OrderByDescending(i => score[i]).ToArray();
        var tps = new List<double>(); var fps = new List<double>();
        double tp = 0, fp = 0;
        for (int j = 0; j < order.Length; j++)
        {
            if (isPositive[order[j]]) tp++; else fp++;
            if (j == order.Length - 1 || score[order[j + 1]] != score[order[j]]) { tps.Add(tp); fps.Add(fp); }
        }
        return (tps, fps);
    }

    /// <summary>Top-k accuracy, sklearn's <c>top_k_accuracy_score</c> for (n, C) scores: the gold class is
    /// among the k highest scores; ties rank the higher class index first, as sklearn's reversed stable sort does.</summary>
    /// <param name="gold">Gold class index per example, 0..C-1.</param>
    /// <param name="scores">Scores [n][C].</param>
    /// <param name="k">How many top-scored classes count as a hit.</param>
    public static double TopKAccuracy(IReadOnlyList<int> gold, IReadOnlyList<IReadOnlyList<double>> scores, int k)
    {
        if (gold.Count != scores.Count) throw new ArgumentException($"{gold.Count} labels but {scores.Count} score rows");
        if (gold.Count == 0) throw new ArgumentException("no examples to score");
        int hits = 0;
        for (int i = 0; i < gold.Count; i++)
        {
            var row = scores[i];
            int g = gold[i];
            if (g < 0 || g >= row.Count) throw new ArgumentException($"example {i}: gold class {g} is outside 0..{row.Count - 1}");
            // Rank of the gold class: classes scoring higher, plus tied classes with a higher index.
            int ahead = 0;
            for (int c = 0; c < row.Count; c++)
                if (row[c] > row[g] || (row[c] == row[g] && c > g)) ahead++;
            if (ahead < k) hits++;
        }
        return (double)hits / gold.Count;
    }

    /// <summary>The metrics class scores add to a classification report (<c>tasklm metrics classification --scores</c>):
    /// with two labels, ROC-AUC and average precision of <paramref name="positive"/> (default: the last label in sorted
    /// order, sklearn's pos_label=1 for 0/1 labels), from one score per row (the positive class's) or one per label; with
    /// more labels, top-k accuracy from one score per label. <paramref name="labels"/>: the report's sorted label set;
    /// <paramref name="source"/> names the scores in errors, whose row i is line i + 1.</summary>
    public static List<(string Name, double Value)> FromScores(IReadOnlyList<string> gold, IReadOnlyList<string> labels, IReadOnlyList<double[]> scores,
        string? positive, int k, string source)
    {
        if (scores.Count != gold.Count) throw new InvalidDataException($"'{source}' has {scores.Count} lines but there are {gold.Count} gold labels");
        for (int i = 0; i < scores.Count; i++)
            if (scores[i].Length != 1 && scores[i].Length != labels.Count)
                throw new InvalidDataException($"{source} line {i + 1}: {scores[i].Length} scores, expected 1 (binary) or {labels.Count} (one per label: {string.Join(", ", labels)})");
        if (labels.Count == 2 || scores.All(r => r.Length == 1))
        {
            if (labels.Count > 2) throw new InvalidDataException($"{source}: one score per line only works for two labels, there are {labels.Count}");
            var pos = positive ?? labels[^1];
            int pi = labels.ToList().IndexOf(pos);
            if (pi < 0) throw new InvalidDataException($"--positive '{pos}' is not one of the labels ({string.Join(", ", labels)})");
            var isPos = gold.Select(x => x == pos).ToList();
            var s = scores.Select(r => r.Length == 1 ? r[0] : r[pi]).ToList();
            return [("roc_auc", RocAuc(isPos, s)), ("average_precision", AveragePrecision(isPos, s))];
        }
        var index = labels.Select((l, i) => (l, i)).ToDictionary(x => x.l, x => x.i);
        return [($"top_{k}_accuracy", TopKAccuracy(gold.Select(x => index[x]).ToList(), scores, k))];
    }
}
