// The classical baseline beside every classifier: scikit-learn's TF-IDF (word 1-2 grams, sublinear tf) + multinomial
// logistic regression (ML.NET's L-BFGS) with C chosen on validation.
using System.Diagnostics;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Trainers;
using TaskLM.Data.Corpus;
using Scorer = Microsoft.ML.Data.MulticlassPredictionTransformer<Microsoft.ML.Trainers.MaximumEntropyModelParameters>;

namespace TaskLM.Evaluation;

/// <summary>Settings of the TF-IDF + logistic-regression baseline: scikit-learn's
/// <c>TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)</c> + <c>LogisticRegression(C)</c>, with C chosen on a
/// validation split unless given.</summary>
public sealed record BaselineOptions
{
    /// <summary>Longest word n-gram (all shorter ones are included too).</summary>
    public int NgramLength { get; init; } = 2;
    /// <summary>sklearn's C (inverse L2 strength; ML.NET's L2 weight is 1/C). Null: chosen from <see cref="CGrid"/> by
    /// macro-F1 on <see cref="Validation"/>, else on a seeded stratified 10% of the training texts, then refitted on all.</summary>
    public double? C { get; init; }
    /// <summary>The values of C tried when it is chosen (ties go to the smaller, the stronger regularisation).</summary>
    public IReadOnlyList<double> CGrid { get; init; } = [0.1, 1, 10, 100];
    /// <summary>Texts and labels C is chosen on (a run's validation file).</summary>
    public LabelledTexts? Validation { get; init; }
    /// <summary>L-BFGS iteration cap: sklearn's max_iter default, 100. (1,000 made a 15-genre task of 5,631 passages and
    /// 410k features take 12 min for the five fits of the C search at C = 100; 100 iterations keep it to seconds.)</summary>
    public int MaxIterations { get; init; } = 100;
    /// <summary>Seed of ML.NET's context and of the held-out split when there is no validation.</summary>
    public int Seed { get; init; } = 0;
    /// <summary>Character n-grams beside the words (sklearn's <c>analyzer="char_wb"</c>, <see cref="CharNgramRange"/>,
    /// <see cref="CharMinDf"/>, in a FeatureUnion with the word vectorizer): true or false, or null to choose them
    /// together with C — both feature sets run the C search and the better validation macro-F1 wins (a tie keeps words
    /// only). With a given C, null means words only. (On the quickstart's spam split, validation F1 on spam at C = 100
    /// was 0.962 with words and 0.970 with words + characters, whose test F1 was 0.982 against 0.978: headers, URLs and
    /// obfuscated spellings are sub-word signals; measured in scikit-learn.)</summary>
    public bool? CharNgrams { get; init; }
    /// <summary>Character n-gram lengths when <see cref="CharNgrams"/> is on.</summary>
    public (int Min, int Max) CharNgramRange { get; init; } = (2, 5);
    /// <summary>A character n-gram is a feature when at least this many training texts have it (sklearn's min_df).</summary>
    public int CharMinDf { get; init; } = 2;
}

/// <summary>TF-IDF exactly as scikit-learn's <c>TfidfVectorizer(ngram_range=(1, n), sublinear_tf=True)</c> computes it:
/// lower case, tokens <c>\b\w\w+\b</c> (one-letter tokens dropped), word 1..n-grams joined by a space, the vocabulary
/// of the training texts, tf = 1 + ln(count), idf = ln((1 + N) / (1 + df)) + 1, each row scaled to unit L2 norm.
/// Optionally a second block beside the words, as sklearn's <c>FeatureUnion</c> of the word vectorizer and
/// <c>TfidfVectorizer(analyzer="char_wb", ngram_range=(a, b), min_df=m, sublinear_tf=True)</c>: character a..b-grams
/// inside each whitespace-separated word padded with a space on both sides, terms in fewer than m training texts
/// dropped, the block L2-normalised on its own and its features numbered after the words'. (Lower-casing and string
/// positions are .NET's: UTF-16 units, where Python counts code points; they differ only outside the BMP.)</summary>
public sealed class TfidfFeaturizer
{
    static readonly System.Text.RegularExpressions.Regex Token = new(@"\b\w\w+\b", System.Text.RegularExpressions.RegexOptions.Compiled);
    readonly Dictionary<string, int> _vocab;
    readonly float[] _idf;
    readonly int _n;
    readonly CharBlock? _chars;

