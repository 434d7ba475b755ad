// The embedded GPT-2 vocabulary against an independent GPT-2 encoder (npm gpt-3-encoder 1.1.4, run once; see fixtures/tokenization/README.md).
using System.Text.Json.Nodes;
using TaskLM.Data.Tokenization;

namespace TaskLM.Tests.Tokenization;

public class Gpt2VocabTests
{
    private static readonly (string Text, int[] Ids)[] Cases = JsonNode.Parse(File.ReadAllText(
            Path.Combine(AppContext.BaseDirectory, "fixtures", "tokenization", "gpt2_reference.json")))!["cases"]!.AsArray()
        .Select(c => (c!["text"]!.GetValue<string>(), c["ids"]!.AsArray().Select(x => x!.GetValue<int>()).ToArray())).ToArray();

    [Fact]
    public void Embedded_gpt2_matches_gpt3_encoder_on_real_sentences()
    {
        Assert.True(Cases.Length >= 300);
        var tok = TokenizerLoader.Load("gpt2");
        Assert.Equal(50257, tok.VocabSize);
        Assert.Equal(50256, tok.EosTokenId);
        Assert.Equal("Ġthe", tok.IdToToken(262));  // HF vocab.json's byte-level string for id 262
        foreach (var (text, ids) in Cases)
        {
            Assert.Equal(ids, tok.Encode(text).ToArray());
            Assert.Equal(text, tok.Decode(ids));
        }
    }

    [Fact]
    public void Embedded_gpt2_saved_as_HF_files_reloads_with_the_same_ids()
    {
        // Save derives merges.txt from the ranks; reloading runs our own merge loop instead of tiktoken's.
        var dir = Directory.CreateTempSubdirectory("tasklm-gpt2").FullName;
        TokenizerLoader.Load("gpt2").Save(dir);
        Assert.Equal(50001, File.ReadLines(Path.Combine(dir, "merges.txt")).Count());  // header + 50,000 merges, as GPT-2's own file
        File.Delete(Path.Combine(dir, "tokenizer.json"));
        var reloaded = TokenizerLoader.Load(dir);
        Assert.Equal(50257, reloaded.VocabSize);
        Assert.Equal(50256, reloaded.EosTokenId);
        foreach (var (text, ids) in Cases) Assert.Equal(ids, reloaded.Encode(text).ToArray());
        Assert.Equal([464, 50256, 383], reloaded.Encode("The<|endoftext|> The").ToArray());  // special token kept whole
    }
}
