// SQuAD EM/F1 against the official script's normalisation and examples; seqeval against its documented examples.
using System.Text.Json;
using TaskLM.Evaluation;

namespace TaskLM.Tests.Evaluation;

public class SquadSeqevalTests
{
    [Theory]
    // normalize_answer: lower case, ASCII punctuation removed, articles a/an/the removed, whitespace collapsed.
    [InlineData("The  Denver Broncos!", "denver broncos")]
    [InlineData("an apple, a pear & the plum", "apple pear plum")]
    [InlineData("Theory of the thing", "theory of thing")]
    public void Normalize_FollowsOfficialScript(string input, string expected) => Assert.Equal(expected, Squad.Normalize(input));

    [Fact]
    public void EmAndF1_MatchOfficialDefinitions()
    {
        // HF evaluate's squad example: prediction "1976", gold "1976" → exact_match 100, f1 100.
        var (em, f1, _) = Squad.Evaluate(["1976"], [["1976"]]);
        Assert.Equal(100, em);
        Assert.Equal(100, f1);
        // Best over gold answers; token F1 = 2PR/(P+R) on normalised tokens: "Broncos won" vs "Denver Broncos": P = R = 1/2.
        (em, f1, var per) = Squad.Evaluate(["the Denver Broncos", "Broncos won"], [["Denver Broncos", "Broncos"], ["Denver Broncos"]]);
        Assert.Equal(50, em);
        Assert.Equal(0.5, per[1], 12);
        Assert.Equal((100 + 50) / 2.0, f1, 10);
        // No shared token: 0; SQuAD 2.0 rule: both empty = 1.
        Assert.Equal(0, Squad.F1("Seattle", "Denver"));
        Assert.Equal(1, Squad.F1("", "the"));
    }

    [Fact]
    public void Cli_Squad_ReadsJsonArraysAndPlainAnswers()
    {
        var dir = Fixture.TempDir();
        File.WriteAllLines(Path.Combine(dir, "gold.txt"), ["[\"Denver Broncos\", \"Broncos\"]", "Denver Broncos"]);
        File.WriteAllLines(Path.Combine(dir, "pred.txt"), ["the Denver Broncos", "Broncos won"]);
        var r = CliRunner.Run("metrics", "squad", "--gold", Path.Combine(dir, "gold.txt"), "--pred", Path.Combine(dir, "pred.txt"), "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var o = JsonDocument.Parse(r.Stdout).RootElement;
        Assert.Equal(50, o.GetProperty("exact_match").GetDouble(), 10);
        Assert.Equal(75, o.GetProperty("f1").GetDouble(), 10);
    }

    // seqeval's README / HF evaluate "seqeval" example.
    private static readonly string[][] True = [["O", "O", "O", "B-MISC", "I-MISC", "I-MISC", "O"], ["B-PER", "I-PER", "O"]];
    private static readonly string[][] Pred = [["O", "O", "B-MISC", "I-MISC", "I-MISC", "I-MISC", "O"], ["B-PER", "I-PER", "O"]];

    [Fact]
    public void Seqeval_DocumentedExample()
    {
        var (perType, micro, macro, weighted, acc) = Seqeval.Evaluate(True, Pred);
        // classification_report: MISC 0/0/0 support 1, PER 1/1/1 support 1, micro/macro/weighted 0.50; accuracy_score 0.8.
        Assert.Equal(new PrfScore(0, 0, 0, 1), perType["MISC"]);
        Assert.Equal(new PrfScore(1, 1, 1, 1), perType["PER"]);
        Assert.Equal(0.5, micro.F1, 12);
        Assert.Equal(0.5, macro.F1, 12);
        Assert.Equal(0.5, weighted.F1, 12);
        Assert.Equal(0.8, acc, 12);
    }

    [Fact]
    public void GetEntities_DocumentedExamples()
    {
        // seqeval.metrics.sequence_labeling.get_entities docstring: ['B-PER', 'I-PER', 'O', 'B-LOC'] → [('PER', 0, 1), ('LOC', 3, 3)].
        Assert.Equal([new Entity("PER", 0, 1), new Entity("LOC", 3, 3)], Seqeval.GetEntities([["B-PER", "I-PER", "O", "B-LOC"]]));
        // Default (conlleval) mode: an I- tag after O, or after another type, starts an entity.
        Assert.Equal([new Entity("PER", 1, 2), new Entity("LOC", 3, 3)], Seqeval.GetEntities([["O", "I-PER", "I-PER", "I-LOC"]]));
    }

    [Fact]
    public void Cli_Seqeval_Json()
    {
        var dir = Fixture.TempDir();
        File.WriteAllLines(Path.Combine(dir, "gold.txt"), True.Select(s => string.Join(' ', s)));
        File.WriteAllLines(Path.Combine(dir, "pred.txt"), Pred.Select(s => string.Join(' ', s)));
        var r = CliRunner.Run("metrics", "seqeval", "--gold", Path.Combine(dir, "gold.txt"), "--pred", Path.Combine(dir, "pred.txt"), "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var m = JsonDocument.Parse(r.Stdout).RootElement.GetProperty("metrics");
        Assert.Equal(0.5, m.GetProperty("f1").GetDouble(), 12);
        Assert.Equal(0.8, m.GetProperty("token_accuracy").GetDouble(), 12);
        Assert.Equal(1, m.GetProperty("per_class").GetProperty("PER").GetProperty("f1").GetDouble(), 12);
    }
}
