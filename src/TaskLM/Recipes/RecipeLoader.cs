// Reads a recipe YAML, applies key=value overrides, checks every key and type, and writes the resolved recipe.
using System.Globalization;
using System.Reflection;
using System.Text;
using System.Text.Json.Nodes;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;
using TaskLM.Training;

namespace TaskLM.Recipes;

/// <summary>A recipe problem: names the file, line and key (or the override) and what was expected.</summary>
public sealed class RecipeException(string message) : Exception(message);

/// <summary>YAML ⇄ <see cref="Recipe"/>. Unknown keys fail with the closest valid key suggested; wrong
/// types fail naming the key and the expected type; overrides use dotted paths (<c>training.lr=3e-4</c>).</summary>
public static class RecipeLoader
{
    /// <summary>Loads <paramref name="path"/> and applies <paramref name="overrides"/> ("a.b=value", value in YAML syntax).</summary>
    public static Recipe Load(string path, IEnumerable<string>? overrides = null)
    {
        if (!File.Exists(path)) throw new RecipeException($"{path}: recipe file not found");
        return Parse(File.ReadAllText(path), path, overrides);
    }

    /// <summary>Parses recipe text; <paramref name="source"/> names it in errors.</summary>
    public static Recipe Parse(string yaml, string source = "recipe", IEnumerable<string>? overrides = null)
    {
        var origins = new Dictionary<YamlNode, string>(ReferenceEqualityComparer.Instance);
        YamlMappingNode root = ParseDocument(yaml, source) as YamlMappingNode
            ?? (string.IsNullOrWhiteSpace(yaml) ? new YamlMappingNode() : throw new RecipeException($"{source}: a recipe is a mapping of keys (task, model, data, ...)"));
        foreach (string o in overrides ?? []) ApplyOverride(root, o, origins);
        var recipe = new Recipe();
        Bind(recipe, root, "", source, origins);
        Validate(recipe, source);
        return recipe;
    }

    /// <summary>Applies <paramref name="overrides"/> to a recipe built in code (evaluate's defaults for a bare model
    /// folder) and checks it as <see cref="Parse"/> checks a file: the same key, type and range errors, named by
    /// <paramref name="source"/>. Sections merge: <c>data.text_column=body</c> keeps the other data keys.</summary>
    public static Recipe Apply(Recipe recipe, IEnumerable<string>? overrides, string source = "recipe")
    {
        var origins = new Dictionary<YamlNode, string>(ReferenceEqualityComparer.Instance);
        var root = new YamlMappingNode();
        foreach (string o in overrides ?? []) ApplyOverride(root, o, origins);
        Bind(recipe, root, "", source, origins);
        Validate(recipe, source);
        return recipe;
    }

    static YamlNode? ParseDocument(string yaml, string source)
    {
        var stream = new YamlStream();
        try { stream.Load(new StringReader(yaml)); }
        catch (YamlException e) { throw new RecipeException($"{source}:{e.Start.Line}: invalid YAML: {e.Message}"); }
        return stream.Documents.Count == 0 ? null : stream.Documents[0].RootNode;
    }

    static void ApplyOverride(YamlMappingNode root, string text, Dictionary<YamlNode, string> origins)
    {
        int eq = text.IndexOf('=');
        if (eq <= 0) throw new RecipeException($"override '{text}': expected key=value (e.g. training.lr=3e-4)");
        string[] path = text[..eq].Trim().Split('.');
        string valueText = text[(eq + 1)..];
        YamlNode value = ParseDocument(valueText, $"override '{text}'") ?? new YamlScalarNode("") { Style = ScalarStyle.Plain };
        Mark(value, $"override '{text}'", origins);
        var map = root;
        for (int i = 0; i < path.Length - 1; i++)
        {
            var key = new YamlScalarNode(path[i]);
            if (map.Children.TryGetValue(key, out var child) && child is YamlMappingNode m) map = m;
            else { var m2 = new YamlMappingNode(); origins[m2] = $"override '{text}'"; map.Children[key] = m2; map = m2; }
        }
        var leaf = new YamlScalarNode(path[^1]);
        origins[leaf] = $"override '{text}'";
        map.Children.Remove(new YamlScalarNode(path[^1]));
        map.Children.Add(leaf, value);
    }

