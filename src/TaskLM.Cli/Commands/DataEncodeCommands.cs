// Placeholder until its verbs land.
using System.CommandLine;

namespace TaskLM.Cli.Commands;

public static class DataEncodeCommands
{
    public static IEnumerable<Command> Create() => [];
}
