// `tasklm evaluate`: score a run's model (or an HF model folder) on a data file; eval.json, report.md/html.
using System.CommandLine;
using Spectre.Console;
using TaskLM.Evaluation;

namespace TaskLM.Cli.Commands;

public static class EvaluateCommand
{
    public static Command Create()
    {
        var cmd = new Command("evaluate", "Score a trained model on a data file: task metrics, confusion matrix, worst examples; writes eval.json and a report");
        var tokenizer = new Option<string?>("--tokenizer") { Description = "Tokenizer folder or \"gpt2\" (default: the run's, else the model folder's)" };
        var outDir = Global.OutOption("Folder for eval.json and the report (default: the run folder, or ./eval)", required: false).AddTo(cmd);
        var legacySet = new Option<string[]>("--set") { Hidden = true, Description = "Same as a positional key=value override" };
        cmd.Options.Add(legacySet);
        var batch = new Option<int>("--batch-size") { Description = "Examples per forward pass", DefaultValueFactory = _ => 32 };
        var json = Global.JsonOption();
        var model = new Global.ModelOption("The model to score: a run folder (uses best/, else the newest checkpoint), a Hugging Face model folder or Hub id, or an ONNX export");
        var inputs = new Global.Inputs(cmd, model, "DATA: a data file in the format and columns training reads (JSONL, CSV, ...); key=value: recipe overrides for reading the data, e.g. data.text_column=body",
            overrides: true, ("DATA", "--data"));
        foreach (var o in new Option[] { tokenizer, batch, json }) cmd.Options.Add(o);
        cmd.SetAction(p =>
        {
            var (spec, values, overrides) = inputs.Read(p);
            var device = Global.StartTorch(p);
            bool asJson = p.GetValue(json);
            var (result, dir, report) = ModelEvaluation.Run(spec, values[0], new EvaluateOptions
            {
                Tokenizer = p.GetValue(tokenizer), OutDir = outDir.Read(p), BatchSize = p.GetValue(batch),
                Overrides = [.. overrides, .. p.GetValue(legacySet) ?? []], Device = device,
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
