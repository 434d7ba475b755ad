// `data import` as a library call: pick the reader for a format, parse emails, map columns, write JSONL, count what was skipped.
using System.Diagnostics;
using System.Text.Json.Nodes;

namespace TaskLM.Data.Corpus;

/// <summary>Input formats <see cref="DataImport"/> reads.</summary>
public enum InputFormat
{
    /// <summary>Chosen from the path: folder with label subfolders → folder, folder of files → txt, else by extension.</summary>
    Auto,
    /// <summary>Plain text, one document per file (a file or a folder of files).</summary>
    Txt,
    /// <summary>Plain text, one document per non-blank line.</summary>
    Lines,
    /// <summary>Folder of subfolders, the subfolder's name is the label.</summary>
    Folder,
    Jsonl,
    Csv,
    Tsv,
    Parquet,
    /// <summary>Raw RFC 822 emails, one per file (a file or a folder).</summary>
    Email,
    /// <summary>HTML pages, one per file, converted to text.</summary>
    Html,
}

/// <summary>Everything an import needs besides the input path.</summary>
public sealed record ImportOptions
{
    public InputFormat Format { get; init; } = InputFormat.Auto;
    public OnError OnError { get; init; } = OnError.Fail;
    public ColumnMap Columns { get; init; } = new();
    /// <summary>Text encoding of text/CSV/HTML input (default UTF-8; a BOM wins).</summary>
    public string? Encoding { get; init; }
    /// <summary>CSV delimiter; null sniffs it (csv) or uses tab (tsv).</summary>
    public string? Delimiter { get; init; }
    /// <summary>Parts of an email that make its <c>text</c>.</summary>
    public EmailParts EmailParts { get; init; } = EmailParts.Subject | EmailParts.Body;
    /// <summary>In row formats (JSONL, CSV, Parquet), a column holding a raw email to parse (its fields are added
    /// to the row; an <c>encoding</c> column, if present, says how its characters map to bytes).</summary>
    public string? EmailField { get; init; }
    /// <summary>For folder input: how each file is read (Txt, Email or Html; Auto sniffs emails).</summary>
    public InputFormat FileFormat { get; init; } = InputFormat.Auto;
    /// <summary>For folder input: a file-name pattern files must match (<c>*.txt</c>); null takes every file.</summary>
    public string? Include { get; init; }
    /// <summary>Write an empty output for an input with no rows (an empty file, a folder with no files) instead
    /// of failing: an empty input is almost always a mistake (a wrong path, a cut download).</summary>
    public bool AllowEmpty { get; init; }
}

/// <summary>What an import did.</summary>
public sealed record ImportResult(string Input, InputFormat Format, string Output, long Rows, long Skipped,
    IReadOnlyList<DataFormatException> SkippedListed, IReadOnlyList<string> Columns, double Seconds);

/// <summary>Reads any supported input into rows, lazily (bounded memory), and writes them as JSONL.</summary>
public static class DataImport
{
    /// <summary>The format <see cref="InputFormat.Auto"/> resolves to for <paramref name="path"/>.</summary>
    public static InputFormat Detect(string path)
    {
        if (Directory.Exists(path))
        {
            bool hasSubdirs = Directory.EnumerateDirectories(path).Any(d => !Path.GetFileName(d).StartsWith('.'));
            bool hasFiles = Directory.EnumerateFiles(path).Any(f => !Path.GetFileName(f).StartsWith('.'));
            if (hasSubdirs && !hasFiles) return InputFormat.Folder;
            var first = TextFiles.ListFiles(path).Select(f => f.File).FirstOrDefault();
            return first == null ? InputFormat.Txt : DetectFile(first, InputFormat.Txt);
        }
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: no such file or folder");
        return DetectFile(path, InputFormat.Lines);
    }

