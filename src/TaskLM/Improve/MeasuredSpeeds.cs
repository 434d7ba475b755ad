// Training speeds measured on this machine (by `tasklm compare` and `tasklm learning-curve`), which `tasklm models`
// shows in place of its FLOP-based estimate when a measurement exists.
using System.Globalization;
using System.Text.Json.Nodes;
using TaskLM.Models;
using TaskLM.Training;
using static TorchSharp.torch;

namespace TaskLM.Improve;

/// <summary>One measurement: a preset trained at full shape on a device with a thread count.</summary>
public sealed record SpeedRecord(string Preset, string Device, int Threads, int MaxLength, double TrainTokensPerSecond, string MeasuredAt, string Source);

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

    /// <summary>Appends a measurement when <paramref name="spec"/> is a preset trained at its own shape; returns whether it did.</summary>
    public static bool RecordIfPreset(string spec, Recipe resolved, Device device, double tokensPerSecond, string source)
    {
        if (Directory.Exists(spec) || !ModelPresets.All.Any(p => p.Name == spec) || !(tokensPerSecond > 0)) return false;   // a folder named like a preset is a folder
        if (resolved.Model.Config is { } cfg && cfg.Any(kv => ShapeKeys.Contains(kv.Key))) return false;
        var rec = new JsonObject
        {
            ["preset"] = spec, ["device"] = device.type.ToString().ToLowerInvariant(), ["threads"] = get_num_threads(), ["max_length"] = resolved.Data.MaxLength,
            ["train_tokens_per_s"] = Math.Round(tokensPerSecond, 1), ["measured_at"] = DateTime.UtcNow.ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture), ["source"] = source,
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
                    (double)o["train_tokens_per_s"]!, (string?)o["measured_at"] ?? "", (string?)o["source"] ?? ""));
            }
            catch (Exception e) when (e is System.Text.Json.JsonException or InvalidOperationException or NullReferenceException or FormatException) { }
        }
        return list;
    }

    /// <summary>The median measured speed of a preset on a device kind ("cpu", "cuda"), with how many runs it summarises.</summary>
    public static (double TokensPerSecond, int Runs, int Threads, int MaxLength)? For(IEnumerable<SpeedRecord> records, string preset, string device)
    {
        var mine = records.Where(r => r.Preset == preset && r.Device == device).ToList();
        if (mine.Count == 0) return null;
        var v = mine.Select(r => r.TrainTokensPerSecond).Order().ToList();
        double median = v.Count % 2 == 1 ? v[v.Count / 2] : (v[v.Count / 2 - 1] + v[v.Count / 2]) / 2;
        var last = mine[^1];
        return (median, mine.Count, last.Threads, last.MaxLength);
    }
}
