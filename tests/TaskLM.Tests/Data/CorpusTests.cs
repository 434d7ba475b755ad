// The shipped corpora (data/): complete, with counts that match their published figures, and listed by `tasklm data list`.
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using TaskLM.Data.Corpus;

namespace TaskLM.Tests.Data;

public class CorpusTests
{
    static readonly CorpusCatalog Catalog = CorpusCatalog.Load();

    static List<DataRow> Rows(string name) => JsonlFile.Read(Catalog.PathOf(Catalog.Get(name))).ToList();

    [Fact]
    public void Spam_assassin_has_all_6046_emails_by_folder_and_raw_bytes_are_lossless()
    {
        var rows = Rows("spam-assassin");
        Assert.Equal(6046, rows.Count);
        // Folder sizes as the package README lists them (2500 / 1400 / 250 / 500 / 1396).
        var byFolder = rows.GroupBy(r => r.Fields["folder"]!.GetValue<string>()).ToDictionary(g => g.Key, g => g.Count());
        Assert.Equal(new Dictionary<string, int> { ["easy-ham-1"] = 2500, ["easy-ham-2"] = 1400, ["hard-ham-1"] = 250, ["spam-1"] = 500, ["spam-2"] = 1396 }, byFolder);
        Assert.Equal(1896, rows.Count(r => r.Fields["label"]!.GetValue<string>() == "spam"));
        int nameHashMatches = 0;
        foreach (var r in rows)
        {
            var enc = r.Fields["encoding"]!.GetValue<string>() == "latin-1" ? Encoding.Latin1 : Encoding.UTF8;
            var md5 = Convert.ToHexStringLower(MD5.HashData(enc.GetBytes(r.Fields["raw"]!.GetValue<string>())));
            Assert.Equal(r.Fields["md5"]!.GetValue<string>(), md5);
            // SpamAssassin names each file after the MD5 of its bytes: an outside check that the bytes are the original ones.
            if (r.Fields["id"]!.GetValue<string>().EndsWith("." + md5)) nameHashMatches++;
        }
        Assert.Equal(6045, nameHashMatches);  // one file (hard-ham-1/00230) differs from its name's hash in the package itself
    }

    [Fact]
    public void Brown_has_500_documents_15_genres_and_nltks_token_counts()
    {
        // Read with JsonDocument (no node tree): 1.16 M tokens.
        using var reader = JsonlFile.OpenText(Catalog.PathOf(Catalog.Get("brown")));
        var docs = new List<JsonDocument>();
        for (string? line; (line = reader.ReadLine()) != null;) docs.Add(JsonDocument.Parse(line));
        Assert.Equal(500, docs.Count);
        Assert.Equal(15, docs.Select(d => d.RootElement.GetProperty("genre").GetString()).Distinct().Count());
        long sentences = 0, tokens = 0;
        foreach (var d in docs)
        {
            var toks = d.RootElement.GetProperty("tokens");
            var tags = d.RootElement.GetProperty("tags");
            Assert.Equal(toks.GetArrayLength(), tags.GetArrayLength());
            foreach (var (s, t) in toks.EnumerateArray().Zip(tags.EnumerateArray()))
            {
                Assert.Equal(s.GetArrayLength(), t.GetArrayLength());
                tokens += s.GetArrayLength();
            }
            sentences += toks.GetArrayLength();
        }
        foreach (var d in docs) d.Dispose();
        var rows = JsonlFile.Read(Catalog.PathOf(Catalog.Get("brown"))).Take(1).ToList();
        // NLTK's brown reader over the same corpus: len(brown.sents()) == 57340, len(brown.words()) == 1161192.
        Assert.Equal(57_340, sentences);
        Assert.Equal(1_161_192, tokens);
        var first = rows[0].Fields;
        Assert.Equal("news", first["genre"]!.GetValue<string>());
        Assert.Equal("The Fulton County Grand Jury", string.Join(' ', first["tokens"]![0]!.AsArray().Take(5).Select(t => t!.GetValue<string>())));
        Assert.Equal("at np-tl nn-tl jj-tl nn-tl", string.Join(' ', first["tags"]![0]!.AsArray().Take(5).Select(t => t!.GetValue<string>())));
    }

