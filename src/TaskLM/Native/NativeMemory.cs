// glibc heap settings for libtorch on Linux: large CPU tensors come from mmap, so a long run's resident memory stays flat.
using System.Runtime.InteropServices;

namespace TaskLM.Native;

/// <summary>
/// libtorch allocates CPU tensors with glibc's posix_memalign, and glibc before 2.38 rarely reuses a freed
/// memalign block for the next one (glibc bug 14581; fixed by "memalign: support scanning for aligned chunks"
/// in 2.38). With glibc's default dynamic mmap threshold (after the first large free, blocks up to 32 MB come
/// from the heap) every training step therefore grows the heap although it frees all it made: gpt2-tiny with the
/// 50,257-token head went 306 → 733 MB in 80 steps with 45 live tensors throughout, and the run
/// 346 → 1,386 MB in 180 (glibc 2.36). A fixed threshold of 128 KB (the default's starting value) serves large
/// blocks by mmap and returns them on free: flat memory. The price is a page fault per page of each new block;
/// libtorch's transparent-huge-page option (THP_MEM_ALLOC_ENABLE, 2 MB pages for blocks of 2 MB and more)
/// cuts that (system time over those 80 steps: 1.7 s default, 12 s mmap, 7.4 s mmap + THP; loaded machine).
/// Set <c>TASKLM_MALLOC=default</c> to keep glibc's own behaviour; <c>MALLOC_MMAP_THRESHOLD_</c> or
/// <c>GLIBC_TUNABLES</c> set by the user are respected.
/// </summary>
public static class NativeMemory
{
    const int M_MMAP_THRESHOLD = -3;

    [DllImport("libc", EntryPoint = "mallopt")]
    static extern int mallopt(int param, int value);

    [DllImport("libc", EntryPoint = "setenv")]
    static extern int setenv([MarshalAs(UnmanagedType.LPUTF8Str)] string name, [MarshalAs(UnmanagedType.LPUTF8Str)] string value, int overwrite);

    /// <summary>What <see cref="Configure"/> did, for <c>tasklm env</c> and logs.</summary>
    public static string Mode { get; private set; } = "default";

    static bool _done;

    /// <summary>Applies the settings once, before libtorch's first allocation (<see cref="TorchBackend.EnsureLoaded"/>
    /// calls it). No-op off Linux or where the C library is not glibc.</summary>
    public static void Configure()
    {
        if (_done) return;
        _done = true;
        if (!OperatingSystem.IsLinux() || Environment.GetEnvironmentVariable("TASKLM_MALLOC") == "default") return;
        if (Environment.GetEnvironmentVariable("MALLOC_MMAP_THRESHOLD_") != null || Environment.GetEnvironmentVariable("GLIBC_TUNABLES") != null)
        {
            Mode = "user";
            return;
        }
        try
        {
            if (mallopt(M_MMAP_THRESHOLD, 128 * 1024) != 1) return;
            Mode = "mmap>128K";
            // c10 reads THP_MEM_ALLOC_ENABLE once, from the C environment (not .NET's copy), at its first allocation.
            if (Environment.GetEnvironmentVariable("THP_MEM_ALLOC_ENABLE") == null && ThpAvailable())
            {
                setenv("THP_MEM_ALLOC_ENABLE", "1", 0);
                Mode += "+thp";
            }
        }
        catch (Exception e) when (e is EntryPointNotFoundException or DllNotFoundException) { }   // musl: no mallopt
    }

    static bool ThpAvailable()
    {
        try { return !File.ReadAllText("/sys/kernel/mm/transparent_hugepage/enabled").Contains("[never]"); }
        catch (IOException) { return false; }
        catch (UnauthorizedAccessException) { return false; }
    }
}
