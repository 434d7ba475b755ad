// `tasklm evaluate`: score a run's model (or an HF model folder) on a data file; eval.json, report.md/html.
using System.CommandLine;
using Spectre.Console;
using TaskLM.Training;

namespace TaskLM.Cli.Commands;

public static class EvaluateCommand
{
    public static Command Create()
    {
        var model = new Option<string>("--model") { Description = "A run folder (uses best/, else the newest checkpoint) or a Hugging Face model folder", Required = true };
        var data = new Option<string>("--data") { Description = "Data file in the format and columns training reads (JSONL, CSV, ...)", Required = true };
        var tokenizer = new Option<string?>("--tokenizer") { Description = "Tokenizer folder or \"gpt2\" (default: the run's, else the model folder's)" };
        var outDir = new Option<string?>("--out") { Description = "Folder for eval.json and the report (default: the run folder, or ./eval)" };
        var batch = new Option<int>("--batch-size") { Description = "Examples per forward pass", DefaultValueFactory = _ => 32 };
        var set = new Option<string[]>("--set") { Description = "Recipe override for reading the data, e.g. data.text_column=body (repeatable)" };
        var json = Global.JsonOption();
        var cmd = new Command("evaluate", "Score a trained model on a data file: task metrics, confusion matrix, worst examples; writes eval.json and a report");
        foreach (var o in new Option[] { model, data, tokenizer, outDir, batch, set, json }) cmd.Options.Add(o);
        cmd.SetAction(p =>
        {
            var device = Global.StartTorch(p);
            bool asJson = p.GetValue(json);
            var (result, dir, report) = ModelEvaluation.Run(p.GetValue(model)!, p.GetValue(data)!, new EvaluateOptions
            {
                Tokenizer = p.GetValue(tokenizer), OutDir = p.GetValue(outDir), BatchSize = p.GetValue(batch),
                Overrides = p.GetValue(set) ?? [], Device = device,
                Say = asJson ? _ => { } : s => AnsiConsole.MarkupLine(Markup.Escape(s)),
            });
            if (asJson)
            {
                Console.WriteLine(result.ToJsonString());
                return 0;
            }
            var t = new Table().AddColumns("metric", "value");
            foreach (var (k, v) in result.Metrics) t.AddRow(k, v.ToString("G5", System.Globalization.CultureInfo.InvariantCulture));
            AnsiConsole.Write(t);
            if (result.Baseline is { } b)
            {
                var (header, rows) = TaskLM.Evaluation.BaselineComparison.SideBySide(result.Metrics, b);
                var bt = new Table().Title($"model vs baseline ({Markup.Escape(b.Method)})");
                foreach (var h in header) bt.AddColumn(Markup.Escape(h));
                foreach (var r in rows) bt.AddRow(r.Select(Markup.Escape).ToArray());
                AnsiConsole.Write(bt);
            }
            AnsiConsole.MarkupLine($"eval.json and report: [bold]{Markup.Escape(dir)}[/] ({Markup.Escape(Path.GetFileName(report))})");
            return 0;
        });
        return cmd;
    }
}
