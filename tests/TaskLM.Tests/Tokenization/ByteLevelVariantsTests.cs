// The tokenizer.json pipeline steps of the byte-level BPE variants Llama 3, Qwen2 and SmolLM2 ship: the pieces each
// pre-tokenizer cuts (as its regex or Digits step defines them), ignore_merges, NFC, added tokens kept whole, the
// TemplateProcessing BOS, and refusals naming the step. (llama.cpp's own tokenizer agrees on probes: GgufLlamaCppTests.)
using System.Text.Json.Nodes;
using TaskLM.Data.Tokenization;

namespace TaskLM.Tests.Tokenization;

public sealed class ByteLevelVariantsTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("tasklm-bpe-variants").FullName;

    public void Dispose() { if (Directory.Exists(_dir)) Directory.Delete(_dir, recursive: true); }

    /// <summary>GPT-2's vocabulary and merges with the given pipeline steps (a tokenizer.json as HF writes them).</summary>
    ByteLevelBpeTokenizer Variant(Action<JsonObject> edit)
    {
        string folder = Path.Combine(_dir, Guid.NewGuid().ToString("N"));
        ByteLevelBpeTokenizer.Gpt2().Save(folder);
        var root = JsonNode.Parse(File.ReadAllText(Path.Combine(folder, "tokenizer.json")))!.AsObject();
        edit(root);
        File.WriteAllText(Path.Combine(folder, "tokenizer.json"), root.ToJsonString());
        return (ByteLevelBpeTokenizer)TokenizerLoader.Load(folder);
    }

    static JsonObject Split(string pattern) => new()
    {
        ["type"] = "Sequence",
        ["pretokenizers"] = new JsonArray(
            new JsonObject { ["type"] = "Split", ["pattern"] = new JsonObject { ["Regex"] = pattern }, ["behavior"] = "Isolated", ["invert"] = false },
            new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["trim_offsets"] = true, ["use_regex"] = false }),
    };

    static readonly ByteLevelBpeTokenizer Gpt2 = ByteLevelBpeTokenizer.Gpt2();

    /// <summary>What the tokenizer gives for <paramref name="text"/> must be GPT-2's ids of each expected piece, concatenated.</summary>
    static void Pieces(ByteLevelBpeTokenizer t, string text, params string[] pieces)
    {
        Assert.Equal(string.Concat(pieces), text);
        Assert.Equal(pieces.SelectMany(p => Gpt2.Encode(p)).ToArray(), t.Encode(text).ToArray());
        Assert.Equal(text, t.Decode(t.Encode(text)));
    }

    [Fact]
    public void Llama3_splits_digits_in_threes_contractions_in_any_case_and_keeps_a_leading_symbol_on_words()
    {
        var t = Variant(r => r["pre_tokenizer"] = Split(ByteLevel.Llama3Pattern));
        Assert.Equal(ByteLevelPreTokenizer.Llama3, t.PreTokenizer);
        Pieces(t, "1234567", "123", "456", "7");
        Pieces(t, "I DON'T", "I", " DON", "'T");                 // (?i:'t): GPT-2's pattern only knows lower case
        Pieces(t, "x=$price", "x", "=$", "price");               // [^\r\n\p{L}\p{N}]?\p{L}+: one leading non-letter
        Pieces(t, "a.\n\nb", "a", ".\n\n", "b");                 // punctuation takes its trailing newlines
        Pieces(t, "end  \n  x", "end", "  \n", " ", " x");       // \s*[\r\n]+, then \s+(?!\S)
        Assert.NotEqual(Gpt2.Encode("1234567"), t.Encode("1234567"));
    }

    [Fact]
    public void Qwen2_splits_every_digit_and_normalizes_to_nfc()
    {
        var t = Variant(r => { r["pre_tokenizer"] = Split(ByteLevel.Qwen2Pattern); r["normalizer"] = new JsonObject { ["type"] = "NFC" }; });
        Assert.Equal(ByteLevelPreTokenizer.Qwen2, t.PreTokenizer);
        Pieces(t, "in 2024", "in", " ", "2", "0", "2", "4");
        Assert.Equal(t.Encode("caf\u00e9"), t.Encode("cafe\u0301"));        // composed and decomposed é encode alike
        Assert.NotEqual(Gpt2.Encode("caf\u00e9"), Gpt2.Encode("cafe\u0301"));
    }

    [Fact]
    public void SmolLM_cuts_each_digit_out_before_gpt2s_pattern()
    {
        var t = Variant(r => r["pre_tokenizer"] = new JsonObject
        {
            ["type"] = "Sequence",
            ["pretokenizers"] = new JsonArray(
                new JsonObject { ["type"] = "Digits", ["individual_digits"] = true },
                new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["trim_offsets"] = true, ["use_regex"] = true }),
        });
        Assert.Equal(ByteLevelPreTokenizer.SmolLM, t.PreTokenizer);
        Pieces(t, "year 1999 ok", "year", " ", "1", "9", "9", "9", " ok");
        Pieces(t, "abc12de", "abc", "1", "2", "de");
    }

    [Fact]
    public void Ignore_merges_emits_a_piece_that_is_itself_a_token_whole()
    {
        // A vocabulary where the merges reach "ab" but never "abc", though "abc" is a token.
        var vocab = new Dictionary<string, int> { ["a"] = 0, ["b"] = 1, ["c"] = 2, ["ab"] = 3, ["abc"] = 4 };
        string folder = Path.Combine(_dir, "im");
        Directory.CreateDirectory(folder);
        JsonObject Json(bool ignore) => new()
        {
            ["version"] = "1.0", ["added_tokens"] = new JsonArray(), ["normalizer"] = null,
            ["pre_tokenizer"] = Split(ByteLevel.Llama3Pattern), ["post_processor"] = null, ["decoder"] = new JsonObject { ["type"] = "ByteLevel" },
            ["model"] = new JsonObject
            {
                ["type"] = "BPE", ["ignore_merges"] = ignore, ["vocab"] = JsonNode.Parse(System.Text.Json.JsonSerializer.Serialize(vocab)),
                ["merges"] = new JsonArray(new JsonArray("a", "b")),
            },
        };
        File.WriteAllText(Path.Combine(folder, "tokenizer.json"), Json(false).ToJsonString());
        Assert.Equal([3, 2], TokenizerLoader.Load(folder).Encode("abc"));
        File.WriteAllText(Path.Combine(folder, "tokenizer.json"), Json(true).ToJsonString());
        Assert.Equal([4], TokenizerLoader.Load(folder).Encode("abc"));
        Assert.Equal([3, 3], TokenizerLoader.Load(folder).Encode("abab"));   // not a token: merged as usual
    }

    [Fact]
    public void Added_tokens_stay_whole_and_the_template_puts_bos_first()
    {
        var t = Variant(r =>
        {
            r["pre_tokenizer"] = Split(ByteLevel.Llama3Pattern);
            var added = r["added_tokens"]!.AsArray();
            added.Add(new JsonObject { ["id"] = 50257, ["content"] = "<|begin_of_text|>", ["special"] = true, ["single_word"] = false, ["lstrip"] = false, ["rstrip"] = false, ["normalized"] = false });
            added.Add(new JsonObject { ["id"] = 50258, ["content"] = "<tool>", ["special"] = false, ["single_word"] = false, ["lstrip"] = false, ["rstrip"] = false, ["normalized"] = false });
            JsonObject Special(int type) => new() { ["SpecialToken"] = new JsonObject { ["id"] = "<|begin_of_text|>", ["type_id"] = type } };
            JsonObject Seq(string id, int type) => new() { ["Sequence"] = new JsonObject { ["id"] = id, ["type_id"] = type } };
            r["post_processor"] = new JsonObject
            {
                ["type"] = "Sequence",
                ["processors"] = new JsonArray(
                    new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = true, ["trim_offsets"] = false, ["use_regex"] = true },
                    new JsonObject
                    {
                        ["type"] = "TemplateProcessing",
                        ["single"] = new JsonArray(Special(0), Seq("A", 0)),
                        ["pair"] = new JsonArray(Special(0), Seq("A", 0), Special(1), Seq("B", 1)),
                        ["special_tokens"] = new JsonObject { ["<|begin_of_text|>"] = new JsonObject { ["id"] = "<|begin_of_text|>", ["ids"] = new JsonArray(50257), ["tokens"] = new JsonArray("<|begin_of_text|>") } },
                    }),
            };
        });
        Assert.True(t.AddsBos);
        Assert.Equal([50257, .. Gpt2.Encode("hi"), 50258, .. Gpt2.Encode("x")], t.Encode("<|begin_of_text|>hi<tool>x").ToArray());
        Assert.Contains(50257, t.SpecialTokenIds);
        Assert.DoesNotContain(50258, t.SpecialTokenIds);
        Assert.True(t.IsAddedToken(50258));
        Assert.Equal("hi<tool>x", t.Decode(t.Encode("<|begin_of_text|>hi<tool>x"), skipSpecialTokens: true));
        var single = t.EncodeForModel("hello");
        Assert.Equal([50257, .. Gpt2.Encode("hello")], single.InputIds);
        var pair = t.EncodeForModel("a", "b");
        Assert.Equal([50257, .. Gpt2.Encode("a"), 50257, .. Gpt2.Encode("b")], pair.InputIds);
        Assert.False(Gpt2.AddsBos);
    }

    [Fact]
    public void Pipeline_steps_it_does_not_implement_are_refused_naming_the_file()
    {
        var ex = Assert.Throws<NotSupportedException>(() => Variant(r => r["pre_tokenizer"] = new JsonObject { ["type"] = "Metaspace", ["replacement"] = "▁" }));
        Assert.Contains("tokenizer.json", ex.Message);
        // No ByteLevel pre-tokenizer makes it SentencePiece-style BPE, which refuses the byte-level decoder this file keeps.
        Assert.Contains("decoder 'ByteLevel'", ex.Message);
        var seq = Assert.Throws<NotSupportedException>(() => Variant(r => r["pre_tokenizer"] = new JsonObject
        {
            ["type"] = "Sequence",
            ["pretokenizers"] = new JsonArray(new JsonObject { ["type"] = "WhitespaceSplit" }, new JsonObject { ["type"] = "ByteLevel", ["use_regex"] = true }),
        }));
        Assert.Contains("WhitespaceSplit", seq.Message);
        var ex2 = Assert.Throws<NotSupportedException>(() => Variant(r => r["normalizer"] = new JsonObject { ["type"] = "NFKC" }));
        Assert.Contains("NFKC", ex2.Message);
    }
}
