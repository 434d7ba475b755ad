// Held-out evaluation during training: mean loss plus the task's headline metrics (what early stopping can watch).
using TaskLM.Models;
using static TorchSharp.torch;

namespace TaskLM.Training;

/// <summary>Runs a model over examples in batches (no grad) and computes loss and task metrics:
/// LM: loss, perplexity; classification: accuracy, micro_f1, macro_f1, weighted_f1; token classification:
/// token_accuracy; QA: exact_match (start and end both right).</summary>
public static class EvalLoop
{
    /// <summary>Evaluates <paramref name="model"/> on <paramref name="examples"/> in batches of <paramref name="batchSize"/>
    /// collated by <paramref name="collator"/>; <paramref name="labels"/> (class names) add f1_&lt;name&gt; per class.</summary>
    public static Dictionary<string, double> Run(ITaskModel model, IReadOnlyList<Example> examples, Collator collator, int batchSize, IReadOnlyList<string>? labels = null)
    {
        double lossSum = 0; int batches = 0;
        var gold = new List<int>(); var pred = new List<int>();
        long tokOk = 0, tokAll = 0, spanOk = 0, spanAll = 0;
        for (int i = 0; i < examples.Count; i += batchSize)
        {
            using var scope = NewDisposeScope();
            var chunk = examples.Skip(i).Take(batchSize).ToList();
            var batch = collator.Collate(chunk, maskSeed: i);   // fixed masking seed: every evaluation masks alike
            var o = model.Forward(batch);
            if (o.Loss is { } l) { lossSum += l.item<float>(); batches++; }
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
        var m = new Dictionary<string, double>();
        if (batches > 0) m["loss"] = lossSum / batches;
        if (model.Task is "causal-lm" or "masked-lm" or "generation" && batches > 0) m["perplexity"] = Math.Exp(m["loss"]);
        if (gold.Count > 0)
        {
            foreach (var (k, v) in Classification(gold, pred)) m[k] = v;
            for (int c = 0; labels != null && c < labels.Count; c++)
            {
                int tp = gold.Zip(pred).Count(x => x.First == c && x.Second == c), fp = pred.Count(x => x == c) - tp, fn = gold.Count(x => x == c) - tp;
                m[$"f1_{labels[c]}"] = tp == 0 ? 0 : 2.0 * tp / (2.0 * tp + fp + fn);
            }
        }
        if (tokAll > 0) m["token_accuracy"] = (double)tokOk / tokAll;
        if (spanAll > 0) m["exact_match"] = (double)spanOk / spanAll;
        return m;
    }

    /// <summary>Accuracy and micro/macro/weighted F1 over the classes present in gold or predictions (sklearn's defaults).</summary>
    public static Dictionary<string, double> Classification(IReadOnlyList<int> gold, IReadOnlyList<int> pred)
    {
        var classes = gold.Concat(pred).Distinct().ToList();
        double macro = 0, weighted = 0;
        foreach (int c in classes)
        {
            int tp = 0, fp = 0, fn = 0, support = 0;
            for (int i = 0; i < gold.Count; i++)
            {
                if (gold[i] == c) support++;
                if (pred[i] == c && gold[i] == c) tp++; else if (pred[i] == c) fp++; else if (gold[i] == c) fn++;
            }
            double f1 = tp == 0 ? 0 : 2.0 * tp / (2.0 * tp + fp + fn);
            macro += f1; weighted += f1 * support;
        }
        double acc = gold.Zip(pred).Count(x => x.First == x.Second) / (double)gold.Count;
        return new() { ["accuracy"] = acc, ["micro_f1"] = acc, ["macro_f1"] = macro / classes.Count, ["weighted_f1"] = weighted / gold.Count };
    }
}
