// `tasklm serve` for encoder tasks (classify/tag/answer/embeddings, dynamic batching), /health while loading, and
// Microsoft.Extensions.AI's OpenAI adapter pointed at a `tasklm serve` process giving the in-process greedy answer.
using System.ClientModel;
using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.Extensions.AI;
using OpenAI;
using TaskLM.Native;
using TaskLM.Serving;

namespace TaskLM.Tests.Serving;

public class ServeEncoderAndAdapterTests
{
    public ServeEncoderAndAdapterTests() => TorchBackend.EnsureLoaded();

    static StringContent JsonBody(string json) => new(json, Encoding.UTF8, "application/json");

    [Fact]
    public async Task Classify_tag_and_answer_routes_return_what_the_in_process_api_returns_and_batch_concurrent_requests()
    {
        string cls = ServingFixtures.Bert("bert-cls", ["ham", "spam", "eggs"]);
        await using var server = await TaskLMServer.StartAsync(new ServerOptions { Port = 0 },
            () => TaskLMModel.Load(cls, new TaskLMModelOptions { BatchWindow = TimeSpan.FromMilliseconds(20) }));
        var model = await server.Ready;
        using var http = new HttpClient { BaseAddress = new Uri(server.Url) };
        string a = ServingFixtures.Words(373, 33, 321), b = ServingFixtures.Words(742, 932);
        var r = await http.PostAsync("/v1/classify", JsonBody(new JsonObject { ["input"] = new JsonArray(a, b) }.ToJsonString()));
        Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        var data = JsonNode.Parse(await r.Content.ReadAsStringAsync())!["data"]!.AsArray();
        var local = await model.ClassifyAsync([a, b]);
        for (int i = 0; i < 2; i++)
        {
            Assert.Equal(local[i].Label, (string)data[i]!["label"]!);
            foreach (var (name, p) in local[i].Probabilities) Assert.Equal(p, (double)data[i]!["probabilities"]![name]!, 6);
        }
        // 16 concurrent one-text requests share forward passes.
        long batches = model.Stats.Batches;
        var all = await Task.WhenAll(Enumerable.Range(0, 16).Select(i => http.PostAsync("/v1/classify", JsonBody($$"""{"input":"{{ServingFixtures.Words(5 + i)}}"}"""))));
        Assert.All(all, x => Assert.Equal(HttpStatusCode.OK, x.StatusCode));
        Assert.True(model.Stats.Batches - batches < 16, $"{model.Stats.Batches - batches} forward passes for 16 concurrent requests");
        // Embeddings (floats) from the same encoder; completions refused for a classifier.
        r = await http.PostAsync("/v1/embeddings", JsonBody($$"""{"input":["{{a}}"],"encoding_format":"float"}"""));
        var emb = JsonNode.Parse(await r.Content.ReadAsStringAsync())!["data"]![0]!["embedding"]!.AsArray().Select(x => (float)x!).ToArray();
        Assert.Equal((await model.EmbedAsync([a]))[0], emb);
        r = await http.PostAsync("/v1/completions", JsonBody("""{"prompt":"x"}"""));
        Assert.Equal(HttpStatusCode.BadRequest, r.StatusCode);
        Assert.Equal("wrong_task", (string)JsonNode.Parse(await r.Content.ReadAsStringAsync())!["error"]!["code"]!);

        string tok = ServingFixtures.Bert("bert-tok", ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]);
        await using var tagServer = await TaskLMServer.StartAsync(new ServerOptions { Port = 0 }, () => TaskLMModel.Load(tok));
        var tagModel = await tagServer.Ready;
        using var http2 = new HttpClient { BaseAddress = new Uri(tagServer.Url) };
        r = await http2.PostAsync("/v1/tag", JsonBody($$"""{"input":"{{a}} {{b}}"}"""));
        var tagged = JsonNode.Parse(await r.Content.ReadAsStringAsync())!["data"]![0]!;
        var localTags = (await tagModel.TagAsync([a + " " + b]))[0];
        Assert.Equal(localTags.Words.Select(w => w.Tag), tagged["words"]!.AsArray().Select(w => (string)w!["tag"]!));
        Assert.Equal(localTags.Entities!.Count, tagged["entities"]!.AsArray().Count);

