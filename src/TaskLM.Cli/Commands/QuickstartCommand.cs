// `tasklm quickstart [--task spam|genre|brown-pos|sotu]`: one task end to end, narrated stage by stage.
using System.CommandLine;
using System.Text.Json.Nodes;
using Spectre.Console;
using TaskLM.Evaluation;
using TaskLM.Training;

namespace TaskLM.Cli.Commands;

public static class QuickstartCommand
{
    public static Command Create()
    {
        var task = new Option<string>("--task") { Description = "spam (default): a spam filter from raw e-mails; genre: Brown genres; brown-pos: POS tagging; sotu: speech generation", DefaultValueFactory = _ => "spam" };
        var outDir = new Option<string?>("--out") { Description = "Run folder (default runs/quickstart-<task>)" };
        var model = new Global.ModelOption("Base model (default minilm-l6 for spam and genre, models/tasklm-bert-mini for brown-pos, models/tasklm-gpt2-mini for sotu)", required: false);
        var method = new Option<string?>("--method") { Description = "spam and genre: features (default; a frozen encoder + logistic-regression head) or fine-tune (every weight trained; slower)" };
        var tokenizer = new Option<string?>("--tokenizer") { Description = "Tokenizer folder, when the model folder has none" };
        var dataDir = new Option<string>("--data-dir") { Description = "Folder of the shipped corpora", DefaultValueFactory = _ => "data" };
        var maxSteps = new Option<int>("--max-steps") { Description = "Optimizer steps (overrides --epochs)", DefaultValueFactory = _ => -1 };
        var epochs = new Option<int?>("--epochs") { Description = "Passes over the training split (default: spam and genre 3, brown-pos and sotu 1)" };
        var maxTrain = new Option<int>("--max-train") { Description = "Use at most this many training examples (0 = all)", DefaultValueFactory = _ => 0 };
        var maxEval = new Option<int>("--max-eval") { Description = "Use at most this many validation and test examples (0 = all)", DefaultValueFactory = _ => 0 };
        var maxLength = new Option<int>("--max-length") { Description = "Tokens per example", DefaultValueFactory = _ => 128 };
        var lr = new Option<double?>("--lr") { Description = "Peak learning rate (default: spam and genre 5e-4, brown-pos 1e-3, sotu 1e-4)" };
        var batch = new Option<int>("--batch-size") { Description = "Examples per step", DefaultValueFactory = _ => 32 };
        var evalEvery = new Option<int>("--eval-every") { Description = "Validation every N steps (early stopping, best/)", DefaultValueFactory = _ => 40 };
        var json = Global.JsonOption();
        var cmd = new Command("quickstart", "The whole journey on a shipped corpus: import raw e-mails, clean, split, fine-tune TaskLM's pre-trained encoder, evaluate beside a baseline, report, try it");
        foreach (var o in new Option[] { task, outDir, model, method, tokenizer, dataDir, maxSteps, epochs, maxTrain, maxEval, maxLength, lr, batch, evalEvery, json }) cmd.Options.Add(o);
        cmd.SetAction(p =>
        {
            var device = Global.StartTorch(p);
            bool quiet = p.GetValue(json);
            int total = 7;
            void Line(string s) { if (!quiet) AnsiConsole.MarkupLine(Markup.Escape(s)); }
            if (!quiet) AnsiConsole.MarkupLine($"[bold]TaskLM quickstart[/]: [green]{Markup.Escape(p.GetValue(task)!)}[/] end to end on {device}");
            var result = Quickstart.Run(new QuickstartOptions
            {
                Task = p.GetValue(task)!, OutDir = p.GetValue(outDir), Model = p.GetValue(model), Method = p.GetValue(method), Tokenizer = p.GetValue(tokenizer), DataDir = p.GetValue(dataDir)!,
                MaxSteps = p.GetValue(maxSteps), Epochs = p.GetValue(epochs), MaxTrain = p.GetValue(maxTrain), MaxEval = p.GetValue(maxEval),
                MaxLength = p.GetValue(maxLength), Lr = p.GetValue(lr), BatchSize = p.GetValue(batch), EvalEvery = p.GetValue(evalEvery), Device = device,
                Stage = (n, title, text) =>
                {
                    if (quiet) return;
                    AnsiConsole.WriteLine();
                    Global.WriteRule($"[bold]{n}/{total} {Markup.Escape(title)}[/]");
                    AnsiConsole.MarkupLine($"[grey]{Markup.Escape(text)}[/]");
                },
                Say = Line,
                Evaluated = e => { if (!quiet) PrintEval(e); },
                Tried = tries => { if (!quiet) PrintTries(tries); },
                Callbacks = quiet ? [] : [new Progress()],
            });
            if (quiet)
            {
                var o = new JsonObject
                {
                    ["task"] = result.Task, ["run_dir"] = result.RunDir, ["wall_seconds"] = Math.Round(result.Wall.TotalSeconds, 1),
                    ["eval"] = result.Eval.ToJson(), ["summary"] = result.Summary.ToJson(),
                    ["tries"] = new JsonArray(result.Tries.Select(t => (JsonNode?)new JsonObject
                    {
                        ["input"] = t.Input, ["output"] = t.Output, ["probability"] = t.Probability, ["baseline"] = t.Baseline, ["gold"] = t.Gold,
                    }).ToArray()),
                };
                Console.WriteLine(o.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }));
                return 0;
            }
            AnsiConsole.WriteLine();
            TrainCommand.PrintSummary(result.Summary, baselineTable: false);
            AnsiConsole.MarkupLine($"[green]quickstart done[/] in {result.Wall.TotalMinutes:0.0} min → open [bold]{Markup.Escape(result.Summary.ReportPath ?? result.RunDir)}[/]");
            return 0;
        });
        return cmd;
    }

    static void PrintTries(IReadOnlyList<QuickstartTry> tries)
    {
        bool gold = tries.Any(y => y.Gold != null), baseline = tries.Any(y => y.Baseline != null);
        var t = new Table().AddColumn("input").AddColumn(tries.Any(y => y.Probability != null) ? "model" : "continuation");
        if (baseline) t.AddColumn("baseline");
        if (gold) t.AddColumn("gold");
        foreach (var x in tries)
        {
            string input = x.Input.Length > 110 ? x.Input[..110].Replace('\n', ' ') + "…" : x.Input.Replace('\n', ' ');
            var row = new List<string> { input, x.Output + (x.Probability is double pr ? $" ({pr:P0})" : "") };
            if (baseline) row.Add(x.Baseline ?? "–");
            if (gold) row.Add(x.Gold ?? "");
            t.AddRow(row.Select(Markup.Escape).ToArray());
        }
        AnsiConsole.Write(t);
    }

    // The test metrics beside the baseline's (when there is one) and the confusion matrix.
    static void PrintEval(EvalResult e)
    {
        if (e.Baseline is { } b)
        {
            var (header, rows) = BaselineComparison.SideBySide(e.Metrics, b);
            var bt = new Table().Title($"test (n = {e.N}): model vs baseline");
            foreach (var h in header) bt.AddColumn(Markup.Escape(h));
            foreach (var r in rows.Take(8)) bt.AddRow(r.Select(Markup.Escape).ToArray());
            AnsiConsole.Write(bt);
            if (b.Ships is { } ships)
                AnsiConsole.MarkupLine(Markup.Escape($"The run ships the {ships} (model weight {b.Ensemble?.Weight:0.00}, chosen on validation): "
                    + string.Join("  ", e.Metrics.Where(kv => kv.Key is "accuracy" or "macro_f1" || kv.Key.StartsWith("f1_", StringComparison.Ordinal)).Select(kv => $"{kv.Key} {EvalResult.Format(kv.Value)}"))
                    + "; predict, serve and evaluate run it."));
        }
        else
        {
            var mt = new Table().Title($"test (n = {e.N})").AddColumn("metric").AddColumn("value");
            foreach (var (k, v) in e.Metrics.Take(8)) mt.AddRow(Markup.Escape(k), EvalResult.Format(v));
            AnsiConsole.Write(mt);
        }
        if (e.ConfusionLabels is { Count: > 6 } many) AnsiConsole.MarkupLine($"[grey]confusion matrix of {many.Count} classes: see the report[/]");
        else if (e.ConfusionLabels is { } labels && e.ConfusionMatrix is { } m)
        {
            var ct = new Table().Title("confusion matrix (rows: gold, columns: predicted)").AddColumn("");
            foreach (var l in labels) ct.AddColumn(new TableColumn(Markup.Escape(l)).RightAligned());
            for (int r = 0; r < labels.Count; r++)
                ct.AddRow([Markup.Escape(labels[r]), .. Enumerable.Range(0, labels.Count).Select(c => r == c ? $"[green]{m[r, c]}[/]" : m[r, c] == 0 ? "[grey]0[/]" : $"[red]{m[r, c]}[/]")]);
            AnsiConsole.Write(ct);
        }
    }

    /// <summary>A status line every 5% of the steps: step/total, loss, tokens/s, ETA (stderr).</summary>
    sealed class Progress : ITrainerCallback
    {
        readonly System.Diagnostics.Stopwatch _sw = new();
        public void OnTrainBegin(Trainer t) => _sw.Restart();
        public void OnStep(Trainer t, StepLog s)
        {
            int total = t.Options.TotalSteps, every = Math.Max(1, total / 20);
            if (s.Step % every != 0 && s.Step != total) return;
            var eta = TimeSpan.FromSeconds(_sw.Elapsed.TotalSeconds / Math.Max(1, s.Step) * (total - s.Step));
            Console.Error.WriteLine($"  step {s.Step}/{total}  loss {s.Loss:F4}  {s.TokensPerSecond:F0} tok/s  ETA {eta:mm\\:ss}");
        }
        public void OnEvaluate(Trainer t, IReadOnlyDictionary<string, double> m) =>
            Console.Error.WriteLine($"  validation @ step {t.State.Step}: " + string.Join("  ", m.Where(kv => !kv.Key.StartsWith("macro_p") && !kv.Key.StartsWith("macro_r")).Take(6).Select(kv => $"{kv.Key} {kv.Value:0.0000}")));
    }
}
