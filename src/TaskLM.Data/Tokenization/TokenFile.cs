// Flat binary token files for pre-training: header, uint16/uint32 tokens, document-boundary index; mmap reader.
using System.Buffers.Binary;
using System.IO.MemoryMappedFiles;
using System.Runtime.InteropServices;
using System.Text;

namespace TaskLM.Data.Tokenization;

/// <summary>
/// Layout (little-endian): a 64-byte header — magic "TLMTOKS\0", u32 version (1), u32 bytes per token (2 = uint16,
/// 4 = uint32), u32 vocab size, u32 reserved, u64 token count, u64 document count, u64 byte offset of the index,
/// 16 reserved bytes — then the tokens, then the index: document count + 1 u64 token positions (document d spans
/// [index[d], index[d+1])).
/// </summary>
public static class TokenFileFormat
{
    /// <summary>First 8 bytes of every token file.</summary>
    public static ReadOnlySpan<byte> Magic => "TLMTOKS\0"u8;
    /// <summary>Current version.</summary>
    public const int Version = 1;
    /// <summary>Header size in bytes.</summary>
    public const int HeaderSize = 64;
    /// <summary>Bytes per token for a vocabulary: 2 when every id fits in uint16, else 4.</summary>
    public static int DtypeBytes(int vocabSize) => vocabSize <= 65536 ? 2 : 4;
}

/// <summary>Writes a token file document by document; the file appears under its name only when <see cref="Complete"/> succeeds.</summary>
public sealed class TokenFileWriter : IDisposable
{
    private readonly string _path, _tmp;
    private readonly FileStream _out;
    private readonly List<long> _index = [0];
    private readonly int _vocabSize, _bytes;
    private long _count;
    private bool _done;

    /// <summary>Starts a token file at <paramref name="path"/> for ids below <paramref name="vocabSize"/>.</summary>
    public TokenFileWriter(string path, int vocabSize)
    {
        _path = path;
        _tmp = path + ".tmp";
        _vocabSize = vocabSize;
        _bytes = TokenFileFormat.DtypeBytes(vocabSize);
        var dir = Path.GetDirectoryName(Path.GetFullPath(path));
        if (dir != null) Directory.CreateDirectory(dir);
        TaskLM.Data.Corpus.PartialFiles.Register(_tmp);
        _out = new FileStream(_tmp, FileMode.Create, FileAccess.ReadWrite, FileShare.None, 1 << 20);
        _out.Write(new byte[TokenFileFormat.HeaderSize]);
    }

    /// <summary>Tokens written so far.</summary>
    public long TokenCount => _count;
    /// <summary>Documents written so far.</summary>
    public int DocumentCount => _index.Count - 1;

    /// <summary>Appends one document's ids.</summary>
    public void Append(ReadOnlySpan<int> ids)
    {
        var buf = new byte[ids.Length * _bytes];
        for (int i = 0; i < ids.Length; i++)
        {
            int id = ids[i];
            if ((uint)id >= (uint)_vocabSize) throw new ArgumentOutOfRangeException(nameof(ids), $"token id {id} is outside the vocabulary (size {_vocabSize})");
            if (_bytes == 2) BinaryPrimitives.WriteUInt16LittleEndian(buf.AsSpan(i * 2), (ushort)id);
            else BinaryPrimitives.WriteUInt32LittleEndian(buf.AsSpan(i * 4), (uint)id);
        }
        _out.Write(buf);
        _count += ids.Length;
        _index.Add(_count);
    }

    /// <summary>Writes the index and header and moves the file into place.</summary>
    public void Complete()
    {
        long indexOffset = _out.Position;
        var idx = new byte[_index.Count * 8];
        for (int i = 0; i < _index.Count; i++) BinaryPrimitives.WriteInt64LittleEndian(idx.AsSpan(i * 8), _index[i]);
        _out.Write(idx);
        var h = new byte[TokenFileFormat.HeaderSize];
        TokenFileFormat.Magic.CopyTo(h);
        BinaryPrimitives.WriteInt32LittleEndian(h.AsSpan(8), TokenFileFormat.Version);
        BinaryPrimitives.WriteInt32LittleEndian(h.AsSpan(12), _bytes);
        BinaryPrimitives.WriteInt32LittleEndian(h.AsSpan(16), _vocabSize);
        BinaryPrimitives.WriteInt64LittleEndian(h.AsSpan(24), _count);
        BinaryPrimitives.WriteInt64LittleEndian(h.AsSpan(32), DocumentCount);
        BinaryPrimitives.WriteInt64LittleEndian(h.AsSpan(40), indexOffset);
        _out.Position = 0;
        _out.Write(h);
        _out.Flush(true);
        _out.Dispose();
        File.Move(_tmp, _path, overwrite: true);
        TaskLM.Data.Corpus.PartialFiles.Unregister(_tmp);
        _done = true;
    }

