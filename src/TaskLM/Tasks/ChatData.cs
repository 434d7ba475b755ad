// Chat data for causal-LM fine-tuning: OpenAI-format messages rendered with the model's chat template, loss on the assistant turns only; and packing.
using System.Text.Json;
using System.Text.Json.Nodes;
using TaskLM.Data.Tokenization;
using TaskLM.Recipes;

namespace TaskLM.Tasks;

/// <summary>
/// Supervised fine-tuning on conversations, as TRL's SFTTrainer with <c>assistant_only_loss</c> does it: a row's
/// <c>messages</c> (a list of {role, content}) is rendered with the model's chat template, and only the tokens of
/// the assistant turns carry labels (the end-of-turn token that closes each turn included); system, user and tool
/// turns and the template's role headers are -100. Conversational prompt/completion rows (both columns lists of
/// messages) train on the completion's assistant turns only.
/// <para>How the assistant tokens are found: the template is rendered prefix by prefix. For assistant message i,
/// render(messages[..i], add_generation_prompt) ends where the assistant's text starts, and render(messages[..i+1])
/// ends after its end-of-turn marker (trailing whitespace after the marker is left to the next turn). Each piece of
/// the full rendering is tokenized on its own and the ids are joined, so labels line up with the tokens exactly
/// (pieces meet at special tokens or line breaks, where byte-level BPE splits anyway).</para>
/// </summary>
public static class ChatData
{
    /// <summary>The template used when the tokenizer has none: ChatML (transformers' old default, SmolLM2's and
    /// Qwen2's layout): <c>&lt;|im_start|&gt;role\ncontent&lt;|im_end|&gt;\n</c> per message, and
    /// <c>&lt;|im_start|&gt;assistant\n</c> as the generation prompt.</summary>
    public const string ChatMl =
        "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}" +
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

    /// <summary>Roles a message may have (OpenAI's, plus "developer", its newer name for system).</summary>
    public static readonly string[] Roles = ["system", "developer", "user", "assistant", "tool"];

    /// <summary>The chat template a run uses: <paramref name="setting"/> (data.chat_template) "chatml", or a path to a
    /// Jinja file, or null = the tokenizer folder's own (tokenizer_config.json chat_template), else ChatML.
    /// <paramref name="say"/> gets one line saying which, and a warning when the tokenizer lacks ChatML's markers.</summary>
    public static HfChatTemplate Resolve(string? setting, string? tokenizerFolder, ITokenizer? tokenizer, Action<string> say)
    {
        HfChatTemplate? t = null;
        if (setting is null or "auto" && tokenizerFolder != null && Directory.Exists(tokenizerFolder))
        {
            t = HfChatTemplate.FromFolder(tokenizerFolder);
            if (t != null) { say($"chat: the tokenizer's own chat_template ({t.Name})"); return t; }
        }
        if (setting is not (null or "auto" or "chatml"))
        {
            if (!File.Exists(setting)) throw new RecipeException($"data.chat_template: '{setting}' is neither 'chatml' nor a Jinja file");
            t = new HfChatTemplate(File.ReadAllText(setting), setting, SpecialTokens(tokenizer));
            say($"chat: chat_template from {setting}");
            return t;
        }
        say(setting == "chatml" ? "chat: ChatML template (data.chat_template: chatml)"
            : "chat: the tokenizer has no chat_template; using ChatML (<|im_start|>role\\n...<|im_end|>\\n; set data.chat_template to a Jinja file for another)");
        if (tokenizer != null && (tokenizer.TokenToId("<|im_start|>") is null || tokenizer.TokenToId("<|im_end|>") is null))
            say("warning: the tokenizer has no <|im_start|>/<|im_end|> tokens: ChatML's markers are spelled with ordinary tokens");
        return new HfChatTemplate(ChatMl, "ChatML (TaskLM default)", SpecialTokens(tokenizer));
    }

    static Dictionary<string, string> SpecialTokens(ITokenizer? tok)
    {
        var d = new Dictionary<string, string>();
        void Add(string name, int? id) { if (id is int i && tok!.IdToToken(i) is { } s) d[name] = s; }
        if (tok != null) { Add("bos_token", tok.BosTokenId); Add("eos_token", tok.EosTokenId); Add("pad_token", tok.PadTokenId); Add("unk_token", tok.UnkTokenId); }
        return d;
    }