    static void Mark(YamlNode node, string origin, Dictionary<YamlNode, string> origins)
    {
        origins[node] = origin;
        foreach (var n in node.AllNodes) origins[n] = origin;
    }

    static string Where(YamlNode node, string source, Dictionary<YamlNode, string> origins) =>
        origins.TryGetValue(node, out var o) ? o : $"{source}:{node.Start.Line}";

    /// <summary>snake_case YAML key of a property.</summary>
    public static string KeyOf(PropertyInfo p)
    {
        var sb = new StringBuilder();
        foreach (char c in p.Name)
        {
            if (char.IsUpper(c) && sb.Length > 0) sb.Append('_');
            sb.Append(char.ToLowerInvariant(c));
        }
        return sb.ToString();
    }

    static PropertyInfo[] Props(Type t) => t.GetProperties(BindingFlags.Public | BindingFlags.Instance).Where(p => p.CanWrite).ToArray();

    static void Bind(object target, YamlMappingNode map, string prefix, string source, Dictionary<YamlNode, string> origins)
    {
        var props = Props(target.GetType());
        foreach (var (k, v) in map.Children)
        {
            string key = (k as YamlScalarNode)?.Value ?? "";
            string full = prefix + key;
            var prop = props.FirstOrDefault(p => KeyOf(p) == key);
            if (prop == null)
            {
                string? near = Closest(key, props.Select(KeyOf));
                string hint = near != null ? $"; did you mean '{prefix}{near}'?" : $"; valid keys: {string.Join(", ", props.Select(KeyOf))}";
                throw new RecipeException($"{Where(k, source, origins)}: unknown key '{full}'{hint}");
            }
            prop.SetValue(target, Convert(v, prop, full, source, origins, prop.GetValue(target)));
        }
    }

    static object? Convert(YamlNode node, PropertyInfo prop, string key, string source, Dictionary<YamlNode, string> origins, object? current)
    {
        Type t = prop.PropertyType;
        bool nullable = new NullabilityInfoContext().Create(prop).WriteState == NullabilityState.Nullable;
        string where = Where(node, source, origins);
        if (node is YamlScalarNode s && IsNull(s))
        {
            if (nullable) return null;
            throw new RecipeException($"{where}: {key} cannot be null (expected {TypeName(t)})");
        }
        if (t == typeof(JsonObject) || t == typeof(JsonNode)) return ToJson(node, key, where);
        if (t == typeof(string))
        {
            if (node is YamlScalarNode str) return str.Value ?? "";
            throw new RecipeException($"{where}: {key} expects a string, got a {Kind(node)}");
        }
        if (t == typeof(int) || t == typeof(double) || t == typeof(bool))
        {
            if (node is not YamlScalarNode sc || !TryScalar(sc, t, out object? v))
                throw new RecipeException($"{where}: {key} expects {TypeName(t)}, got {Describe(node)}");
            return v;
        }
        if (t == typeof(List<string>) || t == typeof(List<double>))
        {
            Type el = t.GetGenericArguments()[0];
            var items = node switch
            {
                YamlSequenceNode seq => seq.Children.ToList(),
                YamlScalarNode one when el == typeof(string) => [one],  // a single module name is a list of one
                _ => throw new RecipeException($"{where}: {key} expects {TypeName(t)}, got {Describe(node)}"),
            };
            var list = (System.Collections.IList)Activator.CreateInstance(t)!;
            foreach (var it in items)
            {
                if (it is not YamlScalarNode sc || !TryScalar(sc, el, out object? v))
                    throw new RecipeException($"{Where(it, source, origins)}: {key} expects {TypeName(t)}, got an item {Describe(it)}");
                list.Add(v);
            }
            return list;
        }
        if (t.IsClass)
        {
            if (node is not YamlMappingNode m) throw new RecipeException($"{where}: {key} expects a mapping of keys ({string.Join(", ", Props(t).Select(KeyOf))}), got {Describe(node)}");
            object section = current ?? Activator.CreateInstance(t)!;
            Bind(section, m, key + ".", source, origins);
            return section;
        }
        throw new InvalidOperationException($"recipe property type {t} not handled");
    }

