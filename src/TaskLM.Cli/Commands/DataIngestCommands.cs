// Placeholder until its verbs land.
using System.CommandLine;

namespace TaskLM.Cli.Commands;

public static class DataIngestCommands
{
    public static IEnumerable<Command> Create() => [];
}
