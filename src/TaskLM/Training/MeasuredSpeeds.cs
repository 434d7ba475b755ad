// Training speeds measured on this machine (by every `tasklm train`, `compare` and `learning-curve`): `tasklm models`
// shows them in place of its FLOP-based estimate, and `train` times its plan with them before it starts.
using System.Globalization;
using System.Text.Json.Nodes;
using TaskLM.Models;
using TaskLM.Recipes;
using static TorchSharp.torch;

namespace TaskLM.Training;

/// <summary>One measurement: a model (a preset at its own shape, a named model such as minilm-l6 or a Hub id, or a
/// folder's full path) trained on a device with a thread count, in a training precision (fp32 for lines written before it
/// was recorded): bf16 runs 1.7x faster where the CPU has bf16 instructions, so the two are never mixed in one median.</summary>
public sealed record SpeedRecord(string Preset, string Device, int Threads, int MaxLength, double TrainTokensPerSecond, string MeasuredAt, string Source, string Precision = "fp32");

/// <summary>A JSONL file of measurements: <c>$TASKLM_MEASUREMENTS</c>, else <c>$XDG_CACHE_HOME/tasklm/speeds.jsonl</c>
/// (<c>~/.cache/tasklm/speeds.jsonl</c>). Machine-local by design: the figures describe this machine.</summary>
public static class MeasuredSpeeds
{
    public const string PathEnv = "TASKLM_MEASUREMENTS";

    /// <summary>model.config keys that change a preset's shape; a run with any of them measured another model.</summary>
    static readonly string[] ShapeKeys =
    [
        "n_layer", "n_embd", "n_head", "n_inner", "n_positions", "vocab_size",
        "num_hidden_layers", "hidden_size", "num_attention_heads", "intermediate_size", "max_position_embeddings",
    ];

    public static string FilePath()
    {
        if (Environment.GetEnvironmentVariable(PathEnv) is { Length: > 0 } p) return p;
        string cache = Environment.GetEnvironmentVariable("XDG_CACHE_HOME") is { Length: > 0 } x ? x
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache");
        return Path.Combine(cache, "tasklm", "speeds.jsonl");
    }

    /// <summary>Appends a measurement of a run that trained <paramref name="spec"/> (model.init) at its own shape (a
    /// model.config that changes the shape measured another model: not recorded); returns whether it did. A folder is
    /// recorded by its full path, so a folder named like a preset never stands for the preset.</summary>
    public static bool Record(string spec, Recipe resolved, Device device, double tokensPerSecond, string source)
    {
        if (!(tokensPerSecond > 0)) return false;
        if (resolved.Model.Config is { } cfg && cfg.Any(kv => ShapeKeys.Contains(kv.Key))) return false;
        if (Directory.Exists(spec)) spec = Path.GetFullPath(spec);
        var rec = new JsonObject
        {
            ["preset"] = spec, ["device"] = device.type.ToString().ToLowerInvariant(), ["threads"] = get_num_threads(), ["max_length"] = resolved.Data.MaxLength,
            ["train_tokens_per_s"] = Math.Round(tokensPerSecond, 1), ["precision"] = resolved.Training.Precision, ["measured_at"] = DateTime.UtcNow.ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture), ["source"] = source,
        };
        try
        {
            string path = FilePath();
            Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
            File.AppendAllText(path, rec.ToJsonString() + "\n");
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return false; }   // a read-only home loses a figure, not the run
    }

    /// <summary>Every readable measurement (a damaged line is skipped: the file is a cache, not a record of truth).</summary>
    public static List<SpeedRecord> Read()
    {
        var list = new List<SpeedRecord>();
        string path = FilePath();
        if (!File.Exists(path)) return list;
        foreach (var line in File.ReadLines(path))
        {
            try
            {
                if (JsonNode.Parse(line) is not JsonObject o) continue;
                list.Add(new SpeedRecord((string)o["preset"]!, (string)o["device"]!, (int)o["threads"]!, (int)o["max_length"]!,
                    (double)o["train_tokens_per_s"]!, (string?)o["measured_at"] ?? "", (string?)o["source"] ?? "", (string?)o["precision"] ?? "fp32"));
            }
            catch (Exception e) when (e is System.Text.Json.JsonException or InvalidOperationException or NullReferenceException or FormatException) { }
        }
        return list;
    }

    /// <summary>The median measured speed of a preset on a device kind ("cpu", "cuda") in one training precision, with how many runs it summarises.</summary>
    public static (double TokensPerSecond, int Runs, int Threads, int MaxLength)? For(IEnumerable<SpeedRecord> records, string preset, string device, string precision = "fp32")
    {
        var mine = records.Where(r => r.Preset == preset && r.Device == device && r.Precision == precision).ToList();
        if (mine.Count == 0) return null;
        var v = mine.Select(r => r.TrainTokensPerSecond).Order().ToList();
        double median = v.Count % 2 == 1 ? v[v.Count / 2] : (v[v.Count / 2 - 1] + v[v.Count / 2]) / 2;
        var last = mine[^1];
        return (median, mine.Count, last.Threads, last.MaxLength);
    }

    /// <summary>The median measured speed of <paramref name="spec"/> on this device kind at this thread count (the
    /// speed depends on both), or null when this machine has not trained it so.</summary>
    public static double? ForRun(string spec, string device, int threads, string precision = "fp32")
    {
        if (Directory.Exists(spec)) spec = Path.GetFullPath(spec);
        return For(Read().Where(r => r.Threads == threads), spec, device, precision)?.TokensPerSecond;
    }
}
