// JSON Lines files (one JSON object per line), gzip'd when the name ends in .gz: the format every data step reads and writes.
using System.IO.Compression;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace TaskLM.Data.Corpus;

/// <summary>Streams JSONL files in and out, one row at a time, so a file of any size needs memory for one
/// line only. A name ending in <c>.gz</c> is read and written through gzip.</summary>
public static class JsonlFile
{
    // Relaxed escaping keeps non-ASCII text readable (and shorter) in the files we write; still valid JSON.
    static readonly JsonSerializerOptions WriteOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
    static readonly UTF8Encoding Utf8NoBom = new(encoderShouldEmitUTF8Identifier: false);

    /// <summary>Reads every non-blank line of <paramref name="path"/> as a JSON object. Throws
    /// <see cref="DataFormatException"/> (file:line) on a line that is not a JSON object.</summary>
    public static IEnumerable<DataRow> Read(string path) => Read(path, null);

    /// <summary>Like <see cref="Read(string)"/>, but a malformed line is handed to <paramref name="errors"/>,
    /// which either rethrows it (fail mode) or records it and lets reading go on (skip mode).</summary>
    public static IEnumerable<DataRow> Read(string path, RowErrors? errors)
    {
        using var reader = OpenText(path);
        long lineNo = 0;
        string? line;
        while ((line = reader.ReadLine()) != null)
        {
            lineNo++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            JsonObject? obj = null;
            DataFormatException? bad = null;
            if (TextFiles.HasUndecodable(line))
                bad = new DataFormatException(path, lineNo, $"bytes that are not valid UTF-8 at column {line.IndexOf('\uFFFF') + 1} (JSON Lines are UTF-8; is this a binary or latin-1 file?)");
            else try
            {
                var node = JsonNode.Parse(line);
                obj = node as JsonObject;
                if (obj == null)
                    bad = new DataFormatException(path, lineNo, $"expected a JSON object, found {(node == null ? "null" : node.GetValueKind().ToString().ToLowerInvariant())}");
            }
            catch (JsonException e)
            {
                // JsonException's own text ends with "LineNumber: 0 | BytePositionInLine: N."; say the column instead.
                var msg = e.Message;
                int cut = msg.IndexOf(" LineNumber:", StringComparison.Ordinal);
                if (cut > 0) msg = msg[..cut].TrimEnd();
                var col = e.BytePositionInLine is long b ? $" at column {b + 1}" : "";
                bad = new DataFormatException(path, lineNo, $"invalid JSON{col}: {msg}", e);
            }
            if (bad != null)
            {
                if (errors == null) throw bad;
                errors.Report(bad);
                continue;
            }
            yield return new DataRow(obj!, path, lineNo);
        }
    }

    /// <summary>Writes each row as one line of compact JSON (UTF-8, no BOM, "\n" endings). The file is
    /// written to a temporary name beside it and renamed into place at the end, so an interrupted write
    /// never leaves a truncated file that looks complete. Returns the number of rows written.</summary>
    public static long Write(string path, IEnumerable<JsonObject> rows)
    {
        var full = Path.GetFullPath(path);
        var dir = Path.GetDirectoryName(full);
        if (!string.IsNullOrEmpty(dir)) Directory.CreateDirectory(dir);
        var tmp = full + ".tmp-" + Environment.ProcessId;
        long n = 0;
        PartialFiles.Register(tmp);
        try
        {
            using (var writer = CreateText(tmp, IsGzip(path)))
            {
                foreach (var row in rows)
                {
                    WriteRow(writer, row);
                    n++;
                }
            }
            File.Move(tmp, full, overwrite: true);
        }
        catch
        {
            try { File.Delete(tmp); } catch (IOException) { }
            throw;
        }
        finally { PartialFiles.Unregister(tmp); }
        return n;
    }

    /// <summary>Writes the rows' fields (see <see cref="Write(string, IEnumerable{JsonObject})"/>).</summary>
    public static long Write(string path, IEnumerable<DataRow> rows) => Write(path, rows.Select(r => r.Fields));

    /// <summary>Opens a JSONL file for row-by-row writing (gzip by name), for output that must survive an
    /// interruption page by page (e.g. scraping) rather than appear whole at the end.</summary>
    public static StreamWriter CreateWriter(string path)
    {
        var dir = Path.GetDirectoryName(Path.GetFullPath(path));
        if (!string.IsNullOrEmpty(dir)) Directory.CreateDirectory(dir);
        return CreateText(path, IsGzip(path));
    }

    /// <summary>Writes one row as a line of compact JSON.</summary>
    public static void WriteRow(TextWriter writer, JsonObject row)
    {
        writer.Write(row.ToJsonString(WriteOptions));
        writer.Write('\n');
    }

    /// <summary>True when the path names a gzip file (ends in .gz).</summary>
    public static bool IsGzip(string path) => path.EndsWith(".gz", StringComparison.OrdinalIgnoreCase);

    /// <summary>Opens a text file for reading, through gzip when the name ends in .gz (each gzip member's CRC and
    /// length checked, so a cut-short file is an error, see <see cref="OpenStream"/>). Decoding is strict UTF-8:
    /// bytes that are not UTF-8 come out as U+FFFF, which <see cref="Read(string, RowErrors?)"/> reports as an
    /// error naming the line; a UTF-8 BOM is skipped.</summary>
    public static StreamReader OpenText(string path) => TextFiles.Open(path);

    /// <summary>Opens a file's bytes, decompressed through <see cref="CheckedGzipStream"/> when the name ends in .gz.</summary>
    public static Stream OpenStream(string path)
    {
        var s = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
        return IsGzip(path) ? new CheckedGzipStream(s, path) : s;
    }

    static StreamWriter CreateText(string path, bool gzip)
    {
        Stream s = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 16);
        if (gzip) s = new GZipStream(s, CompressionLevel.Optimal);
        return new StreamWriter(s, Utf8NoBom, 1 << 16);
    }
}
