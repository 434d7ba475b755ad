// Splits: exact stratified proportions, counts, group-aware assignment, and byte-identical files for a seed.
using System.Security.Cryptography;
using System.Text.Json.Nodes;
using TaskLM.Data.Corpus;

namespace TaskLM.Tests.Data;

public class SplitTests
{
    private static List<DataRow> Labelled(params (string Label, int Count)[] classes)
    {
        var rows = new List<DataRow>();
        foreach (var (label, count) in classes)
            for (int i = 0; i < count; i++)
                rows.Add(CleanTests.Row($"{label} row {i} " + string.Join(' ', DedupTests.Words(30, rows.Count)), label, rows.Count + 1));
        return rows;
    }

    private static Dictionary<string, int> LabelsIn(IReadOnlyList<DataRow> rows, SplitResult r, int split) =>
        r.Rows(split).GroupBy(i => (string)rows[i].Fields["label"]!).ToDictionary(g => g.Key, g => g.Count());

    [Fact]
    public void StratifiedRatiosKeepEachLabelsShareInEverySplit()
    {
        // 700/200/100 with 0.8/0.1/0.1: every label splits exactly 80/10/10.
        var rows = Labelled(("ham", 700), ("spam", 200), ("phish", 100));
        var r = DatasetSplitter.Assign(rows, new SplitOptions { Seed = 1 });
        Assert.Equal(new Dictionary<string, int> { ["ham"] = 560, ["spam"] = 160, ["phish"] = 80 }, LabelsIn(rows, r, 0));
        Assert.Equal(new Dictionary<string, int> { ["ham"] = 70, ["spam"] = 20, ["phish"] = 10 }, LabelsIn(rows, r, 1));
        Assert.Equal(new Dictionary<string, int> { ["ham"] = 70, ["spam"] = 20, ["phish"] = 10 }, LabelsIn(rows, r, 2));

        // Uneven sizes: totals are exact (largest remainder) and each label is within one row of its share.
        var odd = Labelled(("a", 37), ("b", 23), ("c", 7));
        var ro = DatasetSplitter.Assign(odd, new SplitOptions { Ratios = [0.7, 0.15, 0.15], Seed = 3 });
        Assert.Equal([47, 10, 10], Enumerable.Range(0, 3).Select(s => ro.Rows(s).Count()));
        foreach (var (label, n) in new[] { ("a", 37), ("b", 23), ("c", 7) })
            for (int s = 0; s < 3; s++)
                Assert.InRange(LabelsIn(odd, ro, s).GetValueOrDefault(label), Math.Floor(n * new[] { 0.7, 0.15, 0.15 }[s]) - 1, Math.Ceiling(n * new[] { 0.7, 0.15, 0.15 }[s]) + 1);
    }

    [Fact]
    public void CountsAreExactAndTheRestIsLeftOut()
    {
        var rows = Labelled(("ham", 80), ("spam", 20));
        var r = DatasetSplitter.Assign(rows, new SplitOptions { Ratios = null, Counts = [50, 10, 10] });
        Assert.Equal([50, 10, 10], Enumerable.Range(0, 3).Select(s => r.Rows(s).Count()));
        Assert.Equal(30, r.Assignment.Count(a => a < 0));
        Assert.Equal(new Dictionary<string, int> { ["ham"] = 40, ["spam"] = 10 }, LabelsIn(rows, r, 0));
        Assert.Throws<ArgumentException>(() => DatasetSplitter.Assign(rows, new SplitOptions { Ratios = null, Counts = [90, 10, 10] }));
    }

    [Fact]
    public void NearDuplicateGroupsNeverStraddleSplits()
    {
        // 30 clusters of 4 near-identical rows (one word changed each) plus 80 singletons.
        var rows = new List<DataRow>();
        for (int c = 0; c < 30; c++)
        {
            var w = DedupTests.Words(200, 500 + c);
            for (int k = 0; k < 4; k++)
            {
                var v = (string[])w.Clone(); v[20 + 40 * k] = "variant" + k;
                rows.Add(CleanTests.Row(string.Join(' ', v), c % 3 == 0 ? "spam" : "ham", rows.Count + 1));
            }
        }
        for (int i = 0; i < 80; i++) rows.Add(CleanTests.Row(string.Join(' ', DedupTests.Words(120, 900 + i)), i % 3 == 0 ? "spam" : "ham", rows.Count + 1));

        var r = DatasetSplitter.Assign(rows, new SplitOptions { Seed = 5, GroupNearDuplicates = new NearDuplicateOptions() });
        for (int c = 0; c < 30; c++)
        {
            var splits = Enumerable.Range(4 * c, 4).Select(i => r.Assignment[i]).Distinct().ToList();
            Assert.Single(splits);
            Assert.All(Enumerable.Range(4 * c, 4), i => Assert.Equal(4 * c, r.Group[i]));
        }
        Assert.Equal(200, r.Assignment.Count(a => a >= 0));
        Assert.InRange(r.Rows(0).Count(), 156, 164); // 80% give or take one cluster
    }

    [Fact]
    public void SameSeedGivesByteIdenticalFilesAndTheManifestHashesThem()
    {
        string dir = Directory.CreateTempSubdirectory("tasklm-split-").FullName;
        try
        {
            string input = Path.Combine(dir, "in.jsonl");
            File.WriteAllLines(input, Labelled(("ham", 150), ("spam", 50)).Select(r => r.Fields.ToJsonString()));
            string[] Run(string outDir, string seed)
            {
                var res = CliRunner.Run("data", "split", input, "--out", outDir, "--ratios", "0.8,0.1,0.1", "--stratify", "label", "--seed", seed, "--group-near-duplicates");
                Assert.True(res.ExitCode == 0, res.Stderr + res.Stdout);
                return ["train.jsonl", "validation.jsonl", "test.jsonl", "manifest.json"];
            }
            var files = Run(Path.Combine(dir, "a"), "42");
            Run(Path.Combine(dir, "b"), "42");
            Run(Path.Combine(dir, "c"), "43");
            foreach (string f in files)
                Assert.Equal(File.ReadAllBytes(Path.Combine(dir, "a", f)), File.ReadAllBytes(Path.Combine(dir, "b", f)));
            Assert.NotEqual(File.ReadAllBytes(Path.Combine(dir, "a", "train.jsonl")), File.ReadAllBytes(Path.Combine(dir, "c", "train.jsonl")));

            var manifest = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "a", "manifest.json")))!;
            int total = 0;
            foreach (var (name, rows, spam) in new[] { ("train", 160, 40), ("validation", 20, 5), ("test", 20, 5) })
            {
                var s = manifest["splits"]![name]!;
                byte[] bytes = File.ReadAllBytes(Path.Combine(dir, "a", name + ".jsonl"));
                Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(bytes)), (string)s["sha256"]!);
                Assert.Equal(rows, (int)s["rows"]!);
                Assert.Equal(spam, (int)s["labels"]!["spam"]!);
                Assert.Equal(rows, File.ReadAllLines(Path.Combine(dir, "a", name + ".jsonl")).Length);
                total += rows;
            }
            Assert.Equal(200, total);
            Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(input))), (string)manifest["source"]!["sha256"]!);
        }
        finally { Directory.Delete(dir, true); }
    }
}
