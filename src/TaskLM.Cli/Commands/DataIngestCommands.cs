// `tasklm data list` (the shipped corpora) and `tasklm data import` (any supported input to JSONL).
using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using Spectre.Console;
using TaskLM.Data.Corpus;

namespace TaskLM.Cli.Commands;

/// <summary>Builds the list and import verbs of <c>tasklm data</c>; the work is in <see cref="DataImport"/>
/// and <see cref="CorpusCatalog"/>.</summary>
public static class DataIngestCommands
{
    public static IEnumerable<Command> Create() => [List(), Import()];

    static Command List()
    {
        var json = Global.JsonOption();
        var dataDir = Global.DataDirOption();
        var cmd = new Command("list", "Show the shipped corpora: rows, size on disk, task they serve");
        cmd.Options.Add(json);
        cmd.Options.Add(dataDir);
        cmd.SetAction(p =>
        {
            var cat = CorpusCatalog.Load(p.GetValue(dataDir));
            var items = cat.Corpora.Select(c =>
            {
                var path = cat.PathOf(c);
                long? bytes = File.Exists(path) ? new FileInfo(path).Length : null;
                return (c, path, bytes);
            }).ToList();
            if (p.GetValue(json))
            {
                var arr = new JsonArray(items.Select(i => (JsonNode?)new JsonObject
                {
                    ["name"] = i.c.Name, ["rows"] = i.c.Rows, ["bytes"] = i.bytes, ["task"] = i.c.Task,
                    ["path"] = i.path, ["description"] = i.c.Description,
                }).ToArray());
                Console.WriteLine(new JsonObject { ["data_dir"] = cat.DataDir, ["corpora"] = arr }.ToJsonString(Global.JsonOut));
                return 0;
            }
            var table = new Table().AddColumns("corpus", "rows", "size", "task", "description");
            foreach (var (c, _, bytes) in items)
                table.AddRow(Markup.Escape(c.Name), c.Rows.ToString("N0"), bytes is long b ? $"{b / 1e6:F1} MB" : "[red]missing[/]",
                    Markup.Escape(c.Task), Markup.Escape(c.Description));
            AnsiConsole.Write(table);
            AnsiConsole.MarkupLine($"[grey]{Markup.Escape(cat.DataDir)}[/]");
            return 0;
        });
        return cmd;
    }

    static Command Import()
    {
        var input = new Argument<string>("input") { Description = "File or folder to read" };
        var format = new Option<string>("--format") { Description = "auto|txt|lines|folder|jsonl|csv|tsv|parquet|email|html", DefaultValueFactory = _ => "auto" };
        var output = new Option<string>("--out") { Description = "Output JSONL file (.jsonl, or .jsonl.gz for gzip)", Required = true };
        var onError = new Option<string>("--on-error") { Description = "fail (stop at the first malformed row) or skip (count and list it)", DefaultValueFactory = _ => "fail" };
        var encoding = new Option<string?>("--encoding") { Description = "Text encoding of text/CSV/HTML input (default utf-8; a BOM wins)" };
        var delimiter = new Option<string?>("--delimiter") { Description = "CSV delimiter (default: sniffed among , ; tab |)" };
        var emailParts = new Option<string>("--email-parts") { Description = "Which parts of an email make `text`: comma list of subject, body, headers", DefaultValueFactory = _ => "subject,body" };
        var emailField = new Option<string?>("--email-field") { Description = "In JSONL/CSV/Parquet input, a column holding a raw email to parse (e.g. raw)" };
        var fileFormat = new Option<string>("--file-format") { Description = "For folder input: read each file as auto|txt|email|html", DefaultValueFactory = _ => "auto" };
        var include = new Option<string?>("--include") { Description = "For folder input: only files whose name matches this pattern (e.g. *.txt)" };
        var json = Global.JsonOption();
        var cols = new (string Role, Option<string?> Opt)[]
        {
            ("text", new("--text-column") { Description = "Column for `text`" }),
            ("text_pair", new("--text-pair-column") { Description = "Column for `text_pair` (second text of a pair)" }),
            ("label", new("--label-column") { Description = "Column for `label`" }),
            ("tokens", new("--tokens-column") { Description = "Column for `tokens` (list, or space-separated string)" }),
            ("tags", new("--tags-column") { Description = "Column for `tags` (one per token)" }),
            ("question", new("--question-column") { Description = "Column for `question` (QA)" }),
            ("context", new("--context-column") { Description = "Column for `context` (QA)" }),
            ("answers", new("--answers-column") { Description = "Column for `answers` (QA: SQuAD object, string or list; located in context)" }),
            ("prompt", new("--prompt-column") { Description = "Column for `prompt` (generation)" }),
            ("completion", new("--completion-column") { Description = "Column for `completion` (generation)" }),
        };
        var allowEmpty = new Option<bool>("--allow-empty") { Description = "Write an empty output when the input has no rows (default: an error)" };
        var keep = new Option<string[]>("--keep-column") { Description = "Also copy this column unchanged (repeatable)", AllowMultipleArgumentsPerToken = true };

        var cmd = new Command("import", "Read text, folders, JSONL, CSV/TSV, Parquet, emails or HTML into a JSONL file, mapping columns to task roles");
        cmd.Arguments.Add(input);
        foreach (var o in new Option[] { format, output, onError, encoding, delimiter, emailParts, emailField, fileFormat, include, json, keep, allowEmpty }) cmd.Options.Add(o);
        foreach (var (_, o) in cols) cmd.Options.Add(o);
        cmd.SetAction(p =>
        {
            string Col(string role) => p.GetValue(cols.First(c => c.Role == role).Opt)!;
            var options = new ImportOptions
            {
                Format = ParseFormat(p.GetValue(format)!, "--format"),
                FileFormat = ParseFormat(p.GetValue(fileFormat)!, "--file-format"),
                OnError = p.GetValue(onError) switch
                {
                    "fail" => OnError.Fail,
                    "skip" => OnError.Skip,
                    var v => throw new ArgumentException($"--on-error must be fail or skip, not '{v}'"),
                },
                Encoding = CheckedEncoding(p.GetValue(encoding)),
                Delimiter = p.GetValue(delimiter) is string d ? (d == "\\t" || d == "tab" ? "\t" : d) : null,
                EmailParts = ParseParts(p.GetValue(emailParts)!),
                EmailField = p.GetValue(emailField),
                Include = p.GetValue(include),
                AllowEmpty = p.GetValue(allowEmpty),
                Columns = new ColumnMap
                {
                    Text = Col("text"), TextPair = Col("text_pair"), Label = Col("label"), Tokens = Col("tokens"), Tags = Col("tags"),
                    Question = Col("question"), Context = Col("context"), Answers = Col("answers"), Prompt = Col("prompt"), Completion = Col("completion"),
                    Keep = p.GetValue(keep) ?? [],
                },
            };
            var inPath = p.GetValue(input)!;
            var outPath = p.GetValue(output)!;
            bool asJson = p.GetValue(json);
            ImportResult result = null!;
            if (asJson || Console.IsOutputRedirected)
                result = DataImport.Run(inPath, outPath, options);
            else
                AnsiConsole.Status().Start($"importing {Markup.Escape(inPath)}", ctx =>
                {
                    var t0 = DateTime.UtcNow;
                    result = DataImport.Run(inPath, outPath, options, n =>
                        ctx.Status($"importing {Markup.Escape(inPath)}: {n:N0} rows ({n / Math.Max(1e-3, (DateTime.UtcNow - t0).TotalSeconds):N0} rows/s)"));
                });
            var report = ReportJson(result);
            var reportPath = ReportPath(outPath);
            File.WriteAllText(reportPath, report.ToJsonString(Global.JsonOut));
            if (asJson)
            {
                Console.WriteLine(report.ToJsonString(Global.JsonOut));
                return 0;
            }
            AnsiConsole.MarkupLine($"[green]{result.Rows:N0} rows[/] from {Markup.Escape(result.Input)} ({result.Format.ToString().ToLowerInvariant()}) → {Markup.Escape(result.Output)} in {result.Seconds:F1} s");
            AnsiConsole.MarkupLine($"columns: {Markup.Escape(string.Join(", ", result.Columns))}");
            if (result.Skipped > 0)
            {
                AnsiConsole.MarkupLine($"[yellow]{result.Skipped:N0} malformed rows skipped[/] (first {result.SkippedListed.Count} listed in {Markup.Escape(reportPath)}):");
                foreach (var e in result.SkippedListed.Take(10)) AnsiConsole.MarkupLine($"  [yellow]{Markup.Escape(e.Message)}[/]");
            }
            AnsiConsole.MarkupLine($"[grey]report: {Markup.Escape(reportPath)}[/]");
            return 0;
        });
        return cmd;
    }

