// GPT-2's byte-level alphabet: every byte as one printable character, and the pre-tokenizer pattern.
using System.Text;
using System.Text.RegularExpressions;

namespace TaskLM.Data.Tokenization;

/// <summary>Which pre-tokenizer a byte-level BPE tokenizer runs before its merges (as named in tokenizer.json and by llama.cpp).</summary>
public enum ByteLevelPreTokenizer
{
    /// <summary>ByteLevel with use_regex: GPT-2's pattern.</summary>
    Gpt2,
    /// <summary>Split(Llama 3 pattern, Isolated) then ByteLevel without regex.</summary>
    Llama3,
    /// <summary>Split(Qwen2 pattern, Isolated) then ByteLevel without regex (with an NFC normalizer).</summary>
    Qwen2,
    /// <summary>Digits(individual_digits) then ByteLevel with GPT-2's pattern (SmolLM, SmolLM2).</summary>
    SmolLM,
    /// <summary>Another Split pattern, run as .NET reads it.</summary>
    Custom,
}

/// <summary>
/// The byte ↔ character map GPT-2 (and HF's ByteLevel pre-tokenizer) uses so that a vocabulary of strings can
/// hold every byte: printable Latin-1 bytes map to themselves, the other 68 to U+0100 upwards, in byte order.
/// </summary>
public static class ByteLevel
{
    /// <summary>GPT-2's pre-tokenizer pattern (contractions, letters, numbers, other, whitespace runs).</summary>
    public const string Gpt2Pattern = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

    /// <summary>Compiled <see cref="Gpt2Pattern"/>.</summary>
    public static readonly Regex Gpt2Regex = new(Gpt2Pattern, RegexOptions.Compiled);

    /// <summary>Llama 3's Split pattern (tokenizer.json pre_tokenizer): case-insensitive contractions, a letter run with
    /// one leading non-letter, digits in groups of up to three, punctuation with trailing newlines, newline runs.</summary>
    public const string Llama3Pattern = @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    /// <summary>Qwen2's Split pattern: as Llama 3's, but every digit on its own.</summary>
    public const string Qwen2Pattern = @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    /// <summary>A Split pattern compiled as HF's tokenizers (Oniguruma) reads it: culture-invariant case folding.</summary>
    public static Regex Compile(string pattern) => new(pattern, RegexOptions.Compiled | RegexOptions.CultureInvariant);

    /// <summary>Character of each byte value (256 entries).</summary>
    public static readonly char[] ByteToChar = BuildMap();

    private static readonly Dictionary<char, byte> CharToByteMap = ByteToChar.Select((c, b) => (c, b)).ToDictionary(t => t.c, t => (byte)t.b);

    private static char[] BuildMap()
    {
        var map = new char[256];
        int next = 256;
        for (int b = 0; b < 256; b++)
        {
            bool printable = b is >= '!' and <= '~' or >= 0xA1 and <= 0xAC or >= 0xAE and <= 0xFF;
            map[b] = printable ? (char)b : (char)next++;
        }
        return map;
    }

    /// <summary>Byte-level string of raw bytes.</summary>
    public static string Encode(ReadOnlySpan<byte> bytes)
    {
        var chars = new char[bytes.Length];
        for (int i = 0; i < bytes.Length; i++) chars[i] = ByteToChar[bytes[i]];
        return new string(chars);
    }

    /// <summary>Byte-level string of a text's UTF-8 bytes (lone surrogates become U+FFFD's bytes).</summary>
    public static string Encode(string text) => Encode(Encoding.UTF8.GetBytes(text));

    /// <summary>Appends the bytes a byte-level token stands for; false when it holds a character outside the alphabet.</summary>
    public static bool TryAppendBytes(string token, List<byte> into)
    {
        foreach (var c in token)
        {
            if (!CharToByteMap.TryGetValue(c, out var b)) return false;
            into.Add(b);
        }
        return true;
    }

    /// <summary>Bytes of a byte-level token (throws on a character outside the alphabet).</summary>
    public static byte[] Decode(string token)
    {
        var list = new List<byte>(token.Length);
        if (!TryAppendBytes(token, list)) throw new FormatException($"token '{token}' is not byte-level");
        return [.. list];
    }
}
