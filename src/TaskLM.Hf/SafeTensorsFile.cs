// The safetensors format (Hugging Face's model.safetensors) read and written as raw bytes, without TorchSharp.
using System.Text;
using System.Text.Json.Nodes;

namespace TaskLM.Hf;

/// <summary>One stored tensor: its safetensors dtype ("F32", "BF16", "I64", ...), shape and little-endian bytes.</summary>
public sealed record RawTensor(string DType, long[] Shape, byte[] Data)
{
    /// <summary>Number of elements.</summary>
    public long Count => Shape.Aggregate(1L, (a, d) => a * d);
}

/// <summary>A tensor to write: dtype, shape, its byte count and how to write those bytes.</summary>
public sealed record TensorToWrite(string DType, long[] Shape, long ByteCount, Action<Stream> WriteData);

/// <summary>
/// The one safetensors reader and writer, under both the TorchSharp loader (<c>TaskLM.Models.SafeTensors</c>) and
/// the fp32 weights of export and import (<c>TaskLM.Onnx.HfWeights</c>). The format: an 8-byte little-endian header
/// length N, N bytes of JSON (<c>{"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]},
/// "__metadata__": {..}}</c>), then the raw little-endian tensor bytes, offsets relative to the end of the header.
/// </summary>
public static class SafeTensorsFile
{
    /// <summary>Bytes per element of each dtype this reader knows.</summary>
    public static readonly IReadOnlyDictionary<string, int> ElementSizes = new Dictionary<string, int>
    {
        ["F64"] = 8, ["F32"] = 4, ["F16"] = 2, ["BF16"] = 2, ["I64"] = 8, ["I32"] = 4,
        ["I16"] = 2, ["I8"] = 1, ["U8"] = 1, ["BOOL"] = 1,
    };

    /// <summary>Reads every tensor of a file, in header order, and the <c>__metadata__</c> strings. Tensors whose dtype
    /// <paramref name="wanted"/> refuses are skipped unread; without it, a dtype this reader does not know is an error.</summary>
    public static List<KeyValuePair<string, RawTensor>> Read(string path, out Dictionary<string, string> metadata, Func<string, bool>? wanted = null)
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
        catch (Exception e) when (e is System.Text.Json.JsonException or InvalidOperationException)
        {
            // The header must be a JSON object; say which file is broken, not only the parser's complaint.
            throw new InvalidDataException($"{path}: not a safetensors file (its {headerLen}-byte header is not a JSON object: {e.Message.Split(" LineNumber:")[0].Trim()})", e);
        }
        long dataStart = 8 + headerLen;
        metadata = new();
        var result = new List<KeyValuePair<string, RawTensor>>();
        foreach (var (name, node) in root)
        {
            if (name == "__metadata__")
            {
                foreach (var (k, v) in node!.AsObject()) metadata[k] = v?.GetValue<string>() ?? "";
                continue;
            }
            var info = node!.AsObject();
            string dt = info["dtype"]!.GetValue<string>();
            if (wanted != null && !wanted(dt)) continue;
            if (!ElementSizes.TryGetValue(dt, out int size)) throw new InvalidDataException($"{path}: tensor '{name}' has unsupported dtype {dt}");
            long[] shape = info["shape"]!.AsArray().Select(x => x!.GetValue<long>()).ToArray();
            var offs = info["data_offsets"]!.AsArray();
            long begin = offs[0]!.GetValue<long>(), end = offs[1]!.GetValue<long>();
            if (end < begin || dataStart + end > fs.Length)
                throw new InvalidDataException($"{path}: tensor '{name}' data [{begin}, {end}) lies outside the file");
            long nbytes = end - begin;
            if (nbytes != shape.Aggregate(1L, (a, d) => a * d) * size)
                throw new InvalidDataException($"{path}: tensor '{name}' has {nbytes} bytes for shape [{string.Join(",", shape)}] {dt}");
            byte[] buf = new byte[nbytes];
            if (nbytes > 0)
            {
                fs.Position = dataStart + begin;
                fs.ReadExactly(buf);
            }
            result.Add(KeyValuePair.Create(name, new RawTensor(dt, shape, buf)));
        }
        return result;
    }

    /// <summary>Writes tensors in the given order, data contiguous, the header padded with spaces to 8 bytes as
    /// Hugging Face's writer does; atomically: a temporary file renamed into place, so a crash never leaves a
    /// half-written file.</summary>
    public static void Write(string path, IEnumerable<KeyValuePair<string, TensorToWrite>> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var items = tensors.ToList();
        var header = new JsonObject();
        if (metadata is { Count: > 0 }) header["__metadata__"] = new JsonObject(metadata.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)kv.Value)));
        long offset = 0;
        foreach (var (name, t) in items)
        {
            header[name] = new JsonObject
            {
                ["dtype"] = t.DType,
                ["shape"] = new JsonArray(t.Shape.Select(s => (JsonNode)JsonValue.Create(s)).ToArray()),
                ["data_offsets"] = new JsonArray(JsonValue.Create(offset), JsonValue.Create(offset + t.ByteCount)),
            };
            offset += t.ByteCount;
        }
        byte[] json = Encoding.UTF8.GetBytes(header.ToJsonString());
        int pad = (8 - json.Length % 8) % 8;
        string tmp = path + ".tmp";
        using (var fs = new FileStream(tmp, FileMode.Create, FileAccess.Write))
        {
            fs.Write(BitConverter.GetBytes((long)(json.Length + pad)));
            fs.Write(json);
            for (int i = 0; i < pad; i++) fs.WriteByte((byte)' ');
            foreach (var (_, t) in items) if (t.ByteCount > 0) t.WriteData(fs);
            fs.Flush(true);
        }
        File.Move(tmp, path, overwrite: true);
    }

    /// <summary>The shard files a sharded checkpoint's index (<c>model.safetensors.index.json</c>,
    /// <c>pytorch_model.bin.index.json</c>) names in its weight_map, each once, as full paths that exist.</summary>
    public static IReadOnlyList<string> Shards(string folder, string index)
    {
        JsonObject map;
        try { map = JsonNode.Parse(File.ReadAllText(index))?["weight_map"]?.AsObject() ?? throw new InvalidDataException($"{index}: no \"weight_map\""); }
        catch (System.Text.Json.JsonException e) { throw new InvalidDataException($"{index}: invalid JSON: {e.Message}", e); }
        var paths = new List<string>();
        foreach (string shard in map.Select(kv => kv.Value!.GetValue<string>()).Distinct())
        {
            string path = Path.Combine(folder, shard);
            if (!File.Exists(path)) throw new FileNotFoundException($"{index}: shard '{shard}' is missing", path);
            paths.Add(path);
        }
        return paths;
    }
}
