// The text transforms of the cleaning pipeline, each a pure string → string function usable on its own.
using System.Net;
using System.Text;
using System.Text.RegularExpressions;

namespace TaskLM.Data.Corpus;

/// <summary>Pure text transforms: e-mail boilerplate, HTML, Unicode, masking and whitespace.
/// Each returns its input unchanged (the same instance) when there is nothing to do.</summary>
public static partial class CleaningText
{
    // ---- e-mail headers -------------------------------------------------------------------------------

    /// <summary>Removes a leading RFC 822 header block (an mbox "From " line and/or "Name: value" lines with
    /// folded continuations, up to the first blank line; at least two header lines are needed so a body
    /// that merely starts with "Note: ..." is kept), then MIME boundaries, part headers and base64 blobs.
    /// With <paramref name="keepSubject"/> the Subject's value becomes the first line.</summary>
    public static string StripEmailHeaders(string text, bool keepSubject = true)
    {
        var lines = SplitLines(text);
        int i = 0, headerLines = 0;
        string? subject = null;
        bool inSubject = false;
        if (lines.Count > 0 && lines[0].StartsWith("From ", StringComparison.Ordinal)) { i = 1; headerLines = 1; }
        while (i < lines.Count)
        {
            string l = lines[i];
            if (l.Length == 0) break;
            if ((l[0] == ' ' || l[0] == '\t') && headerLines > 0)
            {
                if (inSubject) subject += " " + l.Trim(); // folded Subject continues
                i++; continue;
            }
            int colon = HeaderNameLength(l);
            if (colon <= 0) break;
            inSubject = l.StartsWith("Subject:", StringComparison.OrdinalIgnoreCase);
            if (inSubject) subject = l[8..].Trim();
            headerLines++; i++;
        }
        bool hasHeaders = headerLines >= 2 && (i == lines.Count || lines[i].Length == 0);
        int start = hasHeaders ? i : 0;

        var sb = new StringBuilder(text.Length);
        if (hasHeaders && keepSubject && !string.IsNullOrWhiteSpace(subject)) sb.Append(subject).Append('\n');
        bool changed = hasHeaders;
        for (int k = start; k < lines.Count; k++)
        {
            string l = lines[k];
            if (IsMimeBoundary(l))
            {
                // A boundary line is followed by the part's own headers up to a blank line.
                changed = true;
                k++;
                while (k < lines.Count && lines[k].Length > 0 && (HeaderNameLength(lines[k]) > 0 || lines[k][0] is ' ' or '\t')) k++;
                continue;
            }
            if (IsBase64Line(l)) { changed = true; continue; }
            if (l.StartsWith("This is a multi-part message in MIME format", StringComparison.Ordinal)) { changed = true; continue; }
            sb.Append(l).Append('\n');
        }
        if (!changed) return text;
        return sb.ToString();
    }

    // Length of "Name" in "Name: value" when the line is a header field (RFC 5322 field-name: printable, no colon/space).
    private static int HeaderNameLength(string l)
    {
        int n = 0;
        while (n < l.Length && l[n] > 32 && l[n] < 127 && l[n] != ':') n++;
        return n > 0 && n < l.Length && l[n] == ':' ? n : 0;
    }

    private static bool IsMimeBoundary(string l)
    {
        // "--" + a boundary token of 10+ non-space characters, optionally closed by "--".
        if (l.Length < 12 || l[0] != '-' || l[1] != '-') return false;
        for (int i = 2; i < l.Length; i++) if (char.IsWhiteSpace(l[i])) return false;
        return l.AsSpan(2).IndexOfAnyExcept('-') >= 0 && (l.Contains('_') || l.Contains('=') || l.Contains('.') || l.Any(char.IsDigit));
    }

    private static bool IsBase64Line(string l)
    {
        // Encoded attachment bodies: long lines of base64 alphabet only, with no spaces.
        if (l.Length < 60) return false;
        int letters = 0;
        foreach (char c in l)
        {
            if (c is (>= 'A' and <= 'Z') or (>= 'a' and <= 'z')) letters++;
            else if (c is not ((>= '0' and <= '9') or '+' or '/' or '=')) return false;
        }
        return letters > l.Length / 2;
    }

    // ---- quoted replies and signatures ----------------------------------------------------------------

