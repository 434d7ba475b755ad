// The TF-IDF baseline a run saves beside best/ (runs/x/baseline/), and the model + baseline mix the run ships when
// validation says the baseline, alone or mixed in, beats the model: predict, serve and evaluate run the same mix.
using System.Globalization;
using System.Text.Json.Nodes;
using TaskLM.Onnx;

namespace TaskLM.Evaluation;

/// <summary>A saved, runnable TF-IDF + logistic-regression baseline and the weight of the model in what a run ships:
/// p = w·p_model + (1 − w)·p_baseline, with w chosen on validation (1: the model alone, 0: the baseline alone).
/// The folder: <c>config.json</c> (labels, C, n-gram range, <c>model_weight</c>, <c>ships</c>, the validation scores
/// that chose), <c>vocab.txt</c> (the tf-idf vocabulary in feature order, one term a line) and
/// <c>char_vocab.txt</c> (its character n-grams, numbered after the words, when it has them) and
/// <c>model.safetensors</c> (<c>idf</c> (F), <c>weight</c> (C, F), <c>bias</c> (C)); probabilities are
/// softmax(weight · x + bias) of scikit-learn's tf-idf row x, recomputed without ML.NET.</summary>
public sealed class ShippedBaseline
{
    /// <summary>The folder's name inside a run folder.</summary>
    public const string FolderName = "baseline";
    /// <summary>The character n-gram vocabulary in feature order (after vocab.txt's words), when the baseline has one.</summary>
    public const string CharVocabFile = "char_vocab.txt";

    readonly TfidfFeaturizer _features;
    readonly float[][] _weight;   // (C, F)
    readonly float[] _bias;       // (C)

    /// <summary>Class names in probability order (the model's id2label order).</summary>
    public IReadOnlyList<string> Labels { get; }
    /// <summary>w in p = w·p_model + (1 − w)·p_baseline.</summary>
    public double ModelWeight { get; }
    /// <summary>config.json as saved.</summary>
    public JsonObject Config { get; }
    /// <summary>What the run ships: "model" (w = 1), "baseline" (w = 0) or "ensemble".</summary>
    public string Ships => ShipsFor(ModelWeight);

    ShippedBaseline(TfidfFeaturizer f, float[][] weight, float[] bias, IReadOnlyList<string> labels, double w, JsonObject config)
    {
        _features = f; _weight = weight; _bias = bias; Labels = labels; ModelWeight = w; Config = config;
    }

    /// <summary>"model", "baseline" or "ensemble" for a model weight.</summary>
    public static string ShipsFor(double modelWeight) => modelWeight >= 1 ? "model" : modelWeight <= 0 ? "baseline" : "ensemble";

