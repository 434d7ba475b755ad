// `tasklm quickstart`: the main job on the embedded default, end to end.
using System.CommandLine;
using Spectre.Console;

namespace TaskLM.Cli.Commands;

public static class QuickstartCommand
{
    public static Command Create()
    {
        var steps = new Option<int>("--steps") { Description = "Training steps", DefaultValueFactory = _ => 300 };
        var cmd = new Command("quickstart", "Train a tiny language model on bundled text and show its loss falling");
        cmd.Options.Add(steps);
        cmd.SetAction(p =>
        {
            var device = Global.StartTorch(p);
            AnsiConsole.MarkupLine($"[bold]TaskLM quickstart[/]: character-level LM on Moby-Dick ch. 1-3, device {device}");
            var table = new Table().AddColumns("step", "loss", "seconds");
            var log = Quickstart.Run(device, steps: p.GetValue(steps), onStep: s =>
                AnsiConsole.MarkupLine($"  step {s.Step,5}  loss {s.Loss,7:F4}  {s.ElapsedSeconds,6:F1}s"));
            double first = log[0].Loss, last = log[^1].Loss;
            AnsiConsole.MarkupLine(last < first
                ? $"[green]loss fell from {first:F3} to {last:F3}[/]"
                : $"[red]loss did not fall ({first:F3} -> {last:F3})[/]");
            return last < first ? 0 : 1;
        });
        return cmd;
    }
}
