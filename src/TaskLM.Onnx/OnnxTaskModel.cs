// Runs an exported ONNX folder with ONNX Runtime (no libtorch): logits, classify, tag, answer, greedy generation with past.
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using TaskLM.Data.Tokenization;
using TaskLM.Hf;

namespace TaskLM.Onnx;

/// <summary>A float tensor read back from ONNX Runtime: row-major values and shape.</summary>
public sealed record OnnxTensor(float[] Data, long[] Shape);

/// <summary>A sequence classification: the best label, and every class's probability (softmax; sigmoid when
/// config.json's problem_type is multi_label_classification) in id order.</summary>
public sealed record ClassPrediction(string Label, int LabelId, double Score, IReadOnlyList<double> Probabilities);

/// <summary>One tagged word (whitespace-separated, as training and the torch runtime tag): its text, character span in
/// the input, the tag of its first piece and that tag's softmax probability.</summary>
public sealed record WordTag(string Word, int Start, int End, string Tag, int TagId, double Score);

/// <summary>An extractive answer: the context's substring [Start, End) and HF's pipeline score p(start)·p(end).</summary>
public sealed record AnswerSpan(string Text, int Start, int End, double Score);

/// <summary>The key/value cache of a causal LM between decode steps: HF optimum's present → past.</summary>
public sealed class OnnxKvCache : IDisposable
{
    internal OrtValue[] Keys, Values;
    /// <summary>Positions cached.</summary>
    public long Length { get; internal set; }

    internal OnnxKvCache(OrtValue[] keys, OrtValue[] values) { Keys = keys; Values = values; }

    public void Dispose()
    {
        foreach (var v in Keys) v.Dispose();
        foreach (var v in Values) v.Dispose();
    }
}

/// <summary>
/// An ONNX export of a TaskLM/HF model loaded with ONNX Runtime, with its tokenizer when the folder has one.
/// Uses no TorchSharp: the assembly does not reference it, so an exported model serves without libtorch.
/// Thread-safe (ONNX Runtime sessions run concurrently); inputs are batched by the caller's lists.
/// </summary>
public sealed class OnnxTaskModel : IDisposable
{
    readonly InferenceSession _session;
    readonly int _layers, _heads, _headSize;
    readonly bool _multiLabel;

    /// <summary>The folder's config.json.</summary>
    public HfConfig Config { get; }
    /// <summary>"gpt2" or "bert".</summary>
    public string ModelType { get; }
    /// <summary>causal-lm, masked-lm, classification, token-classification or question-answering.</summary>
    public string Task { get; }
    /// <summary>Class or tag names by id (classification heads).</summary>
    public IReadOnlyList<string> Labels { get; }
    /// <summary>The folder's tokenizer, or null when it has no tokenizer files (then only id APIs work).</summary>
    public ITokenizer? Tokenizer { get; }
    /// <summary>Longest input (n_positions / max_position_embeddings).</summary>
    public int MaxLength { get; }
    /// <summary>Weights in the graph (its fp32 and int8 initializers, less the int8 layers' scales): the parameter count
    /// of the exported model.</summary>
    public long ParameterCount { get; }
    /// <summary>"fp32", or "int8 dynamic" when the graph has dynamically quantized layers (DynamicQuantizeMatMul,
    /// MatMulInteger, MatMulIntegerToFloat — a TaskLM <c>--quantize int8</c> export or ONNX Runtime's quantize_dynamic).</summary>
    public string Precision { get; }
    /// <summary>The input names of the graph.</summary>
    public IReadOnlyList<string> InputNames => _session.InputMetadata.Keys.ToList();

    OnnxTaskModel(string folder, InferenceSession session, ITokenizer? tok, long parameters, string precision)
    {
        _session = session;
        ParameterCount = parameters;
        Precision = precision;
        Config = HfConfig.Load(folder);
        ModelType = Config.ModelType;
        Task = Config.Task;
        Labels = Config.Labels;
        Tokenizer = tok;
        _multiLabel = Config.Str("problem_type") == "multi_label_classification";
        if (ModelType == "gpt2") { _layers = Config.Need("n_layer"); _heads = Config.Need("n_head"); _headSize = Config.Need("n_embd") / _heads; }
        // HF's defaults when config.json names no length: GPT2Config's n_positions 1024, BertConfig's 512.
        MaxLength = Config.MaxPositions ?? (ModelType == "gpt2" ? 1024 : 512);
    }

