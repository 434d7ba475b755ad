// CSV/TSV reader on CsvHelper: header row, quoted fields with embedded newlines, BOM, delimiter sniffing.
using System.Globalization;
using System.Text.Json.Nodes;
using CsvHelper;
using CsvHelper.Configuration;

namespace TaskLM.Data.Corpus;

/// <summary>Reads delimited text with a header row into rows keyed by the header's names (values as strings).
/// A record's Line is the line where it starts, so a quoted field that spans lines does not shift later
/// line numbers. A record whose field count differs from the header's, or with a stray quote, or with
/// undecodable bytes, is a malformed row.</summary>
public static class CsvFile
{
    /// <summary>Delimiters tried when sniffing, most common first.</summary>
    public static readonly string[] SniffedDelimiters = [",", ";", "\t", "|"];

    /// <summary>Reads <paramref name="path"/>. <paramref name="delimiter"/> null = sniff it from the first lines
    /// (comma, semicolon, tab or pipe); "\t" for TSV. <paramref name="quoting"/> false reads every quote as a
    /// plain character (TSV as IANA defines it: no quoting, fields cannot hold tabs or newlines).</summary>
    public static IEnumerable<DataRow> Read(string path, string? delimiter = null, RowErrors? errors = null, string? encoding = null, bool quoting = true)
    {
        using var reader = TextFiles.Open(path, encoding);
        var config = new CsvConfiguration(CultureInfo.InvariantCulture)
        {
            HasHeaderRecord = true,
            DetectDelimiter = delimiter == null,
            DetectDelimiterValues = SniffedDelimiters,
            Delimiter = delimiter ?? ",",
            // A bare quote inside an unquoted field: record it and report the row ourselves.
            BadDataFound = null,
            MissingFieldFound = null,
            IgnoreBlankLines = true,
            TrimOptions = TrimOptions.None,
            Mode = quoting ? CsvMode.RFC4180 : CsvMode.NoEscape,
        };
        string? badData = null;
        config.BadDataFound = args => badData ??= args.Field;
        using var csv = new CsvReader(reader, config);

        long prevRawRow = 0;
        if (!csv.Read()) yield break;  // empty file
        csv.ReadHeader();
        var header = csv.HeaderRecord ?? [];
        prevRawRow = csv.Parser.RawRow;
        var dupes = header.GroupBy(h => h).Where(g => g.Count() > 1).Select(g => g.Key).ToList();
        if (dupes.Count > 0) throw new DataFormatException(path, 1, $"duplicate column name(s) in header: {string.Join(", ", dupes)}");
        if (badData != null) throw new DataFormatException(path, 1, $"malformed header (stray quote near '{Short(badData)}')");

        while (true)
        {
            bool more;
            badData = null;
            try { more = csv.Read(); }
            catch (CsvHelperException e)
            {
                Fail(errors, new DataFormatException(path, prevRawRow + 1, $"malformed CSV: {e.Message.Split('\n')[0]}", e));
                yield break;  // the parser cannot resynchronise after a hard error
            }
            if (!more) yield break;
            long startLine = prevRawRow + 1;
            prevRawRow = csv.Parser.RawRow;
            var fields = csv.Parser.Record ?? [];
            if (badData != null)
            {
                Fail(errors, new DataFormatException(path, startLine, $"stray quote in an unquoted field near '{Short(badData)}'"));
                continue;
            }
            if (fields.Length != header.Length)
            {
                Fail(errors, new DataFormatException(path, startLine, $"expected {header.Length} fields (as in the header), found {fields.Length}"));
                continue;
            }
            var obj = new JsonObject();
            bool undecodable = false;
            for (int i = 0; i < header.Length; i++)
            {
                undecodable |= TextFiles.HasUndecodable(fields[i]);
                obj[header[i]] = fields[i];
            }
            if (undecodable)
            {
                Fail(errors, new DataFormatException(path, startLine, $"bytes that are not valid {encoding ?? "utf-8"} (use --encoding)"));
                continue;
            }
            yield return new DataRow(obj, path, startLine);
        }
    }

    static string Short(string s) => s.Length <= 40 ? s.ReplaceLineEndings(" ") : s[..40].ReplaceLineEndings(" ") + "...";

    static void Fail(RowErrors? errors, DataFormatException e)
    {
        if (errors == null) throw e;
        errors.Report(e);
    }
}
