// ROUGE-N, ROUGE-L and ROUGE-Lsum as Google's rouge-score computes them (tokenizer, optional Porter stemming).
using System.Text;

namespace TaskLM.Evaluation;

/// <summary>Precision, recall and F1 of one ROUGE variant (rouge-score's <c>Score</c>).</summary>
public sealed record RougeScore(double Precision, double Recall, double FMeasure);

/// <summary>rouge-score's <c>RougeScorer</c>: text is lowercased, every run of characters outside
/// [a-z0-9] becomes a space, tokens are split on whitespace, and with stemming on, tokens longer than
/// three letters are Porter-stemmed. ROUGE-Lsum splits both texts into sentences at newlines and scores
/// the union LCS of each reference sentence against all candidate sentences.</summary>
public static class Rouge
{
    /// <summary>The variants <see cref="Score"/> computes by default (HF evaluate's default list).</summary>
    public static readonly string[] DefaultTypes = ["rouge1", "rouge2", "rougeL", "rougeLsum"];

    /// <summary>rouge-score's tokenizer.</summary>
    public static List<string> Tokenize(string text, bool useStemmer)
    {
        var sb = new StringBuilder(text.Length);
        foreach (char c in text.ToLowerInvariant())
            sb.Append(c is >= 'a' and <= 'z' or >= '0' and <= '9' ? c : ' ');
        var tokens = new List<string>();
        foreach (var t in sb.ToString().Split(' ', StringSplitOptions.RemoveEmptyEntries))
            tokens.Add(useStemmer && t.Length > 3 ? PorterStemmer.Stem(t) : t);
        return tokens;
    }

    /// <summary>Scores one prediction against one target for each requested variant (rouge1..rouge9, rougeL, rougeLsum).</summary>
    public static Dictionary<string, RougeScore> Score(string target, string prediction, IEnumerable<string>? types = null, bool useStemmer = false)
    {
        var result = new Dictionary<string, RougeScore>();
        List<string>? t = null, p = null;
        foreach (var type in types ?? DefaultTypes)
        {
            if (type == "rougeLsum")
            {
                result[type] = SummaryLevelLcs(Sentences(target).Select(s => Tokenize(s, useStemmer)).ToList(),
                                               Sentences(prediction).Select(s => Tokenize(s, useStemmer)).ToList());
                continue;
            }
            t ??= Tokenize(target, useStemmer);
            p ??= Tokenize(prediction, useStemmer);
            if (type == "rougeL") result[type] = Lcs(t, p);
            else if (type.Length == 6 && type.StartsWith("rouge", StringComparison.Ordinal) && type[5] is >= '1' and <= '9')
                result[type] = Ngram(t, p, type[5] - '0');
            else throw new ArgumentException($"unknown ROUGE type '{type}' (valid: rouge1..rouge9, rougeL, rougeLsum)");
        }
        return result;
    }

    /// <summary>Mean precision/recall/F1 per variant over segments (HF evaluate's <c>use_aggregator=False</c>, averaged).</summary>
    public static Dictionary<string, RougeScore> Corpus(IReadOnlyList<string> targets, IReadOnlyList<string> predictions, IEnumerable<string>? types = null, bool useStemmer = false)
    {
        if (targets.Count != predictions.Count)
            throw new ArgumentException($"{predictions.Count} predictions but {targets.Count} references");
        if (targets.Count == 0) throw new ArgumentException("no segments to score");
        var typeList = (types ?? DefaultTypes).ToList();
        var sums = typeList.ToDictionary(x => x, _ => new double[3]);
        for (int i = 0; i < targets.Count; i++)
            foreach (var (k, s) in Score(targets[i], predictions[i], typeList, useStemmer))
            {
                sums[k][0] += s.Precision; sums[k][1] += s.Recall; sums[k][2] += s.FMeasure;
            }
        return sums.ToDictionary(kv => kv.Key, kv => new RougeScore(kv.Value[0] / targets.Count, kv.Value[1] / targets.Count, kv.Value[2] / targets.Count));
    }

    private static List<string> Sentences(string text) => text.Split('\n').Where(s => s.Length > 0).ToList();

