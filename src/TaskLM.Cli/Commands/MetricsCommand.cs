// `tasklm metrics bleu|chrf|rouge|classification|squad|seqeval|perplexity`: score prediction files against references.
using System.CommandLine;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Spectre.Console;
using TaskLM.Evaluation;

namespace TaskLM.Cli.Commands;

public static class MetricsCommand
{
    public static Command Create()
    {
        var cmd = new Command("metrics", "Score predictions against references from text files (one segment, label or answer per line)");
        cmd.Subcommands.Add(Bleu());
        cmd.Subcommands.Add(Chrf());
        cmd.Subcommands.Add(Rouge());
        cmd.Subcommands.Add(Classification());
        cmd.Subcommands.Add(Squad());
        cmd.Subcommands.Add(Seqeval());
        cmd.Subcommands.Add(Perplexity());
        return cmd;
    }

    private static Option<string> Req(string name, string description) => new(name) { Description = description, Required = true };

    private static Option<string[]> RefOption() => new("--ref")
    {
        Description = "Reference file, one segment per line; repeat --ref for several reference streams",
        Required = true,
        AllowMultipleArgumentsPerToken = false,
    };

    private static Option<int> BootstrapOption() => new("--bootstrap") { Description = "Bootstrap resamples for a 95% confidence interval of the headline metric (0 = none)", DefaultValueFactory = _ => 0 };
    private static Option<int> SeedOption() => new("--seed") { Description = "Seed of the bootstrap resampling", DefaultValueFactory = _ => 0 };

