// `tasklm models import`: a PyTorch-exported BERT-family encoder (.onnx + vocab.txt) → a Hugging Face BertModel folder.
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using TaskLM.Data.Tokenization;
using TaskLM.Onnx.Proto;

namespace TaskLM.Onnx;

/// <summary>Where an imported model came from. Written to the folder's README.md and, for programs, to
/// <c>tasklm_source.json</c>; null fields are left out.</summary>
public sealed record ImportProvenance
{
    /// <summary>"onnx" (a file given by the user) or "nuget" (a model package).</summary>
    public string Kind { get; init; } = "onnx";
    /// <summary>A short name the model goes by in TaskLM (minilm-l6), if any.</summary>
    public string? Name { get; init; }
    /// <summary>The original model's id (sentence-transformers/all-MiniLM-L6-v2).</summary>
    public string? ModelId { get; init; }
    /// <summary>The model's licence (SPDX id, e.g. Apache-2.0).</summary>
    public string? License { get; init; }
    /// <summary>NuGet package id, version, and the package's SHA-512 (base64, as NuGet's .nupkg.sha512 holds it).</summary>
    public string? PackageId { get; init; }
    public string? PackageVersion { get; init; }
    public string? PackageSha512 { get; init; }
    /// <summary>The package's own licence, when it differs from the model's (the wrapper code's).</summary>
    public string? PackageLicense { get; init; }
    /// <summary>Manifest resource names the files were read from.</summary>
    public IReadOnlyList<string>? Resources { get; init; }
    /// <summary>File names of the source .onnx and vocabulary (no directories: folders move between machines).</summary>
    public string? OnnxFile { get; init; }
    public string? VocabFile { get; init; }
}

/// <summary>What an import found and wrote.</summary>
/// <param name="Folder">the HF model folder</param>
/// <param name="Config">the config.json written</param>
/// <param name="Tensors">number of weights written to model.safetensors</param>
/// <param name="Parameters">number of values in them</param>
/// <param name="HasPooler">whether the graph held BERT's pooler (pooler.dense)</param>
/// <param name="OnnxSha256">SHA-256 (hex) of the .onnx bytes</param>
/// <param name="Ignored">float initializers the encoder does not use (task heads, pooling), left out</param>
public sealed record OnnxImportResult(string Folder, JsonObject Config, int Tensors, long Parameters, bool HasPooler, string OnnxSha256, IReadOnlyList<string> Ignored);

/// <summary>
/// Turns a BERT-family encoder exported by PyTorch (<c>torch.onnx.export</c> of a transformers BertModel,
/// all-MiniLM, arctic-embed and the like) back into a Hugging Face folder TaskLM's Bert.cs loads:
/// config.json (model_type bert, architectures BertModel), model.safetensors with HF's key names, and the
/// WordPiece tokenizer files. The exporter keeps the names of embeddings, LayerNorm parameters and biases, but
/// folds each Linear weight's transpose into an anonymous initializer (<c>onnx::MatMul_812</c>, <c>927</c>); those
/// are found by following the graph: the MatMul whose output is added to a named bias is that Linear's weight.
/// The config is read off shapes and the attention subgraph. A graph that does not fit is refused with an error
/// naming the node or initializer where the mapping broke.
/// </summary>
public static partial class OnnxImport
{
    /// <summary>Bumped when the folder layout an import writes changes, so caches built by an older TaskLM are redone.</summary>
    public const int FormatVersion = 1;

