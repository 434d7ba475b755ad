// The weights of an HF model folder (model.safetensors, or shards by index) as fp32 arrays, read and written without TorchSharp.
using TaskLM.Hf;

namespace TaskLM.Onnx;

/// <summary>One weight: row-major fp32 values and their shape.</summary>
public sealed record Weight(long[] Shape, float[] Data)
{
    /// <summary>A 2-D weight transposed: (rows, cols) → (cols, rows). Linear's [out, in] becomes MatMul's [in, out].</summary>
    public Weight Transposed()
    {
        if (Shape.Length != 2) throw new InvalidOperationException($"transpose of a {Shape.Length}-D weight");
        long r = Shape[0], c = Shape[1];
        var t = new float[Data.Length];
        for (long i = 0; i < r; i++)
            for (long j = 0; j < c; j++) t[j * r + i] = Data[i * c + j];
        return new Weight([c, r], t);
    }
}

/// <summary>
/// Reads the state dict of an HF folder by Hugging Face's key names, converting F16/BF16/F64 to fp32, through the
/// shared <see cref="SafeTensorsFile"/> reader. Kept free of TorchSharp so that export and the ONNX runner need no libtorch.
/// </summary>
public sealed class HfWeights
{
    readonly Dictionary<string, Weight> _w;
    readonly string _source;

    HfWeights(Dictionary<string, Weight> w, string source) { _w = w; _source = source; }

    /// <summary>Every key, as stored.</summary>
    public IReadOnlyCollection<string> Keys => _w.Keys;

    /// <summary>Loads model.safetensors or the shards a model.safetensors.index.json names.</summary>
    public static HfWeights Load(string folder)
    {
        string single = Path.Combine(folder, "model.safetensors");
        if (File.Exists(single)) return new HfWeights(ReadFile(single), single);
        string index = Path.Combine(folder, "model.safetensors.index.json");
        if (!File.Exists(index))
            throw new FileNotFoundException($"{folder}: no model.safetensors or model.safetensors.index.json (export reads safetensors weights)", single);
        var all = new Dictionary<string, Weight>(StringComparer.Ordinal);
        foreach (string path in SafeTensorsFile.Shards(folder, index))
            foreach (var (k, v) in ReadFile(path)) all[k] = v;
        return new HfWeights(all, index);
    }

    /// <summary>True when the folder holds the key (or it with/without the family prefix, e.g. "transformer.").</summary>
    public bool Has(string key, string prefix = "") => Resolve(key, prefix) is not null;

    /// <summary>The weight of <paramref name="key"/>; checkpoints of a bare base model store keys without
    /// <paramref name="prefix"/> (HF's base_model_prefix), so both spellings are looked up.</summary>
    public Weight Get(string key, string prefix = "")
        => Resolve(key, prefix) ?? throw new InvalidDataException($"{_source}: no tensor '{key}'");

    /// <summary>The weight of <paramref name="key"/> with a shape check, so a wrong config never builds a graph that fails at run time.</summary>
    public Weight Get(string key, string prefix, params long[] shape)
    {
        var w = Get(key, prefix);
        if (!w.Shape.SequenceEqual(shape))
            throw new InvalidDataException($"{_source}: tensor '{key}' has shape [{string.Join(", ", w.Shape)}], config.json implies [{string.Join(", ", shape)}]");
        return w;
    }

    /// <summary>Writes fp32 weights as one safetensors file (keys in the given order; <see cref="SafeTensorsFile.Write"/>).</summary>
    public static void WriteSafetensors(string path, IEnumerable<KeyValuePair<string, Weight>> weights, IReadOnlyDictionary<string, string>? metadata = null) =>
        SafeTensorsFile.Write(path, weights.Select(kv => KeyValuePair.Create(kv.Key, new TensorToWrite("F32", kv.Value.Shape, 4L * kv.Value.Data.Length,
            s => s.Write(System.Runtime.InteropServices.MemoryMarshal.AsBytes(kv.Value.Data.AsSpan()))))), metadata);

    Weight? Resolve(string key, string prefix)
    {
        if (_w.TryGetValue(key, out var w)) return w;
        if (prefix.Length > 0 && key.StartsWith(prefix, StringComparison.Ordinal) && _w.TryGetValue(key[prefix.Length..], out w)) return w;
        return null;
    }

    // Floating-point tensors as fp32; integer buffers (position_ids) are not weights and are skipped unread.
    static Dictionary<string, Weight> ReadFile(string path)
    {
        var result = new Dictionary<string, Weight>(StringComparer.Ordinal);
        foreach (var (name, raw) in SafeTensorsFile.Read(path, out _, dt => dt is "F32" or "F16" or "BF16" or "F64"))
        {
            long n = raw.Count;
            byte[] buf = raw.Data;
            var data = new float[n];
            switch (raw.DType)
            {
                case "F32": Buffer.BlockCopy(buf, 0, data, 0, buf.Length); break;
                case "F16": for (long i = 0; i < n; i++) data[i] = (float)BitConverter.ToHalf(buf, (int)(2 * i)); break;
                case "BF16": for (long i = 0; i < n; i++) data[i] = BitConverter.Int32BitsToSingle(BitConverter.ToUInt16(buf, (int)(2 * i)) << 16); break;
                case "F64": for (long i = 0; i < n; i++) data[i] = (float)BitConverter.ToDouble(buf, (int)(8 * i)); break;
            }
            result[name] = new Weight(raw.Shape, data);
        }
        return result;
    }
}
