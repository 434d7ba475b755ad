// `tasklm compare <recipe> --models A,B,C [--budget 300steps|10m] [key=value ...]`: the size/performance trade-off on the task.
using System.CommandLine;
using TaskLM.Improve;
using TaskLM.Recipes;

namespace TaskLM.Cli.Commands;

public static class CompareCommand
{
    public static Command Create()
    {
        var recipeArg = new Argument<string>("recipe") { Description = "Recipe of the task (a file, or a shipped recipe's name); it needs data.test" };
        var overridesArg = Global.OverridesArgument("key=value overrides applied to every model, e.g. data.max_length=128");
        var models = new Option<string>("--models") { Description = "Models, comma-separated: the NuGet encoders (minilm-l6, arctic-xs), presets (random init: gpt2-tiny, bert-mini, ...), shipped bases (models/tasklm-bert-mini), Hub ids or any HF folder", Required = true };
        var budget = new Option<string?>("--budget") { Description = "The same budget for every model: optimizer steps (300, 300steps) or wall time (10m, 90s); default: the recipe's epochs" };
        var seed = new Option<int?>("--seed") { Description = "Training seed of every model (default: the recipe's)" };
        var metric = new Option<string?>("--metric") { Description = "Metric compared (default: the recipe's early-stopping metric; macro_f1 for classification)" };
        var tolerance = new Option<double>("--tolerance") { Description = "A model fits when its metric is within this of the best (absolute)", DefaultValueFactory = _ => 0.01 };
        var samples = new Option<int>("--bootstrap-samples") { Description = "Resamples of each metric's 95% interval", DefaultValueFactory = _ => 1000 };
        var outDir = Global.OutOption("Comparison folder (default: the recipe's output_dir + '-compare')", required: false);
        var keepGoing = new Option<bool>("--keep-going") { Description = "Compare the models that can run when others cannot (each failure a row); the exit code is still 1 when a model failed" };
        var json = Global.JsonOption();
        var cmd = new Command("compare", "Fine-tune several models on one task with the same budget and seed; table of metric (CI), size, speed, latency, memory, plots and a recommendation");
        cmd.Arguments.Add(recipeArg); cmd.Arguments.Add(overridesArg);
        foreach (var o in new Option[] { models, budget, seed, metric, tolerance, samples, outDir, keepGoing, json }) cmd.Options.Add(o);
        cmd.SetAction(p =>
        {
            bool quiet = p.GetValue(json);
            var device = Global.StartTorch(p);
            var options = new CompareOptions
            {
                RecipePath = RecipeCatalog.Resolve(p.GetValue(recipeArg)!), Overrides = p.GetValue(overridesArg) ?? [],
                Models = p.GetValue(models)!.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries),
                Budget = p.GetValue(budget), Seed = p.GetValue(seed), Metric = p.GetValue(metric), Tolerance = p.GetValue(tolerance),
                BootstrapSamples = p.GetValue(samples), OutDir = outDir.Read(p), Device = device, KeepGoing = p.GetValue(keepGoing),
                Say = line => { if (quiet) Console.Error.WriteLine(line); else Console.WriteLine(line); },
            };
            var result = Compare.Run(options);
            // A model that failed is an error of the run (exit 1), named on stderr, even when --keep-going compared the rest.
            var failures = result["rows"]!.AsArray().OfType<System.Text.Json.Nodes.JsonObject>().Where(r => r["error"] != null).ToList();
            foreach (var f in failures) Console.Error.WriteLine($"error: {f["model"]}: {f["error"]}");
            int rc = failures.Count > 0 ? 1 : 0;
            if (quiet) { Console.WriteLine(result.ToJsonString(Global.JsonOut)); return rc; }
            Console.WriteLine();
            Console.Write(Compare.Table(result).ToText());
            Console.WriteLine($"recommendation: {result["recommendation"]!["model"]} — {result["recommendation"]!["reason"]}");
            string dir = result["out_dir"]!.GetValue<string>();
            Console.WriteLine($"table: {Path.Combine(dir, "compare.json")}, {Path.Combine(dir, "compare.md")}; plots: {Path.Combine(dir, "plots")}");
            return rc;
        });
        return cmd;
    }
}
