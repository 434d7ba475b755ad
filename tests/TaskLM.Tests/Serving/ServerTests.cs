// `tasklm serve` over HTTP on a free loopback port: the official OpenAI .NET client (streaming included) against it,
// raw HTTP for the wire format and every error case, concurrency, queue limits, timeouts and disconnects.
using System.ClientModel;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using OpenAI;
using OpenAI.Chat;
using OpenAI.Embeddings;
using OpenAI.Models;
using TaskLM.Models;
using TaskLM.Native;
using TaskLM.Serving;

namespace TaskLM.Tests.Serving;

/// <summary>One server over the gpt2-tiny fixture, with an API key, shared by the tests of a class.</summary>
public sealed class Gpt2ServerFixture : IAsyncLifetime
{
    public const string Key = "sk-tasklm-test";
    public TaskLMServer Server { get; private set; } = null!;
    public TaskLMModel Model { get; private set; } = null!;
    public HttpClient Http { get; } = new() { Timeout = TimeSpan.FromMinutes(5) };

    public async Task InitializeAsync()
    {
        TorchBackend.EnsureLoaded();
        Server = await TaskLMServer.StartAsync(new ServerOptions { Port = 0, ApiKey = Key, MaxBodyBytes = 64 * 1024 },
            () => TaskLMModel.Load(ServingFixtures.Hf("gpt2-tiny"), new TaskLMModelOptions { MaxBatchSize = 32 }));
        Model = await Server.Ready;
        Http.BaseAddress = new Uri(Server.Url);
        Http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", Key);
    }

    public async Task DisposeAsync() { Http.Dispose(); await Server.DisposeAsync(); }

    public OpenAIClientOptions ClientOptions => new() { Endpoint = new Uri(Server.Url + "/v1") };
}

public class ServerTests(Gpt2ServerFixture f) : IClassFixture<Gpt2ServerFixture>
{
    static readonly int[] HfGreedy = Enumerable.Repeat(14070, 12).ToArray();   // gpt2-tiny.expected.json's greedy continuation

    static StringContent JsonBody(string json) => new(json, Encoding.UTF8, "application/json");

    /// <summary>The data payloads of an SSE body (each "data: ..." event), in order.</summary>
    static List<string> Events(string body)
    {
        var events = body.Split("\n\n", StringSplitOptions.RemoveEmptyEntries);
        Assert.All(events, e => Assert.StartsWith("data: ", e));
        return events.Select(e => e["data: ".Length..]).ToList();
    }

    async Task<(HttpStatusCode Status, JsonObject Body)> Post(string route, string json, HttpClient? http = null)
    {
        var r = await (http ?? f.Http).PostAsync(route, JsonBody(json));
        return (r.StatusCode, JsonNode.Parse(await r.Content.ReadAsStringAsync())!.AsObject());
    }

    static void AssertError(JsonObject body, string type, string? code = null)
    {
        var e = body["error"]!.AsObject();
        Assert.False(string.IsNullOrWhiteSpace((string?)e["message"]));
        Assert.Equal(type, (string?)e["type"]);
        Assert.True(e.ContainsKey("param") && e.ContainsKey("code"));
        if (code != null) Assert.Equal(code, (string?)e["code"]);
    }

