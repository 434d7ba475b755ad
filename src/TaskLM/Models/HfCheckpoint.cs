// Hugging Face model folders: config.json plus weights (model.safetensors, sharded safetensors index).
using System.Text.Json.Nodes;
using TorchSharp;
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

    /// <summary>Loads the state dict of a folder: <c>model.safetensors</c>, the shards named by
    /// <c>model.safetensors.index.json</c>, or else PyTorch's <c>pytorch_model.bin</c> (or its
    /// <c>pytorch_model.bin.index.json</c> shards). CPU tensors in their stored dtype; the caller owns them.</summary>
    public static Dictionary<string, Tensor> LoadStateDict(string folder)
    {
        string single = Path.Combine(folder, "model.safetensors");
        if (File.Exists(single)) return SafeTensors.Load(single);
        string index = Path.Combine(folder, "model.safetensors.index.json");
        if (File.Exists(index)) return LoadSharded(folder, index, SafeTensors.Load);
        string bin = Path.Combine(folder, "pytorch_model.bin");
        if (File.Exists(bin)) return TorchPickle.LoadStateDict(bin);
        string binIndex = Path.Combine(folder, "pytorch_model.bin.index.json");
        if (File.Exists(binIndex)) return LoadSharded(folder, binIndex, TorchPickle.LoadStateDict);
        throw new FileNotFoundException($"{folder}: no model.safetensors, model.safetensors.index.json, pytorch_model.bin or pytorch_model.bin.index.json");
    }

    static Dictionary<string, Tensor> LoadSharded(string folder, string index, Func<string, Dictionary<string, Tensor>> load)
    {
        JsonObject map;
        try { map = JsonNode.Parse(File.ReadAllText(index))!["weight_map"]?.AsObject() ?? throw new InvalidDataException($"{index}: no \"weight_map\""); }
        catch (System.Text.Json.JsonException e) { throw new InvalidDataException($"{index}: invalid JSON: {e.Message}", e); }
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (string shard in map.Select(kv => kv.Value!.GetValue<string>()).Distinct())
        {
            string path = Path.Combine(folder, shard);
            if (!File.Exists(path)) throw new FileNotFoundException($"{index}: shard '{shard}' is missing", path);
            foreach (var (k, v) in load(path)) result[k] = v;
        }
        return result;
    }

    /// <summary>Writes config.json (indented, as HF writes it) atomically.</summary>
    public static void WriteConfig(string folder, JsonObject config)
    {
        Directory.CreateDirectory(folder);
        string path = Path.Combine(folder, "config.json"), tmp = path + ".tmp";
        File.WriteAllText(tmp, config.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }) + "\n");
        File.Move(tmp, path, overwrite: true);
    }

    /// <summary>
    /// Copies an HF state dict into a module's parameters and buffers. <paramref name="map"/> turns each
    /// checkpoint key/tensor into the module's key/tensor (renames, transposes) or null to skip it silently
    /// (tied or obsolete keys). Tensors are converted to the parameter's dtype (fp16/bf16 checkpoints).
    /// A shape mismatch is an error unless <paramref name="allowShapeMismatch"/> accepts the key (a task
    /// head with another number of labels): that parameter is then left newly initialised.
    /// </summary>
    public static LoadReport LoadInto(nn.Module module, IReadOnlyDictionary<string, Tensor> checkpoint,
        Func<string, Tensor, (string key, Tensor value)?> map, string source, Func<string, bool>? allowShapeMismatch = null)
    {
        var target = module.state_dict();
        var loaded = new HashSet<string>(StringComparer.Ordinal);
        var unexpected = new List<string>();
        var mismatched = new List<string>();
        var converted = new SortedSet<string>(StringComparer.Ordinal);
        using var noGrad = no_grad();
        foreach (var (key, tensor) in checkpoint)
        {
            using var scope = NewDisposeScope();
            var m = map(key, tensor);
            if (m is null) continue;
            var (name, value) = m.Value;
            if (!target.TryGetValue(name, out var dest)) { unexpected.Add(key); continue; }
            if (!dest.shape.SequenceEqual(value.shape))
            {
                string what = $"{name}: checkpoint shape [{string.Join(", ", value.shape)}], model [{string.Join(", ", dest.shape)}]";
                if (allowShapeMismatch?.Invoke(name) == true) { mismatched.Add(what); continue; }
                throw new InvalidDataException($"{source}: size mismatch for {what}");
            }
            if (value.dtype != dest.dtype) converted.Add($"{value.dtype}->{dest.dtype}");
            dest.copy_(value);
            loaded.Add(name);
        }
        var missing = target.Keys.Where(k => !loaded.Contains(k)).OrderBy(k => k, StringComparer.Ordinal).ToList();
        return new LoadReport(source, missing, unexpected, mismatched, converted.ToList());
    }
}

/// <summary>What loading a checkpoint into a model did, in the terms HF's warnings use.</summary>
/// <param name="Source">The folder or file the weights came from.</param>
/// <param name="NewlyInitialised">Model parameters the checkpoint did not have (e.g. a new "score.weight"
/// head): they keep their random initialisation.</param>
/// <param name="Unexpected">Checkpoint keys the model has no place for (ignored).</param>
/// <param name="Mismatched">Keys whose shape differed (a head with other labels): newly initialised too.</param>
/// <param name="Conversions">dtype conversions done, e.g. "Float16->Float32".</param>
public sealed record LoadReport(string Source, IReadOnlyList<string> NewlyInitialised, IReadOnlyList<string> Unexpected,
    IReadOnlyList<string> Mismatched, IReadOnlyList<string> Conversions)
{
    /// <summary>True when every parameter came from the checkpoint and nothing was left over.</summary>
    public bool IsExact => NewlyInitialised.Count == 0 && Unexpected.Count == 0 && Mismatched.Count == 0;

    /// <summary>HF-style warning lines (empty when exact).</summary>
    public IEnumerable<string> Warnings()
    {
        if (NewlyInitialised.Count > 0)
            yield return $"Some weights were not initialized from the checkpoint at {Source} and are newly initialized: [{string.Join(", ", NewlyInitialised)}]. Train the model before using it for predictions.";
        if (Mismatched.Count > 0)
            yield return $"Some weights had other shapes in the checkpoint at {Source} and are newly initialized: [{string.Join("; ", Mismatched)}]";
        if (Unexpected.Count > 0)
            yield return $"Some weights of the checkpoint at {Source} were not used: [{string.Join(", ", Unexpected)}]";
    }
}
