// `tasklm evaluate`: score a trained model (a run folder or an HF folder) on a data file; eval.json + report.
using System.Text.Json.Nodes;
using TaskLM.Data.Tokenization;
using TaskLM.Hf;
using TaskLM.Models;
using TaskLM.Recipes;
using TaskLM.Tasks;
using TaskLM.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace TaskLM.Evaluation;

/// <summary>What <see cref="ModelEvaluation.Run"/> needs beyond the model and the data.</summary>
public sealed class EvaluateOptions
{
    /// <summary>Tokenizer folder or "gpt2"; default: the run's recipe, else the model folder's files, else
    /// what training used for the recipe's init (GPT-2's vocabulary for a GPT-2 preset).</summary>
    public string? Tokenizer { get; init; }
    /// <summary>Recipe-style overrides (data.text_column=body, data.max_length=256, ...).</summary>
    public IReadOnlyList<string> Overrides { get; init; } = [];
    /// <summary>Where eval.json and the report go; default: the run folder, or ./eval for a bare model folder.</summary>
    public string? OutDir { get; init; }
    public int BatchSize { get; init; } = 32;
    public int Worst { get; init; } = 10;
    public Device Device { get; init; } = CPU;
    public Action<string> Say { get; init; } = _ => { };
}

/// <summary>Loads the model a run produced (best/, else the newest checkpoint) or an HF model folder, reads the
/// data the way training reads it (same recipe columns and tokenizer), and builds the task's evaluation:
/// for classification every prediction is kept (confusion matrix, per-class table, worst examples with their
/// texts and losses); other tasks report the metrics training's evaluation computes.</summary>
public static class ModelEvaluation
{
    public static (EvalResult Result, string OutDir, string ReportPath) Run(string modelPath, string dataPath, EvaluateOptions o)
    {
        if (!File.Exists(dataPath)) throw new FileNotFoundException($"data file '{dataPath}' does not exist", dataPath);
        if (o.BatchSize < 1) throw new ArgumentException($"evaluate: the batch size must be at least 1 (got {o.BatchSize}; --batch-size)");
        var source = ModelSource.Resolve(modelPath);
        if (source.Kind == ModelSourceKind.Preset)
            throw new ArgumentException($"'{modelPath}' is a preset (random weights), not a trained model: evaluate a run folder or a model folder");
        string? runDir = source.RunDir;
        string modelDir = source.Folder!;
        Recipe recipe;
        PreTrainedModel? loaded = null;   // a bare HF folder is loaded once: for its task, and to score it
        // An ONNX export (`tasklm export --format onnx`, fp32 or --quantize int8): scored through ONNX Runtime.
        if (runDir == null && !source.IsAdapter && TaskLM.Onnx.OnnxTaskModel.IsExport(modelDir) && !HasTorchWeights(modelDir))
            return RunOnnx(source, modelPath, modelDir, dataPath, o);
        if (runDir != null)
        {
            recipe = RecipeLoader.Load(Path.Combine(runDir, RunFolderFiles.Recipe), o.Overrides);
            if (source.Note != null) o.Say(source.Note);
        }
        else
        {
            string task;
            if (source.IsAdapter) task = source.Task ?? throw new ArgumentException($"{modelDir}: the adapter's base names no task head; evaluate its run folder");
            else
            {
                loaded = ModelFactory.ForInference(modelDir);   // refuses weights that do not fill the model (issue 11)
                task = loaded.Task;
            }
            // The folder's own task and weights, the data file as the one split; everything else the recipe defaults.
            // The default block length (256) never past the model's positions (a 128-position encoder failed with
            // "sequence length 256 exceeds max_position_embeddings 128"); a data.max_length override still replaces it.
            var defaults = new Recipe { Task = task, Model = { Init = source.IsAdapter ? source.Base!.Spec : modelPath }, Data = { Train = dataPath } };
            defaults.Data.MaxLength = Math.Min(defaults.Data.MaxLength, source.MaxPositions ?? defaults.Data.MaxLength);
            recipe = RecipeLoader.Apply(defaults, o.Overrides, $"{modelPath} (defaults for evaluation)");
        }
        string modelTask = TaskNames.ModelTask(recipe.Task);
        o.Say($"model: {modelDir} ({modelTask})");

        if (loaded != null && loaded.Task != modelTask) { loaded.Module.Dispose(); loaded = null; }   // task= overridden
        // Weights that do not fill the model are refused (issue 11); an adapter's base may lack the head it brings.
        ITaskModel model = loaded ?? (source.IsAdapter
            ? ModelSource.Resolve(modelPath, recipe.Model.Init).Load(modelTask, forInference: true)
            : ModelFactory.ForInference(modelDir, modelTask));
        model.Module.to(o.Device);
        model.Module.eval();
        IReadOnlyList<string>? labels = model.Config["id2label"] is JsonObject
            ? HfConfig.LabelsOf(model.Config, Path.Combine(modelDir, "config.json")) : null;
        if (recipe.Task is not ("classification" or "token-classification")) labels = null;

        string? tokSource = o.Tokenizer ?? recipe.Tokenizer ?? source.Tokenizer ?? ModelSource.Resolve(recipe.Model.Init).Tokenizer;
        ITokenizer? tok = tokSource != null ? TokenizerLoader.Load(tokSource) : null;
        // Chat rows are rendered with the template the model was trained on: its folder's (a chat run writes it into best/).
        HfChatTemplate? chat = tok != null && recipe.Task is TaskNames.CausalLm or TaskNames.Generation
            ? ChatData.Resolve(recipe.Data.ChatTemplate, HfChatTemplate.FromFolder(modelDir) != null ? modelDir : tokSource, tok, _ => { }) : null;
        var data = TaskData.Load(recipe, dataPath, tok, labels, chatTemplate: chat);
        if (data.Examples.Count == 0) throw new InvalidDataException($"{dataPath}: no examples to evaluate");
        o.Say($"data: {data.Examples.Count} examples from {dataPath}");
        var collator = TrainingRun.MakeCollator(recipe, model, tok, o.Device);

        string split = SplitName(dataPath);
        EvalResult result;
        using (no_grad())
            result = recipe.Task == "classification"
                ? Classify(model, data.Examples, collator, labels ?? data.Labels ?? [], SourceTexts(recipe.Data, dataPath, data.Examples.Count), tok,
                    o.BatchSize, o.Worst, split, o.Say)
                : Aggregate(model, data.Examples, collator, labels, o, recipe.Task, split);

        result.ModelSource = source.Provenance ?? recipe.Model.Source ?? source.Base?.Provenance;
        // A run's classifier is compared with the baseline fitted on the run's training file (Evaluation/BaselineStage.cs).
        if (runDir != null && recipe.Task == "classification" && labels != null)
        {
            result.Baseline = BaselineStage.Run(recipe, dataPath, data.Examples, model, collator, labels, tok, o.Say, runDir);
            result.Baseline?.MakeHeadline(result);   // a run that ships the baseline or a mix is scored as it ships
        }

        string outDir = o.OutDir ?? runDir ?? Path.Combine(Directory.GetCurrentDirectory(), "eval");
        // A run's eval.json is its test result: evaluating another file writes beside it, not over it (the playground and
        // reports read the run's own), unless --out says where.
        if (o.OutDir == null && runDir != null && File.Exists(Path.Combine(runDir, RunFolderFiles.Eval))
            && (recipe.Data.Test == null || !string.Equals(Path.GetFullPath(recipe.Data.Test), Path.GetFullPath(dataPath), StringComparison.Ordinal)))
        {
            outDir = Path.Combine(runDir, "eval-" + split);
            o.Say($"{Path.Combine(runDir, RunFolderFiles.Eval)} is the run's test result, so this evaluation of {dataPath} goes to {outDir} (--out chooses another folder)");
        }
        return (result, outDir, Write(result, outDir));
    }