    [Fact]
    public async Task Official_openai_client_chats_streams_embeds_and_lists_models()
    {
        var chat = new ChatClient("gpt2-tiny", new ApiKeyCredential(Gpt2ServerFixture.Key), f.ClientOptions);
        var opts = new ChatCompletionOptions { Temperature = 0f, MaxOutputTokenCount = 6 };
        ChatCompletion done = (await chat.CompleteChatAsync([new UserChatMessage("The quick brown fox")], opts)).Value;
        // The same greedy answer the in-process API gives for the documented chat template.
        var direct = await f.Model.GenerateTextAsync("User: The quick brown fox\nAssistant:", new GenerateOptions { MaxTokens = 6, Stop = f.Model.ChatTemplate.Stops });
        Assert.Equal(direct.Text, done.Content[0].Text);
        Assert.Equal(OpenAI.Chat.ChatFinishReason.Length, done.FinishReason);
        Assert.Equal(6, done.Usage.OutputTokenCount);
        Assert.Equal(f.Model.CountTokens("User: The quick brown fox\nAssistant:"), done.Usage.InputTokenCount);

        var text = new StringBuilder();
        int updates = 0; OpenAI.Chat.ChatFinishReason? finish = null; ChatTokenUsage? usage = null;
        await foreach (var u in chat.CompleteChatStreamingAsync([new UserChatMessage("The quick brown fox")], opts))
        {
            updates++;
            foreach (var part in u.ContentUpdate) text.Append(part.Text);
            finish ??= u.FinishReason;
            usage ??= u.Usage;
        }
        Assert.Equal(done.Content[0].Text, text.ToString());
        Assert.True(updates >= 6, $"{updates} streamed updates for 6 tokens");
        Assert.Equal(OpenAI.Chat.ChatFinishReason.Length, finish);
        Assert.Equal(6, usage!.OutputTokenCount);

        var emb = new EmbeddingClient("gpt2-tiny", new ApiKeyCredential(Gpt2ServerFixture.Key), f.ClientOptions);
        var vec = (await emb.GenerateEmbeddingAsync("Call me Ishmael")).Value.ToFloats().ToArray();
        var local = (await f.Model.EmbedAsync(["Call me Ishmael"]))[0];
        Assert.Equal(local.Length, vec.Length);
        for (int i = 0; i < vec.Length; i++) Assert.Equal(local[i], vec[i], 5);

        var models = (await new OpenAIModelClient(new ApiKeyCredential(Gpt2ServerFixture.Key), f.ClientOptions).GetModelsAsync()).Value;
        Assert.Equal("gpt2-tiny", Assert.Single(models).Id);

        var wrong = new ChatClient("gpt-4o", new ApiKeyCredential(Gpt2ServerFixture.Key), f.ClientOptions);
        var ex = await Assert.ThrowsAsync<ClientResultException>(() => wrong.CompleteChatAsync([new UserChatMessage("hi")]));
        Assert.Equal(404, ex.Status);
        Assert.Contains("gpt-4o", ex.Message);
    }

    [Fact]
    public async Task Completions_stream_in_openai_wire_format_and_match_hugging_faces_greedy_tokens()
    {
        var (status, body) = await Post("/v1/completions", """{"model":"gpt2-tiny","prompt":"The quick brown fox","max_tokens":12,"temperature":0}""");
        Assert.Equal(HttpStatusCode.OK, status);
        string hf = f.Model.Tokenizer.Decode(HfGreedy);
        Assert.Equal("text_completion", (string)body["object"]!);
        Assert.Equal(hf, (string)body["choices"]![0]!["text"]!);
        Assert.Equal("length", (string)body["choices"]![0]!["finish_reason"]!);
        Assert.Equal(16, (int)body["usage"]!["total_tokens"]!);

        var r = await f.Http.PostAsync("/v1/completions", JsonBody("""{"model":"gpt2-tiny","prompt":"The quick brown fox","max_tokens":12,"temperature":0,"stream":true,"stream_options":{"include_usage":true}}"""));
        Assert.Equal("text/event-stream", r.Content.Headers.ContentType!.MediaType);
        var events = Events(await r.Content.ReadAsStringAsync());
        Assert.Equal("[DONE]", events[^1]);
        var chunks = events.SkipLast(1).Select(e => JsonNode.Parse(e)!.AsObject()).ToList();
        Assert.Equal(12 + 1, chunks.Count);                                  // a chunk per token, then the usage chunk
        Assert.Empty(chunks[^1]["choices"]!.AsArray());
        Assert.Equal(12, (int)chunks[^1]["usage"]!["completion_tokens"]!);
        Assert.Equal(hf, string.Concat(chunks.SkipLast(1).Select(c => (string)c["choices"]![0]!["text"]!)));
        Assert.Equal("length", (string)chunks[^2]["choices"]![0]!["finish_reason"]!);
        Assert.All(chunks, c => Assert.Equal((string)chunks[0]["id"]!, (string)c["id"]!));

        // Without include_usage: no usage chunk. n = 2 sampled with a seed: two choices, reproducible.
        string req = """{"model":"gpt2-tiny","prompt":"Hello","max_tokens":5,"temperature":0.9,"top_p":0.9,"seed":11,"n":2,"stop":["\n"]}""";
        var a = (await Post("/v1/completions", req)).Body; var b = (await Post("/v1/completions", req)).Body;
        Assert.Equal(2, a["choices"]!.AsArray().Count);
        Assert.Equal(a["choices"]!.ToJsonString(), b["choices"]!.ToJsonString());
        r = await f.Http.PostAsync("/v1/completions", JsonBody("""{"model":"gpt2-tiny","prompt":"Hello","max_tokens":3,"stream":true}"""));
        Assert.DoesNotContain("usage", await r.Content.ReadAsStringAsync());
        // n = 2 streamed: chunks of both choices, each choice's text and finish reason as in the whole answer.
        r = await f.Http.PostAsync("/v1/completions", JsonBody(req.Replace("\"n\":2", "\"n\":2,\"stream\":true")));
        var streamed = Events(await r.Content.ReadAsStringAsync()).SkipLast(1).Select(e => JsonNode.Parse(e)!["choices"]![0]!).ToList();
        for (int i = 0; i < 2; i++)
        {
            var mine = streamed.Where(c => (int)c["index"]! == i).ToList();
            Assert.Equal((string)a["choices"]![i]!["text"]!, string.Concat(mine.Select(c => (string)c["text"]!)));
            Assert.Equal((string)a["choices"]![i]!["finish_reason"]!, (string)mine[^1]["finish_reason"]!);
        }
    }

