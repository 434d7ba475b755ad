// The `search:` section of a recipe: which dotted keys a study varies and over what range, checked against the recipe.
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;
using TaskLM.Recipes;

namespace TaskLM.Training.Search;

/// <summary>How a parameter is drawn: one of a list, a float range (linear or log scale), or an integer range.</summary>
public enum ParamKind { Choice, Uniform, LogUniform, Int }

/// <summary>One searched key. Samplers work on an internal number: the index for a choice, the value itself otherwise
/// (Optuna's to_internal_repr), so a trial's parameters are a map key → double.</summary>
public sealed class SearchParam
{
    /// <summary>Dotted recipe key, e.g. <c>training.lr</c>.</summary>
    public required string Key { get; init; }
    public required ParamKind Kind { get; init; }
    public double Low { get; init; }
    public double High { get; init; }
    /// <summary>Grid step of an int (default 1) or a stepped uniform; null = continuous.</summary>
    public double? Step { get; init; }
    /// <summary>Log scale (loguniform, or an int with <c>log: true</c>).</summary>
    public bool Log { get; init; }
    /// <summary>Choice values as YAML text (what a key=value override carries), in order.</summary>
    public IReadOnlyList<string> Choices { get; init; } = [];
    /// <summary>Line of the key in the recipe file (for errors).</summary>
    public int Line { get; init; }

    /// <summary>The YAML text of an internal value, as a <c>key=value</c> override carries it.</summary>
    public string ValueText(double v) => Kind switch
    {
        ParamKind.Choice => Choices[(int)v],
        ParamKind.Int => ((long)Math.Round(v)).ToString(CultureInfo.InvariantCulture),
        _ => v.ToString("R", CultureInfo.InvariantCulture),
    };

    /// <summary><c>key=value</c> for <see cref="RecipeLoader"/>.</summary>
    public string Override(double v) => $"{Key}={ValueText(v)}";

    /// <summary>The value as JSON (number, or the choice's text parsed as a scalar when it is one).</summary>
    public JsonNode? ToJson(double v)
    {
        if (Kind == ParamKind.Int) return JsonValue.Create((long)Math.Round(v));
        if (Kind != ParamKind.Choice) return JsonValue.Create(v);
        string t = Choices[(int)v];
        if (double.TryParse(t, NumberStyles.Float, CultureInfo.InvariantCulture, out double d)) return JsonValue.Create(d);
        return JsonValue.Create(t.Trim('"', '\''));
    }

    /// <summary>Every value a grid visits (choice indices, or the int/stepped range); null for a continuous range.</summary>
    public IReadOnlyList<double>? GridValues()
    {
        if (Kind == ParamKind.Choice) return Enumerable.Range(0, Choices.Count).Select(i => (double)i).ToList();
        if (Step is not { } s) return null;
        var list = new List<double>();
        for (long i = 0; Low + i * s <= High + 1e-9 * Math.Abs(s); i++) list.Add(Low + i * s);
        return list;
    }
}

/// <summary>The parameters of a study, in recipe order, read from a recipe's <c>search:</c> mapping:
/// <code>
/// search:
///   training.lr: {loguniform: [1.0e-4, 3.0e-3]}
///   training.batch_size: {choice: [8, 16, 32]}
///   model.config.n_layer: {int: [1, 4], step: 1}
///   training.warmup: {uniform: [0.0, 0.2]}
/// </code>
/// Every key is checked by loading the recipe with the range's ends (or each choice) as overrides, so an unknown key
/// or a wrong type fails with the recipe's own rules, the search entry's line and the closest valid key.</summary>
public sealed class SearchSpace
{
    public IReadOnlyList<SearchParam> Params { get; }

    public SearchSpace(IReadOnlyList<SearchParam> ps) => Params = ps;

    /// <summary>A stable text of the space (stored with a study so a re-run on a changed space is refused).</summary>
    public string Signature() => string.Join("; ", Params.Select(p =>
        $"{p.Key}: {p.Kind} [{p.Low.ToString("R", CultureInfo.InvariantCulture)}, {p.High.ToString("R", CultureInfo.InvariantCulture)}] step {p.Step?.ToString("R", CultureInfo.InvariantCulture) ?? "-"} log {p.Log} choices [{string.Join(", ", p.Choices)}]"));

