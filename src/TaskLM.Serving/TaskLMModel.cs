// The in-process API over a trained model (a run folder or an HF folder): load once, then Classify / Tag / Answer / Generate / Embed.
using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text.Json.Nodes;
using TaskLM.Data.Tokenization;
using TaskLM.Evaluation;
using TaskLM.Models;
using TaskLM.Onnx;
using TaskLM.Recipes;
using TorchSharp;
using static TorchSharp.torch;

namespace TaskLM.Serving;

/// <summary>What runs the model's forward passes.</summary>
public enum ModelRuntime
{
    /// <summary>ONNX Runtime when the folder is an ONNX export (model.onnx and no TorchSharp weights), else TorchSharp.</summary>
    Auto,
    /// <summary>TorchSharp (libtorch) over a run folder or an HF folder.</summary>
    Torch,
    /// <summary>ONNX Runtime over a folder written by <c>tasklm export --format onnx</c>; libtorch is never loaded.</summary>
    Onnx,
}

/// <summary>How <see cref="TaskLMModel.Load"/> loads and batches.</summary>
public sealed record TaskLMModelOptions
{
    /// <summary>TorchSharp or ONNX Runtime (default: by what the folder holds).</summary>
    public ModelRuntime Runtime { get; init; }
    /// <summary>ONNX Runtime's intra-op threads (default: its own choice); the torch runtime takes libtorch's setting.</summary>
    public int? IntraOpThreads { get; init; }
    /// <summary>Tokenizer folder or "gpt2"; default: the run's recipe, else the model folder's files, else GPT-2's vocabulary for a GPT-2 model.</summary>
    public string? Tokenizer { get; init; }
    /// <summary>Where the model runs (default CPU; the torch runtime only).</summary>
    public Device? Device { get; init; }
    /// <summary>Most rows in one forward pass (encoder batch, or sequences decoding together). 1 turns batching off.</summary>
    public int MaxBatchSize { get; init; } = 16;
    /// <summary>How long an encoder batch waits for more rows once one arrived (dynamic batching).</summary>
    public TimeSpan BatchWindow { get; init; } = TimeSpan.FromMilliseconds(2);
    /// <summary>Most rows (encoder rows + sequences) waiting for the model; more are refused with <see cref="QueueFullException"/>.</summary>
    public int MaxQueue { get; init; } = 1024;
    /// <summary>Longest input in tokens, special tokens included (default: the recipe's data.max_length, else the model's positions).</summary>
    public int? MaxLength { get; init; }
}

/// <summary>One class's prediction for a text.</summary>
/// <param name="Label">the winning class name (config id2label)</param>
/// <param name="Score">its probability</param>
/// <param name="Probabilities">every class's probability (softmax of the logits), by name</param>
public sealed record Classification(string Label, double Score, IReadOnlyDictionary<string, double> Probabilities);

/// <summary>A whitespace-separated word of the input with its tag (the tag of its first sub-token, as HF's "first" aggregation).</summary>
public sealed record TaggedWord(string Word, int Start, int End, string Tag, double Score);

/// <summary>A BIO entity (seqeval's rules): type, text and character span [Start, End) in the input.</summary>
public sealed record TaggedEntity(string Type, string Text, int Start, int End);

/// <summary>Tags of a text's words; entities when the tag set is BIO.</summary>
public sealed record TagResult(IReadOnlyList<TaggedWord> Words, IReadOnlyList<TaggedEntity>? Entities);

/// <summary>An extractive answer: the context span [Start, End) and HF's pipeline score p(start)·p(end).</summary>
public sealed record Answer(string Text, int Start, int End, double Score);