    [Fact]
    public async Task Bad_requests_get_openai_shaped_4xx_errors_and_the_server_stays_healthy()
    {
        var (s, b) = await Post("/v1/completions", """{"model":"gpt2-tiny","prompt":"x",""");
        Assert.Equal(HttpStatusCode.BadRequest, s); AssertError(b, "invalid_request_error", "invalid_json");
        (s, b) = await Post("/v1/chat/completions", """{"model":"nope","messages":[{"role":"user","content":"hi"}]}""");
        Assert.Equal(HttpStatusCode.NotFound, s); AssertError(b, "invalid_request_error", "model_not_found");
        Assert.Equal("model", (string?)b["error"]!["param"]);
        (s, b) = await Post("/v1/completions", "{\"prompt\":\"" + new string('a', 100_000) + "\"}");
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, s); AssertError(b, "invalid_request_error", "request_too_large");
        (s, b) = await Post("/v1/completions", "{\"prompt\":\"" + string.Concat(Enumerable.Repeat("word ", 80)) + "\"}");
        Assert.Equal(HttpStatusCode.BadRequest, s); AssertError(b, "invalid_request_error", "context_length_exceeded");
        (s, b) = await Post("/v1/completions", """{"prompt":"The quick brown fox","max_tokens":61}""");
        Assert.Equal(HttpStatusCode.BadRequest, s); AssertError(b, "invalid_request_error", "context_length_exceeded");
        foreach (var (json, param) in new[]
        {
            ("""{"prompt":"a","temperature":5}""", "temperature"), ("""{"prompt":"a","top_p":0}""", "top_p"),
            ("""{"prompt":"a","max_tokens":0}""", "max_tokens"), ("""{"prompt":"a","n":0}""", "n"),
            ("""{"prompt":"a","temperature":"hot"}""", "temperature"), ("""{"prompt":"a","stop":[1]}""", "stop"),
            ("""{"prompt":"a","seed":1.5}""", "seed"), ("""{"max_tokens":3}""", "prompt"),
        })
        {
            (s, b) = await Post("/v1/completions", json);
            Assert.True(s == HttpStatusCode.BadRequest, json);
            AssertError(b, "invalid_request_error");
            Assert.Equal(param, (string?)b["error"]!["param"]);
        }
        (s, b) = await Post("/v1/chat/completions", """{"messages":[{"role":"wizard","content":"hi"}]}""");
        Assert.Equal(HttpStatusCode.BadRequest, s); Assert.Equal("messages[0].role", (string?)b["error"]!["param"]);
        (s, b) = await Post("/v1/classify", """{"input":"hi"}""");
        Assert.Equal(HttpStatusCode.BadRequest, s); AssertError(b, "invalid_request_error", "wrong_task");

