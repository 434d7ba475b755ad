// Dedup: MinHash estimates against exact Jaccard, and planted exact / near / not-near duplicates through the pipeline.
using TaskLM.Data.Corpus;

namespace TaskLM.Tests.Data;

public class DedupTests
{
    private static readonly string[] Vocabulary =
        ("the of and to in is was for on that with as by at from his her an be this which or had are not but have "
       + "one all were they their been has more when who will no if out so said what up its about into than them can "
       + "only other new some could time these two may then do first any my now such like our over man me even most "
       + "made after also did many before must through back years where much your way well down should because each").Split(' ');

    /// <summary>n pseudo-random words, the same for the same seed.</summary>
    internal static string[] Words(int n, int seed)
    {
        var rng = new Random(1000 + seed);
        return Enumerable.Range(0, n).Select(_ => Vocabulary[rng.Next(Vocabulary.Length)] + rng.Next(50)).ToArray();
    }

    private static HashSet<string> Shingles(string[] w, int k) =>
        Enumerable.Range(0, w.Length - k + 1).Select(i => string.Join(' ', w[i..(i + k)])).ToHashSet();

    private static double TrueJaccard(string[] a, string[] b)
    {
        var x = Shingles(a, 5); var y = Shingles(b, 5);
        return (double)x.Intersect(y).Count() / x.Union(y).Count();
    }

    [Theory]
    [InlineData(0, 1000, 500, 1500)]   // J = 500/1500
    [InlineData(0, 1000, 100, 1100)]   // J = 900/1100
    [InlineData(0, 1000, 0, 1000)]     // J = 1
    [InlineData(0, 1000, 1000, 2000)]  // J = 0
    [InlineData(0, 300, 150, 600)]     // J = 150/600
    public void MinHashEstimateIsCloseToTheTrueJaccard(int a0, int a1, int b0, int b1)
    {
        var a = Enumerable.Range(a0, a1 - a0).Select(i => (ulong)i * 0x9E3779B97F4A7C15UL).ToArray();
        var b = Enumerable.Range(b0, b1 - b0).Select(i => (ulong)i * 0x9E3779B97F4A7C15UL).ToArray();
        double truth = (double)a.Intersect(b).Count() / a.Union(b).Count();
        var mh = new MinHash(256, 7);
        double est = MinHash.Jaccard(mh.Signature(a), mh.Signature(b));
        // Standard error of the estimate is sqrt(J(1-J)/256) ≤ 0.031; allow about 2.5 of them.
        Assert.InRange(est, truth - 0.08, truth + 0.08);
    }

    [Fact]
    public void PlantedExactAndNearDuplicatesAreRemovedAndTheDissimilarPairKept()
    {
        var originals = Enumerable.Range(0, 40).Select(i => Words(200, i)).ToList();
        var rows = originals.Select((w, i) => CleanTests.Row(string.Join(' ', w), "ham", i + 1)).ToList();

        // Exact duplicate of #3 up to case and whitespace.
        rows.Add(CleanTests.Row("  " + string.Join("  ", originals[3]).ToUpperInvariant() + "\n", "ham", 41));
        // Near duplicate of #7: one word changed.
        var near = (string[])originals[7].Clone(); near[100] = "CHANGED";
        rows.Add(CleanTests.Row(string.Join(' ', near), "spam", 42));
        // Below threshold relative to #9: every fourth word changed.
        var far = (string[])originals[9].Clone();
        for (int i = 0; i < far.Length; i += 4) far[i] = "x" + i;
        rows.Add(CleanTests.Row(string.Join(' ', far), "ham", 43));

        double jNear = TrueJaccard(near, originals[7]), jFar = TrueJaccard(far, originals[9]);
        Assert.InRange(jNear, 0.9, 1.0);     // 5 of ~200 shingles differ
        Assert.InRange(jFar, 0.0, 0.3);      // most shingles touch a changed word

        var p = new CleaningPipeline(new CleaningOptions { NearDedup = new NearDuplicateOptions { Threshold = 0.8 } });
        var removed = new List<(long Line, string Step)>();
        var kept = p.Run(rows, (r, step, _) => removed.Add((r.Line, step))).ToList();

        Assert.Equal([(41L, "exact_dedup"), (42L, "near_dedup")], removed);
        Assert.Equal(41, kept.Count);
        Assert.Contains(kept, r => r.Line == 43);
        var ex = p.Report.Step("near_dedup").Examples.Single();
        Assert.Equal("mem.jsonl:8", ex.DuplicateOf);
        Assert.InRange(ex.Jaccard!.Value, jNear - 0.1, 1.0);
        Assert.Equal(1, p.Report.Labels!.ConflictingDuplicates); // the near dup said spam, the kept row ham
    }

    [Fact]
    public void CharShinglesCatchTyposThatWordShinglesMiss()
    {
        string a = string.Join(' ', Words(60, 99));
        // Two one-letter typos: few character 4-grams change, but each spoils five word 5-grams.
        char[] c = a.ToCharArray();
        int i1 = a.Length / 3, i2 = 2 * a.Length / 3;
        while (c[i1] == ' ') i1++;
        while (c[i2] == ' ') i2++;
        c[i1] = c[i1] == 'q' ? 'z' : 'q'; c[i2] = c[i2] == 'q' ? 'z' : 'q';
        string b = new(c);
        HashSet<string> Grams(string s) => Enumerable.Range(0, s.Length - 3).Select(i => s.Substring(i, 4)).ToHashSet();
        double jChar = (double)Grams(a).Intersect(Grams(b)).Count() / Grams(a).Union(Grams(b)).Count();
        double jWord = TrueJaccard(a.Split(' '), b.Split(' '));
        Assert.True(jChar > 0.9 && jWord < 0.8, $"char {jChar}, word {jWord}");

        int Kept(ShingleKind kind, int size) => new CleaningPipeline(new CleaningOptions
        {
            NearDedup = new NearDuplicateOptions { Shingles = kind, ShingleSize = size, Threshold = 0.8 },
        }).Run([CleanTests.Row(a, "ham", 1), CleanTests.Row(b, "ham", 2)]).Count();
        Assert.Equal(1, Kept(ShingleKind.Char, 4));
        Assert.Equal(2, Kept(ShingleKind.Word, 5));
    }
}