    /// <summary>Imports <paramref name="onnxPath"/> with <paramref name="vocabPath"/> into <paramref name="outDir"/>,
    /// which must not exist or be empty. The folder is built under a temporary name and renamed into place, so a
    /// failure never leaves a half-written model. <paramref name="lowercase"/> sets do_lower_case (null: detected
    /// from the vocabulary: uncased when it holds no capitalised words).</summary>
    public static OnnxImportResult Import(string onnxPath, string vocabPath, string outDir, ImportProvenance? provenance = null, bool? lowercase = null)
    {
        if (!File.Exists(onnxPath)) throw new FileNotFoundException($"ONNX model '{onnxPath}' does not exist", onnxPath);
        if (!File.Exists(vocabPath)) throw new FileNotFoundException($"vocabulary '{vocabPath}' does not exist (a BERT vocab.txt, one token per line)", vocabPath);
        provenance ??= new ImportProvenance();
        provenance = provenance with { OnnxFile = provenance.OnnxFile ?? Path.GetFileName(onnxPath), VocabFile = provenance.VocabFile ?? Path.GetFileName(vocabPath) };
        return Import(File.ReadAllBytes(onnxPath), onnxPath, File.ReadAllBytes(vocabPath), outDir, provenance, lowercase);
    }

    /// <summary>As <see cref="Import(string, string, string, ImportProvenance?, bool?)"/> from bytes in memory (e.g. an
    /// assembly's embedded resources); <paramref name="source"/> names the model in messages.</summary>
    public static OnnxImportResult Import(byte[] onnx, string source, byte[] vocab, string outDir, ImportProvenance? provenance = null, bool? lowercase = null)
    {
        string full = Path.GetFullPath(outDir);
        if (Directory.Exists(full) && Directory.EnumerateFileSystemEntries(full).Any())
            throw new IOException($"'{outDir}' already exists and is not empty; choose another output folder or remove it");
        OnnxImportResult? result = null;
        ModelCache.Publish(full, tmp => result = WriteFolder(onnx, source, vocab, tmp, provenance ?? new ImportProvenance(), lowercase) with { Folder = full });
        return result!;
    }

    /// <summary>A bare <c>model.onnx</c> spec: imports it (with the <c>vocab.txt</c> beside it unless
    /// <paramref name="vocabPath"/> is given) into TaskLM's model cache on first use and returns the HF folder; later
    /// calls with the same bytes reuse it. The cache folder is keyed by the files' SHA-256, so an edited file is
    /// imported afresh.</summary>
    public static string ImportCached(string onnxPath, string? vocabPath = null, Action<string>? say = null, string? cacheRoot = null)
    {
        if (!File.Exists(onnxPath)) throw new FileNotFoundException($"ONNX model '{onnxPath}' does not exist", onnxPath);
        vocabPath ??= Path.Combine(Path.GetDirectoryName(Path.GetFullPath(onnxPath))!, "vocab.txt");
        if (!File.Exists(vocabPath))
            throw new FileNotFoundException($"{onnxPath}: no vocab.txt beside it; an ONNX encoder needs its WordPiece vocabulary ('tasklm models import --model {onnxPath} --vocab VOCAB --out DIR')", vocabPath);
        byte[] onnx = File.ReadAllBytes(onnxPath), vocab = File.ReadAllBytes(vocabPath);
        string key = Hex(SHA256.HashData([.. SHA256.HashData(onnx), .. SHA256.HashData(vocab)]))[..16];
        string stem = Regex.Replace(Path.GetFileNameWithoutExtension(onnxPath), "[^A-Za-z0-9._-]", "_");
        string folder = Path.Combine(cacheRoot ?? ModelCache.Root(), "onnx", $"{stem}-{key}");
        if (ModelCache.IsComplete(folder, FormatVersion)) return folder;
        say?.Invoke($"importing {onnxPath} into {folder}");
        var prov = new ImportProvenance { OnnxFile = Path.GetFileName(onnxPath), VocabFile = Path.GetFileName(vocabPath) };
        ModelCache.Publish(folder, tmp => WriteFolder(onnx, onnxPath, vocab, tmp, prov, null));
        return folder;
    }

    // ───────────────────────────── the import, top to bottom ─────────────────────────────

