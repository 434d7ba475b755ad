// BLEU against sacrebleu 2.6's values (tests/fixtures/hf/bleu.expected.json) and chrF against sacrebleu's own test values.
using System.Text.Json;
using TaskLM.Evaluation;

namespace TaskLM.Tests.Evaluation;

public class BleuChrfTests
{
    private static readonly JsonElement Hf = Fixture.Json("hf", "bleu.expected.json");

    [Fact]
    public void CorpusAndSentenceBleu_MatchSacrebleu()
    {
        var hyps = Fixture.Strings(Hf.GetProperty("hyps"));
        var refs = Fixture.Strings(Hf.GetProperty("refs"));
        var corpus = Bleu.Corpus(hyps, [refs]);
        Assert.True(Math.Abs(Hf.GetProperty("corpus_bleu").GetDouble() - corpus.Score) < 1e-6, $"corpus BLEU {corpus.Score}");
        Assert.Equal(Hf.GetProperty("signature").GetString(), corpus.ToString());
        var expected = Fixture.Doubles(Hf.GetProperty("sentence_bleu"));
        for (int i = 0; i < hyps.Count; i++)
        {
            double s = Bleu.Sentence(hyps[i], [refs[i]]).Score;
            Assert.True(Math.Abs(expected[i] - s) < 1e-6, $"sentence {i}: {s} vs {expected[i]}");
        }
    }

