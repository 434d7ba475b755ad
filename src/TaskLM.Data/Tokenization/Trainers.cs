// Vocabulary training: byte-level BPE and WordPiece, following Hugging Face tokenizers' BpeTrainer step for step.
using System.Collections.Concurrent;
using System.Text;

namespace TaskLM.Data.Tokenization;

/// <summary>Settings of a vocabulary trainer (HF trainer argument names).</summary>
public sealed record TokenizerTrainerOptions
{
    /// <summary><c>vocab_size</c>: final size, special tokens and alphabet included.</summary>
    public int VocabSize { get; init; } = 30000;
    /// <summary><c>min_frequency</c>: stop when the best pair occurs fewer times.</summary>
    public int MinFrequency { get; init; } = 0;
    /// <summary><c>special_tokens</c>: given the first ids, in this order.</summary>
    public IReadOnlyList<string> SpecialTokens { get; init; } = [];
}

/// <summary>
/// Trains vocabularies the way HF tokenizers' <c>BpeTrainer</c> does: count pre-tokenized words, start from the
/// alphabet (sorted by code point, after the special tokens), then repeatedly merge the most frequent adjacent
/// pair (ties: the smaller pair of ids) until the vocabulary is full or the best count falls below min_frequency.
/// WordPiece training is the same with "##" on word-continuing symbols (HF's <c>WordPieceTrainer</c>).
/// </summary>
public static class TokenizerTrainer
{
    /// <summary>Trains GPT-2-style byte-level BPE (initial alphabet: all 256 bytes) on <paramref name="texts"/>.</summary>
    public static ByteLevelBpeTokenizer TrainByteLevelBpe(IEnumerable<string> texts, TokenizerTrainerOptions options)
    {
        var counts = CountWords(texts, text =>
        {
            var words = new List<string>();
            foreach (System.Text.RegularExpressions.ValueMatch m in ByteLevel.Gpt2Regex.EnumerateMatches(text))
                words.Add(ByteLevel.Encode(Encoding.UTF8.GetBytes(text.Substring(m.Index, m.Length))));
            return words;
        });
        var (vocab, merges) = Train(counts, options, ByteLevel.ByteToChar.Select(c => c.ToString()), prefix: null);
        var special = options.SpecialTokens.ToDictionary(s => s, s => vocab[s]);
        var names = new TokenizerConfig().Names(vocab, gpt2: true);
        return ByteLevelBpeTokenizer.FromVocabAndMerges(vocab, merges, special, names);
    }

    /// <summary>Trains BERT-style WordPiece on <paramref name="texts"/>, normalized and split by <see cref="BertPreTokenizer"/>.</summary>
    public static WordPieceTokenizer TrainWordPiece(IEnumerable<string> texts, TokenizerTrainerOptions options, BertNormalizerOptions? normalizer = null)
    {
        normalizer ??= new BertNormalizerOptions();
        var counts = CountWords(texts, text => BertPreTokenizer.Split(text, normalizer).Select(w => w.ToString()));
        var (vocab, _) = Train(counts, options, [], prefix: "##");
        var names = new TokenizerConfig().Names(vocab, gpt2: false);
        return new WordPieceTokenizer(vocab, normalizer, names, extraSpecialTokens: options.SpecialTokens);
    }

    /// <summary>Counts words over all cores.</summary>
    private static Dictionary<string, long> CountWords(IEnumerable<string> texts, Func<string, IEnumerable<string>> split)
    {
        var total = new ConcurrentDictionary<string, long>(StringComparer.Ordinal);
        try
        {
            Parallel.ForEach(texts, () => new Dictionary<string, long>(StringComparer.Ordinal), (text, _, local) =>
            {
                foreach (var w in split(text)) local[w] = local.GetValueOrDefault(w) + 1;
                return local;
            }, local => { foreach (var (w, c) in local) total.AddOrUpdate(w, c, (_, old) => old + c); });
        }
        catch (AggregateException e) when (e.InnerExceptions.Count == 1)
        {
            // A reader's error (bad bytes, a cut gzip) names the file: pass it on as it is, not as "One or more errors occurred".
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(e.InnerExceptions[0]).Throw();
        }
        return new Dictionary<string, long>(total, StringComparer.Ordinal);
    }

    /// <summary>Orders the merge queue: higher count first, then the smaller (left, right) pair.</summary>
    private sealed class MergeOrder : IComparer<(long Count, int A, int B)>
    {
        public int Compare((long Count, int A, int B) x, (long Count, int A, int B) y) =>
            x.Count != y.Count ? y.Count.CompareTo(x.Count) : x.A != y.A ? x.A.CompareTo(y.A) : x.B.CompareTo(y.B);
    }