    /// <summary>The character n-gram block: its terms' feature numbers (from 0 inside the block), idf, n-gram range.</summary>
    sealed record CharBlock(Dictionary<string, int> Vocab, float[] Idf, int Min, int Max);

    TfidfFeaturizer(Dictionary<string, int> vocab, float[] idf, int n, CharBlock? chars) { _vocab = vocab; _idf = idf; _n = n; _chars = chars; }

    /// <summary>A featurizer from its saved parts: the word vocabulary in feature order, every feature's idf (words,
    /// then characters), the longest word n-gram, and the character block's terms and range when it has one.</summary>
    public static TfidfFeaturizer FromParts(IReadOnlyList<string> terms, float[] idf, int ngramLength,
        IReadOnlyList<string>? charTerms = null, (int Min, int Max)? charRange = null)
    {
        int chars = charTerms?.Count ?? 0;
        if (terms.Count + chars != idf.Length) throw new ArgumentException($"{terms.Count} word and {chars} character terms but {idf.Length} idf values");
        var vocab = new Dictionary<string, int>(terms.Count, StringComparer.Ordinal);
        for (int i = 0; i < terms.Count; i++) vocab[terms[i]] = i;
        CharBlock? block = null;
        if (charTerms != null)
        {
            var (min, max) = charRange ?? throw new ArgumentException("character terms without their n-gram range");
            var cv = new Dictionary<string, int>(chars, StringComparer.Ordinal);
            for (int i = 0; i < chars; i++) cv[charTerms[i]] = i;
            block = new CharBlock(cv, idf[terms.Count..], min, max);
        }
        return new TfidfFeaturizer(vocab, idf[..terms.Count], ngramLength, block);
    }

    /// <summary>The word vocabulary in feature order.</summary>
    public IReadOnlyList<string> Terms() => _vocab.OrderBy(kv => kv.Value).Select(kv => kv.Key).ToList();
    /// <summary>The character n-gram vocabulary in feature order (after the words'); empty without the block.</summary>
    public IReadOnlyList<string> CharTerms() => _chars == null ? [] : _chars.Vocab.OrderBy(kv => kv.Value).Select(kv => kv.Key).ToList();
    /// <summary>Each feature's idf: the words', then the characters'.</summary>
    public IReadOnlyList<float> Idf => _chars == null ? _idf : [.. _idf, .. _chars.Idf];
    /// <summary>The longest word n-gram.</summary>
    public int NgramLength => _n;
    /// <summary>The character n-gram range, or null when only words are features.</summary>
    public (int Min, int Max)? CharNgrams => _chars == null ? null : (_chars.Min, _chars.Max);
    /// <summary>What the features are, for reports: "word 1-2 grams" or "word 1-2 + char_wb 2-5 grams".</summary>
    public string Description => $"word 1-{_n}" + (_chars == null ? "" : $" + char_wb {_chars.Min}-{_chars.Max}") + " grams";

    /// <summary>Number of features: the training vocabulary's size, at least 1 (texts of one-letter words have no
    /// \w\w+ token; sklearn refuses them, the baseline then predicts the class priors from one all-zero feature).</summary>
    public int Size => Math.Max(1, _idf.Length + (_chars?.Idf.Length ?? 0));

    static IEnumerable<string> Terms(string text, int n)
    {
        var words = Token.Matches(text.ToLowerInvariant()).Select(m => m.Value).ToList();
        for (int k = 1; k <= n; k++)
            for (int i = 0; i + k <= words.Count; i++)
                yield return k == 1 ? words[i] : string.Join(' ', words.Skip(i).Take(k));
    }

    delegate void GramVisitor(ReadOnlySpan<char> gram);

