// config.json of a Hugging Face model folder, read once with types (no TorchSharp): errors name the file and key.
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace TaskLM.Hf;

/// <summary>
/// The one config.json reader, for the TorchSharp families, the ONNX exporter, importer and runner, and the Hub
/// client: typed values that name the file and key on a wrong type (numbers written as strings, as YAML overrides
/// give them, are accepted), the keys every family shares under one name (<see cref="MaxPositions"/>,
/// <see cref="PadTokenId"/>, <see cref="Architectures"/>, <see cref="Task"/>), and HF's label rules.
/// The static readers take any JSON object (a nested rope_scaling, a recipe's overrides).
/// </summary>
public sealed class HfConfig
{
    /// <summary>The file name in a model folder.</summary>
    public const string FileName = "config.json";

    /// <summary>The parsed object.</summary>
    public JsonObject Json { get; }
    /// <summary>The file it came from, for messages.</summary>
    public string Source { get; }

    /// <summary>A config object already in memory; <paramref name="source"/> names it in errors.</summary>
    public HfConfig(JsonObject json, string source = FileName) { Json = json; Source = source; }

    /// <summary>Reads <c>config.json</c> of a folder.</summary>
    public static HfConfig Load(string folder)
    {
        string path = Path.Combine(folder, FileName);
        if (!File.Exists(path)) throw new FileNotFoundException($"{folder}: no config.json (not a Hugging Face model folder)", path);
        try { return new HfConfig(JsonNode.Parse(File.ReadAllText(path))!.AsObject(), path); }
        catch (JsonException e) { throw new InvalidDataException($"{path}: invalid JSON: {e.Message}", e); }
    }

