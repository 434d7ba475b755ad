// Loads evaluation fixtures (reference values produced by sklearn, sacrebleu, NLTK, rouge-score's tests).
using System.Text.Json;

namespace TaskLM.Tests.Evaluation;

internal static class Fixture
{
    public static string Path(params string[] parts) => System.IO.Path.Combine([AppContext.BaseDirectory, "fixtures", .. parts]);

    public static JsonElement Json(params string[] parts) => JsonDocument.Parse(File.ReadAllText(Path(parts))).RootElement;

    public static List<string> Strings(JsonElement e) => e.EnumerateArray().Select(x => x.GetString()!).ToList();

    public static List<double> Doubles(JsonElement e) => e.EnumerateArray().Select(x => x.GetDouble()).ToList();

    /// <summary>A fresh temporary folder for one test.</summary>
    public static string TempDir()
    {
        var d = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "tasklm-eval-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(d);
        return d;
    }
}
