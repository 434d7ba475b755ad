// `tasklm augment`: synthetic training rows for a labelled text file, by EDA edits (seeded random swap, deletion and
// insertion of in-vocabulary words) or by a label-conditioned causal LM fine-tuned on the file, kept only when a
// classifier trained on the real rows agrees; every new row then passes data clean's checks against the real data.
using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using TaskLM.Data.Corpus;
using TaskLM.Data.Tokenization;
using TaskLM.Evaluation;
using TaskLM.Models;
using TaskLM.Recipes;
using TaskLM.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace TaskLM.Improve;

public sealed class AugmentOptions
{
    public required string Input { get; init; }
    public required string Out { get; init; }
    /// <summary>eda | lm.</summary>
    public required string Method { get; init; }
    /// <summary>New rows per real row (lm: per real row of the label, so the label mix stays the same).</summary>
    public int PerExample { get; init; } = 2;
    public int Seed { get; init; } = 42;
    public string TextColumn { get; init; } = "text";
    public string LabelColumn { get; init; } = "label";
    /// <summary>Other files (validation, test) that no new row may duplicate or nearly duplicate.</summary>
    public IReadOnlyList<string> Against { get; init; } = [];
    /// <summary>Write only the new rows (default: the real rows first, then the new ones: a training file).</summary>
    public bool OnlyNew { get; init; }
    /// <summary>EDA: the fraction of a text's words each operation changes (Wei and Zou's alpha).</summary>
    public double Alpha { get; init; } = 0.1;
    /// <summary>lm: the decoder fine-tuned on the file (TaskLM's shipped one by default).</summary>
    public string Generator { get; init; } = "models/tasklm-gpt2-mini";
    public int GeneratorEpochs { get; init; } = 3;
    public double GeneratorLr { get; init; } = 5e-4;
    public int MaxNewTokens { get; init; } = 100;
    public double Temperature { get; init; } = 0.9;
    public int TopK { get; init; } = 50;
    /// <summary>lm: keep a generated row when the classifier gives its intended label at least this probability.</summary>
    public double MinConfidence { get; init; } = 0.6;
    /// <summary>Near-duplicate threshold (MinHash Jaccard, data clean's default 0.8).</summary>
    public double NearThreshold { get; init; } = 0.8;
    /// <summary>lm: folder for the generator's fine-tuning run (default: next to --out).</summary>
    public string? WorkDir { get; init; }
    public Device Device { get; init; } = CPU;
    public Action<string> Say { get; init; } = _ => { };
}

public static class Augment
{
    public const string Source = "augment:new";

    public static JsonObject Run(AugmentOptions o)
    {
        if (o.Method is not ("eda" or "lm")) throw new ArgumentException($"--method '{o.Method}': use eda or lm");
        if (o.PerExample < 1) throw new ArgumentException("--per-example must be at least 1");
        if (o.Alpha is <= 0 or >= 1) throw new ArgumentException("--alpha must be in (0, 1)");
        if (Path.GetFullPath(o.Input) == Path.GetFullPath(o.Out)) throw new ArgumentException($"--out {o.Out} is the input file; write elsewhere");
        var sw = Stopwatch.StartNew();
        var rows = LabelledRows.Read(o.Input);
        var texts = new List<string>(); var labels = new List<string>();
        for (int i = 0; i < rows.Count; i++)
        {
            texts.Add(rows[i][o.TextColumn]?.ToString() ?? throw new InvalidDataException($"{o.Input}: row {i + 1} has no text column '{o.TextColumn}' (columns: {string.Join(", ", rows[i].Select(kv => kv.Key))})"));
            labels.Add(LabelledRows.Label(rows[i], o.LabelColumn, o.Input, i));
        }
        var report = new JsonObject { ["input"] = o.Input, ["out"] = o.Out, ["method"] = o.Method, ["per_example"] = o.PerExample, ["seed"] = o.Seed, ["input_rows"] = rows.Count };
        List<JsonObject> candidates = o.Method == "eda" ? Eda(texts, labels, o, report) : Lm(texts, labels, o, report);
        report["candidates"] = candidates.Count;
        var kept = CleanAgainstReal(rows, candidates, o, report);
        var output = o.OnlyNew ? kept : rows.Select(r => (JsonObject)r.DeepClone()).Concat(kept).ToList();
        JsonlFile.Write(o.Out, output);
        report["new_rows"] = kept.Count;
        report["new_label_counts"] = LabelledRows.Counts(kept, o.LabelColumn);
        report["rows_written"] = output.Count;
        report["seconds"] = Math.Round(sw.Elapsed.TotalSeconds, 1);
        Io.WriteJson(ReportPath(o.Out), report);
        return report;
    }

