// Hugging Face model folders: config.json plus weights (model.safetensors, sharded safetensors index).
using System.Text.Json.Nodes;
using TaskLM.Hf;
using TorchSharp;
using static TorchSharp.torch;

namespace TaskLM.Models;

/// <summary>Reads and writes the pieces of an HF model folder, and holds the one loader that maps a checkpoint
/// onto any family's model (the family answers the renames, Conv1D layout and tied weights).</summary>
public static class HfCheckpoint
{
    /// <summary>Parses <c>config.json</c> of a model folder.</summary>
    public static JsonObject LoadConfig(string folder) => HfConfig.Load(folder).Json;

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
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (string path in SafeTensorsFile.Shards(folder, index))
            foreach (var (k, v) in load(path)) result[k] = v;
        return result;
    }

    /// <summary>Writes config.json (indented, as HF writes it) atomically.</summary>
    public static void WriteConfig(string folder, JsonObject config) => HfConfig.Write(folder, config);

    /// <summary>
    /// The one loader: copies an HF state dict into a model's parameters and buffers, in HF's terms. Keys are
    /// renamed by the family (<see cref="ModelFamily.MapCheckpointKey"/>); a checkpoint of the bare body
    /// (no key under the base-model prefix) is prefixed; tied weights the model does not hold are skipped;
    /// Conv1D weights are transposed; tensors are converted to the parameter's dtype (fp16/bf16 checkpoints).
    /// A head weight of another shape (a classifier for another number of labels) is left to be initialised
    /// and reported; a body weight of another shape is an error. Nothing is initialised here: the caller
    /// initialises <see cref="LoadReport.NewlyInitialised"/>.
    /// </summary>
    public static LoadReport LoadInto(PreTrainedModel model, IReadOnlyDictionary<string, Tensor> checkpoint, string source)
    {
        var family = model.Family;
        string prefix = family.BaseModelPrefix + ".";
        var target = model.state_dict();
        var keys = checkpoint.Keys.ToHashSet(StringComparer.Ordinal);
        bool bare = !keys.Any(k => k.StartsWith(prefix, StringComparison.Ordinal));
        var loaded = new HashSet<string>(StringComparer.Ordinal);
        var unexpected = new List<string>();
        var bodyUnexpected = new List<string>();
        var mismatched = new List<string>();
        var shapes = new List<string>();
        var converted = new SortedSet<string>(StringComparer.Ordinal);
        using var noGrad = no_grad();
        foreach (var (key, tensor) in checkpoint)
        {
            string? k = family.MapCheckpointKey(key, keys);
            if (k is null) continue;
            if (bare && !target.ContainsKey(k) && !family.TiedWeightKeys.Contains(k)) k = prefix + k;
            if (!target.TryGetValue(k, out var dest))
            {
                if (family.TiedWeightKeys.Contains(k)) continue;   // tie_word_embeddings: the model uses the embedding
                unexpected.Add(key);
                if (!family.IsHead(k)) bodyUnexpected.Add(key);
                continue;
            }
            using var scope = NewDisposeScope();
            var value = family.IsConv1DWeight(k) ? tensor.t() : tensor;
            if (!dest.shape.SequenceEqual(value.shape))
            {
                string what = $"{k}: found shape [{string.Join(", ", value.shape)}] in the checkpoint and [{string.Join(", ", dest.shape)}] in the model instantiated";
                if (!family.IsHead(k)) throw new InvalidDataException($"{source}: size mismatch for {what} (config.json does not describe these weights)");
                mismatched.Add(k);
                shapes.Add(what);
                continue;
            }
            if (value.dtype != dest.dtype) converted.Add($"{value.dtype}->{dest.dtype}");
            dest.copy_(value);
            loaded.Add(k);
        }
        var missing = target.Keys.Where(k => !loaded.Contains(k) && !mismatched.Contains(k)).OrderBy(k => k, StringComparer.Ordinal).ToList();
        unexpected.Sort(StringComparer.Ordinal);
        bodyUnexpected.Sort(StringComparer.Ordinal);
        mismatched.Sort(StringComparer.Ordinal);
        return new LoadReport(source, missing, unexpected, mismatched, converted.ToList())
        {
            Architecture = model.Architecture,
            MismatchedShapes = shapes,
            BodyMissing = missing.Where(k => !family.IsHead(k)).ToList(),
            BodyUnexpected = bodyUnexpected,
            ModelLayers = target.Keys.Select(family.LayerOf).DefaultIfEmpty(-1).Max() + 1,
            CheckpointLayers = keys.Select(family.LayerOf).DefaultIfEmpty(-1).Max() + 1,
        };
    }
}

