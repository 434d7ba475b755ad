// Data-driven recipe values for fine-tuning on any labelled file: a validation split, max_length, class weights.
using System.Globalization;
using System.Text.Json.Nodes;
using TaskLM.Data.Corpus;
using TaskLM.Data.Tokenization;
using TaskLM.Evaluation;
using TaskLM.Hf;
using TaskLM.Models;
using TaskLM.Recipes;

namespace TaskLM.Training;

/// <summary>Resolves the recipe values that come from the data, and says each one it chose:
/// <list type="bullet">
/// <item><c>data.validation_split</c> &gt; 0 without <c>data.validation</c>: a stratified, seeded split of the training
/// file (the data-import readers, so CSV/TSV/JSONL/Parquet) into the run folder's data/train.jsonl and data/validation.jsonl.</item>
/// <item><c>data.max_length: 0</c>: the 95th percentile of the tokenized training texts (specials included), rounded up
/// to a multiple of 8, at least 16, at most the model's position limit (and <c>data.max_length_cap</c> when set).</item>
/// <item><c>training.class_weights: auto</c>: "balanced" when the largest class has at least 1.5× the examples of the
/// smallest, else none.</item>
/// </list></summary>
public static class AutoSettings
{
    /// <summary>Largest/smallest class ratio from which <c>class_weights: auto</c> weights the classes.</summary>
    public const double ImbalanceRatio = 1.5;

    /// <summary>Resolves the automatic values of <paramref name="r"/> in place; <paramref name="say"/> gets one line per value chosen.</summary>
    public static void Resolve(Recipe r, string runDir, ITokenizer? tok, Action<string> say)
    {
        var d = r.Data;
        bool text = r.Task is "classification" or "token-classification" or "question-answering" or "generation";
        CheckFiles(r);
        if (r.Task == "classification" && d.Train != null) CheckColumns(r);
        if (d.Validation == null && d.ValidationSplit > 0 && d.Train != null) SplitValidation(r, runDir, say);
        // Checked before anything is written: a length past the model's positions used to fail at step 1 and leave a
        // run folder that refused the corrected rerun.
        if (d.MaxLength > 0 && ModelLimit(r.Model.Init, r.Model.Config) is var positions && d.MaxLength > positions)
            throw new RecipeException($"data.max_length {d.MaxLength} is longer than the model takes: {r.Model.Init} has {positions} positions (max_position_embeddings); set data.max_length to at most {positions}");
        if (d.MaxLength == 0)
        {
            int limit = ModelLimit(r.Model.Init, r.Model.Config);
            if (d.MaxLengthCap > 0) limit = Math.Min(limit, d.MaxLengthCap);
            if (tok == null || !text || r.Task != "classification")
            {
                d.MaxLength = Math.Min(limit, 512);
                say($"data.max_length: {d.MaxLength} (the model's limit; lengths are measured for text classification only)");
            }
            else
            {
                var lens = Rows(d.Train!).Take(5000).Select(row => tok.EncodeForModel(Text(row, d.TextColumn) ?? "", d.TextPairColumn == null ? null : Text(row, d.TextPairColumn)).InputIds.Length)
                    .Order().ToArray();
                int p95 = lens.Length == 0 ? 16 : lens[(int)Math.Ceiling(0.95 * lens.Length) - 1];
                d.MaxLength = Math.Clamp((p95 + 7) / 8 * 8, 16, limit);
                say($"data.max_length: {d.MaxLength} (95th percentile of {lens.Length} training texts is {p95} tokens; median {lens[lens.Length / 2]}; {(d.MaxLengthCap > 0 ? "cap" : "model limit")} {limit})");
            }
        }
        if (r.Task == "classification" && r.Strategy.Method == "features")
            say($"strategy.method: features: frozen encoder, logistic-regression head with C from [{string.Join(", ", r.Strategy.Features.C)}] chosen on validation {r.Training.EarlyStopping?.Metric ?? "macro_f1"} (training.lr, epochs and schedule do not apply)");
        else if (r.Task == "classification")
        {
            var t = r.Training;
            say($"fine-tuning: lr {t.Lr:G3}, batch {t.BatchSize}, " + (t.MaxSteps > 0 ? $"max_steps {t.MaxSteps}" : $"epochs {t.Epochs}")
                + $", warmup {t.Warmup:G3}, weight decay {t.WeightDecay:G3}, {t.Scheduler} schedule"
                + (t.EarlyStopping is { } es ? $", early stopping on {es.Metric} (patience {es.Patience})" : "")
                + " (override any with key=value, e.g. training.lr=5e-5)");
        }
        if (r.Training.ClassWeights is JsonValue v && v.TryGetValue(out string? cw) && cw == "auto")
        {
            if (r.Task != "classification") { r.Training.ClassWeights = null; say("training.class_weights: none (auto applies to classification)"); }
            else
            {
                var counts = Rows(d.Train!).Select(row => Text(row, d.LabelColumn) ?? "").GroupBy(x => x).ToDictionary(g => g.Key, g => g.Count());
                double ratio = counts.Values.Max() / (double)counts.Values.Min();
                string shares = string.Join(", ", counts.OrderByDescending(kv => kv.Value).Select(kv => $"{kv.Key} {kv.Value}"));
                r.Training.ClassWeights = ratio >= ImbalanceRatio ? JsonValue.Create("balanced") : null;
                say(ratio >= ImbalanceRatio
                    ? $"training.class_weights: balanced (classes are imbalanced, largest/smallest = {ratio:0.0}: {shares})"
                    : $"training.class_weights: none (classes are balanced enough, largest/smallest = {ratio:0.0}: {shares})");
            }
        }
    }

