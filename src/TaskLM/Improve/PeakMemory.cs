// The process's peak resident memory, reset per model where the system allows (compare, learning-curve).
using System.Diagnostics;
using System.Globalization;

namespace TaskLM.Improve;

/// <summary>This process's peak resident memory. On Linux the peak can be reset (writing 5 to /proc/self/clear_refs),
/// so each model of a comparison gets its own peak; elsewhere the process-wide peak is all there is.</summary>
public static class PeakMemory
{
    /// <summary>Resets the peak to the current resident size; false where the system cannot.</summary>
    public static bool Reset()
    {
        try { File.WriteAllText("/proc/self/clear_refs", "5"); return true; }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or DirectoryNotFoundException or NotSupportedException) { return false; }
    }

    /// <summary>Peak resident bytes since the last reset (VmHWM), else the process's peak working set.</summary>
    public static long Bytes()
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/self/status"))
                if (line.StartsWith("VmHWM:", StringComparison.Ordinal))
                    return long.Parse(line[6..].Trim().Split(' ')[0], CultureInfo.InvariantCulture) * 1024;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or DirectoryNotFoundException) { }
        using var p = Process.GetCurrentProcess();
        return p.PeakWorkingSet64;
    }
}
