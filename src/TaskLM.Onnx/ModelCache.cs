// TaskLM's model cache: where imported models live ($TASKLM_CACHE, $XDG_CACHE_HOME/tasklm, ~/.cache/tasklm), published atomically.
using System.Text.Json.Nodes;

namespace TaskLM.Onnx;

/// <summary>
/// The folder TaskLM keeps models it builds on first use (ONNX imports, NuGet models): <c>$TASKLM_CACHE</c>, else
/// <c>$XDG_CACHE_HOME/tasklm</c>, else <c>~/.cache/tasklm</c>. A cached model is written to a temporary sibling and
/// renamed into place, so a crash or a concurrent process never leaves or sees a half-written folder.
/// </summary>
public static class ModelCache
{
    /// <summary>The cache root as the environment sets it (not created).</summary>
    public static string Root()
    {
        if (Environment.GetEnvironmentVariable("TASKLM_CACHE") is { Length: > 0 } own) return Path.GetFullPath(own);
        if (Environment.GetEnvironmentVariable("XDG_CACHE_HOME") is { Length: > 0 } xdg) return Path.Combine(Path.GetFullPath(xdg), "tasklm");
        return Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", "tasklm");
    }

    /// <summary>True when <paramref name="folder"/> holds a finished import of this <paramref name="formatVersion"/>
    /// (its tasklm_source.json says so; an older layout is redone).</summary>
    public static bool IsComplete(string folder, int formatVersion)
    {
        string src = Path.Combine(folder, "tasklm_source.json");
        if (!File.Exists(src)) return false;
        try { return JsonNode.Parse(File.ReadAllText(src))?["format_version"]?.GetValue<int>() == formatVersion; }
        catch (Exception e) when (e is System.Text.Json.JsonException or InvalidOperationException or FormatException) { return false; }
    }

    /// <summary>The provenance an import wrote (<c>tasklm_source.json</c>: package id, version and SHA-512, resource
    /// names, model.onnx SHA-256, original model id, licence), or null for a folder TaskLM did not import.</summary>
    public static JsonObject? Provenance(string folder)
    {
        string src = Path.Combine(folder, "tasklm_source.json");
        if (!File.Exists(src)) return null;
        try { return JsonNode.Parse(File.ReadAllText(src)) as JsonObject; }
        catch (System.Text.Json.JsonException e) { throw new InvalidDataException($"{src}: invalid JSON: {e.Message}", e); }
    }

    /// <summary>Builds <paramref name="folder"/> by running <paramref name="build"/> on an empty temporary sibling and
    /// renaming it into place. A folder already there (an outdated or broken cache entry, or an empty --out folder)
    /// is replaced; if another process publishes the same folder first, its copy is kept and ours dropped.</summary>
    public static void Publish(string folder, Action<string> build)
    {
        folder = Path.GetFullPath(folder.TrimEnd(Path.DirectorySeparatorChar, Path.AltDirectorySeparatorChar));
        string parent = Path.GetDirectoryName(folder)!;
        Directory.CreateDirectory(parent);
        string tmp = Path.Combine(parent, $".{Path.GetFileName(folder)}.tmp-{Environment.ProcessId}-{Guid.NewGuid():N}");
        try
        {
            Directory.CreateDirectory(tmp);
            build(tmp);
            if (Directory.Exists(folder))
            {
                // Move the old one aside first: Directory.Move does not replace, and deleting in place is not atomic.
                string old = tmp + ".old";
                Directory.Move(folder, old);
                Directory.Delete(old, recursive: true);
            }
            try { Directory.Move(tmp, folder); }
            catch (IOException) when (Directory.Exists(folder)) { /* another process published the same model first: keep its copy */ }
        }
        finally
        {
            if (Directory.Exists(tmp)) Directory.Delete(tmp, recursive: true);
        }
    }
}
