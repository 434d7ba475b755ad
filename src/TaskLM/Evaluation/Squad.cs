// SQuAD exact match and token F1 with the official evaluation script's answer normalisation.
using System.Text;
using System.Text.RegularExpressions;

namespace TaskLM.Evaluation;

/// <summary>The official SQuAD evaluation (v1.1 script, with v2.0's rule for unanswerable questions):
/// answers are lowercased, ASCII punctuation removed, the articles a/an/the dropped and whitespace
/// collapsed; each prediction takes its best score over the gold answers; totals are percentages.</summary>
public static class Squad
{
    private static readonly Regex Articles = new(@"\b(a|an|the)\b", RegexOptions.CultureInvariant);
    private const string Punctuation = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";

    /// <summary>SQuAD's <c>normalize_answer</c>.</summary>
    public static string Normalize(string s)
    {
        var sb = new StringBuilder(s.Length);
        foreach (char c in s.ToLowerInvariant()) if (!Punctuation.Contains(c)) sb.Append(c);
        return string.Join(' ', Bleu.PySplit(Articles.Replace(sb.ToString(), " ")));
    }

    /// <summary>1 when the normalised strings are equal, else 0.</summary>
    public static double ExactMatch(string prediction, string gold) => Normalize(prediction) == Normalize(gold) ? 1 : 0;

    /// <summary>Token-overlap F1 of the normalised answers (bag of tokens, clipped counts). When either side
    /// has no tokens (an unanswerable question), 1 if both are empty, else 0.</summary>
    public static double F1(string prediction, string gold)
    {
        var p = Normalize(prediction).Split(' ', StringSplitOptions.RemoveEmptyEntries);
        var g = Normalize(gold).Split(' ', StringSplitOptions.RemoveEmptyEntries);
        if (p.Length == 0 || g.Length == 0) return p.Length == g.Length ? 1 : 0;
        var counts = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var t in g) counts[t] = counts.GetValueOrDefault(t) + 1;
        int same = 0;
        foreach (var t in p)
            if (counts.TryGetValue(t, out int c) && c > 0) { same++; counts[t] = c - 1; }
        if (same == 0) return 0;
        double precision = (double)same / p.Length, recall = (double)same / g.Length;
        return 2 * precision * recall / (precision + recall);
    }

    /// <summary>Corpus EM and F1 in percent (the official script's <c>exact_match</c> and <c>f1</c>), and per-question scores.</summary>
    public static (double ExactMatch, double F1, double[] PerQuestionF1) Evaluate(IReadOnlyList<string> predictions, IReadOnlyList<IReadOnlyList<string>> golds)
    {
        if (predictions.Count != golds.Count)
            throw new ArgumentException($"{predictions.Count} predictions but {golds.Count} questions with gold answers");
        if (predictions.Count == 0) throw new ArgumentException("no questions to score");
        double em = 0, f1 = 0;
        var per = new double[predictions.Count];
        for (int i = 0; i < predictions.Count; i++)
        {
            if (golds[i].Count == 0) throw new ArgumentException($"question {i + 1} has no gold answer");
            em += golds[i].Max(g => ExactMatch(predictions[i], g));
            per[i] = golds[i].Max(g => F1(predictions[i], g));
            f1 += per[i];
        }
        return (100 * em / predictions.Count, 100 * f1 / predictions.Count, per);
    }
}
