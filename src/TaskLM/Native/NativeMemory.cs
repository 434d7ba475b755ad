// Native heap settings for libtorch on Linux: jemalloc when the system has it (fast and flat), else glibc with large
// CPU tensors from mmap (flat, slower).
using System.Runtime.InteropServices;

namespace TaskLM.Native;

/// <summary>
/// libtorch allocates CPU tensors with glibc's posix_memalign, and glibc before 2.38 rarely reuses a freed
/// memalign block for the next one (glibc bug 14581; fixed by "memalign: support scanning for aligned chunks"
/// in 2.38). With glibc's default dynamic mmap threshold (after the first large free, blocks up to 32 MB come
/// from the heap) a training run's heap therefore grows or swings although it frees all it made: gpt2-tiny with the
/// 50,257-token head went 306 → 733 MB in 80 steps with 45 live tensors throughout, and the run
/// 346 → 1,386 MB in 180 (glibc 2.36). Two remedies, in order of preference:
/// <list type="bullet">
/// <item><b>jemalloc</b> (Debian's libjemalloc2), which reuses aligned blocks, configured to keep freed pages
/// (<c>dirty_decay_ms:-1,muzzy_decay_ms:-1</c>): it acts as a caching allocator, so resident memory rises to the
/// run's peak and stays there, with no page faults per step. A malloc cannot be swapped after the process started, so
/// the <c>tasklm</c> program re-executes itself once with jemalloc in LD_PRELOAD (<see cref="PreferJemalloc"/>).
/// Measured on the 2-core dev box, loaded (docs in bench/README.md): recipes/spam.yaml 16.0k tokens/s vs 10.7-11.4k
/// with the mmap setting; a GPT-2-vocabulary causal LM 1,382 vs 1,187 tokens/s, rss 439 → 439 MB over 300 steps.</item>
/// <item>Otherwise a fixed mmap threshold of 128 KB (the default's starting value) serves large blocks by mmap and
/// returns them on free: flat memory, at the price of a page fault per page of each new block; libtorch's
/// transparent-huge-page option (THP_MEM_ALLOC_ENABLE, 2 MB pages for blocks of 2 MB and more) cuts that.</item>
/// </list>
/// <c>TASKLM_MALLOC</c> chooses: <c>mmap</c> (the glibc setting even where jemalloc is installed), <c>default</c>
/// (glibc's own behaviour), <c>jemalloc</c> (set by the re-execution itself). <c>LD_PRELOAD</c>,
/// <c>MALLOC_MMAP_THRESHOLD_</c> or <c>GLIBC_TUNABLES</c> set by the user are respected: nothing is changed.
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

    [DllImport("libc", EntryPoint = "execve", SetLastError = true)]
    static extern int execve([MarshalAs(UnmanagedType.LPUTF8Str)] string path, IntPtr[] argv, IntPtr[] envp);

    /// <summary>Where Debian (and most distributions) install jemalloc's shared library.</summary>
    static readonly string[] JemallocPaths =
        ["/usr/lib/x86_64-linux-gnu/libjemalloc.so.2", "/usr/lib/aarch64-linux-gnu/libjemalloc.so.2", "/usr/lib64/libjemalloc.so.2", "/usr/lib/libjemalloc.so.2"];

    /// <summary>The jemalloc library this process would preload, or null (not Linux, not installed, or the user chose
    /// otherwise through TASKLM_MALLOC, LD_PRELOAD or a glibc malloc setting).</summary>
    static string? JemallocToPreload()
    {
        if (!OperatingSystem.IsLinux()) return null;
        foreach (var v in new[] { "TASKLM_MALLOC", "LD_PRELOAD", "MALLOC_MMAP_THRESHOLD_", "GLIBC_TUNABLES" })
            if (!string.IsNullOrEmpty(Environment.GetEnvironmentVariable(v))) return null;
        return InstalledJemalloc();
    }

    /// <summary>Path of the system's jemalloc shared library, or null where none is installed.</summary>
    public static string? InstalledJemalloc() => JemallocPaths.FirstOrDefault(File.Exists);

    /// <summary>Called first thing by the <c>tasklm</c> program: where jemalloc is installed and nothing says
    /// otherwise, replaces this process (same PID, arguments, working directory and environment) by itself with
    /// jemalloc preloaded. Returns only when it does not (the caller goes on under glibc). A library host does not
    /// call this: its process is its own.</summary>
    public static void PreferJemalloc()
    {
        string? lib = JemallocToPreload();
        if (lib == null) return;
        string[] argv;
        try { argv = File.ReadAllText("/proc/self/cmdline").TrimEnd('\0').Split('\0'); }
        catch (IOException) { return; }
        catch (UnauthorizedAccessException) { return; }
        var env = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (System.Collections.DictionaryEntry e in Environment.GetEnvironmentVariables()) env[(string)e.Key] = (string?)e.Value ?? "";
        env["LD_PRELOAD"] = lib;
        env["TASKLM_MALLOC"] = "jemalloc";   // also stops a second re-execution
        env.TryAdd("MALLOC_CONF", "dirty_decay_ms:-1,muzzy_decay_ms:-1");
        var handles = new List<IntPtr>();
        IntPtr[] Strings(IEnumerable<string> items)
        {
            var a = items.Select(x => { var h = Marshal.StringToCoTaskMemUTF8(x); handles.Add(h); return h; }).ToList();
            a.Add(IntPtr.Zero);
            return a.ToArray();
        }
        try { execve("/proc/self/exe", Strings(argv), Strings(env.Select(kv => kv.Key + "=" + kv.Value))); }   // returns only on failure
        catch (Exception e) when (e is EntryPointNotFoundException or DllNotFoundException) { }
        foreach (var h in handles) Marshal.FreeCoTaskMem(h);
    }

    /// <summary>Applies the settings once, before libtorch's first allocation (<see cref="TorchBackend.EnsureLoaded"/>
    /// calls it). No-op off Linux or where the C library is not glibc.</summary>
    public static void Configure()
    {
        if (_done) return;
        _done = true;
        string? choice = Environment.GetEnvironmentVariable("TASKLM_MALLOC");
        if (!OperatingSystem.IsLinux() || choice == "default") return;
        if (choice == "jemalloc" && JemallocLoaded())
        {
            Mode = "jemalloc";
            return;
        }
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

    // True when libjemalloc is mapped into this process (LD_PRELOAD worked).
    static bool JemallocLoaded()
    {
        try { return File.ReadLines("/proc/self/maps").Any(l => l.Contains("libjemalloc", StringComparison.Ordinal)); }
        catch (IOException) { return false; }
        catch (UnauthorizedAccessException) { return false; }
    }

    static bool ThpAvailable()
    {
        try { return !File.ReadAllText("/sys/kernel/mm/transparent_hugepage/enabled").Contains("[never]"); }
        catch (IOException) { return false; }
        catch (UnauthorizedAccessException) { return false; }
    }
}
