// Loads libtorch (bundled package or TASKLM_LIBTORCH), picks the device and threads, and describes both.
using System.Diagnostics;
using System.Reflection;
using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace TaskLM.Native;

/// <summary>What <see cref="TorchBackend.Describe"/> reports (also printed by <c>tasklm env</c>).</summary>
public sealed record BackendInfo(
    string Os, string Architecture, string DotnetVersion, string TorchSharpVersion,
    string LibTorchOrigin, string LibTorchDirectory, bool CudaAvailable, int CudaDeviceCount,
    int Threads, int LogicalCores);

/// <summary>
/// The one place TaskLM touches libtorch loading and device choice. Call <see cref="EnsureLoaded"/>
/// before the first tensor (the CLI does it at start); everything else calls <see cref="ResolveDevice"/>.
/// </summary>
public static class TorchBackend
{
    /// <summary>Environment variable naming a PyTorch <c>torch/lib</c> folder to load libtorch from.</summary>
    public const string LibTorchEnv = "TASKLM_LIBTORCH";

    static readonly object Gate = new();
    static bool _loaded;
    static string _origin = "package";
    static string _directory = "";
    static readonly Dictionary<string, IntPtr> Preloaded = new(StringComparer.Ordinal);

    /// <summary>Loads libtorch once: from <c>TASKLM_LIBTORCH</c> when set, else from the package next to
    /// the program. Throws with a readable message when neither can be loaded.</summary>
    public static void EnsureLoaded()
    {
        lock (Gate)
        {
            if (_loaded) return;
            NativeMemory.Configure();   // before libtorch's first allocation
            string? byo = Environment.GetEnvironmentVariable(LibTorchEnv);
            if (!string.IsNullOrWhiteSpace(byo)) PreloadFrom(byo);
            else
            {
                _directory = FindBundledDirectory()
                    ?? throw new InvalidOperationException(
                        $"no libtorch found: this build bundles none (built with -p:LibTorchRid=none?); set {LibTorchEnv} to a PyTorch torch/lib folder");
            }
            try
            {
                // Touching torch runs TorchSharp's static initialiser, which loads the CPU backend.
                _ = torch.get_num_threads();
            }
            catch (Exception e)
            {
                throw new InvalidOperationException(
                    $"libtorch could not be loaded ({_origin}{(_directory == "" ? "" : ": " + _directory)}): "
                    + FirstLine(e.InnerException?.Message ?? e.Message), e);
            }
            _loaded = true;
        }
    }

    /// <summary>Turns <c>auto|cpu|cuda|cuda:N</c> into a device. <c>auto</c> is CUDA when it initialises,
    /// else CPU; asking for CUDA where there is none is an error, not a silent fallback.</summary>
    public static Device ResolveDevice(string? spec)
    {
        EnsureLoaded();
        spec = string.IsNullOrWhiteSpace(spec) ? "auto" : spec.Trim().ToLowerInvariant();
        if (spec == "cpu") return CPU;
        if (spec == "auto") return TryInitCuda() ? CUDA : CPU;
        if (spec == "cuda" || spec.StartsWith("cuda:", StringComparison.Ordinal))
        {
            if (!TryInitCuda())
                throw new InvalidOperationException(
                    $"device '{spec}' asked for, but CUDA is not available (libtorch from {_origin}; set {LibTorchEnv} to a CUDA build of PyTorch's torch/lib)");
            int index = 0;
            if (spec.Length > 5 && !int.TryParse(spec.AsSpan(5), out index))
                throw new ArgumentException($"device '{spec}': expected cuda:N with N a number");
            int count = (int)cuda.device_count();
            if (index < 0 || index >= count)
                throw new ArgumentException($"device '{spec}': only {count} CUDA device(s) found");
            return new Device(DeviceType.CUDA, index);
        }
        throw new ArgumentException($"unknown device '{spec}': use auto, cpu, cuda or cuda:N");
    }

    /// <summary>The device rule every run follows (train, tune trials, quickstart): a device the caller asked for
    /// (the CLI's <c>--device</c> other than <c>auto</c>) wins; otherwise the recipe's <c>training.device</c>
    /// decides, <c>auto</c> (the default) being CUDA when it initialises, else CPU. Kept here, not in a verb, so
    /// a recipe that says <c>device: cpu</c> means the same under every caller.</summary>
    public static Device ChooseDevice(Device? asked, string? recipeDevice) => asked ?? ResolveDevice(recipeDevice);

    /// <summary>Sets libtorch's intra-op thread count (0 or less leaves libtorch's default).</summary>
    public static void SetThreads(int threads)
    {
        EnsureLoaded();
        if (threads > 0) torch.set_num_threads(threads);
    }

    /// <summary>OS, libtorch origin, CUDA devices and threads.</summary>
    public static BackendInfo Describe()
    {
        EnsureLoaded();
        bool cudaOk = TryInitCuda();
        return new BackendInfo(
            RuntimeInformation.OSDescription, RuntimeInformation.OSArchitecture.ToString(),
            Environment.Version.ToString(),
            typeof(torch).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion?.Split('+')[0]
                ?? typeof(torch).Assembly.GetName().Version?.ToString() ?? "?",
            _origin, _directory, cudaOk, cudaOk ? (int)cuda.device_count() : 0,
            torch.get_num_threads(), Environment.ProcessorCount);
    }

