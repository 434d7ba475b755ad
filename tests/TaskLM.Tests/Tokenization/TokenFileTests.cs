// Token files: what the parallel encoder writes is what the memory-mapped reader gives back, documents intact.
using TaskLM.Data.Tokenization;

namespace TaskLM.Tests.Tokenization;

public class TokenFileTests
{
    [Fact]
    public void Parallel_encoding_round_trips_with_document_boundaries()
    {
        var tok = TokenizerLoader.Load("gpt2");
        var docs = TrainerTests.MobyLines.Value.Take(300).ToArray();
        var path = Path.Combine(Directory.CreateTempSubdirectory("tasklm-tokfile").FullName, "moby.tok");
        var (tokens, nDocs, _) = TokenFileEncoder.Encode(tok, docs, path);
        using var r = new TokenFileReader(path);
        Assert.Equal(2, r.BytesPerToken);  // GPT-2's 50,257 ids fit uint16
        Assert.Equal(50257, r.VocabSize);
        Assert.Equal(docs.Length, r.DocumentCount);
        Assert.Equal(nDocs, r.DocumentCount);
        Assert.Equal(tokens, r.Count);
        for (int d = 0; d < docs.Length; d++)
        {
            var ids = r.Document(d);
            Assert.Equal(tok.Encode(docs[d]).Append(50256), ids);  // in order, each ending with <|endoftext|>
            Assert.Equal(docs[d], tok.Decode(ids, skipSpecialTokens: true));
        }
        Assert.Equal(r.DocumentStarts[1], r.Document(0).Length);
        Assert.Equal(r[r.DocumentStarts[1]], r.Document(1)[0]);
        Assert.False(File.Exists(path + ".tmp"));
    }

    [Fact]
    public void One_long_document_is_split_for_all_cores_without_changing_its_ids()
    {
        // The whole book as one document, cut into ~10 KB chunks at line starts: same ids as encoding it whole.
        string book = string.Join("\n", TrainerTests.MobyLines.Value.Take(400));
        Assert.True(TokenFileEncoder.SafeChunks(book, 10_000).Count() > 10);
        foreach (var tok in new[] { TokenizerLoader.Load("gpt2"), TokenizerLoader.Load(HfParityTests.Hf("tok-wordpiece")) })
        {
            var path = Path.Combine(Directory.CreateTempSubdirectory("tasklm-tokfile-long").FullName, "book.tok");
            TokenFileEncoder.Encode(tok, [book], path, appendEos: false, chunkChars: 10_000);
            using var r = new TokenFileReader(path);
            Assert.Equal(1, r.DocumentCount);
            Assert.Equal(tok.Encode(book), r.Document(0));
        }
    }

    [Fact]
    public void Large_vocabularies_use_uint32_and_bad_files_are_named()
    {
        var dir = Directory.CreateTempSubdirectory("tasklm-tokfile32").FullName;
        var path = Path.Combine(dir, "big.tok");
        using (var w = new TokenFileWriter(path, 100_000))
        {
            w.Append([0, 99_999, 70_000]);
            w.Append([]);
            w.Append([5]);
            w.Complete();
        }
        using (var r = new TokenFileReader(path))
        {
            Assert.Equal(4, r.BytesPerToken);
            Assert.Equal(3, r.DocumentCount);
            Assert.Equal([0, 99_999, 70_000], r.Document(0));
            Assert.Empty(r.Document(1));
            Assert.Equal([5], r.Document(2));
            var window = new int[2];
            r.Read(2, window);
            Assert.Equal([70_000, 5], window);
        }
        // An id outside the vocabulary is refused; an abandoned writer leaves no file behind.
        using (var w = new TokenFileWriter(Path.Combine(dir, "bad.tok"), 10))
            Assert.Throws<ArgumentOutOfRangeException>(() => w.Append([10]));
        Assert.False(File.Exists(Path.Combine(dir, "bad.tok")));
        Assert.False(File.Exists(Path.Combine(dir, "bad.tok.tmp")));

        File.WriteAllText(Path.Combine(dir, "text.tok"), new string('x', 100));
        var e = Assert.Throws<FormatException>(() => new TokenFileReader(Path.Combine(dir, "text.tok")));
        Assert.Contains("text.tok", e.Message);
    }
}
