// The cleaning pipeline: transforms, length and label filters, exact and near-duplicate removal, with a report.
using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace TaskLM.Data.Corpus;

/// <summary>Cleans a stream of rows: the text column is transformed in place, then rows are filtered. Rows
/// stream through in chunks (per-row work in parallel, decisions in input order, so results do not depend on
/// thread timing); memory grows only with the dedup indexes (16 bytes per kept row, plus its MinHash
/// signature for near dedup). Every removal is counted in <see cref="Report"/> and passed to the
/// <c>onRemoved</c> callback.</summary>
public sealed class CleaningPipeline
{
    private const int ChunkSize = 512;

    private readonly CleaningOptions _o;
    private readonly MinHash? _minHash;
    private readonly (string Name, Func<string, string> Apply)[] _transforms;
    private readonly HashSet<string>? _allowed;
    private bool _ran;

    /// <summary>The report, filled in as rows stream through (complete once enumeration ends).</summary>
    public CleaningReport Report { get; } = new();

    /// <summary>A pipeline for the given settings.</summary>
    public CleaningPipeline(CleaningOptions options)
    {
        _o = options;
        options.Validate();
        if (options.NearDedup is { } nd) _minHash = new MinHash(nd.NumPerm, nd.Seed);
        var t = new List<(string, Func<string, string>)>();
        if (options.EmailHeaders) t.Add(("email_headers", s => CleaningText.StripEmailHeaders(s, options.EmailKeepSubject)));
        if (options.StripHtml) t.Add(("html", CleaningText.StripHtml));
        if (options.EmailQuotes) t.Add(("email_quotes", CleaningText.StripEmailQuotes));
        if (options.EmailSignatures) t.Add(("email_signature", CleaningText.StripEmailSignature));
        if (options.Nfkc) t.Add(("nfkc", CleaningText.Nfkc));
        if (options.MaskUrls) t.Add(("mask_urls", s => CleaningText.MaskUrls(s, options.UrlMask)));
        if (options.MaskEmails) t.Add(("mask_emails", s => CleaningText.MaskEmails(s, options.EmailMask)));
        if (options.MaskPhones) t.Add(("mask_phones", s => CleaningText.MaskPhones(s, options.PhoneMask)));
        if (options.Whitespace) t.Add(("whitespace", CleaningText.Whitespace));
        if (t.Count > 16) throw new InvalidOperationException("at most 16 transforms");
        _transforms = [.. t];
        if (options.Labels != null) _allowed = new HashSet<string>(options.Labels, StringComparer.Ordinal);

        foreach (var (name, _) in _transforms) Report.Steps.Add(new CleaningStepReport { Step = name, Kind = "transform" });
        foreach (string name in new[] { "missing_text", "length_chars", "length_tokens", "label", "exact_dedup", "near_dedup" })
            Report.Steps.Add(new CleaningStepReport { Step = name, Kind = "filter" });
        Report.Options = JsonSerializer.SerializeToElement(options, CleaningOptions.JsonOptions);
    }

    // Per-row results of the parallel phase.
    private struct Prepared
    {
        public string? Text;       // cleaned text; null when the field is missing
        public int OriginalLength;
        public ushort Changed;     // bit i: transform i changed the text
        public UInt128 ExactKey;   // hash of the normalised text
        public uint[]? Signature;  // MinHash signature (near dedup only)
        public int Tokens;         // token count (token filters only)
    }

    private sealed record KeptRef(string Where, string? Label);

    /// <summary>Cleans <paramref name="rows"/> lazily, yielding the kept rows (text field replaced) in input order.
    /// <paramref name="onRemoved"/> receives each removed row with the step name and the reason. A pipeline runs
    /// once. <see cref="CleaningOptions.TokenCounter"/> is called from several threads at once.</summary>
    public IEnumerable<DataRow> Run(IEnumerable<DataRow> rows, Action<DataRow, string, string>? onRemoved = null) => Run(rows, onRemoved, null);

