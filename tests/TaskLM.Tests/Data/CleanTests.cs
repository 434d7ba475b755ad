// Cleaning: each transform on published or hand-checked examples, label checks, the report and the CLI verb.
using System.Text.Json;
using System.Text.Json.Nodes;
using TaskLM.Data.Corpus;

namespace TaskLM.Tests.Data;

public class CleanTests
{
    internal static DataRow Row(string text, string? label = "ham", long line = 1)
    {
        var o = new JsonObject { ["text"] = text };
        if (label != null) o["label"] = label;
        return new DataRow(o, "mem.jsonl", line);
    }

    [Fact]
    public void MaskingReplacesEmailsUrlsAndPhonesButNotDatesTimesOrAddresses()
    {
        string s = "Write to bob.smith@example.co.uk or see https://example.com/a?b=1. Call +1 (555) 123-4567, 555-123-4567 or +44 20 7946 0958.";
        string masked = CleaningText.MaskPhones(CleaningText.MaskEmails(CleaningText.MaskUrls(s)));
        Assert.Equal("Write to [EMAIL] or see [URL]. Call [PHONE], [PHONE] or [PHONE].", masked);

        // Things that look numeric but are not phone numbers stay.
        string keep = "On 2002-08-22 at 12:36:23 from 127.0.0.1, version 1.2.3, order #12345, logged 12:04:13.785852.";
        Assert.Equal(keep, CleaningText.MaskPhones(keep));
        Assert.Equal("visit [URL], then stop", CleaningText.MaskUrls("visit www.example.org/x, then stop"));
    }

    [Fact]
    public void EmailBoilerplateLeavesOnlySubjectAndNewText()
    {
        string raw = string.Join("\n",
            "From alice@example.com  Thu Aug 22 12:36:23 2002",
            "Return-Path: <alice@example.com>",
            "Received: from mail.example.com (mail [10.0.0.1])",
            "\tby mx.example.org with ESMTP",
            "Subject: Re: lunch",
            " on Friday",
            "Date: Thu, 22 Aug 2002 12:36:23 +0100",
            "",
            "Friday works for me.",
            ">From Monday on I am away.",   // mbox's escape of a body line starting "From ", not a quote
            "",
            "On Thu, 22 Aug 2002, Bob wrote:",
            "> Shall we have lunch on Friday?",
            "> -- Bob",
            "",
            "See you there.",
            "-- ",
            "Alice Example",
            "Head of Lunch",
            "_______________________________________________",
            "Lunch mailing list",
            "https://lists.example.com/lunch");
        var o = new CleaningOptions { NearDedup = null };
        var p = new CleaningPipeline(o);
        var kept = p.Run([Row(raw)]).Single();
        Assert.Equal("Re: lunch on Friday\n\nFriday works for me.\nFrom Monday on I am away.\n\nSee you there.", (string)kept.Fields["text"]!);
        Assert.Equal(1, p.Report.Step("email_headers").RowsChanged);
        Assert.Equal(1, p.Report.Step("email_quotes").RowsChanged);
        Assert.Equal(1, p.Report.Step("email_signature").RowsChanged);

        // A body that merely starts with "Note:" is not a header block.
        Assert.Equal("Note: bring cash\n\nthanks", CleaningText.StripEmailHeaders("Note: bring cash\n\nthanks"));
    }

    [Fact]
    public void HtmlIsStrippedButAngleBracketAddressesStay()
    {
        string html = "<html><head><title>t</title><style>p{color:red}</style></head><body><!-- c --><p>Hello&nbsp;<b>world</b> &amp; friends</p>"
                    + "<script>alert('x')</script><ul><li>one</li><li>two</li></ul></body></html>";
        Assert.Equal("Hello world & friends\n\none\ntwo", CleaningText.Whitespace(CleaningText.StripHtml(html)));
        string mail = "Reply to Bob <bob@example.com> if 3 < 4.";
        Assert.Same(mail, CleaningText.StripHtml(mail));
    }

    [Fact]
    public void NfkcAndWhitespaceFollowTheUnicodeStandard()
    {
        // NFKC examples from UAX #15: the ﬁ ligature, full-width Latin, circled digits, superscripts.
        Assert.Equal("fi ABC 1 2", CleaningText.Nfkc("ﬁ ＡＢＣ ① ²"));
        Assert.Equal("a b\n\nc d", CleaningText.Whitespace("  a \t b\r\n\r\n\r\n\r\nc\u200B\u00A0d\u0007  \n"));
        // A lone surrogate cannot be normalised; it becomes U+FFFD instead of throwing.
        Assert.Equal("x\uFFFDy", CleaningText.Nfkc("x\uD800y"));
    }

