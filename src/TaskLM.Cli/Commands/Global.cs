// Options every verb shares (device, threads, verbosity) and the one-line error report.
using System.CommandLine;
using System.Text.Json;
using Spectre.Console;
using TaskLM.Native;
using TorchSharp;

namespace TaskLM.Cli.Commands;

/// <summary>Options shared by all verbs, and helpers verbs use to start torch and print results.</summary>
public static class Global
{
    public static readonly Option<string> Device = new("--device")
    {
        Description = "Where models run: auto (CUDA when it initialises, else CPU), cpu, cuda or cuda:N",
        DefaultValueFactory = _ => "auto",
        Recursive = true,
    };

    public static readonly Option<int> Threads = new("--threads")
    {
        Description = "CPU threads for libtorch (0 = libtorch's default)",
        DefaultValueFactory = _ => 0,
        Recursive = true,
    };

    public static readonly Option<bool> Verbose = new("--verbose")
    {
        Description = "Show stack traces and extra detail",
        Recursive = true,
    };

    /// <summary>Adds a parse-time check that the option's value, when given, is at least <paramref name="min"/>.</summary>
    public static Option<int?> AtLeast(this Option<int?> option, int min)
    {
        option.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<int?>() is int v && v < min) r.AddError($"{option.Name} must be at least {min}, got {v}");
        });
        return option;
    }

    /// <inheritdoc cref="AtLeast(Option{int?}, int)"/>
    public static Option<int> AtLeast(this Option<int> option, int min)
    {
        option.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<int>() is int v && v < min) r.AddError($"{option.Name} must be at least {min}, got {v}");
        });
        return option;
    }

    /// <summary>A <c>--json</c> flag for a verb (machine-readable output on stdout).</summary>
    public static Option<bool> JsonOption() => new("--json") { Description = "Print machine-readable JSON" };

    public static readonly JsonSerializerOptions JsonOut = new() { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    /// <summary>Output for programs and pipes: when stdout is not a terminal, tables and lines never wrap (a
    /// cell such as "gpt2-tiny" is never split); COLUMNS, when set, is the width either way.</summary>
    public static void ConfigureConsole()
    {
        if (int.TryParse(Environment.GetEnvironmentVariable("COLUMNS"), out int columns) && columns > 0) AnsiConsole.Profile.Width = columns;
        else if (Console.IsOutputRedirected) AnsiConsole.Profile.Width = 32_768;
    }

    /// <summary>Loads libtorch, applies <c>--threads</c> and resolves <c>--device</c>.</summary>
    public static torch.Device StartTorch(ParseResult p)
    {
        TorchBackend.EnsureLoaded();
        TorchBackend.SetThreads(p.GetValue(Threads));
        return TorchBackend.ResolveDevice(p.GetValue(Device));
    }

    /// <summary>Prints an error as one line (the whole chain with --verbose) and returns exit code 1.
    /// Plain Console.Error, not Spectre: a terminal width must never wrap the one line.</summary>
    public static int ReportError(Exception e, bool verbose)
    {
        if (verbose)
        {
            Console.Error.WriteLine(e.ToString());
            return 1;
        }
        var inner = e;
        while (inner is System.Reflection.TargetInvocationException or TypeInitializationException && inner.InnerException != null)
            inner = inner.InnerException;
        bool color = !Console.IsErrorRedirected && Environment.GetEnvironmentVariable("NO_COLOR") == null;
        string prefix = color ? "\u001b[31merror:\u001b[0m" : "error:";
        Console.Error.WriteLine($"{prefix} {inner.Message.Split('\n')[0].Trim()}");
        return 1;
    }
}