    /// <summary>Like <see cref="Run(IEnumerable{DataRow}, Action{DataRow, string, string}?)"/>; <paramref name="source"/>
    /// names the input in the errors about the whole pass (no rows, every row removed, no allowed label).</summary>
    public IEnumerable<DataRow> Run(IEnumerable<DataRow> rows, Action<DataRow, string, string>? onRemoved, string? source)
    {
        string at = source != null ? source + ": " : "";
        // The report and dedup state belong to one pass: a second pass would double-count.
        if (_ran) throw new InvalidOperationException("a CleaningPipeline runs once; create a new one for another pass");
        _ran = true;
        var sw = Stopwatch.StartNew();
        var exact = new Dictionary<UInt128, KeptRef>();
        LshIndex? lsh = _o.NearDedup is { } nd ? new LshIndex(nd.NumPerm, nd.Threshold) : null;
        var lshRefs = new List<KeptRef>();
        string? labelColumn = _o.LabelColumn;
        bool first = true;
        var chunk = new List<DataRow>(ChunkSize);
        var prepared = new Prepared[ChunkSize];
        var parallel = new ParallelOptions { MaxDegreeOfParallelism = _o.Threads > 0 ? _o.Threads : Environment.ProcessorCount };
        if (labelColumn != null) Report.Labels = new LabelReport { Column = labelColumn };

        using var e = rows.GetEnumerator();
        while (true)
        {
            chunk.Clear();
            while (chunk.Count < ChunkSize && e.MoveNext()) chunk.Add(e.Current);
            if (chunk.Count == 0) break;
            if (first)
            {
                first = false;
                var f = chunk[0];
                if (!f.Fields.ContainsKey(_o.TextColumn))
                    throw new InvalidDataException($"{f.Source}:{f.Line}: no text column '{_o.TextColumn}'; the row has: {string.Join(", ", f.Fields.Select(kv => kv.Key))}");
                if (labelColumn != null && !f.Fields.ContainsKey(labelColumn))
                {
                    if (_allowed != null)
                        throw new InvalidDataException($"{f.Source}:{f.Line}: no label column '{labelColumn}'; the row has: {string.Join(", ", f.Fields.Select(kv => kv.Key))}");
                    Report.Labels!.Note = $"no label column '{labelColumn}' in the first row (it has: {string.Join(", ", f.Fields.Select(kv => kv.Key))}); label checks skipped";
                    labelColumn = null;
                }
            }

            Parallel.For(0, chunk.Count, parallel, i => prepared[i] = Prepare(chunk[i]));

            for (int i = 0; i < chunk.Count; i++)
            {
                var row = chunk[i];
                Prepared p = prepared[i];
                Report.InputRows++;
                string? label = labelColumn != null ? LabelOf(row, labelColumn) : null;
                if (labelColumn != null) Count(Report.Labels!.Before, label ?? "");
                Report.CharsIn += p.OriginalLength;
                for (int t = 0; t < _transforms.Length; t++)
                    if ((p.Changed & (1 << t)) != 0) RecordChange(t, row);

                string? reason = null, step = null;
                CleaningExample? ex = null;
                if (p.Text == null) { step = "missing_text"; reason = $"no '{_o.TextColumn}' value"; }
                else if (p.Text.Length < _o.MinChars) { step = "length_chars"; reason = $"shorter than {_o.MinChars} chars"; }
                else if (_o.MaxChars > 0 && p.Text.Length > _o.MaxChars) { step = "length_chars"; reason = $"longer than {_o.MaxChars} chars"; }
                else if (_o.MinTokens > 0 && p.Tokens < _o.MinTokens) { step = "length_tokens"; reason = $"fewer than {_o.MinTokens} tokens"; }
                else if (_o.MaxTokens > 0 && p.Tokens > _o.MaxTokens) { step = "length_tokens"; reason = $"more than {_o.MaxTokens} tokens"; }
                else if (labelColumn != null && label == null && _o.DropMissingLabels) { step = "label"; reason = "missing label"; Report.Labels!.Missing++; }
                else if (labelColumn != null && label != null && _allowed != null && !_allowed.Contains(label))
                {
                    step = "label"; reason = $"unknown label '{label}'"; Count(Report.Labels!.Unknown, label);
                }
                else if (_o.ExactDedup && exact.TryGetValue(p.ExactKey, out var dup))
                {
                    step = "exact_dedup"; reason = "exact duplicate";
                    ex = new CleaningExample { DuplicateOf = dup.Where };
                    if (labelColumn != null && dup.Label != label) Report.Labels!.ConflictingDuplicates++;
                }
                else if (lsh != null && p.Signature != null && lsh.FindFirst(p.Signature) is { Id: >= 0 } near)
                {
                    step = "near_dedup"; reason = $"near duplicate (Jaccard ≥ {_o.NearDedup!.Threshold})";
                    var kept = lshRefs[near.Id];
                    ex = new CleaningExample { DuplicateOf = kept.Where, Jaccard = near.Jaccard };
                    if (labelColumn != null && kept.Label != label) Report.Labels!.ConflictingDuplicates++;
                }

                if (step != null)
                {
                    var s = Report.Step(step);
                    s.Removed++;
                    Report.RemovedRows++;
                    Count(s.Reasons, reason!);
                    if (s.Examples.Count < _o.ExamplesPerStep)
                    {
                        ex ??= new CleaningExample();
                        ex.Source = row.Source; ex.Line = row.Line; ex.Reason = reason;
                        ex.Text = p.Text == null ? null : Excerpt(p.Text, 0);
                        s.Examples.Add(ex);
                    }
                    onRemoved?.Invoke(row, step, reason!);
                    continue;
                }

                var where = $"{row.Source}:{row.Line}";
                var keptRef = new KeptRef(where, label);
                if (_o.ExactDedup) exact[p.ExactKey] = keptRef;
                if (lsh != null && p.Signature != null) { lsh.Add(p.Signature); lshRefs.Add(keptRef); }
                if (labelColumn != null) Count(Report.Labels!.After, label ?? "");
                Report.OutputRows++;
                Report.CharsOut += p.Text!.Length;
                row.Fields[_o.TextColumn] = p.Text;
                yield return row;
            }
            Array.Clear(prepared, 0, chunk.Count);
        }

        Report.ElapsedSeconds = Math.Round(sw.Elapsed.TotalSeconds, 3);
        // Thrown inside the enumeration, so a writer consuming it discards its temporary file: nothing is replaced.
        if (_allowed != null && labelColumn != null && Report.InputRows > 0 && !Report.Labels!.Before.Keys.Any(_allowed.Contains))
            throw new InvalidDataException(at +
                $"none of the allowed labels ({string.Join(", ", _allowed.Order(StringComparer.Ordinal))}) occurs in column '{labelColumn}'; " +
                $"it holds: {string.Join(", ", Report.Labels.Before.OrderByDescending(kv => kv.Value).Take(10).Select(kv => $"{(kv.Key.Length == 0 ? "(missing)" : kv.Key)} {kv.Value:N0}"))}; nothing written");
        if (Report.OutputRows == 0 && !_o.AllowEmpty)
            throw new InvalidDataException(at + (Report.InputRows == 0
                ? "no rows in the input; nothing written (pass --allow-empty to write an empty output)"
                : $"every one of the {Report.InputRows:N0} rows was removed ({string.Join("; ", Report.Steps.Where(st => st.Removed > 0).Select(st => $"{st.Step}: {st.Removed:N0}"))}); nothing written (pass --allow-empty to write an empty output)"));
        if (Report.Labels is { } lr && lr.After.Count > 0)
        {
            var counts = lr.After.Where(kv => kv.Key.Length > 0).Select(kv => kv.Value).ToList();
            if (counts.Count > 0) lr.ImbalanceRatio = Math.Round((double)counts.Max() / counts.Min(), 4);
        }
        Report.ElapsedSeconds = Math.Round(sw.Elapsed.TotalSeconds, 3);
    }