    /// <summary>Lines of a UTF-8 text file without the final empty line a trailing newline leaves.</summary>
    private static List<string> ReadLines(string path, string what)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{what} file '{path}' does not exist");
        var text = File.ReadAllText(path, Encoding.UTF8);
        var lines = text.Split('\n').Select(l => l.EndsWith('\r') ? l[..^1] : l).ToList();
        if (lines.Count > 0 && lines[^1].Length == 0) lines.RemoveAt(lines.Count - 1);
        return lines;
    }

    private static void SameCount(List<string> a, string aPath, List<string> b, string bPath)
    {
        if (a.Count != b.Count) throw new InvalidDataException($"'{aPath}' has {a.Count} lines but '{bPath}' has {b.Count}: they must align line by line");
    }

    private static void Print(JsonObject o) => Console.WriteLine(o.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));

    private static string F(double v) => v.ToString("0.0000", CultureInfo.InvariantCulture);

    private static void Show(string title, IEnumerable<(string, string)> rows)
    {
        var t = new Table().Title(title).AddColumn("metric").AddColumn(new TableColumn("value").RightAligned());
        foreach (var (k, v) in rows) t.AddRow(Markup.Escape(k), Markup.Escape(v));
        AnsiConsole.Write(t);
    }

    private static (List<string> Hyps, List<IReadOnlyList<string>> Refs) ReadHypRefs(ParseResult p, Option<string> hyp, Option<string[]> refs)
    {
        var hypPath = p.GetValue(hyp)!;
        var hyps = ReadLines(hypPath, "hypothesis");
        var streams = new List<IReadOnlyList<string>>();
        foreach (var r in p.GetValue(refs)!)
        {
            var lines = ReadLines(r, "reference");
            SameCount(hyps, hypPath, lines, r);
            streams.Add(lines);
        }
        // sacrebleu prints BLEU = 0.00 for empty files; a score of nothing is a mistake (a wrong or empty file), not a zero.
        if (hyps.Count == 0)
            throw new InvalidDataException($"no segments to score: '{hypPath}' and '{string.Join("', '", p.GetValue(refs)!)}' are empty");
        return (hyps, streams);
    }

    private static Command Bleu()
    {
        var hyp = Req("--hyp", "Hypothesis file, one segment per line");
        var refs = RefOption();
        var sentence = new Option<bool>("--sentence") { Description = "Also print each segment's sentence BLEU (exp smoothing, effective order)" };
        var boot = BootstrapOption();
        var seed = SeedOption();
        var json = Global.JsonOption();
        var cmd = new Command("bleu", "Corpus BLEU exactly as sacrebleu's defaults compute it (13a tokenizer, case-sensitive, exp smoothing)");
        foreach (var o in new Option[] { hyp, refs, sentence, boot, seed, json }) cmd.Options.Add(o);
        cmd.SetAction(p =>
        {
            var (hyps, streams) = ReadHypRefs(p, hyp, refs);
            var score = Evaluation.Bleu.Corpus(hyps, streams);
            var o = new JsonObject
            {
                ["score"] = score.Score,
                ["precisions"] = new JsonArray(score.Precisions.Select(x => (JsonNode?)x).ToArray()),
                ["bp"] = score.BrevityPenalty, ["sys_len"] = score.HypLength, ["ref_len"] = score.RefLength,
                ["signature"] = score.ToString(),
            };
            if (p.GetValue(sentence))
                o["sentence_scores"] = new JsonArray(hyps.Select((h, i) => (JsonNode?)Evaluation.Bleu.Sentence(h, streams.Select(s => s[i]).ToList()).Score).ToArray());
            ConfidenceInterval? ci = null;
            if (p.GetValue(boot) is int n and > 0)
            {
                ci = Bootstrap.Compute(hyps.Count, idx => Evaluation.Bleu.Corpus(idx.Select(i => hyps[i]).ToList(),
                    streams.Select(s => (IReadOnlyList<string>)idx.Select(i => s[i]).ToList()).ToList()).Score, n, seed: p.GetValue(seed));
                o["confidence_interval"] = CiJson(ci);
            }
            if (p.GetValue(json)) { Print(o); return 0; }
            Console.WriteLine(score.ToString());
            if (ci != null) Console.WriteLine(FormattableString.Invariant($"95% bootstrap CI: [{ci.Low:F2}, {ci.High:F2}] ({ci.Samples} resamples, seed {ci.Seed})"));
            return 0;
        });
        return cmd;
    }

    private static JsonObject CiJson(ConfidenceInterval ci) => new()
    {
        ["estimate"] = ci.Estimate, ["low"] = ci.Low, ["high"] = ci.High, ["confidence"] = ci.Confidence, ["samples"] = ci.Samples, ["seed"] = ci.Seed,
    };

    private static Command Chrf()
    {
        var hyp = Req("--hyp", "Hypothesis file, one segment per line");
        var refs = RefOption();
        var json = Global.JsonOption();
        var cmd = new Command("chrf", "Corpus chrF exactly as sacrebleu's defaults compute it (character 6-grams, beta 2, whitespace ignored)");
        foreach (var o in new Option[] { hyp, refs, json }) cmd.Options.Add(o);
        cmd.SetAction(p =>
        {
            var (hyps, streams) = ReadHypRefs(p, hyp, refs);
            double score = Evaluation.Chrf.Corpus(hyps, streams);
            if (p.GetValue(json)) { Print(new JsonObject { ["score"] = score }); return 0; }
            Console.WriteLine(FormattableString.Invariant($"chrF2 = {score:F2}"));
            return 0;
        });
        return cmd;
    }

    private static Command Rouge()
    {
        var hyp = Req("--hyp", "Prediction file, one segment per line");
        var refFile = Req("--ref", "Reference file, one segment per line");
        var stem = new Option<bool>("--stem") { Description = "Porter-stem tokens longer than 3 letters (rouge-score's use_stemmer=True)" };
        var json = Global.JsonOption();
        var cmd = new Command("rouge", "ROUGE-1/2/L/Lsum F-measures as Google's rouge-score computes them, averaged over segments. "
            + "A segment is one line, so rougeLsum sees one sentence per segment unless a line holds the two characters \\n as a sentence break");
        foreach (var o in new Option[] { hyp, refFile, stem, json }) cmd.Options.Add(o);
        cmd.SetAction(p =>
        {
            var hyps = ReadLines(p.GetValue(hyp)!, "prediction");
            var refs = ReadLines(p.GetValue(refFile)!, "reference");
            SameCount(hyps, p.GetValue(hyp)!, refs, p.GetValue(refFile)!);
            static string Breaks(string s) => s.Replace("\\n", "\n");
            var scores = Evaluation.Rouge.Corpus(refs.Select(Breaks).ToList(), hyps.Select(Breaks).ToList(), useStemmer: p.GetValue(stem));
            if (p.GetValue(json))
            {
                var o = new JsonObject();
                foreach (var (k, v) in scores) o[k] = v.FMeasure;
                o["details"] = new JsonObject(scores.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)new JsonObject
                    { ["precision"] = kv.Value.Precision, ["recall"] = kv.Value.Recall, ["fmeasure"] = kv.Value.FMeasure })));
                Print(o);
                return 0;
            }
            var t = new Table().AddColumn("variant").AddColumn(new TableColumn("precision").RightAligned())
                .AddColumn(new TableColumn("recall").RightAligned()).AddColumn(new TableColumn("F1").RightAligned());
            foreach (var (k, v) in scores) t.AddRow(k, F(v.Precision), F(v.Recall), F(v.FMeasure));
            AnsiConsole.Write(t);
            return 0;
        });
        return cmd;
    }

    private static Command Classification()
    {
        var gold = Req("--gold", "Gold labels, one per line");
        var pred = Req("--pred", "Predicted labels, one per line");
        var scores = new Option<string?>("--scores")
        {
            Description = "Optional class scores, one line per example, whitespace-separated, in sorted label order "
                + "(binary: one positive-class score per line is enough); adds roc_auc and average_precision (binary) or top_k_accuracy",
        };
        var positive = new Option<string?>("--positive") { Description = "Positive label for binary ROC-AUC / average precision (default: the second label in sorted order)" };
        var topK = new Option<int>("--top-k") { Description = "k for top_k_accuracy when --scores is given (multiclass)", DefaultValueFactory = _ => 2 };
        var boot = BootstrapOption();
        var seed = SeedOption();
        var json = Global.JsonOption();
        var cmd = new Command("classification", "Accuracy, per-class and micro/macro/weighted precision/recall/F1 and the confusion matrix, as scikit-learn computes them");
        foreach (var o in new Option[] { gold, pred, scores, positive, topK, boot, seed, json }) cmd.Options.Add(o);
        cmd.SetAction(p =>
        {
            var g = ReadLines(p.GetValue(gold)!, "gold").Select(l => l.Trim()).ToList();
            var pr = ReadLines(p.GetValue(pred)!, "prediction").Select(l => l.Trim()).ToList();
            SameCount(g, p.GetValue(gold)!, pr, p.GetValue(pred)!);
            var r = ClassificationMetrics.Compute(g, pr);
            var metrics = new JsonObject();
            foreach (var (k, v) in r.ToMetrics())
                metrics[k] = v is double d ? d : JsonSerializer.SerializeToNode(v);
            if (p.GetValue(scores) is string scorePath)
                foreach (var (name, value) in ClassificationMetrics.FromScores(g, r.Labels, ReadScores(scorePath), p.GetValue(positive), p.GetValue(topK), scorePath))
                    metrics[name] = value;
            var o = new JsonObject { ["n"] = r.N, ["metrics"] = metrics };
            var rows = new JsonArray();
            for (int i = 0; i < r.Labels.Count; i++)
                rows.Add(new JsonArray(Enumerable.Range(0, r.Labels.Count).Select(c => (JsonNode?)r.ConfusionMatrix[i, c]).ToArray()));
            o["confusion_matrix"] = new JsonObject { ["labels"] = new JsonArray(r.Labels.Select(l => (JsonNode?)l).ToArray()), ["matrix"] = rows };
            if (p.GetValue(boot) is int n and > 0)
            {
                // Resample examples, keep the full label set so macro-F1 averages over the same classes.
                var labels = r.Labels;
                o["confidence_intervals"] = new JsonObject
                {
                    ["accuracy"] = CiJson(Bootstrap.Compute(g.Count, idx => idx.Count(i => g[i] == pr[i]) / (double)idx.Count, n, seed: p.GetValue(seed))),
                    ["macro_f1"] = CiJson(Bootstrap.Compute(g.Count, idx => ClassificationMetrics.Compute(idx.Select(i => g[i]).ToList(), idx.Select(i => pr[i]).ToList(), labels).Macro.F1, n, seed: p.GetValue(seed))),
                };
            }
            if (p.GetValue(json)) { Print(o); return 0; }
            var rowsOut = new List<(string, string)> { ("n", r.N.ToString(CultureInfo.InvariantCulture)) };
            foreach (var (k, v) in metrics) if (v is JsonValue jv && jv.TryGetValue(out double d)) rowsOut.Add((k, F(d)));
            Show("Classification", rowsOut);
            var t = new Table().Title("Per class").AddColumn("class");
            foreach (var h in new[] { "precision", "recall", "f1", "support" }) t.AddColumn(new TableColumn(h).RightAligned());
            foreach (var (k, v) in r.PerClass) t.AddRow(Markup.Escape(k), F(v.Precision), F(v.Recall), F(v.F1), v.Support.ToString(CultureInfo.InvariantCulture));
            AnsiConsole.Write(t);
            if (o["confidence_intervals"] is JsonObject cis)
                foreach (var (k, v) in cis) AnsiConsole.WriteLine($"{k}: 95% bootstrap CI [{F(v!["low"]!.GetValue<double>())}, {F(v["high"]!.GetValue<double>())}]");
            return 0;
        });
        return cmd;
    }

    /// <summary>Class scores, one row of numbers per line (the library checks their shape and picks the metrics).</summary>
    private static List<double[]> ReadScores(string path)
    {
        var lines = ReadLines(path, "scores");
        var rows = new List<double[]>();
        for (int i = 0; i < lines.Count; i++)
        {
            var parts = lines[i].Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
            var row = new double[parts.Length];
            for (int j = 0; j < parts.Length; j++)
                if (!double.TryParse(parts[j], NumberStyles.Float, CultureInfo.InvariantCulture, out row[j]))
                    throw new InvalidDataException($"{path} line {i + 1}: '{parts[j]}' is not a number");
            rows.Add(row);
        }
        return rows;
    }

    private static Command Squad()
    {
        var gold = Req("--gold", "Gold answers, one question per line: a JSON array of acceptable answers, or one answer as plain text");
        var pred = Req("--pred", "Predicted answers, one per line (empty line = no answer)");
        var json = Global.JsonOption();
        var cmd = new Command("squad", "SQuAD exact match and token F1 (percent) with the official answer normalisation, best over gold answers");
        foreach (var o in new Option[] { gold, pred, json }) cmd.Options.Add(o);
        cmd.SetAction(p =>
        {
            var goldPath = p.GetValue(gold)!;
            var gl = ReadLines(goldPath, "gold");
            var pr = ReadLines(p.GetValue(pred)!, "prediction");
            SameCount(gl, goldPath, pr, p.GetValue(pred)!);
            var golds = new List<IReadOnlyList<string>>();
            for (int i = 0; i < gl.Count; i++)
            {
                var line = gl[i].Trim();
                if (line.StartsWith('['))
                {
                    try { golds.Add(JsonSerializer.Deserialize<List<string>>(line) ?? []); }
                    catch (JsonException e) { throw new InvalidDataException($"{goldPath} line {i + 1}: not a JSON array of strings ({e.Message})", e); }
                }
                else golds.Add([gl[i]]);
            }
            var (em, f1, _) = Evaluation.Squad.Evaluate(pr, golds);
            if (p.GetValue(json)) { Print(new JsonObject { ["exact_match"] = em, ["f1"] = f1, ["n"] = pr.Count }); return 0; }
            Show("SQuAD", [("exact_match", F(em)), ("f1", F(f1)), ("n", pr.Count.ToString(CultureInfo.InvariantCulture))]);
            return 0;
        });
        return cmd;
    }

    private static Command Seqeval()
    {
        var gold = Req("--gold", "Gold tags: one sentence per line, tags (IOB2, e.g. B-PER I-PER O) separated by spaces");
        var pred = Req("--pred", "Predicted tags, same layout as --gold");
        var json = Global.JsonOption();
        var cmd = new Command("seqeval", "Entity precision/recall/F1 as seqeval computes them by default (per type, micro/macro/weighted) and token accuracy");
        foreach (var o in new Option[] { gold, pred, json }) cmd.Options.Add(o);
        cmd.SetAction(p =>
        {
            var gl = ReadLines(p.GetValue(gold)!, "gold");
            var pl = ReadLines(p.GetValue(pred)!, "prediction");
            SameCount(gl, p.GetValue(gold)!, pl, p.GetValue(pred)!);
            static IReadOnlyList<string> Tags(string l) => l.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
            var g = gl.Select(Tags).ToList();
            var pr = pl.Select(Tags).ToList();
            for (int i = 0; i < g.Count; i++)
                if (g[i].Count != pr[i].Count)
                    throw new InvalidDataException($"line {i + 1}: {g[i].Count} gold tags in '{p.GetValue(gold)}' but {pr[i].Count} in '{p.GetValue(pred)}'");
            var (perType, micro, macro, weighted, acc) = Evaluation.Seqeval.Evaluate(g, pr);
            var metrics = new JsonObject
            {
                ["precision"] = micro.Precision, ["recall"] = micro.Recall, ["f1"] = micro.F1,
                ["macro_precision"] = macro.Precision, ["macro_recall"] = macro.Recall, ["macro_f1"] = macro.F1,
                ["weighted_precision"] = weighted.Precision, ["weighted_recall"] = weighted.Recall, ["weighted_f1"] = weighted.F1,
                ["token_accuracy"] = acc,
                ["per_class"] = JsonSerializer.SerializeToNode(perType),
            };
            if (p.GetValue(json)) { Print(new JsonObject { ["metrics"] = metrics }); return 0; }
            Show("Entities (seqeval)", metrics.Where(kv => kv.Value is JsonValue).Select(kv => (kv.Key, F(kv.Value!.GetValue<double>()))));
            var t = new Table().Title("Per entity type").AddColumn("type");
            foreach (var h in new[] { "precision", "recall", "f1", "support" }) t.AddColumn(new TableColumn(h).RightAligned());
            foreach (var (k, v) in perType) t.AddRow(Markup.Escape(k), F(v.Precision), F(v.Recall), F(v.F1), v.Support.ToString(CultureInfo.InvariantCulture));
            AnsiConsole.Write(t);
            return 0;
        });
        return cmd;
    }

    private static Command Perplexity()
    {
        var nll = Req("--nll", "File of per-token scores: numbers separated by whitespace or newlines (e.g. one token per line, "
            + "or one text per line), each the negative log-likelihood of one token in nats (natural log); '#' starts a comment");
        var logprobs = new Option<bool>("--logprobs") { Description = "The numbers are log-probabilities (<= 0, natural log), not NLLs: they are negated" };
        var bytes = new Option<long?>("--bytes") { Description = "UTF-8 byte count of the scored text, for bits per byte" };
        var text = new Option<string?>("--text") { Description = "The scored text file; its UTF-8 byte count gives bits per byte" };
        var json = Global.JsonOption();
        var cmd = new Command("perplexity", "Loss (mean NLL, nats), perplexity = exp(loss), bits per token, and bits per byte from per-token NLLs");
        foreach (var o in new Option[] { nll, logprobs, bytes, text, json }) cmd.Options.Add(o);
        cmd.SetAction(p =>
        {
            var path = p.GetValue(nll)!;
            var values = new List<double>();
            var lines = ReadLines(path, "NLL");
            bool neg = p.GetValue(logprobs);
            for (int i = 0; i < lines.Count; i++)
            {
                var line = lines[i];
                int hash = line.IndexOf('#');
                if (hash >= 0) line = line[..hash];
                foreach (var part in line.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries))
                {
                    if (!double.TryParse(part, NumberStyles.Float, CultureInfo.InvariantCulture, out double v) || double.IsNaN(v))
                        throw new InvalidDataException($"{path} line {i + 1}: '{part}' is not a number");
                    if (neg) v = -v;
                    if (v < 0) throw new InvalidDataException($"{path} line {i + 1}: {part} is {(neg ? "a log-probability above 0" : "a negative NLL (pass --logprobs if these are log-probabilities)")}");
                    values.Add(v);
                }
            }
            var s = LanguageModelMetrics.FromNll(values);
            long? b = p.GetValue(bytes);
            if (p.GetValue(text) is string tp)
            {
                if (!File.Exists(tp)) throw new FileNotFoundException($"text file '{tp}' does not exist");
                b = new FileInfo(tp).Length;
            }
            var o = new JsonObject { ["loss"] = s.Loss, ["perplexity"] = s.Perplexity, ["tokens"] = s.Tokens, ["bits_per_token"] = s.BitsPerToken };
            if (b is long bb) o["bits_per_byte"] = s.BitsPerByte(bb);
            if (p.GetValue(json)) { Print(o); return 0; }
            Show("Language model", o.Select(kv => (kv.Key, kv.Value is JsonValue v && v.TryGetValue(out long l) ? l.ToString(CultureInfo.InvariantCulture) : F(kv.Value!.GetValue<double>()))));
            return 0;
        });
        return cmd;
    }
}