    /// <summary>Writes <paramref name="template"/> into <paramref name="dir"/>/tokenizer_config.json (as HF keeps
    /// it), so a model folder saved by a chat run is served and exported with the template it was trained on. When the
    /// template closes a reply with one token of <paramref name="tokenizer"/> (<c>&lt;|im_end|&gt;</c>, <c>&lt;|eot_id|&gt;</c>),
    /// generation_config.json's eos_token_id gets it too, so generate and serve stop where the model learned to.</summary>
    public static void WriteTemplate(string dir, HfChatTemplate template, ITokenizer tokenizer)
    {
        var indented = new JsonSerializerOptions { WriteIndented = true };
        string path = Path.Combine(dir, "tokenizer_config.json");
        var cfg = File.Exists(path) ? JsonNode.Parse(File.ReadAllText(path)) as JsonObject ?? new JsonObject() : new JsonObject();
        cfg["chat_template"] = template.Source;
        File.WriteAllText(path, cfg.ToJsonString(indented));
        if (TryPrompt(template, "Hi") is not { EndOfTurn: { } end } || tokenizer.TokenToId(end) is not int endId) return;
        string genPath = Path.Combine(dir, "generation_config.json");
        var gen = File.Exists(genPath) ? JsonNode.Parse(File.ReadAllText(genPath)) as JsonObject ?? new JsonObject() : new JsonObject();
        var ids = new List<int> { endId };
        foreach (var id in ReadIds(gen["eos_token_id"])) if (!ids.Contains(id)) ids.Add(id);
        if (tokenizer.EosTokenId is int eos && !ids.Contains(eos)) ids.Add(eos);
        gen["eos_token_id"] = new JsonArray(ids.Select(i => (JsonNode)i).ToArray());
        File.WriteAllText(genPath, gen.ToJsonString(indented) + "\n");
    }

    static IEnumerable<int> ReadIds(JsonNode? n) => n switch
    {
        JsonArray a => a.OfType<JsonValue>().Select(v => v.TryGetValue(out int i) ? i : -1).Where(i => i >= 0),
        JsonValue v when v.TryGetValue(out int i) => [i],
        _ => [],
    };

    /// <summary>A one-question prompt in <paramref name="template"/>'s layout, ready for the assistant's reply, and the
    /// text that ends a reply (what the template writes after the assistant's content, e.g. <c>&lt;|im_end|&gt;</c>),
    /// null when it writes nothing or the template refuses: what a run summary suggests trying the model with.</summary>
    public static (string Prompt, string? EndOfTurn)? TryPrompt(HfChatTemplate template, string question)
    {
        try
        {
            const string reply = "\u0001";
            string prompt = template.Render([("user", question)], addGenerationPrompt: true);
            string full = template.Render([("user", question), ("assistant", reply)], addGenerationPrompt: false);
            int at = full.IndexOf(reply, StringComparison.Ordinal);
            string end = at < 0 ? "" : full[(at + reply.Length)..].Trim();
            return (prompt, end.Length > 0 ? end : null);
        }
        catch (TemplateException) { return null; }
    }

    /// <summary>True when a row is chat data: it has data.messages_column, or list-valued prompt and completion.</summary>
    public static bool IsChatRow(JsonObject row, DataSection d) =>
        row.ContainsKey(d.MessagesColumn) || (row[d.PromptColumn] is JsonArray && row[d.CompletionColumn] is JsonArray);