        using var anon = new HttpClient { BaseAddress = new Uri(f.Server.Url) };
        (s, b) = await Post("/v1/completions", """{"prompt":"a"}""", anon);
        Assert.Equal(HttpStatusCode.Unauthorized, s); AssertError(b, "invalid_request_error", "invalid_api_key");
        anon.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", "sk-wrong");
        (s, b) = await Post("/v1/completions", """{"prompt":"a"}""", anon);
        Assert.Equal(HttpStatusCode.Unauthorized, s);
        Assert.Equal(HttpStatusCode.OK, (await anon.GetAsync("/health")).StatusCode);   // health needs no key

        var metrics = await (await f.Http.GetAsync("/metrics")).Content.ReadAsStringAsync();
        Assert.Contains("tasklm_http_requests_total{route=\"/v1/completions\",status=\"400\"}", metrics);
        Assert.Contains("tasklm_http_requests_total{route=\"/v1/completions\",status=\"401\"}", metrics);
        Assert.Contains("tasklm_http_request_duration_seconds_bucket{route=\"/v1/completions\",le=\"+Inf\"}", metrics);
    }

    [Fact]
    public async Task Errors_name_the_field_the_request_sent_and_invalid_utf8_is_a_400()
    {
        // Audit: max_completion_tokens 0 was reported as 'max_tokens'; an over-long prompt on /v1/completions as 'messages';
        // invalid UTF-8 inside a JSON string was a 500.
        var (st, b) = await Post("/v1/chat/completions", """{"messages":[{"role":"user","content":"hi"}],"max_completion_tokens":0}""");
        Assert.Equal(HttpStatusCode.BadRequest, st);
        Assert.Equal("max_completion_tokens", (string?)b["error"]!["param"]);
        Assert.Contains("'max_completion_tokens' must be at least 1", (string?)b["error"]!["message"]);
        (st, b) = await Post("/v1/completions", new JsonObject { ["prompt"] = string.Concat(Enumerable.Repeat("hello ", 200)), ["max_tokens"] = 2 }.ToJsonString());
        Assert.Equal(HttpStatusCode.BadRequest, st);
        AssertError(b, "invalid_request_error", "context_length_exceeded");
        Assert.Equal("prompt", (string?)b["error"]!["param"]);
        var bytes = Encoding.UTF8.GetBytes("{\"prompt\": \"caf\u00e9 x\", \"max_tokens\": 2}").ToList();
        int at = bytes.IndexOf((byte)'x');
        bytes[at] = 0xFF;   // a byte that is never UTF-8
        var content = new ByteArrayContent(bytes.ToArray());
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        var r = await f.Http.PostAsync("/v1/completions", content);
        Assert.Equal(HttpStatusCode.BadRequest, r.StatusCode);
        AssertError(JsonNode.Parse(await r.Content.ReadAsStringAsync())!.AsObject(), "invalid_request_error", "invalid_json");
        Assert.Equal(HttpStatusCode.OK, (await f.Http.GetAsync("/health")).StatusCode);
    }

    [Fact]
    public async Task Thirty_two_concurrent_completions_are_all_answered_batched_and_the_server_stays_healthy()
    {
        long batches = f.Model.Stats.Batches, rows = f.Model.Stats.BatchRows;
        var tasks = Enumerable.Range(0, 32).Select(i => Post("/v1/completions",
            $$"""{"model":"gpt2-tiny","prompt":"Request {{i}} says","max_tokens":{{8 + i % 5}},"temperature":0}""")).ToList();
        var results = await Task.WhenAll(tasks);
        Assert.All(results, r => Assert.Equal(HttpStatusCode.OK, r.Status));
        double mean = (f.Model.Stats.BatchRows - rows) / (double)(f.Model.Stats.Batches - batches);
        Assert.True(mean > 2, $"mean rows per decoding step {mean:0.0}: concurrent requests were not batched");
        for (int i = 0; i < 32; i++)
        {
            // Each answer is the one this prompt gets alone.
            var solo = await f.Model.GenerateTextAsync($"Request {i} says", new GenerateOptions { MaxTokens = 8 + i % 5 });
            Assert.Equal(solo.Text, (string)results[i].Body["choices"]![0]!["text"]!);
        }
        var health = await f.Http.GetAsync("/health");
        Assert.Equal(HttpStatusCode.OK, health.StatusCode);
        var metrics = await (await f.Http.GetAsync("/metrics")).Content.ReadAsStringAsync();
        Assert.Contains("tasklm_batch_size_bucket{le=\"32\"}", metrics);
        Assert.Contains("tasklm_tokens_out_total", metrics);
        Assert.Contains("tasklm_queue_length 0", metrics);
    }

    [Fact]
    public async Task Chat_stream_of_raw_sse_starts_with_the_role_and_ends_with_done()
    {
        var r = await f.Http.PostAsync("/v1/chat/completions", JsonBody("""{"model":"gpt2-tiny","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":[{"type":"text","text":"Hi"}]}],"max_tokens":4,"temperature":0,"stream":true,"stream_options":{"include_usage":true}}"""));
        var events = Events(await r.Content.ReadAsStringAsync());
        Assert.Equal("[DONE]", events[^1]);
        var first = JsonNode.Parse(events[0])!;
        Assert.Equal("chat.completion.chunk", (string)first["object"]!);
        Assert.Equal("assistant", (string)first["choices"]![0]!["delta"]!["role"]!);
        var usage = JsonNode.Parse(events[^2])!;
        Assert.Equal(4, (int)usage["usage"]!["completion_tokens"]!);
        Assert.Equal(f.Model.CountTokens("System: Be brief.\nUser: Hi\nAssistant:"), (int)usage["usage"]!["prompt_tokens"]!);
        // Four stop sequences (OpenAI's most) are accepted: the chat template's own stop does not count against them.
        var four = await f.Http.PostAsync("/v1/chat/completions", JsonBody("""{"messages":[{"role":"user","content":"Hi"}],"max_tokens":4,"temperature":0,"stop":["a","b","c","d"]}"""));
        Assert.Equal(HttpStatusCode.OK, four.StatusCode);
        var five = await f.Http.PostAsync("/v1/chat/completions", JsonBody("""{"messages":[{"role":"user","content":"Hi"}],"max_tokens":4,"stop":["a","b","c","d","e"]}"""));
        Assert.Equal(HttpStatusCode.BadRequest, five.StatusCode);
    }

    [Fact]
    public async Task Garbage_on_every_post_route_gets_an_openai_shaped_4xx_and_the_server_keeps_serving()
    {
        string deep = new string('[', 5000) + new string(']', 5000);
        var bodies = new[]
        {
            "", "null", "[]", "123", "\"text\"", "{", deep, "{\"input\":null}", "{\"input\":[1,2]}", "{\"input\":{}}", "{\"input\":[]}",
            "{\"prompt\":{}}", "{\"prompt\":[]}", "{\"messages\":\"hi\"}", "{\"messages\":[1]}", "{\"messages\":[{\"role\":\"user\",\"content\":7}]}",
            "{\"question\":1,\"context\":2}", "{\"input\":[{\"question\":\"q\"}]}", "{\"max_tokens\":1e300,\"prompt\":\"a\"}", "{\"stream\":\"yes\",\"prompt\":\"a\"}",
            "{\"stream_options\":{\"include_usage\":1},\"prompt\":\"a\"}", "{\"n\":1000000,\"prompt\":\"a\"}", "{\"model\":5}",
        };
        foreach (var route in new[] { "/v1/completions", "/v1/chat/completions", "/v1/embeddings", "/v1/classify", "/v1/tag", "/v1/answer" })
            foreach (var body in bodies)
            {
                var r = await f.Http.PostAsync(route, JsonBody(body));
                string text = await r.Content.ReadAsStringAsync();
                Assert.True((int)r.StatusCode is >= 400 and < 500, $"{route} {body[..Math.Min(40, body.Length)]}: {(int)r.StatusCode} {text}");
                AssertError(JsonNode.Parse(text)!.AsObject(), "invalid_request_error");
            }
        var bytes = new ByteArrayContent([0x7B, 0x22, 0x70, 0x22, 0x3A, 0x22, 0xC3, 0x28, 0x22, 0x7D]);   // {"p":"\xC3(" : invalid UTF-8
        bytes.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        var bad = await f.Http.PostAsync("/v1/completions", bytes);
        Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await f.Http.GetAsync("/health")).StatusCode);
        var ok = await Post("/v1/completions", """{"prompt":"Hello","max_tokens":2,"temperature":0}""");
        Assert.Equal(HttpStatusCode.OK, ok.Status);
    }
}

