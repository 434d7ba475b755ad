// HF's BertNormalizer + BertPreTokenizer (BERT's "basic tokenizer"), keeping each word's span in the input.
using System.Globalization;
using System.Text;

namespace TaskLM.Data.Tokenization;

/// <summary>Settings of HF's <c>BertNormalizer</c> (names as in tokenizer.json).</summary>
/// <param name="CleanText">drop NUL, U+FFFD and control characters; map whitespace to a space</param>
/// <param name="HandleChineseChars">put spaces around CJK ideographs so each is a word</param>
/// <param name="StripAccents">NFD then drop non-spacing marks; null = same as <paramref name="Lowercase"/></param>
/// <param name="Lowercase">lowercase</param>
public sealed record BertNormalizerOptions(bool CleanText = true, bool HandleChineseChars = true, bool? StripAccents = null, bool Lowercase = true)
{
    /// <summary>Whether accents are stripped (HF: <c>strip_accents</c>, or lowercasing when unset).</summary>
    public bool DoStripAccents => StripAccents ?? Lowercase;
}

/// <summary>One pre-tokenized word: its normalized text, where each of its code points ends in that text, and for
/// each code point the span [Start, End) of the input it came from.</summary>
public readonly record struct BertWord(string Text, int[] RuneEnds, (int Start, int End)[] Spans)
{
    /// <summary>Number of code points.</summary>
    public int Length => RuneEnds.Length;
    /// <summary>Char index in <see cref="Text"/> where code point <paramref name="k"/> starts.</summary>
    public int RuneStart(int k) => k == 0 ? 0 : RuneEnds[k - 1];
    /// <summary>The word's normalized text.</summary>
    public override string ToString() => Text;
}

/// <summary>
/// BERT's basic tokenizer, as HF's BertNormalizer then BertPreTokenizer run it: clean text, pad CJK ideographs,
/// NFD + drop Mn marks, lowercase; then split on whitespace (dropped) and on punctuation (kept, one per word).
/// Works per code point (emoji are one rune, not two UTF-16 chars).
/// </summary>
public static class BertPreTokenizer
{
    /// <summary>Normalizes and splits <paramref name="text"/>; spans are UTF-16 indices plus <paramref name="baseOffset"/>.</summary>
    public static List<BertWord> Split(string text, BertNormalizerOptions options, int baseOffset = 0)
    {
        var words = new List<BertWord>();
        var chars = new StringBuilder();
        var ends = new List<int>();
        var spans = new List<(int, int)>();
        void EndWord()
        {
            if (ends.Count == 0) return;
            words.Add(new BertWord(chars.ToString(), [.. ends], [.. spans]));
            chars.Clear(); ends.Clear(); spans.Clear();
        }
        void Add(Rune r, (int, int) span)
        {
            if (r.IsBmp) chars.Append((char)r.Value); else chars.Append(r.ToString());
            ends.Add(chars.Length); spans.Add(span);
        }

        int i = 0;
        while (i < text.Length)
        {
            Rune.DecodeFromUtf16(text.AsSpan(i), out var r, out int len);  // a lone surrogate decodes as U+FFFD
            var span = (baseOffset + i, baseOffset + i + len);
            i += len;
            if (options.CleanText)
            {
                if (r.Value == 0 || r.Value == 0xFFFD || IsControl(r)) continue;
                if (IsWhitespace(r)) { EndWord(); continue; }
            }
            else if (Rune.IsWhiteSpace(r)) { EndWord(); continue; }
            if (options.HandleChineseChars && IsChinese(r.Value))
            {
                EndWord(); Add(r, span); EndWord();
                continue;
            }
            if (r.Value < 0x80)
            {
                // ASCII fast path: no accents, simple lowercase, no allocation.
                if (IsPunctuation(r)) { EndWord(); Add(r, span); EndWord(); continue; }
                Add(options.Lowercase && r.Value is >= 'A' and <= 'Z' ? new Rune(r.Value + 32) : r, span);
                continue;
            }
            foreach (var n in Normalize(r, options))
            {
                // Normalization can yield whitespace or punctuation too; split on what comes out, as HF does.
                if (Rune.IsWhiteSpace(n)) { EndWord(); continue; }
                if (IsPunctuation(n)) { EndWord(); Add(n, span); EndWord(); continue; }
                Add(n, span);
            }
        }
        EndWord();
        return words;
    }

    private static IEnumerable<Rune> Normalize(Rune r, BertNormalizerOptions o)
    {
        string s = r.ToString();
        if (o.DoStripAccents)
        {
            var sb = new StringBuilder();
            foreach (var d in s.Normalize(NormalizationForm.FormD).EnumerateRunes())
                if (Rune.GetUnicodeCategory(d) != UnicodeCategory.NonSpacingMark) sb.Append(d.ToString());
            s = sb.ToString();
        }
        if (o.Lowercase) s = s.ToLowerInvariant();
        foreach (var x in s.EnumerateRunes()) yield return x;
    }

    /// <summary>HF's whitespace: tab, newline, carriage return or Unicode White_Space.</summary>
    public static bool IsWhitespace(Rune r) => r.Value is '\t' or '\n' or '\r' or ' ' || Rune.IsWhiteSpace(r);

    /// <summary>HF's control: categories Cc, Cf, Cs, Co, Cn except tab, newline and carriage return.</summary>
    public static bool IsControl(Rune r)
    {
        if (r.Value is '\t' or '\n' or '\r') return false;
        return Rune.GetUnicodeCategory(r) is UnicodeCategory.Control or UnicodeCategory.Format or UnicodeCategory.Surrogate
            or UnicodeCategory.PrivateUse or UnicodeCategory.OtherNotAssigned;
    }

    /// <summary>BERT's punctuation: ASCII punctuation (which includes $, +, ^ ...) or any Unicode P category.</summary>
    public static bool IsPunctuation(Rune r)
    {
        int c = r.Value;
        if (c is >= 33 and <= 47 or >= 58 and <= 64 or >= 91 and <= 96 or >= 123 and <= 126) return true;
        return Rune.GetUnicodeCategory(r) is UnicodeCategory.ConnectorPunctuation or UnicodeCategory.DashPunctuation
            or UnicodeCategory.OpenPunctuation or UnicodeCategory.ClosePunctuation or UnicodeCategory.InitialQuotePunctuation
            or UnicodeCategory.FinalQuotePunctuation or UnicodeCategory.OtherPunctuation;
    }

    /// <summary>The CJK Unified Ideograph blocks BERT treats as one word each.</summary>
    public static bool IsChinese(int c) =>
        c is >= 0x4E00 and <= 0x9FFF or >= 0x3400 and <= 0x4DBF or >= 0x20000 and <= 0x2A6DF or >= 0x2A700 and <= 0x2B73F
            or >= 0x2B740 and <= 0x2B81F or >= 0x2B820 and <= 0x2CEAF or >= 0xF900 and <= 0xFAFF or >= 0x2F800 and <= 0x2FA1F;
}
