// The tables the improvement verbs print and write into their reports: aligned plain text and Markdown.
using System.Text;

namespace TaskLM.Improve;

/// <summary>A table for people: aligned plain text (a redirected console never wraps it) and Markdown.</summary>
public sealed class TextTable(IReadOnlyList<string> headers)
{
    readonly List<string[]> _rows = [];
    public IReadOnlyList<string> Headers { get; } = headers;

    public TextTable Add(params string[] cells) { _rows.Add(cells); return this; }

    public string ToText()
    {
        var w = Headers.Select((h, i) => Math.Max(h.Length, _rows.Count == 0 ? 0 : _rows.Max(r => r[i].Length))).ToArray();
        string Line(IReadOnlyList<string> c) => string.Join("  ", c.Select((x, i) => x.PadRight(w[i]))).TrimEnd();
        var sb = new StringBuilder();
        sb.AppendLine(Line(Headers)).AppendLine(Line(w.Select(n => new string('-', n)).ToList()));
        foreach (var r in _rows) sb.AppendLine(Line(r));
        return sb.ToString();
    }

    public string ToMarkdown()
    {
        var sb = new StringBuilder();
        sb.AppendLine("| " + string.Join(" | ", Headers) + " |");
        sb.AppendLine("|" + string.Join("|", Headers.Select(_ => "---")) + "|");
        foreach (var r in _rows) sb.AppendLine("| " + string.Join(" | ", r.Select(c => c.Replace("|", "\\|"))) + " |");
        return sb.ToString();
    }
}
