// The Porter stemmer in NLTK's default mode (NLTK_EXTENSIONS), the stemmer rouge-score uses.
namespace TaskLM.Evaluation;

/// <summary>Porter (1980) suffix stripping with NLTK's extensions (its default <c>PorterStemmer()</c> mode):
/// a few irregular forms, words of one or two letters left alone, "ies"/"ied" on four-letter words kept
/// as "ie", step 1c only after a consonant, "alli" handled before the step-2 table, "bli"→"ble",
/// "fulli"→"ful" and "logi"→"log". Input is expected lower case (rouge-score lowercases first).</summary>
public static class PorterStemmer
{
    private static readonly Dictionary<string, string> Irregular = new(StringComparer.Ordinal)
    {
        ["sky"] = "sky", ["skies"] = "sky", ["dying"] = "die", ["lying"] = "lie", ["tying"] = "tie",
        ["news"] = "news", ["innings"] = "inning", ["inning"] = "inning", ["outings"] = "outing",
        ["outing"] = "outing", ["cannings"] = "canning", ["canning"] = "canning", ["howe"] = "howe",
        ["proceed"] = "proceed", ["exceed"] = "exceed", ["succeed"] = "succeed",
    };

    /// <summary>The stem of one lower-case word.</summary>
    public static string Stem(string word)
    {
        if (Irregular.TryGetValue(word, out var irregular)) return irregular;
        if (word.Length <= 2) return word;
        var w = Step1a(word);
        w = Step1b(w);
        w = Step1c(w);
        w = Step2(w);
        w = Step3(w);
        w = Step4(w);
        w = Step5a(w);
        return Step5b(w);
    }

    private static bool IsConsonant(string w, int i)
    {
        char c = w[i];
        if (c is 'a' or 'e' or 'i' or 'o' or 'u') return false;
        if (c == 'y') return i == 0 || !IsConsonant(w, i - 1);
        return true;
    }

    // m in [C](VC)^m[V]: the number of vowel-to-consonant transitions.
    private static int Measure(string stem)
    {
        int m = 0;
        for (int i = 1; i < stem.Length; i++)
            if (!IsConsonant(stem, i - 1) && IsConsonant(stem, i)) m++;
        return m;
    }

    private static bool ContainsVowel(string stem)
    {
        for (int i = 0; i < stem.Length; i++) if (!IsConsonant(stem, i)) return true;
        return false;
    }

    private static bool EndsDoubleConsonant(string w) =>
        w.Length >= 2 && w[^1] == w[^2] && IsConsonant(w, w.Length - 1);

    // *o: consonant-vowel-consonant, the last not w, x or y; NLTK also counts a two-letter vowel-consonant word.
    private static bool EndsCvc(string w) =>
        (w.Length >= 3 && IsConsonant(w, w.Length - 3) && !IsConsonant(w, w.Length - 2) && IsConsonant(w, w.Length - 1)
            && w[^1] is not ('w' or 'x' or 'y'))
        || (w.Length == 2 && !IsConsonant(w, 0) && IsConsonant(w, 1));

    // Applies the first rule whose suffix matches; if its condition fails, no later rule is tried.
    // The suffix "*d" means "ends in a double consonant" (the stem then drops both letters).
    private static string ApplyRules(string word, (string Suffix, string Replacement, Func<string, bool>? Condition)[] rules)
    {
        foreach (var (suffix, replacement, condition) in rules)
        {
            if (suffix == "*d")
            {
                if (!EndsDoubleConsonant(word)) continue;
                var s = word[..^2];
                return condition == null || condition(s) ? s + replacement : word;
            }
            if (word.EndsWith(suffix, StringComparison.Ordinal))
            {
                var stem = word[..^suffix.Length];
                return condition == null || condition(stem) ? stem + replacement : word;
            }
        }
        return word;
    }

    private static bool PositiveMeasure(string stem) => Measure(stem) > 0;

    private static string Step1a(string w)
    {
        if (w.EndsWith("ies", StringComparison.Ordinal) && w.Length == 4) return w[..^3] + "ie";
        return ApplyRules(w, [("sses", "ss", null), ("ies", "i", null), ("ss", "ss", null), ("s", "", null)]);
    }

