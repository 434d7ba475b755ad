// Each reader on small real samples (tests/fixtures/data): values checked against Python's csv/email modules and a JavaScript Parquet writer.
using System.Text.Json;
using System.Text.Json.Nodes;
using TaskLM.Data.Corpus;

namespace TaskLM.Tests.Data;

public class ReaderTests
{
    static string Fx(params string[] parts) => Path.Combine([AppContext.BaseDirectory, "fixtures", "data", .. parts]);

    static string Tmp(string name)
    {
        var dir = Path.Combine(Path.GetTempPath(), "tasklm-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        return Path.Combine(dir, name);
    }

    [Fact]
    public void Jsonl_round_trips_through_gzip_with_unicode_and_line_numbers()
    {
        var path = Tmp("rows.jsonl.gz");
        var rows = new[]
        {
            new JsonObject { ["text"] = "naïve café — “quotes”\nsecond line", ["label"] = 1 },
            new JsonObject { ["tokens"] = new JsonArray("a", "b"), ["x"] = null },
        };
        Assert.Equal(2, JsonlFile.Write(path, rows));
        var bytes = File.ReadAllBytes(path);
        Assert.Equal(new byte[] { 0x1f, 0x8b }, bytes[..2]);  // gzip magic
        var back = JsonlFile.Read(path).ToList();
        Assert.Equal([1L, 2L], back.Select(r => r.Line));
        Assert.Equal(rows[0].ToJsonString(), back[0].Fields.ToJsonString());
        Assert.Equal(rows[1].ToJsonString(), back[1].Fields.ToJsonString());
        Assert.False(File.Exists(path + ".tmp-" + Environment.ProcessId));
    }

    [Fact]
    public void Jsonl_malformed_line_error_names_file_and_line()
    {
        var path = Fx("bad.jsonl");
        var e = Assert.Throws<DataFormatException>(() => JsonlFile.Read(path).ToList());
        Assert.Equal(path, e.File);
        Assert.Equal(3, e.Line);
        Assert.StartsWith($"{path}:3: invalid JSON at column 20: 'l' is invalid after a value", e.Message);
    }

    [Fact]
    public void Jsonl_skip_mode_counts_and_lists_skipped_rows()
    {
        var errors = new RowErrors(OnError.Skip);
        var rows = JsonlFile.Read(Fx("bad.jsonl"), errors).ToList();
        Assert.Equal(["fine", "also fine", "last"], rows.Select(r => r.Fields["text"]!.GetValue<string>()));
        Assert.Equal(6, rows[^1].Line);  // blank line 4 counted, not a row
        Assert.Equal(2, errors.Skipped);
        Assert.Equal([3L, 5L], errors.Listed.Select(e => e.Line));
        Assert.Contains("expected a JSON object, found array", errors.Listed[1].Message);
    }

    [Fact]
    public void Csv_nasty_file_matches_python_csv_module()
    {
        var expected = JsonNode.Parse(File.ReadAllText(Fx("nasty.expected.json")))!;
        Assert.Equal(";", expected["delimiter"]!.GetValue<string>());  // Python's sniffer agrees the file is ;-separated
        var rows = CsvFile.Read(Fx("nasty.csv")).ToList();  // delimiter sniffed, BOM dropped
        var want = expected["rows"]!.AsArray();
        Assert.Equal(want.Count, rows.Count);
        for (int i = 0; i < rows.Count; i++)
            Assert.Equal(want[i]!.ToJsonString(), rows[i].Fields.ToJsonString());
        Assert.Equal("id", rows[0].Fields.First().Key);
        // Record 3 spans lines 4-7 (CRLFs inside quotes); the records after it keep their true start lines.
        Assert.Equal([2L, 3L, 4L, 8L, 9L, 10L, 12L], rows.Select(r => r.Line));
    }

    [Fact]
    public void Csv_wrong_field_count_fails_with_line_or_is_skipped_and_listed()
    {
        var path = Fx("bad.csv");
        var e = Assert.Throws<DataFormatException>(() => CsvFile.Read(path).ToList());
        Assert.Equal($"{path}:3: expected 2 fields (as in the header), found 3", e.Message);

        var errors = new RowErrors(OnError.Skip);
        var rows = CsvFile.Read(path, errors: errors).ToList();
        Assert.Equal(["good one", "two\r\nlines", "last"], rows.Select(r => r.Fields["text"]!.GetValue<string>()));
        Assert.Equal([2L, 4L, 7L], rows.Select(r => r.Line));
        Assert.Equal([3L, 6L], errors.Listed.Select(x => x.Line));
    }

    [Fact]
    public void Tsv_reads_quotes_and_commas_literally()
    {
        var rows = DataImport.Read(Fx("sample.tsv"), new ImportOptions(), new RowErrors()).ToList();
        Assert.Equal(2, rows.Count);
        Assert.Equal("A \"quoted\" word, and a comma", rows[1].Fields["sentence"]!.GetValue<string>());
        Assert.Equal("negative", rows[1].Fields["label"]!.GetValue<string>());
    }

    [Fact]
    public void Parquet_reads_a_file_written_by_hyparquet_writer()
    {
        // Written by hyparquet-writer 0.17.0 (JavaScript), two row groups of two rows (make_hyparquet.mjs).
        var rows = ParquetFile.Read(Fx("hyparquet.parquet")).ToList();
        Assert.Equal([1L, 2L, 3L, 4L], rows.Select(r => r.Line));
        Assert.Equal(["The movie was great", "naïve café — “quotes”", "A second row group starts here", "last one"],
            rows.Select(r => r.Fields["text"]!.GetValue<string>()));
        Assert.Equal([1L, 0L, 1L, 0L], rows.Select(r => r.Fields["label"]!.GetValue<long>()));
        Assert.Equal([0.5, -1.25, 3.0, 2.5], rows.Select(r => r.Fields["score"]!.GetValue<double>()));
        Assert.Null(rows[2].Fields["flag"]);
        Assert.True(rows[3].Fields["flag"]!.GetValue<bool>());
    }

    [Fact]
    public void Parquet_round_trips_what_it_writes()
    {
        var path = Tmp("t.parquet");
        var rows = new List<JsonObject>
        {
            new() { ["text"] = "héllo", ["n"] = 1.5, ["ok"] = true },
            new() { ["text"] = null, ["n"] = -2.0, ["ok"] = null },
            new() { ["text"] = "world", ["n"] = null, ["ok"] = false },
        };
        ParquetFile.Write(path, rows);
        var back = ParquetFile.Read(path).ToList();
        Assert.Equal(rows.Select(r => r.ToJsonString()), back.Select(r => r.Fields.ToJsonString()));
    }

    [Theory]
    [InlineData("qp-windows-1252.eml")]   // multipart, quoted-printable, windows-1252
    [InlineData("base64-gb2312.eml")]     // base64 body in GB2312
    [InlineData("plain-ham.eml")]         // plain 7-bit ham with an mbox "From " line
    public void Email_body_and_subject_match_python_email_module(string name)
    {
        // Real messages from the SpamAssassin corpus; expected.json holds what Python's email package decoded.
        var expected = JsonNode.Parse(File.ReadAllText(Fx("emails", "expected.json")))!["emails"]![name]!;
        var fields = EmailReader.ReadFile(Fx("emails", name));
        Assert.Equal(Norm(expected["body"]!.GetValue<string>()), Norm(fields["body"]!.GetValue<string>()));
        if (expected["subject"] is JsonNode subject)
        {
            Assert.Equal(subject.GetValue<string>(), fields["subject"]!.GetValue<string>());
            Assert.StartsWith(subject.GetValue<string>(), fields["text"]!.GetValue<string>());  // default parts: subject + body
        }
    }

    [Fact]
    public void Email_parts_choose_what_text_holds()
    {
        var headers = EmailReader.ReadFile(Fx("emails", "plain-ham.eml"), EmailParts.Headers)["text"]!.GetValue<string>();
        Assert.Contains("Subject: Re: New Sequences Window", headers);
        Assert.DoesNotContain("I can't reproduce this error", headers);
        var body = EmailReader.ReadFile(Fx("emails", "plain-ham.eml"), EmailParts.Body)["text"]!.GetValue<string>();
        Assert.DoesNotContain("Re: New Sequences Window", body.Split('\n')[0]);
        Assert.Contains("I can't reproduce this error", body);
    }

    [Fact]
    public void Html_becomes_text_without_scripts_styles_or_markup()
    {
        var (title, text) = HtmlText.Convert(File.ReadAllText(Fx("page.html")));
        Assert.Equal("Whaling & the Sea", title);
        Assert.Contains("Call me Ishmael. Some years ago—never mind how long precisely—having little money.", text);
        Assert.Contains("Loomings", text);
        Assert.Contains("second item", text);
        Assert.Contains("cell one cell two", text);
        foreach (var hidden in new[] { "tracking", "font-family", "enable javascript", "<", "&amp;" })
            Assert.DoesNotContain(hidden, text);
    }

    [Fact]
    public void Lines_and_undecodable_bytes_name_the_line_unless_encoding_is_given()
    {
        Assert.Equal(["first document", "second document", "third document"],
            TextFiles.ReadLines(Fx("lines.txt")).Select(r => r.Fields["text"]!.GetValue<string>()));
        var e = Assert.Throws<DataFormatException>(() => TextFiles.ReadLines(Fx("latin1.txt")).ToList());
        Assert.Equal(2, e.Line);
        Assert.Contains("not valid utf-8", e.Message);
        var latin = TextFiles.ReadLines(Fx("latin1.txt"), encoding: "latin-1").ToList();
        Assert.Equal("café in latin-1", latin[1].Fields["text"]!.GetValue<string>());
    }

    [Fact]
    public void Folder_of_files_takes_the_subfolder_as_label()
    {
        var root = Fx("folder");
        Assert.Equal(InputFormat.Folder, DataImport.Detect(root));
        var rows = DataImport.Read(root, new ImportOptions(), new RowErrors()).ToList();
        Assert.Equal(["neg", "pos", "pos"], rows.Select(r => r.Fields["label"]!.GetValue<string>()));
        Assert.Equal(["neg/c.txt", "pos/a.txt", "pos/b.txt"], rows.Select(r => r.Fields["file"]!.GetValue<string>()));
        Assert.Equal("Dull and slow.\n", rows[0].Fields["text"]!.GetValue<string>());
    }

    [Fact]
    public void Auto_format_follows_extension_and_content()
    {
        Assert.Equal(InputFormat.Csv, DataImport.Detect(Fx("nasty.csv")));
        Assert.Equal(InputFormat.Tsv, DataImport.Detect(Fx("sample.tsv")));
        Assert.Equal(InputFormat.Jsonl, DataImport.Detect(Fx("bad.jsonl")));
        Assert.Equal(InputFormat.Parquet, DataImport.Detect(Fx("hyparquet.parquet")));
        Assert.Equal(InputFormat.Html, DataImport.Detect(Fx("page.html")));
        Assert.Equal(InputFormat.Email, DataImport.Detect(Fx("emails", "plain-ham.eml")));
        Assert.Equal(InputFormat.Lines, DataImport.Detect(Fx("lines.txt")));
    }

    static string Norm(string s) => string.Join(' ', s.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries));
}