    /// <summary>A linear layer's forward and backward pass; returns the gradient norm (finite when the
    /// native library and its dependencies resolved every symbol they needed).</summary>
    public static double ForwardBackwardCheck(Device device)
    {
        using var scope = NewDisposeScope();
        manual_seed(0);
        var lin = nn.Linear(16, 4).to(device);
        var x = randn(8, 16, device: device);
        var loss = nn.functional.cross_entropy(lin.call(x), arange(8, device: device) % 4);
        loss.backward();
        double norm = lin.weight!.grad!.norm().item<float>();
        if (!double.IsFinite(norm) || norm == 0) throw new InvalidOperationException($"forward/backward check failed: grad norm {norm}");
        return norm;
    }

    /// <summary>Measures matmul throughput (GFLOP/s, median of several runs) of an n x n product in
    /// <paramref name="dtype"/> (fp32 unless given; bf16 for mixed precision) on the device: the practical ceiling
    /// for training speed on this machine.</summary>
    public static double MeasureMatmulGflops(Device device, int n = 1024, int repeats = 7, ScalarType dtype = ScalarType.Float32)
    {
        EnsureLoaded();
        using var scope = NewDisposeScope();
        var a = randn(n, n, device: device).to(dtype);
        var b = randn(n, n, device: device).to(dtype);
        _ = a.matmul(b); // warm-up
        if (device.type == DeviceType.CUDA) cuda.synchronize(device);
        var times = new List<double>();
        for (int i = 0; i < repeats; i++)
        {
            var sw = Stopwatch.StartNew();
            using (var c = a.matmul(b)) { if (device.type == DeviceType.CUDA) cuda.synchronize(device); } // CPU matmul is synchronous
            times.Add(sw.Elapsed.TotalSeconds);
        }
        times.Sort();
        return 2.0 * n * n * n / times[times.Count / 2] / 1e9;
    }

    /// <summary>The square matmul rate in GFLOP/s (median of 3) and the side it was measured at: <paramref name="n"/>, or
    /// less where one product of that side would take over a second — bf16 on a CPU without bf16 instructions runs
    /// 10-100x below fp32, and a 2048² product would hold the caller up for minutes. Small products (512² and below)
    /// mostly time the call overhead, so a rate is compared with another only at the same large side.</summary>
    public static (double Gflops, int Side) MeasureMatmulGflopsUpTo(Device device, int n, ScalarType dtype)
    {
        int side = Math.Min(256, n);
        double rate = MeasureMatmulGflops(device, side, 1, dtype);
        while (side < n && 2.0 * Math.Pow(Math.Min(n, side * 2), 3) / (rate * 1e9) < 1.0)
        {
            side = Math.Min(n, side * 2);
            rate = MeasureMatmulGflops(device, side, 1, dtype);
        }
        return (MeasureMatmulGflops(device, side, 3, dtype), side);
    }

    static bool _cudaTried, _cudaOk;

    static bool TryInitCuda()
    {
        if (_cudaTried) return _cudaOk;
        _cudaTried = true;
        try
        {
            torch.InitializeDeviceType(DeviceType.CUDA);
            _cudaOk = cuda.is_available();
        }
        catch (Exception)
        {
            _cudaOk = false; // no CUDA libtorch: CPU only
        }
        return _cudaOk;
    }

    // Bring-your-own libtorch: load PyTorch's libraries by full path, then our (patched) LibTorchSharp,
    // and answer TorchSharp's own probes for "torch_cpu", "torch_cuda" and "LibTorchSharp" with those
    // handles, so a bundled package copy (if any) is never loaded beside them.
    static void PreloadFrom(string dir)
    {
        _origin = LibTorchEnv;
        _directory = Path.GetFullPath(dir);
        if (!Directory.Exists(_directory))
            throw new InvalidOperationException($"{LibTorchEnv}={dir}: no such folder");
        string Lib(string stem) => OperatingSystem.IsWindows() ? $"{stem}.dll"
            : OperatingSystem.IsMacOS() ? $"lib{stem}.dylib" : $"lib{stem}.so";
        foreach (string stem in new[] { "c10", "torch_cpu", "c10_cuda", "torch_cuda", "torch" })
        {
            string path = Path.Combine(_directory, Lib(stem));
            if (File.Exists(path)) Preloaded[stem] = NativeLibrary.Load(path);
        }
        if (!Preloaded.ContainsKey("torch_cpu"))
            throw new InvalidOperationException($"{LibTorchEnv}={dir}: {Lib("torch_cpu")} not found there");
        string? own = FindOwnLibTorchSharp(Lib("LibTorchSharp"));
        if (own == null)
            throw new InvalidOperationException($"{Lib("LibTorchSharp")} not found next to the program");
        Preloaded["LibTorchSharp"] = NativeLibrary.Load(own);
        NativeLibrary.SetDllImportResolver(typeof(torch).Assembly, (name, _, _) =>
            Preloaded.TryGetValue(name, out var h) ? h : IntPtr.Zero);
    }

    static string? FindOwnLibTorchSharp(string fileName)
    {
        foreach (string dir in NativeDirectories())
        {
            string p = Path.Combine(dir, fileName);
            if (File.Exists(p)) return p;
        }
        return null;
    }

    static string? FindBundledDirectory()
    {
        string lib = OperatingSystem.IsWindows() ? "torch_cpu.dll" : OperatingSystem.IsMacOS() ? "libtorch_cpu.dylib" : "libtorch_cpu.so";
        return NativeDirectories().FirstOrDefault(d => File.Exists(Path.Combine(d, lib)));
    }

    static IEnumerable<string> NativeDirectories()
    {
        string baseDir = AppContext.BaseDirectory;
        yield return baseDir;
        string runtimes = Path.Combine(baseDir, "runtimes");
        if (Directory.Exists(runtimes))
            foreach (string d in Directory.GetDirectories(runtimes))
                yield return Path.Combine(d, "native");
    }

    static string FirstLine(string s) => s.Split('\n')[0].Trim();
}
