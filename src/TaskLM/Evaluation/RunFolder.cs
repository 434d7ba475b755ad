// Reads a run folder: metrics.jsonl (training and eval lines) and eval.json.
using System.Text.Json;
using System.Text.Json.Nodes;

namespace TaskLM.Evaluation;

/// <summary>One optimizer-step line of metrics.jsonl.</summary>
public sealed record TrainStep(long Step, double? Epoch, double? Loss, double? Lr, double? GradNorm, double? TokensPerS);

/// <summary>One eval line of metrics.jsonl: <c>{"eval": {...}, "step": N}</c> (numeric entries only).</summary>
public sealed record EvalPoint(long Step, IReadOnlyDictionary<string, double> Metrics);

/// <summary>What a run folder holds for reports.</summary>
public sealed class RunData
{
    public required string Name { get; init; }
    public required string Directory { get; init; }
    public List<TrainStep> Steps { get; } = [];
    public List<EvalPoint> Evals { get; } = [];
    /// <summary>eval.json, when the run has one.</summary>
    public EvalResult? Eval { get; set; }
}

/// <summary>Reads run folders written by <c>tasklm train</c> / <c>tasklm evaluate</c>.</summary>
public static class RunFolder
{
    /// <summary>Reads metrics.jsonl and eval.json (each optional, but at least one must exist).</summary>
    public static RunData Read(string dir)
    {
        if (!System.IO.Directory.Exists(dir)) throw new DirectoryNotFoundException($"run folder '{dir}' does not exist");
        var full = Path.GetFullPath(dir).TrimEnd(Path.DirectorySeparatorChar);
        var run = new RunData { Name = Path.GetFileName(full), Directory = full };
        var metricsPath = Path.Combine(dir, "metrics.jsonl");
        var evalPath = Path.Combine(dir, "eval.json");
        if (!File.Exists(metricsPath) && !File.Exists(evalPath))
            throw new FileNotFoundException($"run folder '{dir}' has neither metrics.jsonl nor eval.json");
        if (File.Exists(metricsPath)) ReadMetrics(metricsPath, run);
        if (File.Exists(evalPath))
        {
            JsonNode? node;
            try { node = JsonNode.Parse(File.ReadAllText(evalPath)); }
            catch (JsonException e) { throw new InvalidDataException($"{evalPath}: not valid JSON ({e.Message})", e); }
            run.Eval = EvalResult.FromJson(node as JsonObject ?? throw new InvalidDataException($"{evalPath}: expected a JSON object"), evalPath);
        }
        return run;
    }

    private static void ReadMetrics(string path, RunData run)
    {
        int lineNo = 0;
        foreach (var line in File.ReadLines(path))
        {
            lineNo++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            JsonObject obj;
            try { obj = JsonNode.Parse(line) as JsonObject ?? throw new InvalidDataException($"{path} line {lineNo}: expected a JSON object"); }
            catch (JsonException e) { throw new InvalidDataException($"{path} line {lineNo}: not valid JSON ({e.Message})", e); }
            var step = Number(obj, "step", path, lineNo) ?? throw new InvalidDataException($"{path} line {lineNo}: missing \"step\"");
            if (obj["eval"] is JsonObject ev)
            {
                var m = new Dictionary<string, double>();
                foreach (var (k, v) in ev)
                    if (EvalResult.AsNumber(v) is double d) m[k] = d;
                run.Evals.Add(new EvalPoint((long)step, m));
            }
            else
                run.Steps.Add(new TrainStep((long)step, Number(obj, "epoch", path, lineNo), Number(obj, "loss", path, lineNo),
                    Number(obj, "lr", path, lineNo), Number(obj, "grad_norm", path, lineNo), Number(obj, "tokens_per_s", path, lineNo)));
        }
    }

    private static double? Number(JsonObject obj, string key, string path, int line)
    {
        var v = obj[key];
        if (v == null) return null;
        if (EvalResult.AsNumber(v) is double d) return d;
        throw new InvalidDataException($"{path} line {line}: \"{key}\" should be a number, got {v.ToJsonString()}");
    }
}
