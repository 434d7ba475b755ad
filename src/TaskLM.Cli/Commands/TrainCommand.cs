// `tasklm train <recipe.yaml> [key=value ...] [--resume [checkpoint]]`: runs a training recipe into its run folder.
using System.CommandLine;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Spectre.Console;
using TaskLM.Evaluation;
using TaskLM.Logging;
using TaskLM.Distributed;
using TaskLM.Native;
using TaskLM.Recipes;
using TaskLM.Training;

namespace TaskLM.Cli.Commands;

public static class TrainCommand
{
    public static Command Create()
    {
        var recipeArg = new Argument<string>("recipe") { Description = "Recipe YAML (task, model, data, strategy, training, output_dir)" };
        var overridesArg = Global.OverridesArgument("key=value overrides with dotted paths, e.g. training.lr=3e-4");
        var resume = new Option<string?>("--resume") { Description = "Resume from the run folder's latest checkpoint, or from the given checkpoint folder", Arity = ArgumentArity.ZeroOrOne };
        var overwrite = new Option<bool>("--overwrite") { Description = "Replace the run already in output_dir (its checkpoints, best/ and metrics) instead of refusing" };
        var json = Global.JsonOption();
        var nproc = new Option<int>("--nproc") { Description = "Data-parallel ranks on this machine: runs `mpiexec -n N` on this command (MPICH; see docs/distributed.md)", DefaultValueFactory = _ => 1 };
        var cmd = new Command("train", "Train a model as a recipe says; writes metrics.jsonl, checkpoints/ and best/ into output_dir");
        cmd.Arguments.Add(recipeArg);
        cmd.Arguments.Add(overridesArg);
        cmd.Options.Add(resume);
        cmd.Options.Add(overwrite);
        cmd.Options.Add(json);
        cmd.Options.Add(nproc);
        cmd.SetAction(p =>
        {
            int n = p.GetValue(nproc);
            if (n < 1) throw new ArgumentException($"--nproc {n}: must be at least 1");
            if (n > 1 && Mpi.LaunchedWorldSize() == 1) return MpiLauncher.Run(n, p.GetValue(recipeArg)!, p.GetValue(overridesArg) ?? []);
            var dp = DataParallel.FromEnvironment();
            if (dp == null) return Train(p, recipeArg, overridesArg, resume, overwrite, json, null);
            // One rank of a data-parallel job: an error here ends every rank now (MPI_Abort) instead of leaving
            // the others waiting in an all-reduce; the message names the rank.
            try
            {
                MpiLauncher.WritePidFile(dp);
                int rc = Train(p, recipeArg, overridesArg, resume, overwrite, json, dp);
                Mpi.Barrier();
                Mpi.Shutdown();
                return rc;
            }
            catch (Exception e)
            {
                var inner = e is System.Reflection.TargetInvocationException { InnerException: { } ie } ? ie : e;
                Console.Error.WriteLine($"error: rank {dp.Rank} of {dp.WorldSize}: {inner.Message.Split('\n')[0].Trim()}");
                Console.Error.Flush();
                Mpi.Abort(1);
                return 1;
            }
        });
        return cmd;
    }

