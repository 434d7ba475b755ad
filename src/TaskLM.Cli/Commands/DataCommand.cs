// `tasklm data ...`: the data stage's verbs, gathered from the files that build them.
using System.CommandLine;

namespace TaskLM.Cli.Commands;

public static class DataCommand
{
    public static Command Create()
    {
        var cmd = new Command("data", "Corpora: list, import, clean, split, scrape, encode");
        foreach (var c in DataIngestCommands.Create()) cmd.Subcommands.Add(c);  // list, import
        foreach (var c in DataPrepCommands.Create()) cmd.Subcommands.Add(c);    // clean, split, scrape
        foreach (var c in DataEncodeCommands.Create()) cmd.Subcommands.Add(c);  // encode
        cmd.Subcommands.Add(DataBrownCommand.Create());                          // brown-pos
        cmd.Subcommands.Add(DataBrownGenreCommand.Create());                     // brown-genre
        cmd.Subcommands.Add(DataPretrainCommand.Create());                       // pretrain-corpus
        cmd.Subcommands.Add(DataWordNetChatCommand.Create());                    // wordnet-chat
        DataInterrupt.Guard(cmd);                                                // Ctrl-C leaves no partial output
        return cmd;
    }
}
