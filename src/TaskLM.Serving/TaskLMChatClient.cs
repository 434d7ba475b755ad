// An IChatClient (Microsoft.Extensions.AI) over a TaskLM causal LM, so .NET AI code can use it like any chat model.
using System.Runtime.CompilerServices;
using Microsoft.Extensions.AI;

namespace TaskLM.Serving;

/// <summary>
/// Microsoft.Extensions.AI's chat interface over an in-process <see cref="TaskLMModel"/> causal LM. Messages go
/// through <see cref="TaskLMModel.ChatTemplate"/>; ChatOptions' Temperature (0 or unset = greedy), TopP, TopK,
/// MaxOutputTokens (default 64), StopSequences and Seed are honoured. Text content only.
/// </summary>
public sealed class TaskLMChatClient(TaskLMModel model, string? modelId = null) : IChatClient
{
    readonly ChatClientMetadata _metadata = new("tasklm", null, modelId ?? model.Card.Id);

    /// <inheritdoc />
    public async Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default)
    {
        var updates = new List<ChatResponseUpdate>();
        await foreach (var u in GetStreamingResponseAsync(messages, options, cancellationToken).ConfigureAwait(false)) updates.Add(u);
        return updates.ToChatResponse();
    }

    /// <inheritdoc />
    public async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        string prompt = model.ChatTemplate.Format(messages.Select(m => (m.Role.Value, m.Text)));
        var o = new GenerateOptions
        {
            MaxTokens = options?.MaxOutputTokens ?? 64,
            Temperature = options?.Temperature,
            TopP = options?.TopP ?? 1.0,
            TopK = options?.TopK ?? 0,
            Seed = options?.Seed,
            Stop = [.. model.ChatTemplate.Stops, .. options?.StopSequences ?? []],
        };
        string id = "chatcmpl-" + Guid.NewGuid().ToString("N");
        await foreach (var c in model.GenerateAsync(prompt, o, cancellationToken).ConfigureAwait(false))
        {
            var u = new ChatResponseUpdate(ChatRole.Assistant, c.Text) { ResponseId = id, MessageId = id, ModelId = _metadata.DefaultModelId };
            if (c.FinishReason is { } finish)
            {
                u.FinishReason = finish == TaskLM.Models.FinishReason.Length ? ChatFinishReason.Length : ChatFinishReason.Stop;
                u.Contents.Add(new UsageContent(new UsageDetails { InputTokenCount = c.PromptTokens, OutputTokenCount = c.CompletionTokens, TotalTokenCount = c.PromptTokens + c.CompletionTokens }));
            }
            yield return u;
        }
    }

    /// <inheritdoc />
    public object? GetService(Type serviceType, object? serviceKey = null) =>
        serviceKey is not null ? null
        : serviceType == typeof(ChatClientMetadata) ? _metadata
        : serviceType == typeof(TaskLMModel) ? model
        : serviceType.IsInstanceOfType(this) ? this : null;

    /// <inheritdoc />
    public void Dispose() { }
}