    static bool HasTorchWeights(string folder) =>
        File.Exists(Path.Combine(folder, "model.safetensors")) || File.Exists(Path.Combine(folder, "model.safetensors.index.json"))
        || File.Exists(Path.Combine(folder, "pytorch_model.bin"));

    /// <summary>A classifier exported to ONNX, through ONNX Runtime: the data read as for a bare HF folder (the file as the
    /// one split, the folder's tokenizer, data.max_length at most the model's positions), every example padded and scored
    /// as <see cref="Classify"/> does, eval.json and the report written the same way. Other tasks are refused.</summary>
    static (EvalResult Result, string OutDir, string ReportPath) RunOnnx(ModelSource source, string modelPath, string modelDir, string dataPath, EvaluateOptions o)
    {
        using var onnx = TaskLM.Onnx.OnnxTaskModel.Load(modelDir);
        if (onnx.Task != "classification")
            throw new NotSupportedException($"{modelDir}: evaluating an ONNX export covers sequence classification; this one is {onnx.Task} (evaluate the model folder it was exported from)");
        var defaults = new Recipe { Task = onnx.Task, Model = { Init = modelPath }, Data = { Train = dataPath } };
        defaults.Data.MaxLength = Math.Min(defaults.Data.MaxLength, onnx.MaxLength);
        var recipe = RecipeLoader.Apply(defaults, o.Overrides, $"{modelPath} (defaults for evaluation)");
        o.Say($"model: {modelDir} (onnx {onnx.Precision}, {recipe.Task})");
        // No tokenizer files in the folder: the data must be pre-tokenized (input_ids), as for any model.
        string? tokSource = o.Tokenizer ?? recipe.Tokenizer ?? source.Tokenizer;
        ITokenizer? tok = tokSource != null ? TokenizerLoader.Load(tokSource) : null;
        var labels = onnx.Labels;
        var data = TaskData.Load(recipe, dataPath, tok, labels);
        if (data.Examples.Count == 0) throw new InvalidDataException($"{dataPath}: no examples to evaluate");
        o.Say($"data: {data.Examples.Count} examples from {dataPath}");
        int pad = onnx.Config.PadTokenId ?? tok?.PadTokenId ?? 0;
        string split = SplitName(dataPath);
        var result = ClassifyWith(chunk =>
        {
            int t = chunk.Max(e => e.InputIds.Length);
            // Right-padded to the longest row, as the Collator pads for the torch path.
            long[][] Pad(Func<Example, int, long> value, long fill) => chunk.Select(e =>
                Enumerable.Range(0, t).Select(j => j < e.InputIds.Length ? value(e, j) : fill).ToArray()).ToArray();
            var logits = onnx.Forward(Pad((e, j) => e.InputIds[j], pad), Pad((_, _) => 1, 0), Pad((e, j) => e.TokenTypeIds?[j] ?? 0, 0))["logits"];   // (B, C)
            int c = (int)logits.Shape[1];
            var logp = new float[chunk.Count * c];
            for (int b = 0; b < chunk.Count; b++)
            {
                var row = logits.Data.AsSpan(b * c, c);
                double max = double.NegativeInfinity;
                foreach (var v in row) max = Math.Max(max, v);
                double lse = 0;
                foreach (var v in row) lse += Math.Exp(v - max);
                lse = max + Math.Log(lse);
                for (int k = 0; k < c; k++) logp[b * c + k] = (float)(row[k] - lse);
            }
            return (logp, c);
        }, data.Examples, labels, SourceTexts(recipe.Data, dataPath, data.Examples.Count), tok, o.BatchSize, o.Worst, split, o.Say);
        result.ModelSource = source.Provenance;
        string outDir = o.OutDir ?? Path.Combine(Directory.GetCurrentDirectory(), "eval");
        return (result, outDir, Write(result, outDir));
    }

