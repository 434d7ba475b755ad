// Ctrl-C (SIGINT) and SIGTERM during a data verb: remove the partial output, say so, exit 130/143.
using System.CommandLine;
using System.CommandLine.Invocation;
using System.Runtime.InteropServices;
using TaskLM.Data.Corpus;

namespace TaskLM.Cli.Commands;

/// <summary>Wraps a data verb's action so that an interruption leaves no partial output: the writers register
/// their temporary files in <see cref="PartialFiles"/>, and the signal handler deletes them before exiting with
/// 130 (SIGINT) or 143 (SIGTERM), as a shell reports a process killed by that signal. Earlier outputs are not
/// touched (they are only ever replaced by a rename of a complete file).</summary>
public sealed class DataInterrupt(SynchronousCommandLineAction inner) : SynchronousCommandLineAction
{
    /// <summary>Wraps the synchronous actions of <paramref name="cmd"/> and its subcommands (async ones, such as
    /// scrape, which writes page by page on purpose, keep their own cancellation).</summary>
    public static void Guard(Command cmd)
    {
        if (cmd.Action is SynchronousCommandLineAction a and not DataInterrupt) cmd.Action = new DataInterrupt(a);
        foreach (var sub in cmd.Subcommands) Guard(sub);
    }

    /// <inheritdoc />
    public override int Invoke(ParseResult parseResult)
    {
        using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal);
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal);
        return inner.Invoke(parseResult);
    }

    private static void OnSignal(PosixSignalContext ctx)
    {
        ctx.Cancel = true; // we exit ourselves, after the clean-up
        var removed = PartialFiles.DeleteAll();
        string what = removed.Count > 0 ? $" (removed the partial {string.Join(", ", removed.Select(Path.GetFileName))})" : "";
        Console.Error.WriteLine($"interrupted: nothing written{what}; earlier outputs are as they were");
        Environment.Exit(ctx.Signal == PosixSignal.SIGINT ? 130 : 143);
    }
}
