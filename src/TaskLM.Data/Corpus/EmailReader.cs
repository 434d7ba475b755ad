// Raw RFC 822 / MIME emails to fields with MimeKit: headers, subject, and a decoded text body.
using System.Text;
using System.Text.Json.Nodes;
using MimeKit;

namespace TaskLM.Data.Corpus;

/// <summary>Which parts of an email make up its <c>text</c> field.</summary>
[Flags]
public enum EmailParts
{
    /// <summary>The Subject header.</summary>
    Subject = 1,
    /// <summary>The decoded body: text/plain parts, else text/html parts converted to text.</summary>
    Body = 2,
    /// <summary>All headers, one "Name: value" line each (decoded).</summary>
    Headers = 4,
}

/// <summary>Parses emails: MIME structure, quoted-printable and base64 transfer encodings, RFC 2047 encoded
/// headers and charsets are decoded by MimeKit. Each email becomes <c>{"subject", "from", "to", "date",
/// "body", "text"}</c>, where <c>text</c> joins the chosen <see cref="EmailParts"/>.</summary>
public static class EmailReader
{
    /// <summary>Parses the email in <paramref name="file"/>.</summary>
    public static JsonObject ReadFile(string file, EmailParts parts = EmailParts.Subject | EmailParts.Body)
    {
        using var s = File.OpenRead(file);
        return Parse(s, file, 0, parts);
    }

    /// <summary>Parses an email held as text whose characters map to its bytes through <paramref name="encoding"/>
    /// (as in the shipped spam-assassin corpus: <c>raw</c> + <c>encoding</c>).</summary>
    public static JsonObject ParseText(string raw, string encoding, string source, long line, EmailParts parts = EmailParts.Subject | EmailParts.Body)
    {
        Encoding.RegisterProvider(CodePagesEncodingProvider.Instance);
        var enc = encoding.Equals("latin-1", StringComparison.OrdinalIgnoreCase) ? Encoding.Latin1 : Encoding.GetEncoding(encoding);
        using var s = new MemoryStream(enc.GetBytes(raw));
        return Parse(s, source, line, parts);
    }

    /// <summary>Parses one email from a stream; a stream that is not an email is a <see cref="DataFormatException"/>.</summary>
    public static JsonObject Parse(Stream stream, string source, long line, EmailParts parts = EmailParts.Subject | EmailParts.Body)
    {
        MimeMessage msg;
        try
        {
            // mbox "From " separator lines (the SpamAssassin files start with one) are tolerated by the entity parser.
            msg = MimeMessage.Load(new ParserOptions { AllowAddressesWithoutDomain = true }, stream);
        }
        catch (FormatException e)
        {
            throw new DataFormatException(source, line, $"not a parsable email: {e.Message}", e);
        }
        if (msg.Headers.Count == 0)
            throw new DataFormatException(source, line, "not an email: no headers");

        var body = Body(msg);
        var sb = new StringBuilder();
        if (parts.HasFlag(EmailParts.Headers))
            foreach (var h in msg.Headers) sb.Append(h.Field).Append(": ").Append(h.Value.Trim()).Append('\n');
        if (parts.HasFlag(EmailParts.Subject) && !string.IsNullOrEmpty(msg.Subject))
            sb.Append(msg.Subject.Trim()).Append('\n');
        if (parts.HasFlag(EmailParts.Body))
        {
            if (sb.Length > 0) sb.Append('\n');
            sb.Append(body);
        }
        return new JsonObject
        {
            ["subject"] = msg.Subject,
            ["from"] = msg.From.ToString(),
            ["to"] = msg.To.ToString(),
            ["date"] = msg.Headers.Contains(HeaderId.Date) ? msg.Date.ToString("o") : null,
            ["body"] = body,
            ["text"] = sb.ToString().Trim(),
        };
    }

    /// <summary>One row per email file (a file or a folder of them), in path order.</summary>
    public static IEnumerable<DataRow> ReadFiles(string path, EmailParts parts = EmailParts.Subject | EmailParts.Body, RowErrors? errors = null, string? include = null)
    {
        long i = 0;
        foreach (var (file, rel) in TextFiles.ListFiles(path, include))
        {
            i++;
            JsonObject fields;
            try { fields = ReadFile(file, parts); }
            catch (DataFormatException e) { if (errors == null) throw; errors.Report(e); continue; }
            fields["file"] = rel;
            yield return new DataRow(fields, file, i);
        }
    }

    // A base64 body ends at its padding or at the first line that is not base64: mailing lists append plain-text
    // footers to single-part base64 messages, which a decoder reading on would turn into garbage characters.
    static string? Base64Text(TextPart part)
    {
        if (part.Content == null) return null;
        using var ms = new MemoryStream();
        part.Content.WriteTo(ms);  // the encoded bytes, as in the message
        var b64 = new StringBuilder();
        foreach (var raw in Encoding.Latin1.GetString(ms.ToArray()).Split('\n'))
        {
            var line = raw.Trim();
            if (line.Length == 0) { if (b64.Length > 0) break; continue; }
            if (!line.All(c => char.IsAsciiLetterOrDigit(c) || c is '+' or '/' or '=')) break;
            b64.Append(line);
            if (line.Contains('=')) break;
        }
        while (b64.Length % 4 != 0) b64.Append('=');
        byte[] bytes;
        try { bytes = Convert.FromBase64String(b64.ToString()); }
        catch (FormatException) { return null; }  // leave it to MimeKit's lenient decoder
        Encoding.RegisterProvider(CodePagesEncodingProvider.Instance);
        Encoding enc;
        try { enc = part.ContentType.CharsetEncoding ?? Encoding.UTF8; }
        catch (Exception e) when (e is ArgumentException or NotSupportedException) { enc = Encoding.UTF8; }
        return enc.GetString(bytes);
    }

    // text/plain parts joined; an HTML-only message is converted to text. Attachments are left out.
    static string Body(MimeMessage msg)
    {
        var plain = new List<string>();
        var html = new List<string>();
        foreach (var part in msg.BodyParts.OfType<TextPart>())
        {
            if (part.IsAttachment) continue;
            string text;
            try { text = (part.ContentTransferEncoding == ContentEncoding.Base64 ? Base64Text(part) : null) ?? part.Text ?? ""; }
            catch (Exception e) when (e is ArgumentException or NotSupportedException) { text = ""; }  // unknown charset: treated as empty
            if (part.IsHtml) html.Add(text);
            else if (part.IsPlain || part.IsEnriched || part.IsFlowed) plain.Add(text);
        }
        if (plain.Count > 0) return string.Join("\n", plain).Replace("\r\n", "\n").Trim();
        return string.Join("\n", html.Select(h => HtmlText.Convert(h).Text)).Trim();
    }
}