    static int Train(ParseResult p, Argument<string> recipeArg, Argument<string[]> overridesArg, Option<string?> resume, Option<bool> overwrite, Option<bool> json, DataParallel? dp)
    {
        {
            var recipe = RecipeLoader.Load(RecipeCatalog.Resolve(p.GetValue(recipeArg)!), p.GetValue(overridesArg) ?? []);   // a file, or a shipped recipe by name
            string? resumeFrom = p.GetResult(resume) is null ? null : p.GetValue(resume) ?? "latest";
            // Before train.log is opened in the folder: a run still writing there, or a foreign finished one, is refused untouched.
            using var folderLock = dp is { IsMain: false } ? null : RunFolderLock.Acquire(recipe.OutputDir);
            TrainingRun.CheckRunFolder(recipe, resumeFrom, p.GetValue(overwrite));
            Global.StartTorch(p);
            var device = TorchBackend.ChooseDevice(Global.AskedDevice(p), recipe.Training.Device);
            bool quiet = p.GetValue(json) || dp is { IsMain: false };   // ranks > 0 stay silent
            // Every line people see is also appended to the run folder's train.log (Microsoft.Extensions.Logging).
            using var logs = RunLogging.Create(dp is { IsMain: false } ? null : Path.Combine(recipe.OutputDir, "train.log"));
            var log = logs.CreateLogger("tasklm.train");
            log.LogInformation("tasklm train {Recipe} {Overrides} (resume: {Resume}, device: {Device})",
                p.GetValue(recipeArg), string.Join(' ', p.GetValue(overridesArg) ?? []), resumeFrom ?? "no", device);
            var progress = new ProgressLine(quiet, log);
            var clock = System.Diagnostics.Stopwatch.StartNew();
            // SIGINT/SIGTERM: the first finishes the step and writes a checkpoint; a second ends the process at once.
            using var stop = new CancellationTokenSource();
            int signal = 0;
            void OnSignal(System.Runtime.InteropServices.PosixSignalContext ctx)
            {
                if (Interlocked.CompareExchange(ref signal, ctx.Signal == System.Runtime.InteropServices.PosixSignal.SIGTERM ? 143 : 130, 0) != 0) return;   // second: default action
                ctx.Cancel = true;
                Console.Error.WriteLine($"{(signal == 143 ? "SIGTERM" : "Ctrl-C")}: finishing the current step and writing a checkpoint (again to abort now)");
                stop.Cancel();
            }
            using var sigint = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGINT, OnSignal);
            using var sigterm = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGTERM, OnSignal);
            var result = TrainingRun.Run(recipe, new RunOptions
            {
                Resume = resumeFrom, Overwrite = p.GetValue(overwrite), Device = device, Callbacks = [progress], Parallel = dp, Interrupt = stop.Token,
                Say = s => { log.LogInformation("{Line}", s); if (!quiet) AnsiConsole.MarkupLine(Markup.Escape(s)); },
            });
            log.LogInformation("done: {Steps} steps, stop reason: {Reason}", result.State.Step, result.StopReason ?? "none");
            if (result.Interrupted != null)
            {
                if (dp is { IsMain: false }) return signal == 0 ? 130 : signal;
                var args = new List<string> { "tasklm", "train", p.GetValue(recipeArg)! };
                args.AddRange(p.GetValue(overridesArg) ?? []);
                args.Add("--resume");
                string line = $"interrupted at step {result.State.Step}: checkpoint {result.Interrupted}; continue with: {string.Join(' ', args.Select(Quote))}";
                log.LogInformation("{Line}", line);
                Console.Error.WriteLine(line);
                return signal == 0 ? 130 : signal;
            }
            if (dp is { IsMain: false }) return 0;
            var summary = RunSummary.Create(result.RunDir, clock.Elapsed, result.State.Step, result.State.BestMetric != null ? result.State.BestStep : null,
                result.State.BestMetric, recipe.Data.Validation != null ? recipe.Training.EarlyStopping?.Metric ?? "loss" : null, result.StopReason,
                recipe.Task, recipe.Data.Test, recipe.Data.Validation);
            foreach (var line in summary.Lines()) log.LogInformation("{Line}", line);
            if (quiet)
                Console.WriteLine(JsonSerializer.Serialize(new
                {
                    run_dir = result.RunDir, steps = result.State.Step, skipped_steps = result.State.SkippedSteps,
                    best_metric = result.State.BestMetric, best_step = result.State.BestStep, stop_reason = result.StopReason,
                    eval = result.LastEval, trainable_parameters = result.TrainableParameters,
                    summary = summary.ToJson(),
                }, Global.JsonOut));
            else
            {
                if (result.StopReason != null) AnsiConsole.MarkupLine($"[yellow]{Markup.Escape(result.StopReason)}[/]");
                if (result.LastEval != null)
                    AnsiConsole.MarkupLine("eval: " + Markup.Escape(string.Join("  ", result.LastEval.Select(kv => $"{kv.Key}={kv.Value:G5}"))));
                AnsiConsole.MarkupLine($"[green]done[/]: {result.State.Step} steps → {Markup.Escape(result.RunDir)}");
                PrintSummary(summary);
            }
            return 0;
        }
    }

    /// <summary>The closing summary: the lines, the test metrics beside the baseline, and the next commands.</summary>
    internal static void PrintSummary(RunSummary summary, bool baselineTable = true)
    {
        Global.WriteRule("[bold]run summary[/]");
        foreach (var line in summary.Lines()) AnsiConsole.MarkupLine(Markup.Escape(line));
        if (baselineTable && summary.Test?.Baseline is { } b)
        {
            var (header, rows) = BaselineComparison.SideBySide(summary.Test.Metrics, b);
            var t = new Table().Title($"test: model vs baseline ({Markup.Escape(b.Method)})");
            foreach (var h in header) t.AddColumn(Markup.Escape(h));
            // The headline rows; a many-class task's per-class rows are said to be elsewhere rather than dropped silently.
            const int shown = 8;
            foreach (var r in rows.Take(shown)) t.AddRow(r.Select(Markup.Escape).ToArray());
            if (rows.Count > shown) t.Caption($"{rows.Count - shown} more rows (per-class F1) in eval.json and report.md");
            AnsiConsole.Write(t);
        }
        AnsiConsole.MarkupLine("next:");
        foreach (var n in summary.Next) AnsiConsole.MarkupLine("  " + Markup.Escape(n));
    }

    static string Quote(string a) => a.Length > 0 && a.All(ch => char.IsLetterOrDigit(ch) || "-_./=:,+".Contains(ch)) ? a : "'" + a.Replace("'", "'\\''") + "'";

    /// <summary>One status line per logged step: step/total, loss, lr, tokens/s and ETA (stderr, so --json stays clean).</summary>
    sealed class ProgressLine(bool quiet, ILogger log) : ITrainerCallback
    {
        readonly System.Diagnostics.Stopwatch _sw = new();
        int _startStep;

        public void OnTrainBegin(Trainer t) { _sw.Restart(); _startStep = t.State.Step; }

        public void OnStep(Trainer t, StepLog step)
        {
            int total = t.Options.TotalSteps, every = Math.Max(1, total / 50);
            if (step.Step % every != 0 && step.Step != total) return;
            double perStep = _sw.Elapsed.TotalSeconds / Math.Max(1, step.Step - _startStep);
            var eta = TimeSpan.FromSeconds(perStep * (total - step.Step));
            string line = $"step {step.Step}/{total}  epoch {step.Epoch:F2}  loss {step.Loss:F4}  lr {step.Lr:E2}  grad_norm {step.GradNorm:F3}  {step.TokensPerSecond:F0} tok/s  ETA {eta:hh\\:mm\\:ss}";
            log.LogInformation("{Line}", line);
            if (!quiet) Console.Error.WriteLine(line);
        }

        public void OnEvaluate(Trainer t, IReadOnlyDictionary<string, double> metrics)
        {
            string line = $"eval @ step {t.State.Step}: " + string.Join("  ", metrics.Select(kv => $"{kv.Key}={kv.Value:G5}"));
            log.LogInformation("{Line}", line);
            if (!quiet) Console.Error.WriteLine(line);
        }

        public void OnSave(Trainer t, string dir) { }
    }
}