        string qa = ServingFixtures.Bert("bert-qa");
        await using var qaServer = await TaskLMServer.StartAsync(new ServerOptions { Port = 0 }, () => TaskLMModel.Load(qa));
        var qaModel = await qaServer.Ready;
        using var http3 = new HttpClient { BaseAddress = new Uri(qaServer.Url) };
        r = await http3.PostAsync("/v1/answer", JsonBody($$"""{"input":[{"question":"{{a}}","context":"{{b}} w7 w8"},{"question":"{{b}}","context":"{{a}}"}]}"""));
        var answers = JsonNode.Parse(await r.Content.ReadAsStringAsync())!["data"]!.AsArray();
        var localAns = await qaModel.AnswerAsync([(a, b + " w7 w8"), (b, a)]);
        for (int i = 0; i < 2; i++)
        {
            Assert.Equal(localAns[i].Text, (string)answers[i]!["answer"]!);
            Assert.Equal(localAns[i].Score, (double)answers[i]!["score"]!, 6);
        }
        r = await http3.PostAsync("/v1/answer", JsonBody("""{"question":"w5"}"""));
        Assert.Equal("context", (string?)JsonNode.Parse(await r.Content.ReadAsStringAsync())!["error"]!["param"]);
    }

    [Fact]
    public async Task Health_is_503_while_the_model_loads_and_200_once_ready()
    {
        using var gate = new ManualResetEventSlim();
        await using var server = await TaskLMServer.StartAsync(new ServerOptions { Port = 0 }, () => { gate.Wait(); return TaskLMModel.Load(ServingFixtures.Hf("gpt2-tiny")); });
        using var http = new HttpClient { BaseAddress = new Uri(server.Url) };
        var h = await http.GetAsync("/health");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, h.StatusCode);
        Assert.Equal("loading", (string)JsonNode.Parse(await h.Content.ReadAsStringAsync())!["status"]!);
        var early = await http.PostAsync("/v1/completions", JsonBody("""{"prompt":"Hi"}"""));
        Assert.Equal(HttpStatusCode.ServiceUnavailable, early.StatusCode);
        Assert.Equal("model_loading", (string)JsonNode.Parse(await early.Content.ReadAsStringAsync())!["error"]!["code"]!);
        gate.Set();
        await server.Ready;
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/health")).StatusCode);
    }

    [Fact]
    public async Task Extensions_AI_openai_adapter_against_tasklm_serve_gives_the_in_process_greedy_answer()
    {
        string model = ServingFixtures.Hf("gpt2-tiny");
        await using var serve = await ServeProcess.StartAsync("--model", model, "--api-key", "k-123");
        IChatClient remote = new OpenAI.Chat.ChatClient("gpt2-tiny", new ApiKeyCredential("k-123"), new OpenAIClientOptions { Endpoint = new Uri(serve.Url + "/v1") }).AsIChatClient();
        using var local = TaskLMModel.Load(model);
        IChatClient inProcess = new TaskLMChatClient(local);
        var messages = new List<ChatMessage> { new(ChatRole.System, "You finish sentences."), new(ChatRole.User, "The quick brown fox") };
        var options = new ChatOptions { Temperature = 0, MaxOutputTokens = 8 };
        var viaServer = await remote.GetResponseAsync(messages, options);
        var direct = await inProcess.GetResponseAsync(messages, options);
        Assert.False(string.IsNullOrEmpty(direct.Text));
        Assert.Equal(direct.Text, viaServer.Text);
        Assert.Equal(direct.FinishReason, viaServer.FinishReason);
        Assert.Equal(direct.Usage!.InputTokenCount, viaServer.Usage!.InputTokenCount);
        var streamed = new StringBuilder();
        await foreach (var u in remote.GetStreamingResponseAsync(messages, options)) streamed.Append(u.Text);
        Assert.Equal(direct.Text, streamed.ToString());
    }
}
