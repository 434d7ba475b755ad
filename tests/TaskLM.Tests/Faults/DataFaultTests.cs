// Fault suite, data side (issue 11): each audited bad input or fault of the data, tokenizer, metrics and scrape
// verbs, run through the real CLI. Each test asserts the exit code, the message's key words, and that nothing
// already there was lost or overwritten. Inputs come from tests/fixtures/data/faults (made by make_faults.py
// with CPython's gzip/zlib) or are written here. docs/reliability.md lists every case with its test.
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using TaskLM.Data.Corpus;

namespace TaskLM.Tests.Faults;

public class DataFaultTests
{
    static string Fx(string name) => Path.Combine(AppContext.BaseDirectory, "fixtures", "data", "faults", name);

    static string NewDir() => Directory.CreateTempSubdirectory("tasklm-faults-").FullName;

    static CliResult Run(params string[] args) => CliRunner.Run(args);

    // An earlier output the failing command must leave byte for byte as it was.
    static (string Path, byte[] Bytes) Existing(string dir, string name)
    {
        var path = Path.Combine(dir, name);
        File.WriteAllText(path, "{\"text\": \"earlier output, must survive\"}\n");
        return (path, File.ReadAllBytes(path));
    }

    static void AssertUntouched((string Path, byte[] Bytes) f)
    {
        Assert.True(File.Exists(f.Path), $"{f.Path} was removed");
        Assert.Equal(f.Bytes, File.ReadAllBytes(f.Path));
        // No temporary file of an aborted write left beside it.
        var dir = Path.GetDirectoryName(f.Path)!;
        Assert.DoesNotContain(Directory.EnumerateFileSystemEntries(dir), p => Path.GetFileName(p).Contains(".tmp"));
    }

    static void AssertFails(CliResult r, params string[] keyWords)
    {
        Assert.True(r.ExitCode == 1, $"exit {r.ExitCode}, expected 1; stderr: {r.Stderr}; stdout: {r.Stdout}");
        var lines = r.Stderr.Trim().Split('\n');
        var line = lines[0];
        Assert.StartsWith("error:", line);
        // One line, no stack trace or help dump (a usage error adds the CLI's "see 'tasklm <verb> --help'").
        Assert.True(lines.Length == 1 || (lines.Length == 2 && lines[1].StartsWith("see 'tasklm")), r.Stderr);
        foreach (var k in keyWords) Assert.Contains(k, line);
    }

    static string WriteJsonl(string dir, string name, IEnumerable<JsonObject> rows)
    {
        var path = Path.Combine(dir, name);
        File.WriteAllLines(path, rows.Select(r => r.ToJsonString()));
        return path;
    }

    static IEnumerable<JsonObject> Labelled(int n) => Enumerable.Range(0, n).Select(i => new JsonObject
    {
        ["text"] = $"message {i}: {(i % 2 == 0 ? "win money now, claim the prize" : "minutes of the meeting on tuesday")} #{i * 7919 % 1000}",
        ["label"] = i % 2 == 0 ? "spam" : "ham",
    });

    // ---- import: empty, truncated and fake inputs ------------------------------------------------------

    [Fact]
    public void Import_empty_jsonl_and_csv_are_errors_unless_allow_empty()
    {
        var dir = NewDir();
        foreach (var name in new[] { "empty.jsonl", "empty.csv" })
        {
            var input = Path.Combine(dir, name);
            File.WriteAllBytes(input, []);
            var old = Existing(dir, "out.jsonl");
            AssertFails(Run("data", "import", input, "--out", old.Path), name, "no rows", "0 bytes", "--allow-empty");
            AssertUntouched(old);

            var ok = Run("data", "import", input, "--out", Path.Combine(dir, "allowed.jsonl"), "--allow-empty", "--json");
            Assert.Equal(0, ok.ExitCode);
            Assert.Equal(0, (long)JsonNode.Parse(ok.Stdout)!["rows"]!);
            Assert.Equal(0, new FileInfo(Path.Combine(dir, "allowed.jsonl")).Length);
        }
    }

    [Fact]
    public void Import_zero_byte_gz_is_an_error()
    {
        var dir = NewDir();
        var old = Existing(dir, "out.jsonl");
        AssertFails(Run("data", "import", Fx("zero.jsonl.gz"), "--out", old.Path), "zero.jsonl.gz", "no rows", "0 bytes");
        AssertUntouched(old);
    }

    [Fact]
    public void Import_gz_cut_at_a_flush_boundary_is_an_error_naming_the_file()
    {
        // The first 500 of 1,000 rows decode cleanly and the stream then stops: GZipStream alone reports a clean end.
        var dir = NewDir();
        var old = Existing(dir, "out.jsonl");
        AssertFails(Run("data", "import", Fx("cut_at_flush.jsonl.gz"), "--out", old.Path), "cut_at_flush.jsonl.gz", "truncated", "gzip");
        AssertUntouched(old);
    }

