// Hugging Face model folders: config.json plus weights (model.safetensors, sharded safetensors index).
using System.Text.Json.Nodes;
using static TorchSharp.torch;

namespace TaskLM.Models;

/// <summary>Reads the raw pieces of an HF model folder. Mapping weights onto a model (renames, Conv1D
/// transposes, tied weights, missing/unexpected reports) is each model family's job.</summary>
public static class HfCheckpoint
{
    /// <summary>Parses <c>config.json</c> of a model folder.</summary>
    public static JsonObject LoadConfig(string folder)
    {
        string path = Path.Combine(folder, "config.json");
        if (!File.Exists(path)) throw new FileNotFoundException($"{folder}: no config.json (not a Hugging Face model folder)", path);
        try { return JsonNode.Parse(File.ReadAllText(path))!.AsObject(); }
        catch (System.Text.Json.JsonException e) { throw new InvalidDataException($"{path}: invalid JSON: {e.Message}", e); }
    }

    /// <summary>Loads the state dict of a folder: <c>model.safetensors</c>, or the shards named by
    /// <c>model.safetensors.index.json</c>. CPU tensors in their stored dtype; the caller owns them.</summary>
    public static Dictionary<string, Tensor> LoadStateDict(string folder)
    {
        string single = Path.Combine(folder, "model.safetensors");
        if (File.Exists(single)) return SafeTensors.Load(single);
        string index = Path.Combine(folder, "model.safetensors.index.json");
        if (File.Exists(index))
        {
            var map = JsonNode.Parse(File.ReadAllText(index))!["weight_map"]!.AsObject();
            var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
            foreach (string shard in map.Select(kv => kv.Value!.GetValue<string>()).Distinct())
                foreach (var (k, v) in SafeTensors.Load(Path.Combine(folder, shard))) result[k] = v;
            return result;
        }
        throw new FileNotFoundException($"{folder}: no model.safetensors or model.safetensors.index.json");
    }
}
