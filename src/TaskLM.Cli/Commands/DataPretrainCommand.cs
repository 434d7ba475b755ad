// `tasklm data pretrain-corpus`: the base models' pre-training text and the held-out tasks, from the shipped corpora.
using System.CommandLine;
using System.Text.Json.Nodes;
using Spectre.Console;
using TaskLM.Data.Corpus;

namespace TaskLM.Cli.Commands;

/// <summary>Builds <c>tasklm data pretrain-corpus</c>; the work is in <see cref="PretrainCorpus"/>.</summary>
public static class DataPretrainCommand
{
    public static Command Create()
    {
        var outDir = new Option<string>("--out") { Description = "Folder for pretrain/, tasks/ and heldout.json", DefaultValueFactory = _ => "runs/corpus" };
        var seed = new Option<int>("--seed") { Description = "Seed of the Brown document split (the one data brown-pos uses)", DefaultValueFactory = _ => 42 };
        var dataDir = new Option<string?>("--data-dir") { Description = "Folder holding catalog.json (default: data/ found from here or the program)" };
        var json = Global.JsonOption();
        var cmd = new Command("pretrain-corpus", "Pre-training text (Brown, SOTU, Moby-Dick, KJV, WordNet; test documents held out) and the held-out tasks brown-genre, sotu-party, kjv-division, wordnet-supersense");
        foreach (var o in new Option[] { outDir, seed, dataDir, json }) cmd.Options.Add(o);
        cmd.SetAction(p =>
        {
            var cat = CorpusCatalog.Load(p.GetValue(dataDir));
            var counts = PretrainCorpus.Write(cat, p.GetValue(outDir)!, p.GetValue(seed));
            if (p.GetValue(json))
            {
                var arr = new JsonArray(counts.Select(c => (JsonNode?)new JsonObject { ["file"] = c.File, ["rows"] = c.Rows, ["words"] = c.Words }).ToArray());
                Console.WriteLine(new JsonObject { ["out"] = p.GetValue(outDir), ["files"] = arr }.ToJsonString(Global.JsonOut));
                return 0;
            }
            var table = new Table().AddColumns("file", "rows", "words");
            foreach (var c in counts) table.AddRow(c.File, c.Rows.ToString("N0"), c.Words.ToString("N0"));
            AnsiConsole.Write(table);
            Console.WriteLine($"held-out documents: {Path.Combine(p.GetValue(outDir)!, "heldout.json")}");
            return 0;
        });
        return cmd;
    }
}