    /// <summary>The canonical text of one configuration (sorted keys, internal values): two trials with the same
    /// text ran the same configuration.</summary>
    public static string ConfigKey(IReadOnlyDictionary<string, double> values) =>
        string.Join(";", values.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => $"{kv.Key}={kv.Value.ToString("R", CultureInfo.InvariantCulture)}"));

    /// <summary>Reads and checks the <c>search:</c> section of the recipe at <paramref name="path"/>
    /// (with <paramref name="overrides"/> applied to the rest). No section → an error naming the file.</summary>
    public static SearchSpace Load(string path, IReadOnlyList<string>? overrides = null)
    {
        if (!File.Exists(path)) throw new RecipeException($"{path}: recipe file not found");
        RecipeLoader.Load(path, overrides);   // the recipe itself must be valid first
        var stream = new YamlStream();
        try { stream.Load(new StringReader(File.ReadAllText(path))); }
        catch (YamlException e) { throw new RecipeException($"{path}:{e.Start.Line}: invalid YAML: {e.Message}"); }
        var root = stream.Documents.Count > 0 ? stream.Documents[0].RootNode as YamlMappingNode : null;
        if (root == null || !root.Children.TryGetValue(new YamlScalarNode("search"), out var node) || node is not YamlMappingNode search || search.Children.Count == 0)
            throw new RecipeException($"{path}: no 'search:' section; add one, e.g. search: {{training.lr: {{loguniform: [1.0e-4, 1.0e-2]}}}}");
        var ps = new List<SearchParam>();
        foreach (var (k, v) in search.Children)
        {
            string key = ((YamlScalarNode)k).Value ?? "";
            int line = (int)k.Start.Line;
            string where = $"{path}:{line}: search.{key}";
            var p = ParseParam(key, v, where, line);
            if (ps.Any(q => q.Key == key)) throw new RecipeException($"{where}: listed twice");
            Check(p, path, overrides, where);
            ps.Add(p);
        }
        return new SearchSpace(ps);
    }

    // Checks the key and the value type with the recipe's own rules: each end of the range, every choice. A float range
    // probes an inner point too (a whole-number range end would pass an integer key).
    static void Check(SearchParam p, string path, IReadOnlyList<string>? overrides, string where)
    {
        var probes = p.Kind == ParamKind.Choice ? Enumerable.Range(0, p.Choices.Count).Select(i => (double)i)
            : p.Kind == ParamKind.Int || p.Step != null ? [p.Low, p.High]
            : [p.Low, p.High, p.Log ? Math.Exp(Math.Log(p.Low) + 0.37 * (Math.Log(p.High) - Math.Log(p.Low))) : p.Low + 0.37 * (p.High - p.Low)];
        foreach (double probe in probes)
        {
            try { RecipeLoader.Load(path, [.. overrides ?? [], p.Override(probe)]); }
            catch (RecipeException e) { throw new RecipeException($"{where}: {e.Message}"); }
        }
    }

    /// <summary>True when the recipe at <paramref name="path"/> has a <c>search:</c> section with at least one key.</summary>
    public static bool HasSection(string path, IReadOnlyList<string>? overrides = null) =>
        RecipeLoader.Load(path, overrides).Search is { Count: > 0 };

    /// <summary>The space <c>tasklm tune</c> searches when the recipe has no <c>search:</c> section (docs/tuning.md), the
    /// knobs fine-tuning is most sensitive to, as HF Trainer's default Optuna space and Model Builder offer one:
    /// <c>training.lr</c> log-uniform in [1e-5, 1e-3] (a pretrained encoder's usual rates up to a small model's),
    /// <c>training.batch_size</c> 8, 16 or 32, <c>training.warmup</c> 0, 0.06 or 0.1 of the steps,
    /// <c>training.weight_decay</c> 0, 0.01 or 0.1, and, when the recipe counts epochs (no training.max_steps),
    /// <c>training.epochs</c> 1 to 4. Each key is checked against the recipe like a written one.</summary>
    public static SearchSpace Default(string path, IReadOnlyList<string>? overrides = null)
    {
        var recipe = RecipeLoader.Load(path, overrides);
        var ps = new List<SearchParam>
        {
            new() { Key = "training.lr", Kind = ParamKind.LogUniform, Low = 1e-5, High = 1e-3, Log = true },
            new() { Key = "training.batch_size", Kind = ParamKind.Choice, Choices = ["8", "16", "32"] },
            new() { Key = "training.warmup", Kind = ParamKind.Choice, Choices = ["0.0", "0.06", "0.1"] },
            new() { Key = "training.weight_decay", Kind = ParamKind.Choice, Choices = ["0.0", "0.01", "0.1"] },
        };
        if (recipe.Training.MaxSteps <= 0) ps.Add(new() { Key = "training.epochs", Kind = ParamKind.Int, Low = 1, High = 4, Step = 1 });
        foreach (var p in ps) Check(p, path, overrides, $"{path}: the default search space's {p.Key}");
        return new SearchSpace(ps);
    }

    static SearchParam ParseParam(string key, YamlNode v, string where, int line)
    {
        const string forms = "{choice: [a, b]}, {uniform: [low, high]}, {loguniform: [low, high]} or {int: [low, high], step: 1}";
        if (v is not YamlMappingNode m) throw new RecipeException($"{where}: expected one of {forms}");
        string[] kinds = ["choice", "uniform", "loguniform", "int"];
        string? kind = null; YamlSequenceNode? range = null; double? step = null; bool log = false;
        foreach (var (kk, vv) in m.Children)
        {
            string name = ((YamlScalarNode)kk).Value ?? "";
            if (kinds.Contains(name))
            {
                if (kind != null) throw new RecipeException($"{where}: give one of choice/uniform/loguniform/int, not both '{kind}' and '{name}'");
                kind = name;
                range = vv as YamlSequenceNode ?? throw new RecipeException($"{where}: {name} expects a list, e.g. {forms}");
            }
            else if (name == "step") step = Number(vv, where, "step");
            else if (name == "log") log = vv is YamlScalarNode { Value: "true" or "True" };
            else
            {
                string? near = RecipeLoader.Closest(name, [.. kinds, "step", "log"]);
                throw new RecipeException($"{where}: unknown search key '{name}'" + (near != null ? $"; did you mean '{near}'?" : $"; expected {forms}"));
            }
        }
        if (kind == null || range == null) throw new RecipeException($"{where}: expected one of {forms}");
        if (kind == "choice")
        {
            if (range.Children.Count == 0) throw new RecipeException($"{where}: choice needs at least one value");
            if (step != null || log) throw new RecipeException($"{where}: step/log apply to numeric ranges, not choice");
            return new SearchParam { Key = key, Kind = ParamKind.Choice, Choices = range.Children.Select(YamlText).ToList(), Line = line, High = range.Children.Count - 1 };
        }
        if (range.Children.Count != 2) throw new RecipeException($"{where}: {kind} expects [low, high]");
        double low = Number(range.Children[0], where, "low"), high = Number(range.Children[1], where, "high");
        if (!(low <= high)) throw new RecipeException($"{where}: low {low} is above high {high}");
        var pk = kind switch { "uniform" => ParamKind.Uniform, "loguniform" => ParamKind.LogUniform, _ => ParamKind.Int };
        if (pk == ParamKind.LogUniform) log = true;
        if (log && low <= 0) throw new RecipeException($"{where}: a log-scale range needs low > 0");
        if (pk == ParamKind.Int)
        {
            if (low != Math.Floor(low) || high != Math.Floor(high)) throw new RecipeException($"{where}: int expects whole numbers");
            step ??= 1;
            if (step != Math.Floor(step.Value)) throw new RecipeException($"{where}: int step must be whole");
            if (log && step != 1) throw new RecipeException($"{where}: a log-scale int range needs step 1 (as Optuna)");
        }
        if (step is { } s)
        {
            if (s <= 0) throw new RecipeException($"{where}: step must be positive");
            if (pk == ParamKind.LogUniform) throw new RecipeException($"{where}: loguniform takes no step");
            // As Optuna: high is moved down onto the grid low + k·step.
            high = low + Math.Floor((high - low) / s + 1e-9) * s;
        }
        return new SearchParam { Key = key, Kind = pk, Low = low, High = high, Step = step, Log = log, Line = line };
    }

    static double Number(YamlNode n, string where, string what) =>
        n is YamlScalarNode s && double.TryParse(s.Value, NumberStyles.Float, CultureInfo.InvariantCulture, out double d) ? d
        : throw new RecipeException($"{where}: {what} must be a number");

    // A choice value as the YAML text of an override (flow style for a list).
    static string YamlText(YamlNode n) => n switch
    {
        YamlScalarNode s when s.Style is ScalarStyle.SingleQuoted or ScalarStyle.DoubleQuoted => "\"" + (s.Value ?? "").Replace("\\", "\\\\").Replace("\"", "\\\"") + "\"",
        YamlScalarNode s => s.Value ?? "null",
        YamlSequenceNode q => "[" + string.Join(", ", q.Children.Select(YamlText)) + "]",
        YamlMappingNode mm => "{" + string.Join(", ", mm.Children.Select(kv => YamlText(kv.Key) + ": " + YamlText(kv.Value))) + "}",
        _ => "null",
    };

    /// <summary>One line per parameter, for people.</summary>
    public string Describe()
    {
        var sb = new StringBuilder();
        foreach (var p in Params)
            sb.AppendLine(p.Kind == ParamKind.Choice ? $"{p.Key}: choice of {string.Join(", ", p.Choices)}"
                : $"{p.Key}: {p.Kind.ToString().ToLowerInvariant()} [{p.Low:G4}, {p.High:G4}]" + (p.Step is { } s ? $" step {s:G4}" : "") + (p.Log && p.Kind == ParamKind.Int ? " log" : ""));
        return sb.ToString();
    }
}
