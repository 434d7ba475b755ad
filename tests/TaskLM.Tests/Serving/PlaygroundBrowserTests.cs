// The playground page in a real browser: Debian's chromium, headless, driven over the DevTools protocol (a WebSocket),
// types a prompt, clicks Generate and reads the streamed answer; and classifies through the page.
using System.Diagnostics;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using TaskLM.Native;
using TaskLM.Serving;

namespace TaskLM.Tests.Serving;

/// <summary>Skips the test, saying what to install, when no chromium is on this machine (CI: apt-get install -y chromium).</summary>
public sealed class ChromiumFactAttribute : FactAttribute
{
    public ChromiumFactAttribute()
    {
        if (Chromium.Executable == null)
            Skip = "chromium is not installed: run `apt-get install -y chromium` (Debian) or set CHROMIUM=/path/to/chromium to run the playground browser test";
    }
}

/// <summary>A headless chromium with one page, driven through the Chrome DevTools Protocol.</summary>
internal sealed class Chromium : IAsyncDisposable
{
    public static string? Executable =>
        Environment.GetEnvironmentVariable("CHROMIUM") is { Length: > 0 } env && File.Exists(env) ? env
        : new[] { "/usr/bin/chromium", "/usr/bin/chromium-browser" }.FirstOrDefault(File.Exists);

    readonly Process _p;
    readonly ClientWebSocket _ws = new();
    readonly string _profile;
    int _id;

    Chromium(Process p, string profile) { _p = p; _profile = profile; }

    public static async Task<Chromium> StartAsync(string url)
    {
        string profile = ServingFixtures.TempDir();
        var psi = new ProcessStartInfo(Executable!) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var a in new[] { "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                     "--disable-sync", "--no-first-run", "--disable-dev-shm-usage", $"--user-data-dir={profile}", "--remote-debugging-port=0", "--remote-allow-origins=*", url })
            psi.ArgumentList.Add(a);
        var p = Process.Start(psi)!;
        var c = new Chromium(p, profile);
        var ready = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        var log = new StringBuilder();
        p.ErrorDataReceived += (_, e) =>
        {
            if (e.Data == null) { ready.TrySetException(new InvalidOperationException($"chromium exited: {log}")); return; }
            lock (log) log.AppendLine(e.Data);
            int i = e.Data.IndexOf("ws://", StringComparison.Ordinal);
            if (e.Data.Contains("DevTools listening on", StringComparison.Ordinal) && i >= 0) ready.TrySetResult(e.Data[i..].Trim());
        };
        p.BeginErrorReadLine();
        p.OutputDataReceived += (_, _) => { };
        p.BeginOutputReadLine();
        if (await Task.WhenAny(ready.Task, Task.Delay(TimeSpan.FromMinutes(1))) != ready.Task) throw new TimeoutException($"chromium did not open its DevTools port: {log}");
        var browserWs = new Uri(await ready.Task);
        // The page target's own socket, from the DevTools HTTP endpoint of the same port.
        using var http = new HttpClient();
        string? pageWs = null;
        for (int attempt = 0; attempt < 100 && pageWs == null; attempt++)
        {
            var list = JsonNode.Parse(await http.GetStringAsync($"http://{browserWs.Authority}/json/list"))!.AsArray();
            pageWs = list.FirstOrDefault(t => (string?)t!["type"] == "page")?["webSocketDebuggerUrl"]?.GetValue<string>();
            if (pageWs == null) await Task.Delay(100);
        }
        await c._ws.ConnectAsync(new Uri(pageWs ?? throw new InvalidOperationException("chromium has no page target")), CancellationToken.None);
        return c;
    }

    /// <summary>Evaluates JavaScript in the page (promises awaited) and returns its value as JSON.</summary>
    public async Task<JsonNode?> Eval(string expression)
    {
        int id = ++_id;
        var msg = new JsonObject { ["id"] = id, ["method"] = "Runtime.evaluate", ["params"] = new JsonObject { ["expression"] = expression, ["awaitPromise"] = true, ["returnByValue"] = true } };
        await _ws.SendAsync(Encoding.UTF8.GetBytes(msg.ToJsonString()), WebSocketMessageType.Text, true, CancellationToken.None);
        var buf = new byte[1 << 16];
        while (true)
        {
            using var ms = new MemoryStream();
            WebSocketReceiveResult r;
            do { r = await _ws.ReceiveAsync(buf, CancellationToken.None); ms.Write(buf, 0, r.Count); } while (!r.EndOfMessage);
            var reply = JsonNode.Parse(Encoding.UTF8.GetString(ms.ToArray()))!;
            if ((int?)reply["id"] != id) continue;                              // an event, or another reply
            if (reply["result"]?["exceptionDetails"] is JsonNode ex) throw new InvalidOperationException($"page script failed: {ex.ToJsonString()}");
            return reply["result"]?["result"]?["value"]?.DeepClone();
        }
    }

    /// <summary>Evaluates <paramref name="condition"/> until it is true (the page works asynchronously); fails after a minute.</summary>
    public async Task WaitFor(string condition, string what)
    {
        var deadline = DateTime.UtcNow.AddMinutes(1);
        // Until the page has loaded its elements may not exist yet: an error counts as "not yet".
        while (!((await Eval($"(() => {{ try {{ return !!({condition}); }} catch (e) {{ return false; }} }})()"))?.GetValue<bool>() ?? false))
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"the page never got to: {what}");
            await Task.Delay(50);
        }
    }

    public async ValueTask DisposeAsync()
    {
        try { await _ws.CloseAsync(WebSocketCloseStatus.NormalClosure, "", CancellationToken.None); } catch (Exception) { }
        _ws.Dispose();
        if (!_p.HasExited) _p.Kill(entireProcessTree: true);
        await _p.WaitForExitAsync();
        _p.Dispose();
        try { Directory.Delete(_profile, true); } catch (IOException) { }
    }
}

