// `tasklm tune <recipe> --trials N [--sampler grid|random|tpe] [--pruner none|asha|median] [--metric M] [--workers K]`:
// a hyperparameter study over the recipe's search: section (or the default space), recorded in the study folder's SQLite database.
using System.CommandLine;
using System.Diagnostics;
using System.Text.Json.Nodes;
using Spectre.Console;
using TaskLM.Recipes;
using TaskLM.Training.Search;

namespace TaskLM.Cli.Commands;

public static class TuneCommand
{
    public static Command Create()
    {
        var recipeArg = new Argument<string>("recipe") { Description = "Recipe (a file, or a shipped recipe's name); its search: section is the space, else a default one" };
        var overridesArg = Global.OverridesArgument("key=value overrides applied to every trial, e.g. training.max_steps=200");
        var trials = new Option<int>("--trials") { Description = "The study's trial budget (re-running continues up to it)", Required = true };
        var sampler = new Option<string>("--sampler") { Description = "grid | random | tpe", DefaultValueFactory = _ => "tpe" };
        var pruner = new Option<string>("--pruner") { Description = "none | asha | median", DefaultValueFactory = _ => "asha" };
        var metric = new Option<string?>("--metric") { Description = "Validation metric to optimise (default: the recipe's early_stopping metric, else loss)" };
        var workers = new Option<int>("--workers") { Description = "Worker processes sharing the study", DefaultValueFactory = _ => 1 };
        var seed = new Option<int>("--seed") { Description = "Seed of the sampler", DefaultValueFactory = _ => 42 };
        // The study folder is the verb's output: --out, as every verb; --study-dir (hidden) still works for scripts.
        var studyDir = Global.OutOption("Study folder (default: the recipe's output_dir + '-tune')", required: false, legacy: "--study-dir");
        var worker = new Option<bool>("--worker") { Description = "Run as one worker of a study (started by --workers)", Hidden = true };
        var json = Global.JsonOption();
        var cmd = new Command("tune", "Search hyperparameters: trials as run folders, pruning, a SQLite study that resumes, leaderboard and plots");
        cmd.Arguments.Add(recipeArg); cmd.Arguments.Add(overridesArg);
        foreach (var o in new Option[] { trials, sampler, pruner, metric, workers, seed, worker, json }) cmd.Options.Add(o);
        studyDir.AddTo(cmd);
        cmd.SetAction(p =>
        {
            bool quiet = p.GetValue(json);
            Global.StartTorch(p);
            var options = new TuneOptions
            {
                RecipePath = RecipeCatalog.Resolve(p.GetValue(recipeArg)!), Overrides = p.GetValue(overridesArg) ?? [],
                Trials = p.GetValue(trials), Sampler = p.GetValue(sampler)!, Pruner = p.GetValue(pruner)!, Metric = p.GetValue(metric),
                Seed = p.GetValue(seed), StudyDir = studyDir.Read(p), Device = Global.AskedDevice(p),   // null: each trial's recipe decides
                // One line per trial as it ends; plain writes so a narrow terminal never wraps them into two.
                Say = line => { if (quiet) Console.Error.WriteLine(line); else Console.WriteLine(line); },
            };
            var setup = Tuner.Prepare(options);
            int k = p.GetValue(workers);
            if (k < 1) throw new ArgumentException("--workers must be at least 1");
            if (p.GetValue(worker)) { Tuner.Work(options, setup); return 0; }
            // The space is printed before the first trial, and said to be the default when the recipe has no search: section.
            string space = (setup.DefaultSpace ? "the recipe has no search: section, so the default space is searched (docs/tuning.md):\n" : "")
                + setup.Space.Describe().TrimEnd();
            if (!quiet)
                Console.WriteLine($"study {setup.StudyDir}: {options.Trials} trials, {options.Sampler} sampler, {options.Pruner} pruner, " +
                                  $"{(setup.Maximize ? "maximize" : "minimize")} {setup.Metric}, {k} worker(s)\n" + space);
            else if (setup.DefaultSpace) Console.Error.WriteLine(space);
            var children = Enumerable.Range(1, k - 1).Select(_ => StartWorker()).ToList();
            try { Tuner.Work(options, setup); }
            finally { foreach (var c in children) { c.WaitForExit(); c.Dispose(); } }
            var board = Tuner.Report(options, setup);
            if (quiet) Console.WriteLine(board.ToJsonString(Global.JsonOut));
            else Print(board, setup);
            var counts = board["counts"]!.AsObject();
            int done = counts["complete"]!.GetValue<int>() + counts["pruned"]!.GetValue<int>();
            if (done == 0 && counts["failed"]!.GetValue<int>() > 0)
            {
                string first = board["trials"]!.AsArray().Select(t => t?["error"]?.GetValue<string>()).FirstOrDefault(e => e != null) ?? "unknown";
                throw new InvalidOperationException($"every trial failed; the first error: {first}");
            }
            return 0;
        });
        return cmd;
    }

