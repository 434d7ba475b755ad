// LM metrics: perplexity = exp(mean NLL), bits per byte, HF-guide sliding-window bookkeeping, logits → NLL.
using System.Text.Json;
using TaskLM.Evaluation;
using TaskLM.Native;
using static TorchSharp.torch;

namespace TaskLM.Tests.Evaluation;

public class LanguageModelMetricsTests
{
    [Fact]
    public void Perplexity_IsExpOfMeanNll_AndBitsPerByte()
    {
        var s = LanguageModelMetrics.FromNll([Math.Log(4), Math.Log(4), Math.Log(4)]);
        Assert.Equal(4, s.Perplexity, 12); // uniform over 4 choices
        Assert.Equal(2, s.BitsPerToken, 12);
        Assert.Equal(3, s.Tokens);
        Assert.Equal(6 / 12.0, s.BitsPerByte(12), 12); // 6 bits over 12 bytes
    }

    // A fake model that records, for each scored token, how much context it had: NLL = 1 / (1 + context length).
    private static float[] ContextModel(long[] window) =>
        Enumerable.Range(0, window.Length - 1).Select(j => 1f / (1 + (j + 1))).ToArray();

    [Theory]
    [InlineData(10, 4, 4)]
    [InlineData(10, 4, 2)]
    [InlineData(11, 5, 3)]
    [InlineData(7, 8, 8)]
    public void SlidingWindow_ScoresEachTokenOnce_WithHfGuideContext(int n, int maxLength, int stride)
    {
        var ids = Enumerable.Range(0, n).Select(i => (long)i).ToArray();
        var windows = new List<(long First, int Length)>();
        var (score, tokenNll) = LanguageModelMetrics.SlidingWindow(ids, maxLength, stride, w => { windows.Add((w[0], w.Length)); return ContextModel(w); });
        Assert.True(double.IsNaN(tokenNll[0]));
        // HF guide loop: begin = 0, stride, 2*stride, ...; end = min(begin + max_length, n); stop once end == n.
        var expectedWindows = new List<(long, int)>();
        for (int begin = 0; begin < n; begin += stride)
        {
            int end = Math.Min(begin + maxLength, n);
            expectedWindows.Add((begin, end - begin));
            if (end == n) break;
        }
        Assert.Equal(expectedWindows, windows);
        // Token t is scored in the first window whose end passes it, with context t - begin tokens; a token
        // that opens its window (context 0: every chunk start when stride == max_length) is not scored.
        int scored = 0;
        for (int t = 1; t < n; t++)
        {
            var (begin, len) = expectedWindows.First(w => w.Item1 + w.Item2 > t);
            if (t == begin) { Assert.True(double.IsNaN(tokenNll[t])); continue; }
            Assert.Equal(1.0 / (1 + (t - begin)), tokenNll[t], 6);
            scored++;
        }
        Assert.Equal(scored, score.Tokens);
    }

    [Fact]
    public void SlidingWindow_ModelReturningWrongLength_IsAClearError()
    {
        var e = Assert.Throws<InvalidOperationException>(() => LanguageModelMetrics.SlidingWindow([1, 2, 3], 3, 3, w => new float[w.Length]));
        Assert.Contains("expected 2", e.Message);
    }

    [Fact]
    public void NllFromLogits_IsShiftedCrossEntropy()
    {
        TorchBackend.EnsureLoaded();
        // (1, 3, 2) logits: position 0 predicts ids[1] = 1, position 1 predicts ids[2] = 0.
        using var logits = tensor(new float[] { 0f, (float)Math.Log(3), 2f, 2f, 5f, 5f }).reshape(1, 3, 2);
        var nll = LanguageModelMetrics.NllFromLogits(logits, [0, 1, 0]);
        Assert.Equal(2, nll.Length);
        Assert.Equal(-Math.Log(0.75), nll[0], 5); // softmax([0, ln 3]) = [1/4, 3/4]
        Assert.Equal(Math.Log(2), nll[1], 5);     // equal logits: 1/2
    }

    [Fact]
    public void Cli_Perplexity_FromNllsAndLogprobs()
    {
        var dir = Fixture.TempDir();
        File.WriteAllText(Path.Combine(dir, "nll.txt"), $"# one text per line\n{Math.Log(2)} {Math.Log(2)}\n{Math.Log(8)} {Math.Log(8)}\n");
        File.WriteAllText(Path.Combine(dir, "lp.txt"), $"{-Math.Log(2)}\n{-Math.Log(2)}\n{-Math.Log(8)}\n{-Math.Log(8)}\n");
        File.WriteAllText(Path.Combine(dir, "text.txt"), "abcd");
        var r = CliRunner.Run("metrics", "perplexity", "--nll", Path.Combine(dir, "nll.txt"), "--text", Path.Combine(dir, "text.txt"), "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var o = JsonDocument.Parse(r.Stdout).RootElement;
        Assert.Equal(4, o.GetProperty("perplexity").GetDouble(), 10); // exp(mean(ln2, ln2, ln8, ln8)) = exp(2 ln 2)
        Assert.Equal(8 / 4.0, o.GetProperty("bits_per_byte").GetDouble(), 10); // 1+1+3+3 bits over 4 bytes
        var lp = CliRunner.Run("metrics", "perplexity", "--nll", Path.Combine(dir, "lp.txt"), "--logprobs", "--json");
        Assert.Equal(4, JsonDocument.Parse(lp.Stdout).RootElement.GetProperty("perplexity").GetDouble(), 10);
        var bad = CliRunner.Run("metrics", "perplexity", "--nll", Path.Combine(dir, "lp.txt"));
        Assert.Equal(1, bad.ExitCode);
        Assert.Contains("lp.txt line 1", bad.Stderr);
        Assert.Contains("--logprobs", bad.Stderr);
    }

    [Fact]
    public void Bootstrap_IsSeeded_AndPercentileMatchesNumpy()
    {
        // numpy docs: np.percentile([[10, 7, 4], [3, 2, 1]], 50) == 3.5; linear interpolation.
        Assert.Equal(3.5, Bootstrap.Percentile([1, 2, 3, 4, 7, 10], 0.5), 12);
        Assert.Equal(1.25, Bootstrap.Percentile([1, 2, 3, 4, 7, 10], 0.05), 12);
        var correct = Enumerable.Range(0, 200).Select(i => i % 5 != 0).ToArray(); // accuracy 0.8
        double Acc(IReadOnlyList<int> idx) => idx.Count(i => correct[i]) / (double)idx.Count;
        var a = Bootstrap.Compute(200, Acc, 500, seed: 7);
        var b = Bootstrap.Compute(200, Acc, 500, seed: 7);
        Assert.Equal(a, b);
        Assert.Equal(0.8, a.Estimate, 12);
        Assert.True(a.Low < 0.8 && a.High > 0.8);
        // Binomial standard error sqrt(.8 * .2 / 200) = 0.028: the 95% interval spans about ±1.96 of it.
        Assert.InRange(a.High - a.Low, 0.08, 0.14);
    }
}