/// <summary>Servers with their own limits: a tiny queue (429), a timeout that fires at once (error mid-stream), a long model (disconnect).</summary>
public class ServerLimitTests
{
    public ServerLimitTests() => TorchBackend.EnsureLoaded();

    static StringContent JsonBody(string json) => new(json, Encoding.UTF8, "application/json");

    [Fact]
    public async Task A_full_queue_answers_429_and_every_accepted_request_completes()
    {
        await using var server = await TaskLMServer.StartAsync(new ServerOptions { Port = 0 },
            () => TaskLMModel.Load(ServingFixtures.Hf("gpt2-tiny"), new TaskLMModelOptions { MaxBatchSize = 1, MaxQueue = 1 }));
        await server.Ready;
        using var http = new HttpClient { BaseAddress = new Uri(server.Url) };
        var responses = await Task.WhenAll(Enumerable.Range(0, 12).Select(_ => http.PostAsync("/v1/completions", JsonBody("""{"prompt":"Hello there","max_tokens":50,"temperature":0}"""))));
        var codes = responses.Select(r => r.StatusCode).ToList();
        Assert.Contains(HttpStatusCode.TooManyRequests, codes);
        Assert.Contains(HttpStatusCode.OK, codes);
        Assert.All(codes, c => Assert.True(c is HttpStatusCode.OK or HttpStatusCode.TooManyRequests, c.ToString()));
        var limited = JsonNode.Parse(await responses.First(r => r.StatusCode == HttpStatusCode.TooManyRequests).Content.ReadAsStringAsync())!;
        Assert.Equal("rate_limit_exceeded", (string)limited["error"]!["type"]!);
        foreach (var ok in responses.Where(r => r.StatusCode == HttpStatusCode.OK))
            Assert.Equal(50, (int)JsonNode.Parse(await ok.Content.ReadAsStringAsync())!["usage"]!["completion_tokens"]!);
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/health")).StatusCode);
    }