    /// <summary>Starts this program again as one more worker of the same study (same arguments, --workers 1 --worker).</summary>
    static Process StartWorker()
    {
        var argv = Environment.GetCommandLineArgs();
        var args = new List<string>();
        for (int i = 1; i < argv.Length; i++)
        {
            if (argv[i] == "--workers") { i++; continue; }
            if (argv[i].StartsWith("--workers=", StringComparison.Ordinal)) continue;
            args.Add(argv[i]);
        }
        args.AddRange(["--workers", "1", "--worker"]);
        string exe = Environment.ProcessPath!;
        var psi = new ProcessStartInfo(exe) { UseShellExecute = false };
        // Under `dotnet TaskLM.Cli.dll`, argv[0] is the dll; the apphost needs no such argument.
        if (Path.GetFileNameWithoutExtension(exe) == "dotnet") psi.ArgumentList.Add(argv[0]);
        foreach (var a in args) psi.ArgumentList.Add(a);
        return Process.Start(psi) ?? throw new InvalidOperationException("could not start a worker process");
    }

    static void Print(JsonObject board, StudySetup setup)
    {
        // A plain aligned table (not Spectre's): a redirected console is 80 columns to Spectre and would wrap every cell.
        var keys = setup.Space.Params.Select(x => x.Key).ToList();
        var shortNames = keys.Select(k => k[(k.LastIndexOf('.') + 1)..]).ToList();
        var heads = new List<string> { "trial", "state", setup.Metric };
        heads.AddRange(shortNames.Distinct().Count() == shortNames.Count ? shortNames : keys);
        heads.AddRange(["evals", "steps", "wall s"]);
        var rows = new List<List<string>>();
        foreach (var t in board["trials"]!.AsArray())
        {
            var cells = new List<string> { t!["trial"]!.ToString(), t["state"]!.ToString(), t["value"] is { } v ? v.GetValue<double>().ToString("G5") : "-" };
            foreach (var k in keys)
                cells.Add(t["params"]?[k] is { } pv ? (pv.GetValueKind() == System.Text.Json.JsonValueKind.Number ? pv.GetValue<double>().ToString("G4") : pv.ToString()) : "-");
            cells.AddRange([t["evaluations"]?.ToString() ?? "0", t["steps"]?.ToString() ?? "-", t["wall_s"]?.ToString() ?? "-"]);
            rows.Add(cells);
        }
        var width = heads.Select((h, i) => Math.Max(h.Length, rows.Count == 0 ? 0 : rows.Max(r => r[i].Length))).ToList();
        string Line(IReadOnlyList<string> cells) => string.Join("  ", cells.Select((c, i) => c.PadRight(width[i]))).TrimEnd();
        Console.WriteLine(Line(heads));
        Console.WriteLine(Line(width.Select(w => new string('-', w)).ToList()));
        foreach (var r in rows) Console.WriteLine(Line(r));
        var c = board["counts"]!;
        Console.WriteLine($"{c["complete"]} complete, {c["pruned"]} pruned, {c["failed"]} failed; trials' wall time {board["trial_wall_s"]} s, study span {board["span_s"]} s");
        if (board["best"] is JsonObject b)
            Console.WriteLine($"best: trial {b["trial"]}, {setup.Metric} {b["value"]!.GetValue<double>():G6}; model {b["model"]}; recipe {b["recipe"]}");
        Console.WriteLine($"leaderboard: {Path.Combine(setup.StudyDir, "leaderboard.json")}; plots: {Path.Combine(setup.StudyDir, "plots")}");
    }
}