/// <summary>How to generate, with OpenAI's names (top_k and repetition_penalty as vLLM's server takes them). Temperature 0
/// (or null) decodes greedily. <see cref="TaskLMModel"/> maps them onto Hugging Face's <see cref="GenerationOptions"/>, and
/// the torch runtime decodes with the sampler <c>tasklm generate</c> uses.</summary>
public sealed record GenerateOptions
{
    public int MaxTokens { get; init; } = 16;
    /// <summary>null or 0 = greedy (argmax); otherwise sample at this temperature.</summary>
    public double? Temperature { get; init; }
    /// <summary>Nucleus sampling: keep the smallest set of tokens reaching this probability (1 = off).</summary>
    public double TopP { get; init; } = 1.0;
    /// <summary>Keep the k most likely tokens (0 = off).</summary>
    public int TopK { get; init; }
    /// <summary>HF's repetition penalty on every id the sequence holds (prompt and generated; 1 = off).</summary>
    public double RepetitionPenalty { get; init; } = 1.0;
    /// <summary>Seed of this sequence's sampling generator: the same seed and prompt give the same text.</summary>
    public long? Seed { get; init; }
    /// <summary>Stop before any of these texts; the stop text is not part of the output (as OpenAI).</summary>
    public IReadOnlyList<string>? Stop { get; init; }
}

/// <summary>One streamed piece of a generation. The last has <see cref="FinishReason"/> set.</summary>
/// <param name="Text">new text since the previous piece (may be empty)</param>
/// <param name="TokenIds">the tokens chosen since the previous piece</param>
/// <param name="FinishReason">null until the last piece: Eos (an end-of-sequence id), Stop (a stop text) or Length
/// (max_tokens or the context); OpenAI's name is <see cref="FinishReasons.OpenAI"/></param>
/// <param name="PromptTokens">tokens in the prompt</param>
/// <param name="CompletionTokens">tokens generated so far</param>
public sealed record GeneratedChunk(string Text, IReadOnlyList<int> TokenIds, FinishReason? FinishReason, int PromptTokens, int CompletionTokens);

/// <summary>A whole generation.</summary>
public sealed record Generated(string Text, FinishReason FinishReason, int PromptTokens, int CompletionTokens);

/// <summary>The one finish reason (<see cref="TaskLM.Models.FinishReason"/>) as the OpenAI wire format names it.</summary>
public static class FinishReasons
{
    /// <summary>"length" (max_tokens or the context), else "stop" (an EOS id or a stop text).</summary>
    public static string OpenAI(this FinishReason reason) => reason == TaskLM.Models.FinishReason.Length ? "length" : "stop";
}

/// <summary>The queue of rows waiting for the model is full (HTTP 429).</summary>
public sealed class QueueFullException(string message) : Exception(message);

/// <summary>A request the model cannot take (too many tokens, wrong task, bad values): HTTP 400.</summary>
public sealed class BadRequestException(string message, string? param = null, string code = "invalid_request_error") : Exception(message)
{
    public string? Param { get; } = param;
    public string Code { get; } = code;
}

/// <summary>What the model is: shown by the playground and /v1/models.</summary>
public sealed record ModelCard
{
    public required string Id { get; init; }
    public required string Task { get; init; }
    public required string ModelType { get; init; }
    public IReadOnlyList<string>? Labels { get; init; }
    public long Parameters { get; init; }
    public int MaxLength { get; init; }
    /// <summary>The run folder, when the model came from one.</summary>
    public string? RunFolder { get; init; }
    /// <summary>The run's eval.json (test metrics), when it has one.</summary>
    public JsonObject? Eval { get; init; }
    /// <summary>The run's report.md text, when it has one.</summary>
    public string? Report { get; init; }
    /// <summary>What runs it: "torch" (TorchSharp) or "onnx" (ONNX Runtime).</summary>
    public string Runtime { get; init; } = "torch";
    /// <summary>The weights' precision: "fp32", "bf16", "fp16", or "int8 dynamic" (an ONNX export with --quantize int8).</summary>
    public string Precision { get; init; } = "fp32";
    /// <summary>What a classification run ships: "model", or "baseline" / "ensemble" when validation chose the saved
    /// TF-IDF baseline (runs/x/baseline/) alone or mixed with the model (Evaluation/ShippedBaseline.cs).</summary>
    public string Ships { get; init; } = "model";
}