/// <summary>What loading a checkpoint into a model did, in the terms of HF's from_pretrained warnings.</summary>
/// <param name="Source">The folder or file the weights came from.</param>
/// <param name="Missing">Model weights the checkpoint did not have (e.g. a new "score.weight" head).</param>
/// <param name="Unexpected">Checkpoint keys the model has no place for (ignored), as the checkpoint names them.</param>
/// <param name="Mismatched">Model weights whose checkpoint shape differed (a head with other labels).</param>
/// <param name="Conversions">dtype conversions done, e.g. "Float16->Float32".</param>
public sealed record LoadReport(string Source, IReadOnlyList<string> Missing, IReadOnlyList<string> Unexpected,
    IReadOnlyList<string> Mismatched, IReadOnlyList<string> Conversions)
{
    /// <summary>HF's class name of the model loaded (for the messages).</summary>
    public string Architecture { get; init; } = "the model";
    /// <summary>"key: found shape [..] in the checkpoint and [..] in the model instantiated", per mismatched key.</summary>
    public IReadOnlyList<string> MismatchedShapes { get; init; } = [];
    /// <summary>Missing weights of the body (under the base-model prefix): the checkpoint does not fill the
    /// model config.json describes (more layers than saved, a removed tensor).</summary>
    public IReadOnlyList<string> BodyMissing { get; init; } = [];
    /// <summary>Unexpected checkpoint keys that belong to the body (layers config.json does not have).</summary>
    public IReadOnlyList<string> BodyUnexpected { get; init; } = [];

    /// <summary>Numbered layers the model built from config.json has, and the checkpoint holds.</summary>
    public int ModelLayers { get; init; }
    public int CheckpointLayers { get; init; }

    /// <summary>Missing plus shape-mismatched weights: those initialised fresh (as HF's _init_weights draws them).</summary>
    public IReadOnlyList<string> NewlyInitialised => Missing.Concat(Mismatched).OrderBy(k => k, StringComparer.Ordinal).ToList();

    /// <summary>True when every weight came from the checkpoint and nothing was left over.</summary>
    public bool IsExact => Missing.Count == 0 && Unexpected.Count == 0 && Mismatched.Count == 0;

    /// <summary>True when the body is exactly the checkpoint's (a new or resized head is allowed).</summary>
    public bool BodyComplete => BodyMissing.Count == 0 && BodyUnexpected.Count == 0;

    /// <summary>HF's warning lines, one per kind (empty when exact).</summary>
    public IEnumerable<string> Warnings()
    {
        if (Unexpected.Count > 0)
            yield return $"Some weights of the model checkpoint at {Source} were not used when initializing {Architecture}: [{string.Join(", ", Unexpected)}]. This IS expected if the checkpoint was trained on another task or with another architecture.";
        if (Missing.Count > 0)
            yield return $"Some weights of {Architecture} were not initialized from the model checkpoint at {Source} and are newly initialized: [{string.Join(", ", Missing)}]. You should probably TRAIN this model on a down-stream task to be able to use it for predictions and inference.";
        if (Mismatched.Count > 0)
            yield return $"Some weights of {Architecture} were not initialized from the model checkpoint at {Source} and are newly initialized because the shapes did not match: [{string.Join("; ", MismatchedShapes)}]. You should probably TRAIN this model on a down-stream task to be able to use it for predictions and inference.";
    }

    /// <summary>The warnings, or HF's "All the weights ... were initialized" line.</summary>
    public override string ToString() => IsExact
        ? $"All the weights of {Architecture} were initialized from the model checkpoint at {Source}."
        : string.Join(Environment.NewLine, Warnings());

    /// <summary>For inference (logits, generate, evaluate, predict, serve): refuses a model whose body the
    /// checkpoint does not fill exactly, naming the keys; with <paramref name="allowNewHead"/> false, also one
    /// whose head is newly initialised (its outputs would be random).</summary>
    public void EnsureUsableForInference(bool allowNewHead = false)
    {
        string Keys(IReadOnlyList<string> k) => string.Join(", ", k.Take(4)) + (k.Count > 4 ? $", ... ({k.Count} in all)" : "");
        string hint = ModelLayers != CheckpointLayers
            ? $"config.json describes {ModelLayers} layers, the checkpoint holds {CheckpointLayers}"
            : "check config.json against the weights file";
        if (BodyMissing.Count > 0)
            throw new ModelWeightsException($"{Source}: the checkpoint lacks {BodyMissing.Count} weight(s) of the model config.json describes: {Keys(BodyMissing)}; {hint}");
        if (BodyUnexpected.Count > 0)
            throw new ModelWeightsException($"{Source}: the checkpoint holds {BodyUnexpected.Count} weight(s) the model config.json describes has no place for: {Keys(BodyUnexpected)}; {hint}");
        if (!allowNewHead && NewlyInitialised.Count > 0)
            throw new ModelWeightsException($"{Source}: {Architecture}'s head is not in the checkpoint (newly initialized: {Keys(NewlyInitialised)}); train it first, or choose the task the checkpoint was saved for");
    }
}

/// <summary>A checkpoint that does not fill the model its config.json describes.</summary>
public sealed class ModelWeightsException(string message) : IOException(message);
