// Entry point of the `tasklm` program: builds the verb tree and turns errors into one clear line.
using System.CommandLine;
using Spectre.Console;
using TaskLM.Cli.Commands;

var root = new RootCommand("TaskLM: train a language model for one task, from raw data to a served model.");
root.Options.Add(Global.Device);
root.Options.Add(Global.Threads);
root.Options.Add(Global.Verbose);

// One line per verb group; each file under Commands/ builds its own verbs.
root.Subcommands.Add(EnvCommand.Create());
root.Subcommands.Add(QuickstartCommand.Create());
root.Subcommands.Add(DataCommand.Create());
root.Subcommands.Add(TrainCommand.Create());
foreach (var c in ModelCommands.Create()) root.Subcommands.Add(c);
root.Subcommands.Add(MetricsCommand.Create());
root.Subcommands.Add(ReportCommand.Create());
root.Subcommands.Add(EvaluateCommand.Create());
root.Subcommands.Add(BaselineCommand.Create());
root.Subcommands.Add(TokenizeCommand.Create());
root.Subcommands.Add(TokenizerCommand.Create());

ParseResult parsed = root.Parse(args);
try
{
    return parsed.Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
}
catch (Exception e)
{
    return Global.ReportError(e, parsed.GetValue(Global.Verbose));
}