/// <summary>
/// A trained TaskLM model loaded once for use from .NET. Thread-safe: any number of callers may use it at
/// once; their rows are batched on the model (dynamic batching for encoder tasks, continuous batching for
/// generation). Inputs are encoded by the task encoder training uses (<see cref="TaskEncoder"/>: [CLS] text [SEP] for
/// BERT, words encoded one by one for tagging, question + context words for QA), truncated to <see cref="MaxLength"/>.
/// </summary>
public sealed class TaskLMModel : IDisposable
{
    readonly IModelRunner _runner;
    readonly ITokenizer _tok;
    readonly TaskEncoder _encoder;
    readonly ModelEngine _engine;
    readonly IReadOnlyList<string>? _labels;

    /// <summary>The model's task: classification, token-classification, question-answering, causal-lm, masked-lm.</summary>
    public string Task => Card.Task;
    /// <summary>Class or tag names (config id2label), for classification and token classification.</summary>
    public IReadOnlyList<string>? Labels => _labels;
    /// <summary>Longest input in tokens.</summary>
    public int MaxLength { get; }
    /// <summary>A causal LM's context in tokens (n_positions): prompt plus completion must fit; 0 for other tasks.</summary>
    public int ContextLength => _engine.Positions;
    /// <summary>The tokenizer inputs go through.</summary>
    public ITokenizer Tokenizer => _tok;
    /// <summary>Task, labels, size and (for a run folder) its test metrics and report.</summary>
    public ModelCard Card { get; }
    /// <summary>Live counters (queue length, batch sizes, tokens) for /metrics.</summary>
    public EngineStats Stats => _engine.Stats;
    /// <summary>The chat template used for chat requests (the tokenizer's when it has one, else TaskLM's default).</summary>
    public ChatTemplate ChatTemplate { get; }

    TaskLMModel(IModelRunner runner, ITokenizer tok, TaskLMModelOptions o, int maxLength, ModelCard card, ChatTemplate? chat = null)
    {
        _runner = runner; _tok = tok; MaxLength = maxLength; Card = card;
        _encoder = new TaskEncoder(tok, maxLength);
        _labels = card.Labels;
        ChatTemplate = chat ?? ChatTemplate.Default;
        _engine = new ModelEngine(runner, o, tok);
    }

    /// <summary>Loads a run folder (its best/, else its newest checkpoint; tokenizer and max length from its recipe),
    /// a Hugging Face model folder (config.json + weights), or an ONNX export (model.onnx + config.json, run by ONNX
    /// Runtime: see <see cref="TaskLMModelOptions.Runtime"/>).</summary>
    public static TaskLMModel Load(string path, TaskLMModelOptions? options = null)
    {
        var o = options ?? new TaskLMModelOptions();
        // Anything but an existing folder (a Hub id, a NuGet model name) is resolved by ModelSource on the torch side.
        return Directory.Exists(path) && ResolveRuntime(path, o.Runtime) == ModelRuntime.Onnx ? LoadOnnx(path, o) : LoadTorch(path, o);
    }

    /// <summary>The runtime <see cref="Load"/> uses for <paramref name="path"/>: <see cref="ModelRuntime.Auto"/> becomes
    /// Onnx for an ONNX export (model.onnx beside config.json, no TorchSharp weights), else Torch. Asking for Torch on
    /// an ONNX export is an error naming the fix.</summary>
    public static ModelRuntime ResolveRuntime(string path, ModelRuntime runtime)
    {
        bool onnxExport = OnnxTaskModel.IsExport(path) && !HasTorchWeights(path);
        return runtime switch
        {
            ModelRuntime.Onnx => ModelRuntime.Onnx,
            ModelRuntime.Auto => onnxExport ? ModelRuntime.Onnx : ModelRuntime.Torch,
            _ when onnxExport => throw new InvalidDataException($"'{path}' is an ONNX export (model.onnx, no TorchSharp weights): run it with --runtime onnx"),
            _ => ModelRuntime.Torch,
        };
    }

    static bool HasTorchWeights(string folder) =>
        File.Exists(Path.Combine(folder, "model.safetensors")) || File.Exists(Path.Combine(folder, "pytorch_model.bin"))
        || File.Exists(Path.Combine(folder, "adapter_config.json")) || File.Exists(Path.Combine(folder, "recipe.resolved.yaml"))
        || File.Exists(Path.Combine(folder, "model.safetensors.index.json"));

