// `tasklm predict` end to end through the CLI on HF fixtures: every task, CSV/JSONL(.gz) in and out, input columns kept, bad input refused.
using System.IO.Compression;
using System.Text.Json.Nodes;

namespace TaskLM.Tests.Serving;

public class PredictCommandTests
{
    [Fact]
    public void Classifies_a_csv_into_a_csv_keeping_the_input_columns()
    {
        string model = ServingFixtures.Bert("bert-cls", ["neg", "neu", "pos"]);
        string dir = ServingFixtures.TempDir();
        string input = Path.Combine(dir, "in.csv"), output = Path.Combine(dir, "out.csv");
        var lines = new List<string> { "id,text,note" };
        for (int i = 0; i < 70; i++) lines.Add($"{i},{ServingFixtures.Words(5 + i, 100 + i * 3)},\"a, b\"");
        File.WriteAllLines(input, lines);
        var r = CliRunner.Run("predict", "--model", model, input, "--out", output, "--batch-size", "16");
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Contains("70 rows", r.Stderr);
        var rows = File.ReadAllLines(output);
        Assert.Equal(71, rows.Length);
        Assert.Equal("id,text,note,label,score,prob_neg,prob_neu,prob_pos", rows[0]);
        Assert.StartsWith($"3,{ServingFixtures.Words(8, 109)},\"a, b\",", rows[4]);
        // The same row through --text gives the same label and probabilities.
        var one = CliRunner.Run("predict", "--model", model, "--text", ServingFixtures.Words(8, 109));
        Assert.True(one.ExitCode == 0, one.Stderr);
        var j = JsonNode.Parse(one.Stdout)!;
        var cells = rows[4].Split(',');
        Assert.Equal((string)j["label"]!, cells[^5]);   // label, score, prob_neg, prob_neu, prob_pos close the row
        Assert.Equal((double)j["probabilities"]!["pos"]!, double.Parse(cells[^1], System.Globalization.CultureInfo.InvariantCulture), 6);   // padded batch vs one row: float noise only
    }

    [Fact]
    public void A_labelled_file_keeps_its_gold_label_and_gets_predicted_label_beside_it()
    {
        // Scoring predictions afterwards needs the gold column: predict must not overwrite it.
        string model = ServingFixtures.Bert("bert-cls", ["neg", "neu", "pos"]);
        string dir = ServingFixtures.TempDir();
        string input = Path.Combine(dir, "gold.jsonl"), output = Path.Combine(dir, "out.jsonl");
        File.WriteAllLines(input, Enumerable.Range(0, 4).Select(i => new JsonObject { ["text"] = ServingFixtures.Words(6 + i, 50 + i), ["label"] = "gold-" + i }.ToJsonString()));
        var r = CliRunner.Run("predict", "--model", model, input, "--out", output);
        Assert.True(r.ExitCode == 0, r.Stderr);
        var rows = File.ReadAllLines(output).Select(l => JsonNode.Parse(l)!).ToList();
        for (int i = 0; i < 4; i++)
        {
            Assert.Equal("gold-" + i, (string)rows[i]["label"]!);
            Assert.Contains((string)rows[i]["predicted_label"]!, new[] { "neg", "neu", "pos" });
            Assert.NotNull(rows[i]["score"]);
        }
    }

    [Fact]
    public void Tags_answers_and_continues_jsonl_gz_into_jsonl()
    {
        string dir = ServingFixtures.TempDir();
        string tagIn = Path.Combine(dir, "tag.jsonl.gz");
        using (var gz = new StreamWriter(new GZipStream(File.Create(tagIn), CompressionLevel.Fastest)))
            for (int i = 0; i < 5; i++) gz.WriteLine(new JsonObject { ["text"] = ServingFixtures.Words(10 + i, 20, 30), ["k"] = i }.ToJsonString());
        string tagOut = Path.Combine(dir, "tag.jsonl");
        var r = CliRunner.Run("predict", "--model", ServingFixtures.Bert("bert-tok", ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]), tagIn, "--out", tagOut);
        Assert.True(r.ExitCode == 0, r.Stderr);
        var rows = File.ReadAllLines(tagOut).Select(l => JsonNode.Parse(l)!).ToList();
        Assert.Equal(5, rows.Count);
        Assert.Equal(4, (int)rows[4]["k"]!);
        Assert.Equal(3, rows[0]["tags"]!.AsArray().Count);
        Assert.NotNull(rows[0]["entities"]);

        string qaIn = Path.Combine(dir, "qa.jsonl");
        File.WriteAllText(qaIn, new JsonObject { ["question"] = ServingFixtures.Words(33, 321), ["context"] = ServingFixtures.Words(620, 624, 928, 363) }.ToJsonString() + "\n");
        r = CliRunner.Run("predict", "--model", ServingFixtures.Bert("bert-qa"), qaIn);
        Assert.True(r.ExitCode == 0, r.Stderr);
        var qa = JsonNode.Parse(r.Stdout.Trim())!;
        string ctx = (string)qa["context"]!;
        Assert.Equal((string)qa["answer"]!, ctx[(int)qa["answer_start"]!..(int)qa["answer_end"]!]);

        // Causal LM: HF's greedy continuation of the fixture prompt.
        r = CliRunner.Run("predict", "--model", ServingFixtures.Hf("gpt2-tiny"), "--text", "The quick brown fox", "--max-tokens", "12");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var gen = JsonNode.Parse(r.Stdout)!;
        var tok = TaskLM.Data.Tokenization.TokenizerLoader.Load("gpt2");
        Assert.Equal(tok.Decode(Enumerable.Repeat(14070, 12)), (string)gen["completion"]!);
        Assert.Equal("length", (string)gen["finish_reason"]!);
    }

    [Fact]
    public void A_missing_column_fails_with_one_line_naming_it_and_leaves_no_output()
    {
        string dir = ServingFixtures.TempDir();
        string input = Path.Combine(dir, "in.jsonl"), output = Path.Combine(dir, "out.jsonl");
        File.WriteAllText(input, "{\"body\": \"w5 w6\"}\n");
        var r = CliRunner.Run("predict", "--model", ServingFixtures.Bert("bert-cls"), input, "--out", output);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("'text'", r.Stderr);
        Assert.Contains("body", r.Stderr);
        Assert.Single(r.Stderr.Trim().Split('\n'));
        Assert.False(File.Exists(output));
        r = CliRunner.Run("predict", "--model", Path.Combine(dir, "nope"), "--text", "x");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("nope", r.Stderr);
    }
}