    /// <summary>One row's example: ids of the rendered conversation (cut to max_length) and labels = ids on the
    /// supervised assistant turns, -100 elsewhere. Throws <see cref="InvalidDataException"/> on a malformed row
    /// (the caller adds file and line); returns null when truncation leaves no assistant token.</summary>
    public static Example? Encode(JsonObject row, DataSection d, ITokenizer tok, HfChatTemplate template)
    {
        List<JsonObject> messages; int firstSupervised;
        if (row.ContainsKey(d.MessagesColumn))
        {
            messages = Messages(row[d.MessagesColumn], d.MessagesColumn);
            firstSupervised = 0;
        }
        else
        {
            var prompt = Messages(row[d.PromptColumn], d.PromptColumn);
            var completion = Messages(row[d.CompletionColumn], d.CompletionColumn);
            messages = [.. prompt, .. completion];
            firstSupervised = prompt.Count;
        }
        var spans = new List<(int Start, int End)>();
        string full = Render(template, messages, false);
        for (int i = firstSupervised; i < messages.Count; i++)
        {
            if ((string)messages[i]["role"]! != "assistant") continue;
            string before = Render(template, messages.Take(i), true);
            string through = Render(template, messages.Take(i + 1), false);
            if (!through.StartsWith(before, StringComparison.Ordinal) || !full.StartsWith(through, StringComparison.Ordinal))
                throw new InvalidDataException($"the chat template ({template.Name}) does not render this conversation prefix by prefix " +
                    $"(turn {i + 1} changes what comes before it), so the assistant's tokens cannot be told apart");
            int end = through.Length;
            while (end > before.Length && char.IsWhiteSpace(through[end - 1])) end--;   // a newline after <|im_end|> belongs to the next turn
            if (end > before.Length) spans.Add((before.Length, end));
        }
        if (spans.Count == 0)
            throw new InvalidDataException(firstSupervised > 0 ? $"'{d.CompletionColumn}' has no assistant message to learn" : "no assistant message to learn (roles: " +
                string.Join(", ", messages.Select(m => (string)m["role"]!)) + ")");
        var ids = new List<int>(); var labels = new List<int>();
        int pos = 0;
        void Piece(int start, int end, bool learn)
        {
            if (end <= start) return;
            foreach (int id in tok.Encode(full[start..end])) { ids.Add(id); labels.Add(learn ? id : -100); }
        }
        foreach (var (s, e) in spans) { Piece(pos, s, false); Piece(s, e, true); pos = e; }
        Piece(pos, full.Length, false);
        int max = d.MaxLength;
        if (max > 0 && ids.Count > max) { ids.RemoveRange(max, ids.Count - max); labels.RemoveRange(max, labels.Count - max); }
        if (labels.All(l => l == -100)) return null;
        return new Example { InputIds = ids.ToArray(), TokenLabels = labels.ToArray() };
    }

    static string Render(HfChatTemplate t, IEnumerable<JsonObject> messages, bool addGenerationPrompt)
    {
        var arr = new JsonArray(messages.Select(m => (JsonNode)m.DeepClone()).ToArray());
        try { return t.Render(arr, addGenerationPrompt); }
        catch (TemplateException e) { throw new InvalidDataException(e.Message, e); }
    }

    // The messages of one cell, checked: a list of objects with a known role and string content.
    static List<JsonObject> Messages(JsonNode? cell, string column)
    {
        if (cell is not JsonArray list) throw new InvalidDataException(cell is null ? $"no '{column}' list" : $"'{column}' must be a list of {{\"role\", \"content\"}} objects, not {cell.GetValueKind()}");
        if (list.Count == 0) throw new InvalidDataException($"'{column}' is an empty list");
        var result = new List<JsonObject>();
        for (int i = 0; i < list.Count; i++)
        {
            string where = $"'{column}' message {i + 1}";
            if (list[i] is not JsonObject m) throw new InvalidDataException($"{where} is not an object with \"role\" and \"content\"");
            if (m["role"] is not JsonValue rv || rv.GetValueKind() != JsonValueKind.String) throw new InvalidDataException($"{where} has no \"role\" string");
            string role = rv.GetValue<string>();
            if (!Roles.Contains(role)) throw new InvalidDataException($"{where} has an unknown role '{role}' (roles: {string.Join(", ", Roles)})");
            if (m["content"] is not JsonValue cv || cv.GetValueKind() != JsonValueKind.String) throw new InvalidDataException($"{where} ({role}) has no \"content\" string");
            result.Add(m);
        }
        return result;
    }

    /// <summary>
    /// Packing (data.packing, TRL's padding-free packing): examples laid end to end, in order, into rows of at most
    /// <paramref name="maxLength"/> tokens (an example that does not fit starts the next row; none is split). Each
    /// example's position ids restart at 0, which is how the model sees where one example ends (attention stays
    /// inside each example: <see cref="Models.CausalMask.Packed"/>), and each example's first label is -100 so no
    /// loss is taken for predicting it from the previous example's last token.
    /// </summary>
    public static List<Example> Pack(IReadOnlyList<Example> examples, int maxLength)
    {
        var rows = new List<Example>();
        var ids = new List<int>(); var labels = new List<int>(); var positions = new List<int>();
        void Flush()
        {
            if (ids.Count == 0) return;
            rows.Add(new Example { InputIds = ids.ToArray(), TokenLabels = labels.ToArray(), PositionIds = positions.ToArray() });
            ids.Clear(); labels.Clear(); positions.Clear();
        }
        foreach (var e in examples)
        {
            int n = Math.Min(e.InputIds.Length, maxLength);
            if (ids.Count + n > maxLength) Flush();
            for (int j = 0; j < n; j++)
            {
                ids.Add(e.InputIds[j]);
                labels.Add(j == 0 ? -100 : e.TokenLabels?[j] ?? e.InputIds[j]);
                positions.Add(j);
            }
        }
        Flush();
        return rows;
    }
}
