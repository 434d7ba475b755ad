// The summary at the end of every `tasklm train`: time, best checkpoint, test metrics beside the baseline, where things are, what next.
using System.Globalization;
using System.Text.Json.Nodes;
using TaskLM.Data.Tokenization;
using TaskLM.Tasks;

namespace TaskLM.Evaluation;

/// <summary>What a finished run produced, for the closing summary (console) and <c>--json</c>.</summary>
public sealed class RunSummary
{
    public required string RunDir { get; init; }
    public required TimeSpan Wall { get; init; }
    public required int Steps { get; init; }
    public int? BestStep { get; init; }
    public double? BestMetric { get; init; }
    /// <summary>The metric best/ was chosen by (the early-stopping metric), when there was a validation set.</summary>
    public string? BestMetricName { get; init; }
    public string? StopReason { get; init; }
    /// <summary>eval.json of the test split, when the recipe has one.</summary>
    public EvalResult? Test { get; init; }
    /// <summary>best/ when it holds a model, else null.</summary>
    public string? BestDir { get; init; }
    /// <summary>report.html written by <see cref="Create"/>, or null when the run has nothing to report.</summary>
    public string? ReportPath { get; init; }
    /// <summary>Commands to run next (evaluate, predict, report), ready to paste.</summary>
    public required IReadOnlyList<string> Next { get; init; }

    /// <summary>Reads the run folder (eval.json, best/), writes report.md/report.html into it, and lists the next commands.
    /// <paramref name="testPath"/> and <paramref name="validationPath"/> are the recipe's data files (for the evaluate command).</summary>
    public static RunSummary Create(string runDir, TimeSpan wall, int steps, int? bestStep, double? bestMetric, string? bestMetricName,
        string? stopReason, string task, string? testPath, string? validationPath)
    {
        EvalResult? test = null;
        string? report = null;
        if (File.Exists(Path.Combine(runDir, "metrics.jsonl")) || File.Exists(Path.Combine(runDir, "eval.json")))
        {
            var run = RunFolder.Read(runDir);
            test = run.Eval;
            report = ReportBuilder.ForRuns([run]).Write(runDir);
        }
        string best = Path.Combine(runDir, "best");
        string? bestDir = File.Exists(Path.Combine(best, "config.json")) || File.Exists(Path.Combine(best, "adapter_config.json")) ? best : null;
        string Q(string p) => p.Any(char.IsWhiteSpace) ? $"\"{p}\"" : p;
        var next = new List<string>();
        string? data = testPath ?? validationPath;
        if (data != null) next.Add($"tasklm evaluate --model {Q(runDir)} {Q(data)}");
        // A run that ships the baseline or a mix is run from its folder (best/ alone is the model alone).
        string model = Q(test?.Baseline?.Ships != null ? runDir : bestDir ?? runDir);
        next.Add(task switch
        {
            "classification" or "token-classification" => $"tasklm predict --model {model} --text \"a new example to label\"",
            "causal-lm" or "generation" => ChatTry(bestDir) ?? $"tasklm generate --model {model} --prompt \"Once upon a time\" --max-new-tokens 40",
            _ => $"tasklm predict --model {model} --text \"...\"",
        });
        next.Add($"tasklm report {Q(runDir)}");

        // A chat run's best/ carries its chat template: the suggestion asks it a question in that layout.
        string? ChatTry(string? dir)
        {
            if (dir == null || HfChatTemplate.FromFolder(dir) is not { } t || ChatData.TryPrompt(t, "Hello! Who are you?") is not { } p) return null;
            static string Sh(string x) => "$'" + x.Replace("\\", "\\\\").Replace("'", "\\'").Replace("\n", "\\n") + "'";
            return $"tasklm generate --model {model} --greedy --max-new-tokens 40" + (p.EndOfTurn != null ? $" --stop {Sh(p.EndOfTurn)}" : "") + $" --prompt {Sh(p.Prompt)}";
        }
        return new RunSummary
        {
            RunDir = runDir, Wall = wall, Steps = steps, BestStep = bestStep, BestMetric = bestMetric, BestMetricName = bestMetricName,
            StopReason = stopReason, Test = test, BestDir = bestDir, ReportPath = report, Next = next,
        };
    }

    /// <summary>The summary as plain lines (the CLI adds colour and the side-by-side table).</summary>
    public IReadOnlyList<string> Lines()
    {
        var l = new List<string>
        {
            $"finished in {FormatWall(Wall)}: {Steps} optimizer steps" + (StopReason != null ? $" ({StopReason})" : ""),
        };
        if (BestStep is int bs && BestMetric is double bm)
            l.Add($"best: step {bs}, {BestMetricName ?? "metric"} = {EvalResult.Format(bm)} on validation");
        if (Test != null)
        {
            // The metric best/ was chosen by (f1_spam, say) comes first: it is the one the user asked for. Per-class F1
            // lives in PerClass for the model and flat (f1_<label>) in the baseline's metrics.
            double? Value(string k) => Test.Metrics.TryGetValue(k, out var v) ? v
                : k.StartsWith("f1_", StringComparison.Ordinal) && Test.PerClass?.TryGetValue(k[3..], out var c) == true ? c.F1 : null;
            var head = new[] { BestMetricName ?? "", "accuracy", "macro_f1", "f1", "token_accuracy", "exact_match", "loss", "perplexity", "bleu" }
                .Where(k => k != "" && Value(k) != null).Distinct().Take(4);
            var own = Test.Baseline?.ModelMetrics;   // the model's own, when the run ships the baseline or a mix
            double Model(string k) => own != null && own.TryGetValue(k, out var m) ? m : Value(k)!.Value;
            l.Add($"test (n = {Test.N}): " + string.Join("  ", head.Select(k => $"{k} {EvalResult.Format(Model(k))}"
                + (Test.Baseline?.Metrics.TryGetValue(k, out var b) == true ? $" (baseline {EvalResult.Format(b)})" : ""))));
            if (Test.Baseline != null && BaselineComparison.Verdict(own ?? Test.Metrics, Test.Baseline) is { } verdict) l.Add(verdict);
            if (Test.Baseline?.Ships is { } ships)
                l.Add($"ships: the {ships} (model weight {Test.Baseline.Ensemble?.Weight:0.00}, chosen on validation), test "
                    + string.Join("  ", head.Select(k => $"{k} {EvalResult.Format(Value(k)!.Value)}")) + "; predict, serve and evaluate on the run folder run it");
        }
        if (BestDir != null) l.Add($"best model: {BestDir} (HF folder with its tokenizer)");
        if (ReportPath != null) l.Add($"report: {ReportPath}");
        return l;
    }

    /// <summary><c>--json</c> form.</summary>
    public JsonObject ToJson()
    {
        var o = new JsonObject
        {
            ["run_dir"] = RunDir, ["wall_seconds"] = Math.Round(Wall.TotalSeconds, 1), ["steps"] = Steps,
            ["best_step"] = BestStep, ["best_metric"] = BestMetric, ["best_metric_name"] = BestMetricName, ["stop_reason"] = StopReason,
            ["best_dir"] = BestDir, ["report"] = ReportPath, ["next"] = new JsonArray(Next.Select(n => (JsonNode?)n).ToArray()),
        };
        if (Test != null) o["test"] = Test.ToJson();
        return o;
    }

    static string FormatWall(TimeSpan t) => t.TotalMinutes >= 1
        ? $"{(int)t.TotalMinutes} min {t.Seconds} s" : t.TotalSeconds.ToString("0.0", CultureInfo.InvariantCulture) + " s";
}
