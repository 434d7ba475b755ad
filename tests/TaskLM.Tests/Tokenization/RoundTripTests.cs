// Byte-level BPE loses nothing: decode(encode(x)) == x for any valid Unicode, and bad UTF-16 never throws.
using System.Text;
using TaskLM.Data.Tokenization;

namespace TaskLM.Tests.Tokenization;

public class RoundTripTests
{
    private static IEnumerable<string> Samples()
    {
        yield return "🐳🐋 whales 👩‍👩‍👧‍👦 family, flags 🇯🇵🇫🇷, skin 👍🏽";
        yield return "Ünïcödé — ½ ∑ ∞ ≠ ≤ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝟘𝟙𝟚 \u200b\u200d\ufeff zero-width";
        yield return "混合 日本語 한국어 العربية עברית ελληνικά русский हिन्दी ไทย";
        yield return "\t\n\r\v\f  \u00a0\u3000 \u0000\u0001\u007f controls";
        yield return "combining: e\u0301 a\u0308 n\u0303 \u0915\u094d\u0937";
        var rng = new Random(1234);
        for (int n = 0; n < 200; n++)
        {
            // Random code points from the whole range (surrogate block excluded; those are tested below).
            var sb = new StringBuilder();
            int len = rng.Next(1, 40);
            for (int i = 0; i < len; i++)
            {
                int cp = rng.Next(4) switch { 0 => rng.Next(0x20, 0x7F), 1 => rng.Next(0x80, 0x800), 2 => rng.Next(0x800, 0xD800), _ => rng.Next(0x10000, 0x110000) };
                sb.Append(char.ConvertFromUtf32(cp));
            }
            yield return sb.ToString();
        }
    }

    public static TheoryData<string> Tokenizers => new() { "gpt2", "tok-bpe" };

    [Theory, MemberData(nameof(Tokenizers))]
    public void Decode_of_encode_is_identity_on_arbitrary_unicode(string which)
    {
        var tok = TokenizerLoader.Load(which == "gpt2" ? "gpt2" : HfParityTests.Hf("tok-bpe"));
        foreach (var s in Samples())
            Assert.Equal(s, tok.Decode(tok.Encode(s)));
    }

    [Theory, MemberData(nameof(Tokenizers))]
    public void Lone_surrogates_encode_as_U_FFFD_without_exceptions(string which)
    {
        var tok = TokenizerLoader.Load(which == "gpt2" ? "gpt2" : HfParityTests.Hf("tok-bpe"));
        // Invalid UTF-16 cannot become UTF-8; like Python's encode(errors="replace") each lone surrogate becomes U+FFFD.
        foreach (var s in new[] { "a\ud800b", "\udc00", "end\ud83d", "\ud83d\ud83d\udc33", "\udfff\ud800" })
        {
            var back = tok.Decode(tok.Encode(s));
            Assert.Equal(Encoding.UTF8.GetString(Encoding.UTF8.GetBytes(s)), back);
            Assert.Contains('\ufffd', back);
        }
        // Ids that cut a character in half decode to U+FFFD instead of throwing.
        var whale = tok.Encode("🐳");
        Assert.True(whale.Count > 1);
        Assert.Equal("\ufffd", tok.Decode(whale.Take(1)));
    }
}
