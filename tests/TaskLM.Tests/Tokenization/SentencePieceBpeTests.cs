// SentencePiece-style BPE from tokenizer.json (Llama 2, Mistral): probes taken from HF tokenizers' own Rust tests
// (cited per test; their inputs and expected outputs are facts about HF's semantics), then a hand-built tokenizer.json of
// Llama 2's layout whose expectations are derived by hand from those semantics, and refusals naming the step.
using System.Text.Json.Nodes;
using TaskLM.Data.Tokenization;

namespace TaskLM.Tests.Tokenization;

public sealed class SentencePieceBpeTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("tasklm-spbpe").FullName;

    public void Dispose() { if (Directory.Exists(_dir)) Directory.Delete(_dir, recursive: true); }

    /// <summary>Writes a tokenizer.json (model BPE with <paramref name="vocab"/> in id order, the given sections) and loads it.</summary>
    SentencePieceBpeTokenizer Load(IReadOnlyList<string> vocab, IEnumerable<string>? merges = null, Action<JsonObject>? model = null,
        JsonNode? normalizer = null, JsonNode? preTokenizer = null, JsonNode? decoder = null, JsonNode? postProcessor = null,
        IEnumerable<string>? specials = null)
    {
        var m = new JsonObject
        {
            ["type"] = "BPE", ["dropout"] = null, ["unk_token"] = null, ["continuing_subword_prefix"] = null, ["end_of_word_suffix"] = null,
            ["fuse_unk"] = false, ["byte_fallback"] = false, ["ignore_merges"] = false,
            ["vocab"] = new JsonObject(vocab.Select((t, i) => KeyValuePair.Create(t, (JsonNode?)i))),
            ["merges"] = new JsonArray((merges ?? []).Select(s => (JsonNode)JsonValue.Create(s)!).ToArray()),
        };
        model?.Invoke(m);
        var root = new JsonObject
        {
            ["version"] = "1.0", ["truncation"] = null, ["padding"] = null,
            ["added_tokens"] = new JsonArray((specials ?? []).Select(s => (JsonNode)new JsonObject
            {
                ["id"] = vocab.ToList().IndexOf(s), ["content"] = s, ["single_word"] = false, ["lstrip"] = false, ["rstrip"] = false,
                ["normalized"] = false, ["special"] = true,
            }).ToArray()),
            ["normalizer"] = normalizer, ["pre_tokenizer"] = preTokenizer, ["post_processor"] = postProcessor, ["decoder"] = decoder, ["model"] = m,
        };
        string folder = Path.Combine(_dir, Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(folder);
        File.WriteAllText(Path.Combine(folder, "tokenizer.json"), root.ToJsonString());
        return Assert.IsType<SentencePieceBpeTokenizer>(TokenizerLoader.Load(folder));
    }

    static (int, int, int)[] Spans(SentencePieceBpeTokenizer t, string text) => t.EncodeWithOffsets(text).Select(s => (s.Id, s.Start, s.End)).ToArray();
    static string[] Tokens(SentencePieceBpeTokenizer t, string text) => t.Encode(text).Select(i => t.IdToToken(i)!).ToArray();
    static int[] Ids(SentencePieceBpeTokenizer t, params string[] tokens) => tokens.Select(s => t.TokenToId(s) ?? throw new ArgumentException(s)).ToArray();

    static JsonObject Metaspace(string scheme, bool split) => new() { ["type"] = "Metaspace", ["replacement"] = "▁", ["prepend_scheme"] = scheme, ["split"] = split };
    static JsonObject Replace(string pattern, string content) => new() { ["type"] = "Replace", ["pattern"] = new JsonObject { ["String"] = pattern }, ["content"] = content };
    static JsonObject Seq(string key, params JsonNode[] steps) => new() { ["type"] = "Sequence", [key] = new JsonArray(steps) };

    // ---- HF probes: tokenizers/src/models/bpe/model.rs ----

    [Fact]
    public void Byte_fallback_uses_byte_tokens_and_unk_only_when_a_byte_token_is_missing()
    {
        // test_bpe_byte_fallback: vocab {<unk>:0, <0x61>:1}, unk_token <unk>, byte_fallback: "c" → <unk> (0,1), "a" → <0x61> (0,1).
        var t = Load(["<unk>", "<0x61>"], model: m => { m["unk_token"] = "<unk>"; m["byte_fallback"] = true; });
        Assert.Equal([(0, 0, 1)], Spans(t, "c"));
        Assert.Equal([(1, 0, 1)], Spans(t, "a"));
        // test_bpe_byte_fallback_newline: vocab {<unk>:0, <0x0A>:1}: "\n" → <0x0A>.
        var nl = Load(["<unk>", "<0x0A>"], model: m => { m["unk_token"] = "<unk>"; m["byte_fallback"] = true; });
        Assert.Equal([(1, 0, 1)], Spans(nl, "\n"));
    }

    [Fact]
    public void Unknown_characters_are_fused_only_with_fuse_unk()
    {
        // test_unk_not_fused / test_unk_get_fused: vocab {<unk>:0, a:1, b:2}, no merges.
        var apart = Load(["<unk>", "a", "b"], model: m => m["unk_token"] = "<unk>");
        Assert.Equal([(0, 0, 1), (0, 1, 2)], Spans(apart, "cc"));
        Assert.Equal([(1, 0, 1), (0, 1, 2), (0, 2, 3), (2, 3, 4)], Spans(apart, "accb"));
        var fused = Load(["<unk>", "a", "b"], model: m => { m["unk_token"] = "<unk>"; m["fuse_unk"] = true; });
        Assert.Equal([(0, 0, 2)], Spans(fused, "cc"));
        Assert.Equal([(1, 0, 1), (0, 1, 3), (2, 3, 4)], Spans(fused, "accb"));
    }

    [Fact]
    public void Merges_apply_by_rank()
    {
        // test_tokenize_with_and_without_dropout (dropout 0): 'unrelated' merges into the one token "unrelated" (15).
        string[] vocab = ["u", "n", "r", "e", "l", "a", "t", "d", "re", "at", "ed", "un", "ated", "rel", "related", "unrelated"];
        var t = Load(vocab, ["r e", "a t", "e d", "u n", "at ed", "re l", "rel ated", "un related"]);
        Assert.Equal([(15, 0, 9)], Spans(t, "unrelated"));
    }

    // ---- HF probes: the decoders (tokenizers/src/decoders/*.rs, normalizers/replace.rs, pre_tokenizers/metaspace.rs) ----

    [Fact]
    public void ByteFallback_decoder_joins_byte_runs_as_utf8_or_gives_one_replacement_per_byte()
    {
        // decoders/byte_fallback.rs, test decode. Decode joins the decoded pieces, as HF's Decoder::decode does.
        var t = Load(["Hey", "friend!", "<0x61>", "<0xE5>", "<0x8f>", "<0xab>", "a"], decoder: new JsonObject { ["type"] = "ByteFallback" });
        string D(params string[] tokens) => t.Decode(Ids(t, tokens));
        Assert.Equal("Heyfriend!", D("Hey", "friend!"));
        Assert.Equal("a", D("<0x61>"));
        Assert.Equal("\ufffd", D("<0xE5>"));
        Assert.Equal("\ufffd\ufffd", D("<0xE5>", "<0x8f>"));
        Assert.Equal("叫", D("<0xE5>", "<0x8f>", "<0xab>"));
        Assert.Equal("叫a", D("<0xE5>", "<0x8f>", "<0xab>", "a"));
        Assert.Equal("\ufffd\ufffda", D("<0xE5>", "<0x8f>", "a"));
    }

    [Fact]
    public void Strip_Fuse_Replace_and_Metaspace_decoders_follow_hf()
    {
        string[] vocab = ["Hey", " friend!", "HHH", "hello", "_hello", "▁Hey", "▁friend!"];
        string D(JsonNode decoder, params string[] tokens) { var t = Load(vocab, decoder: decoder); return t.Decode(Ids(t, tokens)); }
        // decoders/strip.rs: Strip('H', 1, 0) on [Hey, " friend!", HHH] → [ey, " friend!", HH]; Strip('y', 0, 1) on [Hey, " friend!"] → [He, " friend!"].
        Assert.Equal("ey friend!HH", D(new JsonObject { ["type"] = "Strip", ["content"] = "H", ["start"] = 1, ["stop"] = 0 }, "Hey", " friend!", "HHH"));
        Assert.Equal("He friend!", D(new JsonObject { ["type"] = "Strip", ["content"] = "y", ["start"] = 0, ["stop"] = 1 }, "Hey", " friend!"));
        // decoders/fuse.rs: [Hey, " friend!"] → "Hey friend!"; a Strip after Fuse sees the one fused string.
        Assert.Equal("ey friend!HHH", D(Seq("decoders", new JsonObject { ["type"] = "Fuse" },
            new JsonObject { ["type"] = "Strip", ["content"] = "H", ["start"] = 1, ["stop"] = 0 }), "Hey", " friend!", "HHH"));
        // normalizers/replace.rs test_replace_decode: Replace("_", " ") on [hello, _hello] → [hello, " hello"].
        Assert.Equal("hello hello", D(Replace("_", " "), "hello", "_hello"));
        // pre_tokenizers/metaspace.rs test decode: always → [Hey, " friend!"]; never → [" Hey", " friend!"].
        Assert.Equal("Hey friend!", D(Metaspace("always", true), "▁Hey", "▁friend!"));
        Assert.Equal(" Hey friend!", D(Metaspace("never", true), "▁Hey", "▁friend!"));
        // No decoder: HF joins the tokens with spaces.
        var plain = Load(vocab);
        Assert.Equal("Hey HHH", plain.Decode(Ids(plain, "Hey", "HHH")));
    }

    // ---- HF probes: the Metaspace pre-tokenizer and the Prepend normalizer ----
    // With ignore_merges a piece that is in the vocabulary is one token, so the tokens show the pieces HF cuts.

    [Fact]
    public void Metaspace_always_with_split_cuts_before_every_replacement()
    {
        // pre_tokenizers/metaspace.rs tests basic and multiple_spaces (original offsets; ASCII, so bytes are chars).
        var t = Load(["▁Hey", "▁friend!", "▁"], model: m => m["ignore_merges"] = true, preTokenizer: Metaspace("always", true));
        Assert.Equal([(0, 0, 3), (1, 3, 11)], Spans(t, "Hey friend!"));
        Assert.Equal([(0, 0, 3), (2, 3, 4), (2, 4, 5), (1, 5, 13)], Spans(t, "Hey   friend!"));
    }

    [Fact]
    public void Metaspace_first_prepends_only_at_the_start_of_the_text_and_not_after_an_added_token()
    {
        // pre_tokenizers/metaspace.rs test non_legacy_meta_space (prepend_scheme first, split false, <s> cut out first).
        string[] vocab = ["<s>", "▁Hey▁my▁friend▁", "how▁are▁you", "▁Hey▁", "how", "how▁", "are▁", "▁you"];
        var t = Load(vocab, model: m => m["ignore_merges"] = true, preTokenizer: Metaspace("first", false), specials: ["<s>"]);
        Assert.Equal(["▁Hey▁my▁friend▁", "<s>", "how▁are▁you"], Tokens(t, "Hey my friend <s>how▁are you"));
        Assert.Equal(["▁Hey▁", "<s>", "how"], Tokens(t, " Hey <s>how"));
        Assert.Equal(["▁Hey▁", "<s>", "how▁", "<s>", "are▁", "<s>", "▁you"], Tokens(t, " Hey <s>how <s>are <s> you"));
        // By hand: " Hey " is (0,5) (its leading space became the ▁, nothing prepended), <s> (5,8), "how" (8,11).
        Assert.Equal([(3, 0, 5), (0, 5, 8), (4, 8, 11)], Spans(t, " Hey <s>how"));
    }

    [Fact]
    public void Prepend_normalizer_aligns_the_new_character_with_the_first_one()
    {
        // normalizers/prepend.rs test_prepend: "Hello" → "▁Hello", the ▁ aligned with 'H', so the token spans (0,5).
        var t = Load(["▁Hello"], model: m => m["ignore_merges"] = true, normalizer: new JsonObject { ["type"] = "Prepend", ["prepend"] = "▁" });
        Assert.Equal([(0, 0, 5)], Spans(t, "Hello"));
        Assert.Empty(t.Encode(""));   // Prepend leaves an empty text empty
    }

    // ---- A hand-built tokenizer.json of Llama 2's layout ----

    /// <summary>Llama 2's layout: &lt;unk&gt; &lt;s&gt; &lt;/s&gt; at 0-2, the 256 byte tokens at 3-258 (&lt;0xNN&gt; = 3 + NN), then pieces
    /// and merges (a few, enough for "Hello world" and "caf"); Llama 2's normalizer, post-processor and decoder.</summary>
    SentencePieceBpeTokenizer Llama2(bool metaspace = false)
    {
        var vocab = new List<string> { "<unk>", "<s>", "</s>" };
        for (int b = 0; b < 256; b++) vocab.Add($"<0x{b:X2}>");
        vocab.AddRange(["▁", "H", "e", "l", "o", "w", "r", "d", "c", "a", "f",
            "ll", "▁H", "ell", "▁Hell", "▁Hello", "▁w", "or", "▁wor", "ld", "▁world", "af", "▁c", "▁caf"]);
        string[] merges = ["l l", "▁ H", "e ll", "▁H ell", "▁Hell o", "▁ w", "o r", "▁w or", "l d", "▁wor ld", "a f", "▁ c", "▁c af"];
        var normalizer = Seq("normalizers", new JsonObject { ["type"] = "Prepend", ["prepend"] = "▁" }, Replace(" ", "▁"));
        var post = new JsonObject
        {
            ["type"] = "TemplateProcessing",
            ["single"] = new JsonArray(new JsonObject { ["SpecialToken"] = new JsonObject { ["id"] = "<s>", ["type_id"] = 0 } },
                new JsonObject { ["Sequence"] = new JsonObject { ["id"] = "A", ["type_id"] = 0 } }),
            ["pair"] = new JsonArray(new JsonObject { ["SpecialToken"] = new JsonObject { ["id"] = "<s>", ["type_id"] = 0 } },
                new JsonObject { ["Sequence"] = new JsonObject { ["id"] = "A", ["type_id"] = 0 } },
                new JsonObject { ["SpecialToken"] = new JsonObject { ["id"] = "<s>", ["type_id"] = 1 } },
                new JsonObject { ["Sequence"] = new JsonObject { ["id"] = "B", ["type_id"] = 1 } }),
            ["special_tokens"] = new JsonObject { ["<s>"] = new JsonObject { ["id"] = "<s>", ["ids"] = new JsonArray(1), ["tokens"] = new JsonArray("<s>") } },
        };
        var decoder = Seq("decoders", Replace("▁", " "), new JsonObject { ["type"] = "ByteFallback" }, new JsonObject { ["type"] = "Fuse" },
            new JsonObject { ["type"] = "Strip", ["content"] = " ", ["start"] = 1, ["stop"] = 0 });
        return Load(vocab, merges, m => { m["unk_token"] = "<unk>"; m["fuse_unk"] = true; m["byte_fallback"] = true; },
            metaspace ? null : normalizer, metaspace ? Metaspace("first", false) : null, decoder, post, ["<unk>", "<s>", "</s>"]);
    }

    [Fact]
    public void Llama2_layout_merges_words_with_their_space_marker_and_offsets_include_the_space()
    {
        var t = Llama2();
        Assert.Equal("sentencepiece-bpe", t.Kind);
        Assert.Equal<(int?, int?, int?)>((1, 2, 0), (t.BosTokenId, t.EosTokenId, t.UnkTokenId));
        // "Hello world" → "▁Hello▁world" (Prepend, then Replace). No pre-tokenizer: one word. By rank: l+l, ▁+H, e+ll,
        // ▁H+ell, ▁Hell+o, ▁+w, o+r, ▁w+or, l+d, ▁wor+ld → ▁Hello ▁world. The prepended ▁ is aligned with 'H' → (0,5);
        // the second ▁ is the space → (5,11).
        Assert.Equal(["▁Hello", "▁world"], Tokens(t, "Hello world"));
        Assert.Equal([(274, 0, 5), (279, 5, 11)], Spans(t, "Hello world"));
        Assert.Equal("Hello world", t.Decode(t.Encode("Hello world")));
        // A leading space: Prepend still adds its ▁ → "▁▁Hello": ▁ (aligned with the space) then ▁Hello over " Hello".
        Assert.Equal([(259, 0, 1), (274, 0, 6)], Spans(t, " Hello"));
        Assert.Equal(" Hello", t.Decode(t.Encode(" Hello")));   // Strip removes one leading space only
        // A piece with no merge stays in characters: "Hew" → ▁H e w.
        Assert.Equal(["▁H", "e", "w"], Tokens(t, "Hew"));
    }

    [Fact]
    public void Llama2_layout_falls_back_to_utf8_bytes_and_decodes_them_back()
    {
        var t = Llama2();
        // "café 😀" → "▁café▁😀": ▁c+af → ▁caf; é is not in the vocabulary → its UTF-8 bytes C3 A9 → <0xC3> <0xA9> (ids 3 + byte),
        // each spanning the whole é (3,4); the space's ▁ alone (4,5); 😀 = F0 9F 98 80 → four byte tokens, each over its two UTF-16 units.
        Assert.Equal(["▁caf", "<0xC3>", "<0xA9>", "▁", "<0xF0>", "<0x9F>", "<0x98>", "<0x80>"], Tokens(t, "café 😀"));
        Assert.Equal([(282, 0, 3), (3 + 0xC3, 3, 4), (3 + 0xA9, 3, 4), (259, 4, 5), (3 + 0xF0, 5, 7), (3 + 0x9F, 5, 7), (3 + 0x98, 5, 7), (3 + 0x80, 5, 7)],
            Spans(t, "café 😀"));
        // Decode: Replace ▁ → " ", ByteFallback joins C3 A9 → é and F0..80 → 😀, Fuse, Strip one leading space.
        Assert.Equal("café 😀", t.Decode(t.Encode("café 😀")));
        // A cut-off byte run is invalid UTF-8 as a whole: one U+FFFD per byte token (HF's ByteFallback), the rest kept.
        Assert.Equal("caf\ufffd\ufffd", t.Decode([282, 3 + 0xF0, 3 + 0x9F]));
        // Newline and tab are not in this vocabulary either: bytes <0x0A> <0x09>.
        Assert.Equal(["▁H", "<0x0A>", "<0x09>", "e"], Tokens(t, "H\n\te"));
        Assert.Equal("H\n\te", t.Decode(t.Encode("H\n\te")));
    }

    [Fact]
    public void Llama2_layout_adds_bos_splits_special_tokens_and_normalizes_each_piece_after_them()
    {
        var t = Llama2();
        // EncodeForModel applies the TemplateProcessing: <s> $A, the special token at (0,0).
        var x = t.EncodeForModel("Hello world");
        Assert.Equal([1, 274, 279], x.InputIds);
        Assert.Equal([(0, 0), (0, 5), (5, 11)], x.Offsets);
        Assert.Equal([1, 0, 0], x.SpecialTokensMask);
        Assert.Equal([1, 274, 1, 279], t.EncodeForModel("Hello", "world").InputIds);   // pair: <s> A <s> B
        // Special tokens are cut out of the raw text first; the normalizer runs on each piece, so Prepend puts a ▁ after </s> too.
        Assert.Equal([(1, 0, 3), (274, 3, 8), (2, 8, 12), (279, 12, 17)], Spans(t, "<s>Hello</s>world"));
        // Decode runs the added tokens through the decoder too: "<s>" + " Hello" + "</s>" + " world"; Strip sees '<' first.
        Assert.Equal("<s> Hello</s> world", t.Decode(t.Encode("<s>Hello</s>world")));
        Assert.Equal("Hello world", t.Decode(t.Encode("<s>Hello</s>world"), skipSpecialTokens: true));
    }

    [Fact]
    public void Metaspace_layout_of_newer_files_matches_the_normalizer_layout_except_after_special_tokens_and_leading_spaces()
    {
        var t = Llama2(metaspace: true);
        Assert.Equal([(274, 0, 5), (279, 5, 11)], Spans(t, "Hello world"));
        // The leading space becomes the ▁ itself; nothing is prepended (the normalizer layout gave ▁ ▁Hello).
        Assert.Equal([(274, 0, 6)], Spans(t, " Hello"));
        // prepend_scheme first: "Hello" after <s> does not start the text → no ▁ → H, e+ll, o.
        Assert.Equal(["<s>", "H", "ell", "o"], Tokens(t, "<s>Hello"));
    }

    [Fact]
    public void Added_tokens_marked_normalized_are_found_in_the_normalized_text()
    {
        // Some Llama files mark <s> normalized=true: HF then finds it after the normalizer ran on the whole piece, so
        // "Hello<s>" → "▁Hello<s>" → ▁Hello, <s> (spanning the original (5,8)); nothing is prepended after it.
        string path = Path.Combine(_dir, "normalized-added");
        Llama2().Save(path);
        var root = JsonNode.Parse(File.ReadAllText(Path.Combine(path, "tokenizer.json")))!.AsObject();
        root["added_tokens"]![1]!["normalized"] = true;
        File.WriteAllText(Path.Combine(path, "tokenizer.json"), root.ToJsonString());
        var t = Assert.IsType<SentencePieceBpeTokenizer>(TokenizerLoader.Load(path));
        Assert.Equal([(274, 0, 5), (1, 5, 8)], Spans(t, "Hello<s>"));
        Assert.Equal(["▁H", "<s>", "H", "ell", "o"], Tokens(t, "H<s>Hello"));   // after <s>: "Hello" with no ▁ of its own
    }

    [Fact]
    public void Lone_surrogates_are_encoded_as_the_replacement_character()
    {
        // U+FFFD = EF BF BD: three byte tokens over the one UTF-16 unit it replaces, decoded back as U+FFFD.
        var t = Llama2();
        Assert.Equal([(271, 0, 1), (3 + 0xEF, 1, 2), (3 + 0xBF, 1, 2), (3 + 0xBD, 1, 2)], Spans(t, "H\ud800"));
        Assert.Equal("H\ufffd", t.Decode(t.Encode("H\ud800")));
    }

    [Fact]
    public void Save_writes_the_file_back_and_reloads_to_the_same_ids()
    {
        var t = Llama2();
        string folder = Path.Combine(_dir, "saved");
        t.Save(folder);
        var back = Assert.IsType<SentencePieceBpeTokenizer>(TokenizerLoader.Load(folder));
        Assert.Equal(t.Encode("<s>café Hello world 😀"), back.Encode("<s>café Hello world 😀"));
        Assert.Equal(t.EncodeForModel("Hello").InputIds, back.EncodeForModel("Hello").InputIds);
        Assert.Equal(1, back.BosTokenId);
    }

    [Fact]
    public void A_merge_outside_the_vocabulary_is_a_format_error_naming_the_file()
    {
        var e = Assert.Throws<FormatException>(() => Load(["a", "b"], ["a b"]));
        Assert.Contains("tokenizer.json", e.Message);
        Assert.Contains("'a b'", e.Message);
    }

    [Theory]
    [InlineData("normalizer", """{"type":"NFKC"}""", "normalizer 'NFKC'")]
    [InlineData("pre_tokenizer", """{"type":"Whitespace"}""", "pre_tokenizer 'Whitespace'")]
    [InlineData("decoder", """{"type":"WordPiece","prefix":"##","cleanup":true}""", "decoder 'WordPiece'")]
    [InlineData("post_processor", """{"type":"RobertaProcessing","sep":["</s>",2],"cls":["<s>",0]}""", "post_processor 'RobertaProcessing'")]
    [InlineData("normalizer", """{"type":"Replace","pattern":{"Regex":" +"},"content":"▁"}""", "normalizer Replace with pattern")]
    public void Other_steps_are_refused_naming_the_step_and_the_file(string section, string json, string named)
    {
        var e = Assert.Throws<NotSupportedException>(() => Load(["a"], normalizer: section == "normalizer" ? JsonNode.Parse(json) : null,
            preTokenizer: section == "pre_tokenizer" ? JsonNode.Parse(json) : null, decoder: section == "decoder" ? JsonNode.Parse(json) : null,
            postProcessor: section == "post_processor" ? JsonNode.Parse(json) : null));
        Assert.Contains(named, e.Message);
        Assert.Contains("tokenizer.json", e.Message);
    }
}