    [Fact]
    public void Cli_Bleu_Json_MatchesSacrebleu()
    {
        var dir = Fixture.TempDir();
        File.WriteAllLines(Path.Combine(dir, "hyp.txt"), Fixture.Strings(Hf.GetProperty("hyps")));
        File.WriteAllLines(Path.Combine(dir, "ref.txt"), Fixture.Strings(Hf.GetProperty("refs")));
        var r = CliRunner.Run("metrics", "bleu", "--hyp", Path.Combine(dir, "hyp.txt"), "--ref", Path.Combine(dir, "ref.txt"), "--sentence", "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var o = JsonDocument.Parse(r.Stdout).RootElement;
        Assert.True(Math.Abs(Hf.GetProperty("corpus_bleu").GetDouble() - o.GetProperty("score").GetDouble()) < 1e-6);
        var sent = Fixture.Doubles(o.GetProperty("sentence_scores"));
        var expected = Fixture.Doubles(Hf.GetProperty("sentence_bleu"));
        for (int i = 0; i < sent.Count; i++) Assert.True(Math.Abs(expected[i] - sent[i]) < 1e-6);
    }

    // sacrebleu's README example: two reference streams, BLEU() and CHRF() with their defaults.
    private static readonly string[] Sys = ["The dog bit the man.", "It wasn't surprising.", "The man had just bitten him."];
    private static readonly string[] Refs1 = ["The dog bit the man.", "It was not unexpected.", "The man bit him first."];
    private static readonly string[] Refs2 = ["The dog had bit the man.", "No one was surprised.", "The man had bitten the dog."];

    [Fact]
    public void Cli_TwoReferenceStreams_MatchSacrebleuReadme()
    {
        var dir = Fixture.TempDir();
        File.WriteAllLines(Path.Combine(dir, "sys.txt"), Sys);
        File.WriteAllLines(Path.Combine(dir, "ref1.txt"), Refs1);
        File.WriteAllLines(Path.Combine(dir, "ref2.txt"), Refs2);
        var bleu = CliRunner.Run("metrics", "bleu", "--hyp", Path.Combine(dir, "sys.txt"), "--ref", Path.Combine(dir, "ref1.txt"), "--ref", Path.Combine(dir, "ref2.txt"), "--json");
        Assert.True(bleu.ExitCode == 0, bleu.Stderr);
        Assert.Equal("BLEU = 48.53 82.4/50.0/45.5/37.5 (BP = 0.943 ratio = 0.944 hyp_len = 17 ref_len = 18)",
            JsonDocument.Parse(bleu.Stdout).RootElement.GetProperty("signature").GetString());
        var chrf = CliRunner.Run("metrics", "chrf", "--hyp", Path.Combine(dir, "sys.txt"), "--ref", Path.Combine(dir, "ref1.txt"), "--ref", Path.Combine(dir, "ref2.txt"), "--json");
        Assert.True(chrf.ExitCode == 0, chrf.Stderr);
        Assert.Equal("59.73", JsonDocument.Parse(chrf.Stdout).RootElement.GetProperty("score").GetDouble().ToString("F2", System.Globalization.CultureInfo.InvariantCulture));
    }

    [Theory]
    // sacrebleu's 13a tokenizer rules: punctuation split off, "." and "," kept inside numbers, a dash after a digit split, entities unescaped.
    [InlineData("Hello, world!", "Hello , world !")]
    [InlineData("It costs $3.50, i.e. 3,000 cents.", "It costs $ 3.50 , i . e . 3,000 cents .")]
    [InlineData("1990-2000 &amp; &quot;so&quot;", "1990 - 2000 & \" so \"")]
    public void Tokenizer13a_FollowsMteval(string input, string expected) => Assert.Equal(expected, Bleu.Tokenize13a(input));

    // sacrebleu test/test_chrf.py (mjpost/sacrebleu): corpus_chrf(..., char_order=6, word_order=0, beta=3, eps_smoothing=True).
    [Theory]
    [InlineData("abcdefg", "hijklmnop", 0.0)]
    [InlineData("", "reference", 0.0)]
    [InlineData("aa", "ab", 8.3333)]
    [InlineData("a", "a", 16.6667)]
    [InlineData("a b c", "abc", 50.0)]
    [InlineData(" risk assessment must be made of those who are qualified and expertise in the sector - these are the scientists .",
        "risk assessment has to be undertaken by those who are qualified and expert in that area - that is the scientists .", 63.361730)]
    [InlineData(" Die    Beziehung zwischen  Obama und Netanjahu ist nicht gerade  freundlich. ",
        "Das Verhältnis zwischen Obama und Netanyahu ist nicht gerade freundschaftlich.", 64.1302698)]
    [InlineData("Niemand hat die Absicht, eine Mauer zu errichten", "Niemand hat die Absicht, eine Mauer zu errichten", 100.0)]
    public void Chrf_EpsSmoothing_MatchesSacrebleuTests(string hyp, string reference, double expected) =>
        Assert.True(Math.Abs(expected - Chrf.Corpus([hyp], [[reference]], beta: 3, epsSmoothing: true)) < 1e-4);

    // sacrebleu test/test_chrf.py: the effective-order path (sacrebleu's default, eps_smoothing=False), beta=3.
    [Fact]
    public void Chrf_EffectiveOrder_MatchesSacrebleuTests()
    {
        Assert.True(Math.Abs(100.0 - Chrf.Corpus(["a"], [["a"]], beta: 3)) < 1e-4);
        Assert.True(Math.Abs(0.0 - Chrf.Corpus([""], [["reference"]], beta: 3)) < 1e-4);
        Assert.True(Math.Abs(100.0 - Chrf.Corpus(["a b c"], [["abc"]], beta: 3)) < 1e-4);
        Assert.True(Math.Abs(50.0 - Chrf.Corpus(["a", "b"], [["a", "c"]], beta: 3)) < 1e-4);
        Assert.True(Math.Abs(25.0 - Chrf.Corpus(["aa"], [["ab"]], beta: 3)) < 1e-4);
    }

    // sacrebleu test/test_chrf.py: sentence_chrf(hyp, refs, eps_smoothing=True) with the default beta 2.
    [Theory]
    [InlineData("Co nás nejvíc trápí, protože lékaři si vybírají, kdo bude žít a kdo zemře.",
        "Nejvíce smutní jsme z toho, že musíme rozhodovat o tom, kdo bude žít a kdo zemře.", 39.14078509)]
    [InlineData("Nebo prostě nemají vybavení, které by jim pomohlo, uvedli lékaři.",
        "A někdy nemáme ani potřebný materiál, abychom jim pomohli, popsali lékaři.", 31.22557079)]
    [InlineData("Lapali po dechu, jejich životy skončily dřív, než skutečně začaly.",
        "Lapali po dechu a pak jejich život skončil - dřív, než skutečně mohl začít, připomněli.", 57.15704367)]
    public void SentenceChrf_MatchesSacrebleuTests(string hyp, string reference, double expected) =>
        Assert.True(Math.Abs(expected - Chrf.Sentence(hyp, [reference], epsSmoothing: true)) < 1e-4);
}
