// Text for tokenizer training and corpus encoding: documents from .txt and .jsonl files or folders of them.
using System.Text.Json;

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

/// <summary>Streams documents from files: <c>.txt</c> (split per <see cref="DocumentSplit"/>) and <c>.jsonl</c> (one
/// document per line, the <c>text_column</c> field). A folder means every such file in it, recursively, in name order.</summary>
public static class TextSources
{
    /// <summary>The files <paramref name="inputs"/> stand for (folders expanded); throws naming a missing input.</summary>
    public static List<string> Files(IEnumerable<string> inputs)
    {
        var files = new List<string>();
        foreach (var input in inputs)
        {
            if (Directory.Exists(input))
                files.AddRange(Directory.EnumerateFiles(input, "*", SearchOption.AllDirectories)
                    .Where(f => f.EndsWith(".txt", StringComparison.OrdinalIgnoreCase) || f.EndsWith(".jsonl", StringComparison.OrdinalIgnoreCase))
                    .Order(StringComparer.Ordinal));
            else if (File.Exists(input)) files.Add(input);
            else throw new FileNotFoundException($"input '{input}' does not exist");
        }
        if (files.Count == 0) throw new FileNotFoundException($"no .txt or .jsonl files in {string.Join(", ", inputs)}");
        return files;
    }

    /// <summary>Documents of the inputs, lazily, in order.</summary>
    public static IEnumerable<string> Documents(IEnumerable<string> inputs, DocumentSplit split = DocumentSplit.File, string textColumn = "text")
    {
        foreach (var file in Files(inputs))
        {
            if (file.EndsWith(".jsonl", StringComparison.OrdinalIgnoreCase))
            {
                long lineNo = 0;
                foreach (var line in File.ReadLines(file))
                {
                    lineNo++;
                    if (string.IsNullOrWhiteSpace(line)) continue;
                    string? text;
                    try
                    {
                        using var doc = JsonDocument.Parse(line);
                        if (!doc.RootElement.TryGetProperty(textColumn, out var v)) throw new FormatException($"{file}:{lineNo}: no \"{textColumn}\" field");
                        text = v.ValueKind == JsonValueKind.String ? v.GetString() : v.GetRawText();
                    }
                    catch (JsonException e) { throw new FormatException($"{file}:{lineNo}: invalid JSON ({e.Message})", e); }
                    if (!string.IsNullOrEmpty(text)) yield return text;
                }
                continue;
            }
            switch (split)
            {
                case DocumentSplit.File:
                    yield return File.ReadAllText(file);
                    break;
                case DocumentSplit.Line:
                    foreach (var line in File.ReadLines(file)) if (line.Trim().Length > 0) yield return line;
                    break;
                case DocumentSplit.Blank:
                    var block = new System.Text.StringBuilder();
                    foreach (var line in File.ReadLines(file))
                    {
                        if (line.Trim().Length == 0) { if (block.Length > 0) { yield return block.ToString(); block.Clear(); } continue; }
                        if (block.Length > 0) block.Append('\n');
                        block.Append(line);
                    }
                    if (block.Length > 0) yield return block.ToString();
                    break;
            }
        }
    }
}