    /// <summary>True when <paramref name="folder"/> holds an ONNX export (model.onnx beside config.json), so a caller
    /// can pick this runner over TorchSharp for it.</summary>
    public static bool IsExport(string folder) =>
        File.Exists(Path.Combine(folder, "model.onnx")) && File.Exists(Path.Combine(folder, "config.json"));

    /// <summary>Loads <c>model.onnx</c> of an exported folder (see <see cref="OnnxExport"/>) and its tokenizer.
    /// <paramref name="intraOpThreads"/>: ONNX Runtime's threads per call (default: its own choice).</summary>
    public static OnnxTaskModel Load(string folder, int? intraOpThreads = null)
    {
        string path = Path.Combine(folder, "model.onnx");
        if (!File.Exists(path)) throw new FileNotFoundException($"{folder}: no model.onnx (export one with `tasklm export --format onnx`)", path);
        using var opts = new SessionOptions { GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL };
        if (intraOpThreads is int n) opts.IntraOpNumThreads = n;
        bool hasTok = File.Exists(Path.Combine(folder, "tokenizer.json")) || File.Exists(Path.Combine(folder, "vocab.txt"))
            || (File.Exists(Path.Combine(folder, "vocab.json")) && File.Exists(Path.Combine(folder, "merges.txt")));
        var tok = hasTok ? TokenizerLoader.Load(folder) : null;
        InferenceSession session;
        try { session = new InferenceSession(path, opts); }
        catch (OnnxRuntimeException e) { throw new InvalidDataException($"{path}: ONNX Runtime cannot load it: {e.Message}", e); }
        try
        {
            var (parameters, precision) = Describe(path);
            return new OnnxTaskModel(folder, session, tok, parameters, precision);
        }
        catch { session.Dispose(); throw; }
    }

    /// <summary>The operators that make a graph's layers dynamic int8.</summary>
    static readonly HashSet<string> Int8Ops = ["DynamicQuantizeMatMul", "MatMulInteger", "MatMulIntegerToFloat"];

    static (long Parameters, string Precision) Describe(string path)
    {
        using var fs = File.OpenRead(path);
        var model = Proto.ModelProto.Parser.ParseFrom(fs);
        var inits = model.Graph?.Initializer.ToList() ?? [];
        static long Count(Proto.TensorProto t) => t.Dims.Aggregate(1L, (a, d) => a * d);
        bool int8 = model.Graph?.Node.Any(n => Int8Ops.Contains(n.OpType)) ?? false;
        // An int8 weight "x.int8" comes with its fp32 per-column scales "x.scale": those are not parameters.
        var int8Weights = inits.Where(t => t.DataType == (int)Proto.TensorProto.Types.DataType.Int8).ToList();
        var scales = int8Weights.Select(t => t.Name.EndsWith(".int8", StringComparison.Ordinal) ? t.Name[..^5] + ".scale" : null).OfType<string>().ToHashSet();
        long parameters = inits.Where(t => t.DataType == (int)Proto.TensorProto.Types.DataType.Float && !scales.Contains(t.Name)).Sum(Count)
            + int8Weights.Sum(Count);
        return (parameters, int8 ? "int8 dynamic" : "fp32");
    }

    // ───────────── raw forward passes ─────────────

    static OrtValue Ids(long[][] rows, string name)
    {
        if (rows.Length == 0) throw new ArgumentException($"{name}: empty batch");
        int t = rows[0].Length;
        if (rows.Any(r => r.Length != t)) throw new ArgumentException($"{name}: rows of different lengths (pad them)");
        return OrtValue.CreateTensorValueFromMemory(rows.SelectMany(r => r).ToArray(), [rows.Length, t]);
    }

    static long[][] Ones(long[][] like, int extra = 0) => like.Select(r => Enumerable.Repeat(1L, r.Length + extra).ToArray()).ToArray();

