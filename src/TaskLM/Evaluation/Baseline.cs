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
}

/// <summary>TF-IDF exactly as scikit-learn's <c>TfidfVectorizer(ngram_range=(1, n), sublinear_tf=True)</c> computes it:
/// lower case, tokens <c>\b\w\w+\b</c> (one-letter tokens dropped), word 1..n-grams joined by a space, the vocabulary
/// of the training texts, tf = 1 + ln(count), idf = ln((1 + N) / (1 + df)) + 1, each row scaled to unit L2 norm.</summary>
public sealed class TfidfFeaturizer
{
    static readonly System.Text.RegularExpressions.Regex Token = new(@"\b\w\w+\b", System.Text.RegularExpressions.RegexOptions.Compiled);
    readonly Dictionary<string, int> _vocab;
    readonly float[] _idf;
    readonly int _n;

    TfidfFeaturizer(Dictionary<string, int> vocab, float[] idf, int n) { _vocab = vocab; _idf = idf; _n = n; }

    /// <summary>A featurizer from its saved parts: the vocabulary in feature order, each term's idf, the longest n-gram.</summary>
    public static TfidfFeaturizer FromParts(IReadOnlyList<string> terms, float[] idf, int ngramLength)
    {
        if (terms.Count != idf.Length) throw new ArgumentException($"{terms.Count} terms but {idf.Length} idf values");
        var vocab = new Dictionary<string, int>(terms.Count, StringComparer.Ordinal);
        for (int i = 0; i < terms.Count; i++) vocab[terms[i]] = i;
        return new TfidfFeaturizer(vocab, idf, ngramLength);
    }

    /// <summary>The vocabulary in feature order.</summary>
    public IReadOnlyList<string> Terms() => _vocab.OrderBy(kv => kv.Value).Select(kv => kv.Key).ToList();
    /// <summary>Each feature's idf.</summary>
    public IReadOnlyList<float> Idf => _idf;
    /// <summary>The longest word n-gram.</summary>
    public int NgramLength => _n;

    /// <summary>Number of features: the training vocabulary's size, at least 1 (texts of one-letter words have no
    /// \w\w+ token; sklearn refuses them, the baseline then predicts the class priors from one all-zero feature).</summary>
    public int Size => Math.Max(1, _idf.Length);

    static IEnumerable<string> Terms(string text, int n)
    {
        var words = Token.Matches(text.ToLowerInvariant()).Select(m => m.Value).ToList();
        for (int k = 1; k <= n; k++)
            for (int i = 0; i + k <= words.Count; i++)
                yield return k == 1 ? words[i] : string.Join(' ', words.Skip(i).Take(k));
    }

    /// <summary>Learns the vocabulary (sorted, as sklearn numbers it) and the idf of <paramref name="texts"/>.</summary>
    public static TfidfFeaturizer Fit(IReadOnlyList<string> texts, int ngramLength)
    {
        var df = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var t in texts)
            foreach (var term in Terms(t, ngramLength).Distinct())
                df[term] = df.GetValueOrDefault(term) + 1;
        var names = df.Keys.Order(StringComparer.Ordinal).ToList();
        var vocab = new Dictionary<string, int>(names.Count, StringComparer.Ordinal);
        var idf = new float[names.Count];
        for (int i = 0; i < names.Count; i++)
        {
            vocab[names[i]] = i;
            idf[i] = (float)(Math.Log((1.0 + texts.Count) / (1.0 + df[names[i]])) + 1.0);
        }
        return new TfidfFeaturizer(vocab, idf, ngramLength);
    }

    /// <summary>The sparse, L2-normalised tf-idf row of <paramref name="text"/> (terms outside the vocabulary ignored).</summary>
    public VBuffer<float> Transform(string text)
    {
        var counts = new SortedDictionary<int, int>();
        foreach (var term in Terms(text, _n))
            if (_vocab.TryGetValue(term, out int j)) counts[j] = counts.GetValueOrDefault(j) + 1;
        var idx = counts.Keys.ToArray();
        var val = counts.Select(kv => (float)((1.0 + Math.Log(kv.Value)) * _idf[kv.Key])).ToArray();
        double norm = Math.Sqrt(val.Sum(v => (double)v * v));
        if (norm > 0) for (int i = 0; i < val.Length; i++) val[i] = (float)(val[i] / norm);
        return new VBuffer<float>(Size, idx.Length, val, idx);
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
        // The features are computed once, from every training text (the vocabulary and idf of the final model), and
        // shared by the fits of the C search.
        var f = TfidfFeaturizer.Fit(texts, o.NgramLength);
        var fit = new Fitter(f, order, o);
        var all = Enumerable.Range(0, texts.Count).ToList();
        if (o.C is double given) return fit.Model(fit.Train(texts, labels, all, given, null), given, sw, null, "given");

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
        if (valT.Count == 0) return fit.Model(fit.Train(texts, labels, all, 10, null), 10, sw, null, "default (no texts to choose on)");
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
        // The model at the best C, converged, on every training row, from the search's solution.
        var final = fit.Train(texts, labels, all, best, fitted[best]);
        return fit.Model(final, best, sw, scores, on);
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
        public TextBaseline Model(Scorer p, double c, Stopwatch sw, IReadOnlyDictionary<double, double>? scores, string on) =>
            new(_ml, _keys.Append(p), _f, _schema, _order, sw.Elapsed.TotalSeconds, c, scores, on);
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
