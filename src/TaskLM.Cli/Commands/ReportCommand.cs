// `tasklm report <run> [<run>...]`: Markdown + self-contained HTML report of one run, or several side by side.
using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using Spectre.Console;
using TaskLM.Evaluation;

namespace TaskLM.Cli.Commands;

public static class ReportCommand
{
    public static Command Create()
    {
        var runs = new Argument<string[]>("runs") { Description = "Run folders (metrics.jsonl and/or eval.json)", Arity = ArgumentArity.OneOrMore };
        var output = new Option<string?>("--out")
        {
            Description = "Folder for report.md, report.html and plots/ (default: the run folder for one run, ./report for several)",
        };
        var json = Global.JsonOption();
        var cmd = new Command("report", "Write a report (metric table, per-class table, confusion matrix, worst examples, samples, "
            + "training curves) as Markdown and one self-contained HTML page; several runs are compared side by side");
        cmd.Arguments.Add(runs);
        cmd.Options.Add(output);
        cmd.Options.Add(json);
        cmd.SetAction(p =>
        {
            var dirs = p.GetValue(runs)!;
            var data = dirs.Select(RunFolder.Read).ToList();
            var outDir = p.GetValue(output) ?? (dirs.Length == 1 ? dirs[0] : "report");
            var report = ReportBuilder.ForRuns(data);
            var html = report.Write(outDir);
            var figures = report.Blocks.OfType<ReportFigure>().Select(f => Path.Combine(outDir, "plots", f.FileName)).ToList();
            if (p.GetValue(json))
            {
                Console.WriteLine(new JsonObject
                {
                    ["html"] = html, ["markdown"] = Path.Combine(outDir, "report.md"),
                    ["figures"] = new JsonArray(figures.Select(f => (JsonNode?)f).ToArray()),
                }.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
                return 0;
            }
            AnsiConsole.MarkupLine($"Wrote [green]{Markup.Escape(html)}[/] and report.md with {figures.Count} plot(s) in {Markup.Escape(Path.Combine(outDir, "plots"))}");
            return 0;
        });
        return cmd;
    }
}