    [Fact]
    public void Sotu_and_moby_dick_are_complete_and_in_order()
    {
        var sotu = Rows("sotu");
        Assert.Equal(233, sotu.Count);
        Assert.Equal(1790, sotu[0].Fields["year"]!.GetValue<int>());
        Assert.Equal("George Washington", sotu[0].Fields["president"]!.GetValue<string>());
        Assert.All(sotu, r => Assert.False(string.IsNullOrWhiteSpace(r.Fields["party"]!.GetValue<string>())));
        Assert.Equal(sotu.Select(r => r.Fields["year"]!.GetValue<int>()).Order(), sotu.Select(r => r.Fields["year"]!.GetValue<int>()));

        var moby = Rows("moby-dick");
        Assert.Equal(139, moby.Count);
        var chapters = moby.Select(r => r.Fields["chapter"]!.GetValue<string>()).ToList();
        Assert.Equal(["Contents", "Etymology", "Extracts"], chapters[..3]);
        Assert.Equal(Enumerable.Range(1, 135).Select(i => i.ToString()), chapters[3..138]);
        Assert.Equal("Epilogue", chapters[138]);
        Assert.StartsWith("Call me Ishmael.", moby[3].Fields["text"]!.GetValue<string>());
    }

    [Fact]
    public void Catalog_row_counts_match_the_files_and_total_size_stays_small()
    {
        long total = 0;
        foreach (var c in Catalog.Corpora)
        {
            var path = Catalog.PathOf(c);
            total += new FileInfo(path).Length;
            Assert.Equal(c.Rows, JsonlFile.Read(path).LongCount());
        }
        Assert.True(total < 25_000_000, $"corpora take {total:N0} bytes");
    }

    [Fact]
    public void Cli_data_list_shows_the_six_corpora_with_their_rows()
    {
        var r = CliRunner.Run("data", "list", "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var corpora = JsonNode.Parse(r.Stdout)!["corpora"]!.AsArray();
        Assert.Equal(["spam-assassin:6046", "brown:500", "sotu:233", "moby-dick:139", "kjv:1189", "wordnet:117659"],
            corpora.Select(c => $"{c!["name"]}:{c["rows"]}"));
        Assert.All(corpora, c => Assert.True(c!["bytes"]!.GetValue<long>() > 100_000));
        var table = CliRunner.Run("data", "list");
        Assert.Contains("6,046", table.Stdout);
        Assert.Contains("token-classification", table.Stdout);
    }

    static IEnumerable<string> ReadAll(StreamReader r)
    {
        for (string? line; (line = r.ReadLine()) != null;) yield return line;
    }

    // The error line is wrapped to the console width (even inside a long path), so compare without whitespace.
    static string OneLine(string s) => System.Text.RegularExpressions.Regex.Replace(s, @"\s+", "");

    [Fact]
    public void Cli_imports_spam_corpus_emails_and_reports_skipped_rows()
    {
        var dir = Path.Combine(Path.GetTempPath(), "tasklm-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            // Parse every 30th of the shipped raw emails into text + label.
            var sample = Path.Combine(dir, "sample.jsonl");
            using (var src = JsonlFile.OpenText(Catalog.PathOf(Catalog.Get("spam-assassin"))))
                File.WriteAllLines(sample, ReadAll(src).Where((_, i) => i % 30 == 0));
            var outPath = Path.Combine(dir, "emails.jsonl.gz");
            var r = CliRunner.Run("data", "import", sample, "--email-field", "raw", "--text-column", "text", "--label-column", "label", "--out", outPath, "--json");
            Assert.True(r.ExitCode == 0, r.Stderr);
            var report = JsonNode.Parse(r.Stdout)!;
            Assert.Equal(202, report["rows"]!.GetValue<long>());
            Assert.Equal(["text", "label"], report["columns"]!.AsArray().Select(c => c!.GetValue<string>()));
            var rows = JsonlFile.Read(outPath).ToList();
            Assert.Equal("Re: New Sequences Window", rows[0].Fields["text"]!.GetValue<string>().Split('\n')[0]);
            Assert.True(File.Exists(Path.Combine(dir, "emails.import-report.json")));

            // Malformed JSONL: fail names file:line; skip counts and lists.
            var bad = Path.Combine(AppContext.BaseDirectory, "fixtures", "data", "bad.jsonl");
            var fail = CliRunner.Run("data", "import", bad, "--out", Path.Combine(dir, "x.jsonl"));
            Assert.Equal(1, fail.ExitCode);
            Assert.Contains(OneLine($"{bad}:3: invalid JSON at column 20"), OneLine(fail.Stderr));
            var skip = CliRunner.Run("data", "import", bad, "--out", Path.Combine(dir, "y.jsonl"), "--on-error", "skip", "--json");
            Assert.True(skip.ExitCode == 0, skip.Stderr);
            var sk = JsonNode.Parse(skip.Stdout)!;
            Assert.Equal(3, sk["rows"]!.GetValue<long>());
            Assert.Equal(2, sk["skipped"]!.GetValue<long>());
            Assert.Equal([3L, 5L], sk["skipped_rows"]!.AsArray().Select(x => x!["line"]!.GetValue<long>()));

        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
