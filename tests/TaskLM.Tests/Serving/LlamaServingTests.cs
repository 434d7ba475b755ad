// `tasklm serve` over the Llama family: a tiny random grouped-query-attention model saved by TaskLM, served in-process over
// HTTP, decodes what `generate` (TextGenerator) decodes — alone, two concurrent requests of different lengths batched,
// streamed — stops at generation_config.json's eos ids, renders the model's own chat template, and serves a LoRA adapter.
using System.Net;
using System.ClientModel;
using System.Text;
using System.Text.Json.Nodes;
using OpenAI;
using OpenAI.Chat;
using TaskLM.Data.Tokenization;
using TaskLM.Models;
using TaskLM.Native;
using TaskLM.Serving;
using static TorchSharp.torch;

namespace TaskLM.Tests.Serving;

public sealed class LlamaServingTests : IDisposable
{
    readonly string _dir = ServingFixtures.TempDir();

    public LlamaServingTests() => TorchBackend.EnsureLoaded();

    public void Dispose() { try { Directory.Delete(_dir, recursive: true); } catch (IOException) { } }

    static readonly JsonArray Cases = JsonNode.Parse(File.ReadAllText(
        Path.Combine(AppContext.BaseDirectory, "fixtures", "tokenization", "chat-templates", "cases.json")))!["cases"]!.AsArray();

    static string Template(string namePrefix) => (string)Cases.First(c => ((string)c!["name"]!).StartsWith(namePrefix))!["template"]!;

    /// <summary>A random llama-tiny of <paramref name="type"/> with 4 query heads over 2 key/value heads, saved by TaskLM with
    /// the 2000-token byte-level BPE fixture and <paramref name="added"/> special tokens after it (ids 2000, 2001, ...).
    /// config.json's eos is 0 (&lt;|endoftext|&gt;).</summary>
    string TinyLlama(string name, string type = "llama", string[]? added = null, JsonObject? tokenizerConfig = null)
    {
        added ??= [];
        string dir = Path.Combine(_dir, name);
        var m = PreTrainedModel.FromPreset("llama-tiny", "causal-lm", new Dictionary<string, object>
        {
            ["model_type"] = type, ["vocab_size"] = 2000 + added.Length, ["hidden_size"] = 32, ["intermediate_size"] = 48,
            ["num_hidden_layers"] = 2, ["num_attention_heads"] = 4, ["num_key_value_heads"] = 2, ["max_position_embeddings"] = 192,
            ["initializer_range"] = 0.1, ["bos_token_id"] = 0, ["eos_token_id"] = 0,
        }, seed: 11);
        m.SavePretrained(dir);
        var tj = JsonNode.Parse(File.ReadAllText(Path.Combine(ServingFixtures.Hf("tok-bpe"), "tokenizer.json")))!.AsObject();
        for (int i = 0; i < added.Length; i++)
            tj["added_tokens"]!.AsArray().Add(new JsonObject
            {
                ["id"] = 2000 + i, ["content"] = added[i], ["single_word"] = false, ["lstrip"] = false, ["rstrip"] = false,
                ["normalized"] = false, ["special"] = true,
            });
        File.WriteAllText(Path.Combine(dir, "tokenizer.json"), tj.ToJsonString());
        if (tokenizerConfig != null) File.WriteAllText(Path.Combine(dir, "tokenizer_config.json"), tokenizerConfig.ToJsonString());
        return dir;
    }

    static void WriteGenerationConfig(string dir, JsonNode eos) =>
        File.WriteAllText(Path.Combine(dir, "generation_config.json"), new JsonObject { ["bos_token_id"] = 0, ["eos_token_id"] = eos }.ToJsonString());

    /// <summary>`generate`'s greedy decoding (TextGenerator) of a text prompt on the folder's model.</summary>
    static async Task<GenerationResult> Generate(string dir, string prompt, int maxNewTokens, int? eos = null)
    {
        var m = ModelFactory.ForInference(dir);
        var gen = new TextGenerator(m, TokenizerLoader.Load(dir));
        return await gen.GenerateAsync(new GenerationRequest { Prompt = prompt, MaxNewTokens = maxNewTokens, Greedy = true, EosTokenId = eos });
    }

