// Reads PyTorch's torch.save zip format (pytorch_model.bin) state dicts: a small pickle VM, no Python needed.
using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using static TorchSharp.torch;

namespace TaskLM.Models;

/// <summary>
/// A torch.save file is a zip holding <c>&lt;name&gt;/data.pkl</c> (a pickle of the state dict) and one
/// entry <c>&lt;name&gt;/data/&lt;key&gt;</c> per storage. The pickle names tensors as
/// <c>torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)</c>, storages as persistent ids
/// <c>('storage', torch.FloatStorage, key, location, numel)</c>, the dict as <c>collections.OrderedDict</c>.
/// Only the opcodes and globals a state dict uses are understood; anything else is a clear error
/// (arbitrary pickles are never executed).
/// </summary>
public static class TorchPickle
{
    sealed record PyGlobal(string Module, string Name);
    sealed record Storage(ScalarType DType, string Key, long Numel);
    sealed class Mark { public static readonly Mark Instance = new(); }

    static readonly Dictionary<string, ScalarType> StorageTypes = new()
    {
        ["FloatStorage"] = ScalarType.Float32, ["HalfStorage"] = ScalarType.Float16, ["BFloat16Storage"] = ScalarType.BFloat16,
        ["DoubleStorage"] = ScalarType.Float64, ["LongStorage"] = ScalarType.Int64, ["IntStorage"] = ScalarType.Int32,
        ["ShortStorage"] = ScalarType.Int16, ["CharStorage"] = ScalarType.Int8, ["ByteStorage"] = ScalarType.Byte,
        ["BoolStorage"] = ScalarType.Bool,
    };

    /// <summary>Loads a state dict (name → CPU tensor in its stored dtype) from a torch.save zip file.</summary>
    public static Dictionary<string, Tensor> LoadStateDict(string path)
    {
        ZipArchive zip;
        try { zip = ZipFile.OpenRead(path); }
        catch (InvalidDataException e)
        {
            throw new InvalidDataException($"{path}: not a zip-format torch.save file (the legacy pre-1.6 format is not supported; re-save it with a recent PyTorch or as safetensors)", e);
        }
        using (zip)
        {
            var pkl = zip.Entries.FirstOrDefault(e => e.FullName.EndsWith("/data.pkl") && e.FullName.Count(c => c == '/') == 1)
                ?? throw new InvalidDataException($"{path}: no <name>/data.pkl entry (not a torch.save file)");
            string prefix = pkl.FullName[..^"data.pkl".Length];
            var order = zip.GetEntry(prefix + "byteorder");
            if (order != null)
            {
                using var r = new StreamReader(order.Open());
                if (r.ReadToEnd().Trim() != "little") throw new NotSupportedException($"{path}: big-endian tensors are not supported");
            }
            byte[] data;
            using (var s = pkl.Open()) using (var ms = new MemoryStream()) { s.CopyTo(ms); data = ms.ToArray(); }

            var storages = new Dictionary<string, Tensor>();
            Tensor StorageTensor(Storage st)
            {
                if (storages.TryGetValue(st.Key, out var t)) return t;
                var entry = zip.GetEntry($"{prefix}data/{st.Key}") ?? throw new InvalidDataException($"{path}: storage '{st.Key}' is missing");
                t = empty(new[] { st.Numel }, st.DType);
                long n = st.Numel * t.ElementSize;
                if (entry.Length < n) throw new InvalidDataException($"{path}: storage '{st.Key}' has {entry.Length} bytes, needs {n}");
                if (n > 0)
                {
                    byte[] buf = new byte[n];
                    using var es = entry.Open();
                    es.ReadExactly(buf);
                    t.bytes = buf;
                }
                storages[st.Key] = t;
                return t;
            }

            object? root;
            try { root = new Machine(data, StorageTensor).Run(); }
            catch (Exception e)
            {
                // The pickle machine's own errors (bad opcode, missing MARK) do not know the file: name it here.
                foreach (var t in storages.Values) t.Dispose();
                throw new InvalidDataException($"{path}: {(e is InvalidDataException ? "" : "cannot read the pickled state dict: ")}{e.Message}", e);
            }
            if (root is not Dictionary<object, object?> dict)
                throw new InvalidDataException($"{path}: the pickle holds a {root?.GetType().Name ?? "None"}, not a state dict");
            var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
            foreach (var (k, v) in dict)
                if (k is string name && v is Tensor tensor) result[name] = tensor;
            foreach (var t in storages.Values) t.Dispose(); // the views keep the memory alive
            return result;
        }
    }

