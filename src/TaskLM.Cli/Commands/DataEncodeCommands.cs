// `tasklm data encode`: a corpus to a binary token file for pre-training, encoded on all cores.
using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using Spectre.Console;
using TaskLM.Data.Tokenization;

namespace TaskLM.Cli.Commands;

public static class DataEncodeCommands
{
    public static IEnumerable<Command> Create()
    {
        var tokenizer = new Option<string>("--tokenizer") { Description = "A tokenizer folder or \"gpt2\"", DefaultValueFactory = _ => "gpt2" };
        var cmd = new Command("encode", "Encode a corpus into a token file (uint16/uint32 ids, document index), on all cores");
        var input = new Global.InputFiles(cmd, ".txt, .jsonl, .csv, .tsv, .parquet files (or .gz of them) or folders of them");
        var output = Global.OutOption("Token file to write (e.g. data/train.tok)", legacy: "--output").AddTo(cmd);
        var split = new Option<string>("--doc-split") { Description = "How .txt files become documents: file, line or blank (blank-line-separated)", DefaultValueFactory = _ => "file" };
        var column = Global.TextColumnOption();
        var noEos = new Option<bool>("--no-eos") { Description = "Do not append the end-of-sequence id after each document" };
        var encoding = new Option<string?>("--encoding") { Description = "Text encoding of .txt/.csv input (default utf-8; bytes that do not decode are an error)" };
        var allowEmpty = new Option<bool>("--allow-empty") { Description = "Write an empty token file when the input holds no documents (default: an error)" };
        var json = Global.JsonOption();
        foreach (var o in new Option[] { tokenizer, split, column, noEos, encoding, allowEmpty, json }) cmd.Options.Add(o);
        cmd.SetAction(p =>
        {
            var docSplit = p.GetValue(split)!.ToLowerInvariant() switch
            {
                "file" => DocumentSplit.File, "line" => DocumentSplit.Line, "blank" => DocumentSplit.Blank,
                var s => throw new ArgumentException($"--doc-split '{s}': expected file, line or blank"),
            };
            var tok = TokenizerLoader.Load(p.GetValue(tokenizer)!);
            var files = TextSources.Files(input.Read(p));
            long totalChars = files.Sum(f => new FileInfo(f).Length);
            int threads = p.GetValue(Global.Threads) is int t && t > 0 ? t : Environment.ProcessorCount;
            var sw = Stopwatch.StartNew();
            (long Tokens, int Documents, long Chars) r = default;
            void Run(IProgress<long>? progress) =>
                r = TokenFileEncoder.Encode(tok, TextSources.Documents(files, docSplit, p.GetValue(column) ?? "text", p.GetValue(encoding), p.GetValue(allowEmpty)), output.Read(p)!,
                    !p.GetValue(noEos), threads, progress);
            if (p.GetValue(json)) Run(null);
            else
                AnsiConsole.Progress().Start(ctx =>
                {
                    var task = ctx.AddTask("encoding", maxValue: Math.Max(1, totalChars));
                    Run(new Progress<long>(c => task.Value = Math.Min(c, totalChars)));
                    task.Value = task.MaxValue;
                });
            double secs = sw.Elapsed.TotalSeconds;
            var summary = new
            {
                output = output.Read(p), tokens = r.Tokens, documents = r.Documents, chars = r.Chars,
                dtype = TokenFileFormat.DtypeBytes(tok.VocabSize) == 2 ? "uint16" : "uint32", vocab_size = tok.VocabSize,
                threads, seconds = Math.Round(secs, 3),
            };
            if (p.GetValue(json)) Console.WriteLine(JsonSerializer.Serialize(summary, Global.JsonOut));
            else AnsiConsole.MarkupLine($"wrote [bold]{Markup.Escape(summary.output!)}[/]: {r.Tokens:N0} tokens ({summary.dtype}), {r.Documents:N0} documents, {secs:F1} s on {threads} threads");
            return 0;
        });
        yield return cmd;
    }
}