    /// <summary>What the server returns for a generation: its text without the stop ids and special tokens.</summary>
    static string Visible(ITokenizer tok, GenerationResult r, ICollection<int> eos) =>
        tok.Decode(r.NewIds.Where(t => !eos.Contains(t)).ToList(), skipSpecialTokens: true);

    static StringContent Body(string json) => new(json, Encoding.UTF8, "application/json");

    static async Task<JsonObject> Post(HttpClient http, string route, string json)
    {
        var r = await http.PostAsync(route, Body(json));
        string text = await r.Content.ReadAsStringAsync();
        Assert.True(r.StatusCode == HttpStatusCode.OK, text);
        return JsonNode.Parse(text)!.AsObject();
    }

    [Fact]
    public async Task Greedy_completions_equal_generate_alone_and_batched_with_a_request_of_another_length_and_stream_the_same_text()
    {
        string dir = TinyLlama("gqa");
        string shortPrompt = "The cat", longPrompt = "In the beginning the quick brown fox jumps over the lazy dog and then";
        await using var server = await TaskLMServer.StartAsync(new ServerOptions { Port = 0 }, () => TaskLMModel.Load(dir));
        var model = await server.Ready;
        using var http = new HttpClient { BaseAddress = new Uri(server.Url), Timeout = TimeSpan.FromMinutes(5) };
        var tok = model.Tokenizer;
        Assert.True(tok.Encode(longPrompt).Count > tok.Encode(shortPrompt).Count + 8);
        var eos = new[] { 0 };

        // Alone: the same tokens as generate (in-process), and the same text over HTTP.
        var solo = await Generate(dir, longPrompt, 24);
        var ids = new List<int>();
        await foreach (var c in model.GenerateAsync(longPrompt, new GenerateOptions { MaxTokens = 24, Temperature = 0 })) ids.AddRange(c.TokenIds);
        Assert.Equal(solo.NewIds, ids);
        var alone = await Post(http, "/v1/completions", $$"""{"prompt":{{JsonValue.Create(longPrompt).ToJsonString()}},"max_tokens":24,"temperature":0}""");
        Assert.Equal(Visible(tok, solo, eos), (string)alone["choices"]![0]!["text"]!);

        // Two concurrent requests of different lengths, decoded as one left-padded batch: each as generate gives it alone.
        var refShort = await Generate(dir, shortPrompt, 100);
        var refLong = await Generate(dir, longPrompt, 90);
        long pairs = model.Stats.BatchSizeBuckets[1];
        var both = await Task.WhenAll(
            Post(http, "/v1/completions", $$"""{"prompt":{{JsonValue.Create(shortPrompt).ToJsonString()}},"max_tokens":100,"temperature":0}"""),
            Post(http, "/v1/completions", $$"""{"prompt":{{JsonValue.Create(longPrompt).ToJsonString()}},"max_tokens":90,"temperature":0}"""));
        Assert.True(model.Stats.BatchSizeBuckets[1] > pairs, "the two requests never decoded in one batch");
        Assert.Equal(Visible(tok, refShort, eos), (string)both[0]["choices"]![0]!["text"]!);
        Assert.Equal(Visible(tok, refLong, eos), (string)both[1]["choices"]![0]!["text"]!);
        Assert.Equal(refLong.NewIds.Count, (int)both[1]["usage"]!["completion_tokens"]!);

        // Streamed: the chunks concatenate to the non-streamed text, the last one carrying its finish reason.
        var r = await http.PostAsync("/v1/completions", Body($$"""{"prompt":{{JsonValue.Create(longPrompt).ToJsonString()}},"max_tokens":90,"temperature":0,"stream":true}"""));
        var events = (await r.Content.ReadAsStringAsync()).Split("\n\n", StringSplitOptions.RemoveEmptyEntries).Select(e => e["data: ".Length..]).ToList();
        Assert.Equal("[DONE]", events[^1]);
        var chunks = events.SkipLast(1).Select(e => JsonNode.Parse(e)!["choices"]![0]!).ToList();
        Assert.Equal((string)both[1]["choices"]![0]!["text"]!, string.Concat(chunks.Select(c => (string)c["text"]!)));
        Assert.Equal((string)both[1]["choices"]![0]!["finish_reason"]!, (string)chunks[^1]["finish_reason"]!);

        // Seeded sampling goes through generate's sampler: the same seed draws the same tokens.
        var m = ModelFactory.ForInference(dir);
        var sampled = await new TextGenerator(m, tok).GenerateAsync(new GenerationRequest { Prompt = shortPrompt, MaxNewTokens = 12, Temperature = 0.8, TopK = 50, Seed = 5, RepetitionPenalty = 1.3 });
        var served = new List<int>();
        await foreach (var c in model.GenerateAsync(shortPrompt, new GenerateOptions { MaxTokens = 12, Temperature = 0.8, TopK = 50, Seed = 5, RepetitionPenalty = 1.3 }))
            served.AddRange(c.TokenIds);
        Assert.Equal(sampled.NewIds, served);
        // Over HTTP with vLLM's field names for the extras; a bad value is a 400 naming the field.
        var http2 = await Post(http, "/v1/completions", """{"prompt":"The cat","max_tokens":12,"temperature":0.8,"top_k":50,"seed":5,"repetition_penalty":1.3}""");
        Assert.Equal(Visible(tok, sampled, eos), (string)http2["choices"]![0]!["text"]!);
        var bad = await http.PostAsync("/v1/completions", Body("""{"prompt":"The cat","repetition_penalty":0}"""));
        Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
        Assert.Equal("repetition_penalty", (string?)JsonNode.Parse(await bad.Content.ReadAsStringAsync())!["error"]!["param"]);
    }

