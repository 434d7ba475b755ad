// Reads a run folder: metrics.jsonl (training and eval lines) and eval.json.
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace TaskLM.Evaluation;

/// <summary>One line of metrics.jsonl, the one type its writer (training's MetricsLogger) and its readers (reports,
/// evaluate, run summaries) share. Two shapes: an optimizer-step line
/// <c>{"step", "epoch", "loss", "lr", "grad_norm", "tokens_per_s", "rss_mb"}</c> (plus <c>"skipped": true</c> for a
/// step skipped as non-finite), and an eval line <c>{"eval": {name: value, ...}, "step": N}</c>. A non-finite number
/// is written as a string ("NaN", "Infinity"), since JSON has none.</summary>
public sealed record MetricsLine
{
    public long Step { get; init; }
    public double? Epoch { get; init; }
    public double? Loss { get; init; }
    public double? Lr { get; init; }
    public double? GradNorm { get; init; }
    public double? TokensPerS { get; init; }
    /// <summary>Resident memory of the training process (MB): a long run's must stay flat.</summary>
    public double? RssMb { get; init; }
    public bool Skipped { get; init; }
    /// <summary>The evaluation's metrics (an eval line); null on a step line.</summary>
    public IReadOnlyDictionary<string, double>? Eval { get; init; }

    /// <summary>The eval line's metrics (empty on a step line).</summary>
    public IReadOnlyDictionary<string, double> Metrics => Eval ?? new Dictionary<string, double>();

    /// <summary>The line as training writes it (key order and number format are the file's contract).</summary>
    public string ToJson()
    {
        JsonObject o;
        if (Eval != null)
        {
            var ev = new JsonObject();
            foreach (var (k, v) in Eval) ev[k] = Num(v);
            o = new JsonObject { ["eval"] = ev, ["step"] = Step };
        }
        else
        {
            o = new JsonObject { ["step"] = Step };
            foreach (var (key, v) in new[] { ("epoch", Epoch), ("loss", Loss), ("lr", Lr), ("grad_norm", GradNorm), ("tokens_per_s", TokensPerS), ("rss_mb", RssMb) })
                if (v is double d) o[key] = Num(d);   // training writes every field; a line read without one stays without it
            if (Skipped) o["skipped"] = true;
        }
        return o.ToJsonString();
    }

    static JsonNode Num(double d) => double.IsFinite(d) ? JsonValue.Create(d) : JsonValue.Create(d.ToString(CultureInfo.InvariantCulture));

    /// <summary>Reads one line; errors name <paramref name="path"/> and the line. In an eval line entries that are not
    /// numbers are left out; in a step line a field must be a number (or the writer's "NaN"/"Infinity").</summary>
    public static MetricsLine Parse(string line, string path, int lineNo)
    {
        JsonObject obj;
        try { obj = JsonNode.Parse(line) as JsonObject ?? throw new InvalidDataException($"{path} line {lineNo}: expected a JSON object"); }
        catch (JsonException e) { throw new InvalidDataException($"{path} line {lineNo}: not valid JSON ({e.Message})", e); }
        long step = (long)(Number(obj, "step", path, lineNo) ?? throw new InvalidDataException($"{path} line {lineNo}: missing \"step\""));
        if (obj["eval"] is JsonObject ev)
        {
            var m = new Dictionary<string, double>();
            foreach (var (k, v) in ev)
                if (EvalResult.AsNumber(v) is double d) m[k] = d;
            return new MetricsLine { Step = step, Eval = m };
        }
        return new MetricsLine
        {
            Step = step, Epoch = Number(obj, "epoch", path, lineNo), Loss = Number(obj, "loss", path, lineNo), Lr = Number(obj, "lr", path, lineNo),
            GradNorm = Number(obj, "grad_norm", path, lineNo), TokensPerS = Number(obj, "tokens_per_s", path, lineNo),
            RssMb = Number(obj, "rss_mb", path, lineNo), Skipped = obj["skipped"] is JsonValue sk && sk.GetValueKind() == JsonValueKind.True,
        };
    }

    static double? Number(JsonObject obj, string key, string path, int line)
    {
        var v = obj[key];
        if (v == null) return null;
        if (EvalResult.AsNumber(v) is double d) return d;
        // The writer's spelling of a non-finite value (a diverged step's loss), read back as that value.
        if (v is JsonValue s && s.TryGetValue(out string? text) && text is "NaN" or "Infinity" or "-Infinity")
            return double.Parse(text, CultureInfo.InvariantCulture);
        throw new InvalidDataException($"{path} line {line}: \"{key}\" should be a number, got {v.ToJsonString()}");
    }
}

/// <summary>What a run folder holds for reports.</summary>
public sealed class RunData
{
    public required string Name { get; init; }
    public required string Directory { get; init; }
    /// <summary>The optimizer-step lines of metrics.jsonl.</summary>
    public List<MetricsLine> Steps { get; } = [];
    /// <summary>The eval lines of metrics.jsonl.</summary>
    public List<MetricsLine> Evals { get; } = [];
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
            var m = MetricsLine.Parse(line, path, lineNo);
            (m.Eval != null ? run.Evals : run.Steps).Add(m);
        }
    }
}
