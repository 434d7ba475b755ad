// BLEU as sacrebleu computes it by default: 13a tokenisation, corpus statistics, exponential smoothing.
using System.Text.RegularExpressions;

namespace TaskLM.Evaluation;

/// <summary>A BLEU score with the statistics behind it (sacrebleu's BLEUScore).</summary>
public sealed record BleuScore(double Score, double[] Precisions, double BrevityPenalty, int HypLength, int RefLength)
{
    /// <summary>sacrebleu's one-line form, e.g. <c>BLEU = 29.59 76.2/58.8/30.8/5.6 (BP = 1.000 ratio = 1.000 hyp_len = 21 ref_len = 21)</c>.</summary>
    public override string ToString() =>
        $"BLEU = {Score:F2} {string.Join('/', Precisions.Select(p => p.ToString("F1")))} (BP = {BrevityPenalty:F3} ratio = {(RefLength == 0 ? 0 : (double)HypLength / RefLength):F3} hyp_len = {HypLength} ref_len = {RefLength})";
}

/// <summary>sacrebleu's default BLEU (<c>corpus_bleu</c>, <c>sentence_bleu</c>): case-sensitive, 13a tokenizer,
/// n-grams up to 4, clipped counts against several references, closest reference length (shorter on ties).</summary>
public static class Bleu
{
    private const int MaxOrder = 4;

    /// <summary>Corpus BLEU: statistics summed over segments, then one score (smoothing "exp", no effective order).</summary>
    /// <param name="hyps">One hypothesis per segment.</param>
    /// <param name="refStreams">Reference streams: each holds one reference per segment (sacrebleu's <c>[refs]</c>).</param>
    public static BleuScore Corpus(IReadOnlyList<string> hyps, IReadOnlyList<IReadOnlyList<string>> refStreams)
    {
        CheckStreams(hyps.Count, refStreams);
        var stats = new long[2 + 2 * MaxOrder];
        for (int i = 0; i < hyps.Count; i++)
        {
            var s = SegmentStats(hyps[i], refStreams.Select(r => r[i]).ToList());
            for (int j = 0; j < stats.Length; j++) stats[j] += s[j];
        }
        return FromStats(stats, effectiveOrder: false);
    }

    /// <summary>Sentence BLEU as sacrebleu's <c>sentence_bleu</c>: smoothing "exp" with effective order,
    /// so a short sentence is not zeroed by a missing 4-gram order.</summary>
    public static BleuScore Sentence(string hyp, IReadOnlyList<string> refs) =>
        FromStats(SegmentStats(hyp, refs), effectiveOrder: true);

    internal static void CheckStreams(int n, IReadOnlyList<IReadOnlyList<string>> refStreams)
    {
        if (refStreams.Count == 0) throw new ArgumentException("no reference stream given");
        for (int r = 0; r < refStreams.Count; r++)
            if (refStreams[r].Count != n)
                throw new ArgumentException($"reference stream {r + 1} has {refStreams[r].Count} segments but there are {n} hypotheses");
    }

    // [hyp_len, ref_len, correct_1..4, total_1..4], sacrebleu's per-segment statistics. Segments are
    // right-stripped before tokenizing, as sacrebleu's BLEU._preprocess_segment does.
    private static long[] SegmentStats(string hyp, IReadOnlyList<string> refs)
    {
        var hypTokens = Tokenize13a(hyp.TrimEnd()).Split(' ', StringSplitOptions.RemoveEmptyEntries);
        var hypNgrams = Ngrams(hypTokens);
        var maxRef = new Dictionary<string, int>[MaxOrder];
        for (int n = 0; n < MaxOrder; n++) maxRef[n] = new(StringComparer.Ordinal);
        int closestLen = -1, closestDiff = int.MaxValue;
        foreach (var r in refs)
        {
            var refTokens = Tokenize13a(r.TrimEnd()).Split(' ', StringSplitOptions.RemoveEmptyEntries);
            int diff = Math.Abs(hypTokens.Length - refTokens.Length);
            if (diff < closestDiff) { closestDiff = diff; closestLen = refTokens.Length; }
            else if (diff == closestDiff) closestLen = Math.Min(closestLen, refTokens.Length);
            var refNgrams = Ngrams(refTokens);
            for (int n = 0; n < MaxOrder; n++)
                foreach (var (ng, c) in refNgrams[n])
                    if (!maxRef[n].TryGetValue(ng, out int m) || c > m) maxRef[n][ng] = c;
        }
        var stats = new long[2 + 2 * MaxOrder];
        stats[0] = hypTokens.Length;
        stats[1] = closestLen;
        for (int n = 0; n < MaxOrder; n++)
            foreach (var (ng, c) in hypNgrams[n])
            {
                stats[2 + MaxOrder + n] += c;
                if (maxRef[n].TryGetValue(ng, out int m)) stats[2 + n] += Math.Min(c, m); // clipped by the most any reference has
            }
        return stats;
    }

