// Our vocabulary trainers against the tokenizers HF trained on the same Moby-Dick text (make_fixtures.py).
using System.IO.Compression;
using System.Text.Json.Nodes;
using TaskLM.Data.Tokenization;

namespace TaskLM.Tests.Tokenization;

public class TrainerTests
{
    /// <summary>The non-empty lines of Moby-Dick chapters 1-135, exactly the lines make_fixtures.py trained on.</summary>
    internal static readonly Lazy<string[]> MobyLines = new(() =>
    {
        using var gz = new GZipStream(File.OpenRead(Path.Combine(AppContext.BaseDirectory, "fixtures", "tokenization", "moby.txt.gz")), CompressionMode.Decompress);
        return new StreamReader(gz).ReadToEnd().Split('\n').Where(l => l.Trim().Length > 0).ToArray();
    });

    /// <summary>What HF tokenizers (Rust, via npm "tokenizers" 0.23.2) encoded with the tokenizer.json files our trainers wrote.</summary>
    private static readonly Lazy<JsonNode> HfOnOurFiles = new(() => JsonNode.Parse(File.ReadAllText(
        Path.Combine(AppContext.BaseDirectory, "fixtures", "tokenization", "hf_encodes_our_trained.json")))!);

    /// <summary>Asserts that our tokenizer gives, text for text, the ids HF computed from our saved files.</summary>
    private static void AssertHfAgrees(ITokenizer ours, string key)
    {
        var texts = HfOnOurFiles.Value["texts"]!.AsArray().Select(t => t!.GetValue<string>()).ToArray();
        var ids = HfOnOurFiles.Value[key]!.AsArray();
        Assert.True(texts.Length >= 50);
        for (int i = 0; i < texts.Length; i++)
            Assert.Equal(ids[i]!.AsArray().Select(x => x!.GetValue<int>()), ours.EncodeForModel(texts[i]).InputIds);
    }

    private static string[] HfMerges() => File.ReadLines(HfParityTests.Hf("tok-bpe", "merges.txt")).Skip(1).Where(l => l.Length > 0).ToArray();

    [Fact]
    public void ByteLevelBpe_trained_on_MobyDick_compresses_like_HF_and_reloads()
    {
        var lines = MobyLines.Value;
        Assert.Equal(1184539, lines.Take(3000).Sum(l => l.Length));  // the same text HF counted
        var tok = TokenizerTrainer.TrainByteLevelBpe(lines, new TokenizerTrainerOptions { VocabSize = 2000, MinFrequency = 2, SpecialTokens = ["<|endoftext|>"] });
        Assert.Equal(2000, tok.VocabSize);
        Assert.Equal(0, tok.TokenToId("<|endoftext|>"));

        // Compression on the text HF measured: HF's tokenizer gave 369,217 tokens.
        long ours = lines.Take(3000).Sum(l => (long)tok.Encode(l).Count);
        double ratio = ours / 369217.0;
        Assert.InRange(ratio, 0.97, 1.03);

        // Same algorithm, same tie-breaking: the merges should be HF's.
        var hf = HfMerges();
        var mine = tok.Merges.Select(m => m.A + " " + m.B).ToArray();
        Assert.Equal(hf.Length, mine.Length);
        Assert.Equal(hf, mine);

        // Saved as HF files, our loader reads both forms back with the same ids.
        var dir = Directory.CreateTempSubdirectory("tasklm-train-bpe").FullName;
        tok.Save(dir);
        var viaJson = TokenizerLoader.Load(dir);
        File.Delete(Path.Combine(dir, "tokenizer.json"));
        var viaMerges = TokenizerLoader.Load(dir);
        foreach (var l in lines.Take(200))
        {
            Assert.Equal(tok.Encode(l), viaJson.Encode(l));
            Assert.Equal(tok.Encode(l), viaMerges.Encode(l));
        }
        Assert.Equal(0, viaJson.EosTokenId);
        AssertHfAgrees(viaJson, "trained_bpe");
    }

    [Fact]
    public void WordPiece_trained_on_MobyDick_has_HFs_vocabulary_and_reloads()
    {
        var lines = MobyLines.Value;
        string[] specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];
        var tok = TokenizerTrainer.TrainWordPiece(lines, new TokenizerTrainerOptions { VocabSize = 2000, SpecialTokens = specials });
        Assert.Equal(2000, tok.VocabSize);
        Assert.Equal([0, 1, 2, 3, 4], specials.Select(s => tok.TokenToId(s)!.Value));

        // HF's WordPieceTrainer is BPE with "##" continuations: the same 2,000 strings come out.
        var hfVocab = File.ReadAllLines(HfParityTests.Hf("tok-wordpiece", "vocab.txt"));
        Assert.Equal(hfVocab.Order(StringComparer.Ordinal), Enumerable.Range(0, 2000).Select(i => tok.IdToToken(i)!).Order(StringComparer.Ordinal));

        // And it cuts the text into as many pieces as HF's tokenizer (loaded by the parity-tested loader).
        var hf = TokenizerLoader.Load(HfParityTests.Hf("tok-wordpiece"));
        Assert.Equal(lines.Take(500).Sum(l => hf.Encode(l).Count), lines.Take(500).Sum(l => tok.Encode(l).Count));

        var dir = Directory.CreateTempSubdirectory("tasklm-train-wp").FullName;
        tok.Save(dir);
        var viaJson = TokenizerLoader.Load(dir);
        File.Delete(Path.Combine(dir, "tokenizer.json"));
        var viaVocab = TokenizerLoader.Load(dir);
        var enc = tok.EncodeForModel("Call me Ishmael.", "Some years ago");
        Assert.Equal(enc.InputIds, viaJson.EncodeForModel("Call me Ishmael.", "Some years ago").InputIds);
        Assert.Equal(enc.InputIds, viaVocab.EncodeForModel("Call me Ishmael.", "Some years ago").InputIds);
        Assert.Equal(2, enc.InputIds[0]);  // [CLS]
        AssertHfAgrees(viaJson, "trained_wordpiece");
    }
}