    /// <summary>The BPE merge loop. Returns the vocabulary (token → id) and the merges in order.</summary>
    private static (Dictionary<string, int> Vocab, List<(string, string)> Merges) Train(Dictionary<string, long> wordCounts, TokenizerTrainerOptions o,
        IEnumerable<string> initialAlphabet, string? prefix)
    {
        var idToWord = new List<string>();
        var wordToId = new Dictionary<string, int>(StringComparer.Ordinal);
        int Add(string t)
        {
            if (wordToId.TryGetValue(t, out var id)) return id;
            wordToId[t] = idToWord.Count; idToWord.Add(t);
            return idToWord.Count - 1;
        }
        foreach (var s in o.SpecialTokens) Add(s);

        // Alphabet: every code point of the words plus the initial alphabet, sorted by code point.
        var alphabet = new HashSet<string>(initialAlphabet, StringComparer.Ordinal);
        foreach (var w in wordCounts.Keys) foreach (var r in w.EnumerateRunes()) alphabet.Add(r.ToString());
        foreach (var a in alphabet.OrderBy(a => Rune.GetRuneAt(a, 0).Value)) Add(a);

        // Words as symbol ids; words in a fixed order so that ids of "##x" symbols are reproducible.
        var words = new List<List<int>>(wordCounts.Count);
        var counts = new List<long>(wordCounts.Count);
        foreach (var (w, c) in wordCounts.OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            var symbols = new List<int>();
            bool first = true;
            foreach (var r in w.EnumerateRunes())
            {
                var s = r.ToString();
                symbols.Add(Add(!first && prefix != null ? prefix + s : s));
                first = false;
            }
            words.Add(symbols); counts.Add(c);
        }

        var pairCounts = new Dictionary<(int, int), long>();
        var where = new Dictionary<(int, int), HashSet<int>>();
        for (int wi = 0; wi < words.Count; wi++)
        {
            var s = words[wi];
            for (int i = 0; i + 1 < s.Count; i++)
            {
                var p = (s[i], s[i + 1]);
                pairCounts[p] = pairCounts.GetValueOrDefault(p) + counts[wi];
                if (!where.TryGetValue(p, out var set)) where[p] = set = [];
                set.Add(wi);
            }
        }
        var queue = new PriorityQueue<(int A, int B), (long, int, int)>(new MergeOrder());
        var positions = new Dictionary<(int, int), HashSet<int>>();
        void Push((int A, int B) p, HashSet<int> pos)
        {
            long c = pairCounts[p];
            if (c <= 0) return;
            if (positions.TryGetValue(p, out var old)) old.UnionWith(pos); else positions[p] = pos;
            queue.Enqueue(p, (c, p.A, p.B));
        }
        foreach (var (p, pos) in where) Push(p, pos);
        where.Clear();

        var merges = new List<(string, string)>();
        while (idToWord.Count < o.VocabSize && queue.TryDequeue(out var top, out var pri))
        {
            long current = pairCounts[top];
            if (pri.Item1 != current)
            {
                // Stale entry: its count fell since it was queued; queue it again with the true count.
                if (current > 0) queue.Enqueue(top, (current, top.A, top.B));
                continue;
            }
            if (current < 1 || current < o.MinFrequency) break;
            if (!positions.Remove(top, out var pos)) continue;  // already merged through a duplicate entry
            string a = idToWord[top.A], b = idToWord[top.B];
            if (prefix != null && b.StartsWith(prefix, StringComparison.Ordinal)) b = b[prefix.Length..];
            int newId = Add(a + b);
            merges.Add((idToWord[top.A], idToWord[top.B]));

            foreach (var wi in pos)
            {
                var s = words[wi];
                long c = counts[wi];
                for (int i = 0; i + 1 < s.Count; i++)
                {
                    if (s[i] != top.A || s[i + 1] != top.B) continue;
                    // Neighbours lose their pair with the old symbol and gain one with the new symbol.
                    if (i > 0) { Change((s[i - 1], top.A), -c); Change((s[i - 1], newId), c, wi); }
                    s[i] = newId; s.RemoveAt(i + 1);
                    if (i + 1 < s.Count) { Change((top.B, s[i + 1]), -c); Change((newId, s[i + 1]), c, wi); }
                }
            }
            pairCounts[top] = 0;
            foreach (var (p, ws) in where) Push(p, ws);
            where.Clear();
        }
        return (wordToId, merges);

        void Change((int, int) p, long delta, int word = -1)
        {
            pairCounts[p] = pairCounts.GetValueOrDefault(p) + delta;
            if (delta > 0)
            {
                if (!where.TryGetValue(p, out var set)) where[p] = set = [];
                set.Add(word);
            }
        }
    }
}
