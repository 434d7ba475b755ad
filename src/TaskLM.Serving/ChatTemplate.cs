// How chat messages become one prompt for a causal LM that has no chat template of its own.
using System.Text;

namespace TaskLM.Serving;

/// <summary>
/// TaskLM's chat template. Hugging Face chat templates are Jinja programs in tokenizer_config.json; TaskLM does
/// not run Jinja, so every chat request goes through this plain-text template:
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
    /// <summary>The template above.</summary>
    public static readonly ChatTemplate Default = new();

    /// <summary>The template's name, for people (the playground's model card).</summary>
    public string Name { get; } = "TaskLM plain text";

    /// <summary>One sentence on how messages become the prompt, for people.</summary>
    public string Description { get; } = "one \"Role: content\" line per message, then \"Assistant:\" for the model to continue; generation stops at the next \"User:\" line";

    /// <summary>Stop texts every chat request gets on top of its own.</summary>
    public IReadOnlyList<string> Stops { get; } = ["\nUser:"];

    /// <summary>The prompt for these (role, content) messages, ending with "Assistant:".</summary>
    public string Format(IEnumerable<(string Role, string Content)> messages)
    {
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