    internal static OnnxImportResult WriteFolder(byte[] onnxBytes, string source, byte[] vocabBytes, string dir, ImportProvenance prov, bool? lowercase)
    {
        ModelProto model;
        try { model = ModelProto.Parser.ParseFrom(onnxBytes); }
        catch (Google.Protobuf.InvalidProtocolBufferException e) { throw new InvalidDataException($"{source}: not an ONNX model ({e.Message})", e); }
        if (model.Graph is null || model.Graph.Node.Count == 0) throw new InvalidDataException($"{source}: the ONNX model has no graph nodes");
        var g = new GraphIndex(model.Graph, source);

        // 1. Weights: named initializers as they are, then each Linear's weight found from its bias.
        var (weights, used) = MapWeights(g);

        // 2. The config from shapes and the attention/LayerNorm/activation subgraphs.
        var vocabLines = Encoding.UTF8.GetString(vocabBytes).TrimStart('\uFEFF').Split('\n').Select(l => l.TrimEnd('\r')).ToList();   // as File.ReadLines: no BOM, no CR
        if (vocabLines.Count > 0 && vocabLines[^1].Length == 0) vocabLines.RemoveAt(vocabLines.Count - 1);
        var config = Config(g, weights, vocabLines);

        // 3. Files: config.json, model.safetensors, the tokenizer, README.md and tasklm_source.json.
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "config.json"), config.ToJsonString(Indented) + "\n");
        HfWeights.WriteSafetensors(Path.Combine(dir, "model.safetensors"), weights, new Dictionary<string, string> { ["format"] = "pt" });
        bool lower = lowercase ?? IsUncased(vocabLines);
        WriteTokenizer(dir, vocabBytes, lower, checked((int)config["max_position_embeddings"]!.GetValue<long>()));

        string sha = Hex(SHA256.HashData(onnxBytes));
        var ignored = g.FloatInitializers.Where(n => !used.Contains(n) && g.Elements(n) > 1).ToList();   // weights, not scalar constants
        var result = new OnnxImportResult(dir, config, weights.Count, weights.Values.Sum(x => (long)x.Data.Length), weights.ContainsKey("pooler.dense.weight"), sha, ignored);
        WriteProvenance(dir, prov, result, Hex(SHA256.HashData(vocabBytes)), lower);
        return result;
    }

    /// <summary>HF key of an initializer name, or null when it is not part of BertModel: a "bert." prefix (a
    /// BertFor* export) is dropped.</summary>
    static string? HfKey(string name)
    {
        string k = name.StartsWith("bert.", StringComparison.Ordinal) ? name[5..] : name;
        return BodyKey().IsMatch(k) ? k : null;
    }

    // Every parameter name of HF's BertModel (the pooler optional).
    [GeneratedRegex(@"^(embeddings\.(word_embeddings|position_embeddings|token_type_embeddings)\.weight|embeddings\.LayerNorm\.(weight|bias)" +
        @"|encoder\.layer\.\d+\.(attention\.self\.(query|key|value)|attention\.output\.(dense|LayerNorm)|intermediate\.dense|output\.(dense|LayerNorm))\.(weight|bias)" +
        @"|pooler\.dense\.(weight|bias))$")]
    private static partial Regex BodyKey();

    // Linear modules of BertModel: their bias keeps its name in an export, their weight may not.
    [GeneratedRegex(@"^(encoder\.layer\.\d+\.(attention\.self\.(query|key|value)|attention\.output\.dense|intermediate\.dense|output\.dense)|pooler\.dense)\.bias$")]
    private static partial Regex LinearBias();

    [GeneratedRegex(@"^encoder\.layer\.(\d+)\.")]
    private static partial Regex LayerIndex();

    /// <summary>HF key → weight ([out, in] for Linear), and the initializer names used.</summary>
    static (SortedDictionary<string, Weight> Weights, HashSet<string> Used) MapWeights(GraphIndex g)
    {
        var weights = new SortedDictionary<string, Weight>(StringComparer.Ordinal);
        var used = new HashSet<string>(StringComparer.Ordinal);
        var biasInit = new Dictionary<string, string>(StringComparer.Ordinal);   // HF bias key → initializer name
        foreach (var name in g.FloatInitializers)
        {
            if (HfKey(name) is not string key) continue;
            if (weights.ContainsKey(key)) throw new InvalidDataException($"{g.Source}: two initializers map to '{key}' (one is '{name}')");
            weights[key] = g.Weight(name);
            used.Add(name);
            if (LinearBias().IsMatch(key)) biasInit[key] = name;
        }
        if (!weights.ContainsKey("embeddings.word_embeddings.weight"))
            throw new InvalidDataException($"{g.Source}: no initializer 'embeddings.word_embeddings.weight' (or 'bert.embeddings...'); the importer maps " +
                "PyTorch exports of BERT-family encoders, whose embeddings and biases keep Hugging Face's names");

        foreach (var (biasKey, biasName) in biasInit)
        {
            string weightKey = biasKey[..^"bias".Length] + "weight";
            if (weights.ContainsKey(weightKey)) continue;                     // exported under its own name (e.g. the pooler's Gemm)
            var (w, from) = LinearWeightOf(g, biasName, biasKey);
            weights[weightKey] = w;
            used.Add(from);
        }
        return (weights, used);
    }

    /// <summary>The [out, in] weight of the Linear whose bias initializer is <paramref name="biasName"/>: PyTorch
    /// exports <c>x @ Wᵀ + b</c> as <c>Add(b, MatMul(x, Wᵀ))</c> with Wᵀ ([in, out]) an initializer, or as
    /// <c>Gemm(x, W, b, transB=1)</c>.</summary>
    static (Weight W, string Initializer) LinearWeightOf(GraphIndex g, string biasName, string biasKey)
    {
        var users = g.ConsumersOf(biasName);
        foreach (var node in users)
        {
            if (node.OpType == "Add" && node.Input.Count == 2)
            {
                string other = node.Input[0] == biasName ? node.Input[1] : node.Input[0];
                var mm = g.ProducerOf(other);
                if (mm is null || mm.OpType != "MatMul")
                    throw new InvalidDataException($"{g.Source}: cannot find the weight of '{biasKey}': {GraphIndex.Describe(node)} adds the bias to '{other}', which " +
                        (mm is null ? "no node produces" : $"comes from {GraphIndex.Describe(mm)}") + ", not from a MatMul with a weight");
                return MatMulWeight(g, mm, biasKey);
            }
            if (node.OpType == "Gemm" && node.Input.Count == 3 && node.Input[2] == biasName)
            {
                string b = node.Input[1];
                if (!g.IsFloatConstant(b))
                    throw new InvalidDataException($"{g.Source}: cannot find the weight of '{biasKey}': input B '{b}' of {GraphIndex.Describe(node)} is not an initializer");
                var w = g.Weight(b);
                bool transB = node.Attribute.FirstOrDefault(a => a.Name == "transB")?.I == 1;
                return (transB ? w : w.Transposed(), b);                     // Gemm: x @ B, or x @ Bᵀ when transB
            }
        }
        throw new InvalidDataException($"{g.Source}: cannot find the weight of '{biasKey}': its bias initializer '{biasName}' is " +
            (users.Count == 0 ? "not used by any node" : $"used by {string.Join(", ", users.Select(GraphIndex.Describe))}, not by an Add after a MatMul or a Gemm"));
    }

    /// <summary>MatMul(x, B): B is Wᵀ [in, out] as an initializer, or Transpose(W) of a named [out, in] one.</summary>
    static (Weight W, string Initializer) MatMulWeight(GraphIndex g, NodeProto mm, string biasKey)
    {
        string b = mm.Input[1];
        if (g.IsFloatConstant(b))
        {
            var wt = g.Weight(b);
            if (wt.Shape.Length != 2) throw new InvalidDataException($"{g.Source}: the weight '{b}' of {GraphIndex.Describe(mm)} (for '{biasKey}') is {wt.Shape.Length}-D, not a matrix");
            return (wt.Transposed(), b);                                      // [in, out] → HF's [out, in]
        }
        if (g.ProducerOf(b) is { OpType: "Transpose" } tr && g.IsFloatConstant(tr.Input[0]))
            return (g.Weight(tr.Input[0]), tr.Input[0]);                       // already [out, in]
        throw new InvalidDataException($"{g.Source}: cannot find the weight of '{biasKey}': input B '{b}' of {GraphIndex.Describe(mm)} is neither an initializer nor a transposed one");
    }

    // ───────────────────────────── the config ─────────────────────────────

    static JsonObject Config(GraphIndex g, SortedDictionary<string, Weight> w, List<string> vocab)
    {
        long[] Shape(string key) => w.TryGetValue(key, out var x) ? x.Shape : throw new InvalidDataException($"{g.Source}: no weight for '{key}' (BertModel needs it)");
        var word = Shape("embeddings.word_embeddings.weight");                 // (V, H)
        long hidden = word[1], vocabSize = word[0];
        long positions = Shape("embeddings.position_embeddings.weight")[0];    // (P, H)
        long typeVocab = Shape("embeddings.token_type_embeddings.weight")[0];  // (2, H)
        var layerIds = w.Keys.Select(k => LayerIndex().Match(k)).Where(m => m.Success).Select(m => int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture)).Distinct().Order().ToList();
        if (layerIds.Count == 0) throw new InvalidDataException($"{g.Source}: no 'encoder.layer.N.*' initializers (no transformer layers found)");
        int layers = layerIds[^1] + 1;
        if (layerIds.Count != layers) throw new InvalidDataException($"{g.Source}: layer {Enumerable.Range(0, layers).First(i => !layerIds.Contains(i))} of {layers} has no weights");
        long inner = Shape("encoder.layer.0.intermediate.dense.bias")[0];

        // Every weight BertModel holds, with the shape the config implies: a missing or misfit one is named here,
        // not when the folder is loaded.
        var expect = new Dictionary<string, long[]>
        {
            ["embeddings.word_embeddings.weight"] = [vocabSize, hidden], ["embeddings.position_embeddings.weight"] = [positions, hidden],
            ["embeddings.token_type_embeddings.weight"] = [typeVocab, hidden], ["embeddings.LayerNorm.weight"] = [hidden], ["embeddings.LayerNorm.bias"] = [hidden],
        };
        for (int i = 0; i < layers; i++)
        {
            string L = $"encoder.layer.{i}.";
            foreach (var m in new[] { "attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense" })
            { expect[L + m + ".weight"] = [hidden, hidden]; expect[L + m + ".bias"] = [hidden]; }
            expect[L + "intermediate.dense.weight"] = [inner, hidden]; expect[L + "intermediate.dense.bias"] = [inner];
            expect[L + "output.dense.weight"] = [hidden, inner]; expect[L + "output.dense.bias"] = [hidden];
            foreach (var ln in new[] { "attention.output.LayerNorm", "output.LayerNorm" }) { expect[L + ln + ".weight"] = [hidden]; expect[L + ln + ".bias"] = [hidden]; }
        }
        if (w.ContainsKey("pooler.dense.weight") || w.ContainsKey("pooler.dense.bias")) { expect["pooler.dense.weight"] = [hidden, hidden]; expect["pooler.dense.bias"] = [hidden]; }
        foreach (var (key, shape) in expect)
        {
            var got = Shape(key);
            if (!got.SequenceEqual(shape))
                throw new InvalidDataException($"{g.Source}: '{key}' has shape [{string.Join(", ", got)}], a BERT with hidden_size {hidden} and intermediate_size {inner} needs [{string.Join(", ", shape)}]");
        }

        int heads = Heads(g, hidden);
        double eps = LayerNormEps(g);
        string act = Activation(g);
        int pad = vocab.IndexOf("[PAD]");
        if (vocab.Count != vocabSize)
            throw new InvalidDataException($"{g.Source}: the vocabulary has {vocab.Count} tokens but embeddings.word_embeddings.weight has {vocabSize} rows");

        // HF's BertConfig keys, in the order transformers writes them.
        return new JsonObject
        {
            ["architectures"] = new JsonArray("BertModel"),
            ["attention_probs_dropout_prob"] = 0.1,
            ["classifier_dropout"] = null,
            ["hidden_act"] = act,
            ["hidden_dropout_prob"] = 0.1,
            ["hidden_size"] = hidden,
            ["initializer_range"] = 0.02,
            ["intermediate_size"] = inner,
            ["layer_norm_eps"] = eps,
            ["max_position_embeddings"] = positions,
            ["model_type"] = "bert",
            ["num_attention_heads"] = heads,
            ["num_hidden_layers"] = layers,
            ["pad_token_id"] = pad < 0 ? 0 : pad,
            ["position_embedding_type"] = "absolute",
            ["torch_dtype"] = "float32",
            ["type_vocab_size"] = typeVocab,
            ["use_cache"] = true,
            ["vocab_size"] = vocabSize,
        };
    }

    /// <summary>num_attention_heads: the query projection (B, T, H) is reshaped to (B, T, nh, hs) before the scores;
    /// the Reshape's target shape is a constant, or a Concat of the dynamic B, T and constant nh, hs.</summary>
    static int Heads(GraphIndex g, long hidden)
    {
        string bias = g.InitializerOf("encoder.layer.0.attention.self.query.bias");
        var add = g.ConsumersOf(bias).FirstOrDefault(n => n.OpType == "Add")
            ?? throw new InvalidDataException($"{g.Source}: no Add node uses '{bias}' (the layer-0 query projection)");
        var reshape = g.ConsumersOf(add.Output[0]).FirstOrDefault(n => n.OpType == "Reshape")
            ?? throw new InvalidDataException($"{g.Source}: the layer-0 query projection ({GraphIndex.Describe(add)}) is not reshaped into heads; cannot read num_attention_heads");
        var dims = g.ShapeValues(reshape.Input[1]);
        if (dims is not { Length: 4 } || dims[2] <= 0 || dims[3] <= 0 || dims[2] * dims[3] != hidden)
            throw new InvalidDataException($"{g.Source}: {GraphIndex.Describe(reshape)} reshapes the layer-0 query to " +
                (dims is null ? "a shape computed at run time" : $"[{string.Join(", ", dims.Select(d => d < 0 ? "?" : d.ToString(CultureInfo.InvariantCulture)))}]") +
                $", not (B, T, heads, head_size) with heads × head_size = {hidden}; cannot read num_attention_heads");
        return (int)dims[2];
    }

    /// <summary>layer_norm_eps of the embeddings' LayerNorm: a LayerNormalization node's epsilon, or in the
    /// decomposed form (x - mean) / Sqrt(var + eps) * weight + bias, the constant added before the Sqrt.</summary>
    static double LayerNormEps(GraphIndex g)
    {
        string weight = g.InitializerOf("embeddings.LayerNorm.weight");
        foreach (var node in g.ConsumersOf(weight))
        {
            if (node.OpType == "LayerNormalization")
                return Tidy(node.Attribute.FirstOrDefault(a => a.Name == "epsilon")?.F ?? 1e-5f);
            if (node.OpType != "Mul") continue;
            var div = g.ProducerOf(node.Input[0] == weight ? node.Input[1] : node.Input[0]);
            var sqrt = div is { OpType: "Div" } ? g.ProducerOf(div.Input[1]) : null;
            var addEps = sqrt is { OpType: "Sqrt" } ? g.ProducerOf(sqrt.Input[0]) : null;
            if (addEps is { OpType: "Add" } && addEps.Input.FirstOrDefault(g.IsFloatConstant) is string c && g.Weight(c).Data is [var eps])
                return Tidy(eps);
            throw new InvalidDataException($"{g.Source}: {GraphIndex.Describe(node)} scales the embeddings' LayerNorm, but it is not (x - mean) / Sqrt(var + eps) " +
                $"(broke at {(div is null ? "the Div" : sqrt is null ? GraphIndex.Describe(div) : addEps is null ? GraphIndex.Describe(sqrt) : GraphIndex.Describe(addEps))}); cannot read layer_norm_eps");
        }
        throw new InvalidDataException($"{g.Source}: '{weight}' is not used by a LayerNormalization or Mul node; cannot read layer_norm_eps");
    }

    /// <summary>A float32 constant as the short decimal it was written as (1e-12, not 9.999999960041972e-13).</summary>
    static double Tidy(float f) => double.Parse(f.ToString("R", CultureInfo.InvariantCulture), CultureInfo.InvariantCulture);

    /// <summary>hidden_act: the ops between the layer-0 intermediate projection and the next MatMul. Erf is
    /// exact GELU (HF "gelu"), Tanh the tanh approximation ("gelu_new").</summary>
    static string Activation(GraphIndex g)
    {
        string bias = g.InitializerOf("encoder.layer.0.intermediate.dense.bias");
        var start = g.ConsumersOf(bias).FirstOrDefault(n => n.OpType is "Add" or "Gemm")
            ?? throw new InvalidDataException($"{g.Source}: '{bias}' is not used by an Add or Gemm node; cannot read hidden_act");
        var ops = new List<NodeProto>();
        var frontier = new Queue<(string Value, int Depth)>([(start.Output[0], 0)]);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        while (frontier.Count > 0)
        {
            var (value, depth) = frontier.Dequeue();
            if (depth > 12 || !seen.Add(value)) continue;
            foreach (var n in g.ConsumersOf(value))
            {
                if (n.OpType is "MatMul" or "Gemm") continue;               // the output projection: the activation is behind us
                ops.Add(n);
                foreach (var o in n.Output) frontier.Enqueue((o, depth + 1));
            }
        }
        string Approx(NodeProto n) => n.Attribute.FirstOrDefault(a => a.Name == "approximate")?.S.ToStringUtf8() ?? "none";
        if (ops.FirstOrDefault(n => n.OpType == "Gelu") is NodeProto gelu) return Approx(gelu) == "tanh" ? "gelu_new" : "gelu";
        if (ops.Any(n => n.OpType == "FastGelu")) return "gelu_new";
        if (ops.Any(n => n.OpType == "Erf")) return "gelu";
        if (ops.Any(n => n.OpType == "Tanh")) return "gelu_new";
        if (ops.Any(n => n.OpType == "Relu")) return "relu";
        if (ops.Any(n => n.OpType == "Sigmoid")) return "silu";
        throw new InvalidDataException($"{g.Source}: the activation after {GraphIndex.Describe(start)} (ops: {string.Join(", ", ops.Select(n => n.OpType).Distinct())}) " +
            "is not GELU (Erf or Tanh form), ReLU or SiLU; cannot read hidden_act");
    }

    // ───────────────────────────── tokenizer and provenance files ─────────────────────────────

    /// <summary>Uncased (do_lower_case) when hardly any word piece has a capital letter; [CLS]-style specials and
    /// [unusedN] do not count. bert-base-uncased has none, bert-base-cased thousands.</summary>
    static bool IsUncased(List<string> vocab)
    {
        int capitals = vocab.Count(t => !(t.StartsWith('[') && t.EndsWith(']')) && t.Any(char.IsUpper));
        return capitals < Math.Max(1, vocab.Count / 1000);
    }

    /// <summary>vocab.txt (the original bytes), tokenizer.json, tokenizer_config.json and special_tokens_map.json,
    /// as transformers' BertTokenizerFast saves them.</summary>
    static void WriteTokenizer(string dir, byte[] vocabBytes, bool lowercase, int maxLength)
    {
        string vocabPath = Path.Combine(dir, "vocab.txt");
        File.WriteAllBytes(vocabPath, vocabBytes);
        var tok = WordPieceTokenizer.FromVocabTxt(vocabPath, new TokenizerConfig { DoLowerCase = lowercase, ModelMaxLength = maxLength });
        tok.Save(dir);
        File.WriteAllBytes(vocabPath, vocabBytes);                           // Save rewrites vocab.txt from ids; keep the source's bytes
    }

    static void WriteProvenance(string dir, ImportProvenance p, OnnxImportResult r, string vocabSha, bool lowercase)
    {
        var c = r.Config;
        var src = new JsonObject
        {
            ["format_version"] = FormatVersion,
            ["kind"] = p.Kind,
            ["name"] = p.Name,
            ["model_id"] = p.ModelId,
            ["license"] = p.License,
            ["package_id"] = p.PackageId,
            ["package_version"] = p.PackageVersion,
            ["package_sha512"] = p.PackageSha512,
            ["package_license"] = p.PackageLicense,
            ["resources"] = p.Resources is null ? null : new JsonArray(p.Resources.Select(x => (JsonNode)x).ToArray()),
            ["onnx_file"] = p.OnnxFile,
            ["onnx_sha256"] = r.OnnxSha256,
            ["vocab_file"] = p.VocabFile,
            ["vocab_sha256"] = vocabSha,
            ["do_lower_case"] = lowercase,
            ["has_pooler"] = r.HasPooler,
            ["ignored_initializers"] = new JsonArray(r.Ignored.Select(x => (JsonNode)x).ToArray()),
            ["imported_by"] = "TaskLM " + (typeof(OnnxImport).Assembly.GetName().Version?.ToString() ?? "0"),
        };
        foreach (var k in src.Where(kv => kv.Value is null).Select(kv => kv.Key).ToList()) src.Remove(k);

        var md = new StringBuilder();
        string title = p.Name is not null ? $"{p.Name} ({p.ModelId ?? "ONNX encoder"})" : p.ModelId ?? $"{p.OnnxFile ?? "model.onnx"} (imported ONNX encoder)";
        md.Append($"# {title}\n\n");
        md.Append($"A BERT encoder (BertModel: {c["num_hidden_layers"]} layers, hidden {c["hidden_size"]}, {c["num_attention_heads"]} heads, " +
                  $"intermediate {c["intermediate_size"]}, {c["vocab_size"]}-token {(lowercase ? "uncased" : "cased")} WordPiece vocabulary, " +
                  $"{c["max_position_embeddings"]} positions, {r.Parameters:N0} parameters) imported by `tasklm` from an ONNX export" +
                  (p.ModelId is null ? "" : $" of [{p.ModelId}](https://huggingface.co/{p.ModelId})") + ".\n\n");
        md.Append("The weights are the ONNX file's, unchanged: embeddings, LayerNorm parameters and biases by their names, each Linear weight " +
                  "found through the graph (the MatMul feeding the Add of its named bias) and transposed back to Hugging Face's [out, in]. " +
                  "The config is read off the shapes and the attention subgraph. No task head: train one on top " +
                  "(`model.init` in a recipe) or read the hidden states.\n\n");
        md.Append("## Provenance\n\n| | |\n|---|---|\n");
        void Row(string k, string? v) { if (v is not null) md.Append($"| {k} | {v} |\n"); }
        Row("original model", p.ModelId is null ? null : $"`{p.ModelId}`");
        Row("licence", p.License);
        Row("NuGet package", p.PackageId is null ? null : $"`{p.PackageId}` {p.PackageVersion}");
        Row("package SHA-512", p.PackageSha512 is null ? null : $"`{p.PackageSha512}`");
        Row("package licence", p.PackageLicense);
        Row("resources", p.Resources is null ? null : string.Join(", ", p.Resources.Select(x => $"`{x}`")));
        Row("ONNX file", p.OnnxFile is null ? null : $"`{p.OnnxFile}`");
        Row("model.onnx SHA-256", $"`{r.OnnxSha256}`");
        Row("vocab.txt SHA-256", $"`{vocabSha}`");
        Row("pooler", r.HasPooler ? "yes (pooler.dense from the graph)" : "none in the graph (a classification head initialises it)");
        if (r.Ignored.Count > 0) Row("left out", $"{r.Ignored.Count} initializer(s) outside BertModel: " + string.Join(", ", r.Ignored.Take(5).Select(x => $"`{x}`")));
        md.Append("\n`tasklm_source.json` holds the same facts for programs.\n");
        File.WriteAllText(Path.Combine(dir, "README.md"), md.ToString());
        File.WriteAllText(Path.Combine(dir, "tasklm_source.json"), src.ToJsonString(Indented) + "\n");
    }

    // Relaxed escaping: a base64 hash keeps its '+' rather than becoming \u002B.
    static readonly JsonSerializerOptions Indented = new() { WriteIndented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    static string Hex(byte[] b) => Convert.ToHexStringLower(b);
}