    /// <summary>The pickle virtual machine: a stack, a memo, and the handful of callables a state dict uses.</summary>
    sealed class Machine(byte[] data, Func<Storage, Tensor> storage)
    {
        int _pos;
        readonly List<object?> _stack = new();
        readonly Dictionary<long, object?> _memo = new();

        byte U8() => data[_pos++];
        ReadOnlySpan<byte> Take(long n) { var s = data.AsSpan(_pos, checked((int)n)); _pos += (int)n; return s; }
        object? Pop() { var o = _stack[^1]; _stack.RemoveAt(_stack.Count - 1); return o; }
        List<object?> PopMark()
        {
            int i = _stack.FindLastIndex(o => ReferenceEquals(o, Mark.Instance));
            if (i < 0) throw new InvalidDataException("pickle: MARK not found");
            var items = _stack.GetRange(i + 1, _stack.Count - i - 1);
            _stack.RemoveRange(i, _stack.Count - i);
            return items;
        }
        string Line() { int e = Array.IndexOf(data, (byte)'\n', _pos); var s = Encoding.UTF8.GetString(data, _pos, e - _pos); _pos = e + 1; return s; }

        public object? Run()
        {
            while (true)
            {
                byte op = U8();
                switch (op)
                {
                    case 0x80: _pos++; break;                                              // PROTO
                    case 0x95: _pos += 8; break;                                           // FRAME
                    case (byte)'.': return Pop();                                          // STOP
                    case (byte)'(': _stack.Add(Mark.Instance); break;                      // MARK
                    case (byte)'0': Pop(); break;                                          // POP
                    case (byte)'1': PopMark(); break;                                      // POP_MARK
                    case (byte)'N': _stack.Add(null); break;                               // NONE
                    case 0x88: _stack.Add(true); break;                                    // NEWTRUE
                    case 0x89: _stack.Add(false); break;                                   // NEWFALSE
                    case (byte)'J': _stack.Add((long)BinaryPrimitives.ReadInt32LittleEndian(Take(4))); break; // BININT
                    case (byte)'K': _stack.Add((long)U8()); break;                         // BININT1
                    case (byte)'M': _stack.Add((long)BinaryPrimitives.ReadUInt16LittleEndian(Take(2))); break; // BININT2
                    case 0x8a:                                                             // LONG1
                    {
                        int n = U8(); var b = Take(n); long v = 0;
                        for (int i = n - 1; i >= 0; i--) v = (v << 8) | b[i];
                        if (n > 0 && n < 8 && (b[n - 1] & 0x80) != 0) v -= 1L << (8 * n);
                        _stack.Add(v); break;
                    }
                    case (byte)'G': _stack.Add(BinaryPrimitives.ReadDoubleBigEndian(Take(8))); break; // BINFLOAT
                    case (byte)'X': { int n = BinaryPrimitives.ReadInt32LittleEndian(Take(4)); _stack.Add(Encoding.UTF8.GetString(Take(n))); break; } // BINUNICODE
                    case 0x8c: { int n = U8(); _stack.Add(Encoding.UTF8.GetString(Take(n))); break; }  // SHORT_BINUNICODE
                    case 0x8d: { long n = BinaryPrimitives.ReadInt64LittleEndian(Take(8)); _stack.Add(Encoding.UTF8.GetString(Take(n))); break; } // BINUNICODE8
                    case (byte)'C': { int n = U8(); _stack.Add(Take(n).ToArray()); break; } // SHORT_BINBYTES
                    case (byte)'B': { int n = BinaryPrimitives.ReadInt32LittleEndian(Take(4)); _stack.Add(Take(n).ToArray()); break; } // BINBYTES
                    case (byte)'q': _memo[U8()] = _stack[^1]; break;                       // BINPUT
                    case (byte)'r': _memo[BinaryPrimitives.ReadUInt32LittleEndian(Take(4))] = _stack[^1]; break; // LONG_BINPUT
                    case 0x94: _memo[_memo.Count] = _stack[^1]; break;                     // MEMOIZE
                    case (byte)'h': _stack.Add(_memo[U8()]); break;                        // BINGET
                    case (byte)'j': _stack.Add(_memo[BinaryPrimitives.ReadUInt32LittleEndian(Take(4))]); break; // LONG_BINGET
                    case (byte)')': _stack.Add(Array.Empty<object?>()); break;             // EMPTY_TUPLE
                    case (byte)'t': _stack.Add(PopMark().ToArray()); break;                // TUPLE
                    case 0x85: _stack.Add(new[] { Pop() }); break;                         // TUPLE1
                    case 0x86: { var b = Pop(); var a = Pop(); _stack.Add(new[] { a, b }); break; } // TUPLE2
                    case 0x87: { var c = Pop(); var b = Pop(); var a = Pop(); _stack.Add(new[] { a, b, c }); break; } // TUPLE3
                    case (byte)']': _stack.Add(new List<object?>()); break;                // EMPTY_LIST
                    case (byte)'l': _stack.Add(PopMark()); break;                          // LIST
                    case (byte)'a': { var v = Pop(); ((List<object?>)_stack[^1]!).Add(v); break; } // APPEND
                    case (byte)'e': { var items = PopMark(); ((List<object?>)_stack[^1]!).AddRange(items); break; } // APPENDS
                    case (byte)'}': _stack.Add(new Dictionary<object, object?>()); break;  // EMPTY_DICT
                    case (byte)'d': { var items = PopMark(); var d = new Dictionary<object, object?>(); for (int i = 0; i < items.Count; i += 2) d[items[i]!] = items[i + 1]; _stack.Add(d); break; } // DICT
                    case (byte)'s': { var v = Pop(); var k = Pop(); ((Dictionary<object, object?>)_stack[^1]!)[k!] = v; break; } // SETITEM
                    case (byte)'u':                                                        // SETITEMS
                    {
                        var items = PopMark(); var d = (Dictionary<object, object?>)_stack[^1]!;
                        for (int i = 0; i < items.Count; i += 2) d[items[i]!] = items[i + 1];
                        break;
                    }
                    case (byte)'c': { string m = Line(); string n = Line(); _stack.Add(new PyGlobal(m, n)); break; } // GLOBAL
                    case 0x93: { var n = (string)Pop()!; var m = (string)Pop()!; _stack.Add(new PyGlobal(m, n)); break; } // STACK_GLOBAL
                    case (byte)'Q': _stack.Add(PersistentLoad(Pop())); break;             // BINPERSID
                    case (byte)'R': { var args = (object?[])Pop()!; var f = Pop(); _stack.Add(Call(f, args)); break; } // REDUCE
                    case (byte)'b': Pop(); break;                                          // BUILD: state (e.g. OrderedDict._metadata), not needed
                    default: throw new InvalidDataException($"pickle opcode 0x{op:x2} at byte {_pos - 1} is not supported in a state dict");
                }
            }
        }