    /// <summary>augment-report.json beside the output (name.augment-report.json).</summary>
    public static string ReportPath(string outPath)
    {
        string name = Path.GetFileName(outPath);
        foreach (var ext in new[] { ".jsonl.gz", ".jsonl", ".csv", ".json" })
            if (name.EndsWith(ext, StringComparison.OrdinalIgnoreCase)) { name = name[..^ext.Length]; break; }
        return Path.Combine(Path.GetDirectoryName(Path.GetFullPath(outPath))!, name + ".augment-report.json");
    }

    // ---- EDA ------------------------------------------------------------------------------------------------------

    /// <summary>The EDA operations of Wei and Zou (2019) without WordNet: each new row applies one operation, chosen at
    /// random, to n = max(1, round(alpha · words)) words: swap two random words n times, delete each word with
    /// probability alpha (at least one word stays), or insert n words drawn from the texts of the same label.</summary>
    static List<JsonObject> Eda(List<string> texts, List<string> labels, AugmentOptions o, JsonObject report)
    {
        var rng = new Random(o.Seed);
        // In-vocabulary words per label: seen at least twice in that label's texts (one-off tokens are mostly noise).
        var vocab = new Dictionary<string, string[]>(StringComparer.Ordinal);
        foreach (var g in texts.Zip(labels).GroupBy(x => x.Second, StringComparer.Ordinal))
        {
            var counts = new Dictionary<string, int>(StringComparer.Ordinal);
            foreach (var (t, _) in g) foreach (var w in Words(t)) counts[w] = counts.GetValueOrDefault(w) + 1;
            var words = counts.Where(kv => kv.Value >= 2).Select(kv => kv.Key).Order(StringComparer.Ordinal).ToArray();
            vocab[g.Key] = words.Length > 0 ? words : counts.Keys.Order(StringComparer.Ordinal).ToArray();
        }
        var ops = new Dictionary<string, int> { ["swap"] = 0, ["delete"] = 0, ["insert"] = 0 };
        var list = new List<JsonObject>();
        for (int i = 0; i < texts.Count; i++)
        {
            var words = Words(texts[i]);
            if (words.Length == 0) continue;
            for (int k = 0; k < o.PerExample; k++)
            {
                var w = words.ToList();
                int n = Math.Max(1, (int)Math.Round(o.Alpha * w.Count));
                string op = (w.Count < 2 ? new[] { "insert" } : ["swap", "delete", "insert"])[rng.Next(w.Count < 2 ? 1 : 3)];
                switch (op)
                {
                    case "swap":
                        for (int s = 0; s < n; s++) { int a = rng.Next(w.Count), b = rng.Next(w.Count); (w[a], w[b]) = (w[b], w[a]); }
                        break;
                    case "delete":
                        var keep = w.Where(_ => rng.NextDouble() >= o.Alpha).ToList();
                        w = keep.Count > 0 ? keep : [w[rng.Next(w.Count)]];
                        break;
                    default:
                        var v = vocab[labels[i]];
                        for (int s = 0; s < n && v.Length > 0; s++) w.Insert(rng.Next(w.Count + 1), v[rng.Next(v.Length)]);
                        break;
                }
                ops[op]++;
                list.Add(new JsonObject { [o.TextColumn] = string.Join(' ', w), [o.LabelColumn] = labels[i], ["augmented"] = "eda", ["eda_op"] = op, ["source_row"] = i + 1 });
            }
        }
        report["alpha"] = o.Alpha;
        report["operations"] = new JsonObject(ops.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)kv.Value)));
        return list;
    }

    static string[] Words(string text) => text.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);

    // ---- label-conditioned LM -------------------------------------------------------------------------------------

    /// <summary>The prompt that holds the label (the generator learns text after it).</summary>
    public static string Prompt(string label) => $"label: {label}\ntext:";

    /// <summary>Fine-tunes the generator on prompt → text pairs of the real rows (loss on the text only), samples
    /// per_example rows per real row of each label, and keeps those the TF-IDF classifier fitted on the real rows
    /// assigns to the intended label with probability ≥ min_confidence.</summary>
    static List<JsonObject> Lm(List<string> texts, List<string> labels, AugmentOptions o, JsonObject report)
    {
        string work = o.WorkDir ?? Path.Combine(Path.GetDirectoryName(Path.GetFullPath(o.Out))!, Path.GetFileNameWithoutExtension(o.Out) + ".lm");
        Directory.CreateDirectory(work);
        string pairs = Path.Combine(work, "prompts.jsonl");
        JsonlFile.Write(pairs, texts.Zip(labels).Select(x => new JsonObject { ["prompt"] = Prompt(x.Second), ["completion"] = " " + x.First }));
        string runDir = Path.Combine(work, "generator");
        if (Directory.Exists(runDir)) Directory.Delete(runDir, recursive: true);
        string Q(string s) => "'" + s.Replace("'", "''") + "'";
        // Why these settings: the shipped decoder has 128 positions; a few epochs at lr 5e-4 adapt it to the file's
        // style without a validation split (the classifier filter below is the quality gate).
        var recipe = RecipeLoader.Parse(
            $"task: generation\nmodel: {{init: {Q(o.Generator)}}}\ndata: {{train: {Q(pairs)}, max_length: 128}}\n" +
            $"training: {{epochs: {o.GeneratorEpochs}, batch_size: 8, lr: {o.GeneratorLr.ToString(CultureInfo.InvariantCulture)}, weight_decay: 0.01, warmup: 0.06, " +
            $"eval_every: none, save_every: 0, keep_last: 1, tensorboard: false, seed: {o.Seed}}}\noutput_dir: {Q(runDir)}\n", "augment --method lm (generator recipe)");
        o.Say($"fine-tuning {o.Generator} on {texts.Count} labelled texts ({o.GeneratorEpochs} epochs) in {runDir}");
        var sw = Stopwatch.StartNew();
        using (var log = new StreamWriter(Path.Combine(work, "generator.log")) { AutoFlush = true })
            TrainingRun.Run(recipe, new RunOptions { Device = o.Device, Say = log.WriteLine });
        report["generator"] = o.Generator;
        report["generator_train_s"] = Math.Round(sw.Elapsed.TotalSeconds, 1);
        string ckpt = Checkpoints.Latest(runDir);
        var model = ModelFactory.ForInference(ckpt, "causal-lm") as ICausalLM ?? throw new InvalidOperationException($"{o.Generator}: the generator must be a causal LM");
        model.Module.to(o.Device);
        model.Module.eval();
        ITokenizer tok = TokenizerLoader.Load(ckpt);
        int eos = tok.EosTokenId ?? 0;

        sw.Restart();
        var generated = new List<(string text, string label)>();
        long seed = o.Seed;
        foreach (var g in labels.GroupBy(l => l, StringComparer.Ordinal).OrderBy(g => g.Key, StringComparer.Ordinal))
        {
            int want = g.Count() * o.PerExample;
            var prompt = tok.Encode(Prompt(g.Key));
            for (int done = 0; done < want; done += 16)
            {
                int b = Math.Min(16, want - done);
                var outs = Generation.Generate(model, Enumerable.Repeat((IReadOnlyList<int>)prompt, b).ToList(), new GenerationOptions
                {
                    MaxNewTokens = o.MaxNewTokens, DoSample = true, Temperature = o.Temperature, TopK = o.TopK, Seed = seed++, EosTokenId = eos, PadTokenId = eos,
                });
                foreach (var ids in outs) generated.Add((tok.Decode(ids.Where(x => x != eos).ToList(), skipSpecialTokens: true).Trim(), g.Key));
            }
        }
        model.Module.Dispose();
        report["generation_s"] = Math.Round(sw.Elapsed.TotalSeconds, 1);
        report["generated"] = generated.Count;

        // The classifier trained on the real data: TF-IDF + logistic regression (seconds to fit, no GPU).
        var order = labels.Distinct().Order(StringComparer.Ordinal).ToList();
        var clf = TextBaseline.Fit(texts, labels, order);
        var nonEmpty = generated.Where(x => x.text.Length > 0).ToList();
        var proba = nonEmpty.Count > 0 ? clf.PredictProba(nonEmpty.Select(x => x.text).ToList()) : [];
        var list = new List<JsonObject>();
        var rejected = new List<JsonObject>();
        var perLabel = order.ToDictionary(l => l, _ => (generated: 0, kept: 0, sum: 0.0), StringComparer.Ordinal);
        int lowConfidence = 0;
        for (int i = 0; i < nonEmpty.Count; i++)
        {
            double p = proba[i][order.IndexOf(nonEmpty[i].label)];
            var row = new JsonObject { [o.TextColumn] = nonEmpty[i].text, [o.LabelColumn] = nonEmpty[i].label, ["augmented"] = "lm", ["confidence"] = Math.Round(p, 4) };
            var s = perLabel[nonEmpty[i].label];
            perLabel[nonEmpty[i].label] = (s.generated + 1, s.kept + (p >= o.MinConfidence ? 1 : 0), s.sum + p);
            if (p < o.MinConfidence) { lowConfidence++; rejected.Add(row); continue; }
            list.Add(row);
        }
        // What the filter turned away, for people to read (is the threshold or the generator the problem?).
        JsonlFile.Write(Path.Combine(work, "below-confidence.jsonl"), rejected);
        report["per_label"] = new JsonObject(perLabel.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)new JsonObject
        {
            ["generated"] = kv.Value.generated, ["kept_by_confidence"] = kv.Value.kept,
            ["mean_confidence"] = kv.Value.generated > 0 ? Math.Round(kv.Value.sum / kv.Value.generated, 4) : null,
        })));
        report["empty"] = generated.Count - nonEmpty.Count;
        report["classifier"] = BaselineComparison.MethodName + ", fitted on the input rows";
        report["min_confidence"] = o.MinConfidence;
        report["below_confidence"] = lowConfidence;
        o.Say($"generated {generated.Count} rows in {report["generation_s"]} s; {lowConfidence} below confidence {o.MinConfidence}, {generated.Count - nonEmpty.Count} empty");
        return list;
    }

    // ---- the cleaning checks --------------------------------------------------------------------------------------

    /// <summary>Runs data clean's pipeline (default options: normalisation, filters, known labels, exact and near
    /// dedup) over the real rows, the --against files and then the candidates, and keeps the candidates it keeps (in
    /// their cleaned form): no new row is empty, duplicates another new row, or duplicates or nearly duplicates a
    /// real row. Counts what it removed, by step, in the report.</summary>
    static List<JsonObject> CleanAgainstReal(List<JsonObject> rows, List<JsonObject> candidates, AugmentOptions o, JsonObject report)
    {
        var options = new CleaningOptions
        {
            TextColumn = o.TextColumn, LabelColumn = o.LabelColumn, AllowEmpty = true,
            Labels = rows.Select((r, i) => LabelledRows.Label(r, o.LabelColumn, o.Input, i)).Distinct().ToList(),
            NearDedup = new NearDuplicateOptions { Threshold = o.NearThreshold, Seed = o.Seed },
        };
        var pipeline = new CleaningPipeline(options);
        var removed = new Dictionary<string, int>(StringComparer.Ordinal);
        IEnumerable<DataRow> All()
        {
            for (int i = 0; i < rows.Count; i++) yield return new DataRow((JsonObject)rows[i].DeepClone(), o.Input, i + 1);
            foreach (var f in o.Against)
            {
                long line = 0;
                foreach (var r in LabelledRows.Read(f)) yield return new DataRow(r, f, ++line);
            }
            for (int i = 0; i < candidates.Count; i++) yield return new DataRow(candidates[i], Source, i + 1);
        }
        var kept = pipeline.Run(All(), (row, step, _) => { if (row.Source == Source) removed[step] = removed.GetValueOrDefault(step) + 1; }, o.Input)
            .Where(r => r.Source == Source).Select(r => r.Fields).ToList();
        report["removed_by_cleaning"] = new JsonObject(removed.OrderBy(kv => kv.Key).Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)kv.Value)));
        report["checked_against"] = new JsonArray([o.Input, .. o.Against.Select(a => (JsonNode)a)]);
        return kept;
    }
}
