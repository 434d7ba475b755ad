// Plain-text readers: one document per file, one document per line, and a folder of files with the subfolder as label.
using System.Text;
using System.Text.Json.Nodes;

namespace TaskLM.Data.Corpus;

/// <summary>Reads plain text. Bytes that do not decode in the chosen encoding make the line (or file) a
/// malformed row, never silent replacement characters.</summary>
public static class TextFiles
{
    // Undecodable bytes become U+FFFF, a noncharacter that real text does not contain, so a row that holds
    // one is known to be bad without decoding twice.
    const char Undecodable = '\uFFFF';

    /// <summary>An encoding by name (utf-8, latin-1, windows-1252, ...) whose decoder marks bad bytes.</summary>
    public static Encoding StrictEncoding(string? name)
    {
        Encoding.RegisterProvider(CodePagesEncodingProvider.Instance);
        var baseEnc = string.IsNullOrEmpty(name) || name.Equals("utf-8", StringComparison.OrdinalIgnoreCase) || name.Equals("utf8", StringComparison.OrdinalIgnoreCase)
            ? new UTF8Encoding(false)
            : Encoding.GetEncoding(name.Equals("latin-1", StringComparison.OrdinalIgnoreCase) ? "iso-8859-1" : name);
        return Encoding.GetEncoding(baseEnc.CodePage, EncoderFallback.ReplacementFallback, new DecoderReplacementFallback(Undecodable.ToString()));
    }

    /// <summary>Opens a text file (gzip'd when it ends in .gz, checked: see <see cref="CheckedGzipStream"/>) with a strict decoder; a BOM is honoured.</summary>
    public static StreamReader Open(string path, string? encoding = null)
    {
        return new StreamReader(JsonlFile.OpenStream(path), StrictEncoding(encoding), detectEncodingFromByteOrderMarks: true, bufferSize: 1 << 16);
    }

    /// <summary>True when decoded text holds bytes the encoding could not decode.</summary>
    public static bool HasUndecodable(string text) => text.Contains(Undecodable);

    /// <summary>One row per non-blank line: <c>{"text": line}</c>, line numbers 1-based.</summary>
    public static IEnumerable<DataRow> ReadLines(string path, RowErrors? errors = null, string? encoding = null)
    {
        using var reader = Open(path, encoding);
        long lineNo = 0;
        string? line;
        while ((line = reader.ReadLine()) != null)
        {
            lineNo++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            if (HasUndecodable(line))
            {
                Fail(errors, new DataFormatException(path, lineNo, $"bytes that are not valid {encoding ?? "utf-8"} (use --encoding)"));
                continue;
            }
            yield return new DataRow(new JsonObject { ["text"] = line }, path, lineNo);
        }
    }

    /// <summary>One row per file: <c>{"text": content, "file": relative path}</c>. <paramref name="path"/> is a
    /// file or a folder (every file below it, in ordinal path order; hidden files skipped). The row's
    /// Line is the file's 1-based position.</summary>
    public static IEnumerable<DataRow> ReadFiles(string path, RowErrors? errors = null, string? encoding = null, string? include = null)
    {
        long i = 0;
        foreach (var (file, rel) in ListFiles(path, include))
        {
            i++;
            string text;
            using (var r = Open(file, encoding)) text = r.ReadToEnd();
            if (HasUndecodable(text))
            {
                Fail(errors, new DataFormatException(file, LineOf(text, text.IndexOf(Undecodable)), $"bytes that are not valid {encoding ?? "utf-8"} (use --encoding)"));
                continue;
            }
            yield return new DataRow(new JsonObject { ["text"] = text, ["file"] = rel }, file, i);
        }
    }

    /// <summary>A folder whose subfolders name the labels (<c>root/spam/*.txt</c>, <c>root/ham/*.txt</c>): one row
    /// per file, <c>{"text", "label", "file"}</c>. <paramref name="parse"/> turns a file into fields (plain text
    /// by default; the email or HTML reader for such files); its "label" is set from the folder.</summary>
    public static IEnumerable<DataRow> ReadLabelledFolder(string root, Func<string, long, JsonObject>? parse = null, RowErrors? errors = null, string? encoding = null, string? include = null)
    {
        if (!Directory.Exists(root)) throw new DirectoryNotFoundException($"{root}: no such folder");
        var labels = Directory.GetDirectories(root).Select(Path.GetFileName).Where(n => n != null && !n.StartsWith('.')).Order(StringComparer.Ordinal).ToList();
        if (labels.Count == 0) throw new DataFormatException(root, 0, "folder format needs one subfolder per label; this folder has none");
        long i = 0;
        foreach (var label in labels)
        {
            foreach (var (file, rel) in ListFiles(Path.Combine(root, label!), include))
            {
                i++;
                JsonObject fields;
                try
                {
                    if (parse != null) fields = parse(file, i);
                    else
                    {
                        string text;
                        using (var r = Open(file, encoding)) text = r.ReadToEnd();
                        if (HasUndecodable(text))
                            throw new DataFormatException(file, LineOf(text, text.IndexOf(Undecodable)), $"bytes that are not valid {encoding ?? "utf-8"} (use --encoding)");
                        fields = new JsonObject { ["text"] = text };
                    }
                }
                catch (DataFormatException e)
                {
                    Fail(errors, e);
                    continue;
                }
                fields["label"] = label;
                fields["file"] = label + "/" + rel;
                yield return new DataRow(fields, file, i);
            }
        }
    }

    /// <summary>Files under a path (or the file itself), ordinal order, hidden ones skipped, with paths relative to it.
    /// <paramref name="include"/> is a file-name pattern (<c>*.txt</c>) that files below a folder must match.</summary>
    public static IEnumerable<(string File, string Relative)> ListFiles(string path, string? include = null)
    {
        if (File.Exists(path)) return [(path, Path.GetFileName(path))];
        if (!Directory.Exists(path)) throw new FileNotFoundException($"{path}: no such file or folder");
        return Directory.EnumerateFiles(path, "*", SearchOption.AllDirectories)
            .Select(f => (File: f, Relative: Path.GetRelativePath(path, f).Replace('\\', '/')))
            .Where(f => !f.Relative.Split('/').Any(part => part.StartsWith('.')))
            .Where(f => include == null || System.IO.Enumeration.FileSystemName.MatchesSimpleExpression(include, Path.GetFileName(f.File)))
            .OrderBy(f => f.Relative, StringComparer.Ordinal)
            .ToList();
    }

    static long LineOf(string text, int index) => index < 0 ? 0 : 1 + text.AsSpan(0, index).Count('\n');

    static void Fail(RowErrors? errors, DataFormatException e)
    {
        if (errors == null) throw e;
        errors.Report(e);
    }
}
