// Which int8 dot-product instructions this CPU gives ONNX Runtime's int8 kernels (MLAS), for what `serve` prints at start.
using System.Runtime.Intrinsics.X86;

namespace TaskLM.Onnx;

/// <summary>
/// Names the instruction set ONNX Runtime's CPU int8 GEMM (MLAS, uint8 activations × int8 weights) can use here, best
/// first, as MLAS picks it: AMX, AVX-512 VNNI, AVX-VNNI (one instruction per 4 multiply-adds into int32), else AVX-512BW
/// or AVX2 (vpmaddubsw + vpmaddwd: two instructions, through int16 that can saturate — why ONNX Runtime's docs suggest
/// reduce_range or uint8 weights when accuracy drops on such CPUs). Read from /proc/cpuinfo's flags on Linux (.NET 10 has
/// no AVX-512 VNNI query), else from .NET's intrinsics queries.
/// </summary>
public static class CpuInt8
{
    static readonly Lazy<string> Cached = new(Detect);

    /// <summary>e.g. "AVX-512 VNNI", or "AVX2, no VNNI".</summary>
    public static string Kernels => Cached.Value;

    static string Detect()
    {
        var flags = CpuFlags();
        bool Has(string f) => flags.Contains(f);
        if (flags.Count > 0)
        {
            if (Has("amx_int8")) return "AMX int8";
            if (Has("avx512_vnni")) return "AVX-512 VNNI";
            if (Has("avx_vnni")) return "AVX-VNNI";
            if (Has("avx512bw")) return "AVX-512BW, no VNNI";
            if (Has("avx2")) return "AVX2, no VNNI";
            return "no AVX2";
        }
        if (AvxVnni.IsSupported) return "AVX-VNNI";
        if (Avx512BW.IsSupported) return "AVX-512BW (VNNI unknown)";
        if (Avx2.IsSupported) return "AVX2 (VNNI unknown)";
        return System.Runtime.InteropServices.RuntimeInformation.ProcessArchitecture.ToString();
    }

    static HashSet<string> CpuFlags()
    {
        try
        {
            if (!OperatingSystem.IsLinux() || !File.Exists("/proc/cpuinfo")) return [];
            var line = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("flags", StringComparison.Ordinal));
            return line is null ? [] : line[(line.IndexOf(':') + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries).ToHashSet(StringComparer.Ordinal);
        }
        catch (IOException) { return []; }
        catch (UnauthorizedAccessException) { return []; }
    }

    /// <summary>What serve prints: "onnx fp32", or "onnx int8 dynamic (AVX2, no VNNI)".</summary>
    public static string Describe(string runtime, string precision) =>
        precision.StartsWith("int8", StringComparison.Ordinal) ? $"{runtime} {precision} ({Kernels})" : $"{runtime} {precision}";
}