    /// <summary>The format of one file by its extension (a .gz suffix allowed); a file that starts like an email is
    /// <see cref="InputFormat.Email"/>, any other is <paramref name="textDefault"/>.</summary>
    public static InputFormat DetectFile(string path, InputFormat textDefault)
    {
        var name = path.EndsWith(".gz", StringComparison.OrdinalIgnoreCase) ? path[..^3] : path;
        switch (Path.GetExtension(name).ToLowerInvariant())
        {
            case ".jsonl" or ".ndjson" or ".json": return InputFormat.Jsonl;
            case ".csv": return InputFormat.Csv;
            case ".tsv" or ".tab": return InputFormat.Tsv;
            case ".parquet": return InputFormat.Parquet;
            case ".eml" or ".msg": return InputFormat.Email;
            case ".html" or ".htm" or ".xhtml": return InputFormat.Html;
        }
        return LooksLikeEmail(path) ? InputFormat.Email : textDefault;
    }

    /// <summary>True when a file starts like an RFC 822 message (an mbox "From " line or a header field line).</summary>
    public static bool LooksLikeEmail(string path)
    {
        try
        {
            using var r = new StreamReader(path);
            var line = r.ReadLine();
            if (line == null) return false;
            if (line.StartsWith("From ", StringComparison.Ordinal)) return true;
            int colon = line.IndexOf(':');
            return colon > 0 && line[..colon].All(c => char.IsAsciiLetterOrDigit(c) || c == '-')
                && line[..colon] is var name && (name.Equals("Return-Path", StringComparison.OrdinalIgnoreCase) || name.Equals("Received", StringComparison.OrdinalIgnoreCase)
                    || name.Equals("From", StringComparison.OrdinalIgnoreCase) || name.Equals("Delivered-To", StringComparison.OrdinalIgnoreCase)
                    || name.Equals("Message-ID", StringComparison.OrdinalIgnoreCase) || name.Equals("X-Original-To", StringComparison.OrdinalIgnoreCase)
                    || name.Equals("MIME-Version", StringComparison.OrdinalIgnoreCase) || name.Equals("Date", StringComparison.OrdinalIgnoreCase));
        }
        catch (IOException) { return false; }
    }

    /// <summary>The rows of <paramref name="input"/> after email parsing and column mapping, lazily. Malformed rows
    /// go to <paramref name="errors"/> (which throws in fail mode).</summary>
    public static IEnumerable<DataRow> Read(string input, ImportOptions options, RowErrors errors)
    {
        var format = options.Format == InputFormat.Auto ? Detect(input) : options.Format;
        IEnumerable<DataRow> rows = format switch
        {
            InputFormat.Txt => TextFiles.ReadFiles(input, errors, options.Encoding, options.Include),
            InputFormat.Lines => TextFiles.ReadLines(input, errors, options.Encoding),
            InputFormat.Folder => TextFiles.ReadLabelledFolder(input, FileParser(input, options), errors, options.Encoding, options.Include),
            InputFormat.Jsonl => JsonlFile.Read(input, errors),
            InputFormat.Csv => CsvFile.Read(input, options.Delimiter, errors, options.Encoding),
            InputFormat.Tsv => CsvFile.Read(input, options.Delimiter ?? "\t", errors, options.Encoding, quoting: false),
            InputFormat.Parquet => ParquetFile.Read(input),
            InputFormat.Email => EmailReader.ReadFiles(input, options.EmailParts, errors, options.Include),
            InputFormat.Html => HtmlText.ReadFiles(input, errors, options.Encoding, options.Include),
            _ => throw new ArgumentOutOfRangeException(nameof(options), format, "unknown format"),
        };
        if (options.EmailField != null) rows = ParseEmailField(rows, options.EmailField, options.EmailParts, errors);
        return options.Columns.Apply(rows, errors);
    }

