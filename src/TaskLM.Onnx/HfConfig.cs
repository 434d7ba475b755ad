// Typed reads of an HF config.json (no TorchSharp), naming the file and key when a value has the wrong type.
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace TaskLM.Onnx;

/// <summary>An HF config.json as the ONNX side reads it: the few keys graphs and the runner need.</summary>
public sealed class HfConfig
{
    /// <summary>The parsed object.</summary>
    public JsonObject Json { get; }
    /// <summary>The file it came from, for messages.</summary>
    public string Source { get; }

    HfConfig(JsonObject json, string source) { Json = json; Source = source; }

    /// <summary>Reads <c>config.json</c> of a folder.</summary>
    public static HfConfig Load(string folder)
    {
        string path = Path.Combine(folder, "config.json");
        if (!File.Exists(path)) throw new FileNotFoundException($"{folder}: no config.json (not a Hugging Face model folder)", path);
        try { return new HfConfig(JsonNode.Parse(File.ReadAllText(path))!.AsObject(), path); }
        catch (JsonException e) { throw new InvalidDataException($"{path}: invalid JSON: {e.Message}", e); }
    }

    /// <summary>"gpt2" or "bert".</summary>
    public string ModelType => Str("model_type") ?? throw new InvalidDataException($"{Source}: no \"model_type\"");

    /// <summary>The first architectures entry, e.g. GPT2LMHeadModel, BertForQuestionAnswering.</summary>
    public string? Architecture => Json["architectures"] is JsonArray a && a.Count > 0 ? a[0]?.GetValue<string>() : null;

    /// <summary>TaskLM's task name of the architecture (causal-lm, masked-lm, classification, token-classification,
    /// question-answering).</summary>
    public string Task => Architecture switch
    {
        "GPT2LMHeadModel" or "GPT2Model" or "GPT2DoubleHeadsModel" => "causal-lm",
        "GPT2ForSequenceClassification" or "BertForSequenceClassification" => "classification",
        "GPT2ForTokenClassification" or "BertForTokenClassification" => "token-classification",
        "BertForQuestionAnswering" => "question-answering",
        "BertForMaskedLM" or "BertForPreTraining" => "masked-lm",
        null when ModelType == "gpt2" => "causal-lm",
        null => throw new InvalidDataException($"{Source}: no \"architectures\" entry names the task head"),
        var a => throw new NotSupportedException($"{Source}: architecture '{a}' has no ONNX export"),
    };

    /// <summary>Class names by id (id2label), or LABEL_i for num_labels (default 2), as HF.</summary>
    public IReadOnlyList<string> Labels
    {
        get
        {
            if (Json["id2label"] is JsonObject id2 && id2.Count > 0)
                return id2.Select(kv => (id: int.Parse(kv.Key, CultureInfo.InvariantCulture), name: kv.Value!.ToString()))
                    .OrderBy(x => x.id).Select(x => x.name).ToList();
            int n = Int("num_labels") ?? 2;
            return Enumerable.Range(0, n).Select(i => $"LABEL_{i}").ToList();
        }
    }

    public string? Str(string key) => Json[key] switch
    {
        null => null,
        JsonValue v when v.GetValueKind() == JsonValueKind.String => v.GetValue<string>(),
        var v => throw new InvalidDataException($"{Source}: key '{key}' must be a string, got {v.ToJsonString()}"),
    };

    public int? Int(string key) => Json[key] switch
    {
        null => null,
        JsonValue v when v.GetValueKind() == JsonValueKind.Number && double.Parse(v.ToJsonString(), CultureInfo.InvariantCulture) is var d && d == Math.Floor(d) => (int)d,
        var v => throw new InvalidDataException($"{Source}: key '{key}' must be an integer, got {v.ToJsonString()}"),
    };

    public double? Num(string key) => Json[key] switch
    {
        null => null,
        JsonValue v when v.GetValueKind() == JsonValueKind.Number => double.Parse(v.ToJsonString(), CultureInfo.InvariantCulture),
        var v => throw new InvalidDataException($"{Source}: key '{key}' must be a number, got {v.ToJsonString()}"),
    };

    public bool? Bool(string key) => Json[key] switch
    {
        null => null,
        JsonValue v when v.GetValueKind() is JsonValueKind.True or JsonValueKind.False => v.GetValueKind() == JsonValueKind.True,
        var v => throw new InvalidDataException($"{Source}: key '{key}' must be true or false, got {v.ToJsonString()}"),
    };

    /// <summary>An integer the graph cannot be built without.</summary>
    public int Need(string key) => Int(key) ?? throw new InvalidDataException($"{Source}: no \"{key}\"");
}
