// The one task encoder per task: how text becomes model inputs for classification, token classification and
// extractive QA, shared by training and evaluation (TaskData), predict/serve on either runtime (TaskLMModel) and the
// ONNX runtime's own text API (OnnxTaskModel), so that a model sees at inference what it saw in training.
namespace TaskLM.Data.Tokenization;

/// <summary>
/// Encodes task inputs for a model with <paramref name="tokenizer"/> and at most <paramref name="maxLength"/> positions
/// (special tokens included). WordPiece models frame inputs with [CLS]/[SEP] and take segment ids; GPT-2's byte-level
/// BPE adds no specials and marks a word start with a leading space (HF's is_split_into_words + add_prefix_space).
/// </summary>
public sealed class TaskEncoder(ITokenizer tokenizer, int maxLength)
{
    /// <summary>The longest answer, in tokens, an extractive-QA prediction may pick (predict, serve's default, the ONNX
    /// runtime).</summary>
    public const int MaxAnswerTokens = 30;

    /// <summary>The tokenizer encoding goes through.</summary>
    public ITokenizer Tokenizer => tokenizer;
    /// <summary>Most positions of an encoding, special tokens included.</summary>
    public int MaxLength => maxLength;
    /// <summary>True for WordPiece ([CLS] … [SEP], segment ids); false for BPE (no specials, no segment ids).</summary>
    public bool WordPiece => tokenizer.Kind == "wordpiece";
    /// <summary>Positions before the closing [SEP] (all of them for BPE).</summary>
    public int ContentLimit => maxLength - (WordPiece ? 1 : 0);

    /// <summary>The segment ids a model of this tokenizer takes: WordPiece's, or null (HF's GPT-2 heads are called
    /// without token_type_ids).</summary>
    public int[]? ModelTypeIds(TokenizedInput enc) => WordPiece ? enc.TokenTypeIds : null;

    int Special(string token) => tokenizer.TokenToId(token) ?? throw new InvalidDataException($"tokenizer has no {token} token");

    /// <summary>Sequence classification (and embeddings): a text or a pair through the tokenizer's own template
    /// (<see cref="ITokenizer.EncodeForModel"/>) with HF's longest_first truncation.</summary>
    public TokenizedInput Text(string text, string? pair = null) =>
        tokenizer.EncodeForModel(text, pair, new EncodeOptions { MaxLength = maxLength, Truncation = TruncationStrategy.LongestFirst });

    /// <summary>A text's whitespace-separated words as character spans [Start, End): the words token classification
    /// tags and extractive QA's context is encoded by.</summary>
    public static List<(int Start, int End)> SplitWords(string text)
    {
        var words = new List<(int, int)>();
        int pos = 0;
        while (pos < text.Length)
        {
            while (pos < text.Length && char.IsWhiteSpace(text[pos])) pos++;
            int s = pos;
            while (pos < text.Length && !char.IsWhiteSpace(text[pos])) pos++;
            if (pos > s) words.Add((s, pos));
        }
        return words;
    }

    /// <summary>Token classification: each word encoded on its own (GPT-2: with a leading space after the first), the
    /// word's first piece carrying its tag (HF's is_split_into_words); cut to <see cref="MaxLength"/>.</summary>
    public WordsEncoding Words(IReadOnlyList<string> words)
    {
        var ids = new List<int>();
        if (WordPiece) ids.Add(Special("[CLS]"));
        int limit = ContentLimit;
        var first = new int[words.Count];
        var hasTokens = new bool[words.Count];
        for (int w = 0; w < words.Count; w++)
        {
            first[w] = -1;
            var pieces = tokenizer.Encode(!WordPiece && w > 0 ? " " + words[w] : words[w]);
            hasTokens[w] = pieces.Count > 0;
            if (pieces.Count == 0 || ids.Count >= limit) continue;
            first[w] = ids.Count;
            foreach (int x in pieces) { if (ids.Count >= limit) break; ids.Add(x); }
        }
        if (WordPiece) ids.Add(Special("[SEP]"));
        int n = ids.Count;
        var special = new int[n];
        var seq = new int?[n];
        for (int i = 0; i < n; i++)
        {
            bool isSpecial = WordPiece && (i == 0 || i == n - 1);
            special[i] = isSpecial ? 1 : 0;
            seq[i] = isSpecial ? null : 0;
        }
        var input = new TokenizedInput(ids.ToArray(), new int[n], Enumerable.Repeat(1, n).ToArray(), new (int, int)[n], special, seq, 0);
        return new WordsEncoding(input, first, hasTokens);
    }