    [Fact]
    public void Import_gz_cut_mid_line_says_truncated_gzip_not_invalid_json()
    {
        var dir = NewDir();
        var old = Existing(dir, "out.jsonl");
        var r = Run("data", "import", Fx("cut_mid.jsonl.gz"), "--out", old.Path);
        AssertFails(r, "cut_mid.jsonl.gz", "truncated", "gzip");
        Assert.DoesNotContain("invalid JSON", r.Stderr);
        AssertUntouched(old);
    }

    [Fact]
    public void Import_reads_every_member_of_a_multi_member_gz_and_the_whole_intact_file()
    {
        // The control for the two cases above: valid gzip (one member, or two as `cat a.gz b.gz` makes) is read whole.
        var dir = NewDir();
        foreach (var name in new[] { "rows1000.jsonl.gz", "two_members.jsonl.gz" })
        {
            var r = Run("data", "import", Fx(name), "--out", Path.Combine(dir, name + ".out.jsonl"), "--json");
            Assert.True(r.ExitCode == 0, r.Stderr);
            Assert.Equal(1000, (long)JsonNode.Parse(r.Stdout)!["rows"]!);
            var rows = JsonlFile.Read(Path.Combine(dir, name + ".out.jsonl")).ToList();
            Assert.Equal("row 999: the whale surfaced near the ship", rows[^1].Fields["text"]!.GetValue<string>());
        }
    }

    [Fact]
    public void Every_cut_of_a_gzip_file_is_detected_and_the_whole_file_matches_CPython()
    {
        // Property behind the two cases above: a gzip member cut at ANY byte (in the header, the deflate data or
        // the trailer) is an error naming the file, never a shorter valid-looking stream.
        var full = File.ReadAllBytes(Fx("rows1000.jsonl.gz"));
        byte[] Decode(byte[] bytes)
        {
            using var s = new CheckedGzipStream(new MemoryStream(bytes), "x.jsonl.gz");
            using var m = new MemoryStream();
            s.CopyTo(m);
            return m.ToArray();
        }
        var expected = Encoding.UTF8.GetBytes(string.Concat(Enumerable.Range(0, 1000).Select(i =>
            JsonSerializer.Serialize(new { text = $"row {i}: the whale surfaced near the ship", label = i % 2 == 1 ? "a" : "b" }).Replace(",", ", ").Replace("\":", "\": ") + "\n")));
        Assert.Equal(expected, Decode(full));  // the same bytes CPython's json.dumps + gzip wrote
        for (int cut = 1; cut < full.Length; cut++)
        {
            var e = Assert.Throws<DataFormatException>(() => Decode(full[..cut]));
            Assert.StartsWith("x.jsonl.gz: ", e.Message);
        }
    }

    [Fact]
    public void Gzip_zero_padding_is_ignored_and_trailing_garbage_is_an_error_as_gzip_does()
    {
        var two = File.ReadAllBytes(Fx("two_members.jsonl.gz"));
        long Count(byte[] bytes)
        {
            using var s = new CheckedGzipStream(new MemoryStream(bytes), "x.gz");
            using var m = new MemoryStream();
            s.CopyTo(m);
            return m.Length;
        }
        long whole = Count(two);
        Assert.Equal(whole, Count([.. two, .. new byte[512]]));  // tape-block zero padding: gzip ignores it
        var e = Assert.Throws<DataFormatException>(() => Count([.. two, .. "garbage\n"u8.ToArray()]));
        Assert.Contains("trailing garbage", e.Message);
        var notGzip = Assert.Throws<DataFormatException>(() => Count("{\"text\": 1}\n"u8.ToArray()));
        Assert.Contains("not a gzip file", notGzip.Message);
    }

    [Fact]
    public void Import_folder_with_no_files_is_an_error()
    {
        var dir = NewDir();
        var empty = Directory.CreateDirectory(Path.Combine(dir, "emptydir")).FullName;
        File.WriteAllText(Path.Combine(empty, ".hidden"), "not data");
        var old = Existing(dir, "out.jsonl");
        AssertFails(Run("data", "import", empty, "--out", old.Path), "emptydir", "no rows", "no files");
        AssertUntouched(old);
    }

    [Fact]
    public void Import_fake_parquet_with_PAR1_magic_names_the_file()
    {
        var dir = NewDir();
        var old = Existing(dir, "out.jsonl");
        var r = Run("data", "import", Fx("fake.parquet"), "--out", old.Path);
        AssertFails(r, "fake.parquet", "not a readable Parquet file");
        AssertUntouched(old);
    }

    [Fact]
    public void Import_jsonl_with_latin1_bytes_names_the_line()
    {
        // Before: the JSONL reader replaced the byte with U+FFFD and imported "caf\uFFFD" without a word.
        var dir = NewDir();
        var old = Existing(dir, "out.jsonl");
        AssertFails(Run("data", "import", Fx("latin1.jsonl"), "--out", old.Path), "latin1.jsonl:2", "not valid UTF-8");
        AssertUntouched(old);
    }

