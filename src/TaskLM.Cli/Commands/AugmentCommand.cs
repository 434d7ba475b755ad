// `tasklm augment <data> --out <file> --method eda|lm [--per-example K]`: synthetic labelled rows that pass data clean's checks.
using System.CommandLine;
using TaskLM.Improve;

namespace TaskLM.Cli.Commands;

public static class AugmentCommand
{
    public static Command Create()
    {
        var input = new Argument<string>("data") { Description = "Labelled training file (JSONL, CSV, TSV, Parquet; .gz too)" };
        var outPath = Global.OutOption("Output JSONL: the real rows, then the new ones (marked \"augmented\": method)");
        var method = new Option<string>("--method") { Description = "eda (random swap, deletion, insertion of in-vocabulary words) | lm (label-conditioned generation, classifier-filtered)", Required = true };
        var perExample = new Option<int>("--per-example") { Description = "New rows per real row", DefaultValueFactory = _ => 2 };
        var seed = new Option<int>("--seed") { Description = "Seed of the edits / sampling and of the generator's fine-tuning", DefaultValueFactory = _ => 42 };
        var text = new Option<string>("--text-column") { Description = "Text field", DefaultValueFactory = _ => "text" };
        var label = new Option<string>("--label-column") { Description = "Label field", DefaultValueFactory = _ => "label" };
        var against = new Option<string[]>("--against") { Description = "Files no new row may (nearly) duplicate, e.g. the validation and test splits (repeatable); the input is always checked", AllowMultipleArgumentsPerToken = false };
        var onlyNew = new Option<bool>("--only-new") { Description = "Write only the new rows" };
        var alpha = new Option<double>("--alpha") { Description = "eda: fraction of a text's words each edit changes", DefaultValueFactory = _ => 0.1 };
        var generator = new Option<string>("--generator") { Description = "lm: causal LM folder to fine-tune on the data", DefaultValueFactory = _ => "models/tasklm-gpt2-mini" };
        var epochs = new Option<int>("--generator-epochs") { Description = "lm: epochs of the generator's fine-tuning", DefaultValueFactory = _ => 3 };
        var maxNew = new Option<int>("--max-new-tokens") { Description = "lm: tokens generated per row", DefaultValueFactory = _ => 100 };
        var temperature = new Option<double>("--temperature") { Description = "lm: sampling temperature", DefaultValueFactory = _ => 0.9 };
        var topK = new Option<int>("--top-k") { Description = "lm: sample among the k most likely tokens", DefaultValueFactory = _ => 50 };
        var minConf = new Option<double>("--min-confidence") { Description = "lm: keep a generated row when the classifier trained on the real rows gives its label at least this probability", DefaultValueFactory = _ => 0.6 };
        var threshold = new Option<double>("--threshold") { Description = "Near-duplicate threshold (MinHash Jaccard, as data clean)", DefaultValueFactory = _ => 0.8 };
        var json = Global.JsonOption();
        var cmd = new Command("augment", "Write synthetic labelled training rows (EDA edits or a fine-tuned label-conditioned LM) that pass data clean's duplicate checks");
        cmd.Arguments.Add(input);
        foreach (var o in new Option[] { outPath, method, perExample, seed, text, label, against, onlyNew, alpha, generator, epochs, maxNew, temperature, topK, minConf, threshold, json }) cmd.Options.Add(o);
        cmd.SetAction(p =>
        {
            bool quiet = p.GetValue(json);
            string m = p.GetValue(method)!;
            var device = m == "lm" ? Global.StartTorch(p) : TorchSharp.torch.CPU;
            var report = Augment.Run(new AugmentOptions
            {
                Input = p.GetValue(input)!, Out = outPath.Read(p)!, Method = m, PerExample = p.GetValue(perExample), Seed = p.GetValue(seed),
                TextColumn = p.GetValue(text)!, LabelColumn = p.GetValue(label)!, Against = p.GetValue(against) ?? [], OnlyNew = p.GetValue(onlyNew),
                Alpha = p.GetValue(alpha), Generator = p.GetValue(generator)!, GeneratorEpochs = p.GetValue(epochs), MaxNewTokens = p.GetValue(maxNew),
                Temperature = p.GetValue(temperature), TopK = p.GetValue(topK), MinConfidence = p.GetValue(minConf), NearThreshold = p.GetValue(threshold),
                Device = device, Say = line => { if (quiet) Console.Error.WriteLine(line); else Console.WriteLine(line); },
            });
            if (quiet) { Console.WriteLine(report.ToJsonString(Global.JsonOut)); return 0; }
            Console.WriteLine($"{report["input_rows"]} real rows → {report["candidates"]} candidates → {report["new_rows"]} new rows ({report["new_label_counts"]}) in {report["seconds"]} s");
            Console.WriteLine($"removed by data clean's checks: {report["removed_by_cleaning"]!.ToJsonString()}" + (report["below_confidence"] is { } b ? $"; below confidence: {b}" : ""));
            Console.WriteLine($"wrote {report["rows_written"]} rows to {report["out"]}; report: {Augment.ReportPath(report["out"]!.GetValue<string>())}");
            return 0;
        });
        return cmd;
    }
}