    /// <summary>An ONNX export through ONNX Runtime. Touches no TorchSharp type that would load libtorch.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    static TaskLMModel LoadOnnx(string path, TaskLMModelOptions o)
    {
        if (!OnnxTaskModel.IsExport(path))
            throw new FileNotFoundException($"'{path}' is not an ONNX export (no model.onnx beside config.json): write one with `tasklm export --model {path} --format onnx --out DIR`, or use the torch runtime");
        var m = OnnxTaskModel.Load(path, o.IntraOpThreads);
        try
        {
            var tok = o.Tokenizer != null ? TokenizerLoader.Load(o.Tokenizer)
                : m.Tokenizer ?? (m.ModelType == "gpt2" ? TokenizerLoader.Load("gpt2")
                : throw new FileNotFoundException($"{path}: no tokenizer files (tokenizer.json, vocab.txt, vocab.json + merges.txt); give one with --tokenizer"));
            int maxLength = Math.Min(o.MaxLength ?? m.MaxLength, m.MaxLength);
            var card = new ModelCard
            {
                Id = FolderName(path), Task = m.Task, ModelType = m.ModelType, Labels = LabelsOf(m.Task, m.Config.Json["id2label"]),
                Parameters = m.ParameterCount, MaxLength = maxLength, Runtime = "onnx", Precision = m.Precision,
            };
            var chat = m.Task == "causal-lm" ? ChatTemplate.ForFolder(o.Tokenizer is { } t && Directory.Exists(t) ? t : path) : null;
            var eos = TaskLM.Data.Hub.GenerationConfig.EosTokenIds(m.Config.Json, TaskLM.Data.Hub.GenerationConfig.Read(path), path);
            return new TaskLMModel(new OnnxRunner(m, eos), tok, o, maxLength, card, chat);
        }
        catch
        {
            m.Dispose();
            throw;
        }
    }

    /// <summary>The model's id for /v1/models: the folder's name; a run's best/ is named after its run ("spam-best").</summary>
    static string FolderName(string path)
    {
        string full = Path.GetFullPath(path).TrimEnd(Path.DirectorySeparatorChar);
        string name = Path.GetFileName(full);
        return name == RunFolderFiles.Best && Path.GetDirectoryName(full) is { } run ? Path.GetFileName(run) + "-best" : name;
    }

    /// <summary>Class or tag names in id order (config id2label) for classification and token classification.</summary>
    static IReadOnlyList<string>? LabelsOf(string task, JsonNode? id2label) =>
        task is "classification" or "token-classification" && id2label is JsonObject id2
            ? id2.OrderBy(kv => int.Parse(kv.Key, CultureInfo.InvariantCulture)).Select(kv => kv.Value!.GetValue<string>()).ToList()
            : null;

