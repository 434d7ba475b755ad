// Train/validation/test splits: by ratio or count, stratified by label, seeded, near-duplicate groups kept whole.
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;

namespace TaskLM.Data.Corpus;

/// <summary>How to split.</summary>
public sealed class SplitOptions
{
    /// <summary>Split names, in order: train, validation, test (two ratios/counts = train, test).</summary>
    public List<string> Names { get; set; } = ["train", "validation", "test"];

    /// <summary>Fractions per split, summing to 1 (±0.001). Exactly one of Ratios/Counts.</summary>
    public List<double>? Ratios { get; set; } = [0.8, 0.1, 0.1];

    /// <summary>Rows per split; rows beyond their sum are left out (reported as unused).</summary>
    public List<int>? Counts { get; set; }

    /// <summary>Field to stratify on (each split keeps the label proportions); null = no stratification.</summary>
    public string? Stratify { get; set; } = "label";

    /// <summary>Seed of the shuffle: same seed and input, same splits.</summary>
    public int Seed { get; set; } = 42;

    /// <summary>Text field (for near-duplicate grouping).</summary>
    public string TextColumn { get; set; } = "text";

    /// <summary>Keep near-duplicate clusters (MinHash + LSH, these settings) inside one split; null = off.</summary>
    public NearDuplicateOptions? GroupNearDuplicates { get; set; }
}

/// <summary>Which split each row went to.</summary>
public sealed class SplitResult
{
    /// <summary>Split names.</summary>
    public required IReadOnlyList<string> Names { get; init; }

    /// <summary>Per input row: the split index, or -1 when left out (counts summing below the row count).</summary>
    public required int[] Assignment { get; init; }

    /// <summary>Per input row: its group (the lowest row index of its near-duplicate cluster; itself when alone).</summary>
    public required int[] Group { get; init; }

    /// <summary>Row indices of split <paramref name="split"/>, in input order.</summary>
    public IEnumerable<int> Rows(int split) => Enumerable.Range(0, Assignment.Length).Where(i => Assignment[i] == split);
}

/// <summary>Assigns rows to splits. Stratified targets come from exact rounding: every (label, split) cell gets
/// the floor of its share and the remaining rows go to the cells with the largest fractional parts, so that
/// each label's total and each split's total are both met (HF/sklearn's stratified shuffle split does the
/// same with its approximate mode). Within each label, groups are shuffled with the seed and placed largest
/// first into the split with the largest remaining need, so a near-duplicate cluster never straddles splits.</summary>
public static class DatasetSplitter
{
    /// <summary>Assigns every row of <paramref name="rows"/> to a split.</summary>
    public static SplitResult Assign(IReadOnlyList<DataRow> rows, SplitOptions o)
    {
        int k = o.Names.Count;
        if ((o.Ratios == null) == (o.Counts == null)) throw new ArgumentException("give either ratios or counts");
        if (o.Ratios is { } rr)
        {
            if (rr.Count != k) throw new ArgumentException($"{rr.Count} ratios for {k} splits ({string.Join(", ", o.Names)})");
            if (rr.Any(r => r < 0) || Math.Abs(rr.Sum() - 1) > 1e-3) throw new ArgumentException($"ratios must be ≥ 0 and sum to 1, got {string.Join(",", rr)}");
        }
        if (o.Counts is { } cc)
        {
            if (cc.Count != k) throw new ArgumentException($"{cc.Count} counts for {k} splits ({string.Join(", ", o.Names)})");
            if (cc.Any(c => c < 0) || cc.Sum() > rows.Count) throw new ArgumentException($"counts {string.Join(",", cc)} ask for more than the {rows.Count} rows");
        }
        int n = rows.Count;

        // Split totals; a last pseudo-split "unused" takes what counts leave over.
        var totals = new long[k + 1];
        if (o.Counts != null) { for (int s = 0; s < k; s++) totals[s] = o.Counts[s]; totals[k] = n - o.Counts.Sum(); }
        else Apportion(n, o.Ratios!.Select(r => (double)r).Append(0).ToArray(), totals);

        // Groups of near-duplicates (union-find over LSH matches), or one group per row.
        var sets = new DisjointSets(n);
        if (o.GroupNearDuplicates is { } nd)
        {
            var mh = new MinHash(nd.NumPerm, nd.Seed);
            var sigs = new uint[n][];
            Parallel.For(0, n, i => sigs[i] = mh.Signature(TextOf(rows[i], o.TextColumn) ?? "", nd.Shingles, nd.ShingleSize));
            var lsh = new LshIndex(nd.NumPerm, nd.Threshold);
            for (int i = 0; i < n; i++)
            {
                foreach (int j in lsh.FindAll(sigs[i])) sets.Union(i, j);
                lsh.Add(sigs[i]);
            }
        }
        var group = new int[n];
        for (int i = 0; i < n; i++) group[i] = sets.Find(i);

        // Strata: a group's stratum is its first row's label (missing = "").
        string StratumOf(int i) => o.Stratify == null ? "" : TextOf(rows[i], o.Stratify) ?? "";
        var groupsByStratum = new SortedDictionary<string, List<List<int>>>(StringComparer.Ordinal);
        var members = new Dictionary<int, List<int>>();
        for (int i = 0; i < n; i++)
        {
            if (!members.TryGetValue(group[i], out var m))
            {
                members[group[i]] = m = [];
                string st = StratumOf(i);
                if (!groupsByStratum.TryGetValue(st, out var gl)) groupsByStratum[st] = gl = [];
                gl.Add(m);
            }
            m.Add(i);
        }

        // Per-stratum targets meeting both the stratum sizes and the split totals.
        var strata = groupsByStratum.Keys.ToArray();
        var sizes = strata.Select(st => (long)groupsByStratum[st].Sum(g => g.Count)).ToArray();
        var target = Transport(sizes, totals);

        var assignment = new int[n];
        var rng = new Random(o.Seed);
        for (int c = 0; c < strata.Length; c++)
        {
            var groups = groupsByStratum[strata[c]];
            // Seeded Fisher-Yates, then a stable sort by size (largest first) so big clusters are placed while room remains.
            for (int i = groups.Count - 1; i > 0; i--) { int j = rng.Next(i + 1); (groups[i], groups[j]) = (groups[j], groups[i]); }
            var ordered = groups.Select((g, idx) => (g, idx)).OrderByDescending(x => x.g.Count).ThenBy(x => x.idx).Select(x => x.g);
            var need = (long[])target[c].Clone();
            int last = totals[k] > 0 ? k : k - 1; // "unused" only takes rows when counts leave some over
            foreach (var g in ordered)
            {
                int best = 0;
                for (int s = 1; s <= last; s++) if (need[s] > need[best]) best = s;
                need[best] -= g.Count;
                foreach (int i in g) assignment[i] = best == k ? -1 : best;
            }
        }
        return new SplitResult { Names = o.Names, Assignment = assignment, Group = group };
    }

