// Entry point of the `tasklm` program: builds the verb tree and turns errors into one clear line.
using System.CommandLine;
using Spectre.Console;
using TaskLM.Cli.Commands;

// First: where jemalloc is installed the process re-executes itself with it (flat memory without mmap page faults).
TaskLM.Native.NativeMemory.PreferJemalloc();
Global.ConfigureConsole();
var root = new RootCommand("TaskLM: train a language model for one task, from raw data to a served model.");
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
root.Subcommands.Add(ExportCommand.Create());
foreach (var c in RecipeCommands.Create()) root.Subcommands.Add(c);  // recipes, recipe validate|copy|show
root.Subcommands.Add(TuneCommand.Create());
root.Subcommands.Add(CompareCommand.Create());         // the improvement loop (docs/improve.md)
root.Subcommands.Add(LearningCurveCommand.Create());
root.Subcommands.Add(AugmentCommand.Create());
root.Subcommands.Add(RefineCommand.Create());

root.Subcommands.Add(PredictCommand.Create());
root.Subcommands.Add(ServeCommand.Create());
root.Subcommands.Add(BenchCommand.Create());

Global.AddTorchOptions(root);   // --device/--threads on the verbs that run a model

ParseResult parsed = root.Parse(args);
bool help = parsed.Action is System.CommandLine.Help.HelpAction;
// A wrong option or value: at most three lines naming it, never the whole help.
if (parsed.Errors.Count > 0 && !help) return Global.ReportParseErrors(parsed);
try
{
    if (!help) return parsed.Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
    // Help names the program as its users type it (run as `dotnet TaskLM.Cli.dll`, it would say TaskLM.Cli).
    var text = new StringWriter();
    int rc = parsed.Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false, Output = text });
    Console.Write(Global.ModelOption.ShowInUsage(
        text.ToString().Replace(RootCommand.ExecutableName + " ", "tasklm ").Replace(RootCommand.ExecutableName + Environment.NewLine, "tasklm" + Environment.NewLine), parsed));
    return rc;
}
catch (Exception e)
{
    return Global.ReportError(e, parsed.GetValue(Global.Verbose), parsed);
}