    static OnnxTensor Read(OrtValue v)
    {
        var shape = v.GetTensorTypeAndShape().Shape;
        return new OnnxTensor(v.GetTensorDataAsSpan<float>().ToArray(), shape);
    }

    /// <summary>
    /// One forward pass over (B, T) ids. Encoder heads: outputs by name (<c>logits</c>, or <c>start_logits</c> and
    /// <c>end_logits</c>); <paramref name="attentionMask"/> defaults to all ones, <paramref name="tokenTypeIds"/> to zeros.
    /// Causal LM: the full-sequence <c>logits</c> (B, T, V) with an empty past and positions 0..T-1.
    /// </summary>
    public IReadOnlyDictionary<string, OnnxTensor> Forward(long[][] inputIds, long[][]? attentionMask = null, long[][]? tokenTypeIds = null)
    {
        if (Task == "causal-lm")
        {
            using var cache = NewCache(inputIds.Length);
            return new Dictionary<string, OnnxTensor> { ["logits"] = DecodeStep(inputIds, attentionMask, null, cache) };
        }
        var inputs = new Dictionary<string, OrtValue>
        {
            ["input_ids"] = Ids(inputIds, "input_ids"),
            ["attention_mask"] = Ids(attentionMask ?? Ones(inputIds), "attention_mask"),
        };
        if (_session.InputMetadata.ContainsKey("token_type_ids"))
            inputs["token_type_ids"] = Ids(tokenTypeIds ?? inputIds.Select(r => new long[r.Length]).ToArray(), "token_type_ids");
        try
        {
            var names = _session.OutputMetadata.Keys.ToList();
            using var ro = new RunOptions();
            using var outs = _session.Run(ro, inputs, names);
            return names.Select((n, i) => (n, Read(outs[i]))).ToDictionary(x => x.n, x => x.Item2);
        }
        finally { foreach (var v in inputs.Values) v.Dispose(); }
    }

    /// <summary>An empty cache (P = 0) for a batch of <paramref name="batch"/> sequences of a causal LM.</summary>
    public OnnxKvCache NewCache(int batch)
    {
        if (Task != "causal-lm") throw new InvalidOperationException($"a {Task} model has no key/value cache");
        OrtValue Empty() => OrtValue.CreateAllocatedTensorValue(OrtAllocator.DefaultInstance, TensorElementType.Float, [batch, _heads, 0, _headSize]);
        return new OnnxKvCache(Enumerable.Range(0, _layers).Select(_ => Empty()).ToArray(), Enumerable.Range(0, _layers).Select(_ => Empty()).ToArray());
    }

    /// <summary>
    /// One decoder step of a causal LM: <paramref name="inputIds"/> (B, T) new tokens after the cache's P positions;
    /// <paramref name="attentionMask"/> (B, P+T), default all ones; <paramref name="positionIds"/> (B, T), default
    /// P..P+T-1. Returns the logits (B, T, V); the cache then holds the P+T positions (present → past).
    /// </summary>
    public OnnxTensor DecodeStep(long[][] inputIds, long[][]? attentionMask, long[][]? positionIds, OnnxKvCache cache)
    {
        long p = cache.Length;
        var inputs = new Dictionary<string, OrtValue>
        {
            ["input_ids"] = Ids(inputIds, "input_ids"),
            ["attention_mask"] = Ids(attentionMask ?? Ones(inputIds, (int)p), "attention_mask"),
            ["position_ids"] = Ids(positionIds ?? inputIds.Select(r => Enumerable.Range(0, r.Length).Select(i => p + i).ToArray()).ToArray(), "position_ids"),
        };
        var names = new List<string> { "logits" };
        for (int i = 0; i < _layers; i++)
        {
            names.Add($"present.{i}.key"); names.Add($"present.{i}.value");
            inputs[$"past_key_values.{i}.key"] = cache.Keys[i];
            inputs[$"past_key_values.{i}.value"] = cache.Values[i];
        }
        try
        {
            // The outputs are not disposed here: the presents become the cache's past for the next step.
            using var ro = new RunOptions();
            var outs = _session.Run(ro, inputs, names);
            var logits = Read(outs[0]);
            outs[0].Dispose();
            for (int i = 0; i < _layers; i++)
            {
                cache.Keys[i].Dispose(); cache.Values[i].Dispose();
                cache.Keys[i] = outs[1 + 2 * i]; cache.Values[i] = outs[2 + 2 * i];
            }
            cache.Length = p + inputIds[0].Length;
            return logits;
        }
        finally
        {
            inputs["input_ids"].Dispose(); inputs["attention_mask"].Dispose(); inputs["position_ids"].Dispose();
        }
    }