    /// <summary>Removes quoted replies: lines starting with "&gt;" (after optional spaces), the attribution line just
    /// above a quote ("On Mon, Bob wrote:", "Bob writes:"), and everything from "-----Original Message-----" on.
    /// An mbox-escaped "&gt;From " line is unescaped and kept.</summary>
    public static string StripEmailQuotes(string text)
    {
        if (!text.Contains('>') && !text.Contains("Original Message", StringComparison.OrdinalIgnoreCase)) return text;
        var lines = SplitLines(text);
        var keep = new List<string>(lines.Count);
        bool changed = false;
        foreach (string l in lines)
        {
            string t = l.TrimStart();
            if (OriginalMessage().IsMatch(t)) { changed = true; break; }
            // mbox escapes body lines starting with "From " as ">From ": that is text, not a quote.
            if (l.StartsWith(">From ", StringComparison.Ordinal)) { keep.Add(l[1..]); changed = true; continue; }
            if (t.StartsWith('>'))
            {
                changed = true;
                // Drop the attribution line (and blank lines) just above the quote.
                while (keep.Count > 0 && keep[^1].Trim().Length == 0) keep.RemoveAt(keep.Count - 1);
                if (keep.Count > 0 && Attribution().IsMatch(keep[^1])) keep.RemoveAt(keep.Count - 1);
                continue;
            }
            keep.Add(l);
        }
        return changed ? string.Join('\n', keep) : text;
    }

    /// <summary>Removes a signature (from the last "-- " or "--" line when at most 15 lines follow), a mailing-list
    /// footer (from the last line of 20+ underscores when at most 15 lines follow) and "Sent from my ..." lines.</summary>
    public static string StripEmailSignature(string text)
    {
        var lines = SplitLines(text);
        int cut = lines.Count;
        for (int i = lines.Count - 1; i >= 0 && lines.Count - i <= 16; i--)
        {
            string t = lines[i].TrimEnd();
            if (t is "--" or "-- " || lines[i] == "-- " || IsUnderscoreRule(t)) cut = i;
        }
        bool changed = cut < lines.Count;
        var keep = new List<string>(cut);
        for (int i = 0; i < cut; i++)
        {
            if (SentFrom().IsMatch(lines[i])) { changed = true; continue; }
            keep.Add(lines[i]);
        }
        return changed ? string.Join('\n', keep) : text;
    }

    private static bool IsUnderscoreRule(string t) => t.Length >= 20 && t.AsSpan().IndexOfAnyExcept('_') < 0;

