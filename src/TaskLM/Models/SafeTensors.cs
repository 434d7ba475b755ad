// Reads and writes the safetensors format (Hugging Face's model.safetensors) to and from TorchSharp tensors.
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using TorchSharp;
using static TorchSharp.torch;

namespace TaskLM.Models;

/// <summary>
/// safetensors: an 8-byte little-endian header length N, N bytes of JSON
/// (<c>{"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}}</c>),
/// then the raw little-endian tensor bytes, offsets relative to the end of the header.
/// </summary>
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
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (name, node) in root)
        {
            if (name == "__metadata__")
            {
                foreach (var (k, v) in node!.AsObject()) metadata[k] = v?.GetValue<string>() ?? "";
                continue;
            }
            var info = node!.AsObject();
            string dt = info["dtype"]!.GetValue<string>();
            if (!DTypes.TryGetValue(dt, out var dtype)) throw new InvalidDataException($"{path}: tensor '{name}' has unsupported dtype {dt}");
            long[] shape = info["shape"]!.AsArray().Select(x => x!.GetValue<long>()).ToArray();
            var offs = info["data_offsets"]!.AsArray();
            long begin = offs[0]!.GetValue<long>(), end = offs[1]!.GetValue<long>();
            if (end < begin || dataStart + end > fs.Length)
                throw new InvalidDataException($"{path}: tensor '{name}' data [{begin}, {end}) lies outside the file");
            var t = empty(shape, dtype);
            long nbytes = end - begin;
            if (nbytes != t.NumberOfElements * t.ElementSize)
                throw new InvalidDataException($"{path}: tensor '{name}' has {nbytes} bytes for shape [{string.Join(",", shape)}] {dt}");
            if (nbytes > 0)
            {
                byte[] buf = new byte[nbytes];
                fs.Position = dataStart + begin;
                fs.ReadExactly(buf);
                t.bytes = buf;
            }
            result[name] = t;
        }
        return result;
    }

    /// <summary>Writes tensors (any device; copied to CPU, made contiguous) in name order, atomically:
    /// a temporary file renamed into place, so a crash never leaves a half-written file.</summary>
    public static void Save(string path, IEnumerable<KeyValuePair<string, Tensor>> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var items = tensors.OrderBy(kv => kv.Key, StringComparer.Ordinal).ToList();
        var header = new JsonObject();
        if (metadata != null && metadata.Count > 0)
        {
            var meta = new JsonObject();
            foreach (var (k, v) in metadata) meta[k] = v;
            header["__metadata__"] = meta;
        }
        var blobs = new List<Tensor>();
        long offset = 0;
        using var scope = NewDisposeScope();
        foreach (var (name, tensor) in items)
        {
            var t = tensor.detach().cpu().contiguous();
            string dt = DTypes.FirstOrDefault(p => p.Value == t.dtype).Key
                ?? throw new ArgumentException($"tensor '{name}': dtype {t.dtype} cannot be written to safetensors");
            long n = t.NumberOfElements * t.ElementSize;
            header[name] = new JsonObject
            {
                ["dtype"] = dt,
                ["shape"] = new JsonArray(t.shape.Select(s => (JsonNode)JsonValue.Create(s)).ToArray()),
                ["data_offsets"] = new JsonArray(JsonValue.Create(offset), JsonValue.Create(offset + n)),
            };
            offset += n;
            blobs.Add(t);
        }
        byte[] json = Encoding.UTF8.GetBytes(header.ToJsonString());
        int pad = (8 - json.Length % 8) % 8; // the reference writer pads the header with spaces to 8 bytes
        string tmp = path + ".tmp";
        using (var fs = new FileStream(tmp, FileMode.Create, FileAccess.Write))
        {
            fs.Write(BitConverter.GetBytes((long)(json.Length + pad)));
            fs.Write(json);
            for (int i = 0; i < pad; i++) fs.WriteByte((byte)' ');
            foreach (var t in blobs) if (t.NumberOfElements > 0) fs.Write(t.bytes);
            fs.Flush(true);
        }
        File.Move(tmp, path, overwrite: true);
    }
}
