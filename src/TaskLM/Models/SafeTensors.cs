// Reads and writes the safetensors format (Hugging Face's model.safetensors) to and from TorchSharp tensors.
using TaskLM.Hf;
using TorchSharp;
using static TorchSharp.torch;

namespace TaskLM.Models;

/// <summary>safetensors files as TorchSharp tensors: the format itself is <see cref="SafeTensorsFile"/>'s (shared with
/// the libtorch-free ONNX side); this maps its dtype names to TorchSharp's.</summary>
public static class SafeTensors
{
    static readonly Dictionary<string, ScalarType> DTypes = new()
    {
        ["F64"] = ScalarType.Float64, ["F32"] = ScalarType.Float32, ["F16"] = ScalarType.Float16,
        ["BF16"] = ScalarType.BFloat16, ["I64"] = ScalarType.Int64, ["I32"] = ScalarType.Int32,
        ["I16"] = ScalarType.Int16, ["I8"] = ScalarType.Int8, ["U8"] = ScalarType.Byte, ["BOOL"] = ScalarType.Bool,
    };

    /// <summary>Loads every tensor of a file onto the CPU, keeping its dtype. The caller owns the tensors.</summary>
    public static Dictionary<string, Tensor> Load(string path) => Load(path, out _);

    /// <summary>Loads every tensor and the <c>__metadata__</c> strings of a file.</summary>
    public static Dictionary<string, Tensor> Load(string path, out Dictionary<string, string> metadata)
    {
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (name, raw) in SafeTensorsFile.Read(path, out metadata))
        {
            var t = empty(raw.Shape, DTypes[raw.DType]);
            if (raw.Data.Length > 0) t.bytes = raw.Data;
            result[name] = t;
        }
        return result;
    }

    /// <summary>Writes tensors (any device; copied to CPU, made contiguous) in name order, atomically:
    /// a temporary file renamed into place, so a crash never leaves a half-written file.</summary>
    public static void Save(string path, IEnumerable<KeyValuePair<string, Tensor>> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        using var scope = NewDisposeScope();
        var items = new List<KeyValuePair<string, TensorToWrite>>();
        foreach (var (name, tensor) in tensors.OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            var t = tensor.detach().cpu().contiguous();
            string dt = DTypes.FirstOrDefault(p => p.Value == t.dtype).Key
                ?? throw new ArgumentException($"tensor '{name}': dtype {t.dtype} cannot be written to safetensors");
            items.Add(KeyValuePair.Create(name, new TensorToWrite(dt, t.shape, t.NumberOfElements * t.ElementSize, s => s.Write(t.bytes))));
        }
        SafeTensorsFile.Write(path, items, metadata);
    }
}