    /// <summary>How much faster than fp32 a bf16 matmul must run here for <c>training.precision: auto</c> to choose bf16.
    /// A step gains less than its products do (the 2-core Zen 5 box: a 2048² product 3.6x faster in bf16, a MiniLM
    /// fine-tuning step 1.7x), and a CPU without bf16 instructions emulates them 10-100x slower than fp32.</summary>
    public const double Bf16MatmulSpeedup = 2.0;

    /// <summary><c>training.precision: auto</c>: bf16 where this device multiplies bf16 matrices at least
    /// <see cref="Bf16MatmulSpeedup"/> times as fast as fp32 (a CPU with AVX-512 BF16 or AMX, a GPU with bf16 tensor
    /// cores), else fp32; measured now on 1024² products, since the CPU under a VM changes between hosts. Full
    /// fine-tuning only: the strategy whose validation scores were checked in bf16 (the others keep fp32). Says what it
    /// chose and why; the run records the choice in recipe.resolved.yaml.</summary>
    public static void ResolvePrecision(Recipe r, TorchSharp.torch.Device device, Action<string> say)
    {
        var t = r.Training;
        if (t.Precision != "auto") return;
        if (r.Strategy.Method != "full")
        {
            t.Precision = "fp32";
            if (r.Strategy.Method != "features") say($"training.precision: fp32 (auto chooses bf16 for strategy.method full only; this run is {r.Strategy.Method})");
            return;
        }
        // 1024² products: a 512² one mostly times the call (17 GFLOP/s fp32 where a 2048² runs at 150) and its bf16/fp32
        // ratio wandered across 2x between runs. A CPU that emulates bf16 stops at a smaller side, within a second.
        var (fp32, _) = Native.TorchBackend.MeasureMatmulGflopsUpTo(device, 1024, TorchSharp.torch.ScalarType.Float32);
        var (bf16, side) = Native.TorchBackend.MeasureMatmulGflopsUpTo(device, 1024, TorchSharp.torch.ScalarType.BFloat16);
        t.Precision = bf16 >= Bf16MatmulSpeedup * fp32 ? "bf16" : "fp32";
        say($"training.precision: {t.Precision} (auto: a {side}x{side} matmul runs at {bf16:N0} GFLOP/s in bf16 and {fp32:N0} in fp32 on this {device.type.ToString().ToLowerInvariant()}; bf16 from {Bf16MatmulSpeedup:0.#}x)");
    }

    /// <summary>Holds a validation set out of the training file as a run without <c>data.validation</c> does (stratified,
    /// seeded, <c>data.validation_split</c> of the rows) into <paramref name="dir"/>/data/, after checking the files and
    /// columns; <c>tasklm tune</c> does it once for every trial. Sets data.train and data.validation to the two parts.</summary>
    public static void HoldOutValidation(Recipe r, string dir, Action<string> say)
    {
        if (r.Data.Train == null || r.Data.ValidationSplit <= 0 || r.Data.ValidationSplit >= 1)
            throw new RecipeException($"data.validation_split must be between 0 and 1 to hold out a validation set (got {r.Data.ValidationSplit})");
        CheckFiles(r);
        if (r.Task == "classification") CheckColumns(r);
        SplitValidation(r, dir, say);
    }

