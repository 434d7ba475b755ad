// Small helpers the improvement verbs share: atomic file writes, JSON numbers, and number and name formatting.
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using TaskLM.Evaluation;

namespace TaskLM.Improve;

/// <summary>Small formatting and file helpers.</summary>
public static class Io
{
    public static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    /// <summary>Writes text through a temporary file renamed into place (a reader never sees half a file).</summary>
    public static void WriteAtomically(string path, string text)
    {
        string? dir = Path.GetDirectoryName(Path.GetFullPath(path));
        if (dir != null) Directory.CreateDirectory(dir);
        string tmp = path + $".{Environment.ProcessId}.tmp";
        File.WriteAllText(tmp, text);
        File.Move(tmp, path, overwrite: true);
    }

    public static void WriteJson(string path, JsonNode json) => WriteAtomically(path, json.ToJsonString(Indented) + "\n");

    /// <summary>A JSON number as double, whatever CLR type it was written from (long, int, double).</summary>
    public static double D(JsonNode? n) => EvalResult.AsNumber(n) ?? double.NaN;

    public static string F(double v, string format = "0.0000") => double.IsFinite(v) ? v.ToString(format, CultureInfo.InvariantCulture) : "-";

    public static string Count(long n) => n >= 1e9 ? $"{n / 1e9:0.00}B" : n >= 1e6 ? $"{n / 1e6:0.00}M" : n >= 1e3 ? $"{n / 1e3:0.0}K" : n.ToString(CultureInfo.InvariantCulture);

    public static string MiB(long bytes) => (bytes / (double)(1 << 20)).ToString("0", CultureInfo.InvariantCulture) + " MiB";

    /// <summary>A folder name for a model spec ("models/tasklm-bert-mini" → "tasklm-bert-mini").</summary>
    public static string Slug(string spec)
    {
        string s = Path.GetFileName(spec.TrimEnd('/', '\\'));
        if (s is "best" or "" ) s = Path.GetFileName(Path.GetDirectoryName(spec.TrimEnd('/', '\\')) ?? "model") + "-best";
        return new string(s.Select(c => char.IsLetterOrDigit(c) || c is '-' or '_' or '.' ? c : '-').ToArray());
    }
}
