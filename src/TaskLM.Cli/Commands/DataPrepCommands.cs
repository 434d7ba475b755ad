// Placeholder until its verbs land.
using System.CommandLine;

namespace TaskLM.Cli.Commands;

public static class DataPrepCommands
{
    public static IEnumerable<Command> Create() => [];
}