    [Fact]
    public async Task A_generation_config_list_of_eos_ids_stops_serving_and_generate_with_finish_reason_stop()
    {
        string dir = TinyLlama("eos");
        const string prompt = "Once upon a time there was";
        var free = (await Generate(dir, prompt, 12, eos: -1)).NewIds;
        Assert.DoesNotContain(0, free.Take(4));        // config.json's own eos does not end it first
        int stopId = free[3], at = free.ToList().IndexOf(stopId);
        WriteGenerationConfig(dir, new JsonArray(1999, stopId));

        // generate stops there now (Eos) ...
        var stopped = await Generate(dir, prompt, 12);
        Assert.Equal(FinishReason.Eos, stopped.Finish);
        Assert.Equal(free.Take(at + 1), stopped.NewIds);

        // ... and so does the server: finish_reason "stop", the eos token counted but not in the text, streamed or not.
        await using var server = await TaskLMServer.StartAsync(new ServerOptions { Port = 0 }, () => TaskLMModel.Load(dir));
        var model = await server.Ready;
        using var http = new HttpClient { BaseAddress = new Uri(server.Url) };
        var body = await Post(http, "/v1/completions", $$"""{"prompt":"{{prompt}}","max_tokens":12,"temperature":0}""");
        Assert.Equal("stop", (string)body["choices"]![0]!["finish_reason"]!);
        Assert.Equal(at + 1, (int)body["usage"]!["completion_tokens"]!);
        Assert.Equal(model.Tokenizer.Decode(free.Take(at).ToList(), skipSpecialTokens: true), (string)body["choices"]![0]!["text"]!);
        var r = await http.PostAsync("/v1/completions", Body($$"""{"prompt":"{{prompt}}","max_tokens":12,"temperature":0,"stream":true}"""));
        var chunks = (await r.Content.ReadAsStringAsync()).Split("\n\n", StringSplitOptions.RemoveEmptyEntries).SkipLast(1)
            .Select(e => JsonNode.Parse(e["data: ".Length..])!["choices"]![0]!).ToList();
        Assert.Equal("stop", (string)chunks[^1]["finish_reason"]!);
        Assert.Equal((string)body["choices"]![0]!["text"]!, string.Concat(chunks.Select(c => (string)c["text"]!)));

        // The model keeps its generation_config.json when saved again (a fine-tuned model's best/ stops the same way).
        var loaded = ModelFactory.ForInference(dir);
        Assert.Equal(new[] { 0, 1999, stopId }, ((ICausalLM)loaded).EosTokenIds);
        loaded.SavePretrained(Path.Combine(_dir, "resaved"));
        Assert.Equal(new JsonArray(1999, stopId).ToJsonString(),
            JsonNode.Parse(File.ReadAllText(Path.Combine(_dir, "resaved", "generation_config.json")))!["eos_token_id"]!.ToJsonString());
    }