    [MethodImpl(MethodImplOptions.NoInlining)]
    static TaskLMModel LoadTorch(string path, TaskLMModelOptions o)
    {
        var source = ModelSource.Resolve(path);
        if (source.Kind == ModelSourceKind.Preset)
            throw new ArgumentException($"'{path}' is a preset (random weights), not a trained model: give a run folder or a model folder");
        string? runDir = source.RunDir;
        Recipe? recipe = source.Recipe;
        string modelDir = source.Folder!;
        // A run's best/ given directly still reads inputs as the run did: its recipe's max_length (a 512-position encoder
        // fine-tuned at 128 tokens otherwise sees 512 and gives other probabilities than the run's evaluation).
        if (recipe == null && source.Kind == ModelSourceKind.Folder
            && Path.GetFileName(Path.GetFullPath(modelDir).TrimEnd(Path.DirectorySeparatorChar)) == RunFolderFiles.Best
            && Path.GetDirectoryName(Path.GetFullPath(modelDir).TrimEnd(Path.DirectorySeparatorChar)) is { } parent
            && File.Exists(Path.Combine(parent, RunFolderFiles.Recipe)))
            recipe = RecipeLoader.Load(Path.Combine(parent, RunFolderFiles.Recipe));
        // For inference: weights that do not fill the model are refused, as every inference verb does (issue 11).
        ITaskModel model = source.Load(forInference: true);
        var device = o.Device ?? CPU;
        model.Module.to(device);
        model.Module.eval();

        string tokSource = o.Tokenizer ?? source.Tokenizer
            ?? (model.ModelType == "gpt2" ? "gpt2"
                : throw new FileNotFoundException($"{modelDir}: no tokenizer files (tokenizer.json, vocab.txt, vocab.json + merges.txt); give one with --tokenizer"));
        var tok = TokenizerLoader.Load(tokSource);

        var cfg = model.Config;
        int positions = model.MaxPositions;
        int maxLength = Math.Min(o.MaxLength ?? recipe?.Data.MaxLength ?? positions, positions);
        var labels = LabelsOf(model.Task, cfg["id2label"]);
        JsonObject? eval = null; string? report = null;
        if (runDir != null)
        {
            string ev = Path.Combine(runDir, "eval.json"), rep = Path.Combine(runDir, "report.md");
            if (File.Exists(ev)) eval = JsonNode.Parse(File.ReadAllText(ev)) as JsonObject;
            if (File.Exists(rep)) report = File.ReadAllText(rep);
        }
        var full = Path.GetFullPath(path).TrimEnd(Path.DirectorySeparatorChar);
        var card = new ModelCard
        {
            Id = FolderName(path), Task = model.Task, ModelType = model.ModelType, Labels = labels,
            Parameters = model.Module.parameters().Sum(p => p.numel()), MaxLength = maxLength,
            RunFolder = runDir == null ? null : full, Eval = eval, Report = report,
            Precision = model.Module.parameters().FirstOrDefault()?.dtype switch
            {
                ScalarType.BFloat16 => "bf16", ScalarType.Float16 => "fp16", ScalarType.Float64 => "fp64", _ => "fp32",
            },
        };
        // A run whose validation chose the baseline, alone or mixed with the model, ships that: Classify runs the same mix.
        var shipped = model.Task == "classification" ? ShippedBaseline.ForRun(runDir) : null;
        if (shipped != null && labels != null && !shipped.Labels.SequenceEqual(labels))
            throw new InvalidDataException($"{Path.Combine(runDir!, ShippedBaseline.FolderName)}: its labels ({string.Join(", ", shipped.Labels)}) are not the model's ({string.Join(", ", labels)})");
        if (shipped != null) card = card with { Ships = shipped.Ships };
        // The chat template comes with the tokenizer: its folder when that is a folder, else the model's.
        var chat = model.Task == "causal-lm" ? ChatTemplate.ForFolder(Directory.Exists(tokSource) ? tokSource : modelDir) : null;
        return new TaskLMModel(new TorchRunner(model, device), tok, o, maxLength, card, chat) { _shipped = shipped };
    }

    ShippedBaseline? _shipped;

    void Need(params string[] tasks)
    {
        if (!tasks.Contains(Task)) throw new BadRequestException($"this model is a '{Task}' model; this call needs {string.Join(" or ", tasks)}", code: "wrong_task");
    }

    bool WordPiece => _encoder.WordPiece;

    // ───────────── classification ─────────────

    /// <summary>Classifies each text (optionally a pair); rows of concurrent callers share forward passes.</summary>
    public async Task<IReadOnlyList<Classification>> ClassifyAsync(IReadOnlyList<string> texts, IReadOnlyList<string>? pairs = null, CancellationToken ct = default)
    {
        Need("classification");
        if (pairs != null && pairs.Count != texts.Count) throw new BadRequestException($"{texts.Count} texts but {pairs.Count} pairs", "text_pair");
        var rows = texts.Select((t, i) => EncodePair(t, pairs?[i])).ToList();
        var outs = await _engine.RunEncoder(rows, RowKind.Logits, ct).ConfigureAwait(false);
        var labels = _labels ?? [];
        var proba = outs.Select(Softmax).ToArray();   // (N, C)
        if (_shipped != null)
            proba = _shipped.Mix(proba.Select(r => r.Select(x => (float)x).ToArray()).ToArray(), texts.Select((t, i) => ShippedBaseline.Text(t, pairs?[i])).ToList())
                .Select(r => r.Select(x => (double)x).ToArray()).ToArray();
        return proba.Select(p =>
        {
            int best = ArgMax(p);
            var byName = new Dictionary<string, double>();
            for (int c = 0; c < p.Length; c++) byName[Name(labels, c)] = p[c];
            return new Classification(Name(labels, best), p[best], byName);
        }).ToList();
    }

