// A model folder's own chat_template drives serving's chat prompts; folders without one keep TaskLM's plain-text template.
using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using TaskLM.Native;
using TaskLM.Serving;

namespace TaskLM.Tests.Serving;

public class ChatTemplateServingTests
{
    public ChatTemplateServingTests() => TorchBackend.EnsureLoaded();

    static readonly JsonArray Cases = JsonNode.Parse(File.ReadAllText(
        Path.Combine(AppContext.BaseDirectory, "fixtures", "tokenization", "chat-templates", "cases.json")))!["cases"]!.AsArray();

    static string Template(string namePrefix) => (string)Cases.First(c => ((string)c!["name"]!).StartsWith(namePrefix))!["template"]!;

    /// <summary>gpt2-tiny copied beside a tokenizer_config.json carrying <paramref name="template"/>.</summary>
    static string Gpt2WithTemplate(string template, string eos)
    {
        string dir = Path.Combine(ServingFixtures.TempDir(), "chat");
        Directory.CreateDirectory(dir);
        foreach (var f in Directory.GetFiles(ServingFixtures.Hf("gpt2-tiny"))) File.Copy(f, Path.Combine(dir, Path.GetFileName(f)));
        File.WriteAllText(Path.Combine(dir, "tokenizer_config.json"),
            new JsonObject { ["bos_token"] = "<s>", ["eos_token"] = eos, ["chat_template"] = template }.ToJsonString());
        return dir;
    }

    [Fact]
    public async Task Chat_prompt_uses_the_folders_template_and_its_eos_as_stop()
    {
        using var model = TaskLMModel.Load(Gpt2WithTemplate(Template("HuggingFaceTB/SmolLM2"), "<|im_end|>"));
        string prompt = model.ChatTemplate.Format([("system", "Be brief."), ("user", "Hi")]);
        // ChatML as SmolLM2's card documents it, ready for the assistant's turn.
        Assert.Equal("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n", prompt);
        Assert.Equal(["<|im_end|>"], model.ChatTemplate.Stops);
        Assert.NotNull(model.ChatTemplate.Model);
        var r = await model.GenerateTextAsync(prompt, new GenerateOptions { MaxTokens = 3, Stop = model.ChatTemplate.Stops });
        Assert.NotNull(r.Text);
    }

    [Fact]
    public void A_folder_without_a_chat_template_keeps_the_plain_text_default()
    {
        using var model = TaskLMModel.Load(ServingFixtures.Hf("gpt2-tiny"));
        Assert.Same(ChatTemplate.Default, model.ChatTemplate);
        Assert.Equal("User: Hi\nAssistant:", model.ChatTemplate.Format([("user", "Hi")]));
    }

    [Fact]
    public async Task A_template_refusing_the_messages_is_a_400_naming_the_template()
    {
        string dir = Gpt2WithTemplate(Template("mistralai/Mixtral"), "</s>");
        await using var server = await TaskLMServer.StartAsync(new ServerOptions { Port = 0 }, () => TaskLMModel.Load(dir));
        await server.Ready;
        using var http = new HttpClient { BaseAddress = new Uri(server.Url) };
        var ok = await http.PostAsync("/api/chat-prompt", new StringContent("""{"messages":[{"role":"user","content":"Hi"}]}""", Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        Assert.Equal("<s>[INST] Hi [/INST]", (string)JsonNode.Parse(await ok.Content.ReadAsStringAsync())!["prompt"]!);
        var bad = await http.PostAsync("/v1/chat/completions", new StringContent(
            """{"messages":[{"role":"user","content":"a"},{"role":"user","content":"b"}],"max_tokens":2}""", Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
        string message = (string)JsonNode.Parse(await bad.Content.ReadAsStringAsync())!["error"]!["message"]!;
        Assert.Contains("Conversation roles must alternate", message);
        Assert.Contains("tokenizer_config.json", message);
    }

    [Fact]
    public void A_template_outside_the_subset_loads_the_model_and_fails_chat_with_its_position()
    {
        using var model = TaskLMModel.Load(Gpt2WithTemplate("{% for m in messages %}{% break %}{% endfor %}", "</s>"));
        var e = Assert.Throws<TaskLM.Data.Tokenization.TemplateException>(() => model.ChatTemplate.Format([("user", "Hi")]));
        Assert.Contains("tokenizer_config.json", e.Message);
        Assert.Contains("1:27", e.Message);
        Assert.Contains("'break'", e.Message);
    }
}
