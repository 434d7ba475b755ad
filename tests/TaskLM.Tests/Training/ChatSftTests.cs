// Chat fine-tuning data: assistant-only labels on real chat templates, bad rows named by file and line, and packing
// whose forward pass equals each example run alone (attention kept inside each example).
using System.Text.Json.Nodes;
using TaskLM.Data.Tokenization;
using TaskLM.Models;
using TaskLM.Native;
using TaskLM.Recipes;
using TaskLM.Tasks;
using static TorchSharp.torch;

namespace TaskLM.Tests.Training;

[Collection(SerialCollection.Name)]   // torch's global generator draws the presets' init
public sealed class ChatSftTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("tasklm-chatsft").FullName;

    static ChatSftTests() => TorchBackend.EnsureLoaded();

    public void Dispose() { if (Directory.Exists(_dir)) Directory.Delete(_dir, recursive: true); }

    static readonly JsonArray Cases = JsonNode.Parse(File.ReadAllText(
        Path.Combine(AppContext.BaseDirectory, "fixtures", "tokenization", "chat-templates", "cases.json")))!["cases"]!.AsArray();

    static string Template(string namePrefix) => (string)Cases.First(c => ((string)c!["name"]!).StartsWith(namePrefix, StringComparison.Ordinal))!["template"]!;

    // A small byte-level BPE with the special tokens of ChatML and Llama 3 (kept whole by the tokenizer).
    static readonly ByteLevelBpeTokenizer Tok = TokenizerTrainer.TrainByteLevelBpe(
        Enumerable.Repeat("Hello there. Be brief, say hi and bye! What is the time? system user assistant", 20),
        new TaskLM.Data.Tokenization.TokenizerTrainerOptions
        {
            VocabSize = 320,
            SpecialTokens = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"],
        });

    static DataSection Data(int maxLength = 256) => new() { MaxLength = maxLength };

    static JsonObject Row(params (string Role, string Content)[] messages) =>
        new() { ["messages"] = new JsonArray(messages.Select(m => (JsonNode)new JsonObject { ["role"] = m.Role, ["content"] = m.Content }).ToArray()) };

    /// <summary>The text of each run of consecutive supervised (label != -100) tokens.</summary>
    static List<string> SupervisedRuns(Example e)
    {
        var runs = new List<string>(); var cur = new List<int>();
        for (int i = 0; i <= e.InputIds.Length; i++)
        {
            if (i < e.InputIds.Length && e.TokenLabels![i] != -100) { Assert.Equal(e.InputIds[i], e.TokenLabels[i]); cur.Add(e.InputIds[i]); continue; }
            if (cur.Count > 0) { runs.Add(Tok.Decode(cur)); cur.Clear(); }
        }
        return runs;
    }

    [Fact]
    public void Assistant_turns_and_their_end_of_turn_token_are_the_only_labels_on_SmolLM2s_ChatML_template()
    {
        var t = new HfChatTemplate(Template("HuggingFaceTB/SmolLM2-135M-Instruct (own"), "SmolLM2");
        var row = Row(("system", "Be brief."), ("user", "Hi"), ("assistant", "Hello."), ("user", "Bye"), ("assistant", "Bye!"));
        var e = ChatData.Encode(row, Data(), Tok, t)!;
        // Derived by hand from ChatML (SmolLM2's card): every message "<|im_start|>role\ncontent<|im_end|>\n".
        Assert.Equal("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello.<|im_end|>\n" +
                     "<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\nBye!<|im_end|>\n", Tok.Decode(e.InputIds));
        // Loss on the two replies, each with the <|im_end|> that closes it; never on the "assistant\n" header or the newline after.
        Assert.Equal(["Hello.<|im_end|>", "Bye!<|im_end|>"], SupervisedRuns(e));
        int imEnd = Tok.TokenToId("<|im_end|>")!.Value;
        Assert.Equal(5, e.InputIds.Count(id => id == imEnd));        // one per message, a single token each
        Assert.Equal(2, e.TokenLabels!.Count(l => l == imEnd));      // the assistants' two
        int firstLabel = Array.FindIndex(e.TokenLabels!, l => l != -100);
        Assert.EndsWith("<|im_start|>assistant\n", Tok.Decode(e.InputIds[..firstLabel]));
        // No system message: the template's default one is added, and still not learned.
        var d = ChatData.Encode(Row(("user", "Hi"), ("assistant", "Hello.")), Data(), Tok, new HfChatTemplate(Template("HuggingFaceTB/SmolLM2-135M-Instruct (default"), "SmolLM2"))!;
        Assert.StartsWith("<|im_start|>system\nYou are a helpful AI assistant named SmolLM", Tok.Decode(d.InputIds));
        Assert.Equal(["Hello.<|im_end|>"], SupervisedRuns(d));
    }

    [Fact]
    public void Llama3_template_learns_the_trimmed_reply_and_eot_and_puts_BOS_once()
    {
        var t = new HfChatTemplate(Template("meta-llama/Meta-Llama-3-8B-Instruct (add_generation_prompt=false"), "Llama 3",
            new Dictionary<string, string> { ["bos_token"] = "<|begin_of_text|>", ["eos_token"] = "<|eot_id|>" });
        var e = ChatData.Encode(Row(("user", "  Hi  "), ("assistant", "Hello!\n")), Data(), Tok, t)!;
        Assert.Equal("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|>",
            Tok.Decode(e.InputIds));
        Assert.Equal(1, e.InputIds.Count(id => id == Tok.TokenToId("<|begin_of_text|>")));
        Assert.Equal(["Hello!<|eot_id|>"], SupervisedRuns(e));
    }

    [Fact]
    public void A_templates_question_prompt_and_end_of_turn_are_found_by_rendering()
    {
        var chatml = ChatData.TryPrompt(new HfChatTemplate(ChatData.ChatMl, "ChatML"), "Hi")!.Value;
        Assert.Equal("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n", chatml.Prompt);
        Assert.Equal("<|im_end|>", chatml.EndOfTurn);
        var llama3 = ChatData.TryPrompt(new HfChatTemplate(Template("meta-llama/Meta-Llama-3-8B-Instruct (add_generation_prompt=false"), "Llama 3",
            new Dictionary<string, string> { ["bos_token"] = "<|begin_of_text|>" }), "Hi")!.Value;
        Assert.Equal("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n", llama3.Prompt);
        Assert.Equal("<|eot_id|>", llama3.EndOfTurn);
    }

    [Fact]
    public void Prompt_completion_message_lists_learn_the_completion_only_and_truncation_keeps_the_front()
    {
        var t = new HfChatTemplate(ChatData.ChatMl, "ChatML");
        var row = new JsonObject
        {
            ["prompt"] = Row(("user", "Hi"), ("assistant", "Hello."), ("user", "Bye"))["messages"]!.DeepClone(),
            ["completion"] = Row(("assistant", "Bye!"))["messages"]!.DeepClone(),
        };
        var e = ChatData.Encode(row, Data(), Tok, t)!;
        Assert.Equal(["Bye!<|im_end|>"], SupervisedRuns(e));   // the prompt's own assistant turn is context, not a target
        int head = Tok.Encode("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n").Count;
        var cut = ChatData.Encode(Row(("user", "Hi"), ("assistant", "Hello there. Be brief, say hi and bye!")), Data(maxLength: head + 3), Tok, t)!;
        Assert.Equal(head + 3, cut.InputIds.Length);                   // cut at max_length, the front kept (as TRL truncates)
        Assert.Equal(Tok.Decode(Tok.Encode("Hello there. Be brief, say hi and bye!").Take(3)), SupervisedRuns(cut).Single());
        // Cut before the reply starts: nothing to learn, so the row is left out (null).
        Assert.Null(ChatData.Encode(Row(("user", "Hello there. What is the time?"), ("assistant", "Hi")), Data(maxLength: head), Tok, t));
    }

    [Fact]
    public void Bad_rows_are_refused_naming_file_line_and_what_is_wrong()
    {
        string Write(params string[] lines) { string p = Path.Combine(_dir, $"bad-{Guid.NewGuid():N}.jsonl"); File.WriteAllLines(p, lines); return p; }
        const string ok = """{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}]}""";
        void Refused(string line, params string[] says)
        {
            string path = Write(ok, line);
            var ex = Assert.Throws<InvalidDataException>(() => TaskData.Load("causal-lm", Data(), path, Tok, null));
            Assert.Contains($"{path}:2", ex.Message);
            foreach (var s in says) Assert.Contains(s, ex.Message);
        }
        Refused("""{"messages": [{"content": "Hi"}, {"role": "assistant", "content": "Hello."}]}""", "message 1", "no \"role\"");
        Refused("""{"messages": [{"role": "user"}, {"role": "assistant", "content": "Hello."}]}""", "message 1", "no \"content\"");
        Refused("""{"messages": [{"role": "user", "content": "Hi"}, {"role": "bot", "content": "Hello."}]}""", "message 2", "unknown role 'bot'");
        Refused("""{"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "Hi"}]}""", "no assistant message", "system, user");
        Refused("""{"messages": "Hi"}""", "'messages' must be a list");
        Refused("""{"text": "Hi"}""", "no 'messages' list");
        // The good rows load, with ChatML when no template is given.
        var good = TaskData.Load("causal-lm", Data(), Write(ok, ok), Tok, null);
        Assert.Equal(2, good.Examples.Count);
        Assert.Equal(["Hello.<|im_end|>"], SupervisedRuns(good.Examples[0]));
    }

    static Dictionary<string, object> LlamaShape() => new()
    {
        ["vocab_size"] = 96, ["hidden_size"] = 32, ["intermediate_size"] = 48, ["num_hidden_layers"] = 2,
        ["num_attention_heads"] = 4, ["num_key_value_heads"] = 2, ["max_position_embeddings"] = 64, ["initializer_range"] = 0.1,
        ["pad_token_id"] = 0,
    };

    static Dictionary<string, object> Gpt2Shape() => new()
    {
        ["vocab_size"] = 96, ["n_embd"] = 32, ["n_layer"] = 2, ["n_head"] = 4, ["n_positions"] = 64, ["initializer_range"] = 0.1,
        ["resid_pdrop"] = 0.0, ["embd_pdrop"] = 0.0, ["attn_pdrop"] = 0.0,
    };

    [Theory]
    [InlineData("llama-tiny")]
    [InlineData("gpt2-tiny")]
    public void A_packed_row_gives_each_example_the_logits_and_loss_it_has_alone(string preset)
    {
        manual_seed(7);
        var model = ModelFactory.FromPreset(preset, "causal-lm", preset.StartsWith("llama") ? LlamaShape() : Gpt2Shape());
        model.Module.eval();
        var rng = new Random(3);
        Example Ex(int n) => new()
        {
            InputIds = Enumerable.Range(0, n).Select(_ => rng.Next(3, 96)).ToArray(),
            TokenLabels = Enumerable.Range(0, n).Select(i => i < 2 ? -100 : 0).ToArray(),   // a 2-token "prompt" without loss
        };
        var examples = new[] { Ex(5), Ex(9), Ex(4), Ex(7), Ex(6) };
        for (int k = 0; k < examples.Length; k++)
            examples[k] = new Example { InputIds = examples[k].InputIds, TokenLabels = examples[k].TokenLabels!.Select((l, i) => l == -100 ? -100 : examples[k].InputIds[i]).ToArray() };
        var packed = ChatData.Pack(examples, maxLength: 20);
        Assert.Equal([18, 13], packed.Select(p => p.InputIds.Length));   // 5+9+4 | 7+6: whole examples only
        Assert.Equal([0, 1, 2, 3, 4, 0, 1], packed[0].PositionIds![..7]);
        var collator = new Collator("causal-lm", 0, CPU);
        using var _ = no_grad();
        var batch = collator.Collate(packed);   // the second row padded: padding and packing together
        var o = model.Forward(batch);
        var logits = o.Logits!;                                                         // (2, 18, V)

        double lossSum = 0; long targets = 0; int row = 0, offset = 0;
        foreach (var e in examples)
        {
            if (offset + e.InputIds.Length > packed[row].InputIds.Length) { row++; offset = 0; }
            var alone = model.Forward(collator.Collate([e]));
            var mine = logits[row].narrow(0, offset, e.InputIds.Length);                // this example's rows of the packed pass
            double diff = (mine - alone.Logits![0]).abs().max().item<float>();
            Assert.True(diff < 1e-5, $"{preset}: example at row {row} offset {offset} differs from its own pass by {diff:E2}");
            long n = e.TokenLabels!.Skip(1).Count(l => l != -100);                       // targets after the shift
            lossSum += alone.Loss!.item<float>() * n; targets += n;
            offset += e.InputIds.Length;
        }
        // The packed loss is the token-weighted mean of the examples' own losses: no target crosses an example boundary.
        Assert.Equal(lossSum / targets, o.Loss!.item<float>(), 5);

        // The control: the same rows without their position ids attend across examples, and the logits change.
        var leaky = model.Forward(new ModelBatch { InputIds = batch.InputIds, AttentionMask = batch.AttentionMask, Labels = batch.Labels }).Logits!;
        Assert.True((leaky[0].narrow(0, 5, 9) - logits[0].narrow(0, 5, 9)).abs().max().item<float>() > 1e-3, "the unpacked pass should see the previous example");
    }
}