    /// <summary>Token classification of a text: its whitespace-separated words (<see cref="SplitWords"/>) encoded by
    /// <see cref="Words(IReadOnlyList{string})"/>, with their character spans.</summary>
    public (WordsEncoding Encoding, List<(int Start, int End)> Spans) Words(string text)
    {
        var spans = SplitWords(text);
        return (Words(spans.Select(s => text[s.Start..s.End]).ToList()), spans);
    }

    /// <summary>Extractive QA: [CLS] question [SEP] context [SEP] (BPE: question context), the context encoded word by
    /// word with each piece carrying its word's characters (<see cref="TokenizedInput.Offsets"/>; sequence id 1), cut to
    /// <see cref="MaxLength"/>.</summary>
    public QaEncoding Qa(string question, string context)
    {
        var ids = new List<int>(); var types = new List<int>(); var spans = new List<(int, int)>(); var seq = new List<int?>();
        void Add(int id, int type, int? sequence, (int, int) span) { ids.Add(id); types.Add(type); seq.Add(sequence); spans.Add(span); }
        if (WordPiece) Add(Special("[CLS]"), 0, null, (0, 0));
        foreach (int x in tokenizer.Encode(question)) Add(x, 0, 0, (0, 0));
        if (WordPiece) Add(Special("[SEP]"), 0, null, (0, 0));
        int contextStart = ids.Count, limit = ContentLimit;
        int? cutAt = null;
        bool firstWord = true;
        foreach (var (s, e) in SplitWords(context))
        {
            var pieces = tokenizer.Encode(!WordPiece && !firstWord ? " " + context[s..e] : context[s..e]);
            firstWord = false;
            foreach (int x in pieces)
            {
                if (ids.Count >= limit) { cutAt = s; break; }
                Add(x, 1, 1, (s, e));
            }
            if (cutAt != null) break;
        }
        if (WordPiece) Add(Special("[SEP]"), 1, null, (0, 0));
        int n = ids.Count;
        var input = new TokenizedInput(ids.ToArray(), types.ToArray(), Enumerable.Repeat(1, n).ToArray(), spans.ToArray(),
            seq.Select(q => q == null ? 1 : 0).ToArray(), seq.ToArray(), 0);
        return new QaEncoding(input, contextStart, cutAt);
    }
}

/// <summary>A token-classification encoding: the model input, and per word the position of its first piece (-1 when the
/// word has no tokens or was cut off) and whether it has tokens at all.</summary>
public sealed record WordsEncoding(TokenizedInput Input, int[] FirstToken, bool[] HasTokens);

/// <summary>An extractive-QA encoding: the model input (context pieces have sequence id 1 and their word's characters
/// as offsets), where the context starts, and the first context character cut off by the length limit (null when the
/// whole context fits).</summary>
public sealed record QaEncoding(TokenizedInput Input, int ContextStart, int? CutAt)
{
    /// <summary>True for a context piece (the only positions an answer may start or end at).</summary>
    public bool IsContext(int position) => Input.SequenceIds[position] == 1;

    /// <summary>The best answer as HF's question-answering pipeline picks it: a start ≤ end within the context, at most
    /// <paramref name="maxAnswerTokens"/> pieces, scored p(start)·p(end) (softmax over the sequence). Null when the
    /// context has no piece.</summary>
    public (int Start, int End, double Score)? BestSpan(ReadOnlySpan<double> startProbs, ReadOnlySpan<double> endProbs, int maxAnswerTokens = TaskEncoder.MaxAnswerTokens)
    {
        int t = Input.Length;
        double best = -1; int bs = -1, be = -1;
        for (int s = 0; s < t; s++)
        {
            if (!IsContext(s)) continue;
            for (int e = s; e < Math.Min(t, s + maxAnswerTokens) && IsContext(e); e++)
            {
                double score = startProbs[s] * endProbs[e];
                if (score > best) { best = score; bs = s; be = e; }
            }
        }
        return bs < 0 ? null : (bs, be, best);
    }

    /// <summary>The context characters [Start, End) of an answer from piece <paramref name="start"/> to <paramref name="end"/>.</summary>
    public (int Start, int End) Characters(int start, int end) => (Input.Offsets[start].Start, Input.Offsets[end].End);
}
