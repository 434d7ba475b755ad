// `tasklm serve`: an OpenAI-compatible HTTP server (ASP.NET Core minimal API on Kestrel) over one TaskLM model, plus the playground.
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Reflection;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using TaskLM.Data.Tokenization;

namespace TaskLM.Serving;

/// <summary>Settings of <see cref="TaskLMServer"/>.</summary>
public sealed record ServerOptions
{
    /// <summary>Address to listen on (loopback by default: put a proxy in front to expose it).</summary>
    public string Host { get; init; } = "127.0.0.1";
    /// <summary>Port; 0 picks a free one (see <see cref="TaskLMServer.Url"/>).</summary>
    public int Port { get; init; } = 8000;
    /// <summary>When set, every /v1 request needs <c>Authorization: Bearer KEY</c>.</summary>
    public string? ApiKey { get; init; }
    /// <summary>Largest request body; larger ones get 413.</summary>
    public long MaxBodyBytes { get; init; } = 1 << 20;
    /// <summary>Longest a request may take (model time); a stream that runs past it gets an error chunk and ends.</summary>
    public TimeSpan RequestTimeout { get; init; } = TimeSpan.FromSeconds(120);
    /// <summary>Most inputs in one /v1/classify, /v1/tag, /v1/answer or /v1/embeddings request.</summary>
    public int MaxBatchInputs { get; init; } = 256;
    /// <summary>Write request logs to the console.</summary>
    public bool Verbose { get; init; }
}

/// <summary>
/// The HTTP face of a <see cref="TaskLMModel"/>. Routes: OpenAI's /v1/completions, /v1/chat/completions (SSE
/// streaming in OpenAI's wire format), /v1/models, /v1/embeddings; TaskLM's /v1/classify, /v1/tag, /v1/answer;
/// /health (503 while the model loads, 200 once ready), /metrics (Prometheus), and the playground at /.
/// Errors have OpenAI's shape <c>{"error": {"message", "type", "param", "code"}}</c>.
/// </summary>
public sealed class TaskLMServer : IAsyncDisposable
{
    readonly WebApplication _app;
    readonly ServerOptions _o;
    readonly ServerMetrics _metrics = new();
    readonly Task<TaskLMModel> _loading;
    TaskLMModel? _model;
    string? _loadError;

    /// <summary>The address the server listens on, e.g. http://127.0.0.1:41234 (after <see cref="StartAsync"/>).</summary>
    public string Url { get; private set; } = "";
    /// <summary>Completes when the model has loaded (or faults with the load error).</summary>
    public Task<TaskLMModel> Ready => _loading;