    [Fact]
    public async Task A_timeout_mid_stream_is_sent_as_an_error_chunk_and_the_stream_still_ends()
    {
        // A timeout of one tick fires before the first token: after the stream's first chunk, never before the headers.
        await using var server = await TaskLMServer.StartAsync(new ServerOptions { Port = 0, RequestTimeout = TimeSpan.FromTicks(1) },
            () => TaskLMModel.Load(ServingFixtures.Hf("gpt2-tiny")));
        await server.Ready;
        using var http = new HttpClient { BaseAddress = new Uri(server.Url) };
        var r = await http.PostAsync("/v1/chat/completions", JsonBody("""{"messages":[{"role":"user","content":"Hi"}],"max_tokens":20,"stream":true}"""));
        Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        var events = (await r.Content.ReadAsStringAsync()).Split("\n\n", StringSplitOptions.RemoveEmptyEntries).Select(e => e["data: ".Length..]).ToList();
        Assert.Equal("[DONE]", events[^1]);
        Assert.Equal("assistant", (string)JsonNode.Parse(events[0])!["choices"]![0]!["delta"]!["role"]!);
        var err = JsonNode.Parse(events[^2])!["error"]!;
        Assert.Equal("timeout", (string)err["type"]!);
        // Not streaming: the same timeout is a 504 in OpenAI's shape.
        var plain = await http.PostAsync("/v1/completions", JsonBody("""{"prompt":"Hi","max_tokens":20}"""));
        Assert.Equal(HttpStatusCode.GatewayTimeout, plain.StatusCode);
        Assert.Equal("timeout", (string)JsonNode.Parse(await plain.Content.ReadAsStringAsync())!["error"]!["code"]!);
        // Encoder routes have the same deadline.
        var emb = await http.PostAsync("/v1/embeddings", JsonBody("""{"input":["Hi","there"]}"""));
        Assert.Equal(HttpStatusCode.GatewayTimeout, emb.StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/health")).StatusCode);
    }

    /// <summary>A small GPT-2 with a 1024-token context saved to a temp folder: a 1000-token generation lasts long after a client leaves.</summary>
    static string LongGpt2()
    {
        torch_seed();
        string dir = ServingFixtures.TempDir();
        ModelFactory.FromPreset("gpt2-tiny", "causal-lm", new Dictionary<string, object> { ["n_positions"] = 1024, ["n_layer"] = 2, ["n_embd"] = 64, ["n_head"] = 2 }).SavePretrained(dir);
        return dir;
    }

    /// <summary>Sends one HTTP/1.1 request on a socket of its own (no connection pool) and returns the open socket.</summary>
    static async Task<System.Net.Sockets.TcpClient> RawPost(string url, string path, string json)
    {
        var uri = new Uri(url);
        var tcp = new System.Net.Sockets.TcpClient();
        await tcp.ConnectAsync(uri.Host, uri.Port);
        byte[] body = Encoding.UTF8.GetBytes(json);
        string head = $"POST {path} HTTP/1.1\r\nHost: {uri.Authority}\r\nContent-Type: application/json\r\nContent-Length: {body.Length}\r\n\r\n";
        var stream = tcp.GetStream();
        await stream.WriteAsync(Encoding.ASCII.GetBytes(head));
        await stream.WriteAsync(body);
        return tcp;
    }

    /// <summary>Waits (at most a minute) until the model has no running sequence and either cancelled one or generated <paramref name="max"/> tokens.</summary>
    static async Task SettleAsync(TaskLMModel model, int max)
    {
        var deadline = DateTime.UtcNow.AddMinutes(1);
        while (!((model.Stats.Cancelled > 0 || model.Stats.TokensOut >= max) && model.Stats.ActiveSequences == 0 && model.Stats.QueueLength == 0) && DateTime.UtcNow < deadline)
            await Task.Delay(20);
    }

    // A pooled HttpClient is no disconnecting client: disposing a half-read response makes SocketsHttpHandler drain it
    // (up to 1 MB or 2 s) to reuse the connection, so the server keeps streaming to a live reader. Here the client
    // closes its socket, as a killed process or a browser tab does.
    [Fact]
    public async Task A_client_that_disconnects_mid_stream_cancels_its_sequence()
    {
        await using var server = await TaskLMServer.StartAsync(new ServerOptions { Port = 0 }, () => TaskLMModel.Load(LongGpt2()));
        var model = await server.Ready;
        IAsyncEnumerator<GeneratedChunk> survivor;
        using (var tcp = await RawPost(server.Url, "/v1/completions", """{"prompt":"Hello","max_tokens":1000,"temperature":0,"stream":true}"""))
        {
            using var reader = new StreamReader(tcp.GetStream(), Encoding.UTF8);
            Assert.Equal("HTTP/1.1 200 OK", await reader.ReadLineAsync());
            string? line;
            while ((line = await reader.ReadLineAsync()) != null && !line.Contains("data: ", StringComparison.Ordinal)) { }
            Assert.Contains("\"text_completion\"", line);   // a token chunk has arrived: the sequence is decoding
            // A second sequence joins the running batch before the client leaves.
            survivor = model.GenerateAsync("The quick brown fox", new GenerateOptions { MaxTokens = 200 }).GetAsyncEnumerator();
            Assert.True(await survivor.MoveNextAsync());
            Assert.Equal(2, model.Stats.ActiveSequences);
        }   // the socket closes here, mid-stream
        var text = new StringBuilder(survivor.Current.Text);
        while (await survivor.MoveNextAsync()) text.Append(survivor.Current.Text);
        await survivor.DisposeAsync();
        await SettleAsync(model, 1200);
        Assert.Equal(1, model.Stats.Cancelled);
        Assert.True(model.Stats.TokensOut < 1200, $"{model.Stats.TokensOut} tokens: generation ran to the end after the client left");
        Assert.Equal(0, model.Stats.ActiveSequences);                                     // it left the running batch
        // The row that stayed got the answer it gets alone; the server is fine afterwards and its metrics say what happened.
        Assert.Equal((await model.GenerateTextAsync("The quick brown fox", new GenerateOptions { MaxTokens = 200 })).Text, text.ToString());
        using var http = new HttpClient { BaseAddress = new Uri(server.Url) };
        var ok = await http.PostAsync("/v1/completions", JsonBody("""{"prompt":"Hello","max_tokens":5,"temperature":0}"""));
        Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        Assert.Equal(5, (int)JsonNode.Parse(await ok.Content.ReadAsStringAsync())!["usage"]!["completion_tokens"]!);
        var metrics = await http.GetStringAsync("/metrics");
        Assert.Contains("tasklm_sequences_cancelled_total 1\n", metrics);
        Assert.Contains("tasklm_active_sequences 0\n", metrics);
    }

    [Fact]
    public async Task A_client_that_disconnects_before_a_whole_completion_cancels_its_sequence()
    {
        // Not streaming: nothing is written until the end, so only the connection's close can tell the server.
        await using var server = await TaskLMServer.StartAsync(new ServerOptions { Port = 0 }, () => TaskLMModel.Load(LongGpt2()));
        var model = await server.Ready;
        using (var tcp = await RawPost(server.Url, "/v1/completions", """{"prompt":"Hello","max_tokens":1000,"temperature":0}"""))
        {
            var deadline = DateTime.UtcNow.AddMinutes(1);
            while (model.Stats.TokensOut == 0 && DateTime.UtcNow < deadline) await Task.Delay(5);   // decoding has begun
        }
        await SettleAsync(model, 1000);
        Assert.Equal(1, model.Stats.Cancelled);
        Assert.True(model.Stats.TokensOut < 1000, $"{model.Stats.TokensOut} tokens: generation ran to the end after the client left");
        Assert.Equal(0, model.Stats.ActiveSequences);
        // Counted as the client's doing (499), not as a server error (audit: it was counted as 500).
        using var http = new HttpClient();
        string metrics = "";
        for (var until = DateTime.UtcNow.AddSeconds(30); DateTime.UtcNow < until && !metrics.Contains("status=\"499\""); await Task.Delay(50))
            metrics = await http.GetStringAsync(server.Url + "/metrics");
        Assert.Contains("tasklm_http_requests_total{route=\"/v1/completions\",status=\"499\"} 1", metrics);
        Assert.DoesNotContain("status=\"500\"", metrics);
    }

    [Fact]
    public async Task A_client_that_leaves_while_queued_frees_its_place_in_the_queue()
    {
        // One decoding slot, one queue place: an in-process sequence holds the slot, a raw client waits in the queue.
        await using var server = await TaskLMServer.StartAsync(new ServerOptions { Port = 0 },
            () => TaskLMModel.Load(LongGpt2(), new TaskLMModelOptions { MaxBatchSize = 1, MaxQueue = 1 }));
        var model = await server.Ready;
        using var holdCts = new CancellationTokenSource();
        var hold = model.GenerateAsync("Hello", new GenerateOptions { MaxTokens = 1000 }, holdCts.Token).GetAsyncEnumerator();
        Assert.True(await hold.MoveNextAsync());                                          // it is decoding
        using var http = new HttpClient { BaseAddress = new Uri(server.Url) };
        using (var tcp = await RawPost(server.Url, "/v1/completions", """{"prompt":"Hi","max_tokens":5,"temperature":0}"""))
        {
            var deadline = DateTime.UtcNow.AddMinutes(1);
            while (model.Stats.QueueLength == 0 && DateTime.UtcNow < deadline) await Task.Delay(2);
            Assert.Equal(1, model.Stats.QueueLength);
            var full = await http.PostAsync("/v1/completions", JsonBody("""{"prompt":"Hi","max_tokens":5,"temperature":0}"""));
            Assert.Equal(HttpStatusCode.TooManyRequests, full.StatusCode);
        }   // the queued client leaves
        var until = DateTime.UtcNow.AddMinutes(1);
        while ((model.Stats.QueueLength > 0 || model.Stats.Cancelled == 0) && DateTime.UtcNow < until) await Task.Delay(2);
        Assert.Equal(0, model.Stats.QueueLength);
        Assert.Equal(1, model.Stats.Cancelled);
        Assert.Equal(1, model.Stats.ActiveSequences);                                     // while the first sequence still decodes
        // The freed place takes a new request; it is answered once the slot is free.
        var next = http.PostAsync("/v1/completions", JsonBody("""{"prompt":"Hi","max_tokens":5,"temperature":0}"""));
        holdCts.Cancel();
        try { while (await hold.MoveNextAsync()) { } } catch (OperationCanceledException) { }
        await hold.DisposeAsync();
        var answered = await next;
        Assert.Equal(HttpStatusCode.OK, answered.StatusCode);
    }

    static void torch_seed() => TorchSharp.torch.manual_seed(1234);
}