        object PersistentLoad(object? pid)
        {
            // ('storage', <storage type global>, key, location, numel)
            if (pid is not object?[] t || t.Length < 5 || t[0] as string != "storage" || t[1] is not PyGlobal g)
                throw new InvalidDataException("unsupported persistent id (expected a torch storage)");
            if (!StorageTypes.TryGetValue(g.Name, out var dtype)) throw new InvalidDataException($"storage type {g.Module}.{g.Name} is not supported");
            return new Storage(dtype, (string)t[2]!, (long)t[4]!);
        }

        object? Call(object? f, object?[] args)
        {
            if (f is not PyGlobal g) throw new InvalidDataException("REDUCE on a non-callable");
            switch (g.Module + "." + g.Name)
            {
                case "collections.OrderedDict": return new Dictionary<object, object?>();
                case "torch._utils._rebuild_tensor_v2":
                case "torch._utils._rebuild_tensor":
                {
                    var st = (Storage)args[0]!;
                    long offset = (long)args[1]!;
                    long[] size = ((object?[])args[2]!).Select(x => (long)x!).ToArray();
                    long[] stride = ((object?[])args[3]!).Select(x => (long)x!).ToArray();
                    var whole = storage(st);
                    using var view = whole.as_strided(size, stride, offset);
                    return view.contiguous().clone();
                }
                case "torch._utils._rebuild_parameter": return args[0];
                default: throw new InvalidDataException($"the pickle calls {g.Module}.{g.Name}, which a state dict does not need");
            }
        }
    }
}
