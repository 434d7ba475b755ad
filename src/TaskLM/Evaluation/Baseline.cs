// The classical baseline beside every classifier: TF-IDF word 1-2 grams + multinomial logistic regression (ML.NET).
using System.Diagnostics;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Trainers;
using Microsoft.ML.Transforms.Text;
using TaskLM.Data.Corpus;

namespace TaskLM.Evaluation;

/// <summary>Settings of the TF-IDF + logistic-regression baseline. The defaults mirror scikit-learn's
/// <c>TfidfVectorizer(ngram_range=(1, 2))</c> + <c>LogisticRegression(C=1.0)</c> as closely as ML.NET's text featurizer
/// allows (see <see cref="TextBaseline"/> for what differs).</summary>
public sealed record BaselineOptions
{
    /// <summary>Longest word n-gram (all shorter ones are included too).</summary>
    public int NgramLength { get; init; } = 2;
    /// <summary>L2 penalty weight of the L-BFGS objective (Σ example losses + L2/2·‖W‖²): 1 is sklearn's C = 1.</summary>
    public float L2 { get; init; } = 1f;
    /// <summary>L-BFGS iteration cap (sklearn's max_iter default is 100; ML.NET's is far larger: converge instead).</summary>
    public int MaxIterations { get; init; } = 1000;
    /// <summary>Seed of ML.NET's context (the fit is deterministic given the data; this fixes thread scheduling effects).</summary>
    public int Seed { get; init; } = 0;
}

/// <summary>A fitted TF-IDF + logistic-regression text classifier.
/// Pipeline (ML.NET): text normaliser (lower case, punctuation removed, digits and diacritics kept) → whitespace word
/// tokens → word 1..n-grams weighted TF·IDF → L2 row norm → L-BFGS maximum entropy (softmax regression, L1 = 0).
/// Differences from scikit-learn's <c>TfidfVectorizer(sublinear_tf=True)</c>: ML.NET's word bag has no sublinear
/// (1 + ln tf) term frequency and its IDF is ln(N / df) without sklearn's +1 smoothing; its tokens are whitespace
/// words after punctuation removal (sklearn: <c>\b\w\w+\b</c>, dropping one-letter tokens).
/// tests/fixtures/evaluation/baseline/ measures the effect against sklearn.</summary>
public sealed class TextBaseline
{
    readonly MLContext _ml;
    readonly ITransformer _model;

    /// <summary>Class names in score order (the order given to <see cref="Fit"/>).</summary>
    public IReadOnlyList<string> Labels { get; }
    /// <summary>Seconds the fit took.</summary>
    public double FitSeconds { get; }

    TextBaseline(MLContext ml, ITransformer model, IReadOnlyList<string> labels, double seconds) { _ml = ml; _model = model; Labels = labels; FitSeconds = seconds; }

    sealed class Row
    {
        public string Text { get; set; } = "";
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
    /// fixes the class order of the probabilities (default: the sorted distinct labels); labels outside it are an error.</summary>
    public static TextBaseline Fit(IReadOnlyList<string> texts, IReadOnlyList<string> labels, IReadOnlyList<string>? labelOrder = null, BaselineOptions? options = null)
    {
        var o = options ?? new BaselineOptions();
        if (texts.Count != labels.Count) throw new ArgumentException($"{texts.Count} texts but {labels.Count} labels");
        if (texts.Count == 0) throw new ArgumentException("the baseline needs at least one training example");
        var order = labelOrder?.ToList() ?? labels.Distinct().Order(StringComparer.Ordinal).ToList();
        var known = order.ToHashSet();
        foreach (var l in labels) if (!known.Contains(l)) throw new ArgumentException($"training label '{l}' is not among the classes ({string.Join(", ", order)})");
        var sw = Stopwatch.StartNew();
        var ml = new MLContext(o.Seed);
        var data = ml.Data.LoadFromEnumerable(texts.Zip(labels, (t, l) => new Row { Text = t, Label = l }));
        // The key column's terms come from a one-column view in our order, so score slot c is labelOrder[c].
        var keys = ml.Data.LoadFromEnumerable(order.Select(l => new LabelRow { Label = l }));
        var featurizer = new TextFeaturizingEstimator.Options
        {
            CaseMode = TextNormalizingEstimator.CaseMode.Lower,
            KeepDiacritics = true,
            KeepPunctuations = false,
            KeepNumbers = true,
            WordFeatureExtractor = new WordBagEstimator.Options
            {
                NgramLength = o.NgramLength, UseAllLengths = true,
                Weighting = NgramExtractingEstimator.WeightingCriteria.TfIdf,
                MaximumNgramsCount = [int.MaxValue],
            },
            CharFeatureExtractor = null,
            Norm = TextFeaturizingEstimator.NormFunction.L2,
        };
        var pipeline = ml.Transforms.Conversion.MapValueToKey("LabelKey", nameof(Row.Label), keyData: keys)
            .Append(ml.Transforms.Text.FeaturizeText("Features", featurizer, nameof(Row.Text)))
            .Append(ml.MulticlassClassification.Trainers.LbfgsMaximumEntropy(new LbfgsMaximumEntropyMulticlassTrainer.Options
            {
                LabelColumnName = "LabelKey", FeatureColumnName = "Features",
                L1Regularization = 0, L2Regularization = o.L2, MaximumNumberOfIterations = o.MaxIterations,
                OptimizationTolerance = 1e-7f,
            }));
        var model = pipeline.Fit(data);
        return new TextBaseline(ml, model, order, sw.Elapsed.TotalSeconds);
    }

    /// <summary>Class probabilities, one row per text, columns in <see cref="Labels"/> order.</summary>
    public float[][] PredictProba(IReadOnlyList<string> texts)
    {
        if (texts.Count == 0) return [];
        var view = _model.Transform(_ml.Data.LoadFromEnumerable(texts.Select(t => new Row { Text = t, Label = Labels[0] })));
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