public class PlaygroundBrowserTests
{
    public PlaygroundBrowserTests() => TorchBackend.EnsureLoaded();

    [ChromiumFact]
    public async Task A_typed_prompt_gets_a_streamed_answer_in_the_page()
    {
        await using var server = await TaskLMServer.StartAsync(new ServerOptions { Port = 0 }, () => TaskLMModel.Load(ServingFixtures.Hf("gpt2-tiny")));
        var model = await server.Ready;
        await using var browser = await Chromium.StartAsync(server.Url + "/");
        await browser.WaitFor("document.getElementById('run').textContent === 'Generate'", "the model card loaded");
        Assert.Contains("causal-lm", (string)(await browser.Eval("document.getElementById('card').textContent"))!);
        await browser.Eval("""
            document.getElementById('input').value = 'The quick brown fox';
            document.getElementById('max-tokens').value = '12';
            document.getElementById('temperature').value = '0';
            document.getElementById('run').click(); true
            """);
        await browser.WaitFor("document.getElementById('status').textContent === 'done' || document.getElementById('status').textContent === 'error'", "the answer finished");
        string output = (string)(await browser.Eval("document.querySelector('#output .completion').textContent"))!;
        Assert.Equal("done", (string)(await browser.Eval("document.getElementById('status').textContent"))!);
        // HF's greedy continuation of the fixture prompt, arriving as 12 streamed pieces, shown after its prompt.
        Assert.Equal(model.Tokenizer.Decode(Enumerable.Repeat(14070, 12)), output);
        Assert.Equal("The quick brown fox", (string)(await browser.Eval("document.querySelector('#output .prompt').textContent"))!);
        Assert.Equal(12, (int)(await browser.Eval("window.tasklmChunks"))!);
    }