    static bool IsNull(YamlScalarNode s) => s.Style == ScalarStyle.Plain && (s.Value is null or "" or "~" or "null" or "Null" or "NULL");

    static bool TryScalar(YamlScalarNode s, Type t, out object? value)
    {
        string v = s.Value ?? "";
        bool quoted = s.Style is ScalarStyle.SingleQuoted or ScalarStyle.DoubleQuoted;
        value = null;
        if (t == typeof(string)) { value = v; return true; }
        if (quoted) return false;
        if (t == typeof(int) && int.TryParse(v, NumberStyles.Integer, CultureInfo.InvariantCulture, out int i)) { value = i; return true; }
        if (t == typeof(int) && double.TryParse(v, NumberStyles.Float, CultureInfo.InvariantCulture, out double di) && di == Math.Floor(di) && Math.Abs(di) < int.MaxValue) { value = (int)di; return true; }
        if (t == typeof(double) && double.TryParse(v, NumberStyles.Float, CultureInfo.InvariantCulture, out double d)) { value = d; return true; }
        if (t == typeof(bool) && v is "true" or "True" or "TRUE" or "false" or "False" or "FALSE") { value = v.Equals("true", StringComparison.OrdinalIgnoreCase); return true; }
        return false;
    }

    static string TypeName(Type t) =>
        t == typeof(int) ? "an integer" : t == typeof(double) ? "a number" : t == typeof(bool) ? "true or false" :
        t == typeof(string) ? "a string" : t == typeof(List<string>) ? "a list of strings" : t == typeof(List<double>) ? "a list of numbers" : "a mapping";

    static string Kind(YamlNode n) => n switch { YamlMappingNode => "mapping", YamlSequenceNode => "list", _ => "value" };

    static string Describe(YamlNode n) => n is YamlScalarNode s ? $"'{s.Value}'" : $"a {Kind(n)}";

    static JsonNode? ToJson(YamlNode node, string key, string where)
    {
        switch (node)
        {
            case YamlMappingNode m:
                var o = new JsonObject();
                foreach (var (k, v) in m.Children) o[((YamlScalarNode)k).Value!] = ToJson(v, key, where);
                return o;
            case YamlSequenceNode seq:
                return new JsonArray(seq.Children.Select(c => ToJson(c, key, where)).ToArray());
            case YamlScalarNode s:
                if (IsNull(s)) return null;
                if (s.Style == ScalarStyle.Plain)
                {
                    if (long.TryParse(s.Value, NumberStyles.Integer, CultureInfo.InvariantCulture, out long l)) return JsonValue.Create(l);
                    if (double.TryParse(s.Value, NumberStyles.Float, CultureInfo.InvariantCulture, out double d)) return JsonValue.Create(d);
                    if (s.Value is "true" or "false") return JsonValue.Create(s.Value == "true");
                }
                return JsonValue.Create(s.Value);
            default:
                throw new RecipeException($"{where}: {key}: unsupported YAML node");
        }
    }

    /// <summary>The valid name closest to <paramref name="key"/> (edit distance ≤ 1/2 of its length, or a prefix), or null.</summary>
    public static string? Closest(string key, IEnumerable<string> valid)
    {
        string? best = null; int bestD = int.MaxValue;
        foreach (string v in valid)
        {
            int d = v.StartsWith(key, StringComparison.Ordinal) || key.StartsWith(v, StringComparison.Ordinal) ? Math.Abs(v.Length - key.Length) : TaskLM.Data.EditDistance.Levenshtein(key, v);
            if (d < bestD) { bestD = d; best = v; }
        }
        return best != null && bestD <= Math.Max(2, key.Length / 2) ? best : null;
    }

