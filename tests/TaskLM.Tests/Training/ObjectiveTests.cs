// Task objectives against HF's documented conventions: sub-word label alignment, QA spans, completion-only loss, MLM 80/10/10, packing.
using System.Text.Json.Nodes;
using TaskLM.Data.Tokenization;
using TaskLM.Recipes;
using TaskLM.Tasks;
using static TorchSharp.torch;

namespace TaskLM.Tests.Training;

public class ObjectiveTests
{
    /// <summary>A toy WordPiece: lower-cased whitespace words; words over 4 letters split as "abcd" + "##rest".</summary>
    sealed class ToyWordPiece(string kind = "wordpiece") : ITokenizer
    {
        readonly List<string> _vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];
        public string Kind => kind;
        public int VocabSize => 1000;
        int Id(string t) { int i = _vocab.IndexOf(t); if (i < 0) { _vocab.Add(t); i = _vocab.Count - 1; } return i; }
        public IReadOnlyList<int> Encode(string text) => text.ToLowerInvariant().Split(' ', StringSplitOptions.RemoveEmptyEntries)
            .SelectMany(w => w.Length > 4 ? new[] { Id(w[..4]), Id("##" + w[4..]) } : new[] { Id(w) }).ToList();
        public string Decode(IEnumerable<int> ids, bool skipSpecialTokens = false) => string.Join(" ", ids.Select(i => _vocab[i]));
        public int? TokenToId(string token) => _vocab.IndexOf(token) is int i and >= 0 ? i : null;
        public string? IdToToken(int id) => id < _vocab.Count ? _vocab[id] : null;
        public int? EosTokenId => 3;
        public int? PadTokenId => 0;
        public void Save(string directory) { }
    }

    static TaskExamples Load(string task, IEnumerable<JsonObject> rows, ITokenizer tok, string? overrides = null)
    {
        string file = Path.Combine(Path.GetTempPath(), $"tasklm-obj-{Guid.NewGuid():N}.jsonl");
        File.WriteAllLines(file, rows.Select(r => r.ToJsonString()));
        try
        {
            var recipe = RecipeLoader.Parse($"task: {task}\ndata: {{train: {file}, max_length: 16}}\n", "t.yaml", overrides == null ? null : [overrides]);
            return TaskData.Load(recipe, file, tok, null);
        }
        finally { File.Delete(file); }
    }

    [Fact]
    public void Token_labels_go_to_the_first_sub_token_and_minus_100_elsewhere()
    {
        var tok = new ToyWordPiece();
        var ex = Load("token-classification", [new JsonObject { ["tokens"] = new JsonArray("The", "elephants", "ran"), ["tags"] = new JsonArray("DET", "NOUN", "VERB") }], tok);
        Assert.Equal(["DET", "NOUN", "VERB"], ex.Labels!);
        var e = ex.Examples[0];
        Assert.Equal("[CLS] the elep ##hants ran [SEP]", tok.Decode(e.InputIds));
        Assert.Equal([-100, 0, 1, -100, 2, -100], e.TokenLabels!);
    }

    [Fact]
    public void Qa_answer_characters_map_to_token_positions()
    {
        var tok = new ToyWordPiece();
        const string ctx = "The black cat sat on the windowsill today";
        int start = ctx.IndexOf("the windowsill", StringComparison.Ordinal);
        var ex = Load("question-answering", [new JsonObject
        {
            ["question"] = "where did it sit", ["context"] = ctx,
            ["answers"] = new JsonObject { ["text"] = new JsonArray("the windowsill"), ["answer_start"] = new JsonArray(start) },
        }], tok, "data.max_length=32");
        var e = ex.Examples[0];
        var tokens = e.InputIds.Select(i => tok.IdToToken(i)).ToArray();
        Assert.Equal("the", tokens[e.StartPosition]);
        Assert.Equal("##owsill", tokens[e.EndPosition]);
        Assert.Equal(1, e.TokenTypeIds![e.StartPosition]);
        // The token span maps back to the context's characters (what evaluate's SQuAD scores compare).
        Assert.Equal("the windowsill", e.Qa!.Answer(e.StartPosition, e.EndPosition));
        Assert.Equal("black cat", e.Qa.Answer(e.StartPosition - 5, e.StartPosition - 3));
        Assert.Equal("", e.Qa.Answer(0, 0));                                // [CLS]: no answer
        Assert.Equal("", e.Qa.Answer(e.EndPosition, e.StartPosition));      // end before start
        Assert.Equal(["the windowsill"], e.Qa.Answers);
        // At 16 tokens the answer's last piece is cut off: the span points at [CLS], as HF's preprocessing does.
        var cut = Load("question-answering", [new JsonObject
        {
            ["question"] = "where did it sit", ["context"] = ctx,
            ["answers"] = new JsonObject { ["text"] = new JsonArray("the windowsill"), ["answer_start"] = new JsonArray(start) },
        }], tok).Examples[0];
        Assert.Equal((0, 0), (cut.StartPosition, cut.EndPosition));
    }

    [Fact]
    public void Generation_puts_loss_on_the_completion_and_its_end_only()
    {
        var tok = new ToyWordPiece();
        var e = Load("generation", [new JsonObject { ["prompt"] = "translate cat", ["completion"] = "chat" }], tok).Examples[0];
        Assert.Equal("tran ##slate cat chat [SEP]", tok.Decode(e.InputIds));
        Assert.Equal([-100, -100, -100, e.InputIds[3], 3], e.TokenLabels!);
    }

    [Fact]
    public void Causal_lm_text_is_packed_into_blocks_with_document_boundaries()
    {
        var tok = new ToyWordPiece("bpe");   // GPT-2 style: no [CLS]/[SEP] wrapping, end-of-text id 3 between documents
        var docs = Enumerable.Range(0, 6).Select(i => new JsonObject { ["text"] = string.Join(' ', Enumerable.Repeat($"w{i}", 5)) });
        var ex = Load("causal-lm", docs, tok, "data.max_length=8").Examples;
        // 6 documents × (5 words + 1 end marker) = 36 tokens → 4 full blocks of 8 (the rest dropped, as group_texts).
        Assert.Equal(4, ex.Count);
        Assert.All(ex, e => Assert.Equal(8, e.InputIds.Length));
        Assert.Equal("w0 w0 w0 w0 w0 [SEP] w1 w1", tok.Decode(ex[0].InputIds));
    }

    [Fact]
    public void Masked_lm_selects_15_percent_then_80_10_10_and_never_specials()
    {
        // DataCollatorForLanguageModeling: p=0.15 selection; 80% [MASK], 10% random, 10% unchanged; labels only where selected.
        var ids = Enumerable.Range(0, 200).Select(i => i % 10 == 0 ? 2 : 10 + i % 90).ToArray();   // [CLS] every 10th
        var examples = Enumerable.Range(0, 100).Select(_ => new Example { InputIds = ids }).ToList();
        var col = new Collator("masked-lm", 0, CPU) { MaskTokenId = 4, VocabSize = 100, SpecialIds = new HashSet<int> { 0, 1, 2, 3, 4 } };
        using var scope = NewDisposeScope();
        var b = col.Collate(examples, maskSeed: 11);
        var inp = b.InputIds.data<long>().ToArray(); var lab = b.Labels!.data<long>().ToArray();
        int n = 0, selected = 0, masked = 0, kept = 0, specialsHit = 0;
        for (int i = 0; i < inp.Length; i++)
        {
            int orig = ids[i % 200];
            if (orig == 2) { if (lab[i] != -100 || inp[i] != 2) specialsHit++; continue; }
            n++;
            if (lab[i] == -100) { Assert.Equal(orig, inp[i]); continue; }
            selected++;
            Assert.Equal(orig, lab[i]);
            if (inp[i] == 4) masked++; else if (inp[i] == orig) kept++;
        }
        Assert.Equal(0, specialsHit);
        Assert.InRange(selected / (double)n, 0.14, 0.16);
        Assert.InRange(masked / (double)selected, 0.77, 0.83);
        Assert.InRange(kept / (double)selected, 0.08, 0.12 + 0.01);   // unchanged 10% (+ random draws that hit the same id)
    }
}
