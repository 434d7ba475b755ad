// How chat messages become one prompt for a causal LM: the model's own Jinja chat template, else TaskLM's plain-text one.
using System.Text;
using TaskLM.Data.Tokenization;

namespace TaskLM.Serving;

/// <summary>
/// How chat requests become a prompt. A model folder whose tokenizer_config.json has a "chat_template" (Jinja) is
/// rendered with it (<see cref="HfChatTemplate"/>, with add_generation_prompt on; its eos_token is a stop text);
/// any other model gets TaskLM's default plain-text template (<see cref="Default"/>):
/// <code>
/// System: {system message}\n
/// User: {user message}\n
/// Assistant: {assistant message}\n
/// ...
/// Assistant:
/// </code>
/// Each message is one "Role: content" line (roles capitalised, content as given), and the prompt ends with
/// "Assistant:" for the model to continue. Generation also stops at "\nUser:" so the model does not write the
/// user's next turn (the stop text is not returned). A model fine-tuned on this layout answers in it.
/// </summary>
public sealed class ChatTemplate
{
    /// <summary>The plain-text template above.</summary>
    public static readonly ChatTemplate Default = new();

    readonly HfChatTemplate? _hf;
    readonly TemplateException? _error;

    ChatTemplate() { }

    // A model template outside the Jinja subset TaskLM runs: completions still work, chat requests get the error.
    ChatTemplate(TemplateException error)
    {
        _error = error;
        Name = "model's chat_template (not runnable)";
        Description = error.Message;
        Stops = [];
    }

    ChatTemplate(HfChatTemplate hf)
    {
        _hf = hf;
        Name = "model's chat_template (" + Path.GetFileName(hf.Name) + ")";
        Description = "the model's own Jinja chat template from its tokenizer files, with add_generation_prompt";
        Stops = hf.SpecialTokens.TryGetValue("eos_token", out var eos) && eos is string e && e.Length > 0 ? [e] : [];
    }

    /// <summary>The chat template of the model or tokenizer folder <paramref name="folder"/>: its own
    /// (tokenizer_config.json "chat_template") when it has one, else <see cref="Default"/>. A template outside the
    /// Jinja subset TaskLM runs does not stop the model loading: each chat request fails with the parse error, which
    /// names the file and position (never a silent fall-back to another template).</summary>
    public static ChatTemplate ForFolder(string? folder)
    {
        if (folder is null || !Directory.Exists(folder)) return Default;
        try { return HfChatTemplate.FromFolder(folder) is { } hf ? new ChatTemplate(hf) : Default; }
        catch (TemplateException e) { return new ChatTemplate(e); }
    }

    /// <summary>The model's own template, or null for TaskLM's plain-text default.</summary>
    public HfChatTemplate? Model => _hf;

    /// <summary>The template's name, for people (the playground's model card).</summary>
    public string Name { get; } = "TaskLM plain text";

    /// <summary>One sentence on how messages become the prompt, for people.</summary>
    public string Description { get; } = "one \"Role: content\" line per message, then \"Assistant:\" for the model to continue; generation stops at the next \"User:\" line";

    /// <summary>Stop texts every chat request gets on top of its own.</summary>
    public IReadOnlyList<string> Stops { get; } = ["\nUser:"];

    /// <summary>The prompt for these (role, content) messages, ready for the model to write the assistant's turn. A
    /// model template's own refusal (raise_exception, e.g. roles that do not alternate) is a <see cref="TemplateException"/>.</summary>
    public string Format(IEnumerable<(string Role, string Content)> messages)
    {
        if (_error is not null) throw new TemplateException(_error.Message);
        if (_hf is not null) return _hf.Render(messages, addGenerationPrompt: true);
        var sb = new StringBuilder();
        foreach (var (role, content) in messages)
        {
            string r = role.Length == 0 ? "User" : char.ToUpperInvariant(role[0]) + role[1..].ToLowerInvariant();
            sb.Append(r).Append(": ").Append(content).Append('\n');
        }
        sb.Append("Assistant:");
        return sb.ToString();
    }
}
