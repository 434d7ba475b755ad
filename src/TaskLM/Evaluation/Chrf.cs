// chrF as sacrebleu computes it by default: character 6-grams, beta 2, whitespace removed, no word n-grams.
using System.Text;

namespace TaskLM.Evaluation;

/// <summary>sacrebleu's default chrF (<c>CHRF()</c>: char_order 6, word_order 0, beta 2, case-sensitive,
/// whitespace ignored, no eps smoothing). Corpus chrF sums the n-gram statistics of all segments; with
/// several references each segment takes the statistics of the reference with the best sentence chrF.</summary>
public static class Chrf
{
    private const int CharOrder = 6;

    /// <summary>Corpus chrF (0-100).</summary>
    /// <param name="hyps">One hypothesis per segment.</param>
    /// <param name="refStreams">Reference streams, each with one reference per segment.</param>
    /// <param name="beta">Recall weight (sacrebleu's <c>beta</c>, default 2).</param>
    /// <param name="epsSmoothing">sacrebleu's <c>eps_smoothing</c> (chrF++.py/NLTK style: every order counts, an
    /// empty order scores eps); the default averages precision and recall over the orders that exist.</param>
    public static double Corpus(IReadOnlyList<string> hyps, IReadOnlyList<IReadOnlyList<string>> refStreams, double beta = 2, bool epsSmoothing = false)
    {
        Bleu.CheckStreams(hyps.Count, refStreams);
        var total = new double[3 * CharOrder];
        for (int i = 0; i < hyps.Count; i++)
        {
            var s = SegmentStats(hyps[i], refStreams.Select(r => r[i]).ToList(), beta, epsSmoothing);
            for (int j = 0; j < total.Length; j++) total[j] += s[j];
        }
        return FScore(total, beta, epsSmoothing);
    }

    /// <summary>Sentence chrF (0-100), sacrebleu's <c>sentence_chrf</c>.</summary>
    public static double Sentence(string hyp, IReadOnlyList<string> refs, double beta = 2, bool epsSmoothing = false) =>
        FScore(SegmentStats(hyp, refs, beta, epsSmoothing), beta, epsSmoothing);

    // [hyp_count, ref_count, match_count] per order 1..6, for the best-matching reference.
    private static double[] SegmentStats(string hyp, IReadOnlyList<string> refs, double beta, bool epsSmoothing)
    {
        var hypNgrams = CharNgrams(hyp);
        double best = -1;
        double[] bestStats = [];
        foreach (var r in refs)
        {
            var refNgrams = CharNgrams(r);
            var stats = new double[3 * CharOrder];
            for (int n = 0; n < CharOrder; n++)
            {
                double match = 0;
                foreach (var (ng, c) in hypNgrams[n])
                    if (refNgrams[n].TryGetValue(ng, out int rc)) match += Math.Min(c, rc);
                stats[3 * n] = hypNgrams[n].Values.Sum();
                stats[3 * n + 1] = refNgrams[n].Values.Sum();
                stats[3 * n + 2] = match;
            }
            double f = FScore(stats, beta, epsSmoothing);
            if (f > best) { best = f; bestStats = stats; }
        }
        return bestStats;
    }

    // Character n-gram counts of orders 1..6 over Unicode code points, whitespace removed (Python's "".join(s.split())).
    private static Dictionary<string, int>[] CharNgrams(string s)
    {
        var cps = new List<string>();
        foreach (var rune in string.Concat(Bleu.PySplit(s)).EnumerateRunes()) cps.Add(rune.ToString());
        var result = new Dictionary<string, int>[CharOrder];
        var sb = new StringBuilder();
        for (int n = 1; n <= CharOrder; n++)
        {
            var d = new Dictionary<string, int>(StringComparer.Ordinal);
            for (int i = 0; i + n <= cps.Count; i++)
            {
                sb.Clear();
                for (int j = i; j < i + n; j++) sb.Append(cps[j]);
                var key = sb.ToString();
                d[key] = d.GetValueOrDefault(key) + 1;
            }
            result[n - 1] = d;
        }
        return result;
    }

    // chrF from statistics: precision and recall averaged over the orders that have both hypothesis and
    // reference n-grams, then F-beta of the averages (sacrebleu's non-eps path, as chrF++.py).
    private static double FScore(double[] stats, double beta, bool epsSmoothing)
    {
        double factor = beta * beta, avgPrec = 0, avgRec = 0;
        if (epsSmoothing)
        {
            const double eps = 1e-16;
            double sum = 0;
            for (int n = 0; n < CharOrder; n++)
            {
                double nHyp = stats[3 * n], nRef = stats[3 * n + 1], nMatch = stats[3 * n + 2];
                double prec = nHyp > 0 ? nMatch / nHyp : eps, rec = nRef > 0 ? nMatch / nRef : eps;
                double denom = factor * prec + rec;
                sum += denom > 0 ? (1 + factor) * prec * rec / denom : eps;
            }
            return 100 * sum / CharOrder;
        }
        int effOrder = 0;
        for (int n = 0; n < CharOrder; n++)
        {
            double nHyp = stats[3 * n], nRef = stats[3 * n + 1], nMatch = stats[3 * n + 2];
            if (nHyp > 0 && nRef > 0)
            {
                avgPrec += nMatch / nHyp;
                avgRec += nMatch / nRef;
                effOrder++;
            }
        }
        if (effOrder == 0) return 0;
        avgPrec /= effOrder;
        avgRec /= effOrder;
        if (avgPrec + avgRec == 0) return 0;
        return 100 * (1 + factor) * avgPrec * avgRec / (factor * avgPrec + avgRec);
    }
}
