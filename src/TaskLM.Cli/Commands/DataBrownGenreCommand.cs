// `tasklm data brown-genre`: the shipped Brown corpus as genre classification (~150-word passages, split by document).
using System.CommandLine;
using System.Text.Json.Nodes;
using Spectre.Console;
using TaskLM.Data.Corpus;

namespace TaskLM.Cli.Commands;

/// <summary>Builds <c>tasklm data brown-genre</c>; the work is in <see cref="BrownGenre"/>.</summary>
public static class DataBrownGenreCommand
{
    public static Command Create()
    {
        var outDir = Global.OutOption("Folder for train/validation/test.jsonl ({text, label, doc})", legacy: "--out-dir");
        var words = new Option<int>("--words") { Description = "Words per passage (whole sentences, at least this many)", DefaultValueFactory = _ => 150 };
        var seed = Global.SeedOption("the document shuffle (80/10/10 per genre, at least one held-out document each)");
        var dataDir = Global.DataDirOption();
        var json = Global.JsonOption();
        var cmd = new Command("brown-genre", "Brown corpus → genre classification JSONL (15 genres, ~150-word passages), split by document");
        outDir.AddTo(cmd);
        foreach (var o in new Option[] { words, seed, dataDir, json }) cmd.Options.Add(o);
        cmd.SetAction(p =>
        {
            var cat = CorpusCatalog.Load(p.GetValue(dataDir));
            var splits = BrownGenre.Write(cat.PathOf(cat.Get("brown")), outDir.Read(p)!, p.GetValue(words), p.GetValue(seed) ?? 42);
            if (p.GetValue(json))
            {
                var arr = new JsonArray(splits.Select(s =>
                {
                    var per = new JsonObject();
                    foreach (var (g, n) in s.PerGenre) per[g] = n;
                    return (JsonNode?)new JsonObject { ["name"] = s.Name, ["documents"] = s.Documents, ["passages"] = s.Passages, ["per_genre"] = per };
                }).ToArray());
                Console.WriteLine(new JsonObject { ["out_dir"] = outDir.Read(p), ["splits"] = arr }.ToJsonString(Global.JsonOut));
                return 0;
            }
            var table = new Table().AddColumns("split", "documents", "passages", "genres");
            foreach (var s in splits) table.AddRow(s.Name, s.Documents.ToString("N0"), s.Passages.ToString("N0"), s.PerGenre.Count.ToString());
            AnsiConsole.Write(table);
            return 0;
        });
        return cmd;
    }
}