    /// <summary>Closes the file; an uncompleted one is deleted (never left half-written under its name).</summary>
    public void Dispose()
    {
        if (_done) return;
        _out.Dispose();
        try { File.Delete(_tmp); } catch (IOException) { }
        TaskLM.Data.Corpus.PartialFiles.Unregister(_tmp);
    }
}

/// <summary>A token file opened memory-mapped: random access to tokens and documents without reading it all.</summary>
public sealed class TokenFileReader : IDisposable
{
    private readonly MemoryMappedFile _map;
    private readonly MemoryMappedViewAccessor _view;
    private readonly long[] _index;

    /// <summary>Opens <paramref name="path"/>; throws with the file name when it is not a valid token file.</summary>
    public TokenFileReader(string path)
    {
        Path = path;
        long length = new FileInfo(path).Length;
        if (length < TokenFileFormat.HeaderSize) throw new FormatException($"{path}: too short for a token file ({length} bytes)");
        _map = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
        _view = _map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
        var h = new byte[TokenFileFormat.HeaderSize];
        _view.ReadArray(0, h, 0, h.Length);
        if (!h.AsSpan(0, 8).SequenceEqual(TokenFileFormat.Magic)) { Dispose(); throw new FormatException($"{path}: not a token file (bad magic)"); }
        int version = BinaryPrimitives.ReadInt32LittleEndian(h.AsSpan(8));
        if (version != TokenFileFormat.Version) { Dispose(); throw new FormatException($"{path}: token file version {version}, expected {TokenFileFormat.Version}"); }
        BytesPerToken = BinaryPrimitives.ReadInt32LittleEndian(h.AsSpan(12));
        VocabSize = BinaryPrimitives.ReadInt32LittleEndian(h.AsSpan(16));
        Count = BinaryPrimitives.ReadInt64LittleEndian(h.AsSpan(24));
        long docs = BinaryPrimitives.ReadInt64LittleEndian(h.AsSpan(32));
        long indexOffset = BinaryPrimitives.ReadInt64LittleEndian(h.AsSpan(40));
        if (BytesPerToken is not (2 or 4) || indexOffset != TokenFileFormat.HeaderSize + Count * BytesPerToken || indexOffset + (docs + 1) * 8 > length)
        { Dispose(); throw new FormatException($"{path}: inconsistent header (dtype {BytesPerToken}, {Count} tokens, {docs} documents, {length} bytes)"); }
        _index = new long[docs + 1];
        _view.ReadArray(indexOffset, _index, 0, _index.Length);
    }

    /// <summary>The file.</summary>
    public string Path { get; }
    /// <summary>2 (uint16) or 4 (uint32).</summary>
    public int BytesPerToken { get; }
    /// <summary>Vocabulary size recorded by the writer.</summary>
    public int VocabSize { get; }
    /// <summary>Number of tokens.</summary>
    public long Count { get; }
    /// <summary>Number of documents.</summary>
    public int DocumentCount => _index.Length - 1;
    /// <summary>Token position where each document starts (DocumentCount + 1 entries, the last = Count).</summary>
    public IReadOnlyList<long> DocumentStarts => _index;

    /// <summary>Token at <paramref name="position"/>.</summary>
    public int this[long position]
    {
        get
        {
            if ((ulong)position >= (ulong)Count) throw new ArgumentOutOfRangeException(nameof(position));
            long at = TokenFileFormat.HeaderSize + position * BytesPerToken;
            return BytesPerToken == 2 ? _view.ReadUInt16(at) : (int)_view.ReadUInt32(at);
        }
    }

