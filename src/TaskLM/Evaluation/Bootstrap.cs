// Seeded bootstrap confidence intervals for a headline metric.
namespace TaskLM.Evaluation;

/// <summary>A metric with its percentile bootstrap confidence interval.</summary>
public sealed record ConfidenceInterval(double Estimate, double Low, double High, double Confidence, int Samples, int Seed);

/// <summary>Percentile bootstrap over examples: resample n example indices with replacement, recompute the
/// metric, and take the (1 ± confidence)/2 percentiles (numpy's linear interpolation). Same seed, same interval.</summary>
public static class Bootstrap
{
    /// <param name="n">Number of examples.</param>
    /// <param name="samples">Number of resamples.</param>
    /// <param name="confidence">Coverage of the interval, e.g. 0.95.</param>
    /// <param name="seed">Seed of the resampling (System.Random).</param>
    /// <param name="metric">Computes the metric over a multiset of example indices (e.g. accuracy of those rows).</param>
    public static ConfidenceInterval Compute(int n, Func<IReadOnlyList<int>, double> metric, int samples = 1000, double confidence = 0.95, int seed = 0)
    {
        if (n <= 0) throw new ArgumentException("bootstrap needs at least one example");
        if (samples < 2) throw new ArgumentException("bootstrap needs at least 2 resamples");
        if (confidence is <= 0 or >= 1) throw new ArgumentException($"confidence must be in (0, 1), got {confidence}");
        var all = Enumerable.Range(0, n).ToArray();
        double estimate = metric(all);
        var rng = new Random(seed);
        var values = new double[samples];
        var idx = new int[n];
        for (int s = 0; s < samples; s++)
        {
            for (int i = 0; i < n; i++) idx[i] = rng.Next(n);
            values[s] = metric(idx);
        }
        Array.Sort(values);
        double alpha = (1 - confidence) / 2;
        return new ConfidenceInterval(estimate, Percentile(values, alpha), Percentile(values, 1 - alpha), confidence, samples, seed);
    }

    /// <summary>numpy's default (linear) percentile of sorted values, q in [0, 1].</summary>
    public static double Percentile(double[] sorted, double q)
    {
        double pos = q * (sorted.Length - 1);
        int lo = (int)Math.Floor(pos), hi = Math.Min(lo + 1, sorted.Length - 1);
        return sorted[lo] + (pos - lo) * (sorted[hi] - sorted[lo]);
    }
}
