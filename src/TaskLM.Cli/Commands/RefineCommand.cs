// `tasklm refine --model RUN <new.(csv|jsonl)> [--replay 0.3] [key=value ...]`: continual refinement with a promotion gate.
using System.CommandLine;
using TaskLM.Improve;

namespace TaskLM.Cli.Commands;

public static class RefineCommand
{
    public static Command Create()
    {
        var replay = new Option<double>("--replay") { Description = "Share of the training mix replayed from the champion's training data (against forgetting)", DefaultValueFactory = _ => 0.3 };
        var testFraction = new Option<double>("--test-fraction") { Description = "Share of the new data held out as its test split (stratified)", DefaultValueFactory = _ => 0.2 };
        var newTest = new Option<string?>("--new-test") { Description = "The new data's test split as a file (then all of --data trains)" };
        var tolerance = new Option<double>("--tolerance") { Description = "How much worse than the champion the challenger may be on the old test split", DefaultValueFactory = _ => 0.01 };
        var minGain = new Option<double>("--min-gain") { Description = "How much better than the champion the challenger must be on the new test split", DefaultValueFactory = _ => 0.0 };
        var metric = new Option<string?>("--metric") { Description = "Metric of the decision (default: the run's early-stopping metric; macro_f1 for classification)" };
        var seed = new Option<int>("--seed") { Description = "Seed of the splits, the replay sample and the training", DefaultValueFactory = _ => 42 };
        var json = Global.JsonOption();
        var cmd = new Command("refine", "Continue fine-tuning a run on new data plus replay as a child run; promote it only if no worse on the old test split and better on the new one");
        // The run is --model (as every model verb; positional too, the older form), DATA positional (or --data); key=value overrides of the child's recipe.
        var model = new Global.ModelOption("The run folder to refine (its best/ is the champion)");
        var inputs = new Global.Inputs(cmd, model, "DATA: the new labelled data file; then key=value overrides of the child's recipe", overrides: true, ("DATA", "--data"));
        foreach (var o in new Option[] { replay, testFraction, newTest, tolerance, minGain, metric, seed, json }) cmd.Options.Add(o);
        cmd.SetAction(p =>
        {
            bool quiet = p.GetValue(json);
            var (run, values, overrides) = inputs.Read(p);
            var device = Global.StartTorch(p);
            var r = Refine.Run(new RefineOptions
            {
                Run = run, Data = values[0], Replay = p.GetValue(replay), TestFraction = p.GetValue(testFraction), NewTest = p.GetValue(newTest),
                Tolerance = p.GetValue(tolerance), MinGain = p.GetValue(minGain), Metric = p.GetValue(metric), Seed = p.GetValue(seed),
                Overrides = overrides, Device = device,
                Say = line => { if (quiet) Console.Error.WriteLine(line); else Console.WriteLine(line); },
            });
            if (quiet) { Console.WriteLine(r.ToJsonString(Global.JsonOut)); return 0; }
            Console.WriteLine();
            Console.Write(Refine.Table(r).ToText());
            Console.WriteLine(r["reason"]!.GetValue<string>());
            Console.WriteLine($"child run: {r["child"]} (refinement.json, report.md); lineage: {Path.Combine(run, "lineage.json")}");
            return 0;
        });
        return cmd;
    }
}