    /// <summary>sklearn's <c>_char_wb_ngrams</c>: each whitespace-separated word of the lower-cased text, padded to
    /// " word ", gives its n-grams for n = min..max; a padded word no longer than n gives itself once and ends the word.</summary>
    static void CharGrams(string text, int min, int max, GramVisitor visit)
    {
        string lower = text.ToLowerInvariant();
        var padded = new System.Text.StringBuilder();
        int i = 0;
        while (i < lower.Length)
        {
            while (i < lower.Length && IsPyWhiteSpace(lower[i])) i++;
            int start = i;
            while (i < lower.Length && !IsPyWhiteSpace(lower[i])) i++;
            if (i == start) break;
            padded.Clear().Append(' ').Append(lower, start, i - start).Append(' ');
            string w = padded.ToString();
            for (int n = min; n <= max; n++)
            {
                int offset = 0;
                visit(w.AsSpan(0, Math.Min(n, w.Length)));
                while (offset + n < w.Length) visit(w.AsSpan(++offset, n));
                if (offset == 0) break;
            }
        }
    }

    // Python's str.split() whitespace: .NET's plus the separators U+001C..U+001F.
    static bool IsPyWhiteSpace(char c) => char.IsWhiteSpace(c) || c is >= '\u001c' and <= '\u001f';

    /// <summary>Learns the vocabulary (sorted, as sklearn numbers it) and the idf of <paramref name="texts"/>; with
    /// <paramref name="charNgrams"/>, also the character block (terms in at least <paramref name="charMinDf"/> texts).</summary>
    public static TfidfFeaturizer Fit(IReadOnlyList<string> texts, int ngramLength, (int Min, int Max)? charNgrams = null, int charMinDf = 2)
    {
        var df = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var t in texts)
            foreach (var term in Terms(t, ngramLength).Distinct())
                df[term] = df.GetValueOrDefault(term) + 1;
        var (vocab, idf) = Numbered(df, texts.Count, 1);
        return new TfidfFeaturizer(vocab, idf, ngramLength, charNgrams is var (min, max) ? FitChars(texts, min, max, charMinDf) : null);
    }

    /// <summary>The kept terms (document frequency ≥ <paramref name="minDf"/>) numbered in ordinal order, and their idf.</summary>
    static (Dictionary<string, int> Vocab, float[] Idf) Numbered(Dictionary<string, int> df, int documents, int minDf)
    {
        var names = df.Where(kv => kv.Value >= minDf).Select(kv => kv.Key).Order(StringComparer.Ordinal).ToList();
        var vocab = new Dictionary<string, int>(names.Count, StringComparer.Ordinal);
        var idf = new float[names.Count];
        for (int i = 0; i < names.Count; i++)
        {
            vocab[names[i]] = i;
            idf[i] = (float)(Math.Log((1.0 + documents) / (1.0 + df[names[i]])) + 1.0);
        }
        return (vocab, idf);
    }

    static CharBlock FitChars(IReadOnlyList<string> texts, int min, int max, int minDf)
    {
        // Millions of n-gram occurrences in e-mail-sized texts: look them up by span (no string per occurrence) and
        // count each term once per text by remembering the last text that counted it.
        var ids = new Dictionary<string, int>(StringComparer.Ordinal);
        var lookup = ids.GetAlternateLookup<ReadOnlySpan<char>>();
        var df = new List<int>();
        var last = new List<int>();
        for (int d = 0; d < texts.Count; d++)
        {
            int doc = d;
            CharGrams(texts[d], min, max, g =>
            {
                if (!lookup.TryGetValue(g, out int id)) { id = df.Count; lookup.TryAdd(g, id); df.Add(0); last.Add(-1); }
                if (last[id] != doc) { last[id] = doc; df[id]++; }
            });
        }
        var counts = new Dictionary<string, int>(ids.Count, StringComparer.Ordinal);
        foreach (var (term, id) in ids) counts[term] = df[id];
        var (vocab, idf) = Numbered(counts, texts.Count, minDf);
        return new CharBlock(vocab, idf, min, max);
    }

    /// <summary>The sparse tf-idf row of <paramref name="text"/> (terms outside the vocabulary ignored): the words'
    /// block at unit L2 norm, then the characters' block at unit L2 norm.</summary>
    public VBuffer<float> Transform(string text)
    {
        var counts = new SortedDictionary<int, int>();
        foreach (var term in Terms(text, _n))
            if (_vocab.TryGetValue(term, out int j)) counts[j] = counts.GetValueOrDefault(j) + 1;
        var idx = new List<int>(counts.Keys);
        var val = Normalised(counts, _idf);
        if (_chars != null)
        {
            var cc = new SortedDictionary<int, int>();
            var lookup = _chars.Vocab.GetAlternateLookup<ReadOnlySpan<char>>();
            CharGrams(text, _chars.Min, _chars.Max, g => { if (lookup.TryGetValue(g, out int j)) cc[j] = cc.GetValueOrDefault(j) + 1; });
            idx.AddRange(cc.Keys.Select(k => k + _idf.Length));
            val.AddRange(Normalised(cc, _chars.Idf));
        }
        return new VBuffer<float>(Size, idx.Count, val.ToArray(), idx.ToArray());
    }

    // (1 + ln count) · idf per term, scaled to unit L2 norm.
    static List<float> Normalised(SortedDictionary<int, int> counts, float[] idf)
    {
        var val = counts.Select(kv => (float)((1.0 + Math.Log(kv.Value)) * idf[kv.Key])).ToList();
        double norm = Math.Sqrt(val.Sum(v => (double)v * v));
        if (norm > 0) for (int i = 0; i < val.Count; i++) val[i] = (float)(val[i] / norm);
        return val;
    }
}