    /// <summary>Writes <paramref name="b"/> to <paramref name="dir"/> (replaced atomically) with the model weight the
    /// run ships and <paramref name="choice"/> (how it was chosen) in config.json.</summary>
    public static void Save(TextBaseline b, string dir, double modelWeight, JsonObject choice)
    {
        string tmp = dir + ".tmp";
        if (Directory.Exists(tmp)) Directory.Delete(tmp, true);
        Directory.CreateDirectory(tmp);
        var (weight, bias) = b.Parameters();
        int f = b.Features, c = b.Labels.Count;
        var flat = new float[(long)c * f];
        for (int k = 0; k < c; k++) weight[k].CopyTo(flat, (long)k * f);
        var idf = b.Featurizer.Idf.ToArray();
        if (idf.Length == 0) idf = [0f];   // texts without a \w\w+ token: one all-zero feature (TfidfFeaturizer.Size)
        HfWeights.WriteSafetensors(Path.Combine(tmp, "model.safetensors"),
        [
            KeyValuePair.Create("idf", new Weight([f], idf)),
            KeyValuePair.Create("weight", new Weight([c, f], flat)),
            KeyValuePair.Create("bias", new Weight([c], bias)),
        ]);
        File.WriteAllLines(Path.Combine(tmp, "vocab.txt"), b.Featurizer.Terms());
        if (b.Featurizer.CharNgrams != null) File.WriteAllLines(Path.Combine(tmp, CharVocabFile), b.Featurizer.CharTerms());
        var config = new JsonObject
        {
            ["method"] = BaselineComparison.MethodName,
            ["c"] = b.C, ["c_chosen_on"] = b.CChosenOn,
            ["ngram_range"] = new JsonArray(1, b.Featurizer.NgramLength),
            ["char_ngram_range"] = b.Featurizer.CharNgrams is var (cmin, cmax) ? new JsonArray(cmin, cmax) : null,
            ["features_chosen"] = b.FeatureScores == null ? null : new JsonObject(b.FeatureScores.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)kv.Value))),
            ["labels"] = new JsonArray(b.Labels.Select(l => (JsonNode)l).ToArray()),
            ["features"] = f,
            ["model_weight"] = modelWeight,
            ["ships"] = ShipsFor(modelWeight),
        };
        foreach (var (k, v) in choice) config[k] = v?.DeepClone();
        File.WriteAllText(Path.Combine(tmp, "config.json"), config.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }) + "\n");
        if (Directory.Exists(dir)) Directory.Delete(dir, true);
        Directory.Move(tmp, dir);
    }

    /// <summary>Reads a saved baseline folder; a damaged one is an error naming the file.</summary>
    public static ShippedBaseline Load(string dir)
    {
        string cfgPath = Path.Combine(dir, "config.json");
        if (!File.Exists(cfgPath)) throw new FileNotFoundException($"{dir}: no config.json (not a saved baseline)", cfgPath);
        JsonObject cfg;
        try { cfg = JsonNode.Parse(File.ReadAllText(cfgPath)) as JsonObject ?? throw new InvalidDataException($"{cfgPath}: not a JSON object"); }
        catch (System.Text.Json.JsonException e) { throw new InvalidDataException($"{cfgPath}: invalid JSON: {e.Message}", e); }
        var labels = (cfg["labels"] as JsonArray ?? throw new InvalidDataException($"{cfgPath}: no \"labels\"")).Select(n => n!.GetValue<string>()).ToList();
        double w = EvalResult.AsNumber(cfg["model_weight"]) ?? throw new InvalidDataException($"{cfgPath}: \"model_weight\" should be a number");
        if (w is < 0 or > 1) throw new InvalidDataException($"{cfgPath}: \"model_weight\" {w.ToString(CultureInfo.InvariantCulture)} is outside [0, 1]");
        int n = cfg["ngram_range"] is JsonArray ng && ng.Count == 2 ? (int)ng[1]! : 2;
        var terms = File.ReadAllLines(Path.Combine(dir, "vocab.txt"));
        (int, int)? charRange = null;
        string[]? charTerms = null;
        if (cfg["char_ngram_range"] is JsonArray cr)
        {
            if (cr.Count != 2) throw new InvalidDataException($"{cfgPath}: \"char_ngram_range\" should be [min, max]");
            charRange = ((int)cr[0]!, (int)cr[1]!);
            string cv = Path.Combine(dir, CharVocabFile);
            if (!File.Exists(cv)) throw new FileNotFoundException($"{dir}: no {CharVocabFile} (config.json has \"char_ngram_range\")", cv);
            charTerms = File.ReadAllLines(cv);
        }
        var weights = HfWeights.Load(dir);
        var idf = weights.Get("idf");
        int f = Math.Max(1, terms.Length + (charTerms?.Length ?? 0)), c = labels.Count;
        var weight = weights.Get("weight", "", c, f).Data;
        var bias = weights.Get("bias", "", c).Data;
        if (idf.Data.Length != f) throw new InvalidDataException($"{dir}: vocab.txt and {CharVocabFile} have {f} terms, idf has {idf.Data.Length}");
        var rows = Enumerable.Range(0, c).Select(k => weight.AsSpan(k * f, f).ToArray()).ToArray();
        var featurizer = TfidfFeaturizer.FromParts(terms, terms.Length + (charTerms?.Length ?? 0) == 0 ? [] : idf.Data, n, charTerms, charRange);
        return new ShippedBaseline(featurizer, rows, bias, labels, w, cfg);
    }

    /// <summary>The saved baseline of run folder <paramref name="runDir"/> when the run ships it (alone or mixed in),
    /// else null (no run folder, no baseline/, or a model weight of 1).</summary>
    public static ShippedBaseline? ForRun(string? runDir)
    {
        if (runDir == null || !File.Exists(Path.Combine(runDir, FolderName, "config.json"))) return null;
        var b = Load(Path.Combine(runDir, FolderName));
        return b.ModelWeight >= 1 ? null : b;
    }

    /// <summary>The baseline's class probabilities, one row per text, columns in <see cref="Labels"/> order: (N, C).</summary>
    public float[][] PredictProba(IReadOnlyList<string> texts)
    {
        var result = new float[texts.Count][];
        for (int i = 0; i < texts.Count; i++)
        {
            var x = _features.Transform(texts[i]);   // sparse, unit L2 norm
            var idx = x.GetIndices(); var val = x.GetValues();
            var logits = new float[_bias.Length];
            for (int c = 0; c < logits.Length; c++)
            {
                double z = _bias[c];
                var row = _weight[c];
                for (int j = 0; j < idx.Length; j++) z += row[idx[j]] * val[j];
                logits[c] = (float)z;
            }
            result[i] = BaselineComparison.Softmax(logits);
        }
        return result;
    }

    /// <summary>What the run ships for these texts given the model's probabilities (N, C): w·model + (1 − w)·baseline.</summary>
    public float[][] Mix(float[][] modelProba, IReadOnlyList<string> texts)
    {
        if (modelProba.Length != texts.Count) throw new ArgumentException($"{modelProba.Length} model rows for {texts.Count} texts");
        return BaselineComparison.Mix(modelProba, PredictProba(texts), ModelWeight);
    }

    /// <summary>The text the baseline reads for an input and its optional pair (as LabelledTexts joins them).</summary>
    public static string Text(string text, string? pair) => pair == null ? text : text + "\n" + pair;
}