    static void OneOf(string value, string[] allowed, string key, string source)
    {
        if (allowed.Contains(value)) return;
        string? near = Closest(value, allowed);
        throw new RecipeException($"{source}: {key}: '{value}' is not one of {string.Join(" | ", allowed)}" + (near != null ? $"; did you mean '{near}'?" : ""));
    }

    static void Check(bool ok, string source, string message)
    {
        if (!ok) throw new RecipeException($"{source}: {message}");
    }

    /// <summary>Checks values that are well-typed but out of range or not among the allowed names.</summary>
    static void Validate(Recipe r, string source)
    {
        OneOf(r.Task, Recipe.Tasks, "task", source);
        OneOf(r.Strategy.Method, ["full", "freeze", "lora", "features"], "strategy.method", source);
        if (r.Strategy.Method == "features")
        {
            Check(r.Task == TaskNames.Classification, source, $"strategy.method: features trains a classifier on frozen sentence features; it needs task: classification, not '{r.Task}' (use full, freeze or lora)");
            Check(r.Strategy.Features.C.Count > 0 && r.Strategy.Features.C.All(c => c > 0 && double.IsFinite(c)), source, "strategy.features.c must be a non-empty list of positive numbers (inverse L2 strengths, as sklearn's C)");
            Check(r.Strategy.Features.BatchSize >= 1, source, "strategy.features.batch_size must be at least 1");
            Check(r.Strategy.UnfreezeEvery == 0, source, "strategy.unfreeze_every does not apply to strategy.method: features (the encoder stays frozen)");
        }
        OneOf(r.Training.Scheduler, ["linear", "cosine", "constant"], "training.scheduler", source);
        OneOf(r.Data.Format, ["auto", "jsonl", "csv", "tsv", "parquet", "txt", "tokens"], "data.format", source);
        OneOf(r.Training.Precision, ["fp32", "bf16", "auto"], "training.precision", source);
        if (r.Model.EmbeddingInit != null) OneOf(r.Model.EmbeddingInit, ["ppmi-svd"], "model.embedding_init", source);
        FiniteNumbers(r, "", source);
        var t = r.Training;
        Check(t.BatchSize >= 1, source, "training.batch_size must be at least 1");
        Check(t.EvalBatchSize >= 1, source, "training.eval_batch_size must be at least 1");
        Check(t.GradAccum >= 1, source, "training.grad_accum must be at least 1");
        Check(t.Lr > 0, source, "training.lr must be positive");
        Check(t.Warmup >= 0, source, "training.warmup must be ≥ 0 (a ratio < 1 or a step count)");
        Check(t.Warmup < 1 || t.Warmup == Math.Floor(t.Warmup), source, "training.warmup ≥ 1 is a step count and must be whole");
        Check(t.Betas.Count == 2 && t.Betas.All(b => b >= 0 && b < 1), source, "training.betas must be two numbers in [0, 1)");
        Check(t.Epochs >= 1 || t.MaxSteps > 0, source, "training.epochs must be at least 1 (or set training.max_steps)");
        Check(t.MaxBadSteps >= 1, source, "training.max_bad_steps must be at least 1");
        Check(t.LabelSmoothing is >= 0 and < 1, source, "training.label_smoothing must be in [0, 1)");
        Check(r.Data.MaxLength >= 2 || r.Data.MaxLength == 0, source, "data.max_length must be at least 2 (or 0: from the data)");
        Check(r.Data.MaxLengthCap >= 0, source, "data.max_length_cap must be 0 (the model's limit) or a positive length");
        Check(r.Data.ValidationSplit is >= 0 and < 1, source, "data.validation_split must be in [0, 1)");
        Check(t.MaxSteps >= -1, source, $"training.max_steps must be a positive step count (or -1: train for training.epochs), got {t.MaxSteps}");
        Check(t.Eps > 0, source, $"training.eps must be positive (AdamW's denominator term, typically 1e-8), got {Fmt(t.Eps)}");
        Check(t.WeightDecay >= 0, source, $"training.weight_decay must be ≥ 0, got {Fmt(t.WeightDecay)}");
        Check(t.MaxGradNorm >= 0, source, $"training.max_grad_norm must be ≥ 0 (0 = no clipping), got {Fmt(t.MaxGradNorm)}");
        Check(t.SaveEvery >= 0, source, $"training.save_every must be ≥ 0 (0 = only at the end), got {t.SaveEvery}");
        Check(t.KeepLast >= 0, source, $"training.keep_last must be ≥ 0 (0 = keep all), got {t.KeepLast}");
        Check(t.LogEvery >= 1, source, $"training.log_every must be at least 1, got {t.LogEvery}");
        Check(r.Data.MaxTrainExamples >= 0, source, $"data.max_train_examples must be ≥ 0 (0 = all), got {r.Data.MaxTrainExamples}");
        Check(r.Data.MaxEvalExamples >= 0, source, $"data.max_eval_examples must be ≥ 0 (0 = all), got {r.Data.MaxEvalExamples}");
        Check(r.Strategy.UnfreezeEvery >= 0, source, $"strategy.unfreeze_every must be ≥ 0 (0 = off), got {r.Strategy.UnfreezeEvery}");
        Check(r.Strategy.Freeze.Layers >= 0, source, $"strategy.freeze.layers must be ≥ 0, got {r.Strategy.Freeze.Layers}");
        Check(r.Strategy.Lora.Alpha > 0, source, $"strategy.lora.alpha must be positive, got {Fmt(r.Strategy.Lora.Alpha)}");
        Check(r.Data.MlmProbability is > 0 and < 1, source, "data.mlm_probability must be in (0, 1)");
        Check(r.Strategy.Lora.R >= 1, source, "strategy.lora.r must be at least 1");
        Check(r.Strategy.Lora.Dropout is >= 0 and < 1, source, "strategy.lora.dropout must be in [0, 1)");
        if (t.EvalEvery is not ("epoch" or "none"))
            Check(int.TryParse(t.EvalEvery, out int n) && n > 0, source, $"training.eval_every: '{t.EvalEvery}' must be 'epoch', 'none' or a positive step count");
        if (t.EarlyStopping is { } es)
        {
            OneOf(es.Mode, ["auto", "min", "max"], "training.early_stopping.mode", source);
            Check(es.Patience >= 1, source, "training.early_stopping.patience must be at least 1");
            Check(es.MinDelta >= 0, source, "training.early_stopping.min_delta must be ≥ 0");
        }
        if (t.ClassWeights is JsonValue cw)
            Check(cw.TryGetValue(out string? s) && s is "balanced" or "auto", source, "training.class_weights must be 'balanced', 'auto' or a list of numbers");
        else if (t.ClassWeights is JsonArray arr)
        {
            Check(arr.All(x => JsonNumber(x) is double w && w >= 0 && double.IsFinite(w)), source, "training.class_weights must be 'balanced' or a list of non-negative numbers");
            // A zero weight makes the weighted mean loss 0/0 (NaN) for every batch holding only that class (batch 1: every
            // example of it), which then reads as divergence: refused with the reason.
            int zero = arr.ToList().FindIndex(x => JsonNumber(x) is 0.0);
            Check(zero < 0, source, $"training.class_weights[{zero}] is 0: every weight must be positive (a batch of only that class would have a 0/0 loss); drop the class from the data, or give it a small weight such as 0.01");
        }
        else Check(t.ClassWeights == null, source, "training.class_weights must be 'balanced' or a list of numbers");
        Check(r.Evaluation.BootstrapSamples == 0 || r.Evaluation.BootstrapSamples >= 2, source, "evaluation.bootstrap_samples must be 0 (off) or at least 2");
        Check(!r.Evaluation.Ensemble || r.Evaluation.Baseline, source, "evaluation.ensemble needs evaluation.baseline: true");
        Check(r.Data.Train != null, source, "data.train is required");
    }