/// <summary>A fitted TF-IDF + logistic-regression text classifier: <see cref="TfidfFeaturizer"/> (scikit-learn's
/// featurizer, exactly) → ML.NET's L-BFGS maximum entropy (softmax regression, L2 = 1/C on the summed loss, bias not
/// penalised: sklearn's <c>LogisticRegression(C)</c> objective). tests/fixtures/evaluation/baseline/ holds sklearn's
/// values on a committed sample.</summary>
public sealed class TextBaseline
{
    readonly MLContext _ml;
    readonly ITransformer _model;
    readonly TfidfFeaturizer _features;
    readonly SchemaDefinition _schema;

    /// <summary>Class names in score order (the order given to <see cref="Fit"/>).</summary>
    public IReadOnlyList<string> Labels { get; }
    /// <summary>Seconds the fit took (choosing C included).</summary>
    public double FitSeconds { get; }
    /// <summary>The C used, and for a chosen one the validation macro-F1 of each C tried.</summary>
    public double C { get; }
    public IReadOnlyDictionary<double, double>? CScores { get; }
    /// <summary>When the feature set was chosen with C: each set's description and its best validation macro-F1.</summary>
    public IReadOnlyDictionary<string, double>? FeatureScores { get; private init; }
    /// <summary>Where C was chosen: "given", "validation" or "held-out 10% of train".</summary>
    public string CChosenOn { get; }
    /// <summary>Number of tf-idf features.</summary>
    public int Features => _features.Size;
    /// <summary>The featurizer (scikit-learn's TF-IDF) the classifier reads.</summary>
    public TfidfFeaturizer Featurizer => _features;

    /// <summary>The fitted softmax regression: per class a weight row over the features, (C, F), and a bias, (C); the
    /// probabilities are softmax(W·x + b) of the tf-idf row x (ShippedBaseline recomputes them from these).</summary>
    public (float[][] Weight, float[] Bias) Parameters()
    {
        var p = (_model as TransformerChain<Scorer>)?.LastTransformer
            ?? throw new InvalidOperationException("the baseline's last transformer is not the logistic regression");
        VBuffer<float>[] w = [];
        p.Model.GetWeights(ref w, out int classes);
        var weight = new float[classes][];
        for (int c = 0; c < classes; c++)
        {
            weight[c] = new float[Features];
            w[c].CopyTo(weight[c]);
        }
        return (weight, p.Model.GetBiases().ToArray());
    }