    /// <summary>Synchronous <see cref="ClassifyAsync"/> of one text.</summary>
    public Classification Classify(string text) => ClassifyAsync([text]).GetAwaiter().GetResult()[0];

    // [CLS] a [SEP] (b [SEP]) for WordPiece, a (b) for GPT-2's BPE, as training encodes it (TaskEncoder.Text).
    EncoderRow EncodePair(string a, string? b)
    {
        var enc = _encoder.Text(a, b);
        if (!WordPiece && enc.InputIds.Length == 0) throw new BadRequestException("the text has no tokens", "input");
        return new EncoderRow(enc.InputIds, _encoder.ModelTypeIds(enc));
    }

    // ───────────── token classification ─────────────

    /// <summary>Tags each text's whitespace-separated words; entities when the tags are BIO (B-X/I-X/O).</summary>
    public async Task<IReadOnlyList<TagResult>> TagAsync(IReadOnlyList<string> texts, CancellationToken ct = default)
    {
        Need("token-classification");
        var enc = texts.Select(EncodeWords).ToList();
        var outs = await _engine.RunEncoder(enc.Select(e => e.Row).ToList(), RowKind.Logits, ct).ConfigureAwait(false);
        var labels = _labels ?? [];
        bool bio = labels.Count > 0 && labels.All(l => l == "O" || l.StartsWith("B-", StringComparison.Ordinal) || l.StartsWith("I-", StringComparison.Ordinal));
        var results = new List<TagResult>();
        for (int i = 0; i < texts.Count; i++)
        {
            var (row, words, firstPos) = enc[i];
            float[] logits = outs[i];                                   // (T * C) row-major
            int c = logits.Length / row.Ids.Length;
            var tagged = new List<TaggedWord>();
            for (int w = 0; w < words.Count; w++)
            {
                if (firstPos[w] < 0) continue;                           // no tokens (empty encoding) or truncated away
                var p = Softmax(logits.AsSpan(firstPos[w] * c, c).ToArray());
                int best = ArgMax(p);
                tagged.Add(new TaggedWord(texts[i][words[w].Start..words[w].End], words[w].Start, words[w].End, Name(labels, best), p[best]));
            }
            List<TaggedEntity>? entities = null;
            if (bio)
            {
                entities = [];
                foreach (var e in Seqeval.GetEntities([tagged.Select(t => t.Tag).ToList()]))
                {
                    int s = tagged[e.Start].Start, end = tagged[e.End].End;
                    entities.Add(new TaggedEntity(e.Type, texts[i][s..end], s, end));
                }
            }
            results.Add(new TagResult(tagged, entities));
        }
        return results;
    }

    /// <summary>Synchronous <see cref="TagAsync"/> of one text.</summary>
    public TagResult Tag(string text) => TagAsync([text]).GetAwaiter().GetResult()[0];

    // Each word encoded on its own, as training encodes tagged words (TaskEncoder.Words).
    (EncoderRow Row, List<(int Start, int End)> Words, int[] FirstPos) EncodeWords(string text)
    {
        var (enc, words) = _encoder.Words(text);
        if (words.Count == 0) throw new BadRequestException("the text has no words", "input");
        return (new EncoderRow(enc.Input.InputIds, _encoder.ModelTypeIds(enc.Input)), words, enc.FirstToken);
    }

    // ───────────── question answering ─────────────

