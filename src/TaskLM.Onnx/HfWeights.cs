// The weights of an HF model folder (model.safetensors, or shards by index) as fp32 arrays, read and written without TorchSharp.
using System.Text.Json.Nodes;

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
/// Reads the state dict of an HF folder by Hugging Face's key names, converting F16/BF16/F64 to fp32.
/// safetensors: an 8-byte little-endian header length N, N bytes of JSON naming each tensor's dtype, shape
/// and byte range, then the raw data. Kept free of TorchSharp so that export and the ONNX runner need no libtorch.
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
        JsonObject map;
        try { map = JsonNode.Parse(File.ReadAllText(index))?["weight_map"]?.AsObject() ?? throw new InvalidDataException($"{index}: no \"weight_map\""); }
        catch (System.Text.Json.JsonException e) { throw new InvalidDataException($"{index}: invalid JSON: {e.Message}", e); }
        var all = new Dictionary<string, Weight>(StringComparer.Ordinal);
        foreach (string shard in map.Select(kv => kv.Value!.GetValue<string>()).Distinct())
        {
            string path = Path.Combine(folder, shard);
            if (!File.Exists(path)) throw new FileNotFoundException($"{index}: shard '{shard}' is missing", path);
            foreach (var (k, v) in ReadFile(path)) all[k] = v;
        }
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

    /// <summary>Writes fp32 weights as one safetensors file (keys in the given order, data contiguous, the header
    /// padded with spaces to 8 bytes as Hugging Face's writer does). Written to a temporary name and renamed.</summary>
    public static void WriteSafetensors(string path, IEnumerable<KeyValuePair<string, Weight>> weights, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var list = weights.ToList();
        var header = new JsonObject();
        if (metadata is { Count: > 0 }) header["__metadata__"] = new JsonObject(metadata.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)kv.Value)));
        long offset = 0;
        foreach (var (name, w) in list)
        {
            long bytes = 4L * w.Data.Length;
            header[name] = new JsonObject
            {
                ["dtype"] = "F32", ["shape"] = new JsonArray(w.Shape.Select(d => (JsonNode)d).ToArray()),
                ["data_offsets"] = new JsonArray(offset, offset + bytes),
            };
            offset += bytes;
        }
        byte[] json = System.Text.Encoding.UTF8.GetBytes(header.ToJsonString());
        int padded = (json.Length + 7) / 8 * 8;
        string tmp = path + ".tmp";
        using (var fs = File.Create(tmp))
        {
            fs.Write(BitConverter.GetBytes((long)padded));
            fs.Write(json);
            for (int i = json.Length; i < padded; i++) fs.WriteByte((byte)' ');
            foreach (var (_, w) in list) fs.Write(System.Runtime.InteropServices.MemoryMarshal.AsBytes(w.Data.AsSpan()));
        }
        File.Move(tmp, path, overwrite: true);
    }

    Weight? Resolve(string key, string prefix)
    {
        if (_w.TryGetValue(key, out var w)) return w;
        if (prefix.Length > 0 && key.StartsWith(prefix, StringComparison.Ordinal) && _w.TryGetValue(key[prefix.Length..], out w)) return w;
        return null;
    }

    static Dictionary<string, Weight> ReadFile(string path)
    {
        using var fs = File.OpenRead(path);
        Span<byte> lenBytes = stackalloc byte[8];
        if (fs.Read(lenBytes) != 8) throw new InvalidDataException($"{path}: not a safetensors file (shorter than 8 bytes)");
        long headerLen = BitConverter.ToInt64(lenBytes);
        if (headerLen <= 0 || headerLen > 100_000_000 || 8 + headerLen > fs.Length)
            throw new InvalidDataException($"{path}: not a safetensors file (header length {headerLen})");
        byte[] header = new byte[headerLen];
        fs.ReadExactly(header);
        JsonObject root;
        try { root = JsonNode.Parse(header)?.AsObject() ?? throw new InvalidDataException($"{path}: empty header"); }
        catch (System.Text.Json.JsonException e) { throw new InvalidDataException($"{path}: invalid header JSON: {e.Message}", e); }
        long dataStart = 8 + headerLen;
        var result = new Dictionary<string, Weight>(StringComparer.Ordinal);
        foreach (var (name, node) in root)
        {
            if (name == "__metadata__") continue;
            var info = node!.AsObject();
            string dt = info["dtype"]!.GetValue<string>();
            long[] shape = info["shape"]!.AsArray().Select(x => x!.GetValue<long>()).ToArray();
            var offs = info["data_offsets"]!.AsArray();
            long begin = offs[0]!.GetValue<long>(), end = offs[1]!.GetValue<long>();
            if (end < begin || dataStart + end > fs.Length)
                throw new InvalidDataException($"{path}: tensor '{name}' data [{begin}, {end}) lies outside the file");
            long n = shape.Aggregate(1L, (a, d) => a * d);
            int size = dt switch { "F32" => 4, "F16" or "BF16" => 2, "F64" => 8, _ => 0 };
            if (size == 0) continue; // integer buffers (position_ids) are not weights
            if (end - begin != n * size)
                throw new InvalidDataException($"{path}: tensor '{name}' has {end - begin} bytes for shape [{string.Join(",", shape)}] {dt}");
            byte[] buf = new byte[end - begin];
            fs.Position = dataStart + begin;
            fs.ReadExactly(buf);
            var data = new float[n];
            switch (dt)
            {
                case "F32": Buffer.BlockCopy(buf, 0, data, 0, buf.Length); break;
                case "F16": for (long i = 0; i < n; i++) data[i] = (float)BitConverter.ToHalf(buf, (int)(2 * i)); break;
                case "BF16": for (long i = 0; i < n; i++) data[i] = BitConverter.Int32BitsToSingle(BitConverter.ToUInt16(buf, (int)(2 * i)) << 16); break;
                case "F64": for (long i = 0; i < n; i++) data[i] = (float)BitConverter.ToDouble(buf, (int)(8 * i)); break;
            }
            result[name] = new Weight(shape, data);
        }
        return result;
    }
}
