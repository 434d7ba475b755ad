// GGUF, llama.cpp's model file: a writer (typed metadata, F32/F16/Q8_0 tensors, 32-byte aligned data) and a reader for checks.
using System.Text;

namespace TaskLM.Export;

/// <summary>ggml tensor types TaskLM writes (ggml's numbering).</summary>
public enum GgmlType : uint
{
    F32 = 0,
    F16 = 1,
    /// <summary>Blocks of 32 values: one float16 scale d = max|x| / 127, then 32 signed bytes round(x / d).</summary>
    Q8_0 = 8,
}

/// <summary>
/// Writes a GGUF v3 file as llama.cpp reads it: header ("GGUF", version, tensor and key counts), key/value metadata,
/// tensor infos (name, dims innermost first, type, offset), then the tensor data, each tensor aligned to 32 bytes.
/// Little-endian throughout. Dims follow ggml: a PyTorch (out, in) weight is written as ne = [in, out].
/// </summary>
public sealed class GgufWriter
{
    /// <summary>GGUF's default (and general.alignment's) data alignment.</summary>
    public const int Alignment = 32;

    enum ValueType : uint { UInt8 = 0, Int8 = 1, UInt16 = 2, Int16 = 3, UInt32 = 4, Int32 = 5, Float32 = 6, Bool = 7, String = 8, Array = 9, UInt64 = 10, Int64 = 11, Float64 = 12 }

    readonly List<(string Key, Action<BinaryWriter> Write)> _kv = new();
    readonly List<(string Name, long[] Shape, GgmlType Type, byte[] Data)> _tensors = new();
    readonly HashSet<string> _keys = new(StringComparer.Ordinal);

    void Add(string key, Action<BinaryWriter> w)
    {
        if (!_keys.Add(key)) throw new ArgumentException($"GGUF key '{key}' written twice");
        _kv.Add((key, w));
    }

    public void Add(string key, string value) => Add(key, w => { w.Write((uint)ValueType.String); WriteString(w, value); });
    public void Add(string key, uint value) => Add(key, w => { w.Write((uint)ValueType.UInt32); w.Write(value); });
    public void Add(string key, int value) => Add(key, w => { w.Write((uint)ValueType.Int32); w.Write(value); });
    public void Add(string key, float value) => Add(key, w => { w.Write((uint)ValueType.Float32); w.Write(value); });
    public void Add(string key, bool value) => Add(key, w => { w.Write((uint)ValueType.Bool); w.Write((byte)(value ? 1 : 0)); });

    /// <summary>An array of strings (token texts, merges).</summary>
    public void Add(string key, IReadOnlyList<string> values) => Add(key, w =>
    {
        w.Write((uint)ValueType.Array); w.Write((uint)ValueType.String); w.Write((ulong)values.Count);
        foreach (var v in values) WriteString(w, v);
    });

    /// <summary>An array of int32 (token types).</summary>
    public void Add(string key, IReadOnlyList<int> values) => Add(key, w =>
    {
        w.Write((uint)ValueType.Array); w.Write((uint)ValueType.Int32); w.Write((ulong)values.Count);
        foreach (var v in values) w.Write(v);
    });

    /// <summary>Adds a tensor of row-major float values with PyTorch's <paramref name="shape"/> (outermost first),
    /// stored as <paramref name="type"/>. Q8_0 needs the innermost dimension to be a multiple of 32.</summary>
    public void AddTensor(string name, float[] values, long[] shape, GgmlType type)
    {
        if (_tensors.Any(t => t.Name == name)) throw new ArgumentException($"GGUF tensor '{name}' written twice");
        if (shape.Aggregate(1L, (a, b) => a * b) != values.Length) throw new ArgumentException($"{name}: {values.Length} values for shape [{string.Join(", ", shape)}]");
        byte[] data = type switch
        {
            GgmlType.F32 => F32(values),
            GgmlType.F16 => F16(values),
            GgmlType.Q8_0 => shape[^1] % 32 == 0 ? Q8_0(values) : throw new ArgumentException($"{name}: Q8_0 needs rows of a multiple of 32 values, got {shape[^1]}"),
            _ => throw new ArgumentOutOfRangeException(nameof(type)),
        };
        _tensors.Add((name, shape, type, data));
    }

    static byte[] F32(float[] v)
    {
        var b = new byte[v.Length * 4];
        Buffer.BlockCopy(v, 0, b, 0, b.Length);
        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("GGUF is written little-endian");
        return b;
    }

    static byte[] F16(float[] v)
    {
        var b = new byte[v.Length * 2];
        for (int i = 0; i < v.Length; i++) BitConverter.TryWriteBytes(b.AsSpan(2 * i), (Half)v[i]);
        return b;
    }

    /// <summary>ggml's reference Q8_0: per block of 32, d = amax / 127 (as float16), q = round(x / d) clamped to ±127.</summary>
    public static byte[] Q8_0(float[] v)
    {
        int blocks = v.Length / 32;
        var b = new byte[blocks * 34];
        for (int k = 0; k < blocks; k++)
        {
            float amax = 0;
            for (int j = 0; j < 32; j++) amax = Math.Max(amax, Math.Abs(v[k * 32 + j]));
            float d = amax / 127f, id = d != 0 ? 1f / d : 0f;
            BitConverter.TryWriteBytes(b.AsSpan(k * 34), (Half)d);
            for (int j = 0; j < 32; j++) b[k * 34 + 2 + j] = (byte)(sbyte)Math.Clamp((int)MathF.Round(v[k * 32 + j] * id, MidpointRounding.AwayFromZero), -127, 127);
        }
        return b;
    }

