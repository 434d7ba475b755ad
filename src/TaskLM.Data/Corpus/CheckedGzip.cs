// A gzip reader that checks what .NET's GZipStream does not: every member's CRC-32 and length trailer (RFC 1952).
using System.Buffers.Binary;
using System.IO.Compression;
using System.IO.Hashing;

namespace TaskLM.Data.Corpus;

/// <summary>Decompresses a gzip file (one member or several concatenated, as <c>cat a.gz b.gz</c> makes) and
/// throws <see cref="DataFormatException"/> naming the file when a member is cut short or corrupt.
/// <para>Why: <see cref="GZipStream"/> returns end-of-stream when its input runs out, even in the middle of a
/// member, so a file cut at a flush boundary (or anywhere) reads as a shorter valid file. Here each member's
/// raw deflate data goes through <see cref="DeflateStream"/>, the decompressed bytes through CRC-32, and the
/// member's 8-byte trailer (CRC-32, length mod 2^32) must follow the deflate data — as <c>gzip -t</c> checks.</para>
/// <para>The deflate decoder reads its input in chunks and may read past the member's end; the trailer is
/// found in the last chunks it was given (an 8-byte match of the expected CRC and length), and the bytes after
/// it are handed to the next member.</para></summary>
public sealed class CheckedGzipStream : ForwardReadStream
{
    private readonly string _path;
    private readonly Feed _feed;
    private readonly Crc32 _crc = new();
    private DeflateStream? _inflate;
    private long _memberLength;
    private int _member;
    private bool _eof;

    /// <summary>Reads <paramref name="file"/> (positioned at the first gzip byte); <paramref name="path"/> names it in errors.</summary>
    public CheckedGzipStream(Stream file, string path)
    {
        _path = path;
        _feed = new Feed(file);
    }