    [ChromiumFact]
    public async Task A_chat_is_shown_as_a_conversation_and_the_template_as_rendered_text()
    {
        // Audit: the card showed the chat template's raw text ("System: ...\nUser: ...\nAssistant:", backslash-n and all),
        // and a chat reply was printed bare, its leading space included, with no conversation around it.
        await using var server = await TaskLMServer.StartAsync(new ServerOptions { Port = 0 }, () => TaskLMModel.Load(ServingFixtures.Hf("gpt2-tiny")));
        var model = await server.Ready;
        await using var browser = await Chromium.StartAsync(server.Url + "/");
        await browser.WaitFor("document.getElementById('run').textContent === 'Generate'", "the model card loaded");
        string card = (string)(await browser.Eval("document.getElementById('card').textContent"))!;
        Assert.DoesNotContain("\\n", card);
        Assert.Contains("TaskLM plain text", card);
        // The template's example is the server's own rendering, with real line breaks.
        Assert.Equal(model.ChatTemplate.Format([("system", "You answer in one sentence."), ("user", "What is TaskLM?")]),
            (string)(await browser.Eval("document.getElementById('chat-template-example').textContent"))!);

        async Task<string> Say(string text)
        {
            await browser.Eval($$"""
                document.getElementById('input').value = '{{text}}';
                document.getElementById('max-tokens').value = '6';
                document.getElementById('run').click(); true
                """);
            await browser.WaitFor("document.getElementById('status').textContent === 'done' || document.getElementById('status').textContent === 'error'", "the reply finished");
            Assert.Equal("done", (string)(await browser.Eval("document.getElementById('status').textContent"))!);
            return (string)(await browser.Eval("[...document.querySelectorAll('#output .msg.assistant .text')].pop().textContent"))!;
        }
        await browser.Eval("document.getElementById('temperature').value = '0'; const c = document.getElementById('chat'); c.checked = true; c.dispatchEvent(new Event('change')); true");
        Assert.Equal("Message", (string)(await browser.Eval("document.getElementById('input-label').textContent"))!);
        string first = await Say("The quick brown fox");
        string prompt1 = model.ChatTemplate.Format([("user", "The quick brown fox")]);
        var direct = await model.GenerateTextAsync(prompt1, new GenerateOptions { MaxTokens = 6, Stop = model.ChatTemplate.Stops });
        Assert.Equal(direct.Text.TrimStart(), first);   // the reply, without the space after "Assistant:"
        Assert.Equal(prompt1, (string)(await browser.Eval("document.getElementById('seen').textContent"))!);

        // A second turn sends the whole conversation: both user turns and the reply are on the page, and the model saw all three.
        string second = await Say("and then");
        var turns = ((JsonArray)(await browser.Eval("[...document.querySelectorAll('#output .msg')].map(m => [m.classList[1], m.querySelector('.text').textContent])"))!)
            .Select(t => ((string)t![0]!, (string)t[1]!)).ToList();
        Assert.Equal([("user", "The quick brown fox"), ("assistant", first), ("user", "and then"), ("assistant", second)], turns);
        string prompt2 = model.ChatTemplate.Format([("user", "The quick brown fox"), ("assistant", first), ("user", "and then")]);
        Assert.Equal(prompt2, (string)(await browser.Eval("document.getElementById('seen').textContent"))!);
        var direct2 = await model.GenerateTextAsync(prompt2, new GenerateOptions { MaxTokens = 6, Stop = model.ChatTemplate.Stops });
        Assert.Equal(direct2.Text.TrimStart(), second);

        // New conversation empties it.
        await browser.Eval("document.getElementById('clear').click(); true");
        Assert.Equal(0, (int)(await browser.Eval("document.querySelectorAll('#output .msg').length"))!);
    }

    [ChromiumFact]
    public async Task A_typed_text_is_classified_in_the_page_with_its_run_metrics_shown()
    {
        // A run folder: best/ holds the model; eval.json and report.md sit beside it as `tasklm train` writes them.
        string run = ServingFixtures.TempDir();
        string best = Path.Combine(run, "best");
        Directory.CreateDirectory(best);
        string src = ServingFixtures.Bert("bert-cls", ["ham", "spam", "eggs"]);
        foreach (var file in Directory.GetFiles(src)) File.Copy(file, Path.Combine(best, Path.GetFileName(file)));
        File.WriteAllText(Path.Combine(run, "recipe.resolved.yaml"), "task: classification\nmodel:\n  init: bert-tiny\ndata:\n  train: train.jsonl\n  max_length: 32\n");
        File.WriteAllText(Path.Combine(run, "eval.json"), """{"task":"classification","split":"test","n":12,"metrics":{"accuracy":0.75,"macro_f1":0.5}}""");
        File.WriteAllText(Path.Combine(run, "report.md"), "# Run report\nmacro_f1 0.5 on the test split\n");
        await using var server = await TaskLMServer.StartAsync(new ServerOptions { Port = 0 }, () => TaskLMModel.Load(run));
        var model = await server.Ready;
        await using var browser = await Chromium.StartAsync(server.Url + "/");
        await browser.WaitFor("document.getElementById('run').textContent === 'Classify'", "the model card loaded");
        Assert.Contains("accuracy", (string)(await browser.Eval("document.getElementById('metrics').textContent"))!);
        Assert.Contains("macro_f1 0.5 on the test split", (string)(await browser.Eval("document.getElementById('report').textContent"))!);
        string text = ServingFixtures.Words(373, 33, 321);
        await browser.Eval($"document.getElementById('input').value = '{text}'; document.getElementById('run').click(); true");
        await browser.WaitFor("document.getElementById('status').textContent === 'done' || document.getElementById('status').textContent === 'error'", "the classification finished");
        string bold = (string)(await browser.Eval("[...document.querySelectorAll('#output tr')].find(tr => tr.style.fontWeight === 'bold').firstChild.textContent"))!;
        Assert.Equal(model.Classify(text).Label, bold);
    }
}
