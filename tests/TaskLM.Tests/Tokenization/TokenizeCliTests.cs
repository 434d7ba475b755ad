// The tokenization verbs through the real `tasklm` program: tokenize (black-box contract), data encode, tokenizer train.
using System.Text.Json.Nodes;
using TaskLM.Data.Tokenization;

namespace TaskLM.Tests.Tokenization;

public class TokenizeCliTests
{
    [Fact]
    public void Tokenize_json_gives_HF_ids_and_tokens()
    {
        var expected = JsonNode.Parse(File.ReadAllText(HfParityTests.Hf("tokenizers.expected.json")))!;
        var r = CliRunner.Run("tokenize", "--tokenizer", HfParityTests.Hf("tok-wordpiece"), "--text", "Call me Ishmael.", "--pair", "Some years ago", "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var o = JsonNode.Parse(r.Stdout)!.AsObject();
        Assert.Equal(["ids", "tokens"], o.Select(kv => kv.Key));
        Assert.Equal(expected["wordpiece_pair_ids"]!.AsArray().Select(x => x!.GetValue<int>()), o["ids"]!.AsArray().Select(x => x!.GetValue<int>()));
        Assert.Equal("[CLS]", o["tokens"]![0]!.GetValue<string>());

        var g = CliRunner.Run("tokenize", "--tokenizer", "gpt2", "--text", "Call me Ishmael.", "--json");
        Assert.True(g.ExitCode == 0, g.Stderr);
        var go = JsonNode.Parse(g.Stdout)!;
        Assert.Equal([14134, 502, 1148, 21720, 417, 13], go["ids"]!.AsArray().Select(x => x!.GetValue<int>()));  // npm gpt-3-encoder's ids
        Assert.Equal(["Call", "Ġme", "ĠIs", "hma", "el", "."], go["tokens"]!.AsArray().Select(x => x!.GetValue<string>()));

        var bad = CliRunner.Run("tokenize", "--tokenizer", "no-such-folder", "--text", "x", "--json");
        Assert.Equal(1, bad.ExitCode);
        Assert.Contains("no-such-folder", bad.Stderr);
    }

    [Fact]
    public void Tokenizer_train_then_data_encode_writes_a_readable_token_file()
    {
        var dir = Directory.CreateTempSubdirectory("tasklm-cli-tok").FullName;
        var corpus = Path.Combine(dir, "corpus.txt");
        File.WriteAllLines(corpus, TrainerTests.MobyLines.Value.Take(300));
        var t = CliRunner.Run("tokenizer", "train", "--kind", "wordpiece", corpus, "--vocab-size", "600", "--out", Path.Combine(dir, "wp"), "--json");
        Assert.True(t.ExitCode == 0, t.Stderr);
        var wp = TokenizerLoader.Load(Path.Combine(dir, "wp"));
        Assert.Equal(600, wp.VocabSize);
        Assert.Equal(2, wp.ClsTokenId);

        var jsonl = Path.Combine(dir, "docs.jsonl");
        File.WriteAllLines(jsonl, ["{\"text\": \"Call me Ishmael.\"}", "{\"text\": \"Some years ago, never mind how long precisely.\"}"]);
        var e = CliRunner.Run("data", "encode", "--tokenizer", Path.Combine(dir, "wp"), jsonl, "--out", Path.Combine(dir, "docs.tok"), "--json");
        Assert.True(e.ExitCode == 0, e.Stderr);
        Assert.Equal(2, JsonNode.Parse(e.Stdout)!["documents"]!.GetValue<int>());
        using var r = new TokenFileReader(Path.Combine(dir, "docs.tok"));
        Assert.Equal(2, r.DocumentCount);
        Assert.Equal(wp.Encode("Call me Ishmael.").Append(wp.SepTokenId!.Value), r.Document(0));  // BERT's eos is [SEP]

        var broken = Path.Combine(dir, "broken.jsonl");
        File.WriteAllLines(broken, ["{\"text\": \"ok\"}", "{not json"]);
        var b = CliRunner.Run("data", "encode", broken, "--out", Path.Combine(dir, "broken.tok"));
        Assert.Equal(1, b.ExitCode);
        Assert.Contains("broken.jsonl:2", b.Stderr);
        Assert.False(File.Exists(Path.Combine(dir, "broken.tok")));
    }
}
