// A model's own chat template (tokenizer_config.json "chat_template"), rendered the way transformers' apply_chat_template does.
using System.Text.Json;
using System.Text.Json.Nodes;

namespace TaskLM.Data.Tokenization;

/// <summary>
/// The Jinja chat template a Hugging Face model folder ships in tokenizer_config.json, with the special tokens
/// the template may use. <c>Render</c> passes what transformers' <c>apply_chat_template</c> passes:
/// <c>messages</c>, <c>add_generation_prompt</c>, <c>tools</c> (none when absent), <c>bos_token</c>,
/// <c>eos_token</c> and the tokenizer's other special tokens (<c>unk_token</c>, <c>pad_token</c>, …).
/// </summary>
public sealed class HfChatTemplate
{
    readonly JinjaTemplate _template;
    readonly Dictionary<string, object?> _specialTokens;

    /// <summary>Compiles <paramref name="source"/>; <paramref name="name"/> names it in errors. Special tokens are
    /// name → text (for example "bos_token" → "&lt;s&gt;").</summary>
    public HfChatTemplate(string source, string name, IReadOnlyDictionary<string, string>? specialTokens = null)
    {
        Source = source;
        _template = new JinjaTemplate(source, name);
        _specialTokens = specialTokens?.ToDictionary(kv => kv.Key, kv => (object?)kv.Value) ?? [];
    }

    /// <summary>The Jinja source.</summary>
    public string Source { get; }

    /// <summary>The name errors show (the file and, for a named template, its name).</summary>
    public string Name => _template.Name;

    /// <summary>The special tokens the template sees, name → text.</summary>
    public IReadOnlyDictionary<string, object?> SpecialTokens => _specialTokens;

    /// <summary>The prompt for <paramref name="messages"/> (role/content pairs).</summary>
    public string Render(IEnumerable<(string Role, string Content)> messages, bool addGenerationPrompt = true, DateTime? now = null)
    {
        var list = messages.Select(m => (object?)new Dictionary<string, object?> { ["role"] = m.Role, ["content"] = m.Content }).ToList();
        return Render(list, addGenerationPrompt, null, null, now);
    }

    /// <summary>The prompt for OpenAI-format messages given as JSON (role, content, tool_calls, …), with optional
    /// tools (JSON schemas) and extra template variables.</summary>
    public string Render(JsonArray messages, bool addGenerationPrompt = true, JsonArray? tools = null,
        IReadOnlyDictionary<string, object?>? extra = null, DateTime? now = null) =>
        Render((List<object?>)FromJson(messages)!, addGenerationPrompt, tools is null ? null : (List<object?>)FromJson(tools)!, extra, now);

    string Render(List<object?> messages, bool addGenerationPrompt, List<object?>? tools, IReadOnlyDictionary<string, object?>? extra, DateTime? now)
    {
        var vars = new Dictionary<string, object?>(_specialTokens)
        {
            ["messages"] = messages,
            ["add_generation_prompt"] = addGenerationPrompt,
            ["tools"] = tools,
        };
        if (extra is not null) foreach (var (k, v) in extra) vars[k] = v;
        return _template.Render(vars, now);
    }

    /// <summary>A JSON value as the template's values (objects keep their key order).</summary>
    public static object? FromJson(JsonNode? node) => node switch
    {
        null => null,
        JsonObject o => o.ToDictionary(kv => kv.Key, kv => FromJson(kv.Value)),
        JsonArray a => a.Select(FromJson).ToList(),
        JsonValue v => v.GetValueKind() switch
        {
            JsonValueKind.String => v.GetValue<string>(),
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            JsonValueKind.Number => v.TryGetValue<long>(out var l) ? l : (object)v.GetValue<double>(),
            _ => null,
        },
        _ => null,
    };

    /// <summary>
    /// The chat template of the model folder <paramref name="folder"/>, or null when its tokenizer_config.json has
    /// none (or the folder has no tokenizer_config.json). "chat_template" may be a string or a list of
    /// {"name", "template"} objects, of which "default" is used; a chat_template.jinja file beside it (newer
    /// transformers) is read when tokenizer_config.json has none. Special tokens (bos_token, eos_token, …) come from
    /// tokenizer_config.json, as strings or as {"content": …} objects.
    /// </summary>
    public static HfChatTemplate? FromFolder(string folder)
    {
        string configPath = Path.Combine(folder, "tokenizer_config.json");
        JsonObject? config = null;
        if (File.Exists(configPath))
        {
            try { config = JsonNode.Parse(File.ReadAllText(configPath)) as JsonObject; }
            catch (JsonException e) { throw new InvalidDataException($"'{configPath}' is not valid JSON: {e.Message}", e); }
        }
        var special = new Dictionary<string, string>();
        if (config is not null)
            foreach (var (key, value) in config)
            {
                if (!key.EndsWith("_token", StringComparison.Ordinal)) continue;
                string? text = value switch
                {
                    JsonValue v when v.GetValueKind() == JsonValueKind.String => v.GetValue<string>(),
                    JsonObject o when o["content"] is JsonValue c && c.GetValueKind() == JsonValueKind.String => c.GetValue<string>(),
                    _ => null,
                };
                if (text is not null) special[key] = text;
            }

        string? source = null, name = configPath;
        switch (config?["chat_template"])
        {
            case JsonValue v when v.GetValueKind() == JsonValueKind.String:
                source = v.GetValue<string>();
                break;
            case JsonArray list:
                {
                    var chosen = list.OfType<JsonObject>().FirstOrDefault(o => (string?)o["name"] == "default")
                        ?? throw new InvalidDataException($"'{configPath}': chat_template is a list without a template named \"default\"");
                    source = (string?)chosen["template"] ?? throw new InvalidDataException($"'{configPath}': the \"default\" chat template has no \"template\" string");
                    name = configPath + " (default)";
                    break;
                }
            case null: break;
            default: throw new InvalidDataException($"'{configPath}': chat_template must be a string or a list of {{name, template}} objects");
        }
        string jinjaPath = Path.Combine(folder, "chat_template.jinja");
        if (source is null && File.Exists(jinjaPath)) { source = File.ReadAllText(jinjaPath); name = jinjaPath; }
        return source is null ? null : new HfChatTemplate(source, name, special);
    }
}
