// EncodeForModel: truncation strategies, padding and offsets, as users of HF's tokenizer(...) rely on them.
using System.Text.Json.Nodes;
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

    /// <summary>Cases computed by HF tokenizers 0.23 (npm "tokenizers", the Rust library) on tok-wordpiece.</summary>
    public static TheoryData<int> HfCases() { var d = new TheoryData<int>(); for (int i = 0; i < HfModelInputs.Count; i++) d.Add(i); return d; }

    private static readonly JsonArray HfModelInputs = JsonNode.Parse(File.ReadAllText(
        Path.Combine(AppContext.BaseDirectory, "fixtures", "tokenization", "hf_wordpiece_model_inputs.json")))!["cases"]!.AsArray();

    [Theory, MemberData(nameof(HfCases))]
    public void Truncation_type_ids_and_offsets_match_HF(int index)
    {
        var c = HfModelInputs[index]!;
        string text = c["text"]!.GetValue<string>();
        string? pair = c["pair"]?.GetValue<string>();
        var strategy = c["strategy"]?.GetValue<string>() switch
        {
            "only_first" => TruncationStrategy.OnlyFirst, "only_second" => TruncationStrategy.OnlySecond, _ => TruncationStrategy.LongestFirst,
        };
        var options = new EncodeOptions { MaxLength = c["max_length"]?.GetValue<int>(), Truncation = strategy };
        if (c["error"] != null)
        {
            // HF refuses when the sequence it may cut is too short; so do we.
            Assert.Throws<ArgumentException>(() => Wp.EncodeForModel(text, pair, options));
            return;
        }
        var enc = Wp.EncodeForModel(text, pair, options);
        Assert.Equal(c["ids"]!.AsArray().Select(x => x!.GetValue<int>()), enc.InputIds);
        Assert.Equal(c["type_ids"]!.AsArray().Select(x => x!.GetValue<int>()), enc.TokenTypeIds);
        // HF's offsets count code points (Rust chars); ours are UTF-16 indices, so convert theirs to compare.
        var hfOffsets = c["offsets"]!.AsArray().Select((o, i) =>
        {
            int s = o![0]!.GetValue<int>(), e = o[1]!.GetValue<int>();
            if (enc.SpecialTokensMask[i] == 1) return (s, e);
            var src = enc.SequenceIds[i] == 1 ? pair! : text;
            return (Utf16Index(src, s), Utf16Index(src, e));
        });
        Assert.Equal(hfOffsets, enc.Offsets);
    }

    private static int Utf16Index(string s, int codePoints)
    {
        int i = 0;
        for (int k = 0; k < codePoints; k++) i += char.IsHighSurrogate(s[i]) ? 2 : 1;
        return i;
    }

    [Fact]
    public void Padding_to_max_length_and_to_the_longest_in_a_batch()
    {
        // padding to max_length: [PAD] ids, mask 0, type 0, special mask 1.
        var padded = Wp.EncodeForModel("call me ishmael", null, new EncodeOptions { MaxLength = 10, Padding = PaddingStrategy.MaxLength });
        Assert.Equal(10, padded.Length);
        int real = padded.AttentionMask.Sum();
        Assert.Equal(Wp.EncodeForModel("call me ishmael").InputIds, padded.InputIds.Take(real));
        Assert.All(padded.InputIds.Skip(real), id => Assert.Equal(0, id));
        Assert.All(padded.TokenTypeIds, t => Assert.Equal(0, t));
        Assert.All(padded.SpecialTokensMask.Skip(real), m => Assert.Equal(1, m));

        var batch = ModelInputBuilder.PadBatch([Wp.EncodeForModel("a"), Wp.EncodeForModel("call me ishmael")], Wp.PadTokenId!.Value);
        Assert.Equal(batch[1].Length, batch[0].Length);
        Assert.Equal(3, batch[0].AttentionMask.Sum());  // [CLS] a [SEP], then padding
        Assert.All(batch[0].AttentionMask.Skip(3), m => Assert.Equal(0, m));
    }
}
