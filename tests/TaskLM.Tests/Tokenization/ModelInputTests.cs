// EncodeForModel: truncation strategies, padding and offsets, as users of HF's tokenizer(...) rely on them.
using TaskLM.Data.Tokenization;

namespace TaskLM.Tests.Tokenization;

public class ModelInputTests
{
    private static readonly ITokenizer Wp = TokenizerLoader.Load(HfParityTests.Hf("tok-wordpiece"));

    [Fact]
    public void Offsets_point_back_at_the_original_characters()
    {
        // Lowercasing, accent stripping and CJK splitting must not shift the spans (QA answers are cut from them).
        const string text = "  Hello,   WORLD!! naïve café 日本 🐳";
        var enc = Wp.EncodeForModel(text);
        var words = enc.Offsets.Where((o, i) => enc.SpecialTokensMask[i] == 0).Select(o => text[o.Start..o.End]).ToArray();
        Assert.Equal(["Hello", ",", "WORLD", "!", "!", "naïve", "café", "日", "本", "🐳"], MergePieces(words, enc));
        Assert.Equal((0, 0), enc.Offsets[0]);  // [CLS]

        var bpe = TokenizerLoader.Load("gpt2");
        const string t2 = "The whale's jaw—\"thar she blows\"";
        var e2 = bpe.EncodeForModel(t2);
        Assert.Equal(t2, string.Concat(e2.Offsets.Select(o => t2[o.Start..o.End])));
    }

    // Joins "##" continuation pieces' spans back into words (their spans are adjacent).
    private static string[] MergePieces(string[] pieces, TokenizedInput enc)
    {
        var ids = enc.InputIds.Where((_, i) => enc.SpecialTokensMask[i] == 0).ToArray();
        var words = new List<string>();
        for (int i = 0; i < pieces.Length; i++)
            if (Wp.IdToToken(ids[i])!.StartsWith("##")) words[^1] += pieces[i]; else words.Add(pieces[i]);
        return [.. words];
    }

    [Fact]
    public void Truncation_strategies_and_padding_behave_like_HF()
    {
        var a = Wp.Encode("call me ishmael some years ago never mind how long precisely").Count;  // 11 tokens or so
        var b = Wp.Encode("having little or no money").Count;
        Assert.True(a > b);
        const string A = "call me ishmael some years ago never mind how long precisely", B = "having little or no money";

        // longest_first: tokens come off the longer text until both fit (3 specials + texts = 12).
        var lf = Wp.EncodeForModel(A, B, new EncodeOptions { MaxLength = 12 });
        Assert.Equal(12, lf.Length);
        int nA = lf.SequenceIds.Count(s => s == 0), nB = lf.SequenceIds.Count(s => s == 1);
        Assert.Equal(9, nA + nB);
        Assert.True(Math.Abs(nA - nB) <= 1 || nB == b);
        Assert.Equal(a + b - 9, lf.NumTruncatedTokens);

        // only_second keeps the first text whole.
        var os = Wp.EncodeForModel(A, B, new EncodeOptions { MaxLength = a + 3 + 2, Truncation = TruncationStrategy.OnlySecond });
        Assert.Equal(a, os.SequenceIds.Count(s => s == 0));
        Assert.Equal(2, os.SequenceIds.Count(s => s == 1));
        Assert.Equal(Wp.Encode(B).Take(2), os.InputIds.Where((_, i) => os.SequenceIds[i] == 1));
        Assert.Throws<ArgumentException>(() => Wp.EncodeForModel(A, B, new EncodeOptions { MaxLength = 5, Truncation = TruncationStrategy.OnlySecond }));

        // padding to max_length: [PAD] ids, mask 0, type 0.
        var padded = Wp.EncodeForModel("call me ishmael", null, new EncodeOptions { MaxLength = 10, Padding = PaddingStrategy.MaxLength });
        Assert.Equal(10, padded.Length);
        int real = padded.AttentionMask.Sum();
        Assert.All(padded.InputIds.Skip(real), id => Assert.Equal(0, id));
        Assert.All(padded.TokenTypeIds, t => Assert.Equal(0, t));
        Assert.Equal(3, padded.InputIds[real - 1]);  // [SEP] before the padding

        var batch = ModelInputBuilder.PadBatch([Wp.EncodeForModel("a"), Wp.EncodeForModel("call me ishmael")], Wp.PadTokenId!.Value);
        Assert.Equal(batch[0].Length, batch[1].Length);
    }
}