    /// <summary>Copies tokens [start, start + destination.Length) into <paramref name="destination"/> (e.g. a training window).</summary>
    public void Read(long start, Span<int> destination)
    {
        if (start < 0 || start + destination.Length > Count) throw new ArgumentOutOfRangeException(nameof(start), $"[{start}, {start + destination.Length}) is outside 0..{Count}");
        long at = TokenFileFormat.HeaderSize + start * BytesPerToken;
        if (BytesPerToken == 4)
        {
            var tmp = new uint[destination.Length];
            _view.ReadArray(at, tmp, 0, tmp.Length);
            MemoryMarshal.Cast<uint, int>(tmp).CopyTo(destination);
        }
        else
        {
            var tmp = new ushort[destination.Length];
            _view.ReadArray(at, tmp, 0, tmp.Length);
            for (int i = 0; i < tmp.Length; i++) destination[i] = tmp[i];
        }
    }

    /// <summary>The ids of document <paramref name="d"/>.</summary>
    public int[] Document(int d)
    {
        var r = new int[_index[d + 1] - _index[d]];
        Read(_index[d], r);
        return r;
    }

    /// <summary>Releases the mapping.</summary>
    public void Dispose()
    {
        _view?.Dispose();
        _map?.Dispose();
    }
}

/// <summary>Encodes a corpus into a token file on all cores, documents kept in order.</summary>
public static class TokenFileEncoder
{
    /// <summary>
    /// Encodes <paramref name="documents"/> into <paramref name="path"/>, appending the end-of-sequence id after each
    /// document when <paramref name="appendEos"/> and the tokenizer has one (GPT-2's &lt;|endoftext|&gt; separator).
    /// Work is split into batches of about 4 MB of text, each encoded in parallel; a document longer than
    /// <paramref name="chunkChars"/> is cut at line starts (see <see cref="SafeChunks"/>) so that one big book uses
    /// all cores too. <paramref name="progress"/> gets the number of characters done so far.
    /// </summary>
    public static (long Tokens, int Documents, long Chars) Encode(ITokenizer tokenizer, IEnumerable<string> documents, string path,
        bool appendEos = true, int maxThreads = -1, IProgress<long>? progress = null, int chunkChars = 1 << 18)
    {
        int? eos = appendEos ? tokenizer.EosTokenId : null;
        using var writer = new TokenFileWriter(path, tokenizer.VocabSize);
        var items = new List<(int Doc, string Text)>();  // work items: whole documents or chunks of one
        int docsInBatch = 0;
        long batchChars = 0, chars = 0;
        var po = new ParallelOptions { MaxDegreeOfParallelism = maxThreads };
        void Flush()
        {
            var results = new IReadOnlyList<int>[items.Count];
            Parallel.For(0, items.Count, po, i => results[i] = tokenizer.Encode(items[i].Text));
            var doc = new List<int>();
            for (int i = 0; i < items.Count; i++)
            {
                doc.AddRange(results[i]);
                if (i + 1 < items.Count && items[i + 1].Doc == items[i].Doc) continue;
                if (eos is int e) doc.Add(e);
                writer.Append(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(doc));
                doc.Clear();
            }
            chars += batchChars;
            progress?.Report(chars);
            items.Clear(); batchChars = 0; docsInBatch = 0;
        }
        foreach (var d in documents)
        {
            if (d.Length > chunkChars) foreach (var c in SafeChunks(d, chunkChars)) items.Add((docsInBatch, c));
            else items.Add((docsInBatch, d));
            docsInBatch++;
            batchChars += d.Length;
            if (batchChars >= 4_000_000 || items.Count >= 65536) Flush();
        }
        Flush();
        writer.Complete();
        return (writer.TokenCount, writer.DocumentCount, chars);
    }

    /// <summary>
    /// Cuts a long text into pieces of about <paramref name="target"/> characters, only right after a newline that is
    /// followed by a character that is not whitespace. No GPT-2 pre-token and no BERT word crosses such a point
    /// (the newline ends a whitespace run, the next character starts a new piece), so encoding the pieces one by one
    /// gives the ids of encoding the whole text.
    /// </summary>
    public static IEnumerable<string> SafeChunks(string text, int target)
    {
        int start = 0;
        while (text.Length - start > target)
        {
            int cut = -1;
            for (int i = start + target; i < text.Length; i++)
                if (text[i - 1] == '\n' && !char.IsWhiteSpace(text[i])) { cut = i; break; }
            if (cut < 0) break;
            yield return text[start..cut];
            start = cut;
        }
        yield return text[start..];
    }
}