    TaskLMServer(ServerOptions o, Func<TaskLMModel> load)
    {
        _o = o;
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        if (o.Verbose) builder.Logging.AddSimpleConsole(c => c.SingleLine = true);
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.Limits.MaxRequestBodySize = o.MaxBodyBytes;
            k.AddServerHeader = false;
            if (!IPAddress.TryParse(o.Host, out var ip))
            {
                if (o.Host == "localhost") k.ListenLocalhost(o.Port == 0 ? throw new ArgumentException("--port 0 needs an IP address for --host") : o.Port);
                else throw new ArgumentException($"--host '{o.Host}' is not an IP address (use 127.0.0.1, 0.0.0.0 or ::)");
            }
            else k.Listen(ip, o.Port);
        });
        _app = builder.Build();
        // Ready completes only once the routes can see the model (or the error).
        _loading = Task.Run(() =>
        {
            try { return _model = load(); }
            catch (Exception e) { _loadError = e.Message.Split('\n')[0]; throw; }
        });
        Routes();
    }

    /// <summary>Starts listening at once; the model loads in the background (/health answers 503 until it is ready).</summary>
    public static async Task<TaskLMServer> StartAsync(ServerOptions options, Func<TaskLMModel> load, CancellationToken ct = default)
    {
        var s = new TaskLMServer(options, load);
        await s._app.StartAsync(ct).ConfigureAwait(false);
        var addresses = s._app.Services.GetRequiredService<Microsoft.AspNetCore.Hosting.Server.IServer>().Features.Get<IServerAddressesFeature>()!.Addresses;
        s.Url = addresses.First().Replace("[::]", "localhost", StringComparison.Ordinal);
        return s;
    }

    /// <summary>Completes when the server stops (Ctrl+C or <see cref="DisposeAsync"/>).</summary>
    public Task WaitForShutdownAsync(CancellationToken ct = default) => _app.WaitForShutdownAsync(ct);

    /// <summary>Stops listening and frees the model.</summary>
    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync().ConfigureAwait(false);
        await _app.DisposeAsync().ConfigureAwait(false);
        try { (await _loading.ConfigureAwait(false)).Dispose(); } catch (Exception) { /* a failed load left nothing to free */ }
    }

    // ───────────── routing, errors, auth, metrics ─────────────

    sealed class ApiError(int status, string message, string type, string? param = null, string? code = null) : Exception(message)
    {
        public int Status { get; } = status;
        public string Type { get; } = type;
        public string? Param { get; } = param;
        public string? Code { get; } = code;
    }

    // Plain UTF-8 (no \u0027 for quotes) so messages read as written; still valid JSON for every client.
    static readonly JsonSerializerOptions Wire = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    static JsonObject ErrorBody(string message, string type, string? param, string? code) =>
        new() { ["error"] = new JsonObject { ["message"] = message, ["type"] = type, ["param"] = param, ["code"] = code } };

    void Routes()
    {
        var app = _app;
        app.Use(async (ctx, next) =>
        {
            var sw = Stopwatch.StartNew();
            string route = ctx.Request.Path.Value ?? "/";
            try
            {
                if (_o.ApiKey != null && route.StartsWith("/v1/", StringComparison.Ordinal))
                {
                    string auth = ctx.Request.Headers.Authorization.ToString();
                    if (auth != "Bearer " + _o.ApiKey)
                        throw new ApiError(401, auth.Length == 0 ? "Missing API key: send Authorization: Bearer <key>" : "Incorrect API key provided",
                            "invalid_request_error", null, "invalid_api_key");
                }
                await next(ctx).ConfigureAwait(false);
            }
            catch (Exception) when (ctx.RequestAborted.IsCancellationRequested)
            {
                // The client went away: nothing left to tell it. Before a response began, it is counted as 499 (nginx's
                // "client closed request"), not as a server error.
                if (!ctx.Response.HasStarted) ctx.Response.StatusCode = ClientClosedRequest;
            }
            catch (Exception e) when (!ctx.Response.HasStarted)
            {
                var (status, body) = Describe(e, ctx);
                ctx.Response.Clear();
                ctx.Response.StatusCode = status;
                ctx.Response.ContentType = "application/json";
                await ctx.Response.WriteAsync(body.ToJsonString(Wire)).ConfigureAwait(false);
            }
            finally
            {
                var endpoint = ctx.GetEndpoint() as RouteEndpoint;
                _metrics.Observe(endpoint?.RoutePattern.RawText ?? "unmatched", ctx.Response.StatusCode, sw.Elapsed.TotalSeconds);
            }
        });

        app.MapGet("/health", (HttpContext ctx) =>
        {
            var (status, body) = _model != null ? (200, new JsonObject { ["status"] = "ok", ["model"] = _model.Card.Id, ["task"] = _model.Task })
                : _loadError != null ? (503, new JsonObject { ["status"] = "error", ["error"] = _loadError })
                : (503, new JsonObject { ["status"] = "loading" });
            return Json(ctx, body, status);
        });
        app.MapGet("/metrics", (HttpContext ctx) =>
        {
            ctx.Response.ContentType = "text/plain; version=0.0.4; charset=utf-8";
            return ctx.Response.WriteAsync(_metrics.Render(_model?.Stats));
        });
        app.MapGet("/", (HttpContext ctx) =>
        {
            ctx.Response.ContentType = "text/html; charset=utf-8";
            using var s = Assembly.GetExecutingAssembly().GetManifestResourceStream("TaskLM.Serving.index.html")!;
            return ctx.Response.WriteAsync(new StreamReader(s).ReadToEnd());
        });
        app.MapGet("/api/card", (HttpContext ctx) => Json(ctx, CardJson(Model())));
        app.MapGet("/api/plots/{name}", (HttpContext ctx, string name) =>
        {
            var m = Model();
            string? file = m.Card.RunFolder == null || name.Contains('/') || name.Contains('\\') || !name.EndsWith(".png", StringComparison.Ordinal)
                ? null : Path.Combine(m.Card.RunFolder, "plots", name);
            if (file == null || !File.Exists(file)) throw new ApiError(404, $"no plot '{name}'", "invalid_request_error", null, "not_found");
            ctx.Response.ContentType = "image/png";
            return ctx.Response.SendFileAsync(file);
        });
        app.MapGet("/v1/models", (HttpContext ctx) => Json(ctx, new JsonObject { ["object"] = "list", ["data"] = new JsonArray(ModelObject(Model())) }));
        app.MapGet("/v1/models/{id}", (HttpContext ctx, string id) => { var m = Model(); CheckModel(m, id); return Json(ctx, ModelObject(m)); });
        app.MapPost("/v1/completions", Completions);
        app.MapPost("/v1/chat/completions", ChatCompletions);
        app.MapPost("/api/chat-prompt", ChatPrompt);
        app.MapPost("/v1/embeddings", Embeddings);
        app.MapPost("/v1/classify", Classify);
        app.MapPost("/v1/tag", Tag);
        app.MapPost("/v1/answer", Answer);
        // Unknown routes and wrong methods: OpenAI-shaped too.
        app.MapFallback((HttpContext ctx) => throw new ApiError(404, $"no route {ctx.Request.Method} {ctx.Request.Path}", "invalid_request_error", null, "unknown_url"));
    }

    (int Status, JsonObject Body) Describe(Exception e, HttpContext ctx) => e switch
    {
        ApiError a => (a.Status, ErrorBody(a.Message, a.Type, a.Param, a.Code)),
        BadRequestException b => (400, ErrorBody(b.Message, "invalid_request_error", b.Param, b.Code)),
        QueueFullException q => (429, ErrorBody(q.Message + "; retry later", "rate_limit_exceeded", null, "queue_full")),
        BadHttpRequestException { StatusCode: 413 } => (413, ErrorBody($"request body larger than {_o.MaxBodyBytes} bytes", "invalid_request_error", null, "request_too_large")),
        BadHttpRequestException h => (h.StatusCode, ErrorBody(h.Message, "invalid_request_error", null, null)),
        OperationCanceledException when !ctx.RequestAborted.IsCancellationRequested =>
            (504, ErrorBody($"the request ran past the server's timeout of {_o.RequestTimeout.TotalSeconds:0.###} s", "timeout", null, "timeout")),
        _ => (500, ErrorBody(e.Message, "server_error", null, null)),
    };

    TaskLMModel Model() => _model ?? throw new ApiError(503, _loadError != null ? $"the model failed to load: {_loadError}" : "the model is still loading; retry when /health answers 200",
        "server_error", null, _loadError != null ? "model_load_failed" : "model_loading");

    static Task Json(HttpContext ctx, JsonNode body, int status = 200)
    {
        ctx.Response.StatusCode = status;
        ctx.Response.ContentType = "application/json";
        return ctx.Response.WriteAsync(body.ToJsonString(Wire));
    }

    static JsonObject ModelObject(TaskLMModel m) => new()
    {
        ["id"] = m.Card.Id, ["object"] = "model", ["created"] = 0, ["owned_by"] = "tasklm", ["task"] = m.Task,
    };

    static JsonObject CardJson(TaskLMModel m)
    {
        var c = m.Card;
        var o = new JsonObject
        {
            ["id"] = c.Id, ["task"] = c.Task, ["model_type"] = c.ModelType, ["parameters"] = c.Parameters, ["max_length"] = c.MaxLength,
            ["labels"] = c.Labels == null ? null : new JsonArray(c.Labels.Select(l => (JsonNode)l).ToArray()),
            ["runtime"] = c.Runtime, ["precision"] = c.Precision, ["run_folder"] = c.RunFolder != null, ["eval"] = c.Eval?.DeepClone(), ["report"] = c.Report,
        };
        o["ships"] = c.Ships;   // model, or the baseline / ensemble a classification run chose on validation
        // How a conversation becomes the prompt, shown by the template itself on an example (the page had shown the raw
        // text "System: ...\nUser: ...\nAssistant:", a literal backslash-n included).
        if (c.Task == "causal-lm")
            o["chat_template"] = new JsonObject
            {
                ["name"] = m.ChatTemplate.Name, ["description"] = m.ChatTemplate.Description,
                ["example"] = ChatExample(m.ChatTemplate),
            };
        if (c.RunFolder != null && Directory.Exists(Path.Combine(c.RunFolder, "plots")))
            o["plots"] = new JsonArray(Directory.GetFiles(Path.Combine(c.RunFolder, "plots"), "*.png").Select(Path.GetFileName).Order(StringComparer.Ordinal).Select(f => (JsonNode)f!).ToArray());
        return o;
    }

    static void CheckModel(TaskLMModel m, string? id)
    {
        if (id != null && id != m.Card.Id)
            throw new ApiError(404, $"The model '{id}' does not exist; this server serves '{m.Card.Id}'", "invalid_request_error", "model", "model_not_found");
    }

    async Task<JsonObject> Body(HttpContext ctx)
    {
        if (ctx.Request.ContentLength > _o.MaxBodyBytes)
        {
            // Read (and drop) a moderately oversized body first, so the client is done sending and reads the 413
            // instead of a reset connection; a huge one is refused without reading it.
            if (ctx.Request.ContentLength <= 16L << 20 && ctx.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } size)
            {
                size.MaxRequestBodySize = ctx.Request.ContentLength;
                await ctx.Request.Body.CopyToAsync(System.IO.Stream.Null, ctx.RequestAborted).ConfigureAwait(false);
            }
            throw new ApiError(413, $"request body of {ctx.Request.ContentLength} bytes is larger than the limit of {_o.MaxBodyBytes}", "invalid_request_error", null, "request_too_large");
        }
        // Read whole (the limit above bounds it) so that invalid UTF-8 inside a string is a 400 here, not a 500 later when
        // the field is read (JSON text must be UTF-8: RFC 8259).
        using var buffer = new MemoryStream();
        await ctx.Request.Body.CopyToAsync(buffer, ctx.RequestAborted).ConfigureAwait(false);
        var bytes = buffer.GetBuffer().AsSpan(0, (int)buffer.Length);
        if (!System.Text.Unicode.Utf8.IsValid(bytes))
            throw new ApiError(400, "We could not parse the JSON body of your request: it is not valid UTF-8", "invalid_request_error", null, "invalid_json");
        JsonNode? node;
        try { node = JsonNode.Parse(bytes); }
        catch (JsonException e) { throw new ApiError(400, $"We could not parse the JSON body of your request: {e.Message}", "invalid_request_error", null, "invalid_json"); }
        return node as JsonObject ?? throw new ApiError(400, "the request body must be a JSON object", "invalid_request_error", null, "invalid_json");
    }

    // ───────────── typed reads of request fields (a wrong type is a 400 naming the field) ─────────────

    /// <summary>The status /metrics counts for a request whose client disconnected before the response began.</summary>
    public const int ClientClosedRequest = 499;

    /// <summary>The template on an example conversation; a model template that refuses a system message (Mistral's
    /// alternate-roles check) is shown on the user turn alone.</summary>
    static string ChatExample(ChatTemplate t)
    {
        try { return t.Format([("system", "You answer in one sentence."), ("user", "What is TaskLM?")]); }
        catch (TemplateException)
        {
            try { return t.Format([("user", "What is TaskLM?")]); }
            catch (TemplateException e) { return e.Message; }
        }
    }

    /// <summary>The prompt for a chat request; the model template's refusal of these messages is a 400 naming it.</summary>
    static string RenderChat(TaskLMModel m, IEnumerable<(string Role, string Content)> turns)
    {
        try { return m.ChatTemplate.Format(turns); }
        catch (TemplateException e) { throw Bad("messages", e.Message); }
    }

    static ApiError Bad(string param, string message) => new(400, message, "invalid_request_error", param, "invalid_value");

    static double? Number(JsonObject o, string key)
    {
        var v = o[key];
        if (v is null) return null;
        if (v is JsonValue jv && jv.GetValueKind() == JsonValueKind.Number) return jv.GetValue<double>();
        throw Bad(key, $"'{key}' must be a number, got {v.ToJsonString()}");
    }

    static int? Int(JsonObject o, string key)
    {
        double? d = Number(o, key);
        if (d is null) return null;
        if (d != Math.Floor(d.Value) || d is > int.MaxValue or < int.MinValue) throw Bad(key, $"'{key}' must be an integer, got {d}");
        return (int)d.Value;
    }

    static bool Bool(JsonObject o, string key)
    {
        var v = o[key];
        if (v is null) return false;
        if (v is JsonValue jv && jv.GetValueKind() is JsonValueKind.True or JsonValueKind.False) return jv.GetValue<bool>();
        throw Bad(key, $"'{key}' must be true or false, got {v.ToJsonString()}");
    }

    static string? Str(JsonObject o, string key)
    {
        var v = o[key];
        if (v is null) return null;
        if (v is JsonValue jv && jv.GetValueKind() == JsonValueKind.String) return jv.GetValue<string>();
        throw Bad(key, $"'{key}' must be a string, got {v.ToJsonString()}");
    }

    /// <summary>A string or an array of strings (OpenAI's "input", "prompt", "stop").</summary>
    static List<string>? Strings(JsonObject o, string key)
    {
        var v = o[key];
        if (v is null) return null;
        if (v is JsonValue) return [Str(o, key)!];
        if (v is JsonArray a && a.All(x => x is JsonValue jv && jv.GetValueKind() == JsonValueKind.String)) return a.Select(x => x!.GetValue<string>()).ToList();
        throw Bad(key, $"'{key}' must be a string or an array of strings");
    }

    List<string> Inputs(JsonObject body, string key = "input")
    {
        var inputs = Strings(body, key) ?? throw Bad(key, $"'{key}' is required");
        if (inputs.Count == 0) throw Bad(key, $"'{key}' is empty");
        if (inputs.Count > _o.MaxBatchInputs) throw Bad(key, $"{inputs.Count} inputs; at most {_o.MaxBatchInputs} per request");
        return inputs;
    }

    GenerateOptions Sampling(JsonObject body, int defaultMax, out int n, out bool stream, out bool includeUsage)
    {
        // The error names the field the request sent (chat clients send max_completion_tokens).
        string maxKey = body["max_completion_tokens"] != null ? "max_completion_tokens" : "max_tokens";
        int? maxTokens = Int(body, "max_completion_tokens") ?? Int(body, "max_tokens");
        double? temperature = Number(body, "temperature");
        double topP = Number(body, "top_p") ?? 1.0;
        n = Int(body, "n") ?? 1;
        if (n is < 1 or > 16) throw Bad("n", $"'n' must be between 1 and 16, got {n}");
        if (maxTokens is < 1) throw Bad(maxKey, $"'{maxKey}' must be at least 1, got {maxTokens}");
        if (temperature is < 0 or > 2) throw Bad("temperature", $"'temperature' must be between 0 and 2, got {temperature}");
        if (topP is <= 0 or > 1) throw Bad("top_p", $"'top_p' must be in (0, 1], got {topP}");
        stream = Bool(body, "stream");
        includeUsage = body["stream_options"] is JsonObject so && Bool(so, "include_usage");
        var stop = Strings(body, "stop");
        if (stop is { Count: > 4 }) throw Bad("stop", "at most 4 stop sequences");
        long? seed = Number(body, "seed") is double s ? (s == Math.Floor(s) ? (long)s : throw Bad("seed", "'seed' must be an integer")) : null;
        // vLLM's extra sampling fields, with its names: top_k (0 or -1 = off) and HF's repetition_penalty.
        int topK = Int(body, "top_k") ?? 0;
        if (topK < -1) throw Bad("top_k", $"'top_k' must be -1 or 0 (off) or a positive number of tokens, got {topK}");
        double repetition = Number(body, "repetition_penalty") ?? 1.0;
        if (!(repetition > 0) || repetition > 100) throw Bad("repetition_penalty", $"'repetition_penalty' must be in (0, 100] (1 = off), got {repetition}");
        // OpenAI's default temperature is 1 (sampling); 0 decodes greedily.
        return new GenerateOptions
        {
            MaxTokens = maxTokens ?? defaultMax, Temperature = temperature ?? 1.0, TopP = topP, TopK = Math.Max(topK, 0), RepetitionPenalty = repetition,
            Seed = seed, Stop = stop,
        };
    }

    CancellationTokenSource Deadline(HttpContext ctx)
    {
        var cts = CancellationTokenSource.CreateLinkedTokenSource(ctx.RequestAborted);
        cts.CancelAfter(_o.RequestTimeout);
        return cts;
    }

    static long Now() => DateTimeOffset.UtcNow.ToUnixTimeSeconds();

    // ───────────── generation routes ─────────────

    sealed record Choice(int Index, string Text, string Finish, int Prompt, int Completion);

    /// <summary>Runs n sequences of one prompt (seed + i each when seeded) and hands their chunks to <paramref name="onChunk"/> in arrival order.</summary>
    static async Task<List<Choice>> RunChoices(TaskLMModel m, string prompt, GenerateOptions g, int n, Func<int, GeneratedChunk, Task>? onChunk, CancellationToken ct)
    {
        var gate = new SemaphoreSlim(1, 1);
        var tasks = Enumerable.Range(0, n).Select(async i =>
        {
            var sb = new StringBuilder();
            GeneratedChunk? last = null;
            var opts = g.Seed is long s ? g with { Seed = s + i } : g;
            await foreach (var c in m.GenerateAsync(prompt, opts, ct).ConfigureAwait(false))
            {
                sb.Append(c.Text); last = c;
                if (onChunk != null)
                {
                    await gate.WaitAsync(ct).ConfigureAwait(false);
                    try { await onChunk(i, c).ConfigureAwait(false); } finally { gate.Release(); }
                }
            }
            return new Choice(i, sb.ToString(), last?.FinishReason?.OpenAI() ?? "stop", last?.PromptTokens ?? 0, last?.CompletionTokens ?? 0);
        }).ToList();
        return (await Task.WhenAll(tasks).ConfigureAwait(false)).ToList();
    }

    static JsonObject Usage(int prompt, int completion) => new() { ["prompt_tokens"] = prompt, ["completion_tokens"] = completion, ["total_tokens"] = prompt + completion };

    async Task Completions(HttpContext ctx)
    {
        var body = await Body(ctx).ConfigureAwait(false);
        var m = Model();
        CheckModel(m, Str(body, "model"));
        if (m.Task != "causal-lm") throw new ApiError(400, $"this server's model is a '{m.Task}' model: /v1/completions needs a causal LM", "invalid_request_error", "model", "wrong_task");
        var prompts = Strings(body, "prompt") ?? throw Bad("prompt", "'prompt' is required");
        if (prompts.Count != 1) throw Bad("prompt", "one prompt per request (send n for several completions)");
        var g = Sampling(body, 16, out int n, out bool stream, out bool includeUsage);
        if (body["logprobs"] is JsonValue lp && lp.GetValueKind() != JsonValueKind.Null) throw Bad("logprobs", "'logprobs' is not supported");
        if (Bool(body, "echo")) throw Bad("echo", "'echo' is not supported");
        CheckPrompt(m, prompts[0], g, "prompt");
        string id = "cmpl-" + Guid.NewGuid().ToString("N");
        long created = Now();
        using var cts = Deadline(ctx);
        if (!stream)
        {
            var choices = await RunChoices(m, prompts[0], g, n, null, cts.Token).ConfigureAwait(false);
            await Json(ctx, new JsonObject
            {
                ["id"] = id, ["object"] = "text_completion", ["created"] = created, ["model"] = m.Card.Id,
                ["choices"] = new JsonArray(choices.Select(c => (JsonNode)new JsonObject { ["text"] = c.Text, ["index"] = c.Index, ["logprobs"] = null, ["finish_reason"] = c.Finish }).ToArray()),
                ["usage"] = Usage(choices[0].Prompt, choices.Sum(c => c.Completion)),
            }).ConfigureAwait(false);
            return;
        }
        await Stream(ctx, cts, async write =>
        {
            var choices = await RunChoices(m, prompts[0], g, n, (i, c) => write(new JsonObject
            {
                ["id"] = id, ["object"] = "text_completion", ["created"] = created, ["model"] = m.Card.Id,
                ["choices"] = new JsonArray(new JsonObject { ["text"] = c.Text, ["index"] = i, ["logprobs"] = null, ["finish_reason"] = c.FinishReason?.OpenAI() }),
            }), cts.Token).ConfigureAwait(false);
            if (includeUsage)
                await write(new JsonObject
                {
                    ["id"] = id, ["object"] = "text_completion", ["created"] = created, ["model"] = m.Card.Id,
                    ["choices"] = new JsonArray(), ["usage"] = Usage(choices[0].Prompt, choices.Sum(c => c.Completion)),
                }).ConfigureAwait(false);
        }).ConfigureAwait(false);
    }

    /// <summary>The prompt fits the context; <paramref name="field"/> is the request field it came from (prompt or messages).</summary>
    static void CheckPrompt(TaskLMModel m, string prompt, GenerateOptions g, string field)
    {
        int tokens = m.CountTokens(prompt);
        int context = m.ContextLength;
        if (tokens == 0) throw Bad(field, "the prompt has no tokens");
        if (tokens >= context)
            throw new ApiError(400, $"This model's maximum context length is {context} tokens, however you requested {tokens} tokens in the prompt", "invalid_request_error", field, "context_length_exceeded");
        if (tokens + g.MaxTokens > context)
            throw new ApiError(400, $"This model's maximum context length is {context} tokens, however you requested {tokens + g.MaxTokens} tokens ({tokens} in the prompt, {g.MaxTokens} for the completion); reduce max_tokens",
                "invalid_request_error", "max_tokens", "context_length_exceeded");
    }

    /// <summary>The (role, content) turns of a chat request's <c>messages</c> (developer counts as system), each checked.</summary>
    static List<(string Role, string Content)> Turns(JsonArray msgs)
    {
        var turns = new List<(string Role, string Content)>();
        for (int i = 0; i < msgs.Count; i++)
        {
            if (msgs[i] is not JsonObject mo) throw Bad($"messages[{i}]", $"messages[{i}] must be an object");
            string role = Str(mo, "role") ?? throw Bad($"messages[{i}].role", $"messages[{i}].role is required");
            if (role is not ("system" or "developer" or "user" or "assistant")) throw Bad($"messages[{i}].role", $"messages[{i}].role '{role}' is not one of system, developer, user, assistant");
            string content = mo["content"] switch
            {
                JsonValue v when v.GetValueKind() == JsonValueKind.String => v.GetValue<string>(),
                JsonArray parts => string.Concat(parts.Select(p => p is JsonObject po && Str(po, "type") == "text" ? Str(po, "text") : throw Bad($"messages[{i}].content", "only text content parts are supported"))),
                null => "",
                _ => throw Bad($"messages[{i}].content", $"messages[{i}].content must be a string or an array of text parts"),
            };
            turns.Add((role == "developer" ? "system" : role, content));
        }
        return turns;
    }

    /// <summary>POST /api/chat-prompt {messages}: the prompt the chat template makes of them, as /v1/chat/completions would
    /// send it to the model (the playground shows it under "what the model sees"); runs no model.</summary>
    async Task ChatPrompt(HttpContext ctx)
    {
        var body = await Body(ctx).ConfigureAwait(false);
        var m = Model();
        if (body["messages"] is not JsonArray msgs || msgs.Count == 0) throw Bad("messages", "'messages' must be a non-empty array");
        await Json(ctx, new JsonObject { ["prompt"] = RenderChat(m, Turns(msgs)), ["stop"] = new JsonArray(m.ChatTemplate.Stops.Select(x => (JsonNode)x).ToArray()) }).ConfigureAwait(false);
    }

    async Task ChatCompletions(HttpContext ctx)
    {
        var body = await Body(ctx).ConfigureAwait(false);
        var m = Model();
        CheckModel(m, Str(body, "model"));
        if (m.Task != "causal-lm") throw new ApiError(400, $"this server's model is a '{m.Task}' model: /v1/chat/completions needs a causal LM", "invalid_request_error", "model", "wrong_task");
        if (body["messages"] is not JsonArray msgs || msgs.Count == 0) throw Bad("messages", "'messages' must be a non-empty array");
        var turns = Turns(msgs);
        var g = Sampling(body, 64, out int n, out bool stream, out bool includeUsage);
        g = g with { Stop = [.. m.ChatTemplate.Stops, .. g.Stop ?? []] };
        string prompt = RenderChat(m, turns);
        CheckPrompt(m, prompt, g, "messages");
        string id = "chatcmpl-" + Guid.NewGuid().ToString("N");
        long created = Now();
        using var cts = Deadline(ctx);
        if (!stream)
        {
            var choices = await RunChoices(m, prompt, g, n, null, cts.Token).ConfigureAwait(false);
            await Json(ctx, new JsonObject
            {
                ["id"] = id, ["object"] = "chat.completion", ["created"] = created, ["model"] = m.Card.Id,
                ["choices"] = new JsonArray(choices.Select(c => (JsonNode)new JsonObject
                {
                    ["index"] = c.Index, ["message"] = new JsonObject { ["role"] = "assistant", ["content"] = c.Text, ["refusal"] = null },
                    ["logprobs"] = null, ["finish_reason"] = c.Finish,
                }).ToArray()),
                ["usage"] = Usage(choices[0].Prompt, choices.Sum(c => c.Completion)),
            }).ConfigureAwait(false);
            return;
        }
        JsonObject Chunk(JsonArray choices) => new()
        {
            ["id"] = id, ["object"] = "chat.completion.chunk", ["created"] = created, ["model"] = m.Card.Id, ["choices"] = choices,
        };
        await Stream(ctx, cts, async write =>
        {
            // As OpenAI: a first chunk per choice carrying the role, then content deltas, then an empty delta with finish_reason.
            for (int i = 0; i < n; i++)
                await write(Chunk([new JsonObject { ["index"] = i, ["delta"] = new JsonObject { ["role"] = "assistant", ["content"] = "" }, ["logprobs"] = null, ["finish_reason"] = null }])).ConfigureAwait(false);
            var choices = await RunChoices(m, prompt, g, n, async (i, c) =>
            {
                if (c.Text.Length > 0)
                    await write(Chunk([new JsonObject { ["index"] = i, ["delta"] = new JsonObject { ["content"] = c.Text }, ["logprobs"] = null, ["finish_reason"] = null }])).ConfigureAwait(false);
                if (c.FinishReason is { } finish)
                    await write(Chunk([new JsonObject { ["index"] = i, ["delta"] = new JsonObject(), ["logprobs"] = null, ["finish_reason"] = finish.OpenAI() }])).ConfigureAwait(false);
            }, cts.Token).ConfigureAwait(false);
            if (includeUsage)
            {
                var last = Chunk([]);
                last["usage"] = Usage(choices[0].Prompt, choices.Sum(c => c.Completion));
                await write(last).ConfigureAwait(false);
            }
        }).ConfigureAwait(false);
    }

    /// <summary>Server-sent events in OpenAI's format: <c>data: {json}\n\n</c> per chunk, then <c>data: [DONE]\n\n</c>. An error
    /// once the stream has begun goes out as a <c>data: {"error": ...}</c> chunk, and the stream still ends with [DONE].</summary>
    async Task Stream(HttpContext ctx, CancellationTokenSource cts, Func<Func<JsonObject, Task>, Task> produce)
    {
        ctx.Response.StatusCode = 200;
        ctx.Response.ContentType = "text/event-stream";
        ctx.Response.Headers.CacheControl = "no-cache";
        ctx.Response.Headers["X-Accel-Buffering"] = "no";
        await ctx.Response.Body.FlushAsync(ctx.RequestAborted).ConfigureAwait(false);
        async Task Write(string data)
        {
            await ctx.Response.WriteAsync("data: " + data + "\n\n", ctx.RequestAborted).ConfigureAwait(false);
            await ctx.Response.Body.FlushAsync(ctx.RequestAborted).ConfigureAwait(false);
        }
        try
        {
            await produce(o => Write(o.ToJsonString(Wire))).ConfigureAwait(false);
        }
        catch (Exception e) when (!ctx.RequestAborted.IsCancellationRequested)
        {
            var (_, body) = Describe(e, ctx);
            await Write(body.ToJsonString(Wire)).ConfigureAwait(false);
        }
        await Write("[DONE]").ConfigureAwait(false);
    }

    // ───────────── encoder routes ─────────────

    async Task Embeddings(HttpContext ctx)
    {
        var body = await Body(ctx).ConfigureAwait(false);
        var m = Model();
        CheckModel(m, Str(body, "model"));
        var inputs = Inputs(body);
        string format = Str(body, "encoding_format") ?? "float";
        if (format is not ("float" or "base64")) throw Bad("encoding_format", $"'encoding_format' must be float or base64, got '{format}'");
        if (body["dimensions"] is not null) throw Bad("dimensions", "'dimensions' is not supported");
        using var cts = Deadline(ctx);
        var vectors = await m.EmbedAsync(inputs, cts.Token).ConfigureAwait(false);
        int tokens = inputs.Sum(m.CountTokens);
        await Json(ctx, new JsonObject
        {
            ["object"] = "list", ["model"] = m.Card.Id,
            ["data"] = new JsonArray(vectors.Select((v, i) => (JsonNode)new JsonObject
            {
                ["object"] = "embedding", ["index"] = i,
                // base64: the float32 values' little-endian bytes (what OpenAI's clients ask for by default).
                ["embedding"] = format == "base64" ? Convert.ToBase64String(System.Runtime.InteropServices.MemoryMarshal.AsBytes(v.AsSpan()))
                    : new JsonArray(v.Select(x => (JsonNode)x).ToArray()),
            }).ToArray()),
            ["usage"] = new JsonObject { ["prompt_tokens"] = tokens, ["total_tokens"] = tokens },
        }).ConfigureAwait(false);
    }

    async Task Classify(HttpContext ctx)
    {
        var body = await Body(ctx).ConfigureAwait(false);
        var m = Model();
        CheckModel(m, Str(body, "model"));
        var inputs = Inputs(body);
        var pairs = Strings(body, "text_pair");
        if (pairs != null && pairs.Count != inputs.Count) throw Bad("text_pair", $"{inputs.Count} inputs but {pairs.Count} text_pair entries");
        using var cts = Deadline(ctx);
        var r = await m.ClassifyAsync(inputs, pairs, cts.Token).ConfigureAwait(false);
        await Json(ctx, new JsonObject
        {
            ["object"] = "list", ["model"] = m.Card.Id,
            ["data"] = new JsonArray(r.Select((c, i) => (JsonNode)new JsonObject
            {
                ["index"] = i, ["label"] = c.Label, ["score"] = c.Score,
                ["probabilities"] = new JsonObject(c.Probabilities.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)kv.Value))),
            }).ToArray()),
        }).ConfigureAwait(false);
    }

    async Task Tag(HttpContext ctx)
    {
        var body = await Body(ctx).ConfigureAwait(false);
        var m = Model();
        CheckModel(m, Str(body, "model"));
        var inputs = Inputs(body);
        using var cts = Deadline(ctx);
        var r = await m.TagAsync(inputs, cts.Token).ConfigureAwait(false);
        await Json(ctx, new JsonObject
        {
            ["object"] = "list", ["model"] = m.Card.Id,
            ["data"] = new JsonArray(r.Select((t, i) => (JsonNode)new JsonObject
            {
                ["index"] = i,
                ["words"] = new JsonArray(t.Words.Select(w => (JsonNode)new JsonObject { ["word"] = w.Word, ["start"] = w.Start, ["end"] = w.End, ["tag"] = w.Tag, ["score"] = w.Score }).ToArray()),
                ["entities"] = t.Entities == null ? null : new JsonArray(t.Entities.Select(e => (JsonNode)new JsonObject { ["type"] = e.Type, ["text"] = e.Text, ["start"] = e.Start, ["end"] = e.End }).ToArray()),
            }).ToArray()),
        }).ConfigureAwait(false);
    }

    async Task Answer(HttpContext ctx)
    {
        var body = await Body(ctx).ConfigureAwait(false);
        var m = Model();
        CheckModel(m, Str(body, "model"));
        var items = new List<(string, string)>();
        if (body["input"] is JsonArray arr)
        {
            for (int i = 0; i < arr.Count; i++)
            {
                if (arr[i] is not JsonObject qo) throw Bad($"input[{i}]", $"input[{i}] must be an object with question and context");
                items.Add((Str(qo, "question") ?? throw Bad($"input[{i}].question", $"input[{i}].question is required"),
                    Str(qo, "context") ?? throw Bad($"input[{i}].context", $"input[{i}].context is required")));
            }
        }
        else items.Add((Str(body, "question") ?? throw Bad("question", "'question' is required (or 'input': [{question, context}, ...])"),
            Str(body, "context") ?? throw Bad("context", "'context' is required")));
        if (items.Count == 0) throw Bad("input", "'input' is empty");
        if (items.Count > _o.MaxBatchInputs) throw Bad("input", $"{items.Count} inputs; at most {_o.MaxBatchInputs} per request");
        int maxAnswer = Int(body, "max_answer_tokens") ?? TaskEncoder.MaxAnswerTokens;
        if (maxAnswer < 1) throw Bad("max_answer_tokens", "'max_answer_tokens' must be at least 1");
        using var cts = Deadline(ctx);
        var r = await m.AnswerAsync(items, maxAnswer, cts.Token).ConfigureAwait(false);
        await Json(ctx, new JsonObject
        {
            ["object"] = "list", ["model"] = m.Card.Id,
            ["data"] = new JsonArray(r.Select((a, i) => (JsonNode)new JsonObject { ["index"] = i, ["answer"] = a.Text, ["start"] = a.Start, ["end"] = a.End, ["score"] = a.Score }).ToArray()),
        }).ConfigureAwait(false);
    }
}
