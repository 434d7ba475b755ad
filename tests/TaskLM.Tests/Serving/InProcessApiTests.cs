// The in-process API (TaskLMModel) on HF fixtures: greedy generation equals HF's, heads' outputs equal the model's
// own logits on the encoded ids, concurrent callers batch without changing answers, and IChatClient through the interface.
using System.Text.Json.Nodes;
using Microsoft.Extensions.AI;
using TaskLM.Data.Tokenization;
using TaskLM.Models;
using TaskLM.Native;
using TaskLM.Serving;
using TorchSharp;
using static TorchSharp.torch;

namespace TaskLM.Tests.Serving;

public class InProcessApiTests
{
    public InProcessApiTests() => TorchBackend.EnsureLoaded();

    static JsonObject Expected(string name) => JsonNode.Parse(File.ReadAllText(ServingFixtures.Hf(name + ".expected.json")))!.AsObject();

    static float[] ModelLogits(string folder, int[] ids, int[]? types = null)
    {
        var model = ModelFactory.FromPretrained(folder);
        model.Module.eval();
        using var scope = NewDisposeScope();
        using var g = no_grad();
        var o = model.Forward(new ModelBatch
        {
            InputIds = tensor(ids.Select(i => (long)i).ToArray(), [1, ids.Length]),
            TokenTypeIds = types == null ? null : tensor(types.Select(i => (long)i).ToArray(), [1, ids.Length]),
        });
        return o.Logits!.to(float32).cpu().data<float>().ToArray();
    }

    static double[] Softmax(float[] x) { double m = x.Max(); var e = x.Select(v => Math.Exp(v - m)).ToArray(); double s = e.Sum(); return e.Select(v => v / s).ToArray(); }

    [Fact]
    public async Task Greedy_generation_matches_hugging_face_and_streams_token_by_token()
    {
        var exp = Expected("gpt2-tiny");
        int[] prompt = exp["prompt"]![0]!.AsArray().Select(x => (int)x!).ToArray();
        int[] hf = exp["greedy"]![0]!.AsArray().Select(x => (int)x!).Skip(prompt.Length).ToArray();
        using var model = TaskLMModel.Load(ServingFixtures.Hf("gpt2-tiny"));
        Assert.Equal("causal-lm", model.Task);
        // The prompt text encodes to HF's prompt ids ("The quick brown fox" in GPT-2's vocabulary).
        Assert.Equal(prompt, model.Tokenizer.Encode("The quick brown fox"));
        var chunks = new List<GeneratedChunk>();
        await foreach (var c in model.GenerateAsync("The quick brown fox", new GenerateOptions { MaxTokens = hf.Length })) chunks.Add(c);
        Assert.Equal(hf, chunks.SelectMany(c => c.TokenIds).ToArray());
        Assert.Equal(hf.Length, chunks.Count);                       // one chunk per token: streamed, not all at the end
        Assert.Equal(FinishReason.Length, chunks[^1].FinishReason);
        Assert.All(chunks.SkipLast(1), c => Assert.Null(c.FinishReason));
        Assert.Equal(model.Tokenizer.Decode(hf), string.Concat(chunks.Select(c => c.Text)));
        Assert.Equal(prompt.Length, chunks[^1].PromptTokens);
        Assert.Equal(hf.Length, chunks[^1].CompletionTokens);
    }

    [Fact]
    public async Task Concurrent_generations_join_one_batch_and_each_equals_its_solo_answer()
    {
        using var model = TaskLMModel.Load(ServingFixtures.Hf("gpt2-tiny"), new TaskLMModelOptions { MaxBatchSize = 8 });
        string[] prompts = ["The quick brown fox", "Hello", "Call me Ishmael. Some years ago", "It was", "A", "In the beginning God created", "x y z", "The sea"];
        var solo = new List<string>();
        foreach (var p in prompts) solo.Add((await model.GenerateTextAsync(p, new GenerateOptions { MaxTokens = 10 })).Text);
        long batchesBefore = model.Stats.Batches, rowsBefore = model.Stats.BatchRows;
        // Different lengths, started at different moments: later ones join the running batch.
        var tasks = prompts.Select(async (p, i) => { await Task.Delay(i * 3); return (await model.GenerateTextAsync(p, new GenerateOptions { MaxTokens = 10 + i })).Text; }).ToArray();
        var together = await Task.WhenAll(tasks);
        for (int i = 0; i < prompts.Length; i++) Assert.StartsWith(solo[i], together[i]);
        double meanBatch = (model.Stats.BatchRows - rowsBefore) / (double)(model.Stats.Batches - batchesBefore);
        Assert.True(meanBatch > 1.5, $"mean rows per decoding step {meanBatch:0.00}: the sequences were not batched");
    }

