// seqeval-style entity scores (default, conlleval-compatible mode) and token accuracy for taggers.
namespace TaskLM.Evaluation;

/// <summary>One entity span: type and inclusive token offsets over the flattened sentences.</summary>
public readonly record struct Entity(string Type, int Start, int End);

/// <summary>Entity-level precision/recall/F1 as seqeval computes them by default (not strict mode):
/// chunks are read conlleval-style from IOB1/IOB2/IOBES tags (an I- after O or after another type
/// starts a chunk), a predicted entity counts when type, start and end all match a gold one.</summary>
public static class Seqeval
{
    /// <summary>seqeval's <c>get_entities</c>: sentences are joined with an "O" after each.</summary>
    public static List<Entity> GetEntities(IReadOnlyList<IReadOnlyList<string>> sentences)
    {
        var seq = new List<string>();
        foreach (var s in sentences) { seq.AddRange(s); seq.Add("O"); }
        seq.Add("O");
        var chunks = new List<Entity>();
        char prevTag = 'O';
        string prevType = "";
        int begin = 0;
        for (int i = 0; i < seq.Count; i++)
        {
            var chunk = seq[i];
            char tag = chunk.Length > 0 ? chunk[0] : 'O';
            var rest = chunk.Length > 1 ? chunk[1..] : "";
            int dash = rest.IndexOf('-');
            var type = dash >= 0 ? rest[(dash + 1)..] : rest;
            if (type.Length == 0) type = "_";
            if (EndOfChunk(prevTag, tag, prevType, type)) chunks.Add(new Entity(prevType, begin, i - 1));
            if (StartOfChunk(prevTag, tag, prevType, type)) begin = i;
            prevTag = tag;
            prevType = type;
        }
        return chunks;
    }

    private static bool EndOfChunk(char prev, char tag, string prevType, string type) =>
        prev is 'E' or 'S'
        || (prev is 'B' or 'I' && tag is 'B' or 'S' or 'O')
        || (prev != 'O' && prev != '.' && prevType != type);

    private static bool StartOfChunk(char prev, char tag, string prevType, string type) =>
        tag is 'B' or 'S'
        || (prev is 'E' or 'S' or 'O' && tag is 'E' or 'I')
        || (tag != 'O' && tag != '.' && prevType != type);

    /// <summary>Per entity type P/R/F1/support (types sorted), micro/macro/weighted averages, and token accuracy.</summary>
    public static (Dictionary<string, PrfScore> PerType, PrfScore Micro, PrfScore Macro, PrfScore Weighted, double TokenAccuracy) Evaluate(
        IReadOnlyList<IReadOnlyList<string>> gold, IReadOnlyList<IReadOnlyList<string>> pred)
    {
        if (gold.Count != pred.Count) throw new ArgumentException($"{gold.Count} gold sentences but {pred.Count} predicted");
        int tokens = 0, correct = 0;
        for (int i = 0; i < gold.Count; i++)
        {
            if (gold[i].Count != pred[i].Count)
                throw new ArgumentException($"sentence {i + 1}: {gold[i].Count} gold tags but {pred[i].Count} predicted");
            for (int j = 0; j < gold[i].Count; j++) { tokens++; if (gold[i][j] == pred[i][j]) correct++; }
        }
        if (tokens == 0) throw new ArgumentException("no tokens to score");
        var g = GetEntities(gold).GroupBy(e => e.Type).ToDictionary(x => x.Key, x => x.Select(e => (e.Start, e.End)).ToHashSet());
        var p = GetEntities(pred).GroupBy(e => e.Type).ToDictionary(x => x.Key, x => x.Select(e => (e.Start, e.End)).ToHashSet());
        var types = new SortedSet<string>(g.Keys, StringComparer.Ordinal);
        types.UnionWith(p.Keys);
        var perType = new Dictionary<string, PrfScore>(StringComparer.Ordinal);
        double tpAll = 0, predAll = 0, trueAll = 0;
        foreach (var t in types)
        {
            var gt = g.GetValueOrDefault(t) ?? [];
            var pt = p.GetValueOrDefault(t) ?? [];
            int tp = gt.Count(pt.Contains);
            perType[t] = Prf(tp, pt.Count, gt.Count);
            tpAll += tp; predAll += pt.Count; trueAll += gt.Count;
        }
        var scores = perType.Values.ToList();
        var micro = Prf(tpAll, predAll, trueAll);
        var macro = scores.Count == 0 ? new PrfScore(0, 0, 0, 0)
            : new PrfScore(scores.Average(s => s.Precision), scores.Average(s => s.Recall), scores.Average(s => s.F1), (int)trueAll);
        var weighted = trueAll == 0 ? new PrfScore(0, 0, 0, 0) : new PrfScore(
            scores.Sum(s => s.Precision * s.Support) / trueAll, scores.Sum(s => s.Recall * s.Support) / trueAll,
            scores.Sum(s => s.F1 * s.Support) / trueAll, (int)trueAll);
        return (perType, micro, macro, weighted, (double)correct / tokens);
    }

    private static PrfScore Prf(double tp, double predicted, double actual)
    {
        double p = predicted == 0 ? 0 : tp / predicted, r = actual == 0 ? 0 : tp / actual;
        return new PrfScore(p, r, p + r == 0 ? 0 : 2 * p * r / (p + r), (int)actual);
    }
}
