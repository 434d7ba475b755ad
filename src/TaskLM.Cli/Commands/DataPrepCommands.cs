// `tasklm data clean | split | scrape`: cleaning with a report, seeded stratified splits with a manifest, polite scraping.
using System.CommandLine;
using System.IO.Compression;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using Spectre.Console;
using TaskLM.Data.Corpus;

namespace TaskLM.Cli.Commands;

public static class DataPrepCommands
{
    public static IEnumerable<Command> Create() => [Clean(), Split(), Scrape()];

    // ---- clean ----------------------------------------------------------------------------------------

    private static Command Clean()
    {
        var input = new Argument<string>("input") { Description = "JSONL file (.jsonl or .jsonl.gz)" };
        var output = new Option<string>("--out") { Description = "Cleaned JSONL file", Required = true };
        var report = new Option<string?>("--report") { Description = "Report file (default: clean-report.json beside --out)" };
        var removed = new Option<string?>("--removed") { Description = "Also write every removed row here, with _removed_step and _removed_reason" };
        var config = new Option<string?>("--config") { Description = "JSON file of cleaning options (snake_case keys, as a recipe's clean: block); flags override it" };
        var text = Global.TextColumnOption();
        var label = new Option<string?>("--label-column") { Description = "Label field (default label; 'none' = no labels)" };
        var labels = new Option<string?>("--labels") { Description = "Allowed labels, comma-separated; others are removed as unknown" };
        var mask = new Option<string?>("--mask") { Description = "Mask personal data: comma list of emails, urls, phones (or all)" };
        var skip = new Option<string?>("--skip") { Description = "Turn steps off, comma list of: email_headers, email_quotes, email_signature, html, nfkc, whitespace, exact_dedup, near_dedup" };
        var minChars = new Option<int?>("--min-chars") { Description = "Remove texts shorter than this (default 1)" };
        var maxChars = new Option<int?>("--max-chars") { Description = "Remove texts longer than this" };
        var minTokens = new Option<int?>("--min-tokens") { Description = "Remove texts with fewer whitespace tokens" };
        var maxTokens = new Option<int?>("--max-tokens") { Description = "Remove texts with more whitespace tokens" };
        var (threshold, shingles, shingleSize) = Global.NearDuplicateOptions();
        var numPerm = new Option<int?>("--num-perm") { Description = "MinHash signature length (default 128)" };
        var seed = Global.SeedOption("the MinHash permutations");
        var allowEmpty = new Option<bool>("--allow-empty") { Description = "Write an empty output when every row is removed (default: an error)" };
        var json = Global.JsonOption();

        var cmd = new Command("clean", "Clean a JSONL corpus: normalise, strip markup and e-mail boilerplate, mask, filter, dedup; writes clean-report.json");
        cmd.Arguments.Add(input);
        foreach (var o in new Option[] { output, report, removed, config, text, label, labels, mask, skip, minChars, maxChars, minTokens, maxTokens, threshold, shingles, shingleSize, numPerm, seed, allowEmpty, json })
            cmd.Options.Add(o);
        cmd.SetAction(p =>
        {
            string inPath = p.GetValue(input)!, outPath = p.GetValue(output)!;
            if (Path.GetFullPath(inPath) == Path.GetFullPath(outPath)) throw new ArgumentException($"--out {outPath} is the input file; write elsewhere");
            var o = p.GetValue(config) is { } cfg
                ? CleaningOptions.FromJson(File.ReadAllText(cfg), cfg)
                : new CleaningOptions();
            if (p.GetValue(text) is { } t) o.TextColumn = t;
            if (p.GetValue(label) is { } l) o.LabelColumn = l == "none" ? null : l;
            if (p.GetValue(labels) is { } ls) o.Labels = [.. ls.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)];
            foreach (string m in List(p.GetValue(mask)))
                switch (m)
                {
                    case "emails": o.MaskEmails = true; break;
                    case "urls": o.MaskUrls = true; break;
                    case "phones": o.MaskPhones = true; break;
                    case "all": o.MaskEmails = o.MaskUrls = o.MaskPhones = true; break;
                    default: throw new ArgumentException($"--mask: unknown '{m}'; use emails, urls, phones or all");
                }
            foreach (string s in List(p.GetValue(skip)))
                switch (s)
                {
                    case "email_headers": o.EmailHeaders = false; break;
                    case "email_quotes": o.EmailQuotes = false; break;
                    case "email_signature": o.EmailSignatures = false; break;
                    case "html": o.StripHtml = false; break;
                    case "nfkc": o.Nfkc = false; break;
                    case "whitespace": o.Whitespace = false; break;
                    case "exact_dedup": o.ExactDedup = false; break;
                    case "near_dedup": o.NearDedup = null; break;
                    default: throw new ArgumentException($"--skip: unknown step '{s}'");
                }
            if (p.GetValue(minChars) is { } a) o.MinChars = a;
            if (p.GetValue(maxChars) is { } b) o.MaxChars = b;
            if (p.GetValue(minTokens) is { } c) o.MinTokens = c;
            if (p.GetValue(maxTokens) is { } d) o.MaxTokens = d;
            if (p.GetValue(allowEmpty)) o.AllowEmpty = true;
            if (o.NearDedup != null) ApplyNear(o.NearDedup, p.GetValue(threshold), p.GetValue(shingles), p.GetValue(shingleSize), p.GetValue(numPerm), p.GetValue(seed));

            var pipeline = new CleaningPipeline(o);
            string reportPath = p.GetValue(report) ?? Path.Combine(Path.GetDirectoryName(Path.GetFullPath(outPath))!, "clean-report.json");
            string? removedPath = p.GetValue(removed);
            var removedRows = new List<JsonObject>();
            Action<DataRow, string, string>? onRemoved = removedPath == null ? null : (row, step, reason) =>
            {
                var copy = (JsonObject)row.Fields.DeepClone();
                copy["_removed_step"] = step; copy["_removed_reason"] = reason; copy["_source"] = $"{row.Source}:{row.Line}";
                removedRows.Add(copy);
            };
            DirectoryOf(outPath);
            var cleaned = pipeline.Run(JsonlFile.Read(inPath), onRemoved, inPath).Select(r => r.Fields);
            if (p.GetValue(json) || !AnsiConsole.Profile.Capabilities.Interactive) JsonlFile.Write(outPath, cleaned);
            else
                AnsiConsole.Status().Start($"cleaning {Markup.Escape(inPath)}", ctx =>
                    JsonlFile.Write(outPath, cleaned.Select((row, i) =>
                    {
                        if (i % 500 == 0) ctx.Status($"cleaning: {pipeline.Report.InputRows:N0} rows read, {i:N0} kept");
                        return row;
                    })));
            if (removedPath != null) JsonlFile.Write(removedPath, removedRows);
            DirectoryOf(reportPath);
            File.WriteAllText(reportPath, pipeline.Report.ToJson() + "\n");

            var r = pipeline.Report;
            if (p.GetValue(json)) { Console.WriteLine(r.ToJson()); return 0; }
            PrintCleanReport(r, outPath, reportPath);
            return 0;
        });
        return cmd;
    }

    private static void PrintCleanReport(CleaningReport r, string outPath, string reportPath)
    {
        var table = new Table().Title($"clean: {r.InputRows:N0} rows in, {r.OutputRows:N0} out, {r.RemovedRows:N0} removed ({r.ElapsedSeconds:0.##} s)");
        table.AddColumn("step").AddColumn("kind").AddColumn(new TableColumn("rows").RightAligned()).AddColumn("why / example");
        foreach (var s in r.Steps)
        {
            long n = s.Kind == "transform" ? s.RowsChanged : s.Removed;
            string why = s.Kind == "filter"
                ? string.Join("; ", s.Reasons.Select(kv => $"{kv.Key}: {kv.Value:N0}"))
                : s.Examples.FirstOrDefault() is { } ex ? $"e.g. line {ex.Line}" : "";
            if (s.Kind == "filter" && s.Examples.FirstOrDefault() is { DuplicateOf: { } dupOf } fx)
                why += $" (e.g. line {fx.Line} = line {dupOf[(dupOf.LastIndexOf(':') + 1)..]})";
            table.AddRow(Markup.Escape(s.Step), s.Kind, $"{n:N0}", Markup.Escape(Trim(why, 90)));
        }
        AnsiConsole.Write(table);
        if (r.Labels is { } lr)
        {
            if (lr.Note != null) AnsiConsole.MarkupLine($"[yellow]labels:[/] {Markup.Escape(lr.Note)}");
            else
            {
                var lt = new Table().Title($"labels ({Markup.Escape(lr.Column)})");
                lt.AddColumn("label").AddColumn(new TableColumn("before").RightAligned()).AddColumn(new TableColumn("after").RightAligned()).AddColumn(new TableColumn("share").RightAligned());
                long total = Math.Max(1, lr.After.Values.Sum());
                foreach (string k in lr.Before.Keys.Union(lr.After.Keys).Order(StringComparer.Ordinal))
                    lt.AddRow(Markup.Escape(k.Length == 0 ? "(missing)" : k), $"{lr.Before.GetValueOrDefault(k):N0}", $"{lr.After.GetValueOrDefault(k):N0}", $"{100.0 * lr.After.GetValueOrDefault(k) / total:0.0}%");
                AnsiConsole.Write(lt);
                AnsiConsole.MarkupLine($"imbalance ratio (largest/smallest class): {lr.ImbalanceRatio?.ToString("0.##") ?? "-"}; duplicates with a different label than the kept row: {lr.ConflictingDuplicates:N0}");
            }
        }
        AnsiConsole.MarkupLine($"wrote [green]{Markup.Escape(outPath)}[/] and [green]{Markup.Escape(reportPath)}[/]");
    }

    private static void ApplyNear(NearDuplicateOptions n, double? threshold, string? shingles, int? size, int? perm, int? seed)
    {
        if (threshold is { } t) n.Threshold = t;
        if (shingles is { } s)
            n.Shingles = s switch { "word" => ShingleKind.Word, "char" => ShingleKind.Char, _ => throw new ArgumentException($"--shingles: use word or char, not '{s}'") };
        if (size is { } z) n.ShingleSize = z;
        if (perm is { } pm) n.NumPerm = pm;
        if (seed is { } sd) n.Seed = sd;
    }

    // ---- split ----------------------------------------------------------------------------------------

    private static Command Split()
    {
        var input = new Argument<string>("input") { Description = "JSONL file (.jsonl or .jsonl.gz)" };
        var outDir = Global.OutOption("Folder for the split files and manifest.json", legacy: "--out-dir");
        var ratios = new Option<string?>("--ratios") { Description = "Fractions per split, e.g. 0.8,0.1,0.1 (train,validation,test) or 0.9,0.1 (train,test); default 0.8,0.1,0.1" };
        var counts = new Option<string?>("--counts") { Description = "Rows per split instead of ratios, e.g. 5000,500,500" };
        var names = new Option<string?>("--names") { Description = "Split names (default train,validation,test or train,test)" };
        var stratify = new Option<string?>("--stratify") { Description = "Field to stratify on (default label when present; 'none' = off)" };
        var seed = Global.SeedOption("the shuffle");
        var group = new Option<bool>("--group-near-duplicates") { Description = "Keep near-duplicate clusters (MinHash + LSH) inside one split" };
        var (threshold, shingles, shingleSize) = Global.NearDuplicateOptions();
        var text = Global.TextColumnOption();
        var allowEmpty = new Option<bool>("--allow-empty") { Description = "Write the split even when a split asked for comes out empty (default: an error)" };
        var json = Global.JsonOption();

        var cmd = new Command("split", "Split a JSONL corpus into train/validation/test: stratified, seeded, group-aware; writes manifest.json with hashes");
        cmd.Arguments.Add(input);
        outDir.AddTo(cmd);
        foreach (var o in new Option[] { ratios, counts, names, stratify, seed, group, threshold, shingles, shingleSize, text, allowEmpty, json }) cmd.Options.Add(o);
        cmd.SetAction(p =>
        {
            string inPath = p.GetValue(input)!, dir = outDir.Read(p)!;
            var o = new SplitOptions { Seed = p.GetValue(seed) ?? 42, TextColumn = p.GetValue(text) ?? "text" };
            if (p.GetValue(counts) is { } cs)
            {
                if (p.GetValue(ratios) != null) throw new ArgumentException("give --ratios or --counts, not both");
                o.Counts = [.. List(cs).Select(v => int.TryParse(v, out int i) ? i : throw new ArgumentException($"--counts: '{v}' is not a whole number"))];
                o.Ratios = null;
            }
            else
                o.Ratios = [.. List(p.GetValue(ratios) ?? "0.8,0.1,0.1").Select(v => double.TryParse(v, System.Globalization.CultureInfo.InvariantCulture, out double x) ? x : throw new ArgumentException($"--ratios: '{v}' is not a number"))];
            int k = o.Counts?.Count ?? o.Ratios!.Count;
            o.Names = p.GetValue(names) is { } ns ? [.. List(ns)] : k switch
            {
                3 => ["train", "validation", "test"], 2 => ["train", "test"], 1 => ["train"],
                _ => throw new ArgumentException($"{k} splits need --names"),
            };
            if (p.GetValue(group))
            {
                o.GroupNearDuplicates = new NearDuplicateOptions { Seed = o.Seed };
                ApplyNear(o.GroupNearDuplicates, p.GetValue(threshold), p.GetValue(shingles), p.GetValue(shingleSize), null, null);
            }

            var rows = JsonlFile.Read(inPath).ToList();
            if (rows.Count == 0) throw new InvalidDataException($"{inPath}: no rows");
            string? strat = p.GetValue(stratify);
            string? note = null;
            if (strat == "none") o.Stratify = null;
            else if (strat != null)
            {
                if (!rows[0].Fields.ContainsKey(strat))
                    throw new InvalidDataException($"{inPath}:{rows[0].Line}: no field '{strat}' to stratify on; the row has: {string.Join(", ", rows[0].Fields.Select(kv => kv.Key))}");
                o.Stratify = strat;
            }
            else if (!rows[0].Fields.ContainsKey("label")) { o.Stratify = null; note = "no 'label' field: split without stratification"; }
            if (o.GroupNearDuplicates != null && !rows[0].Fields.ContainsKey(o.TextColumn))
                throw new InvalidDataException($"{inPath}:{rows[0].Line}: no text field '{o.TextColumn}'; the row has: {string.Join(", ", rows[0].Fields.Select(kv => kv.Key))}");

            var result = DatasetSplitter.Assign(rows, o);
            if (DatasetSplitter.EmptySplitProblem(result, o) is { } emptyProblem)
            {
                if (!p.GetValue(allowEmpty)) throw new InvalidDataException($"{inPath}: {emptyProblem}");
                Console.Error.WriteLine($"warning: {emptyProblem.Replace("would be empty", "is empty").Replace("; nothing written (give more rows or fewer splits, or pass --allow-empty)", "")}");
            }
            var manifest = DatasetSplitter.Write(dir, rows, result, o, (path, r) => JsonlFile.Write(path, r), sourcePath: inPath);
            if (p.GetValue(json)) { Console.WriteLine(File.ReadAllText(Path.Combine(dir, "manifest.json"))); return 0; }

            if (note != null) AnsiConsole.MarkupLine($"[yellow]note:[/] {Markup.Escape(note)}");
            if (manifest.RemovedStale is { } stale)
                AnsiConsole.MarkupLine($"[yellow]removed[/] {Markup.Escape(string.Join(", ", stale))}: split files of the earlier split in this folder that this split does not write");
            if (manifest.UnlistedSplitFiles is { } unlisted)
                AnsiConsole.MarkupLine($"[yellow]note:[/] {Markup.Escape(string.Join(", ", unlisted))} in {Markup.Escape(dir)} {(unlisted.Count == 1 ? "is" : "are")} not part of this split (no manifest lists {(unlisted.Count == 1 ? "it" : "them")}); kept");
            var table = new Table().Title($"split of {manifest.Rows:N0} rows (seed {o.Seed}{(o.Stratify != null ? $", stratified by {Markup.Escape(o.Stratify)}" : "")})");
            table.AddColumn("split").AddColumn(new TableColumn("rows").RightAligned()).AddColumn("labels").AddColumn("sha256");
            foreach (var (name, f) in manifest.Splits)
                table.AddRow(Markup.Escape(name), $"{f.Rows:N0}", Markup.Escape(f.Labels == null ? "" : string.Join(", ", f.Labels.Select(kv => $"{(kv.Key.Length == 0 ? "(missing)" : kv.Key)} {kv.Value}"))), f.Sha256[..16] + "…");
            AnsiConsole.Write(table);
            if (o.GroupNearDuplicates != null)
                AnsiConsole.MarkupLine($"near-duplicate groups kept whole: {manifest.NearDuplicateGroups:N0} ({manifest.RowsInNearDuplicateGroups:N0} rows)");
            if (manifest.Unused > 0) AnsiConsole.MarkupLine($"[yellow]{manifest.Unused:N0} rows left out[/] (counts sum below the input)");
            AnsiConsole.MarkupLine($"wrote [green]{Markup.Escape(Path.Combine(dir, "manifest.json"))}[/]");
            return 0;
        });
        return cmd;
    }

    // ---- scrape ---------------------------------------------------------------------------------------

    private static Command Scrape()
    {
        var urls = new Argument<string[]>("urls") { Description = "Start URLs", Arity = ArgumentArity.ZeroOrMore };
        var sitemap = new Option<string[]>("--sitemap") { Description = "Sitemap URL whose pages to fetch (repeatable)" };
        var fromFile = new Option<string?>("--from-file") { Description = "File of start URLs, one per line (# comments)" };
        var output = new Option<string>("--out") { Description = "Pages JSONL: url, title, text, fetched_at", Required = true };
        var depth = new Option<int>("--depth") { Description = "Follow links this deep from each start URL (same domain)", DefaultValueFactory = _ => 0 };
        var allDomains = new Option<bool>("--all-domains") { Description = "Follow links to other hosts too" };
        var maxPages = new Option<int>("--max-pages") { Description = "Stop after this many pages", DefaultValueFactory = _ => 1000 };
        var delay = new Option<double>("--delay") { Description = "Seconds between requests to one host (robots.txt Crawl-delay wins when longer)", DefaultValueFactory = _ => 1.0 };
        var timeout = new Option<double>("--timeout") { Description = "Seconds per attempt", DefaultValueFactory = _ => 20 };
        var retries = new Option<int>("--retries") { Description = "Retries on network errors, timeouts, 408, 429, 5xx", DefaultValueFactory = _ => 3 };
        var retryDelay = new Option<double>("--retry-delay") { Description = "First retry delay in seconds (doubles each retry)", DefaultValueFactory = _ => 1.0 };
        var userAgent = new Option<string?>("--user-agent") { Description = "User-Agent (its first word picks the robots.txt group)" };
        var json = Global.JsonOption();

        var cmd = new Command("scrape", "Fetch web pages politely (robots.txt, rate limit, retries) and extract their main text to JSONL");
        cmd.Arguments.Add(urls);
        foreach (var o in new Option[] { sitemap, fromFile, output, depth, allDomains, maxPages, delay, timeout, retries, retryDelay, userAgent, json }) cmd.Options.Add(o);
        cmd.SetAction(async (p, ct) =>
        {
            var o = new ScrapeOptions
            {
                MaxDepth = p.GetValue(depth), SameDomain = !p.GetValue(allDomains), MaxPages = p.GetValue(maxPages),
                PerHostDelay = TimeSpan.FromSeconds(p.GetValue(delay)), Timeout = TimeSpan.FromSeconds(p.GetValue(timeout)),
                Retries = p.GetValue(retries), RetryDelay = TimeSpan.FromSeconds(p.GetValue(retryDelay)),
            };
            if (p.GetValue(userAgent) is { } ua) o.UserAgent = ua;
            using var scraper = new Scraper(o);
            var seeds = new List<string>(p.GetValue(urls) ?? []);
            if (p.GetValue(fromFile) is { } ff)
                seeds.AddRange(File.ReadLines(ff).Select(l => l.Trim()).Where(l => l.Length > 0 && !l.StartsWith('#')));
            foreach (string sm in p.GetValue(sitemap) ?? []) seeds.AddRange(await scraper.ReadSitemapAsync(sm, ct));
            if (seeds.Count == 0) throw new ArgumentException("no URLs: give URLs, --sitemap or --from-file");

            string outPath = p.GetValue(output)!;
            DirectoryOf(outPath);
            // Pages go to <out>.partial as they come (an interruption keeps them there) and replace --out only at
            // the end, and only when at least one page was fetched: a failed crawl never empties an earlier output.
            string partial = outPath + ".partial";
            using (var w = JsonlFile.CreateWriter(partial))
                await foreach (var page in scraper.CrawlAsync(seeds, ct))
                {
                    JsonlFile.WriteRow(w, page.ToJson());
                    if (!p.GetValue(json)) AnsiConsole.MarkupLine($"[green]fetched[/] {Markup.Escape(page.Url)} ({page.Text.Length:N0} chars)");
                }
            var r = scraper.Report;
            if (r.Fetched > 0) File.Move(partial, outPath, overwrite: true);
            else File.Delete(partial);
            string? nothing = r.Fetched > 0 ? null
                : $"no pages fetched ({r.Failed.Count} failed{(r.Failed.Count > 0 ? $", e.g. {r.Failed[0].Url}: {r.Failed[0].Reason}" : "")}; {r.DisallowedByRobots.Count} disallowed by robots.txt; {r.NotHtml.Count} not HTML); {outPath} not written";
            if (p.GetValue(json))
            {
                var j = new JsonObject
                {
                    ["fetched"] = r.Fetched, ["retries"] = r.Retries, ["left_over_at_limit"] = r.LeftOverAtLimit,
                    ["disallowed_by_robots"] = new JsonArray([.. r.DisallowedByRobots.Select(u => (JsonNode)u)]),
                    ["failed"] = new JsonArray([.. r.Failed.Select(f => (JsonNode)new JsonObject { ["url"] = f.Url, ["reason"] = f.Reason })]),
                    ["not_html"] = new JsonArray([.. r.NotHtml.Select(f => (JsonNode)new JsonObject { ["url"] = f.Url, ["content_type"] = f.ContentType })]),
                };
                Console.WriteLine(j.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
                if (nothing != null) { Console.Error.WriteLine($"error: {nothing}"); return 1; }
                return 0;
            }
            foreach (string u in r.DisallowedByRobots) AnsiConsole.MarkupLine($"[yellow]robots.txt disallows[/] {Markup.Escape(u)}");
            foreach (var (u, why) in r.Failed) AnsiConsole.MarkupLine($"[red]failed[/] {Markup.Escape(u)}: {Markup.Escape(why)}");
            foreach (var (u, type) in r.NotHtml) AnsiConsole.MarkupLine($"[yellow]not HTML[/] {Markup.Escape(u)} ({Markup.Escape(type)})");
            if (nothing != null) { Console.Error.WriteLine($"error: {nothing}"); return 1; }
            AnsiConsole.MarkupLine($"{r.Fetched:N0} pages to [green]{Markup.Escape(outPath)}[/]; {r.DisallowedByRobots.Count} disallowed by robots.txt, {r.Failed.Count} failed, {r.Retries} retries");
            return 0;
        });
        return cmd;
    }

    // ---- helpers --------------------------------------------------------------------------------------

    private static IEnumerable<string> List(string? s) =>
        s == null ? [] : s.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);

    private static string Trim(string s, int n) => s.Length <= n ? s : s[..(n - 1)] + "…";

    private static void DirectoryOf(string path)
    {
        string? d = Path.GetDirectoryName(Path.GetFullPath(path));
        if (d != null) Directory.CreateDirectory(d);
    }
}
