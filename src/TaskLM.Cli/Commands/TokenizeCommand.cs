// `tasklm tokenize`: encode one text (or pair) with a tokenizer folder or "gpt2" and show ids and tokens.
using System.CommandLine;
using System.Text.Json;
using Spectre.Console;
using TaskLM.Data.Tokenization;

namespace TaskLM.Cli.Commands;

public static class TokenizeCommand
{
    public static Command Create()
    {
        var tokenizer = new Option<string>("--tokenizer") { Description = "A tokenizer folder (tokenizer.json, vocab.json+merges.txt or vocab.txt) or \"gpt2\"", Required = true };
        var text = new Option<string>("--text") { Description = "The text to encode", Required = true };
        var pair = new Option<string?>("--pair") { Description = "Second text of a pair (BERT: [CLS] A [SEP] B [SEP])" };
        var noSpecial = new Option<bool>("--no-special-tokens") { Description = "Do not add [CLS]/[SEP] (HF's add_special_tokens=False)" };
        var maxLength = new Option<int?>("--max-length") { Description = "Truncate (longest_first) to this many ids, special tokens included" }.AtLeast(1);
        var full = new Option<bool>("--full") { Description = "With --json, also print token_type_ids, attention_mask and offsets" };
        var json = Global.JsonOption();
        var cmd = new Command("tokenize", "Encode a text (or a pair) and print its ids and tokens, as Hugging Face's tokenizer(text, pair) does");
        foreach (var o in new Option[] { tokenizer, text, pair, noSpecial, maxLength, full, json }) cmd.Options.Add(o);
        cmd.SetAction(p =>
        {
            var tok = TokenizerLoader.Load(p.GetValue(tokenizer)!);
            var enc = tok.EncodeForModel(p.GetValue(text)!, p.GetValue(pair),
                new EncodeOptions { AddSpecialTokens = !p.GetValue(noSpecial), MaxLength = p.GetValue(maxLength) });
            var tokens = enc.InputIds.Select(id => tok.IdToToken(id) ?? "").ToArray();
            if (p.GetValue(json))
            {
                object result = p.GetValue(full)
                    ? new { ids = enc.InputIds, tokens, token_type_ids = enc.TokenTypeIds, attention_mask = enc.AttentionMask, offsets = enc.Offsets.Select(o => new[] { o.Start, o.End }) }
                    : new { ids = enc.InputIds, tokens };
                // Tokens as they are ("Ġthe", "日"), not \u-escaped.
                Console.WriteLine(JsonSerializer.Serialize(result, new JsonSerializerOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }));
                return 0;
            }
            var table = new Table().AddColumn("#").AddColumn("id").AddColumn("token").AddColumn("type");
            for (int i = 0; i < enc.Length; i++)
                table.AddRow(i.ToString(), enc.InputIds[i].ToString(), Markup.Escape(tokens[i]), enc.TokenTypeIds[i].ToString());
            AnsiConsole.Write(table);
            AnsiConsole.MarkupLine($"{enc.Length} ids ({tok.Kind}, vocabulary {tok.VocabSize})");
            return 0;
        });
        return cmd;
    }
}
