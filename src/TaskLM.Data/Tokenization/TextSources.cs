// Text for tokenizer training and corpus encoding: documents from .txt and .jsonl files or folders of them.
using System.Text.Json;
using System.Text.Json.Nodes;
using TaskLM.Data.Corpus;

namespace TaskLM.Data.Tokenization;

/// <summary>How a plain-text file is cut into documents.</summary>
public enum DocumentSplit
{
    /// <summary>The whole file is one document.</summary>
    File,
    /// <summary>Each non-empty line is a document.</summary>
    Line,
    /// <summary>Blank-line-separated blocks are documents.</summary>
    Blank,
}

/// <summary>Streams documents from files for tokenizer training and corpus encoding, through the same readers
/// as <c>data import</c>: row formats (<c>.jsonl</c>, <c>.csv</c>, <c>.tsv</c>, <c>.parquet</c>) give one document per
/// row (the <c>text_column</c> field), plain text is split per <see cref="DocumentSplit"/>; <c>.gz</c> files are
/// decompressed (checked), and bytes that are not valid in the encoding are an error naming the file and line,
/// never U+FFFD soup. A folder means every such file in it, recursively, in name order.</summary>
public static class TextSources
{
    static readonly string[] Extensions = [".txt", ".text", ".jsonl", ".ndjson", ".csv", ".tsv", ".parquet"];

    /// <summary>True when a folder's file is one <see cref="Files"/> takes (by extension, a .gz suffix allowed).</summary>
    public static bool IsCorpusFile(string path)
    {
        var name = JsonlFile.IsGzip(path) ? path[..^3] : path;
        return Extensions.Any(e => name.EndsWith(e, StringComparison.OrdinalIgnoreCase));
    }

    /// <summary>The files <paramref name="inputs"/> stand for (folders expanded); throws naming a missing input.</summary>
    public static List<string> Files(IEnumerable<string> inputs)
    {
        var files = new List<string>();
        foreach (var input in inputs)
        {
            if (Directory.Exists(input))
                files.AddRange(TextFiles.ListFiles(input).Select(f => f.File).Where(IsCorpusFile));
            else if (File.Exists(input)) files.Add(input);
            else throw new FileNotFoundException($"input '{input}' does not exist");
        }
        if (files.Count == 0) throw new FileNotFoundException($"no {string.Join(", ", Extensions)} (or .gz) files in {string.Join(", ", inputs)}");
        return files;
    }

    /// <summary>Documents of the inputs, lazily, in order. Row-format files give their <paramref name="textColumn"/>
    /// (a row without it is an error naming the file and line); <paramref name="encoding"/> applies to plain
    /// text and CSV (default UTF-8). Empty documents are skipped. Inputs that hold no document at all are an
    /// error (thrown after the last file, so a writer consuming them discards its output) unless
    /// <paramref name="allowEmpty"/>.</summary>
    public static IEnumerable<string> Documents(IEnumerable<string> inputs, DocumentSplit split = DocumentSplit.File, string textColumn = "text",
        string? encoding = null, bool allowEmpty = false)
    {
        var files = Files(inputs);
        long n = 0;
        foreach (var doc in DocumentsOf(files, split, textColumn, encoding)) { n++; yield return doc; }
        if (n == 0 && !allowEmpty)
            throw new DataFormatException(string.Join(", ", files), 0,
                $"no documents: {(files.All(f => new FileInfo(f).Length == 0) ? "the input is empty (0 bytes)" : $"no non-empty text{(files.Any(f => DataImport.DetectFile(f, InputFormat.Lines) != InputFormat.Lines) ? $" in field '{textColumn}'" : "")}")}; nothing written");
    }

    static IEnumerable<string> DocumentsOf(List<string> files, DocumentSplit split, string textColumn, string? encoding)
    {
        foreach (var file in files)
        {
            var format = DataImport.DetectFile(file, InputFormat.Lines);
            if (format is InputFormat.Jsonl or InputFormat.Csv or InputFormat.Tsv or InputFormat.Parquet)
            {
                foreach (var row in DataImport.Read(file, new ImportOptions { Format = format, Encoding = encoding }, new RowErrors(OnError.Fail)))
                {
                    if (!row.Fields.TryGetPropertyValue(textColumn, out var v))
                        throw new DataFormatException(row.Source, row.Line, $"no \"{textColumn}\" field (use --text-column); the row has: {string.Join(", ", row.Fields.Select(kv => kv.Key))}");
                    string? text = v is JsonValue jv && jv.GetValueKind() == JsonValueKind.String ? jv.GetValue<string>() : v?.ToJsonString();
                    if (!string.IsNullOrEmpty(text)) yield return text;
                }
                continue;
            }
            switch (split)
            {
                case DocumentSplit.File:
                    foreach (var row in TextFiles.ReadFiles(file, null, encoding))
                        if (row.Fields["text"]!.GetValue<string>() is { Length: > 0 } t) yield return t;
                    break;
                case DocumentSplit.Line:
                    foreach (var row in TextFiles.ReadLines(file, null, encoding))
                        if (row.Fields["text"]!.GetValue<string>() is var t && t.Trim().Length > 0) yield return t;
                    break;
                case DocumentSplit.Blank:
                    var block = new System.Text.StringBuilder();
                    using (var reader = TextFiles.Open(file, encoding))
                    {
                        long lineNo = 0;
                        string? line;
                        while ((line = reader.ReadLine()) != null)
                        {
                            lineNo++;
                            if (TextFiles.HasUndecodable(line))
                                throw new DataFormatException(file, lineNo, $"bytes that are not valid {encoding ?? "utf-8"} (use --encoding)");
                            if (line.Trim().Length == 0) { if (block.Length > 0) { yield return block.ToString(); block.Clear(); } continue; }
                            if (block.Length > 0) block.Append('\n');
                            block.Append(line);
                        }
                    }
                    if (block.Length > 0) yield return block.ToString();
                    break;
            }
        }
    }
}
