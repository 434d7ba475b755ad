// libtorch loads and trains in a fresh process with every symbol bound up front; device selection.
using System.Text.Json;
using TaskLM.Native;
using TorchSharp;

namespace TaskLM.Tests.Native;

public class BackendTests
{
    [Fact]
    public void FreshProcessRunsForwardAndBackwardWithImmediateBinding()
    {
        // LD_BIND_NOW=1 makes the dynamic linker resolve every symbol at load (RTLD_NOW behaviour).
        var r = CliRunner.Run(new[] { "env", "--check", "--json", "--device", "cpu" },
            new Dictionary<string, string?> { ["LD_BIND_NOW"] = "1", ["TASKLM_LIBTORCH"] = null });
        Assert.True(r.ExitCode == 0, r.Stderr + r.Stdout);
        using var doc = JsonDocument.Parse(r.Stdout);
        Assert.True(doc.RootElement.GetProperty("check_grad_norm").GetDouble() > 0);
        Assert.Equal("package", doc.RootElement.GetProperty("libtorch").GetProperty("origin").GetString());
        Assert.True(doc.RootElement.GetProperty("matmul_fp32_gflops").GetDouble() > 0);
    }

    [Fact]
    public void TaskLMLibTorchNamesTheFolderLibtorchIsLoadedFrom()
    {
        if (!OperatingSystem.IsLinux()) return;
        string native = Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native");
        var r = CliRunner.Run(new[] { "env", "--check", "--json" },
            new Dictionary<string, string?> { ["TASKLM_LIBTORCH"] = native, ["LD_BIND_NOW"] = "1" });
        Assert.True(r.ExitCode == 0, r.Stderr + r.Stdout);
        using var doc = JsonDocument.Parse(r.Stdout);
        var lt = doc.RootElement.GetProperty("libtorch");
        Assert.Equal("TASKLM_LIBTORCH", lt.GetProperty("origin").GetString());
        Assert.Equal(native, lt.GetProperty("directory").GetString());

        var bad = CliRunner.Run(new[] { "env" }, new Dictionary<string, string?> { ["TASKLM_LIBTORCH"] = "/nonexistent/torch/lib" });
        Assert.Equal(1, bad.ExitCode);
        Assert.Contains("TASKLM_LIBTORCH=/nonexistent/torch/lib", bad.Stderr);
        Assert.Single(bad.Stderr.Trim().Split('\n')); // one clear line, no stack trace
    }

    [Fact]
    public void The_program_runs_on_jemalloc_where_it_is_installed_and_on_glibc_when_told_so()
    {
        if (!OperatingSystem.IsLinux()) return;
        string Allocator(string? choice)
        {
            var r = CliRunner.Run(new[] { "env", "--json", "--device", "cpu" },
                new Dictionary<string, string?> { ["TASKLM_MALLOC"] = choice, ["LD_PRELOAD"] = null, ["MALLOC_CONF"] = null, ["MALLOC_MMAP_THRESHOLD_"] = null, ["GLIBC_TUNABLES"] = null });
            Assert.True(r.ExitCode == 0, r.Stderr + r.Stdout);
            using var doc = JsonDocument.Parse(r.Stdout);
            return doc.RootElement.GetProperty("allocator").GetString()!;
        }
        // Nothing chosen: jemalloc where Debian's libjemalloc2 is installed (.ci/run installs it), else glibc's mmap setting.
        string auto = Allocator(null);
        if (NativeMemory.InstalledJemalloc() != null) Assert.Equal("jemalloc", auto);
        else Assert.StartsWith("mmap>128K", auto);
        Assert.StartsWith("mmap>128K", Allocator("mmap"));
        Assert.Equal("default", Allocator("default"));
    }

    [Fact]
    public void DeviceSelection()
    {
        Assert.Equal(DeviceType.CPU, TorchBackend.ResolveDevice("cpu").type);
        var auto = TorchBackend.ResolveDevice("auto");
        bool cuda = TorchBackend.Describe().CudaAvailable;
        Assert.Equal(cuda ? DeviceType.CUDA : DeviceType.CPU, auto.type);
        if (!cuda)
        {
            var e = Assert.Throws<InvalidOperationException>(() => TorchBackend.ResolveDevice("cuda:0"));
            Assert.Contains("CUDA is not available", e.Message);
        }
        Assert.Contains("unknown device 'gpu'", Assert.Throws<ArgumentException>(() => TorchBackend.ResolveDevice("gpu")).Message);
    }

    [Fact]
    public void DeviceRuleAskedWinsElseTheRecipeDecides()
    {
        bool cuda = TorchBackend.Describe().CudaAvailable;
        // Asked (a --device other than auto): the recipe's setting is not even looked at, a bad one included.
        Assert.Equal(DeviceType.CPU, TorchBackend.ChooseDevice(torch.CPU, "cuda").type);
        Assert.Equal(DeviceType.CPU, TorchBackend.ChooseDevice(torch.CPU, "gpu").type);
        // Not asked: the recipe's training.device decides; auto (or none) is CUDA when it initialises.
        Assert.Equal(DeviceType.CPU, TorchBackend.ChooseDevice(null, "cpu").type);
        Assert.Equal(cuda ? DeviceType.CUDA : DeviceType.CPU, TorchBackend.ChooseDevice(null, "auto").type);
        Assert.Equal(cuda ? DeviceType.CUDA : DeviceType.CPU, TorchBackend.ChooseDevice(null, null).type);
        Assert.Contains("unknown device 'gpu'", Assert.Throws<ArgumentException>(() => TorchBackend.ChooseDevice(null, "gpu")).Message);
        if (!cuda) Assert.Contains("CUDA is not available", Assert.Throws<InvalidOperationException>(() => TorchBackend.ChooseDevice(null, "cuda")).Message);
    }
}