    /// <summary>A JSON number as a double, whether it was read as an integer or a real (null if not a number).</summary>
    public static double? JsonNumber(JsonNode? n)
    {
        if (n is not JsonValue v) return null;
        if (v.TryGetValue(out double d)) return d;
        if (v.TryGetValue(out long l)) return l;
        if (v.TryGetValue(out int i)) return i;
        return v.GetValueKind() == System.Text.Json.JsonValueKind.Number
            ? double.Parse(v.ToJsonString(), NumberStyles.Float, CultureInfo.InvariantCulture) : null;
    }

    static string Fmt(double d) => d.ToString("G6", CultureInfo.InvariantCulture);

    // Every number in the recipe is finite: 1e400 reads as infinity, which no key accepts (and JSON cannot hold).
    static void FiniteNumbers(object section, string prefix, string source)
    {
        foreach (var p in Props(section.GetType()))
        {
            object? v = p.GetValue(section);
            string key = prefix + KeyOf(p);
            switch (v)
            {
                case double d:
                    Check(double.IsFinite(d), source, $"{key}: {Fmt(d)} is not a finite number");
                    break;
                case List<double> list:
                    Check(list.All(double.IsFinite), source, $"{key}: every entry must be a finite number");
                    break;
                case JsonNode j:
                    foreach (var x in j is JsonArray a ? a.AsEnumerable() : j is JsonObject o ? o.Select(kv => kv.Value) : [j])
                        if (JsonNumber(x) is double n) Check(double.IsFinite(n), source, $"{key}: {Fmt(n)} is not a finite number");
                    break;
                case null or string or int or bool or System.Collections.IList:
                    break;
                default:
                    FiniteNumbers(v, key + ".", source);
                    break;
            }
        }
    }