    TextBaseline(MLContext ml, ITransformer model, TfidfFeaturizer f, SchemaDefinition schema, IReadOnlyList<string> labels, double seconds,
        double c, IReadOnlyDictionary<double, double>? scores, string on)
    {
        _ml = ml; _model = model; _features = f; _schema = schema; Labels = labels; FitSeconds = seconds; C = c; CScores = scores; CChosenOn = on;
    }

    sealed class Row
    {
        public VBuffer<float> Features { get; set; }
        public string Label { get; set; } = "";
    }

    sealed class LabelRow
    {
        public string Label { get; set; } = "";
    }

    sealed class Scored
    {
        public float[] Score { get; set; } = [];
    }

    /// <summary>Fits the baseline on <paramref name="texts"/> with gold <paramref name="labels"/>. <paramref name="labelOrder"/>
    /// fixes the class order of the probabilities (default: the sorted distinct labels); labels outside it are an error.
    /// C is <see cref="BaselineOptions.C"/>, or chosen (see there).</summary>
    public static TextBaseline Fit(IReadOnlyList<string> texts, IReadOnlyList<string> labels, IReadOnlyList<string>? labelOrder = null, BaselineOptions? options = null)
    {
        var o = options ?? new BaselineOptions();
        if (texts.Count != labels.Count) throw new ArgumentException($"{texts.Count} texts but {labels.Count} labels");
        if (texts.Count == 0) throw new ArgumentException("the baseline needs at least one training example");
        var order = labelOrder?.ToList() ?? labels.Distinct().Order(StringComparer.Ordinal).ToList();
        var known = order.ToHashSet();
        foreach (var l in labels) if (!known.Contains(l)) throw new ArgumentException($"training label '{l}' is not among the classes ({string.Join(", ", order)})");
        var sw = Stopwatch.StartNew();
        bool[] charChoices = o.CharNgrams is bool fixedChoice ? [fixedChoice] : o.C is null ? [false, true] : [false];
        // The features are computed once per feature set, from every training text (the vocabulary and idf of the final
        // model), and shared by the fits of the C search.
        TfidfFeaturizer Features(bool chars) => TfidfFeaturizer.Fit(texts, o.NgramLength, chars ? o.CharNgramRange : null, o.CharMinDf);
        var all = Enumerable.Range(0, texts.Count).ToList();
        if (o.C is double given)
        {
            var fixedFit = new Fitter(Features(charChoices[0]), order, o);
            return fixedFit.Model(fixedFit.Train(texts, labels, all, given, null), given, sw, null, "given");
        }

        // C by validation macro-F1: the run's validation texts, else a seeded stratified 10% of the training texts.
        List<int> fitRows = all;
        IReadOnlyList<string> valT, valL;
        string on;
        if (o.Validation is { } v && v.Labels.All(known.Contains)) { valT = v.Texts; valL = v.Labels; on = "validation"; }
        else
        {
            var rng = new Random(o.Seed);
            var held = new HashSet<int>();
            foreach (var g in Enumerable.Range(0, texts.Count).GroupBy(i => labels[i]))
            {
                var idx = g.OrderBy(_ => rng.Next()).ToList();
                if (idx.Count >= 2) foreach (var i in idx.Take(Math.Max(1, (int)Math.Round(0.1 * idx.Count)))) held.Add(i);
            }
            fitRows = all.Where(i => !held.Contains(i)).ToList();
            valT = held.Order().Select(i => texts[i]).ToList(); valL = held.Order().Select(i => labels[i]).ToList();
            on = "held-out 10% of train";
        }
        if (valT.Count == 0)
        {
            var defaultFit = new Fitter(Features(charChoices[0]), order, o);
            return defaultFit.Model(defaultFit.Train(texts, labels, all, 10, null), 10, sw, null, "default (no texts to choose on)");
        }
        // Each feature set runs the C search; the better validation macro-F1 wins (a tie keeps the first, words only).
        (Fitter Fit, Dictionary<double, double> Scores, Dictionary<double, Scorer> Fitted, double Best)? chosen = null;
        var featureScores = new Dictionary<string, double>();
        foreach (bool chars in charChoices)
        {
            var fit = new Fitter(Features(chars), order, o);
            // Ascending C, each fit starting from the previous solution (a weaker penalty moves the weights on from there:
            // the L-BFGS runs are far shorter than from zero).
            var scores = new Dictionary<double, double>();
            var fitted = new Dictionary<double, Scorer>();
            Scorer? previous = null;
            foreach (double c in o.CGrid.Order())
            {
                previous = fitted[c] = fit.Train(texts, labels, fitRows, c, previous, search: true);
                scores[c] = ClassificationMetrics.Compute(valL, fit.Model(previous, c, sw, null, on).Predict(valT), order).Macro.F1;
            }
            double best = scores.OrderByDescending(kv => kv.Value).ThenBy(kv => kv.Key).First().Key;
            if (chosen == null || scores[best] > chosen.Value.Scores[chosen.Value.Best]) chosen = (fit, scores, fitted, best);
            featureScores[fit.Featurizer.Description] = scores[best];
        }
        var (bestFit, bestScores, bestFitted, bestC) = chosen!.Value;
        // The model at the best C, converged, on every training row, from the search's solution.
        var final = bestFit.Train(texts, labels, all, bestC, bestFitted[bestC]);
        return bestFit.Model(final, bestC, sw, bestScores, on, featureScores);
    }