    /// <summary>Q8_0 bytes back to floats (scale × byte), as ggml dequantizes.</summary>
    public static float[] DequantizeQ8_0(ReadOnlySpan<byte> data, int count)
    {
        var v = new float[count];
        for (int k = 0; k < count / 32; k++)
        {
            float d = (float)BitConverter.ToHalf(data.Slice(k * 34, 2));
            for (int j = 0; j < 32; j++) v[k * 32 + j] = d * (sbyte)data[k * 34 + 2 + j];
        }
        return v;
    }

    static void WriteString(BinaryWriter w, string s)
    {
        var bytes = Encoding.UTF8.GetBytes(s);
        w.Write((ulong)bytes.Length);
        w.Write(bytes);
    }

    static long Pad(long n) => (n + Alignment - 1) / Alignment * Alignment;

    /// <summary>Writes the file (to a temporary name first, then moved into place, so a failed export leaves no half file).</summary>
    public void Write(string path)
    {
        string tmp = path + ".tmp";
        using (var fs = new FileStream(tmp, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20))
        using (var w = new BinaryWriter(fs, Encoding.UTF8, leaveOpen: true))
        {
            w.Write(Encoding.ASCII.GetBytes("GGUF"));
            w.Write(3u);
            w.Write((ulong)_tensors.Count);
            w.Write((ulong)_kv.Count);
            foreach (var (key, write) in _kv) { WriteString(w, key); write(w); }
            long offset = 0;
            foreach (var (name, shape, type, data) in _tensors)
            {
                WriteString(w, name);
                w.Write((uint)shape.Length);
                for (int d = shape.Length - 1; d >= 0; d--) w.Write((ulong)shape[d]);   // ggml: ne[0] is the innermost
                w.Write((uint)type);
                w.Write((ulong)offset);
                offset = Pad(offset + data.Length);
            }
            w.Flush();
            long start = Pad(fs.Position);
            w.Write(new byte[start - fs.Position]);
            foreach (var (_, _, _, data) in _tensors)
            {
                w.Write(data);
                w.Write(new byte[Pad(data.Length) - data.Length]);
            }
        }
        File.Move(tmp, path, overwrite: true);
    }
}

/// <summary>Reads a GGUF file's metadata and tensor infos (what the writer writes), for checks and `inspect`-style listings.</summary>
public sealed class GgufFile
{
    /// <summary>Metadata: string, uint/int (as long), float (as double), bool, or a list of those.</summary>
    public Dictionary<string, object> Metadata { get; } = new(StringComparer.Ordinal);
    /// <summary>Tensor infos: ggml dims (innermost first), type, and the absolute offset of the data.</summary>
    public Dictionary<string, (long[] Ne, GgmlType Type, long Offset)> Tensors { get; } = new(StringComparer.Ordinal);

    /// <summary>Parses the header of <paramref name="path"/>; errors name the file.</summary>
    public static GgufFile Read(string path)
    {
        var g = new GgufFile();
        using var fs = File.OpenRead(path);
        using var r = new BinaryReader(fs);
        if (Encoding.ASCII.GetString(r.ReadBytes(4)) != "GGUF") throw new InvalidDataException($"{path}: not a GGUF file");
        uint version = r.ReadUInt32();
        if (version != 3) throw new InvalidDataException($"{path}: GGUF version {version} (3 expected)");
        long nt = (long)r.ReadUInt64(), nkv = (long)r.ReadUInt64();
        for (long i = 0; i < nkv; i++) { string k = Str(r); g.Metadata[k] = Value(r, r.ReadUInt32(), path); }
        var infos = new List<(string, long[], GgmlType, long)>();
        for (long i = 0; i < nt; i++)
        {
            string name = Str(r);
            uint nd = r.ReadUInt32();
            var ne = new long[nd];
            for (int d = 0; d < nd; d++) ne[d] = (long)r.ReadUInt64();
            infos.Add((name, ne, (GgmlType)r.ReadUInt32(), (long)r.ReadUInt64()));
        }
        long align = g.Metadata.TryGetValue("general.alignment", out var a) ? Convert.ToInt64(a) : GgufWriter.Alignment;
        long start = (fs.Position + align - 1) / align * align;
        foreach (var (name, ne, type, off) in infos) g.Tensors[name] = (ne, type, start + off);
        return g;
    }

    static string Str(BinaryReader r) => Encoding.UTF8.GetString(r.ReadBytes((int)r.ReadUInt64()));

    static object Value(BinaryReader r, uint type, string path) => type switch
    {
        0 => (long)r.ReadByte(), 1 => (long)r.ReadSByte(), 2 => (long)r.ReadUInt16(), 3 => (long)r.ReadInt16(),
        4 => (long)r.ReadUInt32(), 5 => (long)r.ReadInt32(), 6 => (double)r.ReadSingle(), 7 => r.ReadByte() != 0,
        8 => Str(r), 10 => (long)r.ReadUInt64(), 11 => r.ReadInt64(), 12 => r.ReadDouble(),
        9 => Array(r, path),
        _ => throw new InvalidDataException($"{path}: unknown GGUF value type {type}"),
    };

    static List<object> Array(BinaryReader r, string path)
    {
        uint t = r.ReadUInt32();
        long n = (long)r.ReadUInt64();
        var list = new List<object>((int)Math.Min(n, 1 << 20));
        for (long i = 0; i < n; i++) list.Add(Value(r, t, path));
        return list;
    }
}
