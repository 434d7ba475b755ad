// `tasklm data brown-pos`: the shipped Brown corpus as POS-tagging splits (sentence rows, universal or full tagset).
using System.CommandLine;
using System.Text.Json.Nodes;
using Spectre.Console;
using TaskLM.Data.Corpus;

namespace TaskLM.Cli.Commands;

/// <summary>Builds <c>tasklm data brown-pos</c>; the work is in <see cref="BrownPos"/> and <see cref="BrownTagset"/>.</summary>
public static class DataBrownCommand
{
    public static Command Create()
    {
        var outDir = Global.OutOption("Folder for train/validation/test.jsonl and train.txt", legacy: "--out-dir");
        var tagset = new Option<string>("--tagset") { Description = "universal (12 tags of Petrov et al. 2012) or full (Brown's own tags)", DefaultValueFactory = _ => "universal" };
        var seed = Global.SeedOption("the document shuffle (90/5/5 per genre)");
        var dataDir = Global.DataDirOption();
        var json = Global.JsonOption();
        var cmd = new Command("brown-pos", "Brown corpus → sentence-level POS tagging JSONL (tokens, tags), split by document");
        outDir.AddTo(cmd);
        foreach (var o in new Option[] { tagset, seed, dataDir, json }) cmd.Options.Add(o);
        cmd.SetAction(p =>
        {
            var cat = CorpusCatalog.Load(p.GetValue(dataDir));
            var corpus = cat.PathOf(cat.Get("brown"));
            var splits = BrownPos.Write(corpus, outDir.Read(p)!, p.GetValue(tagset)!, p.GetValue(seed) ?? 42);
            if (p.GetValue(json))
            {
                var arr = new JsonArray(splits.Select(s => (JsonNode?)new JsonObject
                { ["name"] = s.Name, ["documents"] = s.Documents, ["sentences"] = s.Sentences, ["tokens"] = s.Tokens }).ToArray());
                Console.WriteLine(new JsonObject { ["out_dir"] = outDir.Read(p), ["tagset"] = p.GetValue(tagset), ["splits"] = arr }.ToJsonString(Global.JsonOut));
                return 0;
            }
            var table = new Table().AddColumns("split", "documents", "sentences", "tokens");
            foreach (var s in splits) table.AddRow(s.Name, s.Documents.ToString("N0"), s.Sentences.ToString("N0"), s.Tokens.ToString("N0"));
            AnsiConsole.Write(table);
            return 0;
        });
        return cmd;
    }
}
