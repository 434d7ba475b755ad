// Cleaning benchmark: MB/s of text through the cleaning pipeline (transforms, exact dedup, MinHash/LSH), and split time.
// Usage: dotnet run -c Release --project bench/TaskLM.Bench.Data -- [file.jsonl[.gz] ...] [--text-column text] [--repeat 3]
// Default input: data/spam-assassin/*.jsonl.gz (the shipped corpus), found from the current folder upwards.
using System.Diagnostics;
using System.IO.Compression;
using System.Text;
using System.Text.Json.Nodes;
using TaskLM.Data.Corpus;

var files = new List<string>();
string textColumn = "text";
int repeat = 3;
for (int i = 0; i < args.Length; i++)
{
    if (args[i] == "--text-column") textColumn = args[++i];
    else if (args[i] == "--repeat") repeat = int.Parse(args[++i]);
    else files.Add(args[i]);
}
if (files.Count == 0)
{
    for (var dir = new DirectoryInfo(Environment.CurrentDirectory); dir != null; dir = dir.Parent)
    {
        string d = Path.Combine(dir.FullName, "data", "spam-assassin");
        if (Directory.Exists(d)) { files.AddRange(Directory.GetFiles(d, "*.jsonl.gz").Order()); break; }
    }
    if (files.Count == 0) { Console.Error.WriteLine("no input: pass a JSONL file or run inside the repo with data/spam-assassin/*.jsonl.gz"); return 1; }
}

// Load once (the reader is not what is measured here); keep the original texts to reset between runs.
var sw = Stopwatch.StartNew();
var rows = new List<DataRow>();
foreach (string f in files) rows.AddRange(ReadJsonl(f));
var texts = rows.Select(r => r.Fields[textColumn]?.GetValue<string>() ?? "").ToArray();
double mb = texts.Sum(t => (long)Encoding.UTF8.GetByteCount(t)) / 1e6;
Console.WriteLine($"input: {string.Join(", ", files.Select(Path.GetFileName))}: {rows.Count:N0} rows, {mb:F1} MB of text (UTF-8), loaded in {sw.Elapsed.TotalSeconds:F2} s");
Console.WriteLine($"machine: {Environment.ProcessorCount} logical cores, {System.Runtime.InteropServices.RuntimeInformation.OSDescription}, .NET {Environment.Version}");

// Each transform alone, one thread, over the raw texts: where the time goes.
(string, Func<string, string>)[] steps =
[
    ("email_headers", t => CleaningText.StripEmailHeaders(t)), ("html", CleaningText.StripHtml),
    ("email_quotes", CleaningText.StripEmailQuotes), ("email_signature", CleaningText.StripEmailSignature),
    ("nfkc", CleaningText.Nfkc), ("mask_urls", t => CleaningText.MaskUrls(t)), ("mask_emails", t => CleaningText.MaskEmails(t)),
    ("mask_phones", t => CleaningText.MaskPhones(t)), ("whitespace", CleaningText.Whitespace),
    ("exact key (SHA-256)", t => { CleaningPipeline.ExactKey(t); return t; }),
    ("word 5-shingles", t => { Shingler.Hashes(t, ShingleKind.Word, 5); return t; }),
    ("minhash 128 (shingles + signature)", t => { new MinHash(128, 42).Signature(t, ShingleKind.Word, 5); return t; }),
];
foreach (var (name, f) in steps)
{
    sw.Restart();
    foreach (string t in texts) f(t);
    Console.WriteLine($"  step {name,-36} {sw.Elapsed.TotalSeconds,6:F2} s  {mb / sw.Elapsed.TotalSeconds,7:F1} MB/s (1 thread, raw text)");
}

void Reset() { for (int i = 0; i < rows.Count; i++) rows[i].Fields[textColumn] = texts[i]; }

(string Name, Func<CleaningOptions> Make)[] configs =
[
    ("transforms only", () => new CleaningOptions { TextColumn = textColumn, ExactDedup = false, NearDedup = null }),
    ("+ exact dedup", () => new CleaningOptions { TextColumn = textColumn, NearDedup = null }),
    ("full (+ MinHash/LSH near dedup, 128 perms, word 5-shingles)", () => new CleaningOptions { TextColumn = textColumn }),
    ("full, 1 thread", () => new CleaningOptions { TextColumn = textColumn, Threads = 1 }),
];
foreach (var (name, make) in configs)
{
    var times = new List<double>();
    var cpu = new List<double>();
    CleaningReport? report = null;
    var proc = System.Diagnostics.Process.GetCurrentProcess();
    for (int r = 0; r < repeat; r++)
    {
        Reset();
        var p = new CleaningPipeline(make());
        proc.Refresh();
        var cpu0 = proc.TotalProcessorTime;
        sw.Restart();
        int kept = p.Run(rows).Count();
        times.Add(sw.Elapsed.TotalSeconds);
        proc.Refresh();
        cpu.Add((proc.TotalProcessorTime - cpu0).TotalSeconds);
        report = p.Report;
    }
    double best = times.Min();
    // CPU seconds too: on a shared machine wall time includes waiting for a core; MB per CPU-second does not.
    Console.WriteLine($"clean [{name}]: best {best:F2} s of {repeat} ({string.Join(", ", times.Select(t => t.ToString("F2")))}) = {mb / best:F1} MB/s wall, {mb / cpu.Min():F1} MB per CPU-second; kept {report!.OutputRows:N0}, exact dups {report.Step("exact_dedup").Removed:N0}, near dups {report.Step("near_dedup").Removed:N0}");
}

// Split of the cleaned corpus, stratified, with near-duplicate grouping (its own MinHash pass).
Reset();
var cleaned = new CleaningPipeline(new CleaningOptions { TextColumn = textColumn }).Run(rows).ToList();
sw.Restart();
var split = DatasetSplitter.Assign(cleaned, new SplitOptions { TextColumn = textColumn, GroupNearDuplicates = new NearDuplicateOptions() });
Console.WriteLine($"split 0.8/0.1/0.1 stratified, near-duplicate groups: {sw.Elapsed.TotalSeconds:F2} s for {cleaned.Count:N0} rows " +
                  $"({string.Join(", ", split.Names.Select((n, i) => $"{n} {split.Assignment.Count(a => a == i):N0}"))})");
return 0;

static IEnumerable<DataRow> ReadJsonl(string path)
{
    using Stream f = File.OpenRead(path);
    using Stream s = path.EndsWith(".gz", StringComparison.OrdinalIgnoreCase) ? new GZipStream(f, CompressionMode.Decompress) : f;
    using var reader = new StreamReader(s);
    long line = 0;
    string? text;
    while ((text = reader.ReadLine()) != null)
    {
        line++;
        if (text.Length > 0) yield return new DataRow((JsonObject)JsonNode.Parse(text)!, path, line);
    }
}