    // N-gram counts per order (index 0 = unigrams), tokens joined with a space (13a tokens never contain one).
    private static Dictionary<string, int>[] Ngrams(string[] tokens)
    {
        var result = new Dictionary<string, int>[MaxOrder];
        for (int n = 1; n <= MaxOrder; n++)
        {
            var d = new Dictionary<string, int>(StringComparer.Ordinal);
            for (int i = 0; i + n <= tokens.Length; i++)
            {
                var key = string.Join(' ', tokens, i, n);
                d[key] = d.GetValueOrDefault(key) + 1;
            }
            result[n - 1] = d;
        }
        return result;
    }

    private static BleuScore FromStats(long[] stats, bool effectiveOrder)
    {
        long sysLen = stats[0], refLen = stats[1];
        var precisions = new double[MaxOrder];
        double smoothMteval = 1;
        int effOrder = MaxOrder;
        for (int n = 1; n <= MaxOrder; n++)
        {
            long correct = stats[2 + n - 1], total = stats[2 + MaxOrder + n - 1];
            if (total == 0) break;
            if (effectiveOrder) effOrder = n;
            if (correct == 0)
            {
                // "exp" smoothing (mteval-v13a): halve the pseudo-count for each further order with no match.
                smoothMteval *= 2;
                precisions[n - 1] = 100.0 / (smoothMteval * total);
            }
            else precisions[n - 1] = 100.0 * correct / total;
        }
        double bp = sysLen < refLen ? (sysLen > 0 ? Math.Exp(1 - (double)refLen / sysLen) : 0.0) : 1.0;
        double logSum = 0;
        for (int i = 0; i < effOrder; i++) logSum += precisions[i] == 0 ? -9999999999.0 : Math.Log(precisions[i]);
        double score = bp * Math.Exp(logSum / effOrder);
        return new BleuScore(score, precisions, bp, (int)sysLen, (int)refLen);
    }

    // mteval-v13a's rules, in sacrebleu's order.
    private static readonly (Regex Re, string Repl)[] Rules13a =
    [
        (new Regex(@"([\{-\~\[-\` -\&\(-\+\:-\@\/])", RegexOptions.CultureInvariant), " $1 "), // punctuation
        (new Regex(@"([^0-9])([\.,])", RegexOptions.CultureInvariant), "$1 $2 "),               // . and , unless after a digit
        (new Regex(@"([\.,])([^0-9])", RegexOptions.CultureInvariant), " $1 $2"),               // . and , unless before a digit
        (new Regex(@"([0-9])(-)", RegexOptions.CultureInvariant), "$1 $2 "),                    // dash after a digit
    ];

    /// <summary>sacrebleu's <c>13a</c> tokenizer (mteval-v13a): tokens joined by single spaces.</summary>
    public static string Tokenize13a(string line)
    {
        if (line.Length == 0) return "";
        line = line.Replace("<skipped>", "").Replace("-\n", "").Replace("\n", " ");
        if (line.Contains('&'))
            line = line.Replace("&quot;", "\"").Replace("&amp;", "&").Replace("&lt;", "<").Replace("&gt;", ">");
        line = " " + line + " ";
        foreach (var (re, repl) in Rules13a) line = re.Replace(line, repl);
        return string.Join(' ', PySplit(line));
    }

    /// <summary>Python's <c>str.split()</c>: runs of whitespace separate, no empty pieces.</summary>
    internal static string[] PySplit(string s)
    {
        var parts = new List<string>();
        int i = 0;
        while (i < s.Length)
        {
            while (i < s.Length && IsPyWhiteSpace(s[i])) i++;
            int start = i;
            while (i < s.Length && !IsPyWhiteSpace(s[i])) i++;
            if (i > start) parts.Add(s[start..i]);
        }
        return parts.ToArray();
    }

    // Python's str.isspace also counts the information separators U+001C..U+001F.
    private static bool IsPyWhiteSpace(char c) => char.IsWhiteSpace(c) || (c >= '\u001c' && c <= '\u001f');
}
