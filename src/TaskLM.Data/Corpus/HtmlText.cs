// HTML to plain text with AngleSharp: drops scripts, styles and other non-content, keeps block structure as line breaks.
using System.Text;
using System.Text.Json.Nodes;
using AngleSharp.Dom;
using AngleSharp.Html.Parser;

namespace TaskLM.Data.Corpus;

/// <summary>Turns HTML into readable text: block elements (p, div, li, headings, tr, br) become line breaks,
/// inline runs of whitespace collapse to one space, and script/style/noscript/template/head content is dropped.</summary>
public static class HtmlText
{
    static readonly HashSet<string> Skip = new(StringComparer.OrdinalIgnoreCase) { "script", "style", "noscript", "template", "head", "svg", "iframe" };
    static readonly HashSet<string> Block = new(StringComparer.OrdinalIgnoreCase)
    {
        "p", "div", "br", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "table", "section", "article",
        "header", "footer", "nav", "blockquote", "pre", "hr", "dl", "dt", "dd", "main", "aside", "figure", "figcaption", "form", "title",
    };

    /// <summary>The page title (or null) and its text.</summary>
    public static (string? Title, string Text) Convert(string html)
    {
        var doc = new HtmlParser().ParseDocument(html);
        var sb = new StringBuilder();
        if (doc.Body != null) Walk(doc.Body, sb);
        else if (doc.DocumentElement != null) Walk(doc.DocumentElement, sb);
        var title = string.IsNullOrWhiteSpace(doc.Title) ? null : doc.Title.Trim();
        return (title, Tidy(sb.ToString()));
    }

    /// <summary>One row per HTML file (a file or a folder of them): <c>{"title", "text", "file"}</c>.</summary>
    public static IEnumerable<DataRow> ReadFiles(string path, RowErrors? errors = null, string? encoding = null, string? include = null)
    {
        long i = 0;
        foreach (var (file, rel) in TextFiles.ListFiles(path, include))
        {
            i++;
            JsonObject fields;
            try { fields = ReadFile(file, encoding); }
            catch (DataFormatException e) { if (errors == null) throw; errors.Report(e); continue; }
            fields["file"] = rel;
            yield return new DataRow(fields, file, i);
        }
    }

    /// <summary>Reads one HTML file into <c>{"title", "text"}</c>.</summary>
    public static JsonObject ReadFile(string file, string? encoding = null)
    {
        string html;
        using (var r = TextFiles.Open(file, encoding)) html = r.ReadToEnd();
        if (TextFiles.HasUndecodable(html))
            throw new DataFormatException(file, 0, $"bytes that are not valid {encoding ?? "utf-8"} (use --encoding)");
        var (title, text) = Convert(html);
        return new JsonObject { ["title"] = title, ["text"] = text };
    }

    static void Walk(INode node, StringBuilder sb)
    {
        foreach (var child in node.ChildNodes)
        {
            switch (child)
            {
                case IText t:
                    // Line breaks inside running text are layout, not structure (except in <pre>).
                    sb.Append(InPre(t) ? t.Data : t.Data.Replace('\n', ' ').Replace('\r', ' '));
                    break;
                case IElement e when Skip.Contains(e.LocalName):
                    break;
                case IElement e:
                    bool block = Block.Contains(e.LocalName);
                    if (block) sb.Append('\n');
                    if (e.LocalName is "td" or "th") sb.Append('\t');
                    Walk(e, sb);
                    if (block) sb.Append('\n');
                    break;
            }
        }
    }

    static bool InPre(INode n)
    {
        for (var p = n.ParentElement; p != null; p = p.ParentElement)
            if (p.LocalName == "pre") return true;
        return false;
    }

    // Collapse whitespace inside lines, drop empty lines' runs to one blank line at most, trim.
    static string Tidy(string raw)
    {
        var lines = raw.Split('\n').Select(l => string.Join(' ', l.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries)));
        var sb = new StringBuilder();
        bool blank = false;
        foreach (var l in lines)
        {
            if (l.Length == 0) { blank = sb.Length > 0; continue; }
            if (sb.Length > 0) sb.Append(blank ? "\n\n" : "\n");
            sb.Append(l);
            blank = false;
        }
        return sb.ToString();
    }
}