    /// <summary>
    /// Generates after <paramref name="promptIds"/> one token at a time, reusing the key/value cache (one prompt step,
    /// then one step per token). <paramref name="choose"/> picks the next id from the last position's logits (V values);
    /// default greedy (argmax). Stops after <paramref name="maxNewTokens"/> or at <paramref name="eosTokenId"/>
    /// (default: config.json's eos_token_id; the EOS id is yielded). Yields each new id as soon as it is chosen.
    /// </summary>
    public IEnumerable<int> Generate(IReadOnlyList<int> promptIds, int maxNewTokens, Func<float[], int>? choose = null, int? eosTokenId = null)
    {
        if (Task != "causal-lm") throw new InvalidOperationException($"a {Task} model does not generate; use a causal LM");
        if (promptIds.Count == 0) throw new ArgumentException("the prompt has no tokens");
        if (promptIds.Count + maxNewTokens > MaxLength)
            throw new ArgumentException($"prompt of {promptIds.Count} tokens + {maxNewTokens} new ones is longer than n_positions={MaxLength}");
        choose ??= Argmax;
        int? eos = eosTokenId ?? Config.Int("eos_token_id");
        using var cache = NewCache(1);
        long[][] step = [promptIds.Select(i => (long)i).ToArray()];
        for (int n = 0; n < maxNewTokens; n++)
        {
            var logits = DecodeStep(step, null, null, cache);            // (1, T, V)
            int v = (int)logits.Shape[2], t = (int)logits.Shape[1];
            int next = choose(logits.Data.AsSpan((t - 1) * v, v).ToArray());
            yield return next;
            if (next == eos) yield break;
            step = [[next]];
        }
    }

    /// <summary>
    /// Generates for several prompts at once, as one batch: prompts left-padded (pad_token_id, else EOS, else 0) with
    /// attention mask 0 on the pads and positions counted from the mask (HF's rule, and TaskLM's Generation), one
    /// prompt step and then one decoder step per token through the cache. A row that reached EOS is filled with the
    /// pad id until every row is done. <paramref name="choose"/>(row, logits) picks a row's next id (default greedy);
    /// <paramref name="onToken"/>(row, id) is called as each new id is chosen. Returns each row's new ids.
    /// </summary>
    public int[][] GenerateBatch(IReadOnlyList<IReadOnlyList<int>> prompts, int maxNewTokens, Func<int, float[], int>? choose = null,
        int? eosTokenId = null, Action<int, int>? onToken = null)
    {
        if (Task != "causal-lm") throw new InvalidOperationException($"a {Task} model does not generate; use a causal LM");
        if (prompts.Count == 0) return [];
        if (prompts.Any(p => p.Count == 0)) throw new ArgumentException("every prompt needs at least one token");
        int b = prompts.Count, longest = prompts.Max(p => p.Count);
        if (longest + maxNewTokens > MaxLength)
            throw new ArgumentException($"prompt of {longest} tokens + {maxNewTokens} new ones is longer than n_positions={MaxLength}");
        int eos = eosTokenId ?? Config.Int("eos_token_id") ?? -1;
        int pad = Config.PadTokenId ?? (eos >= 0 ? eos : 0);
        var mask = prompts.Select(p => Enumerable.Repeat(0L, longest - p.Count).Concat(Enumerable.Repeat(1L, p.Count)).ToList()).ToList();
        var step = prompts.Select(p => Enumerable.Repeat((long)pad, longest - p.Count).Concat(p.Select(i => (long)i)).ToArray()).ToArray();
        // Position of a token = real tokens before it (pads get 1; nothing attends to them).
        long[] Positions(List<long> m)
        {
            var pos = new long[m.Count];
            long seen = 0;
            for (int i = 0; i < m.Count; i++) { seen += m[i]; pos[i] = m[i] == 0 ? 1 : seen - 1; }
            return pos;
        }
        var outputs = Enumerable.Range(0, b).Select(_ => new List<int>()).ToArray();
        var done = new bool[b];
        using var cache = NewCache(b);
        for (int n = 0; n < maxNewTokens && !done.All(d => d); n++)
        {
            int t = step[0].Length;
            var positions = mask.Select(m => Positions(m)[^t..]).ToArray();
            var logits = DecodeStep(step, mask.Select(m => m.ToArray()).ToArray(), positions, cache);   // (B, T, V)
            int v = (int)logits.Shape[2];
            for (int r = 0; r < b; r++)
            {
                int tok = pad;
                if (!done[r])
                {
                    var row = logits.Data.AsSpan((r * t + t - 1) * v, v).ToArray();
                    tok = choose?.Invoke(r, row) ?? Argmax(row);
                    outputs[r].Add(tok);
                    onToken?.Invoke(r, tok);
                    if (tok == eos) done[r] = true;
                }
                mask[r].Add(1);
                step[r] = [tok];
            }
        }
        return outputs.Select(o => o.ToArray()).ToArray();
    }