    /// <summary>Writes every setting (defaults filled in) as YAML.</summary>
    public static string ToYaml(Recipe recipe)
    {
        var doc = new YamlStream(new YamlDocument(ToNode(recipe)));
        var sw = new StringWriter();
        doc.Save(sw, assignAnchors: false);
        string text = sw.ToString();
        return text.EndsWith("...\n", StringComparison.Ordinal) ? text[..^4] : text;
    }

    static YamlNode ToNode(object? value) => value switch
    {
        null => new YamlScalarNode("null"),
        string s => new YamlScalarNode(s) { Style = NeedsQuotes(s) ? ScalarStyle.DoubleQuoted : ScalarStyle.Plain },
        bool b => new YamlScalarNode(b ? "true" : "false"),
        int i => new YamlScalarNode(i.ToString(CultureInfo.InvariantCulture)),
        double d => new YamlScalarNode(FormatDouble(d)),
        JsonNode j => JsonToNode(j),
        System.Collections.IList list => new YamlSequenceNode(list.Cast<object?>().Select(ToNode)) { Style = YamlDotNet.Core.Events.SequenceStyle.Flow },
        _ => new YamlMappingNode(Props(value.GetType()).Select(p => new KeyValuePair<YamlNode, YamlNode>(new YamlScalarNode(KeyOf(p)), ToNode(p.GetValue(value))))),
    };

    static YamlNode JsonToNode(JsonNode j) => j switch
    {
        JsonObject o => new YamlMappingNode(o.Select(kv => new KeyValuePair<YamlNode, YamlNode>(new YamlScalarNode(kv.Key), kv.Value == null ? new YamlScalarNode("null") : JsonToNode(kv.Value)))),
        JsonArray a => new YamlSequenceNode(a.Select(x => x == null ? new YamlScalarNode("null") : JsonToNode(x))) { Style = YamlDotNet.Core.Events.SequenceStyle.Flow },
        JsonValue v when v.TryGetValue(out string? s) => ToNode(s),
        _ => new YamlScalarNode(j.ToJsonString()),
    };

    // Plain scalars that YAML would read back as another type or null are quoted.
    static bool NeedsQuotes(string s) => s.Length == 0 || s is "null" or "~" or "true" or "false" || double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out _);

    static string FormatDouble(double d)
    {
        string s = d.ToString("R", CultureInfo.InvariantCulture);
        return s.Contains('.') || s.Contains('E') || s.Contains("Infinity") || s.Contains("NaN") ? s : s + ".0";
    }
}
