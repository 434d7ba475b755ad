// Main-content extraction from an HTML page with AngleSharp: title, readable text and the links to follow.
using System.Text;
using AngleSharp.Dom;
using AngleSharp.Html.Parser;

namespace TaskLM.Data.Corpus;

/// <summary>What a page yields: its title, its main text and the absolute http(s) links it holds.</summary>
public sealed record ExtractedPage(string Title, string Text, IReadOnlyList<Uri> Links);

/// <summary>Finds a page's main content the way reader modes do, in a small form: drop scripts, navigation,
/// headers, footers, asides and forms; prefer a single &lt;article&gt;, then &lt;main&gt;/[role=main], then the
/// element whose direct paragraphs hold the most text; fall back to &lt;body&gt;.</summary>
public static class ContentExtractor
{
    private const string Boilerplate = "script, style, noscript, template, iframe, svg, nav, header, footer, aside, form, "
        + "[role=navigation], [role=banner], [role=contentinfo], [aria-hidden=true]";

    private static readonly HashSet<string> Blocks = new(StringComparer.OrdinalIgnoreCase)
    {
        "p", "div", "br", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "blockquote", "table", "tr",
        "section", "article", "main", "dd", "dt", "dl", "hr", "figure", "figcaption", "address",
    };

    /// <summary>Extracts from <paramref name="html"/>, resolving links against <paramref name="pageUrl"/>.</summary>
    public static ExtractedPage Extract(string html, Uri pageUrl)
    {
        var doc = new HtmlParser().ParseDocument(html);

        var baseHref = doc.QuerySelector("base[href]")?.GetAttribute("href");
        Uri baseUri = baseHref != null && Uri.TryCreate(pageUrl, baseHref, out var b) ? b : pageUrl;
        var links = new List<Uri>();
        foreach (var a in doc.QuerySelectorAll("a[href]"))
        {
            string href = a.GetAttribute("href")!.Trim();
            if (href.Length == 0 || href.StartsWith('#')) continue;
            if (!Uri.TryCreate(baseUri, href, out var u) || (u.Scheme != Uri.UriSchemeHttp && u.Scheme != Uri.UriSchemeHttps)) continue;
            links.Add(new UriBuilder(u) { Fragment = "" }.Uri);
        }

        string title = doc.Title?.Trim() is { Length: > 0 } t ? t
            : doc.QuerySelector("meta[property='og:title']")?.GetAttribute("content")?.Trim() is { Length: > 0 } og ? og
            : doc.QuerySelector("h1")?.TextContent.Trim() ?? "";

        foreach (var el in doc.QuerySelectorAll(Boilerplate).ToList()) el.Remove();

        IElement? main = null;
        var articles = doc.QuerySelectorAll("article");
        if (articles.Length == 1) main = articles[0];
        main ??= doc.QuerySelector("main, [role=main]");
        if (main == null)
        {
            // Score containers by the text of their direct paragraph-like children.
            int best = 0;
            foreach (var el in doc.QuerySelectorAll("div, section, td, body"))
            {
                int score = el.Children.Where(c => c.LocalName is "p" or "pre" or "blockquote" or "ul" or "ol")
                                       .Sum(c => c.TextContent.Length);
                if (score > best) { best = score; main = el; }
            }
            if (best < 100) main = doc.Body;
        }
        var sb = new StringBuilder();
        if (main != null) AppendText(main, sb);
        return new ExtractedPage(CleaningText.Whitespace(title), CleaningText.Whitespace(sb.ToString()), links);
    }

    private static void AppendText(INode node, StringBuilder sb)
    {
        foreach (var child in node.ChildNodes)
        {
            if (child is IText text) { sb.Append(text.Data); continue; }
            if (child is not IElement el) continue;
            bool block = Blocks.Contains(el.LocalName);
            if (block) sb.Append('\n');
            if (el.LocalName is "td" or "th") sb.Append(' ');
            AppendText(el, sb);
            if (block) sb.Append('\n');
        }
    }
}