    /// <summary>The longest sequence the model takes: the recipe's model.config override when it sets one (a preset
    /// reshaped to 128 positions takes 128), else config.json's max_position_embeddings / n_positions, or the preset's.</summary>
    public static int ModelLimit(string init, JsonObject? configOverride = null) =>
        (configOverride is { } o ? HfConfig.MaxPositionsOf(o, "model.config") : null) ?? ModelSource.Resolve(init).MaxPositions ?? 512;

    static void SplitValidation(Recipe r, string runDir, Action<string> say)
    {
        var d = r.Data;
        var rows = DataImport.Read(d.Train!, new ImportOptions(), new RowErrors(OnError.Fail)).ToList();
        bool stratify = r.Task == "classification";
        var split = DatasetSplitter.Assign(rows, new SplitOptions
        {
            Names = ["train", "validation"], Ratios = [1 - d.ValidationSplit, d.ValidationSplit],
            Stratify = stratify ? d.LabelColumn : null, Seed = r.Training.Seed, TextColumn = d.TextColumn,
        });
        string dir = Path.Combine(runDir, "data");
        Directory.CreateDirectory(dir);
        string train = Path.Combine(dir, "train.jsonl"), val = Path.Combine(dir, "validation.jsonl");
        // Written aside and renamed: tune's workers each make the same split, and a trial may be reading it.
        WriteAtomically(train, split.Rows(0).Select(i => rows[i]));
        WriteAtomically(val, split.Rows(1).Select(i => rows[i]));
        int nv = split.Rows(1).Count();
        say($"data.validation: none given, so {nv} of {rows.Count} training rows ({d.ValidationSplit:P0}{(stratify ? $", stratified by {d.LabelColumn}" : "")}, seed {r.Training.Seed}) "
            + $"are held out as validation → {val}");
        d.Train = train;
        d.Validation = val;
    }

    static void WriteAtomically(string path, IEnumerable<DataRow> rows)
    {
        string tmp = $"{path}.{Environment.ProcessId}.tmp";
        JsonlFile.Write(tmp, rows);
        File.Move(tmp, path, overwrite: true);
    }

    /// <summary>Every data file the recipe names exists, checked before training: a recipe's own data.test kept beside a
    /// user's data.train used to fail after the whole run, and the rerun was then refused by the folder it left.</summary>
    static void CheckFiles(Recipe r)
    {
        foreach (var (key, path) in new[] { ("data.train", r.Data.Train), ("data.validation", r.Data.Validation), ("data.test", r.Data.Test) })
            if (path != null && !File.Exists(path) && !Directory.Exists(path))
                throw new RecipeException($"{key}: {path} does not exist" + (key == "data.train" ? "" : $" (set {key}=<your file>, or {key}=null to go without)"));
    }

    /// <summary>The user's training file has the text and label columns the recipe names, checked on the file itself (a
    /// missing column used to be reported against the run's internal copy, runs/x/data/train.jsonl).</summary>
    static void CheckColumns(Recipe r)
    {
        var d = r.Data;
        var first = Rows(d.Train!).FirstOrDefault();
        if (first == null || first.ContainsKey("input_ids")) return;   // empty (reported later) or pre-tokenized
        foreach (var (col, key) in new[] { (d.TextColumn, "data.text_column"), (d.LabelColumn, "data.label_column"), (d.TextPairColumn, "data.text_pair_column") })
            if (col != null && !first.ContainsKey(col))
                throw new RecipeException($"{d.Train}: the first row has no column '{col}' (its columns: {string.Join(", ", first.Select(kv => kv.Key))}); name yours with {key}=<column>");
    }

    static IEnumerable<JsonObject> Rows(string path) => DataImport.Read(path, new ImportOptions(), new RowErrors(OnError.Fail)).Select(x => x.Fields);

    static string? Text(JsonObject row, string column) => row[column] switch
    {
        null => null,
        JsonValue v when v.TryGetValue(out string? s) => s,
        var other => other.ToJsonString(),
    };
}