    [GeneratedRegex(@"^-{2,}\s*(Original Message|Forwarded by .*|Reply message)\s*-{2,}", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    private static partial Regex OriginalMessage();

    [GeneratedRegex(@"(\bwrote|\bwrites|\bschrieb|\ba écrit)\s*:\s*$", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    private static partial Regex Attribution();

    [GeneratedRegex(@"^\s*Sent from my [\w\s]{2,30}$", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    private static partial Regex SentFrom();

    // ---- HTML -----------------------------------------------------------------------------------------

    private static readonly HashSet<string> BlockTags = new(StringComparer.OrdinalIgnoreCase)
    {
        "address", "article", "aside", "blockquote", "body", "br", "dd", "div", "dl", "dt", "fieldset", "figcaption",
        "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "html", "li", "main", "nav",
        "ol", "p", "pre", "section", "table", "tbody", "thead", "tfoot", "tr", "ul", "title", "center",
    };

    private static readonly HashSet<string> InlineTags = new(StringComparer.OrdinalIgnoreCase)
    {
        "a", "abbr", "b", "big", "cite", "code", "em", "font", "i", "img", "input", "kbd", "label", "mark", "meta",
        "link", "q", "s", "samp", "small", "span", "strike", "strong", "sub", "sup", "td", "th", "tt", "u", "var",
        "base", "button", "col", "colgroup", "caption", "select", "option", "textarea", "o:p", "wbr", "nobr", "map", "area",
    };

    private static readonly HashSet<string> ParagraphTags = new(StringComparer.OrdinalIgnoreCase)
    {
        "p", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "table", "ul", "ol", "dl", "hr", "title",
    };

    // Makes the builder end with (at least) n line breaks, unless it is empty.
    private static void EndWith(StringBuilder sb, int n)
    {
        if (sb.Length == 0) return;
        int have = 0;
        while (have < n && have < sb.Length && sb[sb.Length - 1 - have] == '\n') have++;
        sb.Append('\n', n - have);
    }

    private static readonly string[] SkipContent = ["script", "style", "head", "noscript", "template"];

    /// <summary>Strips HTML: comments, &lt;script&gt;/&lt;style&gt;/&lt;head&gt; with their content, and the tags of known HTML
    /// elements (block elements become line breaks); then decodes entities. Angle brackets that are not a known
    /// tag ("&lt;bob@example.com&gt;", "a &lt; b") stay. Text without any known tag is returned unchanged.</summary>
    public static string StripHtml(string text)
    {
        int first = text.IndexOf('<');
        if (first < 0) return text;
        var sb = new StringBuilder(text.Length);
        sb.Append(text, 0, first);
        bool sawTag = false;
        int i = first;
        while (i < text.Length)
        {
            char c = text[i];
            if (c != '<') { sb.Append(c); i++; continue; }
            if (string.CompareOrdinal(text, i, "<!--", 0, 4) == 0)
            {
                int end = text.IndexOf("-->", i + 4, StringComparison.Ordinal);
                i = end < 0 ? text.Length : end + 3; sawTag = true; continue;
            }
            if (i + 1 < text.Length && text[i + 1] == '!' && StartsWithIgnoreCase(text, i + 2, "doctype"))
            {
                int end = text.IndexOf('>', i); i = end < 0 ? text.Length : end + 1; sawTag = true; continue;
            }
            int j = i + 1;
            bool closing = j < text.Length && text[j] == '/';
            if (closing) j++;
            int nameStart = j;
            while (j < text.Length && (char.IsAsciiLetterOrDigit(text[j]) || text[j] == ':')) j++;
            string name = text[nameStart..j];
            bool known = name.Length > 0 && (BlockTags.Contains(name) || InlineTags.Contains(name) || SkipContent.Contains(name, StringComparer.OrdinalIgnoreCase));
            if (!known || j >= text.Length || !(text[j] is '>' or '/' || char.IsWhiteSpace(text[j])))
            {
                sb.Append(c); i++; continue;
            }
            int close = TagEnd(text, j);
            if (close < 0) { sb.Append(c); i++; continue; }
            sawTag = true;
            i = close + 1;
            if (!closing && SkipContent.Contains(name, StringComparer.OrdinalIgnoreCase))
            {
                int end = text.IndexOf("</" + name, i, StringComparison.OrdinalIgnoreCase);
                if (end < 0) { i = text.Length; break; }
                int endClose = text.IndexOf('>', end);
                i = endClose < 0 ? text.Length : endClose + 1;
                continue;
            }
            // Paragraph-like elements get a blank line around them, other blocks a line break; <br> always breaks.
            if (name.Equals("br", StringComparison.OrdinalIgnoreCase)) sb.Append('\n');
            else if (ParagraphTags.Contains(name)) EndWith(sb, 2);
            else if (BlockTags.Contains(name)) EndWith(sb, 1);
            else if (name.Equals("td", StringComparison.OrdinalIgnoreCase) || name.Equals("th", StringComparison.OrdinalIgnoreCase)) sb.Append(' ');
        }
        if (!sawTag) return text;
        string s = sb.ToString();
        return s.Contains('&') ? WebUtility.HtmlDecode(s) : s;
    }

    // Index of the '>' that closes a tag, skipping quoted attribute values; -1 when the tag never closes.
    private static int TagEnd(string text, int from)
    {
        char quote = '\0';
        for (int k = from; k < text.Length; k++)
        {
            char c = text[k];
            if (quote != '\0') { if (c == quote) quote = '\0'; continue; }
            if (c is '"' or '\'') quote = c;
            else if (c == '>') return k;
            else if (c == '<') return -1;
        }
        return -1;
    }

    private static bool StartsWithIgnoreCase(string text, int at, string what) =>
        at + what.Length <= text.Length && string.Compare(text, at, what, 0, what.Length, StringComparison.OrdinalIgnoreCase) == 0;

    // ---- Unicode and whitespace -----------------------------------------------------------------------

    /// <summary>NFKC normalisation; lone surrogates (which cannot be normalised) become U+FFFD first.</summary>
    public static string Nfkc(string text)
    {
        try
        {
            return text.IsNormalized(NormalizationForm.FormKC) ? text : text.Normalize(NormalizationForm.FormKC);
        }
        catch (ArgumentException)
        {
            return FixSurrogates(text).Normalize(NormalizationForm.FormKC);
        }
    }

    private static string FixSurrogates(string text)
    {
        var sb = new StringBuilder(text.Length);
        for (int i = 0; i < text.Length; i++)
        {
            char c = text[i];
            if (char.IsHighSurrogate(c) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1])) { sb.Append(c).Append(text[++i]); }
            else if (char.IsSurrogate(c)) sb.Append('\uFFFD');
            else sb.Append(c);
        }
        return sb.ToString();
    }

    /// <summary>Line endings to \n; control characters (but \n and \t), zero-width and BOM characters removed;
    /// tabs and Unicode spaces to one space; runs of spaces collapsed; lines trimmed; at most one blank line in
    /// a row; the whole text trimmed.</summary>
    public static string Whitespace(string text)
    {
        var sb = new StringBuilder(text.Length);
        int newlines = 0;       // pending line breaks, written lazily so trailing ones vanish
        bool space = false;     // pending space, written lazily so line ends are trimmed
        for (int i = 0; i < text.Length; i++)
        {
            char c = text[i];
            if (c == '\r') { if (i + 1 < text.Length && text[i + 1] == '\n') continue; c = '\n'; }
            if (c == '\n' || c == '\u2028' || c == '\u2029' || c == '\u0085') { newlines++; space = false; continue; }
            if (c == '\t' || c == ' ' || c == '\u00A0' || (c > 127 && char.GetUnicodeCategory(c) == System.Globalization.UnicodeCategory.SpaceSeparator)) { space = true; continue; }
            if (char.IsControl(c) || c is '\u200B' or '\u200C' or '\u200D' or '\u2060' or '\uFEFF' or '\u00AD') continue;
            if (sb.Length > 0)
            {
                if (newlines > 0) sb.Append('\n', Math.Min(newlines, 2));
                else if (space) sb.Append(' ');
            }
            newlines = 0; space = false;
            sb.Append(c);
        }
        string s = sb.ToString();
        return s == text ? text : s;
    }

    // ---- masking --------------------------------------------------------------------------------------

    /// <summary>Replaces URLs (http, https, ftp, www.) with <paramref name="mask"/>; trailing punctuation stays.</summary>
    public static string MaskUrls(string text, string mask = "[URL]") => ReplaceOrSame(UrlRegex(), text, mask);

    /// <summary>Replaces e-mail addresses with <paramref name="mask"/>.</summary>
    public static string MaskEmails(string text, string mask = "[EMAIL]") => ReplaceOrSame(EmailRegex(), text, mask);

    /// <summary>Replaces phone numbers (7+ digits in groups, optional +country code and (area) code, separated by
    /// spaces, dots or dashes) with <paramref name="mask"/>. Dates, times and IP addresses do not match.</summary>
    public static string MaskPhones(string text, string mask = "[PHONE]") => ReplaceOrSame(PhoneRegex(), text, mask);

    private static string ReplaceOrSame(Regex r, string text, string mask) => r.IsMatch(text) ? r.Replace(text, mask) : text;

    [GeneratedRegex(@"\b(?:(?:https?|ftp)://|www\.)[^\s<>""'`]*[^\s<>""'`.,;:!?)\]}]", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    private static partial Regex UrlRegex();

    [GeneratedRegex(@"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b", RegexOptions.CultureInvariant)]
    private static partial Regex EmailRegex();

    [GeneratedRegex(@"(?<![\w.+\-:/])(?:\+\d{1,3}[ .-]?)?(?:\(\d{2,4}\)[ .-]?|\d{2,4}[ .-])\d{3,4}[ .-]?\d{3,4}(?![\w.-]?\d)", RegexOptions.CultureInvariant)]
    private static partial Regex PhoneRegex();

    // ---- helpers --------------------------------------------------------------------------------------

    private static List<string> SplitLines(string text)
    {
        var lines = new List<string>();
        int start = 0;
        for (int i = 0; i < text.Length; i++)
        {
            if (text[i] != '\n') continue;
            int end = i > start && text[i - 1] == '\r' ? i - 1 : i;
            lines.Add(text[start..end]);
            start = i + 1;
        }
        if (start < text.Length) lines.Add(text[start..].TrimEnd('\r'));
        return lines;
    }
}