    [Fact]
    public async Task Stop_text_ends_the_generation_and_is_not_returned()
    {
        using var model = TaskLMModel.Load(ServingFixtures.Hf("gpt2-tiny"));
        var full = await model.GenerateTextAsync("The quick brown fox", new GenerateOptions { MaxTokens = 12 });
        // HF's greedy continuation repeats one token; stopping at its second occurrence leaves exactly one.
        string one = model.Tokenizer.Decode([14070]);
        Assert.Equal(string.Concat(Enumerable.Repeat(one, 12)), full.Text);
        var stopped = await model.GenerateTextAsync("The quick brown fox", new GenerateOptions { MaxTokens = 12, Stop = [one + one] });
        Assert.Equal(FinishReason.Stop, stopped.FinishReason);
        Assert.Equal("", stopped.Text);
        var seeded1 = await model.GenerateTextAsync("Hello", new GenerateOptions { MaxTokens = 8, Temperature = 1.0, TopP = 0.9, Seed = 7 });
        var seeded2 = await model.GenerateTextAsync("Hello", new GenerateOptions { MaxTokens = 8, Temperature = 1.0, TopP = 0.9, Seed = 7 });
        Assert.Equal(seeded1.Text, seeded2.Text);
        await Assert.ThrowsAsync<BadRequestException>(() => model.GenerateTextAsync("Hello", new GenerateOptions { TopP = 0 }));
        await Assert.ThrowsAsync<BadRequestException>(() => model.ClassifyAsync(["x"]));
    }