    /// <summary>Writes config.json (indented, as HF writes it) atomically.</summary>
    public static void Write(string folder, JsonObject config)
    {
        Directory.CreateDirectory(folder);
        string path = Path.Combine(folder, FileName), tmp = path + ".tmp";
        File.WriteAllText(tmp, config.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
        File.Move(tmp, path, overwrite: true);
    }

    // ---- the keys every family shares ----

    /// <summary>model_type ("gpt2", "bert", "llama", ...); an error when absent.</summary>
    public string ModelType => Str("model_type") ?? throw new InvalidDataException($"{Source}: no \"model_type\"");

    /// <summary>The architectures entries (HF class names, e.g. GPT2LMHeadModel), empty when none.</summary>
    public IReadOnlyList<string> Architectures => ArchitecturesOf(Json);

    /// <summary>The first architectures entry, or null.</summary>
    public string? Architecture => Architectures.Count > 0 ? Architectures[0] : null;

    /// <summary>TaskLM's task of the first architecture (<see cref="HfFamilies"/>): causal-lm, masked-lm,
    /// classification, token-classification, question-answering.</summary>
    public string Task
    {
        get
        {
            var family = HfFamilies.Find(Str("model_type"));
            return Architecture switch
            {
                null => family?.TaskOf(null) ?? throw new InvalidDataException($"{Source}: no \"architectures\" entry names the task head"),
                var a => family?.TaskOf(a) ?? HfFamilies.All.Select(f => f.TaskOf(a)).FirstOrDefault(t => t != null)
                    ?? throw new NotSupportedException($"{Source}: architecture '{a}' has no task head in TaskLM"),
            };
        }
    }

    /// <summary>The longest input the position table takes: n_positions (GPT-2), else max_position_embeddings, else
    /// n_ctx; null when the config names none.</summary>
    public int? MaxPositions => MaxPositionsOf(Json, Source);

    /// <summary>pad_token_id, or null.</summary>
    public int? PadTokenId => Int("pad_token_id");

    /// <summary>vocab_size: rows of the input embedding (ids must stay below it), or null.</summary>
    public int? VocabSize => VocabSizeOf(Json, Source);

    /// <summary>Class names by id (id2label), or LABEL_i for num_labels (default 2), as HF's PretrainedConfig.</summary>
    public IReadOnlyList<string> Labels => LabelsOf(Json, Source) ?? DefaultLabels(Int("num_labels") ?? 2);

    // ---- typed reads of this config ----

    public string? Str(string key) => Str(Json, key, Source);
    public int? Int(string key) => Int(Json, key, Source);
    public double? Num(string key) => Num(Json, key, Source);
    public bool? Bool(string key) => Bool(Json, key, Source);

    /// <summary>An integer the model cannot be built without.</summary>
    public int Need(string key) => Int(key) ?? throw new InvalidDataException($"{Source}: no \"{key}\"");

    // ---- typed reads of any config object ----

    static JsonNode? Node(JsonObject j, string key) => j.TryGetPropertyValue(key, out var v) ? v : null;

    // A JSON number (parsed or built from any CLR numeric type), or a string holding one.
    static double? AsNumber(JsonValue v) => v.GetValueKind() switch
    {
        JsonValueKind.Number => double.Parse(v.ToJsonString(), NumberStyles.Float, CultureInfo.InvariantCulture),
        JsonValueKind.String when double.TryParse(v.GetValue<string>(), NumberStyles.Float, CultureInfo.InvariantCulture, out double d) => d,
        _ => null,
    };

    /// <summary>An integer key, null when absent or JSON null.</summary>
    public static int? Int(JsonObject j, string key, string source)
    {
        var v = Node(j, key);
        if (v is null) return null;
        if (v is JsonValue jv && AsNumber(jv) is double d && d == Math.Floor(d) && Math.Abs(d) <= int.MaxValue) return (int)d;
        throw new InvalidDataException($"{source}: key '{key}' must be an integer, got {v.ToJsonString()}");
    }

    /// <summary>A number key, null when absent or JSON null.</summary>
    public static double? Num(JsonObject j, string key, string source)
    {
        var v = Node(j, key);
        if (v is null) return null;
        if (v is JsonValue jv && AsNumber(jv) is double d) return d;
        throw new InvalidDataException($"{source}: key '{key}' must be a number, got {v.ToJsonString()}");
    }

    /// <summary>A boolean key, null when absent or JSON null.</summary>
    public static bool? Bool(JsonObject j, string key, string source)
    {
        var v = Node(j, key);
        if (v is null) return null;
        if (v is JsonValue jv && jv.GetValueKind() is JsonValueKind.True or JsonValueKind.False) return jv.GetValueKind() == JsonValueKind.True;
        if (v is JsonValue sv && sv.GetValueKind() == JsonValueKind.String && bool.TryParse(sv.GetValue<string>(), out bool b)) return b;
        throw new InvalidDataException($"{source}: key '{key}' must be true or false, got {v.ToJsonString()}");
    }

    /// <summary>A string key, null when absent or JSON null.</summary>
    public static string? Str(JsonObject j, string key, string source)
    {
        var v = Node(j, key);
        if (v is null) return null;
        if (v is JsonValue jv && jv.GetValueKind() == JsonValueKind.String) return jv.GetValue<string>();
        throw new InvalidDataException($"{source}: key '{key}' must be a string, got {v.ToJsonString()}");
    }

    /// <summary>The architectures entries of a config object, empty when none.</summary>
    public static IReadOnlyList<string> ArchitecturesOf(JsonObject json) =>
        json["architectures"] is JsonArray a ? a.Select(x => x?.ToString() ?? "").ToList() : [];

    /// <summary><see cref="MaxPositions"/> of a config object.</summary>
    public static int? MaxPositionsOf(JsonObject json, string source = FileName) =>
        Int(json, "n_positions", source) ?? Int(json, "max_position_embeddings", source) ?? Int(json, "n_ctx", source);

    /// <summary>pad_token_id of a config object, or null.</summary>
    public static int? PadTokenIdOf(JsonObject json, string source = FileName) => Int(json, "pad_token_id", source);

    /// <summary><see cref="VocabSize"/> of a config object.</summary>
    public static int? VocabSizeOf(JsonObject json, string source = FileName) => Int(json, "vocab_size", source);

    // ---- labels ----

    /// <summary>Generated label names LABEL_0..LABEL_{n-1}, as HF makes them.</summary>
    public static List<string> DefaultLabels(int n) => Enumerable.Range(0, n).Select(i => $"LABEL_{i}").ToList();

    /// <summary>The label names of a config (id2label wins over num_labels, as in HF's PretrainedConfig; a plain
    /// list of names is accepted from recipe overrides), or null when it names none.</summary>
    public static List<string>? LabelsOf(JsonObject json, string source)
    {
        if (json["id2label"] is JsonObject id2label && id2label.Count > 0)
        {
            var names = new string[id2label.Count];
            foreach (var (k, v) in id2label)
            {
                if (!int.TryParse(k, NumberStyles.Integer, CultureInfo.InvariantCulture, out int id) || id < 0 || id >= names.Length)
                    throw new InvalidDataException($"{source}: id2label key '{k}' is not an id in 0..{names.Length - 1}");
                names[id] = v?.ToString() ?? throw new InvalidDataException($"{source}: id2label['{k}'] is null");
            }
            return names.ToList();
        }
        if (json["id2label"] is JsonArray list && list.Count > 0)
            return list.Select(v => v?.ToString() ?? throw new InvalidDataException($"{source}: id2label holds null")).ToList();
        if (Int(json, "num_labels", source) is int n)
        {
            if (n < 1) throw new InvalidDataException($"{source}: num_labels must be at least 1, got {n}");
            return DefaultLabels(n);
        }
        return null;
    }

    /// <summary>Sets a config's classes from label names and/or a count (HF's num_labels / id2label kwargs of
    /// from_pretrained): id2label and label2id are rewritten, num_labels removed (HF derives it).</summary>
    public static void SetLabels(JsonObject json, int? numLabels, IReadOnlyList<string>? labels)
    {
        if (labels == null && numLabels == null) return;
        if (labels != null)
        {
            if (numLabels != null && numLabels != labels.Count) throw new ArgumentException($"{labels.Count} labels given but num_labels = {numLabels}");
            if (labels.Count < 1) throw new ArgumentException("the label list is empty");
        }
        else if (numLabels < 1) throw new ArgumentException($"num_labels must be at least 1, got {numLabels}");
        var names = labels?.ToList() ?? DefaultLabels(numLabels!.Value);
        if (labels == null && LabelsOf(json, FileName) is { } current && current.Count == names.Count) return; // same count: keep the names
        var id2 = new JsonObject();
        var l2i = new JsonObject();
        for (int i = 0; i < names.Count; i++) { id2[i.ToString(CultureInfo.InvariantCulture)] = names[i]; l2i[names[i]] = i; }
        json["id2label"] = id2;
        json["label2id"] = l2i;
        json.Remove("num_labels");
    }
}