    [Fact]
    public async Task Import_interrupted_leaves_no_partial_output_and_the_earlier_output_intact()
    {
        if (!OperatingSystem.IsLinux() && !OperatingSystem.IsMacOS()) return;
        var dir = NewDir();
        var input = Path.Combine(dir, "big.jsonl");
        using (var w = new StreamWriter(input))
            for (int i = 0; i < 200_000; i++)
                w.WriteLine($"{{\"text\": \"row {i} of a long corpus that takes a while to compress, {i * 2654435761L % 1000003}\", \"label\": \"{i % 3}\"}}");
        var outPath = Path.Combine(dir, "out.jsonl.gz");
        File.WriteAllText(outPath, "earlier output");
        var before = File.ReadAllBytes(outPath);

        var psi = new System.Diagnostics.ProcessStartInfo("dotnet") { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var a in new[] { CliRunner.CliDll, "data", "import", input, "--out", outPath, "--json" }) psi.ArgumentList.Add(a);
        using var p = System.Diagnostics.Process.Start(psi)!;
        var stderr = p.StandardError.ReadToEndAsync();
        _ = p.StandardOutput.ReadToEndAsync();
        // Wait until the write has begun (its temporary file exists), then interrupt. SIGTERM, not SIGINT: a test
        // host started in the background may have SIGINT ignored, which a child inherits; the handler is the same.
        var deadline = DateTime.UtcNow.AddSeconds(120);
        while (!p.HasExited && DateTime.UtcNow < deadline && !Directory.EnumerateFiles(dir, "out.jsonl.gz.tmp-*").Any()) Thread.Sleep(20);
        if (p.HasExited) Assert.Fail($"the import finished before it could be interrupted (exit {p.ExitCode}); the test needs a bigger input");
        Assert.Equal(0, CliRunner.Kill(p.Id, 15));
        Assert.True(p.WaitForExit(60_000));
        Assert.Equal(143, p.ExitCode);
        Assert.Contains("interrupted: nothing written", await stderr);
        Assert.Equal(before, File.ReadAllBytes(outPath));
        Assert.Empty(Directory.EnumerateFiles(dir, "*.tmp-*"));
    }

    // ---- split ----------------------------------------------------------------------------------------

    [Fact]
    public void Split_refuses_an_input_it_would_overwrite()
    {
        var dir = NewDir();
        var splitDir = Path.Combine(dir, "splits");
        Assert.Equal(0, Run("data", "split", WriteJsonl(dir, "all.jsonl", Labelled(200)), "--out", splitDir).ExitCode);
        var train = Path.Combine(splitDir, "train.jsonl");
        var trainBytes = File.ReadAllBytes(train);
        var manifest = File.ReadAllBytes(Path.Combine(splitDir, "manifest.json"));

        AssertFails(Run("data", "split", train, "--out", splitDir), "train.jsonl", "is the input", "nothing written");
        Assert.Equal(trainBytes, File.ReadAllBytes(train));
        Assert.Equal(manifest, File.ReadAllBytes(Path.Combine(splitDir, "manifest.json")));
    }

    [Fact]
    public void Split_refuses_an_input_that_is_a_split_file_of_the_earlier_split()
    {
        // A 2-way re-split of validation.jsonl would write train/test and then remove validation.jsonl as stale.
        var dir = NewDir();
        var splitDir = Path.Combine(dir, "splits");
        Assert.Equal(0, Run("data", "split", WriteJsonl(dir, "all.jsonl", Labelled(200)), "--out", splitDir).ExitCode);
        var validation = Path.Combine(splitDir, "validation.jsonl");
        var bytes = File.ReadAllBytes(validation);
        AssertFails(Run("data", "split", validation, "--out", splitDir, "--ratios", "0.5,0.5"), "validation.jsonl", "earlier split", "nothing written");
        Assert.Equal(bytes, File.ReadAllBytes(validation));
    }

