// generation_config.json as Hugging Face writes it beside config.json: read once, and the stop ids it and config.json give.
using System.Text.Json;
using System.Text.Json.Nodes;

namespace TaskLM.Data.Hub;

/// <summary>
/// A model folder's <c>generation_config.json</c> (HF's GenerationConfig) and the end-of-sequence ids decoding stops at.
/// Both files may give <c>eos_token_id</c> as one id or a list (Llama 3 instruct: [128001, 128008, 128009]); a chat
/// model's turn-end token is often only in generation_config.json. TorchSharp-free: the torch models and the ONNX
/// runtime read it the same way.
/// </summary>
public static class GenerationConfig
{
    /// <summary>The file name HF uses.</summary>
    public const string FileName = "generation_config.json";

    /// <summary>The folder's generation_config.json, or null when it has none. Invalid JSON is an error naming the file.</summary>
    public static JsonObject? Read(string folder)
    {
        string path = Path.Combine(folder, FileName);
        if (!File.Exists(path)) return null;
        try
        {
            return JsonNode.Parse(File.ReadAllText(path)) as JsonObject
                ?? throw new InvalidDataException($"{path}: expected a JSON object");
        }
        catch (JsonException e) { throw new InvalidDataException($"{path}: invalid JSON: {e.Message}", e); }
    }

    /// <summary>The ids of <paramref name="key"/> in <paramref name="json"/>: an integer, a list of integers, or absent/null
    /// (none). Anything else is an error naming <paramref name="source"/> and the key.</summary>
    public static List<int> Ids(JsonObject? json, string key, string source)
    {
        var ids = new List<int>();
        if (json is null || !json.TryGetPropertyValue(key, out var node) || node is null) return ids;
        foreach (var item in node is JsonArray a ? a.ToList() : [node])
        {
            if (item is JsonValue v && v.GetValueKind() == JsonValueKind.Number && v.TryGetValue(out int id) && id >= 0) ids.Add(id);
            else if (item is not null)
                throw new InvalidDataException($"{source}: {key} must be a token id or a list of token ids, got {node.ToJsonString()}");
        }
        return ids;
    }

    /// <summary>Where decoding stops: config.json's eos_token_id (each one when a list), then generation_config.json's
    /// (int or list), without repeats. <paramref name="folder"/> names the files in errors.</summary>
    public static IReadOnlyList<int> EosTokenIds(JsonObject config, JsonObject? generationConfig, string folder = "") =>
        Ids(config, "eos_token_id", Path.Combine(folder, "config.json"))
            .Concat(Ids(generationConfig, "eos_token_id", Path.Combine(folder, FileName))).Distinct().ToList();
}