    /// <summary>The split a data file names ("test" for test.jsonl.gz).</summary>
    static string SplitName(string dataPath) =>
        Path.GetFileNameWithoutExtension(dataPath.EndsWith(".gz", StringComparison.OrdinalIgnoreCase) ? dataPath[..^3] : dataPath);

    /// <summary>eval.json (written whole, then moved into place) and the report of <paramref name="outDir"/>; the
    /// report's path.</summary>
    static string Write(EvalResult result, string outDir)
    {
        Directory.CreateDirectory(outDir);
        string evalPath = Path.Combine(outDir, "eval.json"), tmp = evalPath + ".tmp";
        File.WriteAllText(tmp, result.ToJsonString());
        File.Move(tmp, evalPath, overwrite: true);
        return ReportBuilder.ForRuns([RunFolder.Read(outDir)]).Write(outDir);
    }

    /// <summary>Sequence classification, as <c>tasklm evaluate</c> and <c>tasklm train</c>'s test evaluation score it: every
    /// prediction kept, so the result has the per-class table, the confusion matrix and the worst examples (misclassified
    /// first, then by loss), and <c>loss</c> is the mean negative log-probability of the gold class.
    /// <paramref name="texts"/>: the examples' original input texts (<see cref="SourceTexts"/>), shown in the worst
    /// examples; null = the token ids decoded by <paramref name="tok"/> (pre-tokenized data).</summary>
    public static EvalResult Classify(ITaskModel model, IReadOnlyList<Example> examples, Collator collator, IReadOnlyList<string> labels,
        IReadOnlyList<string>? texts, ITokenizer? tok, int batchSize, int worst, string split, Action<string>? say = null)
    {
        using var _ = no_grad();
        return ClassifyWith(chunk =>
        {
            using var scope = NewDisposeScope();
            var logits = model.Forward(collator.Collate(chunk)).Logits!;           // (B, C)
            var logp = nn.functional.log_softmax(logits.to(float32), -1).cpu();    // (B, C)
            return (logp.data<float>().ToArray(), (int)logp.shape[1]);
        }, examples, labels, texts, tok, batchSize, worst, split, say);
    }

