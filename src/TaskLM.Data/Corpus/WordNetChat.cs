// A chat data set from WordNet: "What does the word X mean?" → "X (noun): <definition>." as OpenAI-format messages.
using System.Text.Json.Nodes;

namespace TaskLM.Data.Corpus;

/// <summary>
/// <c>tasklm data wordnet-chat</c>: question → answer conversations built from the shipped WordNet 3.0 glosses, for
/// chat fine-tuning (recipes/chat-sft-lora.yaml). Each row is <c>{"messages": [{"role": "user", "content": "What does
/// the word X mean?"}, {"role": "assistant", "content": "X (noun): definition."}], "word", "pos", "offset"}</c>: a
/// format the model has to learn (repeat the word, name its part of speech in brackets, then the definition).
/// Words are a synset's first lemma when it is one word (a–z only, so the question is unambiguous text); the
/// definition is the gloss before its quoted examples, at most <see cref="MaxDefinitionWords"/> words.
/// Validation and test come only from the synsets <c>tasklm data pretrain-corpus</c> holds out of pre-training (index
/// mod 8 = 7), so neither their definitions nor their words' glosses were seen by models/tasklm-*-mini; training
/// rows come from the rest. Each word appears in one split only. Rows are sampled with a seeded shuffle.
/// </summary>
public static class WordNetChat
{
    /// <summary>Longest definition kept, in words (short answers suit a tiny model and a CPU).</summary>
    public const int MaxDefinitionWords = 12;

    /// <summary>The part-of-speech name the answer uses for WordNet's pos field.</summary>
    public static string PosName(string pos) => pos switch { "noun" => "noun", "verb" => "verb", "adj" => "adjective", "adv" => "adverb", _ => pos };

    /// <summary>The question for a word.</summary>
    public static string Question(string word) => $"What does the word {word} mean?";

    /// <summary>The answer: "word (pos): definition."</summary>
    public static string Answer(string word, string pos, string definition) => $"{word} ({PosName(pos)}): {definition}.";

    /// <summary>Writes train.jsonl, validation.jsonl and test.jsonl into <paramref name="outDir"/> with the given
    /// row counts (fewer when WordNet has fewer suitable synsets); returns (file, rows) per split.</summary>
    public static List<(string File, int Rows)> Write(CorpusCatalog catalog, string outDir, int train, int validation, int test, int seed, IReadOnlyList<string>? parts = null)
    {
        var wanted = parts?.ToHashSet() ?? ["noun", "verb", "adj", "adv"];
        var seen = new HashSet<string>(StringComparer.OrdinalIgnoreCase);   // one row per word: the first sense in file order
        var pool = new List<(JsonObject Row, bool HeldOut)>();
        int i = -1;
        foreach (var r in JsonlFile.Read(catalog.PathOf(catalog.Get("wordnet"))))
        {
            i++;
            var d = r.Fields;
            string pos = d["pos"]!.ToString();
            if (!wanted.Contains(pos) || d["lemmas"] is not JsonArray { Count: > 0 } lemmas) continue;
            string word = lemmas[0]!.ToString();
            if (word.Length < 2 || !word.All(c => c is >= 'a' and <= 'z') || !seen.Add(word)) continue;
            string definition = Definition(d["gloss"]!.ToString());
            int words = definition.Split(' ', StringSplitOptions.RemoveEmptyEntries).Length;
            if (words == 0 || words > MaxDefinitionWords) continue;
            var row = new JsonObject
            {
                ["messages"] = new JsonArray(
                    new JsonObject { ["role"] = "user", ["content"] = Question(word) },
                    new JsonObject { ["role"] = "assistant", ["content"] = Answer(word, pos, definition) }),
                ["word"] = word, ["pos"] = pos, ["offset"] = d["offset"]!.ToString(),
            };
            pool.Add((row, i % PretrainCorpus.HoldEvery == PretrainCorpus.HoldEvery - 1));
        }
        var rng = new Random(seed);
        var held = pool.Where(p => p.HeldOut).Select(p => p.Row).ToArray();
        var rest = pool.Where(p => !p.HeldOut).Select(p => p.Row).ToArray();
        rng.Shuffle(held); rng.Shuffle(rest);
        Directory.CreateDirectory(outDir);
        var splits = new List<(string, IEnumerable<JsonObject>)>
        {
            ("train.jsonl", rest.Take(train)),
            ("validation.jsonl", held.Take(validation)),
            ("test.jsonl", held.Skip(validation).Take(test)),
        };
        var counts = new List<(string, int)>();
        foreach (var (file, rows) in splits)
        {
            var list = rows.ToList();
            JsonlFile.Write(Path.Combine(outDir, file), list);
            counts.Add((file, list.Count));
        }
        return counts;
    }

    /// <summary>The gloss without its quoted examples (WordNet writes <c>definition; "example"</c>), trimmed of a final ';'.</summary>
    public static string Definition(string gloss)
    {
        int q = gloss.IndexOf('"');
        string d = q >= 0 ? gloss[..q] : gloss;
        return d.Trim().TrimEnd(';', ',', '.', ' ').Trim();
    }
}