    /// <summary>Greedy continuation of a text prompt (needs the tokenizer): the new text only.</summary>
    public string GenerateText(string prompt, int maxNewTokens)
    {
        var tok = NeedTokenizer();
        var ids = Generate(tok.Encode(prompt), maxNewTokens).ToList();
        return tok.Decode(ids, skipSpecialTokens: true);
    }

    /// <summary>Index of the largest value (first one on ties, as torch.argmax).</summary>
    public static int Argmax(float[] values)
    {
        int best = 0;
        for (int i = 1; i < values.Length; i++) if (values[i] > values[best]) best = i;
        return best;
    }

    // ───────────── text APIs ─────────────

    ITokenizer NeedTokenizer() => Tokenizer ?? throw new InvalidOperationException("the ONNX folder has no tokenizer files (tokenizer.json, vocab.txt or vocab.json + merges.txt)");

    int PadId => Config.PadTokenId ?? Tokenizer?.PadTokenId ?? 0;

    // The task encoder training, evaluation and the torch runtime use (TaskLM.Data's TaskEncoder).
    TaskEncoder Encoder() => new(NeedTokenizer(), MaxLength);

    IReadOnlyList<TokenizedInput> Encode(IReadOnlyList<string> texts, IReadOnlyList<string>? pairs = null)
    {
        var encoder = Encoder();
        return ModelInputBuilder.PadBatch(texts.Select((t, i) => encoder.Text(t, pairs?[i])).ToList(), PadId);
    }

    static long[][] Rows(IEnumerable<int[]> rows) => rows.Select(r => r.Select(x => (long)x).ToArray()).ToArray();

    static double[] Softmax(ReadOnlySpan<float> x)
    {
        double max = double.NegativeInfinity;
        foreach (var v in x) max = Math.Max(max, v);
        var e = new double[x.Length];
        double sum = 0;
        for (int i = 0; i < x.Length; i++) sum += e[i] = Math.Exp(x[i] - max);
        for (int i = 0; i < e.Length; i++) e[i] /= sum;
        return e;
    }

