// `tasklm data wordnet-chat`: question → answer chat conversations from WordNet's glosses, with train/validation/test splits.
using System.CommandLine;
using System.Text.Json.Nodes;
using TaskLM.Data.Corpus;

namespace TaskLM.Cli.Commands;

/// <summary>Builds <c>tasklm data wordnet-chat</c>; the work is in <see cref="WordNetChat"/>.</summary>
public static class DataWordNetChatCommand
{
    public static Command Create()
    {
        var outDir = new Option<string>("--out") { Description = "Folder for train.jsonl, validation.jsonl, test.jsonl", DefaultValueFactory = _ => "runs/wordnet-chat" };
        var train = new Option<int>("--train") { Description = "Training conversations", DefaultValueFactory = _ => 4000 }.AtLeast(1);
        var validation = new Option<int>("--validation") { Description = "Validation conversations (held-out synsets)", DefaultValueFactory = _ => 200 }.AtLeast(1);
        var test = new Option<int>("--test") { Description = "Test conversations (held-out synsets)", DefaultValueFactory = _ => 200 }.AtLeast(1);
        var parts = new Option<string>("--pos") { Description = "Parts of speech, comma-separated (noun, verb, adj, adv)", DefaultValueFactory = _ => "noun,verb,adj,adv" };
        var seed = new Option<int>("--seed") { Description = "Seed of the sample", DefaultValueFactory = _ => 42 };
        var dataDir = new Option<string?>("--data-dir") { Description = "Folder holding catalog.json (default: data/ found from here or the program)" };
        var json = Global.JsonOption();
        var cmd = new Command("wordnet-chat", "Chat data from WordNet 3.0: \"What does the word X mean?\" → \"X (noun): definition.\" (messages JSONL; validation/test from synsets held out of pre-training)");
        foreach (var o in new Option[] { outDir, train, validation, test, parts, seed, dataDir, json }) cmd.Options.Add(o);
        cmd.SetAction(p =>
        {
            var pos = p.GetValue(parts)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            var bad = pos.FirstOrDefault(x => x is not ("noun" or "verb" or "adj" or "adv"));
            if (bad != null) { Console.Error.WriteLine($"error: --pos: unknown part of speech '{bad}' (noun, verb, adj, adv)"); return 2; }
            var cat = CorpusCatalog.Load(p.GetValue(dataDir));
            string o = p.GetValue(outDir)!;
            var counts = WordNetChat.Write(cat, o, p.GetValue(train), p.GetValue(validation), p.GetValue(test), p.GetValue(seed), pos);
            if (p.GetValue(json))
            {
                var arr = new JsonArray(counts.Select(c => (JsonNode?)new JsonObject { ["file"] = c.File, ["rows"] = c.Rows }).ToArray());
                Console.WriteLine(new JsonObject { ["out"] = o, ["files"] = arr }.ToJsonString(Global.JsonOut));
                return 0;
            }
            foreach (var (file, rows) in counts) Console.WriteLine($"{Path.Combine(o, file)}: {rows:N0} conversations");
            return 0;
        });
        return cmd;
    }
}