    private static double F(double p, double r) => p + r > 0 ? 2 * p * r / (p + r) : 0;

    private static RougeScore Ngram(List<string> target, List<string> prediction, int n)
    {
        var t = Ngrams(target, n);
        var p = Ngrams(prediction, n);
        double overlap = 0;
        foreach (var (g, c) in t) overlap += Math.Min(c, p.GetValueOrDefault(g));
        double tc = t.Values.Sum(), pc = p.Values.Sum();
        double precision = overlap / Math.Max(pc, 1), recall = overlap / Math.Max(tc, 1);
        return new RougeScore(precision, recall, F(precision, recall));
    }

    private static Dictionary<string, int> Ngrams(List<string> tokens, int n)
    {
        var d = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i + n <= tokens.Count; i++)
        {
            var key = string.Join(' ', tokens.GetRange(i, n));
            d[key] = d.GetValueOrDefault(key) + 1;
        }
        return d;
    }

    private static RougeScore Lcs(List<string> target, List<string> prediction)
    {
        if (target.Count == 0 || prediction.Count == 0) return new RougeScore(0, 0, 0);
        double lcs = LcsTable(target, prediction)[target.Count, prediction.Count];
        double precision = lcs / prediction.Count, recall = lcs / target.Count;
        return new RougeScore(precision, recall, F(precision, recall));
    }

    // table[i, j] = LCS length of ref[..i] and can[..j].
    private static int[,] LcsTable(List<string> reference, List<string> candidate)
    {
        var t = new int[reference.Count + 1, candidate.Count + 1];
        for (int i = 1; i <= reference.Count; i++)
            for (int j = 1; j <= candidate.Count; j++)
                t[i, j] = reference[i - 1] == candidate[j - 1] ? t[i - 1, j - 1] + 1 : Math.Max(t[i - 1, j], t[i, j - 1]);
        return t;
    }

    /// <summary>Indices into <paramref name="reference"/> of one longest common subsequence, read back from the
    /// table the way rouge-score's <c>_backtrack_norec</c> does (on ties, step back in the reference).</summary>
    public static List<int> LcsIndices(List<string> reference, List<string> candidate)
    {
        var t = LcsTable(reference, candidate);
        int i = reference.Count, j = candidate.Count;
        var idx = new List<int>();
        while (i > 0 && j > 0)
        {
            if (reference[i - 1] == candidate[j - 1]) { idx.Add(i - 1); i--; j--; }
            else if (t[i, j - 1] > t[i - 1, j]) j--;
            else i--;
        }
        idx.Reverse();
        return idx;
    }

    // ROUGE-Lsum: for each reference sentence, the union of its LCS hits with every candidate sentence,
    // each token counted at most as often as it occurs in both summaries.
    private static RougeScore SummaryLevelLcs(List<List<string>> refSents, List<List<string>> canSents)
    {
        if (refSents.Count == 0 || canSents.Count == 0) return new RougeScore(0, 0, 0);
        int m = refSents.Sum(s => s.Count), n = canSents.Sum(s => s.Count);
        if (m == 0 || n == 0) return new RougeScore(0, 0, 0);
        var refCounts = new Dictionary<string, int>(StringComparer.Ordinal);
        var canCounts = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var tok in refSents.SelectMany(s => s)) refCounts[tok] = refCounts.GetValueOrDefault(tok) + 1;
        foreach (var tok in canSents.SelectMany(s => s)) canCounts[tok] = canCounts.GetValueOrDefault(tok) + 1;
        int hits = 0;
        foreach (var r in refSents)
        {
            var union = new SortedSet<int>();
            foreach (var c in canSents) union.UnionWith(LcsIndices(r, c));
            foreach (int i in union)
            {
                var tok = r[i];
                if (canCounts.GetValueOrDefault(tok) > 0 && refCounts.GetValueOrDefault(tok) > 0)
                {
                    hits++;
                    canCounts[tok]--;
                    refCounts[tok]--;
                }
            }
        }
        double recall = (double)hits / m, precision = (double)hits / n;
        return new RougeScore(precision, recall, F(precision, recall));
    }
}