    // Largest-remainder apportionment of n into shares proportional to weights.
    private static void Apportion(long n, double[] weights, long[] into)
    {
        double sum = weights.Sum();
        var frac = new double[weights.Length];
        long given = 0;
        for (int s = 0; s < weights.Length; s++)
        {
            double exact = n * weights[s] / sum;
            into[s] = (long)Math.Floor(exact);
            frac[s] = exact - into[s];
            given += into[s];
        }
        foreach (int s in Enumerable.Range(0, weights.Length).OrderByDescending(s => frac[s]).ThenBy(s => s))
        {
            if (given >= n) break;
            into[s]++; given++;
        }
    }

    // Integer table with row sums = rowTotals and column sums = colTotals, close to the proportional table.
    private static long[][] Transport(long[] rowTotals, long[] colTotals)
    {
        long n = rowTotals.Sum();
        int rows = rowTotals.Length, cols = colTotals.Length;
        var t = new long[rows][];
        var frac = new List<(double F, int R, int C)>();
        var rowNeed = (long[])rowTotals.Clone();
        var colNeed = (long[])colTotals.Clone();
        for (int r = 0; r < rows; r++)
        {
            t[r] = new long[cols];
            for (int c = 0; c < cols; c++)
            {
                double exact = n == 0 ? 0 : (double)rowTotals[r] * colTotals[c] / n;
                t[r][c] = (long)Math.Floor(exact);
                rowNeed[r] -= t[r][c]; colNeed[c] -= t[r][c];
                frac.Add((exact - t[r][c], r, c));
            }
        }
        foreach (var (_, r, c) in frac.OrderByDescending(x => x.F).ThenBy(x => x.R).ThenBy(x => x.C))
            if (rowNeed[r] > 0 && colNeed[c] > 0) { t[r][c]++; rowNeed[r]--; colNeed[c]--; }
        // Whatever rounding left over: both needs sum to the same, so this always finishes.
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < cols && rowNeed[r] > 0; c++)
            {
                long m = Math.Min(rowNeed[r], colNeed[c]);
                t[r][c] += m; rowNeed[r] -= m; colNeed[c] -= m;
            }
        return t;
    }

    internal static string? TextOf(DataRow row, string column)
    {
        if (!row.Fields.TryGetPropertyValue(column, out var node) || node == null) return null;
        return node is JsonValue v && v.TryGetValue(out string? s) ? s : node.ToJsonString();
    }

    /// <summary>Why this assignment is not a usable split — a split asked for (ratio or count above 0) that came out
    /// empty, as one row in three splits, or one near-duplicate group holding every row — or null when every
    /// such split has rows. A training run refuses an empty validation set, so the split says so first.</summary>
    public static string? EmptySplitProblem(SplitResult result, SplitOptions o)
    {
        var empty = new List<string>();
        for (int s = 0; s < result.Names.Count; s++)
        {
            bool asked = o.Counts != null ? o.Counts[s] > 0 : o.Ratios![s] > 0;
            if (asked && !result.Rows(s).Any()) empty.Add(result.Names[s]);
        }
        if (empty.Count == 0) return null;
        int n = result.Assignment.Length;
        int groups = result.Group.Distinct().Count();
        string why = groups < n && groups < result.Names.Count
            ? $"the {n:N0} rows form {groups:N0} near-duplicate group{(groups == 1 ? "" : "s")}, and a group stays in one split"
            : $"{n:N0} row{(n == 1 ? "" : "s")} cannot fill {result.Names.Count} splits";
        return $"split {string.Join(" and ", empty)} would be empty: {why}; nothing written (give more rows or fewer splits, or pass --allow-empty)";
    }

    /// <summary>Writes each split to <c>outDir/&lt;name&gt;.jsonl</c> (through <paramref name="writeJsonl"/>, which
    /// must write deterministically) and <c>manifest.json</c> with each file's SHA-256, row count and label
    /// distribution. Returns the manifest.
    /// <para>Nothing is lost: an input that is one of the files this split writes, or a split file of the earlier
    /// split recorded in the folder's manifest.json, is refused before anything is written. The splits are
    /// written into a hidden staging folder first and moved into place only when all are complete, so a failure
    /// or an interruption leaves the earlier split as it was. Split files of the earlier split that this one does
    /// not write (a 2-way re-split into a 3-way folder leaves validation.jsonl) are removed, as they no longer
    /// match the manifest; files that only look like splits (not in the earlier manifest) are kept and listed in
    /// <see cref="SplitManifest.UnlistedSplitFiles"/>.</para></summary>
    public static SplitManifest Write(string outDir, IReadOnlyList<DataRow> rows, SplitResult result, SplitOptions o,
        Action<string, IEnumerable<JsonObject>> writeJsonl, string? sourcePath = null, string extension = ".jsonl")
    {
        string manifestPath = Path.Combine(outDir, "manifest.json");
        var newFiles = result.Names.Select(n => n + extension).ToList();
        var earlier = ReadEarlierSplitFiles(manifestPath);
        if (sourcePath != null)
        {
            string src = Path.GetFullPath(sourcePath);
            foreach (string f in newFiles.Append("manifest.json"))
                if (Path.GetFullPath(Path.Combine(outDir, f)) == src)
                    throw new ArgumentException($"{sourcePath} is the input and also a file this split writes ({f} in {outDir}); nothing written: split into another folder");
            foreach (string f in earlier)
                if (Path.GetFullPath(Path.Combine(outDir, f)) == src)
                    throw new ArgumentException($"{sourcePath} is a split file of the earlier split in {outDir} (its manifest.json lists {f}); re-splitting it into the same folder would replace or remove it; nothing written: split into another folder");
        }

        Directory.CreateDirectory(outDir);
        var manifest = new SplitManifest
        {
            Seed = o.Seed, Stratify = o.Stratify, Ratios = o.Ratios, Counts = o.Counts,
            GroupNearDuplicates = o.GroupNearDuplicates, Rows = rows.Count,
            Unused = result.Assignment.Count(a => a < 0),
        };
        if (sourcePath != null) manifest.Source = new SplitFile { File = sourcePath, Sha256 = Sha256Of(sourcePath), Rows = rows.Count };
        var groupSizes = result.Group.GroupBy(g => g).Where(g => g.Count() > 1).ToList();
        manifest.NearDuplicateGroups = groupSizes.Count;
        manifest.RowsInNearDuplicateGroups = groupSizes.Sum(g => g.Count());

        string staging = Path.Combine(outDir, $".split-tmp-{Environment.ProcessId}");
        PartialFiles.Register(staging);
        try
        {
            if (Directory.Exists(staging)) Directory.Delete(staging, recursive: true);
            Directory.CreateDirectory(staging);
            for (int s = 0; s < result.Names.Count; s++)
            {
                string file = newFiles[s];
                string path = Path.Combine(staging, file);
                var idx = result.Rows(s).ToList();
                writeJsonl(path, idx.Select(i => rows[i].Fields));
                var labels = new SortedDictionary<string, long>(StringComparer.Ordinal);
                if (o.Stratify != null)
                    foreach (int i in idx) { string l = TextOf(rows[i], o.Stratify) ?? ""; labels[l] = labels.GetValueOrDefault(l) + 1; }
                manifest.Splits[result.Names[s]] = new SplitFile { File = file, Sha256 = Sha256Of(path), Rows = idx.Count, Labels = o.Stratify != null ? labels : null };
            }
            string stagedManifest = Path.Combine(staging, "manifest.json");
            var stale = earlier.Where(f => !newFiles.Contains(f) && File.Exists(Path.Combine(outDir, f))).ToList();
            if (stale.Count > 0) manifest.RemovedStale = stale;
            var lookalikes = CommonSplitNames.Select(n => n + extension)
                .Where(f => !newFiles.Contains(f) && !earlier.Contains(f) && File.Exists(Path.Combine(outDir, f))
                    && (sourcePath == null || Path.GetFullPath(Path.Combine(outDir, f)) != Path.GetFullPath(sourcePath))).ToList();
            if (lookalikes.Count > 0) manifest.UnlistedSplitFiles = lookalikes;
            File.WriteAllText(stagedManifest, JsonSerializer.Serialize(manifest, CleaningReport.JsonOut) + "\n");

            // Everything is written: move into place (renames within one folder), then drop the stale files.
            foreach (string f in newFiles) File.Move(Path.Combine(staging, f), Path.Combine(outDir, f), overwrite: true);
            foreach (string f in stale) File.Delete(Path.Combine(outDir, f));
            File.Move(stagedManifest, manifestPath, overwrite: true);
        }
        finally
        {
            try { if (Directory.Exists(staging)) Directory.Delete(staging, recursive: true); } catch (IOException) { }
            PartialFiles.Unregister(staging);
        }
        return manifest;
    }

    // Names a split file usually has, for the warning about files beside a split that its manifest does not list.
    private static readonly string[] CommonSplitNames = ["train", "validation", "valid", "val", "dev", "test"];

    // The split files an earlier manifest.json in the folder lists (none when there is no readable one).
    private static List<string> ReadEarlierSplitFiles(string manifestPath)
    {
        if (!File.Exists(manifestPath)) return [];
        try
        {
            var m = JsonSerializer.Deserialize<SplitManifest>(File.ReadAllText(manifestPath), CleaningReport.JsonOut);
            return m?.Splits.Values.Select(f => f.File).Where(f => f.Length > 0 && Path.GetFileName(f) == f).ToList() ?? [];
        }
        catch (JsonException) { return []; }
    }

    /// <summary>Lower-case hex SHA-256 of a file.</summary>
    public static string Sha256Of(string path)
    {
        using var f = File.OpenRead(path);
        return Convert.ToHexStringLower(SHA256.HashData(f));
    }
}

