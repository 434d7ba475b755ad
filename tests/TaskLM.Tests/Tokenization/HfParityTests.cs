// Our tokenizers against what Hugging Face tokenizers 0.23 computed from the same files (tokenizers.expected.json).
using System.Text.Json.Nodes;
using TaskLM.Data.Tokenization;

namespace TaskLM.Tests.Tokenization;

public class HfParityTests
{
    internal static string Hf(params string[] parts) => Path.Combine([AppContext.BaseDirectory, "fixtures", "hf", .. parts]);

    private static readonly JsonObject Expected = JsonNode.Parse(File.ReadAllText(Hf("tokenizers.expected.json")))!.AsObject();
    private static string[] Probes => Expected["probes"]!.AsArray().Select(p => p!.GetValue<string>()).ToArray();
    private static int[] Ids(JsonNode n) => n.AsArray().Select(x => x!.GetValue<int>()).ToArray();

    public static TheoryData<string> BpeSources => new() { "vocab+merges", "tokenizer.json" };
    public static TheoryData<string> WordPieceSources => new() { "vocab.txt", "tokenizer.json" };

    private static ITokenizer LoadBpe(string source)
    {
        if (source == "tokenizer.json") return TokenizerLoader.Load(Hf("tok-bpe", "tokenizer.json"));
        var dir = Directory.CreateTempSubdirectory("tasklm-bpe").FullName;
        File.Copy(Hf("tok-bpe", "vocab.json"), Path.Combine(dir, "vocab.json"));
        File.Copy(Hf("tok-bpe", "merges.txt"), Path.Combine(dir, "merges.txt"));
        return TokenizerLoader.Load(dir);
    }

    private static ITokenizer LoadWordPiece(string source)
    {
        if (source == "tokenizer.json") return TokenizerLoader.Load(Hf("tok-wordpiece", "tokenizer.json"));
        var dir = Directory.CreateTempSubdirectory("tasklm-wp").FullName;
        File.Copy(Hf("tok-wordpiece", "vocab.txt"), Path.Combine(dir, "vocab.txt"));
        return TokenizerLoader.Load(dir);
    }

    [Theory, MemberData(nameof(BpeSources))]
    public void ByteLevelBpe_reproduces_every_HF_probe(string source)
    {
        var tok = LoadBpe(source);
        Assert.Equal("bpe", tok.Kind);
        Assert.Equal(2000, tok.VocabSize);
        var expected = Expected["bpe_ids"]!.AsArray();
        for (int i = 0; i < Probes.Length; i++)
        {
            Assert.Equal(Ids(expected[i]!), tok.Encode(Probes[i]).ToArray());
            // HF's byte-level decoder gives the text back exactly.
            Assert.Equal(Probes[i], tok.Decode(tok.Encode(Probes[i])));
        }
        Assert.Equal(0, tok.EosTokenId);  // <|endoftext|>, the added special token
    }

    [Theory, MemberData(nameof(WordPieceSources))]
    public void WordPiece_reproduces_every_HF_probe_with_CLS_and_SEP(string source)
    {
        var tok = LoadWordPiece(source);
        Assert.Equal("wordpiece", tok.Kind);
        Assert.Equal(2000, tok.VocabSize);
        var expected = Expected["wordpiece_ids"]!.AsArray();
        for (int i = 0; i < Probes.Length; i++)
            Assert.Equal(Ids(expected[i]!), tok.EncodeForModel(Probes[i]).InputIds);
        Assert.Equal((0, 1, 2, 3, 4), (tok.PadTokenId, tok.UnkTokenId, tok.ClsTokenId, tok.SepTokenId, tok.MaskTokenId));
    }

    [Theory, MemberData(nameof(WordPieceSources))]
    public void WordPiece_pair_matches_HF_with_token_type_ids(string source)
    {
        var tok = LoadWordPiece(source);
        var enc = tok.EncodeForModel("Call me Ishmael.", "Some years ago");
        var ids = Ids(Expected["wordpiece_pair_ids"]!);
        Assert.Equal(ids, enc.InputIds);
        // TemplateProcessing pair "[CLS] $A [SEP] $B:1 [SEP]:1": everything after the first [SEP] is segment 1.
        int firstSep = Array.IndexOf(ids, 3);
        Assert.Equal(ids.Select((_, i) => i <= firstSep ? 0 : 1), enc.TokenTypeIds);
        Assert.All(enc.AttentionMask, m => Assert.Equal(1, m));
    }
}