    /// <summary>Classifies each text (a sequence-classification head): label and probabilities per class.</summary>
    public IReadOnlyList<ClassPrediction> Classify(IReadOnlyList<string> texts, IReadOnlyList<string>? pairs = null)
    {
        if (Task != "classification") throw new InvalidOperationException($"a {Task} model does not classify sequences");
        if (texts.Count == 0) return [];
        // GPT-2 pools the last non-pad token; without pad_token_id HF cannot pool a padded batch, so go one by one.
        if (ModelType == "gpt2" && Config.PadTokenId is null && texts.Count > 1)
            return texts.SelectMany((t, i) => Classify([t], pairs is null ? null : [pairs[i]])).ToList();
        var enc = Encode(texts, pairs);
        var logits = Forward(Rows(enc.Select(e => e.InputIds)), Rows(enc.Select(e => e.AttentionMask)), Rows(enc.Select(e => e.TokenTypeIds)))["logits"];
        int c = (int)logits.Shape[1];
        var result = new List<ClassPrediction>();
        for (int b = 0; b < texts.Count; b++)
        {
            var row = logits.Data.AsSpan(b * c, c);
            double[] probs = _multiLabel ? row.ToArray().Select(v => 1.0 / (1.0 + Math.Exp(-v))).ToArray() : Softmax(row);
            int best = Array.IndexOf(probs, probs.Max());
            result.Add(new ClassPrediction(best < Labels.Count ? Labels[best] : best.ToString(), best, probs[best], probs));
        }
        return result;
    }

    /// <summary>Tags every whitespace-separated word of each text (a token-classification head) by its first piece, as
    /// training labels words and the torch runtime tags them (<see cref="TaskEncoder.Words(string)"/>); a word cut off by
    /// the length limit, or without tokens, is left out.</summary>
    public IReadOnlyList<IReadOnlyList<WordTag>> Tag(IReadOnlyList<string> texts)
    {
        if (Task != "token-classification") throw new InvalidOperationException($"a {Task} model does not tag tokens");
        if (texts.Count == 0) return [];
        var encoder = Encoder();
        var words = texts.Select(encoder.Words).ToList();
        var enc = ModelInputBuilder.PadBatch(words.Select(w => w.Encoding.Input).ToList(), PadId);
        var logits = Forward(Rows(enc.Select(e => e.InputIds)), Rows(enc.Select(e => e.AttentionMask)), Rows(enc.Select(e => e.TokenTypeIds)))["logits"];
        int t = (int)logits.Shape[1], c = (int)logits.Shape[2];
        var result = new List<IReadOnlyList<WordTag>>();
        for (int b = 0; b < texts.Count; b++)
        {
            var (encoding, spans) = words[b];
            var tags = new List<WordTag>();
            for (int w = 0; w < spans.Count; w++)
            {
                int i = encoding.FirstToken[w];
                if (i < 0) continue;
                var probs = Softmax(logits.Data.AsSpan((b * t + i) * c, c));
                int best = Array.IndexOf(probs, probs.Max());
                var (s, e) = spans[w];
                tags.Add(new WordTag(texts[b][s..e], s, e, best < Labels.Count ? Labels[best] : best.ToString(), best, probs[best]));
            }
            result.Add(tags);
        }
        return result;
    }

    /// <summary>The best answer span to <paramref name="question"/> in <paramref name="context"/> (a QA head), encoded as
    /// training and the torch runtime encode it (<see cref="TaskEncoder.Qa"/>) and picked as HF's question-answering
    /// pipeline picks it (<see cref="QaEncoding.BestSpan"/>): context tokens only, start ≤ end, at most
    /// <paramref name="maxAnswerTokens"/> tokens, score p(start)·p(end) with softmax over the sequence.</summary>
    public AnswerSpan Answer(string question, string context, int maxAnswerTokens = TaskEncoder.MaxAnswerTokens)
    {
        if (Task != "question-answering") throw new InvalidOperationException($"a {Task} model does not answer questions");
        var qa = Encoder().Qa(question, context);
        var enc = qa.Input;
        var outs = Forward(Rows([enc.InputIds]), Rows([enc.AttentionMask]), Rows([enc.TokenTypeIds]));
        var ps = Softmax(outs["start_logits"].Data);
        var pe = Softmax(outs["end_logits"].Data);
        if (qa.BestSpan(ps, pe, maxAnswerTokens) is not (int bs, int be, double best)) return new AnswerSpan("", 0, 0, 0);
        var (start, end) = qa.Characters(bs, be);
        return new AnswerSpan(context[start..end], start, end, best);
    }

    public void Dispose() => _session.Dispose();
}