    public static TheoryData<string, string, string[], string, string> ChatCases => new()
    {
        // Qwen2 with Qwen2.5-Instruct's ChatML template; its turn end <|im_end|> is an eos id only in generation_config.json.
        { "qwen2", "Qwen/Qwen2.5-7B-Instruct (no tools, own", ["<|im_start|>", "<|im_end|>"], "<|im_end|>",
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n" },
        // Llama with Llama 3 Instruct's template (BOS from tokenizer_config.json, headers, <|eot_id|> ends a turn).
        { "llama", "meta-llama/Meta-Llama-3-8B-Instruct (add_generation_prompt=true)", ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"], "<|eot_id|>",
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi there<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n" },
    };

    [Theory]
    [MemberData(nameof(ChatCases))]
    public async Task Chat_completions_render_the_models_own_template_and_answer_as_generate(string type, string template, string[] added, string turnEnd, string expectedPrompt)
    {
        string dir = TinyLlama(type, type, added, new JsonObject
        {
            ["bos_token"] = added[0] == "<|begin_of_text|>" ? "<|begin_of_text|>" : null, ["eos_token"] = turnEnd, ["chat_template"] = Template(template),
        });
        int turnEndId = 2000 + Array.IndexOf(added, turnEnd);
        WriteGenerationConfig(dir, new JsonArray(0, turnEndId));
        await using var server = await TaskLMServer.StartAsync(new ServerOptions { Port = 0 }, () => TaskLMModel.Load(dir));
        var model = await server.Ready;
        Assert.Equal(expectedPrompt, model.ChatTemplate.Format([("system", "Be brief."), ("user", "Hi there")]));
        Assert.Equal(2000, model.Tokenizer.Encode(expectedPrompt)[0]);   // the special tokens are single ids

        var reference = await Generate(dir, expectedPrompt, 40);
        string want = Visible(model.Tokenizer, reference, [0, turnEndId]);
        var chat = new ChatClient(model.Card.Id, new ApiKeyCredential("unused"), new OpenAIClientOptions { Endpoint = new Uri(server.Url + "/v1") });
        ChatMessage[] messages = [new SystemChatMessage("Be brief."), new UserChatMessage("Hi there")];
        var opts = new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 40 };
        var done = (await chat.CompleteChatAsync(messages, opts)).Value;
        Assert.Equal(want, done.Content[0].Text);
        Assert.Equal(reference.Finish == FinishReason.Length ? ChatFinishReason.Length : ChatFinishReason.Stop, done.FinishReason);
        var text = new StringBuilder();
        await foreach (var u in chat.CompleteChatStreamingAsync(messages, opts))
            foreach (var part in u.ContentUpdate) text.Append(part.Text);
        Assert.Equal(want, text.ToString());
    }

    [Fact]
    public async Task A_lora_adapter_on_a_llama_base_serves_what_generate_gives_with_the_adapter_in_place()
    {
        string baseDir = TinyLlama("base");
        var lora = new LoraModel(ModelFactory.ForInference(baseDir), new LoraConfig(4, 8, 0.0, ["q_proj", "v_proj", "down_proj"]));
        using (no_grad())
            foreach (var layer in lora.Layers.Values) layer.lora_B.weight!.normal_(0, 0.2);   // B starts at zero: make the adapter matter
        string adapter = Path.Combine(_dir, "adapter");
        lora.SaveAdapter(adapter, Path.GetFullPath(baseDir));
        const string prompt = "The quick brown fox";
        var tok = TokenizerLoader.Load(baseDir);
        var withAdapter = await new TextGenerator(lora.Base, tok).GenerateAsync(new GenerationRequest { Prompt = prompt, MaxNewTokens = 16, Greedy = true });
        var plain = await Generate(baseDir, prompt, 16);
        Assert.NotEqual(plain.NewIds, withAdapter.NewIds);

        using var served = TaskLMModel.Load(adapter, new TaskLMModelOptions { Tokenizer = baseDir });
        var ids = new List<int>();
        await foreach (var c in served.GenerateAsync(prompt, new GenerateOptions { MaxTokens = 16, Temperature = 0 })) ids.AddRange(c.TokenIds);
        Assert.Equal(withAdapter.NewIds, ids);
    }
}