    /// <summary>ML.NET's L-BFGS maximum entropy on precomputed tf-idf rows, with the label keys in our class order.</summary>
    sealed class Fitter
    {
        readonly MLContext _ml;
        readonly TfidfFeaturizer _f;
        readonly SchemaDefinition _schema;
        readonly ITransformer _keys;
        readonly List<string> _order;
        readonly BaselineOptions _o;
        readonly Dictionary<int, VBuffer<float>> _rows = [];

        public Fitter(TfidfFeaturizer f, List<string> order, BaselineOptions o)
        {
            _ml = new MLContext(o.Seed); _f = f; _order = order; _o = o;
            _schema = SchemaDefinition.Create(typeof(Row));
            _schema[nameof(Row.Features)].ColumnType = new VectorDataViewType(NumberDataViewType.Single, f.Size);
            // The key column's terms come from a one-column view in our order, so score slot c is order[c].
            var keys = _ml.Data.LoadFromEnumerable(order.Select(l => new LabelRow { Label = l }));
            _keys = _ml.Transforms.Conversion.MapValueToKey("LabelKey", nameof(Row.Label), keyData: keys)
                .Fit(_ml.Data.LoadFromEnumerable(new List<Row>(), _schema));
        }

        /// <summary>Fits softmax regression with L2 = 1/C on the rows <paramref name="rows"/> of the training texts,
        /// starting from <paramref name="init"/> when given.</summary>
        public Scorer Train(IReadOnlyList<string> texts, IReadOnlyList<string> labels, List<int> rows, double c, Scorer? init, bool search = false)
        {
            var data = _keys.Transform(_ml.Data.LoadFromEnumerable(rows.Select(i => new Row
            {
                Features = _rows.TryGetValue(i, out var r) ? r : _rows[i] = _f.Transform(texts[i]), Label = labels[i],
            }).ToList(), _schema));
            var trainer = _ml.MulticlassClassification.Trainers.LbfgsMaximumEntropy(new LbfgsMaximumEntropyMulticlassTrainer.Options
            {
                LabelColumnName = "LabelKey", FeatureColumnName = nameof(Row.Features),
                L1Regularization = 0, L2Regularization = (float)(1.0 / c), MaximumNumberOfIterations = _o.MaxIterations,
                // The final model converges (1e-4 stopped short of sklearn's solution: 191/195 predictions agreed, 195/195 at
                // 1e-7); the fits that only rank C stop at 1e-4 (a 15-genre, 410k-feature task: 35 s instead of 97 s).
                OptimizationTolerance = search ? 1e-4f : 1e-7f,
            });
            return init == null ? trainer.Fit(data) : trainer.Fit(data, init.Model);
        }

