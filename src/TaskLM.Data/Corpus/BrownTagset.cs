// Brown corpus tags → the 12 universal part-of-speech tags of Petrov, Das & McDonald (2012), as rules on the base tag.
namespace TaskLM.Data.Corpus;

/// <summary>Maps a Brown tag as written in the shipped corpus (lowercase: <c>nn-tl</c>, <c>vbd</c>, <c>np$</c>,
/// <c>ppss+md</c>, <c>fw-nn</c>) to one of the 12 universal tags (NOUN VERB ADJ ADV PRON DET ADP NUM CONJ PRT . X).
/// The rules work on the base tag: the headline/title/cited suffixes (<c>-hl</c>, <c>-tl</c>, <c>-nc</c>) are dropped,
/// a contraction (<c>ppss+md</c>, "I'll") takes its first part, then the possessive <c>$</c> and the negation
/// <c>*</c> marks are dropped (except where they make a different word class: <c>pp$</c> is "my", the lone <c>*</c>
/// is "not"). Foreign words (<c>fw-</c>), <c>nil</c> and anything unknown are X.</summary>
public static class BrownTagset
{
    /// <summary>The 12 universal tags, in the paper's order.</summary>
    public static readonly IReadOnlyList<string> Universal = ["NOUN", "VERB", "ADJ", "ADV", "PRON", "DET", "ADP", "NUM", "CONJ", "PRT", ".", "X"];

    // Punctuation tags of the Brown tagset: sentence closer, comma, colon, dash, parentheses, quotes.
    static readonly HashSet<string> Punctuation = [".", ",", ":", "--", "(", ")", "``", "''", "'", "`"];

    /// <summary>The universal tag of one Brown tag (case-insensitive); X when the tag is not a Brown tag.</summary>
    public static string ToUniversal(string brownTag)
    {
        string t = brownTag.Trim().ToLowerInvariant();
        if (Punctuation.Contains(t)) return ".";
        // -hl (headline), -tl (title), -nc (cited word) qualify any tag and may stack (nn-tl-hl).
        bool stripped = true;
        while (stripped)
        {
            stripped = false;
            foreach (var suffix in (string[])["-hl", "-tl", "-nc"])
                if (t.Length > suffix.Length && t.EndsWith(suffix, StringComparison.Ordinal)) { t = t[..^suffix.Length]; stripped = true; }
        }
        if (Punctuation.Contains(t)) return ".";
        if (t.StartsWith("fw-", StringComparison.Ordinal)) return "X";   // foreign word, whatever its own tag
        int plus = t.IndexOf('+');
        if (plus > 0) t = t[..plus];                                      // contraction: ppss+md ("I'll") → ppss
        if (t == "*") return "ADV";                                       // negator: not, n't
        if (t is "pp$" or "pp$$" or "wp$") return "PRON";                 // possessive pronouns: my, mine, whose
        t = t.TrimEnd('$', '*');                                          // np$ → np, md* ("can't") → md
        return Base(t);
    }

    static string Base(string t)
    {
        switch (t)
        {
            case "at": case "dt": case "dti": case "dts": case "dtx": case "wdt":
            case "abn": case "abx": case "ap": case "ex":
                return "DET";     // articles, determiners, pre-/post-quantifiers (all, both, many), existential there
            case "in": return "ADP";
            case "cc": case "cs": return "CONJ";
            case "cd": case "od": return "NUM";
            case "to": case "rp": return "PRT";
            case "md": return "VERB";
            case "abl": case "ql": case "qlp": case "wql": case "wrb": case "rn":
                return "ADV";     // pre-qualifiers and qualifiers (quite, very, enough), wh-adverbs, nominal adverbs (here)
            case "pn": return "NOUN";   // nominal pronoun (everybody, nothing): NN in the Penn Treebank, hence NOUN
            case "uh": case "nil": return "X";
        }
        if (t is "nn" or "nns" or "np" or "nps" or "nr" or "nrs") return "NOUN";
        if (t.StartsWith("pp", StringComparison.Ordinal) || t is "wpo" or "wps") return "PRON";
        if (t.StartsWith("vb", StringComparison.Ordinal) || t.StartsWith("be", StringComparison.Ordinal)
            || t.StartsWith("hv", StringComparison.Ordinal) || t.StartsWith("do", StringComparison.Ordinal)) return "VERB";
        if (t.StartsWith("jj", StringComparison.Ordinal)) return "ADJ";
        if (t.StartsWith("rb", StringComparison.Ordinal)) return "ADV";
        return "X";
    }
}
