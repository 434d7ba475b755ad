// Labelled rows for the improvement verbs: read a data file, and cut it into seeded, stratified samples and splits.
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using TaskLM.Data.Corpus;

namespace TaskLM.Improve;

/// <summary>Rows of a labelled data file and the seeded, stratified ways the verbs cut them.</summary>
public static class LabelledRows
{
    /// <summary>Every row of <paramref name="path"/> (JSONL, CSV, TSV, Parquet and their .gz forms), fields as read.</summary>
    public static List<JsonObject> Read(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: data file not found", path);
        var rows = DataImport.Read(path, new ImportOptions(), new RowErrors(OnError.Fail)).Select(r => r.Fields).ToList();
        if (rows.Count == 0) throw new InvalidDataException($"{path}: no rows");
        return rows;
    }

    /// <summary>The row's label as text; a row without one is an error naming the file and row.</summary>
    public static string Label(JsonObject row, string column, string source, int index) =>
        row[column] is { } v ? (v.GetValueKind() == JsonValueKind.String ? v.GetValue<string>() : v.ToJsonString())
            : throw new InvalidDataException($"{source}: row {index + 1} has no label column '{column}' (columns: {string.Join(", ", row.Select(kv => kv.Key))})");

    /// <summary>The rows of each label in a seeded random order (labels sorted ordinally). Taking a prefix of every
    /// group gives a stratified sample; the prefixes of one seed are nested (the 25% sample holds the 10% one).</summary>
    public static SortedDictionary<string, List<JsonObject>> ShuffledByLabel(IReadOnlyList<JsonObject> rows, string labelColumn, int seed, string source)
    {
        var groups = new SortedDictionary<string, List<JsonObject>>(StringComparer.Ordinal);
        for (int i = 0; i < rows.Count; i++)
        {
            string l = Label(rows[i], labelColumn, source, i);
            if (!groups.TryGetValue(l, out var g)) groups[l] = g = [];
            g.Add(rows[i]);
        }
        var rng = new Random(seed);
        foreach (var g in groups.Values)
            for (int i = g.Count - 1; i > 0; i--) { int j = rng.Next(i + 1); (g[i], g[j]) = (g[j], g[i]); }
        return groups;
    }

    /// <summary>A stratified sample of about <paramref name="fraction"/> of the rows: ceil(fraction · n_c) of each label
    /// (at least one), in a seeded order that mixes labels (a split made by `data split` lists one label first).</summary>
    public static List<JsonObject> StratifiedSample(IReadOnlyList<JsonObject> rows, string labelColumn, double fraction, int seed, string source)
    {
        if (fraction is <= 0 or > 1) throw new ArgumentException($"fraction {fraction.ToString(CultureInfo.InvariantCulture)}: must be in (0, 1]");
        var groups = ShuffledByLabel(rows, labelColumn, seed, source);
        var taken = groups.Values.SelectMany(g => g.Take(Math.Max(1, (int)Math.Ceiling(fraction * g.Count - 1e-9)))).ToList();
        return Mix(taken, seed);
    }

    /// <summary>Rows of each label split into (rest, held out) with round(fraction · n_c) held out (at least one
    /// when the label has two or more rows).</summary>
    public static (List<JsonObject> Kept, List<JsonObject> HeldOut) StratifiedSplit(IReadOnlyList<JsonObject> rows, string labelColumn, double fraction, int seed, string source)
    {
        var rest = new List<JsonObject>(); var held = new List<JsonObject>();
        foreach (var g in ShuffledByLabel(rows, labelColumn, seed, source).Values)
        {
            int k = g.Count < 2 ? 0 : Math.Clamp((int)Math.Round(fraction * g.Count), 1, g.Count - 1);
            held.AddRange(g.Take(k)); rest.AddRange(g.Skip(k));
        }
        return (Mix(rest, seed + 1), Mix(held, seed + 2));
    }

    /// <summary>A seeded shuffle (a copy).</summary>
    public static List<JsonObject> Mix(IEnumerable<JsonObject> rows, int seed)
    {
        var list = rows.ToList();
        var rng = new Random(seed);
        for (int i = list.Count - 1; i > 0; i--) { int j = rng.Next(i + 1); (list[i], list[j]) = (list[j], list[i]); }
        return list;
    }

    /// <summary>Writes rows as JSONL (deep copies, so one row may go to several files).</summary>
    public static string Write(string path, IEnumerable<JsonObject> rows)
    {
        JsonlFile.Write(path, rows.Select(r => (JsonObject)r.DeepClone()));
        return path;
    }

    /// <summary>Label counts, "ham 120, spam 80".</summary>
    public static string Counts(IEnumerable<JsonObject> rows, string labelColumn) =>
        string.Join(", ", rows.Select((r, i) => Label(r, labelColumn, "rows", i)).GroupBy(x => x, StringComparer.Ordinal).OrderBy(g => g.Key, StringComparer.Ordinal).Select(g => $"{g.Key} {g.Count()}"));
}