    /// <summary>Opens a gzip file for checked reading.</summary>
    public static CheckedGzipStream Open(string path) =>
        new(new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16), path);

    /// <inheritdoc />
    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    /// <inheritdoc />
    public override int Read(Span<byte> buffer)
    {
        if (buffer.Length == 0) return 0;
        while (!_eof)
        {
            if (_inflate == null && !StartMember()) { _eof = true; break; }
            int n;
            try { n = _inflate!.Read(buffer); }
            catch (InvalidDataException e)
            {
                throw new DataFormatException(_path, 0, $"corrupt gzip data in member {_member} after {_memberLength:N0} decompressed bytes ({e.Message})", e);
            }
            if (n > 0)
            {
                _crc.Append(buffer[..n]);
                _memberLength += n;
                return n;
            }
            EndMember();
        }
        return 0;
    }

    // Reads a member header; false at a clean end of file (no member, or zero padding after the last one).
    private bool StartMember()
    {
        int b0 = _feed.ReadByte();
        if (b0 < 0) return false; // end of file (or an empty file: the caller sees no rows)
        int b1 = _feed.ReadByte();
        if (b0 != 0x1f || b1 != 0x8b)
        {
            if (_member == 0) throw new DataFormatException(_path, 0, "not a gzip file (it does not start with the gzip magic bytes 1f 8b)");
            // gzip ignores zero padding after the last member (tape blocks); anything else is not a member.
            if (b0 == 0 && b1 <= 0 && _feed.RestIsZero()) return false;
            throw new DataFormatException(_path, 0, $"bytes after gzip member {_member} are not another gzip member (trailing garbage)");
        }
        _member++;
        int cm = Need(), flg = Need();
        if (cm != 8) throw new DataFormatException(_path, 0, $"gzip member {_member} uses compression method {cm}, not deflate (8)");
        for (int i = 0; i < 6; i++) Need(); // MTIME (4), XFL, OS
        if ((flg & 0x04) != 0) { int xlen = Need() | (Need() << 8); for (int i = 0; i < xlen; i++) Need(); } // FEXTRA
        if ((flg & 0x08) != 0) while (Need() != 0) { } // FNAME, zero-terminated
        if ((flg & 0x10) != 0) while (Need() != 0) { } // FCOMMENT
        if ((flg & 0x02) != 0) { Need(); Need(); }     // FHCRC
        _feed.ClearHistory();
        _crc.Reset();
        _memberLength = 0;
        _inflate = new DeflateStream(_feed, CompressionMode.Decompress, leaveOpen: true);
        return true;
    }

    private int Need()
    {
        int b = _feed.ReadByte();
        return b >= 0 ? b : throw new DataFormatException(_path, 0, $"gzip member {_member + (_member == 0 ? 1 : 0)} is cut short inside its header");
    }

    // The deflate data ended (or its input ran out): the trailer must come next.
    private void EndMember()
    {
        _inflate!.Dispose();
        _inflate = null;
        Span<byte> expect = stackalloc byte[8];
        BinaryPrimitives.WriteUInt32LittleEndian(expect, _crc.GetCurrentHashAsUInt32());
        BinaryPrimitives.WriteUInt32LittleEndian(expect[4..], (uint)_memberLength);
        if (!_feed.ConsumeTrailer(expect))
            throw new DataFormatException(_path, 0,
                $"truncated or corrupt gzip: member {_member} ends after {_memberLength:N0} decompressed bytes without its CRC-32/length trailer " +
                "(the file was cut short or damaged; `gzip -t` fails on it too)");
    }

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (disposing) { _inflate?.Dispose(); _feed.Dispose(); }
        base.Dispose(disposing);
    }

    // The compressed bytes as the deflate decoder reads them: remembers the last two chunks handed out (where a
    // member's end and trailer lie) and replays pushed-back bytes (the start of the next member) first.
    private sealed class Feed(Stream file) : ForwardReadStream
    {
        private byte[] _pending = [];
        private int _pendingAt;
        // The last two chunks handed out, in reused buffers (no allocation per read).
        private byte[] _prev = [], _last = [];
        private int _prevLen, _lastLen;
        private bool _fileEof;

        public void ClearHistory() { _prevLen = 0; _lastLen = 0; }

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            int n = ReadRaw(buffer);
            if (n > 0)
            {
                (_prev, _last) = (_last, _prev);
                _prevLen = _lastLen;
                if (_last.Length < n) _last = new byte[Math.Max(n, 1 << 16)];
                buffer[..n].CopyTo(_last);
                _lastLen = n;
            }
            return n;
        }

        private int ReadRaw(Span<byte> buffer)
        {
            if (_pendingAt < _pending.Length)
            {
                int n = Math.Min(buffer.Length, _pending.Length - _pendingAt);
                _pending.AsSpan(_pendingAt, n).CopyTo(buffer);
                _pendingAt += n;
                return n;
            }
            if (_fileEof) return 0;
            int r = file.Read(buffer);
            if (r == 0) _fileEof = true;
            return r;
        }

        public override int ReadByte()
        {
            Span<byte> one = stackalloc byte[1];
            return ReadRaw(one) == 1 ? one[0] : -1;
        }

        // Finds the 8-byte trailer in what the decoder was given (plus up to 8 more bytes), pushes back what follows it.
        public bool ConsumeTrailer(ReadOnlySpan<byte> expect)
        {
            var seen = new byte[_prevLen + _lastLen + 8];
            _prev.AsSpan(0, _prevLen).CopyTo(seen);
            _last.AsSpan(0, _lastLen).CopyTo(seen.AsSpan(_prevLen));
            int have = _prevLen + _lastLen;
            while (have < seen.Length)
            {
                int r = ReadRaw(seen.AsSpan(have));
                if (r == 0) break;
                have += r;
            }
            int at = seen.AsSpan(0, have).IndexOf(expect);
            if (at < 0) return false;
            var rest = seen.AsSpan(at + 8, have - at - 8).ToArray();
            // Bytes still pending (not yet read) come after the ones pushed back now.
            var left = _pending.AsSpan(_pendingAt).ToArray();
            _pending = [.. rest, .. left];
            _pendingAt = 0;
            ClearHistory();
            return true;
        }

        public bool RestIsZero()
        {
            Span<byte> buf = stackalloc byte[4096];
            int n;
            while ((n = ReadRaw(buf)) > 0)
                if (buf[..n].ContainsAnyExcept((byte)0)) return false;
            return true;
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing) file.Dispose();
            base.Dispose(disposing);
        }

    }
}

/// <summary>A read-only, forward-only stream: what both readers above share (no seek, length, position or write).</summary>
public abstract class ForwardReadStream : Stream
{
    /// <inheritdoc />
    public override bool CanRead => true;
    /// <inheritdoc />
    public override bool CanSeek => false;
    /// <inheritdoc />
    public override bool CanWrite => false;
    /// <inheritdoc />
    public override long Length => throw new NotSupportedException();
    /// <inheritdoc />
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
    /// <inheritdoc />
    public override void Flush() { }
    /// <inheritdoc />
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    /// <inheritdoc />
    public override void SetLength(long value) => throw new NotSupportedException();
    /// <inheritdoc />
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}
