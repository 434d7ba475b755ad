// `tasklm tokenizer train`: train a byte-level BPE or WordPiece vocabulary and write Hugging Face files.
using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using Spectre.Console;
using TaskLM.Data.Corpus;
using TaskLM.Data.Tokenization;

namespace TaskLM.Cli.Commands;

public static class TokenizerCommand
{
    public static Command Create()
    {
        var kind = new Option<string>("--kind") { Description = "bpe (GPT-2 byte-level) or wordpiece (BERT)", DefaultValueFactory = _ => "bpe" };
        var train = new Command("train", "Train a vocabulary on a corpus and save it as Hugging Face tokenizer files");
        var input = new Global.InputFiles(train, ".txt, .jsonl, .csv, .tsv, .parquet files (or .gz of them) or folders (each non-empty line of a .txt is one text)");
        var output = Global.OutOption("Folder for the tokenizer files", legacy: "--output").AddTo(train);
        var vocabSize = new Option<int>("--vocab-size") { Description = "vocab_size, special tokens and alphabet included", DefaultValueFactory = _ => 8192 };
        var minFreq = new Option<int>("--min-frequency") { Description = "min_frequency: stop when the best pair is rarer", DefaultValueFactory = _ => 2 };
        var specials = new Option<string?>("--special-tokens") { Description = "Comma-separated; default <|endoftext|> (bpe) or [PAD],[UNK],[CLS],[SEP],[MASK] (wordpiece)" };
        var cased = new Option<bool>("--cased") { Description = "WordPiece: keep case and accents (do_lower_case=false)" };
        var column = Global.TextColumnOption();
        var encoding = new Option<string?>("--encoding") { Description = "Text encoding of .txt/.csv input (default utf-8; bytes that do not decode are an error)" };
        var json = Global.JsonOption();
        foreach (var o in new Option[] { kind, vocabSize, minFreq, specials, cased, column, encoding, json }) train.Options.Add(o);
        train.SetAction(p =>
        {
            var k = p.GetValue(kind)!.ToLowerInvariant();
            if (k is not ("bpe" or "wordpiece")) throw new ArgumentException($"--kind '{k}': expected bpe or wordpiece");
            var sp = p.GetValue(specials)?.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                ?? (k == "bpe" ? ["<|endoftext|>"] : ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]);
            var options = new TokenizerTrainerOptions { VocabSize = p.GetValue(vocabSize), MinFrequency = p.GetValue(minFreq), SpecialTokens = sp };
            var texts = TextSources.Documents(input.Read(p), DocumentSplit.Line, p.GetValue(column) ?? "text", p.GetValue(encoding));
            var sw = Stopwatch.StartNew();
            ITokenizer? tok = null;
            void Run() => tok = k == "bpe"
                ? TokenizerTrainer.TrainByteLevelBpe(texts, options)
                : TokenizerTrainer.TrainWordPiece(texts, options, new BertNormalizerOptions(Lowercase: !p.GetValue(cased)));
            if (p.GetValue(json)) Run(); else AnsiConsole.Status().Start($"training {k} ...", _ => Run());
            PartialFiles.WriteFolder(output.Read(p)!, tok!.Save); // all files or none
            var summary = new { output = output.Read(p), kind = k, vocab_size = tok.VocabSize, special_tokens = sp, seconds = Math.Round(sw.Elapsed.TotalSeconds, 3) };
            if (p.GetValue(json)) Console.WriteLine(JsonSerializer.Serialize(summary, Global.JsonOut));
            else AnsiConsole.MarkupLine($"wrote [bold]{Markup.Escape(summary.output!)}[/]: {k}, {tok.VocabSize:N0} tokens, {summary.seconds:F1} s");
            return 0;
        });
        var cmd = new Command("tokenizer", "Tokenizer vocabularies: train");
        cmd.Subcommands.Add(train);
        DataInterrupt.Guard(cmd);
        return cmd;
    }
}
