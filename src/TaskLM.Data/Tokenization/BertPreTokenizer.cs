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

/// <summary>One pre-tokenized word: its normalized runes and, for each, the span [Start, End) it came from.</summary>
public readonly record struct BertWord(string[] Runes, (int Start, int End)[] Spans)
{
    /// <summary>The word's normalized text.</summary>
    public override string ToString() => string.Concat(Runes);
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
        var runes = new List<string>();
        var spans = new List<(int, int)>();
        void EndWord()
        {
            if (runes.Count == 0) return;
            words.Add(new BertWord([.. runes], [.. spans]));
            runes.Clear(); spans.Clear();
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
                EndWord(); runes.Add(r.ToString()); spans.Add(span); EndWord();
                continue;
            }
            foreach (var n in Normalize(r, options))
            {
                // Normalization can yield whitespace or punctuation too; split on what comes out, as HF does.
                if (Rune.IsWhiteSpace(n)) { EndWord(); continue; }
                if (IsPunctuation(n)) { EndWord(); runes.Add(n.ToString()); spans.Add(span); EndWord(); continue; }
                runes.Add(n.ToString()); spans.Add(span);
            }
        }
        EndWord();
        return words;
    }

    private static IEnumerable<Rune> Normalize(Rune r, BertNormalizerOptions o)
    {
        if (r.Value < 0x80)
        {
            // ASCII fast path: no accents, simple lowercase.
            yield return o.Lowercase && r.Value is >= 'A' and <= 'Z' ? new Rune(r.Value + 32) : r;
            yield break;
        }
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