    /// <summary>The classification bookkeeping of <see cref="Classify"/> for any scorer (libtorch or an ONNX export):
    /// <paramref name="logProbs"/> gives a batch's log-probabilities, row-major (B, C), and C. The prediction is the first
    /// most probable class (as torch's argmax), the loss the gold class's negative log-probability.</summary>
    static EvalResult ClassifyWith(Func<List<Example>, (float[] LogProbs, int Classes)> logProbs, IReadOnlyList<Example> examples,
        IReadOnlyList<string> labels, IReadOnlyList<string>? texts, ITokenizer? tok, int batchSize, int worst, string split, Action<string>? say)
    {
        string Name(int c) => c >= 0 && c < labels.Count ? labels[c] : c.ToString(System.Globalization.CultureInfo.InvariantCulture);
        var gold = new List<string>(); var pred = new List<string>(); var losses = new List<double>(); var shown = new List<string>();
        for (int i = 0; i < examples.Count; i += batchSize)
        {
            var chunk = examples.Skip(i).Take(batchSize).ToList();
            var (lp, c) = logProbs(chunk);
            for (int b = 0; b < chunk.Count; b++)
            {
                int best = 0;
                for (int k = 1; k < c; k++) if (lp[b * c + k] > lp[b * c + best]) best = k;
                gold.Add(Name(chunk[b].Label));
                pred.Add(Name(best));
                losses.Add(chunk[b].Label >= 0 && chunk[b].Label < c ? -lp[b * c + chunk[b].Label] : double.NaN);
                shown.Add(EvalResult.Excerpt(texts?[i + b] ?? tok?.Decode(chunk[b].InputIds, skipSpecialTokens: true) ?? string.Join(' ', chunk[b].InputIds)));
            }
            if (i / batchSize % 10 == 0) say?.Invoke($"  {Math.Min(i + batchSize, examples.Count)}/{examples.Count}");
        }
        var result = EvalResult.ForClassification(gold, pred, shown, losses, worst, split);
        result.Metrics["loss"] = losses.Where(double.IsFinite).DefaultIfEmpty(double.NaN).Average();
        return result;
    }

    /// <summary>The original input texts of a classification file's first <paramref name="count"/> rows (text, and the
    /// pair column after a newline), read with the columns of <paramref name="data"/>: what the worst examples show, so a
    /// reader sees the text as written, not lower-cased and re-tokenised. Null when the file has no text column
    /// (pre-tokenized) or fewer rows than examples.</summary>
    public static IReadOnlyList<string>? SourceTexts(DataSection data, string path, int count)
    {
        try
        {
            var read = LabelledTexts.Read(path, data.TextColumn, data.LabelColumn, data.TextPairColumn);
            return read.Texts.Count >= count ? read.Texts.Take(count).ToList() : null;
        }
        catch (Exception e) when (e is InvalidDataException or TaskLM.Data.Corpus.DataFormatException or IOException) { return null; }
    }