/// <summary>manifest.json: what was split, how, and the hash of every file written, so a run can prove its data.</summary>
public sealed class SplitManifest
{
    /// <summary>The input file, its hash and rows.</summary>
    public SplitFile? Source { get; set; }

    /// <summary>Input rows.</summary>
    public int Rows { get; set; }

    /// <summary>Rows left out (counts summing below the input).</summary>
    public int Unused { get; set; }

    /// <summary>Shuffle seed.</summary>
    public int Seed { get; set; }

    /// <summary>Stratification field.</summary>
    public string? Stratify { get; set; }

    /// <summary>Ratios asked for.</summary>
    public List<double>? Ratios { get; set; }

    /// <summary>Counts asked for.</summary>
    public List<int>? Counts { get; set; }

    /// <summary>Near-duplicate grouping settings, when used.</summary>
    public NearDuplicateOptions? GroupNearDuplicates { get; set; }

    /// <summary>Near-duplicate clusters of two or more rows.</summary>
    public int NearDuplicateGroups { get; set; }

    /// <summary>Rows inside such clusters.</summary>
    public int RowsInNearDuplicateGroups { get; set; }

    /// <summary>Per split: file, hash, rows, labels.</summary>
    public Dictionary<string, SplitFile> Splits { get; set; } = [];

    /// <summary>Split files of the earlier split in the folder that this split does not write, removed.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public List<string>? RemovedStale { get; set; }

    /// <summary>Files in the folder named like splits (validation.jsonl, ...) that no manifest lists: kept, but not part of this split.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public List<string>? UnlistedSplitFiles { get; set; }
}

/// <summary>One file of a split (or the source).</summary>
public sealed class SplitFile
{
    /// <summary>File name (relative to the manifest for splits).</summary>
    public string File { get; set; } = "";

    /// <summary>Lower-case hex SHA-256 of the file's bytes.</summary>
    public string Sha256 { get; set; } = "";

    /// <summary>Rows.</summary>
    public int Rows { get; set; }

    /// <summary>Rows per label.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public SortedDictionary<string, long>? Labels { get; set; }
}