    private Prepared Prepare(DataRow row)
    {
        var p = new Prepared();
        string? text = TextOf(row, _o.TextColumn);
        if (text == null) return p;
        p.OriginalLength = text.Length;
        for (int t = 0; t < _transforms.Length; t++)
        {
            string next = _transforms[t].Apply(text);
            if (!ReferenceEquals(next, text) && next != text) p.Changed |= (ushort)(1 << t);
            text = next;
        }
        p.Text = text;
        if (_o.MinTokens > 0 || _o.MaxTokens > 0) p.Tokens = _o.TokenCounter?.Invoke(text) ?? CountWords(text);
        if (_o.ExactDedup) p.ExactKey = ExactKey(text);
        if (_minHash != null && text.Length >= _o.MinChars && text.Length > 0)
            p.Signature = _minHash.Signature(text, _o.NearDedup!.Shingles, _o.NearDedup.ShingleSize);
        return p;
    }

    /// <summary>The exact-dedup key: the first 128 bits of SHA-256 over the UTF-8 of the lower-cased text with
    /// whitespace runs collapsed to one space and trimmed.</summary>
    public static UInt128 ExactKey(string text)
    {
        Span<byte> hash = stackalloc byte[32];
        SHA256.HashData(Encoding.UTF8.GetBytes(CleaningText.LowerCollapsed(text)), hash);
        return new UInt128(BitConverter.ToUInt64(hash[..8]), BitConverter.ToUInt64(hash[8..16]));
    }

    private void RecordChange(int t, DataRow row)
    {
        var s = Report.Steps[t];
        s.RowsChanged++;
        if (s.Examples.Count >= _o.ExamplesPerStep) return;
        // Re-run the transforms up to this one on this row only, to show what this step did.
        string before = TextOf(row, _o.TextColumn)!;
        for (int k = 0; k < t; k++) before = _transforms[k].Apply(before);
        string after = _transforms[t].Apply(before);
        int d = 0;
        while (d < before.Length && d < after.Length && before[d] == after[d]) d++;
        int from = Math.Max(0, d - 40);
        s.Examples.Add(new CleaningExample { Source = row.Source, Line = row.Line, Before = Excerpt(before, from), After = Excerpt(after, from) });
    }

    private static string Excerpt(string s, int from, int length = 200) =>
        (from > 0 ? "…" : "") + (s.Length - from > length ? s.Substring(from, length) + "…" : s[from..]);

    private static string? TextOf(DataRow row, string column)
    {
        if (!row.Fields.TryGetPropertyValue(column, out var node) || node == null) return null;
        return node is JsonValue v && v.TryGetValue(out string? s) ? s : node.ToJsonString();
    }

    private static string? LabelOf(DataRow row, string column)
    {
        string? s = TextOf(row, column);
        return string.IsNullOrWhiteSpace(s) ? null : s;
    }

    private static int CountWords(string text)
    {
        int n = 0; bool inWord = false;
        foreach (char c in text)
        {
            if (char.IsWhiteSpace(c)) inWord = false;
            else if (!inWord) { inWord = true; n++; }
        }
        return n;
    }

    private static void Count(SortedDictionary<string, long> d, string key) => d[key] = d.GetValueOrDefault(key) + 1;
}
