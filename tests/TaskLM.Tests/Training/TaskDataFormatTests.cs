// Training data in every format the data side reads: the same rows as JSONL, CSV, TSV and Parquet (each also .gz)
// become the same examples; a malformed row names the file and line.
using System.IO.Compression;
using System.Text.Json.Nodes;
using TaskLM.Data.Corpus;
using TaskLM.Data.Tokenization;
using TaskLM.Recipes;
using TaskLM.Tasks;

namespace TaskLM.Tests.Training;

public class TaskDataFormatTests
{
    static readonly (string Text, string Label)[] Rows =
    [
        ("win a free prize, now", "spam"), ("meeting moved to \"monday\"", "ham"), ("cheap pills, online", "spam"),
        ("lunch at noon?", "ham"), ("you have been selected", "spam"),
    ];

    static JsonObject Row((string Text, string Label) r) => new() { ["text"] = r.Text, ["label"] = r.Label };

    // CSV quotes every text (commas and quotes inside); TSV cells are plain (no tabs inside).
    static string Csv() => "text,label\n" + string.Join("\n", Rows.Select(r => $"\"{r.Text.Replace("\"", "\"\"")}\",{r.Label}")) + "\n";
    static string Tsv() => "text\tlabel\n" + string.Join("\n", Rows.Select(r => $"{r.Text}\t{r.Label}")) + "\n";

    static void Gzip(string from, string to)
    {
        using var i = File.OpenRead(from);
        using var o = new GZipStream(File.Create(to), CompressionLevel.Fastest);
        i.CopyTo(o);
    }

    static TaskExamples Load(string path, ITokenizer tok) =>
        TaskData.Load(TaskNames.Classification, new DataSection { MaxLength = 32 }, path, tok, null);

    [Fact]
    public void Csv_tsv_and_parquet_plain_or_gzipped_give_the_examples_jsonl_gives()
    {
        string dir = Path.Combine(Path.GetTempPath(), "tasklm-taskdata-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            var tok = TokenizerLoader.Load("gpt2");
            string P(string n) => Path.Combine(dir, n);
            File.WriteAllLines(P("d.jsonl"), Rows.Select(r => Row(r).ToJsonString()));
            File.WriteAllText(P("d.csv"), Csv());
            File.WriteAllText(P("d.tsv"), Tsv());
            ParquetFile.Write(P("d.parquet"), Rows.Select(Row).ToList());
            foreach (var f in new[] { "d.csv", "d.tsv", "d.parquet", "d.jsonl" }) Gzip(P(f), P(f + ".gz"));

            var reference = Load(P("d.jsonl"), tok);
            Assert.Equal(["ham", "spam"], reference.Labels);
            Assert.Equal([1, 0, 1, 0, 1], reference.Examples.Select(e => e.Label));
            // The text survived whole: "cheap pills, online" is one cell, not two.
            Assert.Equal(Rows[2].Text, tok.Decode(reference.Examples[2].InputIds, skipSpecialTokens: true));
            foreach (var f in new[] { "d.csv", "d.tsv", "d.parquet", "d.csv.gz", "d.tsv.gz", "d.parquet.gz", "d.jsonl.gz" })
            {
                var got = Load(P(f), tok);
                Assert.Equal(reference.Labels, got.Labels);
                Assert.Equal(reference.Examples.Count, got.Examples.Count);
                for (int i = 0; i < got.Examples.Count; i++)
                {
                    Assert.True(reference.Examples[i].InputIds.SequenceEqual(got.Examples[i].InputIds), $"{f} row {i}: input ids differ");
                    Assert.Equal(reference.Examples[i].Label, got.Examples[i].Label);
                }
            }
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void A_malformed_csv_row_names_the_file_and_line()
    {
        string dir = Path.Combine(Path.GetTempPath(), "tasklm-taskdata-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            string csv = Path.Combine(dir, "bad.csv");
            File.WriteAllText(csv, "text,label\nfine row,ham\n\"never closed,spam\n");
            var e = Assert.ThrowsAny<Exception>(() => Load(csv, TokenizerLoader.Load("gpt2")));
            Assert.Contains("bad.csv:3", e.Message);
        }
        finally { Directory.Delete(dir, true); }
    }
}