        /// <summary>The fitted classifier as a <see cref="TextBaseline"/>.</summary>
        public TextBaseline Model(Scorer p, double c, Stopwatch sw, IReadOnlyDictionary<double, double>? scores, string on,
            IReadOnlyDictionary<string, double>? featureScores = null) =>
            new(_ml, _keys.Append(p), _f, _schema, _order, sw.Elapsed.TotalSeconds, c, scores, on) { FeatureScores = featureScores };

        /// <summary>The features this fitter's rows are made of.</summary>
        public TfidfFeaturizer Featurizer => _f;
    }

    /// <summary>Class probabilities, one row per text, columns in <see cref="Labels"/> order.</summary>
    public float[][] PredictProba(IReadOnlyList<string> texts)
    {
        if (texts.Count == 0) return [];
        var view = _model.Transform(_ml.Data.LoadFromEnumerable(texts.Select(t => new Row { Features = _features.Transform(t), Label = Labels[0] }).ToList(), _schema));
        var rows = _ml.Data.CreateEnumerable<Scored>(view, reuseRowObject: false).Select(s => s.Score).ToArray();
        if (rows.Length > 0 && rows[0].Length != Labels.Count)
            throw new InvalidOperationException($"baseline scored {rows[0].Length} classes, expected {Labels.Count}");
        return rows;
    }

    /// <summary>The most probable class of each text.</summary>
    public string[] Predict(IReadOnlyList<string> texts) => PredictProba(texts).Select(p => Labels[ArgMax(p)]).ToArray();

    /// <summary>Index of the largest probability (the first on ties).</summary>
    public static int ArgMax(IReadOnlyList<float> p)
    {
        int best = 0;
        for (int i = 1; i < p.Count; i++) if (p[i] > p[best]) best = i;
        return best;
    }
}

/// <summary>Texts and gold labels of one labelled file, read as training reads it (the data-import readers:
/// CSV, TSV, JSONL, Parquet and their .gz forms, with file:line errors).</summary>
public sealed record LabelledTexts(IReadOnlyList<string> Texts, IReadOnlyList<string> Labels, string Source)
{
    /// <summary>Reads <paramref name="path"/>; the text is <paramref name="textColumn"/> (joined with
    /// <paramref name="pairColumn"/> by a newline when given), the class <paramref name="labelColumn"/>.</summary>
    public static LabelledTexts Read(string path, string textColumn = "text", string labelColumn = "label", string? pairColumn = null)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: data file not found", path);
        var texts = new List<string>(); var labels = new List<string>();
        foreach (var row in DataImport.Read(path, new ImportOptions(), new RowErrors(OnError.Fail)))
        {
            string text = Field(row, textColumn, required: true)!;
            if (pairColumn != null) text += "\n" + Field(row, pairColumn, required: true);
            texts.Add(text);
            labels.Add(Field(row, labelColumn, required: true)!);
        }
        if (texts.Count == 0) throw new InvalidDataException($"{path}: no rows");
        return new LabelledTexts(texts, labels, path);
    }

    static string? Field(DataRow row, string column, bool required)
    {
        var v = row.Fields[column];
        if (v == null)
        {
            if (!required) return null;
            throw new InvalidDataException($"{row.Source}:{row.Line}: no column '{column}' (columns: {string.Join(", ", row.Fields.Select(kv => kv.Key))})");
        }
        return v is System.Text.Json.Nodes.JsonValue jv && jv.TryGetValue(out string? s) ? s : v.ToString();
    }
}

/// <summary>A baseline scored on a split: its predictions, probabilities and eval metrics (the names the
/// model's evaluation uses: accuracy, micro/macro/weighted F1, macro precision/recall, f1_&lt;class&gt;, loss).</summary>
public sealed record BaselineScore(TextBaseline Model, string[] Predictions, float[][] Probabilities, EvalResult Result, int TrainExamples);