    /// <summary>Imports <paramref name="input"/> into the JSONL file <paramref name="output"/> (gzip'd when it ends
    /// in .gz). <paramref name="progress"/> is called every 1,000 rows with the rows written so far.</summary>
    public static ImportResult Run(string input, string output, ImportOptions options, Action<long>? progress = null)
    {
        var sw = Stopwatch.StartNew();
        var format = options.Format == InputFormat.Auto ? Detect(input) : options.Format;
        var errors = new RowErrors(options.OnError);
        var columns = new List<string>();
        long n = 0;
        IEnumerable<JsonObject> Rows()
        {
            foreach (var row in Read(input, options with { Format = format }, errors))
            {
                if (n == 0) columns.AddRange(row.Fields.Select(kv => kv.Key));
                n++;
                if (progress != null && n % 1000 == 0) progress(n);
                yield return row.Fields;
            }
            // Thrown inside the write, so the output's temporary file is removed and an existing output kept.
            if (n == 0 && !options.AllowEmpty) throw EmptyInput(input, errors.Skipped);
        }
        JsonlFile.Write(output, Rows());
        progress?.Invoke(n);
        return new ImportResult(input, format, output, n, errors.Skipped, errors.Listed, columns, sw.Elapsed.TotalSeconds);
    }

    /// <summary>The error for an input that yielded no rows: says why (0 bytes, no files, every row skipped) and
    /// how to accept it (<c>--allow-empty</c>).</summary>
    public static DataFormatException EmptyInput(string input, long skipped = 0)
    {
        string why = skipped > 0 ? $"all {skipped:N0} rows were malformed and skipped"
            : Directory.Exists(input) ? (TextFiles.ListFiles(input).Any() ? "its files hold no rows" : "the folder has no files (hidden files are skipped)")
            : File.Exists(input) && new FileInfo(input).Length == 0 ? "the file is empty (0 bytes)"
            : "it holds no rows (only blank lines or a header)";
        return new DataFormatException(input, 0, $"no rows: {why}; nothing written (pass --allow-empty to write an empty output)");
    }

    static Func<string, long, JsonObject>? FileParser(string root, ImportOptions options)
    {
        var kind = options.FileFormat;
        if (kind == InputFormat.Auto)
        {
            var first = Directory.EnumerateDirectories(root).SelectMany(d => TextFiles.ListFiles(d, options.Include)).Select(f => f.File).FirstOrDefault();
            kind = first == null ? InputFormat.Txt : DetectFile(first, InputFormat.Txt);
        }
        return kind switch
        {
            InputFormat.Email => (file, _) => EmailReader.ReadFile(file, options.EmailParts),
            InputFormat.Html => (file, _) => HtmlText.ReadFile(file, options.Encoding),
            InputFormat.Txt or InputFormat.Lines => null,
            _ => throw new ArgumentException($"a folder's files can be read as txt, email or html, not {kind.ToString().ToLowerInvariant()}"),
        };
    }

    static IEnumerable<DataRow> ParseEmailField(IEnumerable<DataRow> rows, string field, EmailParts parts, RowErrors errors)
    {
        foreach (var row in rows)
        {
            JsonObject email;
            try
            {
                if (row.Fields[field] is not JsonValue v || v.GetValueKind() != System.Text.Json.JsonValueKind.String)
                    throw new DataFormatException(row.Source, row.Line, $"no email text in column '{field}'; the columns are: {string.Join(", ", row.Fields.Select(kv => kv.Key))}");
                var enc = row.Fields["encoding"] is JsonValue e && e.GetValueKind() == System.Text.Json.JsonValueKind.String ? e.GetValue<string>() : "utf-8";
                email = EmailReader.ParseText(v.GetValue<string>(), enc, row.Source, row.Line, parts);
            }
            catch (DataFormatException e) { errors.Report(e); continue; }
            var fields = new JsonObject();
            foreach (var (k, val) in row.Fields)
                if (k != field) fields[k] = val?.DeepClone();
            foreach (var (k, val) in email) fields[k] = val?.DeepClone();
            yield return row with { Fields = fields };
        }
    }
}
