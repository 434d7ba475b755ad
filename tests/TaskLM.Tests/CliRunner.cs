// Runs the `tasklm` program (TaskLM.Cli.dll, copied next to the tests) in a fresh process.
using System.Diagnostics;

namespace TaskLM.Tests;

/// <summary>Result of one `tasklm` run.</summary>
public sealed record CliResult(int ExitCode, string Stdout, string Stderr);

/// <summary>Starts <c>dotnet TaskLM.Cli.dll ...</c> from the test output folder.</summary>
public static class CliRunner
{
    public static string CliDll => Path.Combine(AppContext.BaseDirectory, "TaskLM.Cli.dll");

    public static CliResult Run(IEnumerable<string> args, IDictionary<string, string?>? env = null, int timeoutSeconds = 300, string? workingDirectory = null)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        if (workingDirectory != null) psi.WorkingDirectory = workingDirectory;
        psi.ArgumentList.Add(CliDll);
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment["NO_COLOR"] = "1";
        psi.Environment["COLUMNS"] = "200";
        psi.Environment["HF_HUB_OFFLINE"] = "1";   // no test reaches the real Hugging Face Hub (one serving a fake Hub removes it)
        if (env != null)
            foreach (var (k, v) in env)
                if (v == null) psi.Environment.Remove(k); else psi.Environment[k] = v;
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(timeoutSeconds * 1000))
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"tasklm {string.Join(' ', args)} ran past {timeoutSeconds}s");
        }
        return new CliResult(p.ExitCode, stdout.Result, stderr.Result);
    }

    public static CliResult Run(params string[] args) => Run((IEnumerable<string>)args);

    /// <summary>libc's kill(2), to signal a running `tasklm` child: no `kill` process to spawn between a test's check
    /// that the child is still working and the signal. Returns 0 when sent.</summary>
    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    public static extern int Kill(int pid, int sig);
}
