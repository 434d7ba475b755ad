// `tasklm train <recipe.yaml> [key=value ...] [--resume [checkpoint]]`: runs a training recipe into its run folder.
using System.CommandLine;
using System.Text.Json;
using Spectre.Console;
using TaskLM.Native;
using TaskLM.Training;

namespace TaskLM.Cli.Commands;

public static class TrainCommand
{
    public static Command Create()
    {
        var recipeArg = new Argument<string>("recipe") { Description = "Recipe YAML (task, model, data, strategy, training, output_dir)" };
        var overridesArg = new Argument<string[]>("overrides") { Description = "key=value overrides with dotted paths, e.g. training.lr=3e-4", Arity = ArgumentArity.ZeroOrMore };
        var resume = new Option<string?>("--resume") { Description = "Resume from the run folder's latest checkpoint, or from the given checkpoint folder", Arity = ArgumentArity.ZeroOrOne };
        var json = Global.JsonOption();
        var cmd = new Command("train", "Train a model as a recipe says; writes metrics.jsonl, checkpoints/ and best/ into output_dir");
        cmd.Arguments.Add(recipeArg);
        cmd.Arguments.Add(overridesArg);
        cmd.Options.Add(resume);
        cmd.Options.Add(json);
        cmd.SetAction(p =>
        {
            var recipe = RecipeLoader.Load(p.GetValue(recipeArg)!, p.GetValue(overridesArg) ?? []);
            var device = Global.StartTorch(p);
            if (p.GetValue(Global.Device) == "auto" && recipe.Training.Device != "auto") device = TorchBackend.ResolveDevice(recipe.Training.Device);
            string? resumeFrom = p.GetResult(resume) is null ? null : p.GetValue(resume) ?? "latest";
            bool quiet = p.GetValue(json);
            var progress = new ProgressLine(quiet);
            var result = TrainingRun.Run(recipe, new RunOptions
            {
                Resume = resumeFrom, Device = device, Callbacks = [progress],
                Say = s => { if (!quiet) AnsiConsole.MarkupLine(Markup.Escape(s)); },
            });
            if (quiet)
                Console.WriteLine(JsonSerializer.Serialize(new
                {
                    run_dir = result.RunDir, steps = result.State.Step, skipped_steps = result.State.SkippedSteps,
                    best_metric = result.State.BestMetric, best_step = result.State.BestStep, stop_reason = result.StopReason,
                    eval = result.LastEval, trainable_parameters = result.TrainableParameters,
                }, Global.JsonOut));
            else
            {
                if (result.StopReason != null) AnsiConsole.MarkupLine($"[yellow]{Markup.Escape(result.StopReason)}[/]");
                if (result.LastEval != null)
                    AnsiConsole.MarkupLine("eval: " + Markup.Escape(string.Join("  ", result.LastEval.Select(kv => $"{kv.Key}={kv.Value:G5}"))));
                AnsiConsole.MarkupLine($"[green]done[/]: {result.State.Step} steps → {Markup.Escape(result.RunDir)}");
            }
            return 0;
        });
        return cmd;
    }

    /// <summary>One status line per logged step: step/total, loss, lr, tokens/s and ETA (stderr, so --json stays clean).</summary>
    sealed class ProgressLine(bool quiet) : ITrainerCallback
    {
        readonly System.Diagnostics.Stopwatch _sw = new();
        int _startStep;

        public void OnTrainBegin(Trainer t) { _sw.Restart(); _startStep = t.State.Step; }

        public void OnStep(Trainer t, StepLog log)
        {
            if (quiet) return;
            int total = t.Options.TotalSteps, every = Math.Max(1, total / 50);
            if (log.Step % every != 0 && log.Step != total) return;
            double perStep = _sw.Elapsed.TotalSeconds / Math.Max(1, log.Step - _startStep);
            var eta = TimeSpan.FromSeconds(perStep * (total - log.Step));
            Console.Error.WriteLine($"step {log.Step}/{total}  epoch {log.Epoch:F2}  loss {log.Loss:F4}  lr {log.Lr:E2}  grad_norm {log.GradNorm:F3}  {log.TokensPerSecond:F0} tok/s  ETA {eta:hh\\:mm\\:ss}");
        }

        public void OnEvaluate(Trainer t, IReadOnlyDictionary<string, double> metrics)
        {
            if (!quiet) Console.Error.WriteLine($"eval @ step {t.State.Step}: " + string.Join("  ", metrics.Select(kv => $"{kv.Key}={kv.Value:G5}")));
        }

        public void OnSave(Trainer t, string dir) { }
    }
}