    [Fact]
    public async Task Cancelling_a_generation_stops_it()
    {
        using var model = TaskLMModel.Load(ServingFixtures.Hf("gpt2-tiny"));
        using var cts = new CancellationTokenSource();
        int n = 0;
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
        {
            await foreach (var c in model.GenerateAsync("Hello", new GenerateOptions { MaxTokens = 50 }, cts.Token))
                if (++n == 3) cts.Cancel();
        });
        Assert.InRange(n, 3, 4);
        // The model still answers afterwards.
        Assert.Equal(FinishReason.Length, (await model.GenerateTextAsync("Hello", new GenerateOptions { MaxTokens = 2 })).FinishReason);
        // Leaving the stream early (no token cancelled) stops the sequence as well.
        long cancelled = model.Stats.Cancelled, outBefore = model.Stats.TokensOut;
        await foreach (var c in model.GenerateAsync("Hello", new GenerateOptions { MaxTokens = 55 })) break;
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (model.Stats.Cancelled == cancelled && DateTime.UtcNow < deadline) await Task.Delay(10);
        Assert.Equal(cancelled + 1, model.Stats.Cancelled);
        Assert.True(model.Stats.TokensOut - outBefore < 55, "the abandoned sequence ran to max_tokens");
    }

    [Fact]
    public async Task Classify_gives_id2label_names_and_the_softmax_of_the_heads_logits_batched_or_not()
    {
        string dir = ServingFixtures.Bert("bert-cls", ["ham", "spam", "eggs"]);
        using var model = TaskLMModel.Load(dir, new TaskLMModelOptions { MaxBatchSize = 8, BatchWindow = TimeSpan.FromMilliseconds(20) });
        Assert.Equal(["ham", "spam", "eggs"], model.Labels);
        var texts = new[] { ServingFixtures.Words(373, 33, 321), ServingFixtures.Words(742, 932, 21, 397, 188, 640), ServingFixtures.Words(9) };
        // Concurrent single-text callers: one forward pass for all (dynamic batching), padded rows.
        long before = model.Stats.Batches;
        var results = await Task.WhenAll(texts.Select(t => model.ClassifyAsync([t])));
        Assert.True(model.Stats.Batches - before < texts.Length, "concurrent rows were not batched");
        for (int i = 0; i < texts.Length; i++)
        {
            int[] ids = [2, .. model.Tokenizer.Encode(texts[i]), 3];
            var p = Softmax(ModelLogits(dir, ids, new int[ids.Length]));
            var r = results[i][0];
            Assert.Equal(3, r.Probabilities.Count);
            for (int c = 0; c < 3; c++) Assert.Equal(p[c], r.Probabilities[model.Labels![c]], 5);
            Assert.Equal(model.Labels![Array.IndexOf(p, p.Max())], r.Label);
        }
        Assert.Equal([373, 33, 321], model.Tokenizer.Encode(texts[0]));
    }

    [Fact]
    public async Task Tag_gives_a_tag_per_word_and_BIO_entities()
    {
        string dir = ServingFixtures.Bert("bert-tok", ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]);
        using var model = TaskLMModel.Load(dir);
        string text = ServingFixtures.Words(373, 33, 321, 773, 336, 274, 620, 624, 928, 363);
        var r = (await model.TagAsync([text]))[0];
        int[] ids = [2, .. model.Tokenizer.Encode(text), 3];
        var logits = ModelLogits(dir, ids, new int[ids.Length]);
        Assert.Equal(10, r.Words.Count);
        for (int w = 0; w < 10; w++)
        {
            var p = Softmax(logits.AsSpan((w + 1) * 5, 5).ToArray());
            Assert.Equal(model.Labels![Array.IndexOf(p, p.Max())], r.Words[w].Tag);
            Assert.Equal(text[r.Words[w].Start..r.Words[w].End], r.Words[w].Word);
        }
        // Entities follow seqeval's reading of the tags; their text is the words' span in the input.
        var expected = TaskLM.Evaluation.Seqeval.GetEntities([r.Words.Select(w => w.Tag).ToList()]);
        Assert.Equal(expected.Count, r.Entities!.Count);
        foreach (var (e, got) in expected.Zip(r.Entities))
            Assert.Equal(string.Join(' ', r.Words.Skip(e.Start).Take(e.End - e.Start + 1).Select(w => w.Word)), got.Text);
    }

    [Fact]
    public async Task Answer_picks_the_best_context_span_by_start_times_end_probability()
    {
        string dir = ServingFixtures.Bert("bert-qa");
        using var model = TaskLMModel.Load(dir);
        string q = ServingFixtures.Words(33, 321, 773), ctx = ServingFixtures.Words(620, 624, 928, 363, 333, 662);
        var a = (await model.AnswerAsync([(q, ctx)]))[0];
        int[] ids = [2, 33, 321, 773, 3, 620, 624, 928, 363, 333, 662, 3];
        int[] types = [0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1];
        var m = ModelFactory.FromPretrained(dir);
        m.Module.eval();
        using var scope = NewDisposeScope();
        using var g = no_grad();
        var o = m.Forward(new ModelBatch { InputIds = tensor(ids.Select(i => (long)i).ToArray(), [1, 12]), TokenTypeIds = tensor(types.Select(i => (long)i).ToArray(), [1, 12]) });
        var ps = Softmax(o.StartLogits!.cpu().data<float>().ToArray()); var pe = Softmax(o.EndLogits!.cpu().data<float>().ToArray());
        double best = 0; int bs = 0, be = 0;
        for (int s = 5; s < 11; s++) for (int e = s; e < 11; e++) if (ps[s] * pe[e] > best) { best = ps[s] * pe[e]; bs = s; be = e; }
        Assert.Equal(best, a.Score, 6);
        Assert.Equal(string.Join(' ', ctx.Split(' ')[(bs - 5)..(be - 4)]), a.Text);
        Assert.Equal(a.Text, ctx[a.Start..a.End]);
    }

    [Fact]
    public async Task Embeddings_are_the_mean_of_the_encoders_last_hidden_states()
    {
        using var model = TaskLMModel.Load(ServingFixtures.Bert("bert-cls"));
        var e = await model.EmbedAsync([ServingFixtures.Words(10, 11), ServingFixtures.Words(10, 11), ServingFixtures.Words(500)]);
        Assert.Equal(32, e[0].Length);
        Assert.Equal(e[0], e[1]);
        Assert.NotEqual(e[0], e[2]);
    }

    [Fact]
    public async Task Chat_client_through_the_interface_honours_options_and_streams()
    {
        using var model = TaskLMModel.Load(ServingFixtures.Hf("gpt2-tiny"));
        IChatClient chat = new TaskLMChatClient(model);
        var msgs = new[] { new ChatMessage(ChatRole.User, "The quick brown fox") };
        var greedy = await chat.GetResponseAsync(msgs, new ChatOptions { Temperature = 0, MaxOutputTokens = 6 });
        string prompt = model.ChatTemplate.Format([("user", "The quick brown fox")]);
        Assert.Equal("User: The quick brown fox\nAssistant:", prompt);
        var direct = await model.GenerateTextAsync(prompt, new GenerateOptions { MaxTokens = 6, Stop = model.ChatTemplate.Stops });
        Assert.Equal(direct.Text, greedy.Text);
        Assert.Equal(ChatFinishReason.Length, greedy.FinishReason);
        Assert.Equal(6, greedy.Usage!.OutputTokenCount);
        var updates = new List<ChatResponseUpdate>();
        await foreach (var u in chat.GetStreamingResponseAsync(msgs, new ChatOptions { Temperature = 0, MaxOutputTokens = 6 })) updates.Add(u);
        Assert.Equal(6, updates.Count);
        Assert.Equal(greedy.Text, string.Concat(updates.Select(u => u.Text)));
        var s1 = await chat.GetResponseAsync(msgs, new ChatOptions { Temperature = 1.2f, TopP = 0.95f, Seed = 3, MaxOutputTokens = 5 });
        var s2 = await chat.GetResponseAsync(msgs, new ChatOptions { Temperature = 1.2f, TopP = 0.95f, Seed = 3, MaxOutputTokens = 5 });
        Assert.Equal(s1.Text, s2.Text);
        // A stop sequence from ChatOptions ends the answer before it.
        string firstTwo = string.Concat(updates.Take(2).Select(u => u.Text));
        if (firstTwo.Length > 0)
        {
            var stopped = await chat.GetResponseAsync(msgs, new ChatOptions { Temperature = 0, MaxOutputTokens = 6, StopSequences = [firstTwo] });
            Assert.Equal(ChatFinishReason.Stop, stopped.FinishReason);
            Assert.DoesNotContain(firstTwo, stopped.Text);
            // Four stop sequences of the caller's own (OpenAI's most) on top of the template's are fine.
            var four = await chat.GetResponseAsync(msgs, new ChatOptions { Temperature = 0, MaxOutputTokens = 6, StopSequences = ["\u0001", "\u0002", "\u0003", firstTwo] });
            Assert.Equal(stopped.Text, four.Text);
            Assert.Equal(ChatFinishReason.Stop, four.FinishReason);
        }
    }

    [Fact]
    public async Task A_lora_causal_lm_run_generates_what_its_merged_export_generates()
    {
        // A real LoRA run of a causal LM (adapters in best/, the base named by the recipe), as `tasklm train` writes it.
        string dir = ServingFixtures.TempDir();
        File.WriteAllLines(Path.Combine(dir, "train.jsonl"), Enumerable.Range(0, 16).Select(i =>
            new System.Text.Json.Nodes.JsonObject { ["text"] = $"Line {i}: the quick brown fox jumps over the lazy dog {i * 7}." }.ToJsonString()));
        File.WriteAllText(Path.Combine(dir, "lora.yaml"), $$$"""
            task: causal-lm
            model: {init: '{{{ServingFixtures.Hf("gpt2-tiny")}}}'}
            tokenizer: gpt2
            data: {train: train.jsonl, validation: train.jsonl, max_length: 16}
            strategy: {method: lora, lora: {r: 4, alpha: 8, dropout: 0.0, target_modules: [c_attn]}}
            training: {max_steps: 4, batch_size: 4, lr: 5.0e-2, warmup: 0, eval_every: 4, tensorboard: false}
            """);
        string run = Path.Combine(dir, "run");
        var train = CliRunner.Run(["train", Path.Combine(dir, "lora.yaml"), "output_dir=" + run, "--threads", "1"], workingDirectory: dir);
        Assert.True(train.ExitCode == 0, train.Stderr);
        Assert.True(File.Exists(Path.Combine(run, "best", "adapter_config.json")), "the LoRA run's best/ holds an adapter");
        string merged = Path.Combine(dir, "merged");
        var export = CliRunner.Run("export", "--model", run, "--format", "hf", "--out", merged);
        Assert.True(export.ExitCode == 0, export.Stderr);

        var greedy = new GenerateOptions { MaxTokens = 8 };
        using var lora = TaskLMModel.Load(run);
        using var full = TaskLMModel.Load(merged);
        Assert.True(lora.ContextLength > 0, "the LoRA LM has no context: it cannot generate");
        Assert.Equal(full.ContextLength, lora.ContextLength);
        var a = await lora.GenerateTextAsync("Line 3: the quick", greedy);
        Assert.Equal((await full.GenerateTextAsync("Line 3: the quick", greedy)).Text, a.Text);
        Assert.Equal(8, a.CompletionTokens);
    }
}
