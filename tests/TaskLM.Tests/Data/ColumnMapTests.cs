// Column mapping onto task roles: missing columns list the ones that exist, bad rows are row errors, QA answers are located.
using System.Text.Json.Nodes;
using TaskLM.Data.Corpus;

namespace TaskLM.Tests.Data;

public class ColumnMapTests
{
    static DataRow Row(long line, JsonObject o) => new(o, "in.jsonl", line);

    [Fact]
    public void Missing_column_error_names_the_columns_that_exist()
    {
        var rows = new[] { Row(1, new JsonObject { ["sentence"] = "x", ["label"] = "a" }) };
        var e = Assert.Throws<DataFormatException>(() => new ColumnMap { Text = "text", Label = "label" }.Apply(rows).ToList());
        Assert.Equal("in.jsonl:1: no column 'text' (for text); the columns are: sentence, label", e.Message);
    }

    [Fact]
    public void Roles_are_renamed_and_token_tag_length_mismatch_is_a_skippable_row_error()
    {
        var rows = new[]
        {
            Row(1, new JsonObject { ["words"] = "The cat sat", ["pos"] = new JsonArray("at", "nn", "vbd"), ["id"] = 7 }),
            Row(2, new JsonObject { ["words"] = "Too few", ["pos"] = new JsonArray("nn"), ["id"] = 8 }),
        };
        var map = new ColumnMap { Tokens = "words", Tags = "pos" };
        var e = Assert.Throws<DataFormatException>(() => map.Apply(rows).ToList());
        Assert.Equal("in.jsonl:2: 'words' has 2 tokens but 'pos' has 1 tags", e.Message);

        var errors = new RowErrors(OnError.Skip);
        var ok = map.Apply(rows, errors).Single();
        Assert.Equal("""{"tokens":["The","cat","sat"],"tags":["at","nn","vbd"]}""", ok.Fields.ToJsonString());
        Assert.Equal(1, errors.Skipped);
    }

    [Fact]
    public void Qa_answers_are_located_in_the_context_in_squad_shape()
    {
        const string context = "Moby-Dick was published in 1851 by Harper & Brothers in New York.";
        var rows = new[]
        {
            Row(1, new JsonObject { ["q"] = "When?", ["c"] = context, ["a"] = "1851" }),
            Row(2, new JsonObject { ["q"] = "Who?", ["c"] = context, ["a"] = "Melville" }),
        };
        var errors = new RowErrors(OnError.Skip);
        var mapped = new ColumnMap { Question = "q", Context = "c", Answers = "a" }.Apply(rows, errors).ToList();
        var answers = mapped.Single().Fields["answers"]!;
        Assert.Equal("1851", answers["text"]![0]!.GetValue<string>());
        Assert.Equal(27, answers["answer_start"]![0]!.GetValue<int>());  // counted by hand: "Moby-Dick was published in " is 27 chars
        Assert.Contains("answer 'Melville' does not occur in the context", errors.Listed.Single().Message);
    }

    [Fact]
    public void Prompt_completion_and_text_pair_roles_with_kept_columns()
    {
        var rows = new[] { Row(1, new JsonObject { ["instruction"] = "Say hi", ["output"] = "hi", ["id"] = "r1", ["extra"] = 1 }) };
        var gen = new ColumnMap { Prompt = "instruction", Completion = "output", Keep = ["id"] }.Apply(rows).Single();
        Assert.Equal("""{"prompt":"Say hi","completion":"hi","id":"r1"}""", gen.Fields.ToJsonString());
        var pair = new ColumnMap { Text = "instruction", TextPair = "output" }.Apply(rows).Single();
        Assert.Equal("""{"text":"Say hi","text_pair":"hi"}""", pair.Fields.ToJsonString());
    }
}