/// <summary>Fits and scores the baseline on a train/test pair.</summary>
public static class Baseline
{
    /// <summary>What `tasklm evaluate` refuses, refused for the baseline too: a training file of one class, and a scored
    /// file with a label the training file never had (named with its row).</summary>
    public static void CheckLabels(LabelledTexts train, string trainPath, LabelledTexts scored, string scoredPath)
    {
        var known = train.Labels.Distinct().Order(StringComparer.Ordinal).ToList();
        if (known.Count < 2)
            throw new InvalidDataException($"{trainPath}: every training example has the label '{known.FirstOrDefault()}'; a classifier needs at least two labels (check --label-column)");
        var set = known.ToHashSet(StringComparer.Ordinal);
        int i = scored.Labels.ToList().FindIndex(l => !set.Contains(l));
        if (i >= 0)
            throw new InvalidDataException($"{scoredPath}: row {i + 1}: label '{scored.Labels[i]}' is not among the training labels ({string.Join(", ", known)})");
    }

    /// <summary>Fits on <paramref name="train"/> and scores <paramref name="test"/>. <paramref name="labelOrder"/>: the
    /// model's classes (probability columns follow it); test labels outside it count as errors.</summary>
    public static BaselineScore FitAndScore(LabelledTexts train, LabelledTexts test, IReadOnlyList<string>? labelOrder = null, BaselineOptions? options = null, string? split = "test")
    {
        var order = labelOrder ?? train.Labels.Distinct().Order(StringComparer.Ordinal).ToList();
        var model = TextBaseline.Fit(train.Texts, train.Labels, order, options);
        var proba = model.PredictProba(test.Texts);
        var pred = proba.Select(p => order[TextBaseline.ArgMax(p)]).ToArray();
        return new BaselineScore(model, pred, proba, Score(test, pred, proba, order, split), train.Texts.Count);
    }

    /// <summary>eval metrics of predictions <paramref name="pred"/> (and probabilities, for the loss) against <paramref name="gold"/>.</summary>
    public static EvalResult Score(LabelledTexts gold, IReadOnlyList<string> pred, float[][]? proba, IReadOnlyList<string> order, string? split) =>
        Score(gold.Labels, pred, proba, order, split, gold.Texts);

    /// <summary>eval metrics in the model evaluation's names and order (accuracy, micro/macro/weighted F1, macro
    /// precision/recall, f1_&lt;class&gt;, and loss when <paramref name="proba"/> is given).</summary>
    public static EvalResult Score(IReadOnlyList<string> gold, IReadOnlyList<string> pred, float[][]? proba, IReadOnlyList<string> order, string? split, IReadOnlyList<string>? texts = null)
    {
        var r = EvalResult.ForClassification(gold, pred, texts, null, 10, split);
        var m = new Dictionary<string, double>(r.Metrics);
        r.Metrics.Clear();
        // Same metric names, same order as the model's evaluation (EvalLoop).
        foreach (var k in new[] { "accuracy", "micro_f1", "macro_f1", "weighted_f1", "macro_precision", "macro_recall" }) r.Metrics[k] = m[k];
        if (r.PerClass != null) foreach (var (name, s) in r.PerClass) r.Metrics[$"f1_{name}"] = s.F1;
        if (proba != null) r.Metrics["loss"] = MeanNll(gold, proba, order);
        return r;
    }

    /// <summary>Mean negative log-probability of the gold class (probabilities clipped at 1e-15, as sklearn's log_loss).</summary>
    public static double MeanNll(IReadOnlyList<string> gold, float[][] proba, IReadOnlyList<string> order)
    {
        var index = order.Select((l, i) => (l, i)).ToDictionary(x => x.l, x => x.i);
        double sum = 0;
        for (int i = 0; i < gold.Count; i++)
            sum += -Math.Log(Math.Max(1e-15, index.TryGetValue(gold[i], out int c) ? proba[i][c] : 0));
        return sum / gold.Count;
    }
}
