// The temporary files and folders data steps are writing right now, so an interrupted command can remove them.
using System.Collections.Concurrent;

namespace TaskLM.Data.Corpus;

/// <summary>Every data writer writes to a temporary name and renames it into place when complete
/// (<see cref="JsonlFile.Write(string, IEnumerable{System.Text.Json.Nodes.JsonObject})"/>, token files, split
/// staging folders). While it writes, the temporary path is registered here, so that a Ctrl-C handler can
/// delete what would otherwise be left behind: an interruption leaves the earlier output, never a partial one.</summary>
public static class PartialFiles
{
    private static readonly ConcurrentDictionary<string, byte> Paths = new();

    /// <summary>Records a temporary file or folder being written.</summary>
    public static void Register(string path) => Paths[Path.GetFullPath(path)] = 0;

    /// <summary>Forgets a temporary path (renamed into place or deleted).</summary>
    public static void Unregister(string path) => Paths.TryRemove(Path.GetFullPath(path), out _);

    /// <summary>Writes a folder's files (through <paramref name="write"/>, given a folder to write into) into a staging
    /// folder beside <paramref name="dir"/>, then moves them in: an error or an interruption while writing leaves
    /// <paramref name="dir"/> as it was. Files of the same name are replaced; other files in it are kept.</summary>
    public static void WriteFolder(string dir, Action<string> write)
    {
        var full = Path.TrimEndingDirectorySeparator(Path.GetFullPath(dir));
        var staging = full + ".tmp-" + Environment.ProcessId;
        Register(staging);
        try
        {
            if (Directory.Exists(staging)) Directory.Delete(staging, recursive: true);
            Directory.CreateDirectory(staging);
            write(staging);
            Directory.CreateDirectory(full);
            foreach (var f in Directory.GetFiles(staging, "*", SearchOption.AllDirectories))
            {
                var target = Path.Combine(full, Path.GetRelativePath(staging, f));
                Directory.CreateDirectory(Path.GetDirectoryName(target)!);
                File.Move(f, target, overwrite: true);
            }
        }
        finally
        {
            try { if (Directory.Exists(staging)) Directory.Delete(staging, recursive: true); } catch (IOException) { }
            Unregister(staging);
        }
    }

    /// <summary>Deletes every registered temporary path that still exists; returns the ones removed.</summary>
    public static List<string> DeleteAll()
    {
        var removed = new List<string>();
        foreach (var path in Paths.Keys)
        {
            try
            {
                if (File.Exists(path)) { File.Delete(path); removed.Add(path); }
                else if (Directory.Exists(path)) { Directory.Delete(path, recursive: true); removed.Add(path); }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
            Paths.TryRemove(path, out _);
        }
        return removed;
    }
}