    /// <summary>Finds each question's answer span in its context: the best start ≤ end within the context tokens
    /// (at most <paramref name="maxAnswerTokens"/> long), scored p(start)·p(end) as HF's QA pipeline
    /// (<see cref="QaEncoding.BestSpan"/>, as the ONNX runtime picks it).</summary>
    public async Task<IReadOnlyList<Answer>> AnswerAsync(IReadOnlyList<(string Question, string Context)> items, int maxAnswerTokens = TaskEncoder.MaxAnswerTokens, CancellationToken ct = default)
    {
        Need("question-answering");
        var enc = items.Select(x => EncodeQa(x.Question, x.Context)).ToList();
        var outs = await _engine.RunEncoder(enc.Select(e => new EncoderRow(e.Input.InputIds, _encoder.ModelTypeIds(e.Input))).ToList(), RowKind.Logits, ct).ConfigureAwait(false);
        var answers = new List<Answer>();
        for (int i = 0; i < items.Count; i++)
        {
            int t = enc[i].Input.Length;
            var start = Softmax(outs[i][..t]); var end = Softmax(outs[i][t..]);   // start logits then end logits, (T) each
            if (enc[i].BestSpan(start, end, maxAnswerTokens) is not (int bs, int be, double best)) { answers.Add(new Answer("", 0, 0, 0)); continue; }
            var (cs, ce) = enc[i].Characters(bs, be);
            answers.Add(new Answer(items[i].Context[cs..ce], cs, ce, best));
        }
        return answers;
    }

    /// <summary>Synchronous <see cref="AnswerAsync"/> of one question.</summary>
    public Answer Answer(string question, string context) => AnswerAsync([(question, context)]).GetAwaiter().GetResult()[0];

    // Question tokens, then the context word by word (each sub-token carries its word's character span), as training's QA encoding.
    QaEncoding EncodeQa(string question, string context)
    {
        var enc = _encoder.Qa(question, context);
        if (enc.ContextStart >= _encoder.ContentLimit)
            throw new BadRequestException($"the question alone has {enc.ContextStart} tokens; at most {_encoder.ContentLimit - 1} fit", "question", "context_length_exceeded");
        return enc;
    }

    // ───────────── embeddings ─────────────

    /// <summary>Mean of the encoder's last hidden states over each text's real tokens (special tokens included, as
    /// sentence-transformers' mean pooling): (hidden size) per text.</summary>
    public async Task<IReadOnlyList<float[]>> EmbedAsync(IReadOnlyList<string> texts, CancellationToken ct = default)
    {
        var rows = texts.Select(t => EncodePair(t, null)).ToList();
        return await _engine.RunEncoder(rows, RowKind.Embedding, ct).ConfigureAwait(false);
    }

    // ───────────── generation ─────────────

    /// <summary>Prompt tokens of a text (what counts against the context).</summary>
    public int CountTokens(string text) => _tok.Encode(text).Count;

    /// <summary>Streams a continuation of <paramref name="prompt"/>. Sequences of concurrent callers decode in one
    /// batch: a new one joins at the next token step, a finished one leaves. Cancelling the token stops this sequence.</summary>
    public IAsyncEnumerable<GeneratedChunk> GenerateAsync(string prompt, GenerateOptions? options = null, CancellationToken ct = default)
        => GenerateAsync(_tok.Encode(prompt), options, ct);

    /// <summary>As <see cref="GenerateAsync(string, GenerateOptions?, CancellationToken)"/> from prompt token ids.</summary>
    public async IAsyncEnumerable<GeneratedChunk> GenerateAsync(IReadOnlyList<int> promptIds, GenerateOptions? options = null, [EnumeratorCancellation] CancellationToken ct = default)
    {
        Need("causal-lm");
        var o = options ?? new GenerateOptions();
        // A consumer that stops early (breaks out, fails writing to its client) cancels the sequence too.
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var reader = _engine.StartSequence(promptIds, Validate(o, promptIds.Count), stop.Token);
        bool complete = false;
        try
        {
            while (await reader.WaitToReadAsync(ct).ConfigureAwait(false))
                while (reader.TryRead(out var chunk))
                {
                    ct.ThrowIfCancellationRequested();   // chunks already made are not handed out after a cancel
                    yield return chunk;
                }
            complete = true;
        }
        finally
        {
            if (!complete) stop.Cancel();
        }
    }