    private static string Step1b(string w)
    {
        if (w.EndsWith("ied", StringComparison.Ordinal)) return w.Length == 4 ? w[..^3] + "ie" : w[..^3] + "i";
        if (w.EndsWith("eed", StringComparison.Ordinal))
        {
            var s = w[..^3];
            return Measure(s) > 0 ? s + "ee" : w;
        }
        string? inter = null;
        foreach (var suffix in new[] { "ed", "ing" })
            if (w.EndsWith(suffix, StringComparison.Ordinal) && ContainsVowel(w[..^suffix.Length]))
            {
                inter = w[..^suffix.Length];
                break;
            }
        if (inter == null) return w;
        char last = inter.Length > 0 ? inter[^1] : '\0';
        return ApplyRules(inter,
        [
            ("at", "ate", null), ("bl", "ble", null), ("iz", "ize", null),
            ("*d", last.ToString(), _ => last is not ('l' or 's' or 'z')),
            ("", "e", s => Measure(s) == 1 && EndsCvc(s)),
        ]);
    }

    private static string Step1c(string w) =>
        ApplyRules(w, [("y", "i", s => s.Length > 1 && IsConsonant(s, s.Length - 1))]);

    private static string Step2(string w)
    {
        if (w.EndsWith("alli", StringComparison.Ordinal) && PositiveMeasure(w[..^4]))
            return Step2(w[..^4] + "al");
        return ApplyRules(w,
        [
            ("ational", "ate", PositiveMeasure), ("tional", "tion", PositiveMeasure), ("enci", "ence", PositiveMeasure),
            ("anci", "ance", PositiveMeasure), ("izer", "ize", PositiveMeasure), ("bli", "ble", PositiveMeasure),
            ("alli", "al", PositiveMeasure), ("entli", "ent", PositiveMeasure), ("eli", "e", PositiveMeasure),
            ("ousli", "ous", PositiveMeasure), ("ization", "ize", PositiveMeasure), ("ation", "ate", PositiveMeasure),
            ("ator", "ate", PositiveMeasure), ("alism", "al", PositiveMeasure), ("iveness", "ive", PositiveMeasure),
            ("fulness", "ful", PositiveMeasure), ("ousness", "ous", PositiveMeasure), ("aliti", "al", PositiveMeasure),
            ("iviti", "ive", PositiveMeasure), ("biliti", "ble", PositiveMeasure), ("fulli", "ful", PositiveMeasure),
            // The "l" stays with the stem for the measure, so short stems (geo-, theo-) qualify.
            ("logi", "log", _ => PositiveMeasure(w[..^3])),
        ]);
    }

    private static string Step3(string w) => ApplyRules(w,
    [
        ("icate", "ic", PositiveMeasure), ("ative", "", PositiveMeasure), ("alize", "al", PositiveMeasure),
        ("iciti", "ic", PositiveMeasure), ("ical", "ic", PositiveMeasure), ("ful", "", PositiveMeasure),
        ("ness", "", PositiveMeasure),
    ]);

    private static string Step4(string w)
    {
        static bool Gt1(string s) => Measure(s) > 1;
        return ApplyRules(w,
        [
            ("al", "", Gt1), ("ance", "", Gt1), ("ence", "", Gt1), ("er", "", Gt1), ("ic", "", Gt1), ("able", "", Gt1),
            ("ible", "", Gt1), ("ant", "", Gt1), ("ement", "", Gt1), ("ment", "", Gt1), ("ent", "", Gt1),
            ("ion", "", s => Measure(s) > 1 && s.Length > 0 && s[^1] is 's' or 't'),
            ("ou", "", Gt1), ("ism", "", Gt1), ("ate", "", Gt1), ("iti", "", Gt1), ("ous", "", Gt1), ("ive", "", Gt1),
            ("ize", "", Gt1),
        ]);
    }

    private static string Step5a(string w)
    {
        if (!w.EndsWith('e')) return w;
        var s = w[..^1];
        int m = Measure(s);
        if (m > 1) return s;
        if (m == 1 && !EndsCvc(s)) return s;
        return w;
    }

    private static string Step5b(string w) => ApplyRules(w, [("ll", "l", _ => Measure(w[..^1]) > 1)]);
}