    // Other tasks: the metrics training's evaluation computes (loss, perplexity, token accuracy, exact match); a
    // tagger whose tags are BIO adds seqeval's entity precision, recall and F1 (micro, macro, weighted, per type).
    static EvalResult Aggregate(ITaskModel model, IReadOnlyList<Example> examples, Collator collator, IReadOnlyList<string>? labels,
        EvaluateOptions o, string task, string split)
    {
        var m = EvalLoop.Run(model, examples, collator, o.BatchSize, labels);
        var result = task == "token-classification" && labels != null && IsBio(labels)
            ? Tag(model, examples, collator, labels, o, split)
            : task == "question-answering" && examples.All(e => e.Qa != null)
            ? Answer(model, examples, collator, o, split)
            : new EvalResult { Task = task, Split = split, N = examples.Count };
        foreach (var (k, v) in m) result.Metrics[k] = v;
        return result;
    }

    // Extractive QA read from text: the predicted span (argmax start, argmax end — the positions training's
    // exact_match compares) turned back into context text and scored against every gold answer by the official
    // SQuAD v1.1 definitions (EvalResult.ForQuestionAnswering). Named squad_exact_match / squad_f1 (percent):
    // exact_match stays training's metric, the fraction of examples whose start and end tokens are both right.
    static EvalResult Answer(ITaskModel model, IReadOnlyList<Example> examples, Collator collator, EvaluateOptions o, string split)
    {
        var predictions = new List<string>();
        for (int i = 0; i < examples.Count; i += o.BatchSize)
        {
            using var scope = NewDisposeScope();
            var chunk = examples.Skip(i).Take(o.BatchSize).ToList();
            var output = model.Forward(collator.Collate(chunk));
            long[] starts = output.StartLogits!.argmax(-1).cpu().data<long>().ToArray(), ends = output.EndLogits!.argmax(-1).cpu().data<long>().ToArray();   // (B,)
            for (int b = 0; b < chunk.Count; b++) predictions.Add(chunk[b].Qa!.Answer((int)starts[b], (int)ends[b]));
        }
        var squad = EvalResult.ForQuestionAnswering(predictions, examples.Select(e => e.Qa!.Answers).ToList(),
            examples.Select(e => e.Qa!.Question).ToList(), o.Worst, split);
        var result = new EvalResult { Task = squad.Task, Split = split, N = squad.N };
        result.Metrics["squad_exact_match"] = squad.Metrics["exact_match"];
        result.Metrics["squad_f1"] = squad.Metrics["f1"];
        result.WorstExamples.AddRange(squad.WorstExamples);
        return result;
    }

    /// <summary>Tags in the IOB2/BIO scheme seqeval scores: every tag is O or B-/I- followed by an entity type.</summary>
    public static bool IsBio(IReadOnlyList<string> tags) =>
        tags.Any(t => t.StartsWith("B-", StringComparison.Ordinal)) && tags.All(t => t == "O" || t.StartsWith("B-", StringComparison.Ordinal) || t.StartsWith("I-", StringComparison.Ordinal));

    // Token classification: the gold and predicted tag of every word (its first sub-token, where the label is not
    // -100), one sequence per example, scored by seqeval.
    static EvalResult Tag(ITaskModel model, IReadOnlyList<Example> examples, Collator collator, IReadOnlyList<string> labels, EvaluateOptions o, string split)
    {
        string Name(long c) => c >= 0 && c < labels.Count ? labels[(int)c] : "O";
        var gold = new List<IReadOnlyList<string>>(); var pred = new List<IReadOnlyList<string>>();
        for (int i = 0; i < examples.Count; i += o.BatchSize)
        {
            using var scope = NewDisposeScope();
            var chunk = examples.Skip(i).Take(o.BatchSize).ToList();
            var batch = collator.Collate(chunk);
            var p = model.Forward(batch).Logits!.argmax(-1).cpu();   // (B, T)
            var y = batch.Labels!.cpu();                              // (B, T), -100 = not a word's first piece
            long t = y.shape[1];
            long[] pa = p.data<long>().ToArray(), ya = y.data<long>().ToArray();
            for (int b = 0; b < chunk.Count; b++)
            {
                var g = new List<string>(); var q = new List<string>();
                for (long j = 0; j < t; j++)
                    if (ya[b * t + j] != -100) { g.Add(Name(ya[b * t + j])); q.Add(Name(pa[b * t + j])); }
                gold.Add(g); pred.Add(q);
            }
        }
        return EvalResult.ForTokenClassification(gold, pred, worst: o.Worst, split: split);
    }
}
