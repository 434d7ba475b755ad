// `tasklm env`: what TaskLM found on this machine (OS, libtorch origin, CUDA, threads, matmul speed).
using System.CommandLine;
using System.Text.Json;
using Spectre.Console;
using TaskLM.Native;
using TorchSharp;
using static TorchSharp.torch;

namespace TaskLM.Cli.Commands;

public static class EnvCommand
{
    public static Command Create()
    {
        var json = Global.JsonOption();
        var check = new Option<bool>("--check") { Description = "Also run a forward and backward pass on the device" };
        var cmd = new Command("env", "Show the OS, libtorch origin, CUDA devices, threads and measured matmul GFLOP/s");
        cmd.Options.Add(json);
        cmd.Options.Add(check);
        cmd.SetAction(p =>
        {
            var device = Global.StartTorch(p);
            BackendInfo info = TorchBackend.Describe();
            double gflops = TorchBackend.MeasureMatmulGflops(device);
            double? checkLoss = p.GetValue(check) ? TorchBackend.ForwardBackwardCheck(device) : null;
            if (p.GetValue(json))
            {
                Console.WriteLine(JsonSerializer.Serialize(new
                {
                    info.Os, info.Architecture, info.DotnetVersion, info.TorchSharpVersion,
                    libtorch = new { origin = info.LibTorchOrigin, directory = info.LibTorchDirectory },
                    cuda = new { available = info.CudaAvailable, devices = info.CudaDeviceCount },
                    device = device.ToString(), info.Threads, info.LogicalCores,
                    allocator = TaskLM.Native.NativeMemory.Mode,
                    matmul_fp32_gflops = Math.Round(gflops, 1),
                    check_grad_norm = checkLoss,
                }, Global.JsonOut));
                return 0;
            }
            var t = new Table().AddColumn("").AddColumn("");
            t.HideHeaders();
            t.AddRow("OS", $"{info.Os} ({info.Architecture})");
            t.AddRow(".NET / TorchSharp", $"{info.DotnetVersion} / {info.TorchSharpVersion}");
            t.AddRow("libtorch", Markup.Escape($"{info.LibTorchOrigin}: {info.LibTorchDirectory}"));
            t.AddRow("CUDA", info.CudaAvailable ? $"{info.CudaDeviceCount} device(s)" : "not available");
            t.AddRow("device", device.ToString());
            t.AddRow("threads", $"{info.Threads} (of {info.LogicalCores} logical cores)");
            t.AddRow("CPU allocator", TaskLM.Native.NativeMemory.Mode);
            t.AddRow("fp32 matmul 1024x1024", $"{gflops:F1} GFLOP/s");
            if (checkLoss is double g) t.AddRow("forward+backward", $"ok (grad norm {g:F4})");
            AnsiConsole.Write(t);
            return 0;
        });
        return cmd;
    }
}