    [Fact]
    public void Split_two_way_resplit_into_a_three_way_folder_removes_the_stale_validation_file()
    {
        var dir = NewDir();
        var splitDir = Path.Combine(dir, "splits");
        var input = WriteJsonl(dir, "all.jsonl", Labelled(200));
        Assert.Equal(0, Run("data", "split", input, "--out", splitDir).ExitCode);
        Assert.True(File.Exists(Path.Combine(splitDir, "validation.jsonl")));

        var r = Run("data", "split", input, "--out", splitDir, "--ratios", "0.8,0.2");
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Contains("removed", r.Stdout);
        Assert.Contains("validation.jsonl", r.Stdout);
        Assert.Equal(["manifest.json", "test.jsonl", "train.jsonl"], Directory.GetFiles(splitDir).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        // The folder now holds exactly one split: every row once, and the manifest's hashes are the files'.
        var m = JsonNode.Parse(File.ReadAllText(Path.Combine(splitDir, "manifest.json")))!;
        Assert.Equal("validation.jsonl", (string)m["removed_stale"]![0]!);
        var texts = new List<string>();
        foreach (var name in new[] { "train", "test" })
        {
            var file = Path.Combine(splitDir, name + ".jsonl");
            Assert.Equal((string)m["splits"]![name]!["sha256"]!, DatasetSplitter.Sha256Of(file));
            texts.AddRange(JsonlFile.Read(file).Select(row => row.Fields["text"]!.GetValue<string>()));
        }
        Assert.Equal(200, texts.Count);
        Assert.Equal(200, texts.Distinct().Count());
    }

    [Fact]
    public void Split_of_one_row_is_refused_unless_allow_empty()
    {
        var dir = NewDir();
        var input = WriteJsonl(dir, "one.jsonl", Labelled(1));
        var splitDir = Path.Combine(dir, "splits");
        AssertFails(Run("data", "split", input, "--out", splitDir), "one.jsonl", "validation and test would be empty", "1 row", "--allow-empty");
        Assert.False(Directory.Exists(splitDir) && Directory.EnumerateFileSystemEntries(splitDir).Any(), "a refused split wrote files");

        var ok = Run("data", "split", input, "--out", splitDir, "--allow-empty");
        Assert.Equal(0, ok.ExitCode);
        Assert.Contains("warning: split validation and test is empty", ok.Stderr);
    }

    [Fact]
    public void Split_where_every_row_is_one_near_duplicate_group_is_refused()
    {
        var dir = NewDir();
        var rows = Enumerable.Range(0, 50).Select(_ => new JsonObject { ["text"] = "the very same message sent fifty times over", ["label"] = "a" });
        var splitDir = Path.Combine(dir, "splits");
        AssertFails(Run("data", "split", WriteJsonl(dir, "dups.jsonl", rows), "--out", splitDir, "--group-near-duplicates"),
            "would be empty", "50 rows form 1 near-duplicate group");
        Assert.False(File.Exists(Path.Combine(splitDir, "train.jsonl")));
    }

    // ---- clean ----------------------------------------------------------------------------------------

    [Fact]
    public void Clean_negative_min_chars_is_refused()
    {
        var dir = NewDir();
        var old = Existing(dir, "out.jsonl");
        AssertFails(Run("data", "clean", WriteJsonl(dir, "in.jsonl", Labelled(20)), "--out", old.Path, "--min-chars", "-5"), "min_chars", "--min-chars", "≥ 0", "-5");
        AssertUntouched(old);
    }

    [Fact]
    public void Clean_labels_matching_nothing_is_an_error_and_writes_nothing()
    {
        var dir = NewDir();
        var old = Existing(dir, "out.jsonl");
        var r = Run("data", "clean", WriteJsonl(dir, "in.jsonl", Labelled(200)), "--out", old.Path, "--labels", "phish,scam");
        AssertFails(r, "in.jsonl: none of the allowed labels", "phish", "scam", "ham 100", "spam 100", "nothing written");
        AssertUntouched(old);
        Assert.False(File.Exists(Path.Combine(dir, "clean-report.json")));
    }

    [Fact]
    public void Clean_that_removes_every_row_is_an_error_unless_allow_empty()
    {
        var dir = NewDir();
        var input = WriteJsonl(dir, "in.jsonl", Labelled(30));
        var old = Existing(dir, "out.jsonl");
        AssertFails(Run("data", "clean", input, "--out", old.Path, "--min-chars", "100000"), "in.jsonl: every one of the 30 rows was removed", "length_chars: 30", "--allow-empty");
        AssertUntouched(old);
        var ok = Run("data", "clean", input, "--out", Path.Combine(dir, "empty.jsonl"), "--min-chars", "100000", "--allow-empty", "--json");
        Assert.Equal(0, ok.ExitCode);
        Assert.Equal(0, new FileInfo(Path.Combine(dir, "empty.jsonl")).Length);
    }

    // ---- tokenize, tokenizer train, encode --------------------------------------------------------------

    [Fact]
    public void Tokenize_max_length_below_one_is_refused()
    {
        foreach (var n in new[] { "0", "-3" })
            AssertFails(Run("tokenize", "--tokenizer", "gpt2", "--text", "hello world", "--max-length", n), "--max-length", "1, got " + n);
        // The library refuses it too (training and serving call the tokenizer without the CLI's check).
        var tok = TaskLM.Data.Tokenization.TokenizerLoader.Load("gpt2");
        var e = Assert.Throws<ArgumentException>(() => tok.EncodeForModel("hello world", null, new TaskLM.Data.Tokenization.EncodeOptions { MaxLength = 0 }));
        Assert.Contains("max_length", e.Message);
    }

    static string MobyDick() { var c = CorpusCatalog.Load(); return c.PathOf(c.Get("moby-dick")); }

    [Fact]
    public void Tokenizer_train_on_the_shipped_jsonl_gz_learns_words_not_replacement_characters()
    {
        var dir = NewDir();
        var outDir = Path.Combine(dir, "tok");
        var r = Run("tokenizer", "train", "--kind", "bpe", "--input", MobyDick(), "--out", outDir, "--vocab-size", "400", "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var vocab = JsonNode.Parse(File.ReadAllText(Path.Combine(outDir, "vocab.json")))!.AsObject().Select(kv => kv.Key).ToHashSet();
        // Byte-level BPE spells a leading space Ġ: whole English words of the novel must be among the first merges.
        foreach (var w in new[] { "Ġthe", "Ġand", "Ġwhale" }) Assert.Contains(w, vocab);
        // U+FFFD (EF BF BD) as byte-level symbols is ï¿½: none of it, as there would be had the gzip bytes been read as text.
        Assert.DoesNotContain(vocab, t => t.Contains("ï¿"));
    }

    [Fact]
    public void Tokenizer_train_on_empty_latin1_or_binary_input_is_refused()
    {
        var dir = NewDir();
        var empty = Path.Combine(dir, "empty.txt");
        File.WriteAllText(empty, "\n\n");
        var e1 = Run("tokenizer", "train", "--kind", "wordpiece", "--input", empty, "--out", Path.Combine(dir, "t1"));
        AssertFails(e1, "empty.txt", "no documents");
        Assert.DoesNotContain("One or more errors", e1.Stderr);
        AssertFails(Run("tokenizer", "train", "--kind", "bpe", "--input", Fx("latin1.txt"), "--out", Path.Combine(dir, "t2")), "latin1.txt:1", "not valid utf-8", "--encoding");
        AssertFails(Run("tokenizer", "train", "--kind", "bpe", "--input", Fx("binary.bin"), "--out", Path.Combine(dir, "t3")), "binary.bin", "not valid utf-8");
        foreach (var t in new[] { "t1", "t2", "t3" }) Assert.False(Directory.Exists(Path.Combine(dir, t)));
        // The same latin-1 file with its encoding named trains.
        Assert.Equal(0, Run("tokenizer", "train", "--kind", "wordpiece", "--input", Fx("latin1.txt"), "--encoding", "latin-1",
            "--out", Path.Combine(dir, "t4"), "--vocab-size", "60", "--min-frequency", "1").ExitCode);
    }

    [Fact]
    public void Encode_of_the_shipped_jsonl_gz_counts_its_139_documents()
    {
        // Issue 11's figures: GPT-2 encodes Moby-Dick's 139 chapters (rows) into 293,753 tokens, EOS included;
        // the bug read the gzip bytes as one text document of 387,223 tokens.
        var dir = NewDir();
        var r = Run("data", "encode", "--input", MobyDick(), "--out", Path.Combine(dir, "moby.tok"), "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var j = JsonNode.Parse(r.Stdout)!;
        Assert.Equal(139, (int)j["documents"]!);
        Assert.Equal(293_753, (long)j["tokens"]!);
    }

    [Fact]
    public void Encode_of_binary_or_latin1_input_is_refused_and_writes_no_token_file()
    {
        var dir = NewDir();
        var old = Existing(dir, "out.tok");
        AssertFails(Run("data", "encode", "--input", Fx("binary.bin"), "--out", old.Path), "binary.bin", "not valid utf-8");
        AssertUntouched(old);
        AssertFails(Run("data", "encode", "--input", Fx("latin1.txt"), "--out", old.Path), "latin1.txt:1", "not valid utf-8", "--encoding");
        AssertUntouched(old);
        AssertFails(Run("data", "encode", "--input", Fx("latin1.jsonl"), "--out", old.Path), "latin1.jsonl:2", "not valid UTF-8");
        AssertUntouched(old);
    }

    [Fact]
    public void Encode_of_empty_input_is_refused_unless_allow_empty()
    {
        var dir = NewDir();
        var empty = Path.Combine(dir, "empty.jsonl");
        File.WriteAllBytes(empty, []);
        var old = Existing(dir, "out.tok");
        AssertFails(Run("data", "encode", "--input", empty, "--out", old.Path), "empty.jsonl", "no documents", "nothing written");
        AssertUntouched(old);
        var ok = Run("data", "encode", "--input", empty, "--out", Path.Combine(dir, "empty.tok"), "--allow-empty", "--json");
        Assert.Equal(0, ok.ExitCode);
        Assert.Equal(0, (int)JsonNode.Parse(ok.Stdout)!["documents"]!);
    }

    // ---- metrics, scrape ------------------------------------------------------------------------------

    [Fact]
    public void Bleu_and_chrf_on_empty_files_are_errors_not_zero_scores()
    {
        var dir = NewDir();
        var hyp = Path.Combine(dir, "hyp.txt");
        var reference = Path.Combine(dir, "ref.txt");
        File.WriteAllText(hyp, "");
        File.WriteAllText(reference, "");
        foreach (var metric in new[] { "bleu", "chrf" })
            AssertFails(Run("metrics", metric, "--hyp", hyp, "--ref", reference), "no segments to score", "hyp.txt", "ref.txt");
    }

    [Fact]
    public void Scrape_of_a_host_that_does_not_resolve_says_so_and_keeps_the_earlier_output()
    {
        // .invalid never resolves (RFC 2606); before, the report said "robots.txt disallows" and --out was emptied.
        var dir = NewDir();
        var old = Existing(dir, "pages.jsonl");
        var r = CliRunner.Run(["data", "scrape", "http://no-such-host.invalid/page", "--out", old.Path, "--retries", "0", "--timeout", "10"], timeoutSeconds: 120);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("could not be resolved", r.Stdout + r.Stderr);
        Assert.DoesNotContain("robots.txt disallows", r.Stdout + r.Stderr);
        Assert.Contains("no pages fetched", r.Stderr);
        AssertUntouched(old);
        Assert.False(File.Exists(old.Path + ".partial"));
    }

    // ---- model files: the readers' errors name the file (message change in Models/) -----------------

    [Fact]
    public void Safetensors_header_that_is_not_json_names_the_file()
    {
        var path = Path.Combine(NewDir(), "model.safetensors");
        var header = Encoding.ASCII.GetBytes("x{not json}     ");
        File.WriteAllBytes(path, [.. BitConverter.GetBytes((long)header.Length), .. header]);
        var e = Assert.Throws<InvalidDataException>(() => TaskLM.Models.SafeTensors.Load(path));
        Assert.StartsWith(path + ": not a safetensors file", e.Message);
        Assert.Contains("header is not a JSON object", e.Message);
    }

    [Fact]
    public void Torch_pickle_with_an_unsupported_opcode_names_the_file()
    {
        var path = Path.Combine(NewDir(), "pytorch_model.bin");
        using (var zip = System.IO.Compression.ZipFile.Open(path, System.IO.Compression.ZipArchiveMode.Create))
        {
            using (var s = zip.CreateEntry("archive/data.pkl").Open()) s.Write([0x80, 0x02, 0x67, 0x2e]); // PROTO 2, 'g' (GET), STOP
            using (var s = zip.CreateEntry("archive/byteorder").Open()) s.Write("little"u8);
        }
        var e = Assert.Throws<InvalidDataException>(() => TaskLM.Models.TorchPickle.LoadStateDict(path));
        Assert.StartsWith(path + ": ", e.Message);
        Assert.Contains("opcode 0x67", e.Message);
    }
    // ---- cases the audit found GOOD: held here so they stay so --------------------------------------

    /// <summary>One row per audited GOOD case of the data side (the case names of docs/reliability.md).</summary>
    public static TheoryData<string> GoodCases() =>
    [
        "import: malformed JSONL line", "import: malformed line, --on-error skip", "import: CSV missing mapped column",
        "import: ragged CSV rows (fail / skip)", "import: latin-1 bytes read as utf-8 (csv, txt)", "import: binary file",
        "import: nonexistent path", "import: --out in nonexistent dir", "import: failing import onto existing output",
        "import: JSONL line that is an array", "import: unclosed CSV quote", "import: --format csv on JSONL",
        "import: unknown --encoding", "import: folder with one latin-1 file", "import: text file named .parquet",
        "split: ratios sum ≠1 (>1, <1, negative)", "split: non-numeric ratio", "split: stratify column absent",
        "split: counts > rows; names≠ratios; empty input", "clean: all-duplicate rows", "clean: text column absent",
        "clean: --near-threshold 7 / --skip bogus / bad --config key", "clean: --out = input",
        "tokenizer: truncated tokenizer.json", "tokenizer: Unigram model type", "tokenizer: folder without vocab.txt",
        "tokenize: empty string", "metrics: hyp/ref line counts differ (bleu, rouge, classification, seqeval)",
        "metrics: NLL \"abc\"/negative; squad bad JSON; missing file", "encode: missing input, malformed, missing column, bad --doc-split",
        "report: missing / empty folder / truncated metrics line",
    ];

    [Theory]
    [MemberData(nameof(GoodCases))]
    public void Audited_good_case_stays_good(string name)
    {
        var dir = NewDir();
        string F(string file, string text) { var p = Path.Combine(dir, file); Directory.CreateDirectory(Path.GetDirectoryName(p)!); File.WriteAllText(p, text); return p; }
        string B(string file, byte[] bytes) { var p = Path.Combine(dir, file); Directory.CreateDirectory(Path.GetDirectoryName(p)!); File.WriteAllBytes(p, bytes); return p; }
        var cls = WriteJsonl(dir, "cls.jsonl", Labelled(200));
        var old = Existing(dir, "out.jsonl");
        var latin1 = new byte[] { (byte)'b', (byte)'o', (byte)'d', (byte)'y', (byte)',', (byte)'l', (byte)'\n', (byte)'c', (byte)'a', (byte)'f', 0xE9, (byte)',', (byte)'x', (byte)'\n' };
        // Each case: the failing command(s) with key words; "" as the first key word means exit 0 is expected.
        var runs = new List<(string[] Args, string[] Keys)>();
        void Fails(string[] args, params string[] keys) => runs.Add((args, keys));
        void Works(string[] args, params string[] stdoutKeys) => runs.Add((args, ["", .. stdoutKeys]));
        string[] Import(string input, params string[] more) => ["data", "import", input, "--out", old.Path, .. more];
        switch (name)
        {
            case "import: malformed JSONL line":
                Fails(Import(F("malformed.jsonl", "{\"text\": \"a\"}\n{\"text\": \"b\"}\n{\"text\": \"c\" \"label\": 1}\n")), "malformed.jsonl:3", "invalid JSON at column");
                break;
            case "import: malformed line, --on-error skip":
                Works(["data", "import", F("malformed.jsonl", "{\"text\": \"a\"}\n{\"text\": \"b\"}\n{\"text\": \"c\" \"label\": 1}\n"), "--out", Path.Combine(dir, "skip.jsonl"), "--on-error", "skip", "--json"], "\"skipped\": 1", "\"line\": 3");
                break;
            case "import: CSV missing mapped column":
                Fails(Import(F("missingcol.csv", "body,label\nhello,ham\n"), "--text-column", "text"), "missingcol.csv:2", "no column 'text'", "body, label");
                break;
            case "import: ragged CSV rows (fail / skip)":
                Fails(Import(F("ragged.csv", "text,label\na,b\nc,d,e,f\n")), "ragged.csv:3", "expected 2 fields", "found 4");
                Works(["data", "import", Path.Combine(dir, "ragged.csv"), "--out", Path.Combine(dir, "ragged.jsonl"), "--on-error", "skip", "--json"], "\"skipped\": 1");
                break;
            case "import: latin-1 bytes read as utf-8 (csv, txt)":
                Fails(Import(B("latin1.csv", latin1)), "latin1.csv:2", "not valid utf-8", "--encoding");
                Fails(Import(Fx("latin1.txt")), "latin1.txt:1", "not valid utf-8");
                break;
            case "import: binary file":
                Fails(Import(Fx("binary.bin")), "binary.bin:2", "not valid utf-8"); // line 1 is a lone CR (blank)
                break;
            case "import: nonexistent path":
                Fails(Import(Path.Combine(dir, "nope.jsonl")), "nope.jsonl", "no such file or folder");
                break;
            case "import: --out in nonexistent dir":
                Works(["data", "import", cls, "--out", Path.Combine(dir, "a", "b", "c.jsonl"), "--json"], "\"rows\": 200");
                break;
            case "import: failing import onto existing output":
                Fails(Import(F("bad.jsonl", "{\"text\": \"a\"}\nnot json\n")), "bad.jsonl:2");
                break;
            case "import: JSONL line that is an array":
                Fails(Import(F("nonobject.jsonl", "{\"text\": \"a\"}\n[1, 2]\n")), "nonobject.jsonl:2", "expected a JSON object, found array");
                break;
            case "import: unclosed CSV quote":
                Fails(Import(F("unclosed.csv", "text,label\n\"never closed,ham\nnext,spam\n")), "unclosed.csv:2", "quote");
                break;
            case "import: --format csv on JSONL":
                Fails(Import(cls, "--format", "csv"), "cls.jsonl:1");
                break;
            case "import: unknown --encoding":
                Fails(Import(Fx("latin1.txt"), "--encoding", "klingon"), "'klingon'", "encoding");
                break;
            case "import: folder with one latin-1 file":
                F("fold/ham/a.txt", "fine text"); F("fold/spam/b.txt", "also fine"); B("fold/ham/d.txt", latin1);
                Fails(Import(Path.Combine(dir, "fold")), "d.txt:2", "not valid utf-8");
                break;
            case "import: text file named .parquet":
                Fails(Import(F("notparquet.parquet", "just text\n")), "notparquet.parquet", "not a readable Parquet file");
                break;
            case "split: ratios sum ≠1 (>1, <1, negative)":
                foreach (var r in new[] { "0.8,0.3,0.1", "0.5,0.2,0.1", "1.2,-0.1,-0.1" })
                    Fails(["data", "split", cls, "--out", Path.Combine(dir, "s"), "--ratios", r], "ratios must be ≥ 0 and sum to 1");
                break;
            case "split: non-numeric ratio":
                Fails(["data", "split", cls, "--out", Path.Combine(dir, "s"), "--ratios", "a,0.5,0.5"], "--ratios", "'a' is not a number");
                break;
            case "split: stratify column absent":
                Fails(["data", "split", cls, "--out", Path.Combine(dir, "s"), "--stratify", "nosuchcol"], "cls.jsonl:1", "no field 'nosuchcol'", "text, label");
                break;
            case "split: counts > rows; names≠ratios; empty input":
                Fails(["data", "split", cls, "--out", Path.Combine(dir, "s"), "--counts", "500,50,50"], "500,50,50", "more than the 200 rows");
                Fails(["data", "split", cls, "--out", Path.Combine(dir, "s"), "--ratios", "0.5,0.5", "--names", "a,b,c"], "2 ratios for 3 splits");
                Fails(["data", "split", F("empty.jsonl", ""), "--out", Path.Combine(dir, "s")], "empty.jsonl", "no rows");
                break;
            case "clean: all-duplicate rows":
                Works(["data", "clean", WriteJsonl(dir, "dups.jsonl", Enumerable.Range(0, 50).Select(_ => new JsonObject { ["text"] = "same text", ["label"] = "a" })),
                    "--out", Path.Combine(dir, "dedup.jsonl"), "--json"], "\"input_rows\": 50", "\"output_rows\": 1");
                break;
            case "clean: text column absent":
                Fails(["data", "clean", cls, "--out", old.Path, "--text-column", "body"], "cls.jsonl:1", "no text column 'body'", "text, label");
                break;
            case "clean: --near-threshold 7 / --skip bogus / bad --config key":
                Fails(["data", "clean", cls, "--out", old.Path, "--near-threshold", "7"], "near_dedup.threshold must be in (0, 1], got 7");
                Fails(["data", "clean", cls, "--out", old.Path, "--skip", "bogus"], "--skip", "'bogus'");
                Fails(["data", "clean", cls, "--out", old.Path, "--config", F("clean.json", "{\"strip_htm\": false}")], "clean.json", "strip_htm");
                break;
            case "clean: --out = input":
                Fails(["data", "clean", old.Path, "--out", old.Path], "is the input file");
                break;
            case "tokenizer: truncated tokenizer.json":
                F("broken/tokenizer.json", "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0");
                Fails(["tokenize", "--tokenizer", Path.Combine(dir, "broken"), "--text", "a"], "tokenizer.json");
                break;
            case "tokenizer: Unigram model type":
                F("uni/tokenizer.json", "{\"model\": {\"type\": \"Unigram\", \"vocab\": [[\"a\", 0.0]]}}");
                Fails(["tokenize", "--tokenizer", Path.Combine(dir, "uni"), "--text", "a"], "Unigram", "not supported");
                break;
            case "tokenizer: folder without vocab.txt":
                Directory.CreateDirectory(Path.Combine(dir, "novocab"));
                Fails(["tokenize", "--tokenizer", Path.Combine(dir, "novocab"), "--text", "a"], "novocab", "no tokenizer.json", "vocab.txt");
                break;
            case "tokenize: empty string":
                Works(["tokenize", "--tokenizer", "gpt2", "--text", "", "--json"], "\"ids\":[]");
                break;
            case "metrics: hyp/ref line counts differ (bleu, rouge, classification, seqeval)":
                var h3 = F("hyp3.txt", "a\nb\nc\n"); var r2 = F("ref2.txt", "a\nb\n");
                foreach (var m in new[] { "bleu", "chrf", "rouge" }) Fails(["metrics", m, "--hyp", h3, "--ref", r2], "hyp3.txt' has 3 lines", "ref2.txt' has 2");
                Fails(["metrics", "classification", "--gold", r2, "--pred", h3], "ref2.txt' has 2 lines", "hyp3.txt' has 3");
                break;
            case "metrics: NLL \"abc\"/negative; squad bad JSON; missing file":
                Fails(["metrics", "perplexity", "--nll", F("nll_bad.txt", "abc 1.0\n")], "nll_bad.txt", "'abc' is not a number");
                Fails(["metrics", "bleu", "--hyp", Path.Combine(dir, "missing.txt"), "--ref", Path.Combine(dir, "missing.txt")], "missing.txt", "does not exist");
                break;
            case "encode: missing input, malformed, missing column, bad --doc-split":
                Fails(["data", "encode", "--input", Path.Combine(dir, "nope.txt"), "--out", Path.Combine(dir, "x.tok")], "nope.txt", "does not exist");
                Fails(["data", "encode", "--input", F("bad.jsonl", "{\"text\": \"a\"}\nnot json\n"), "--out", Path.Combine(dir, "x.tok")], "bad.jsonl:2", "invalid JSON");
                Fails(["data", "encode", "--input", cls, "--out", Path.Combine(dir, "x.tok"), "--text-column", "body"], "cls.jsonl:1", "no \"body\" field");
                Fails(["data", "encode", "--input", cls, "--out", Path.Combine(dir, "x.tok"), "--doc-split", "paragraph"], "--doc-split", "'paragraph'");
                Assert.False(File.Exists(Path.Combine(dir, "x.tok")));
                break;
            case "report: missing / empty folder / truncated metrics line":
                Fails(["report", Path.Combine(dir, "no-such-run"), "--out", Path.Combine(dir, "rep")], "no-such-run");
                Directory.CreateDirectory(Path.Combine(dir, "emptyrun"));
                Fails(["report", Path.Combine(dir, "emptyrun"), "--out", Path.Combine(dir, "rep")], "emptyrun");
                break;
            default: throw new ArgumentException($"no setup for case '{name}'");
        }
        foreach (var (args, keys) in runs)
        {
            var r = Run(args);
            if (keys.Length > 0 && keys[0] == "")
            {
                Assert.True(r.ExitCode == 0, $"{string.Join(' ', args)}: exit {r.ExitCode}: {r.Stderr}");
                foreach (var k in keys.Skip(1)) Assert.Contains(k, r.Stdout);
            }
            else AssertFails(r, keys);
        }
        AssertUntouched(old);
    }
}