    [Fact]
    public void LabelValidationRemovesMissingAndUnknownAndReportsBalance()
    {
        var rows = new[]
        {
            Row("first message about lunch", "ham", 1), Row("win money now", "spam", 2), Row("no label here", null, 3),
            Row("a phishing attempt", "phish", 4), Row("second message about dinner", "ham", 5), Row("third one about tea", "ham", 6),
        };
        var p = new CleaningPipeline(new CleaningOptions { Labels = ["ham", "spam"], NearDedup = null });
        var kept = p.Run(rows).Select(r => r.Line).ToList();
        Assert.Equal([1L, 2, 5, 6], kept);
        var lr = p.Report.Labels!;
        Assert.Equal(1, lr.Missing);
        Assert.Equal(1, lr.Unknown["phish"]);
        Assert.Equal(3, lr.After["ham"]);
        Assert.Equal(1, lr.After["spam"]);
        Assert.Equal(3.0, lr.ImbalanceRatio);
        Assert.Equal(2, p.Report.Step("label").Removed);
        Assert.Equal(["missing label", "unknown label 'phish'"], p.Report.Step("label").Reasons.Keys);
    }

    [Fact]
    public void OptionsFromJsonRejectUnknownKeysByName()
    {
        var o = CleaningOptions.FromJson("""{"strip_html": false, "mask_emails": true, "near_dedup": {"threshold": 0.7, "shingles": "char"}}""");
        Assert.False(o.StripHtml);
        Assert.True(o.MaskEmails);
        Assert.Equal(0.7, o.NearDedup!.Threshold);
        Assert.Equal(ShingleKind.Char, o.NearDedup.Shingles);
        var e = Assert.Throws<InvalidDataException>(() => CleaningOptions.FromJson("""{"strip_htm": false}""", "recipe.yaml"));
        Assert.Contains("strip_htm", e.Message);
        Assert.StartsWith("recipe.yaml", e.Message);
    }

    [Fact]
    public void CleanVerbWritesOutputReportAndEveryRemovedRow()
    {
        string dir = Directory.CreateTempSubdirectory("tasklm-clean-").FullName;
        try
        {
            string input = Path.Combine(dir, "in.jsonl");
            var lines = new List<string>();
            for (int i = 0; i < 20; i++)
                lines.Add(new JsonObject { ["text"] = $"<p>Message {i}: " + string.Join(' ', DedupTests.Words(60, i)) + "</p>", ["label"] = i % 4 == 0 ? "spam" : "ham" }.ToJsonString());
            lines.Add(new JsonObject { ["text"] = "<p>Message 3: " + string.Join(' ', DedupTests.Words(60, 3)) + "</p>", ["label"] = "ham" }.ToJsonString()); // exact dup of row 4
            lines.Add(new JsonObject { ["text"] = "   ", ["label"] = "ham" }.ToJsonString());                                                          // empty after cleaning
            File.WriteAllLines(input, lines);

            var r = CliRunner.Run("data", "clean", input, "--out", Path.Combine(dir, "out.jsonl"), "--removed", Path.Combine(dir, "removed.jsonl"), "--mask", "emails");
            Assert.True(r.ExitCode == 0, r.Stderr + r.Stdout);
            Assert.Contains("exact_dedup", r.Stdout);
            var report = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "clean-report.json")))!;
            Assert.Equal(22, (int)report["input_rows"]!);
            Assert.Equal(20, (int)report["output_rows"]!);
            var steps = report["steps"]!.AsArray().ToDictionary(s => (string)s!["step"]!, s => s!);
            Assert.Equal(1, (int)steps["exact_dedup"]["removed"]!);
            Assert.Equal("in.jsonl:4", Path.GetFileName((string)steps["exact_dedup"]["examples"]![0]!["duplicate_of"]!));
            Assert.Equal(1, (int)steps["length_chars"]["removed"]!);
            Assert.Equal(21, (int)steps["html"]["rows_changed"]!);
            var outRows = File.ReadAllLines(Path.Combine(dir, "out.jsonl")).Select(l => JsonNode.Parse(l)!).ToList();
            Assert.Equal(20, outRows.Count);
            Assert.All(outRows, o => Assert.DoesNotContain("<p>", (string)o["text"]!));
            // Nothing silently dropped: input = output + removed file.
            var removed = File.ReadAllLines(Path.Combine(dir, "removed.jsonl")).Select(l => JsonNode.Parse(l)!).ToList();
            Assert.Equal(["exact_dedup", "length_chars"], removed.Select(x => (string)x["_removed_step"]!).Order());

            var bad = CliRunner.Run("data", "clean", input, "--out", Path.Combine(dir, "o2.jsonl"), "--text-column", "body");
            Assert.Equal(1, bad.ExitCode);
            // The one-line error may be wrapped to the console width: compare with whitespace collapsed.
            Assert.Contains("in.jsonl:1: no text column 'body'; the row has: text, label", string.Join(' ', bad.Stderr.Split((char[])[' ', '\n', '\r'], StringSplitOptions.RemoveEmptyEntries)));
        }
        finally { Directory.Delete(dir, true); }
    }
}