    /// <summary>The import's machine-readable report (also written beside the output).</summary>
    static JsonObject ReportJson(ImportResult r) => new()
    {
        ["input"] = r.Input,
        ["format"] = r.Format.ToString().ToLowerInvariant(),
        ["output"] = r.Output,
        ["rows"] = r.Rows,
        ["skipped"] = r.Skipped,
        ["skipped_rows"] = new JsonArray(r.SkippedListed.Select(e => (JsonNode?)new JsonObject { ["file"] = e.File, ["line"] = e.Line, ["error"] = e.Problem }).ToArray()),
        ["columns"] = new JsonArray(r.Columns.Select(c => (JsonNode?)c).ToArray()),
        ["seconds"] = Math.Round(r.Seconds, 3),
    };

    static string ReportPath(string outPath)
    {
        var p = outPath;
        foreach (var ext in new[] { ".gz", ".jsonl", ".json" })
            if (p.EndsWith(ext, StringComparison.OrdinalIgnoreCase)) p = p[..^ext.Length];
        return p + ".import-report.json";
    }

    static InputFormat ParseFormat(string s, string option) =>
        Enum.TryParse<InputFormat>(s, ignoreCase: true, out var f) && !int.TryParse(s, out _)
            ? f
            : throw new ArgumentException($"{option} must be one of {string.Join(", ", Enum.GetNames<InputFormat>().Select(n => n.ToLowerInvariant()))}; got '{s}'");

    static EmailParts ParseParts(string s)
    {
        EmailParts parts = 0;
        foreach (var part in s.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            parts |= part.ToLowerInvariant() switch
            {
                "subject" => EmailParts.Subject,
                "body" => EmailParts.Body,
                "headers" => EmailParts.Headers,
                _ => throw new ArgumentException($"--email-parts takes subject, body, headers; got '{part}'"),
            };
        return parts == 0 ? EmailParts.Subject | EmailParts.Body : parts;
    }

    /// <summary>--encoding is checked whatever the input format (a JSONL file, read as UTF-8, used to ignore a bad name).</summary>
    static string? CheckedEncoding(string? name)
    {
        if (name == null) return null;
        try { TextFiles.StrictEncoding(name); }
        catch (ArgumentException) { throw new ArgumentException($"--encoding '{name}' is not a known text encoding (utf-8, latin-1, windows-1252, utf-16, ...)"); }
        return name;
    }
}