    /// <summary>The whole continuation of <paramref name="prompt"/>.</summary>
    public async Task<Generated> GenerateTextAsync(string prompt, GenerateOptions? options = null, CancellationToken ct = default)
    {
        var sb = new System.Text.StringBuilder();
        GeneratedChunk? last = null;
        await foreach (var c in GenerateAsync(prompt, options, ct).ConfigureAwait(false)) { sb.Append(c.Text); last = c; }
        return new Generated(sb.ToString(), last?.FinishReason ?? FinishReason.Stop, last?.PromptTokens ?? 0, last?.CompletionTokens ?? 0);
    }

    /// <summary>Checks OpenAI-named options (errors name OpenAI's fields) and maps them onto HF's <see cref="GenerationOptions"/>.</summary>
    GenerationOptions Validate(GenerateOptions o, int promptTokens)
    {
        if (promptTokens == 0) throw new BadRequestException("the prompt has no tokens", "prompt");
        if (o.MaxTokens < 1) throw new BadRequestException($"max_tokens must be at least 1, got {o.MaxTokens}", "max_tokens");
        if (o.Temperature is < 0 or > 2) throw new BadRequestException($"temperature must be in [0, 2], got {o.Temperature}", "temperature");
        if (o.TopP is <= 0 or > 1) throw new BadRequestException($"top_p must be in (0, 1], got {o.TopP}", "top_p");
        if (o.TopK < 0) throw new BadRequestException($"top_k must be >= 0, got {o.TopK}", "top_k");
        if (!(o.RepetitionPenalty > 0) || double.IsInfinity(o.RepetitionPenalty))
            throw new BadRequestException($"repetition_penalty must be > 0 (1 = off), got {o.RepetitionPenalty}", "repetition_penalty");
        if (o.RepetitionPenalty != 1.0 && Card.Runtime == "onnx")
            throw new BadRequestException("repetition_penalty is not supported by the onnx runtime; serve the model folder with --runtime torch", "repetition_penalty");
        // No cap on stop texts here: OpenAI's "at most 4" is the server's check of a request's own, and chat adds its template's.
        if (promptTokens >= _engine.Positions)
            throw new BadRequestException($"the prompt has {promptTokens} tokens; this model's context is {_engine.Positions} tokens", "prompt", "context_length_exceeded");
        // As OpenAI: the prompt plus max_tokens must fit the context; otherwise cut max_tokens to what fits.
        int max = Math.Min(o.MaxTokens, _engine.Positions - promptTokens);
        bool sample = o.Temperature is > 0;
        return new GenerationOptions
        {
            MaxNewTokens = max, DoSample = sample, Temperature = sample ? o.Temperature!.Value : 1.0, TopK = o.TopK, TopP = o.TopP,
            Seed = o.Seed, RepetitionPenalty = o.RepetitionPenalty, StopStrings = o.Stop?.Where(x => x.Length > 0).ToList(),
        };
    }

    // ───────────── helpers ─────────────

    static string Name(IReadOnlyList<string> labels, int c) => c < labels.Count ? labels[c] : c.ToString(CultureInfo.InvariantCulture);

    static double[] Softmax(float[] logits)
    {
        double max = logits.Max(), sum = 0;
        var p = new double[logits.Length];
        for (int i = 0; i < p.Length; i++) { p[i] = Math.Exp(logits[i] - max); sum += p[i]; }
        for (int i = 0; i < p.Length; i++) p[i] /= sum;
        return p;
    }

    static int ArgMax(double[] p)
    {
        int best = 0;
        for (int i = 1; i < p.Length; i++) if (p[i] > p[best]) best = i;
        return best;
    }

    /// <summary>Stops the batching thread and frees the model.</summary>
    public void Dispose()
    {
        _engine.Dispose();
        _runner.Dispose();
    }
}
