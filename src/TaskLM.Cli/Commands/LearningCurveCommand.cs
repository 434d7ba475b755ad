// `tasklm learning-curve <recipe> [--fractions 0.1,0.25,0.5,1] [--seeds N] [key=value ...]`: would more data help?
using System.CommandLine;
using TaskLM.Improve;
using TaskLM.Recipes;

namespace TaskLM.Cli.Commands;

public static class LearningCurveCommand
{
    public static Command Create()
    {
        var recipeArg = new Argument<string>("recipe") { Description = "Recipe of the task (a file, or a shipped recipe's name); it needs data.test" };
        var overridesArg = Global.OverridesArgument("key=value overrides applied to every run");
        var fractions = new Option<string>("--fractions") { Description = "Fractions of the training data, comma-separated (stratified by label, nested per seed)", DefaultValueFactory = _ => "0.1,0.25,0.5,1" };
        var seeds = new Option<int>("--seeds") { Description = "Seeds per fraction (the recipe's seed, +1, +2, ...): each draws its own sample and trains with it", DefaultValueFactory = _ => 1 };
        var metric = new Option<string?>("--metric") { Description = "Metric plotted (default: the recipe's early-stopping metric; macro_f1 for classification)" };
        var minGain = new Option<double>("--min-gain") { Description = "The curve still rises when its last step gains at least this per doubling of the data", DefaultValueFactory = _ => 0.01 };
        var noBaseline = new Option<bool>("--no-baseline") { Description = "Skip the TF-IDF baseline's curve" };
        var samples = new Option<int>("--bootstrap-samples") { Description = "Resamples of each point's 95% interval", DefaultValueFactory = _ => 1000 };
        var outDir = Global.OutOption("Curve folder (default: the recipe's output_dir + '-curve')", required: false);
        var json = Global.JsonOption();
        var cmd = new Command("learning-curve", "Train on growing fractions of the training data; plot the metric (with CIs) for model and baseline; say whether more data would help");
        cmd.Arguments.Add(recipeArg); cmd.Arguments.Add(overridesArg);
        foreach (var o in new Option[] { fractions, seeds, metric, minGain, noBaseline, samples, outDir, json }) cmd.Options.Add(o);
        cmd.SetAction(p =>
        {
            bool quiet = p.GetValue(json);
            var fr = LearningCurve.ParseFractions(p.GetValue(fractions)!);
            var device = Global.StartTorch(p);
            var result = LearningCurve.Run(new LearningCurveOptions
            {
                RecipePath = RecipeCatalog.Resolve(p.GetValue(recipeArg)!), Overrides = p.GetValue(overridesArg) ?? [], Fractions = fr,
                Seeds = p.GetValue(seeds), Metric = p.GetValue(metric), MinGain = p.GetValue(minGain), Baseline = !p.GetValue(noBaseline),
                BootstrapSamples = p.GetValue(samples), OutDir = outDir.Read(p), Device = device,
                Say = line => { if (quiet) Console.Error.WriteLine(line); else Console.WriteLine(line); },
            });
            if (quiet) { Console.WriteLine(result.ToJsonString(Global.JsonOut)); return 0; }
            Console.WriteLine();
            Console.Write(LearningCurve.Table(result).ToText());
            Console.WriteLine($"model: {result["verdict"]!["text"]}");
            if (result["baseline_verdict"] is { } bv) Console.WriteLine($"baseline: {bv["text"]}");
            string dir = result["out_dir"]!.GetValue<string>();
            Console.WriteLine($"curve: {Path.Combine(dir, "learning-curve.json")}, {Path.Combine(dir, "learning-curve.md")}; plot: {Path.Combine(dir, "plots", "learning-curve.svg")}");
            return 0;
        });
        return cmd;
    }
}
