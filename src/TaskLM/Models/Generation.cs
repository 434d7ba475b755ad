// Text generation for causal LMs: a request validated in one place, one decoding loop (greedy or sampled, KV
// cache, left-padded batches), and a facade that streams tokens with a finish reason for the CLI and a server.
using System.Runtime.CompilerServices;
using TaskLM.Data.Tokenization;
using TorchSharp;
using static TorchSharp.torch;

namespace TaskLM.Models;

/// <summary>How to decode, with Hugging Face's generate() names and meanings.</summary>
public sealed class GenerationOptions
{
    public int MaxNewTokens { get; set; } = 20;
    /// <summary>false = greedy (argmax); true = sample from the processed distribution.</summary>
    public bool DoSample { get; set; }
    public double Temperature { get; set; } = 1.0;
    /// <summary>Keep the k most likely tokens (0 = off).</summary>
    public int TopK { get; set; }
    /// <summary>Keep the smallest set of tokens whose probability reaches p (1 = off).</summary>
    public double TopP { get; set; } = 1.0;
    /// <summary>HF's CTRL penalty: a seen token's logit is divided by it when positive, multiplied when negative (1 = off).</summary>
    public double RepetitionPenalty { get; set; } = 1.0;
    /// <summary>Seed of the sampling generator (null = torch's default generator).</summary>
    public long? Seed { get; set; }
    /// <summary>Stop a sequence at this id (default: config eos_token_id; set -1 to never stop at EOS).</summary>
    public int? EosTokenId { get; set; }
    /// <summary>Id used to left-pad prompts and to fill finished rows (default: pad_token_id, else EOS, else 0).</summary>
    public int? PadTokenId { get; set; }
    /// <summary>Stop a sequence once its decoded continuation contains one of these (needs a decoder).</summary>
    public IReadOnlyList<string>? StopStrings { get; set; }
    /// <summary>Use the KV cache (each new token runs one position); false reruns the whole sequence each step.</summary>
    public bool UseCache { get; set; } = true;

    /// <summary>The one validation of decoding settings: every error names the setting (HF's name and the
    /// CLI option) and the accepted range.</summary>
    public void Validate()
    {
        if (MaxNewTokens < 0) throw new ArgumentException($"max_new_tokens (--max-new-tokens) must be 0 or more, got {MaxNewTokens}");
        if (TopK < 0) throw new ArgumentException($"top_k (--top-k) must be 0 (off) or more, got {TopK}");
        if (!(TopP > 0 && TopP <= 1)) throw new ArgumentException($"top_p (--top-p) must be in (0, 1], got {TopP}");
        if (DoSample && !(Temperature > 0) || double.IsNaN(Temperature) || double.IsInfinity(Temperature))
            throw new ArgumentException($"temperature (--temperature) must be > 0 when sampling (use greedy decoding instead), got {Temperature}");
        if (!(RepetitionPenalty > 0) || double.IsInfinity(RepetitionPenalty))
            throw new ArgumentException($"repetition_penalty (--repetition-penalty) must be > 0 (1 = off), got {RepetitionPenalty}");
        if (StopStrings != null && StopStrings.Any(string.IsNullOrEmpty)) throw new ArgumentException("stop strings (--stop) must not be empty");
    }
}

/// <summary>Why a sequence ended (OpenAI's and HF's finish reasons).</summary>
public enum FinishReason
{
    /// <summary>max_new_tokens reached.</summary>
    Length,
    /// <summary>The continuation contains a stop string.</summary>
    Stop,
    /// <summary>The model produced its end-of-sequence token.</summary>
    Eos,
}

/// <summary>
/// One generation request, as the <c>generate</c> verb and a server receive it: a prompt as ids or text, decoding
/// settings and stop strings. Sampling is on when any sampling setting is given, unless <see cref="Greedy"/> says
/// otherwise (giving both is an error). <see cref="Validate"/> is the one place requests are checked.
/// </summary>
public sealed class GenerationRequest
{
    /// <summary>Prompt token ids (exactly one of this and <see cref="Prompt"/>).</summary>
    public IReadOnlyList<int>? PromptIds { get; init; }
    /// <summary>Prompt text, encoded with the generator's tokenizer.</summary>
    public string? Prompt { get; init; }
    public int MaxNewTokens { get; init; } = 20;
    /// <summary>true = greedy decoding (an error together with a sampling setting); null = inferred.</summary>
    public bool? Greedy { get; init; }
    public double? Temperature { get; init; }
    public int? TopK { get; init; }
    public double? TopP { get; init; }
    public long? Seed { get; init; }
    public double RepetitionPenalty { get; init; } = 1.0;
    /// <summary>Stop once the continuation contains one of these (needs a tokenizer).</summary>
    public IReadOnlyList<string>? Stop { get; init; }
    /// <summary>Override of the model's eos_token_id (-1 = never stop at EOS).</summary>
    public int? EosTokenId { get; init; }
    public bool UseCache { get; init; } = true;

    /// <summary>True when a sampling setting is given (temperature, top-k, top-p, seed).</summary>
    public bool Samples => Greedy != true && (Temperature is not null || TopK is not null || TopP is not null || Seed is not null);

    /// <summary>Checks the request and returns the decoding options it means. Errors name the setting.</summary>
    public GenerationOptions Validate()
    {
        if ((Prompt is null) == (PromptIds is null)) throw new ArgumentException("give exactly one of a prompt text (--prompt) or prompt ids (--prompt-ids)");
        if (PromptIds is { Count: 0 }) throw new ArgumentException("the prompt has no tokens (--prompt-ids is empty)");
        if (PromptIds != null && PromptIds.FirstOrDefault(i => i < 0) is int neg && neg < 0) throw new ArgumentException($"prompt id {neg} is negative");
        if (Greedy == true && (Temperature is not null || TopK is not null || TopP is not null || Seed is not null))
            throw new ArgumentException("greedy decoding (--greedy) cannot be combined with --temperature/--top-k/--top-p/--seed");
        var o = new GenerationOptions
        {
            MaxNewTokens = MaxNewTokens, DoSample = Samples, Temperature = Temperature ?? 1.0, TopK = TopK ?? 0, TopP = TopP ?? 1.0,
            Seed = Seed, RepetitionPenalty = RepetitionPenalty, StopStrings = Stop, EosTokenId = EosTokenId, UseCache = UseCache,
        };
        o.Validate();
        return o;
    }
}

/// <summary>One streamed piece: a token and the text it adds (multi-byte characters are held back until
/// complete). The last piece carries the <see cref="Finish"/> reason (its token may be null when nothing
/// was generated).</summary>
public sealed record GenerationChunk(int? TokenId, string Text, FinishReason? Finish);

/// <summary>A finished generation.</summary>
public sealed record GenerationResult(IReadOnlyList<int> PromptIds, IReadOnlyList<int> NewIds, string? PromptText, string? NewText,
    FinishReason Finish, double Seconds)
{
    /// <summary>New tokens per second of decoding.</summary>
    public double TokensPerSecond => NewIds.Count / Math.Max(Seconds, 1e-9);
}

/// <summary>
/// The generation facade a verb and a server share: holds a causal-LM model and (optionally) its tokenizer,
/// validates each <see cref="GenerationRequest"/>, and streams tokens with a cancellation token. The model must
/// be in eval mode (its owner decides; a shared model is never switched behind its back). One request at a time
/// per generator: a server serialises requests to one model.
/// </summary>
public sealed class TextGenerator
{
    readonly ICausalLM _lm;

    /// <summary>The tokenizer for text prompts, decoded text and stop strings (null: ids only).</summary>
    public ITokenizer? Tokenizer { get; }

    public TextGenerator(ITaskModel model, ITokenizer? tokenizer)
    {
        _lm = model as ICausalLM ?? throw new ArgumentException($"generation needs a causal LM (a GPT-2 or Llama-family LM head); this model is a {model.ModelType} '{model.Task}' model");
        Tokenizer = tokenizer;
    }

    /// <summary>The prompt's ids: given, or the text encoded. Checked against the vocabulary.</summary>
    public IReadOnlyList<int> PromptIds(GenerationRequest r)
    {
        var ids = r.PromptIds ?? (Tokenizer ?? throw new ArgumentException("a text prompt needs a tokenizer (--tokenizer)")).Encode(r.Prompt!);
        if (ids.Count == 0) throw new ArgumentException("the prompt encodes to no tokens");
        int vocab = _lm.VocabSize;
        for (int i = 0; i < ids.Count; i++)
            if (ids[i] < 0 || ids[i] >= vocab)
                throw new ArgumentException($"prompt id {ids[i]} at position {i} is outside the model's vocabulary (vocab_size {vocab}: ids 0..{vocab - 1})");
        return ids;
    }

    /// <summary>Streams the continuation token by token. Cancellation stops between tokens (the KV cache is freed).</summary>
    public async IAsyncEnumerable<GenerationChunk> StreamAsync(GenerationRequest request, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var options = request.Validate();
        if (options.StopStrings is { Count: > 0 } && Tokenizer is null) throw new ArgumentException("stop strings (--stop) need a tokenizer (--tokenizer)");
        var ids = PromptIds(request);
        using var session = new DecodeSession(_lm, [ids], options, Tokenizer is null ? null : x => Tokenizer.Decode(x));
        var newIds = new List<int>();
        string emitted = "";
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (!session.Step(out var chosen))
            {
                yield return new GenerationChunk(null, Pending(newIds, ref emitted, final: true), session.Finish[0] ?? FinishReason.Length);
                yield break;
            }
            newIds.Add(chosen[0]);
            var finish = session.Finish[0];
            if (finish is null && session.Exhausted) finish = FinishReason.Length;
            yield return new GenerationChunk(chosen[0], Pending(newIds, ref emitted, final: finish != null), finish);
            if (finish != null) yield break;
            await Task.Yield(); // let the caller's I/O run between tokens
        }
    }

    /// <summary>Runs a request to the end.</summary>
    public async Task<GenerationResult> GenerateAsync(GenerationRequest request, CancellationToken cancellationToken = default)
    {
        var sw = System.Diagnostics.Stopwatch.StartNew();
        var prompt = PromptIds(request);
        var newIds = new List<int>();
        FinishReason finish = FinishReason.Length;
        await foreach (var c in StreamAsync(request, cancellationToken))
        {
            if (c.TokenId is int t) newIds.Add(t);
            if (c.Finish is FinishReason f) finish = f;
        }
        return new GenerationResult(prompt, newIds, Tokenizer?.Decode(prompt), Tokenizer?.Decode(newIds), finish, sw.Elapsed.TotalSeconds);
    }

    // The text the new ids add since the last chunk; an unfinished multi-byte character (U+FFFD at the end) waits.
    string Pending(List<int> newIds, ref string emitted, bool final)
    {
        if (Tokenizer is null) return "";
        string text = Tokenizer.Decode(newIds);
        if (!final && text.EndsWith('\uFFFD')) return "";
        string delta = text.StartsWith(emitted, StringComparison.Ordinal) ? text[emitted.Length..] : text;
        emitted = text;
        return delta;
    }
}

/// <summary>Decodes continuations of prompts with a causal LM head model (the batch API under the facade), and the
/// decoding forward pass every decoder shares (this file's <see cref="DecodeSession"/> and the server's batching).</summary>
public static class Generation
{
    /// <summary>
    /// Generates continuations of each prompt (token ids). Prompts of different lengths are left-padded and
    /// run as one batch, with position ids counted from the attention mask as HF does. Returns the new
    /// tokens of each row (ending with EOS when it stopped there). <paramref name="onToken"/>(row, token) is
    /// called as each token is chosen; <paramref name="decode"/> turns ids into text for stop strings.
    /// The model must be in eval mode.
    /// </summary>
    public static List<int[]> Generate(ITaskModel model, IReadOnlyList<IReadOnlyList<int>> prompts, GenerationOptions options,
        Action<int, int>? onToken = null, Func<IReadOnlyList<int>, string>? decode = null)
    {
        var lm = model as ICausalLM ?? throw new InvalidOperationException($"generation needs a causal-lm model, not '{model.Task}'");
        if (prompts.Count == 0) return new();
        options.Validate();
        using var session = new DecodeSession(lm, prompts, options, decode);
        while (session.Step(out var chosen))
            for (int r = 0; r < chosen.Length; r++)
                if (chosen[r] >= 0) onToken?.Invoke(r, chosen[r]);
        return session.Outputs.Select(o => o.ToArray()).ToList();
    }

    /// <summary>
    /// One decoding forward pass: the next-token logits (B, V) float32 of left-padded rows. <paramref name="ids"/> and
    /// <paramref name="mask"/> are (B, S) (mask 1 = real, 0 = pad), the last column the newest token. With
    /// <paramref name="prefill"/> (or no cache) all S positions run (filling an empty <paramref name="cache"/>); otherwise only
    /// the last column runs through the cache. Positions follow HF: the number of real tokens before each one. Call it
    /// under no_grad and a dispose scope; the result lives in the caller's scope.
    /// </summary>
    public static Tensor NextLogits(ICausalLM lm, IReadOnlyList<IReadOnlyList<int>> ids, IReadOnlyList<IReadOnlyList<int>> mask, KvCache? cache, bool prefill)
    {
        var device = lm.Device;
        var fullMask = IdsTensor(mask, device);                                           // (B, S)
        // HF: position = (number of real tokens before it) - 1; pads get 1 (never attended).
        var positions = fullMask.cumsum(1, ScalarType.Int64).sub(1).masked_fill(fullMask.eq(0), 1);
        Tensor logits;
        if (cache is null || prefill)
            logits = lm.Logits(IdsTensor(ids, device), fullMask, positions, cache);           // (B, S, V)
        else
        {
            var last = tensor(ids.Select(r => (long)r[^1]).ToArray(), dtype: int64, device: device).view(ids.Count, 1);
            logits = lm.Logits(last, fullMask, positions.narrow(1, positions.shape[1] - 1, 1), cache); // (B, 1, V)
        }
        return logits.select(1, logits.shape[1] - 1).to(float32);                          // (B, V)
    }

    /// <summary>Rows of equal length as a (B, L) int64 tensor on <paramref name="device"/>.</summary>
    public static Tensor IdsTensor(IReadOnlyList<IReadOnlyList<int>> rows, Device device)
    {
        int b = rows.Count, l = rows[0].Count;
        var flat = new long[b * l];
        for (int r = 0; r < b; r++) for (int c = 0; c < l; c++) flat[r * l + c] = rows[r][c];
        return tensor(flat, new long[] { b, l }, dtype: int64, device: device);
    }
}

/// <summary>
/// The one sampler: HF's logits processors in HF's order (repetition penalty; when sampling, temperature, top-k, top-p),
/// then the choice (argmax, or a draw from its own generator when seeded). <see cref="DecodeSession"/> runs one for a whole
/// batch; the server runs one per sequence, each with its own settings and seed. Seeded the same, a one-row session and
/// a server sequence draw the same tokens.
/// </summary>
public sealed class TokenSampler : IDisposable
{
    readonly GenerationOptions _o;
    readonly Generator? _gen;

    /// <summary>A sampler for <paramref name="options"/>; its generator (when seeded) lives on <paramref name="device"/>.</summary>
    public TokenSampler(GenerationOptions options, Device device)
    {
        _o = options;
        _gen = options.Seed is long seed ? new Generator((ulong)seed, device) : null;
    }

    /// <summary>The next token of each row: <paramref name="scores"/> (B, V) float32 logits, <paramref name="seen"/> the
    /// ids each row has so far, B rows of S (what the repetition penalty penalises; made a tensor only when it is on,
    /// not at every step of every decode). Returns (B,) int64.</summary>
    public Tensor Choose(Tensor scores, IReadOnlyList<IReadOnlyList<int>> seen)
    {
        scores = Process(scores, seen, _o);
        return _o.DoSample ? multinomial(softmax(scores, -1), 1, generator: _gen).squeeze(1) : scores.argmax(-1);
    }

    /// <summary>HF's logits processors, in HF's order: repetition penalty, then (sampling only) temperature,
    /// top-k, top-p. scores (B, V) float32, seen B rows of S ids.</summary>
    static Tensor Process(Tensor scores, IReadOnlyList<IReadOnlyList<int>> seen, GenerationOptions o)
    {
        if (o.RepetitionPenalty != 1.0)
        {
            var ids = Generation.IdsTensor(seen, scores.device);                               // (B, S)
            var s = scores.gather(1, ids);
            s = where(s.lt(0), s * o.RepetitionPenalty, s / o.RepetitionPenalty);
            scores = scores.scatter(1, ids, s);
        }
        if (!o.DoSample) return scores;
        if (o.Temperature != 1.0) scores = scores / o.Temperature;
        if (o.TopK > 0 && o.TopK < scores.shape[1])
        {
            var kth = scores.topk(o.TopK, dim: -1).values.select(1, o.TopK - 1).unsqueeze(1); // (B, 1)
            scores = scores.masked_fill(scores.lt(kth), double.NegativeInfinity);
        }
        if (o.TopP < 1.0)
        {
            // HF: sort ascending, drop tokens whose cumulative probability is <= 1 - top_p, keep at least one.
            var (sorted, order) = scores.sort(dim: -1, descending: false);
            var cum = softmax(sorted, -1).cumsum(-1);
            var remove = cum.le(1 - o.TopP);
            remove[TensorIndex.Colon, TensorIndex.Single(-1)] = tensor(false, device: scores.device);
            var removeOrig = remove.scatter(1, order, remove);
            scores = scores.masked_fill(removeOrig, double.NegativeInfinity);
        }
        return scores;
    }

    public void Dispose() => _gen?.Dispose();
}

/// <summary>The decoding loop, one step per call: each <see cref="Step"/> runs under its own no_grad and dispose
/// scope (torch's grad mode and scopes are per thread, and an async caller may resume on another thread).</summary>
sealed class DecodeSession : IDisposable
{
    readonly ICausalLM _lm;
    readonly GenerationOptions _o;
    readonly Func<IReadOnlyList<int>, string>? _decode;
    readonly List<List<int>> _ids, _mask;
    readonly bool[] _done;
    readonly IReadOnlyList<int> _eos;
    readonly int _pad, _b;
    readonly Device _device;
    readonly TokenSampler _sampler;
    readonly KvCache? _cache;
    int _step;

    public List<int>[] Outputs { get; }
    /// <summary>Per row: why it finished (null while running, or when it ran out of max_new_tokens).</summary>
    public FinishReason?[] Finish { get; }
    /// <summary>True once max_new_tokens steps have run.</summary>
    public bool Exhausted => _step >= _o.MaxNewTokens;

    public DecodeSession(ICausalLM lm, IReadOnlyList<IReadOnlyList<int>> prompts, GenerationOptions options, Func<IReadOnlyList<int>, string>? decode)
    {
        if (lm.Module.training) throw new InvalidOperationException("generation needs the model in eval mode (call eval() on it first); it is not switched behind its owner's back");
        if (prompts.Any(p => p.Count == 0)) throw new ArgumentException("every prompt needs at least one token");
        if (options.StopStrings is { Count: > 0 } && decode is null) throw new ArgumentException("stop strings need a tokenizer to decode with");
        _lm = lm; _o = options; _decode = decode;
        _eos = StopIds(lm, options);
        _pad = options.PadTokenId ?? lm.PadTokenId ?? (_eos.Count > 0 ? _eos[0] : 0);
        _b = prompts.Count;
        int longest = prompts.Max(p => p.Count);
        if (longest + options.MaxNewTokens > lm.MaxPositions)
            throw new ArgumentException($"prompt ({longest} tokens) + max_new_tokens ({options.MaxNewTokens}) exceeds the model's {lm.MaxPositions} positions");
        _device = lm.Device;
        // Rows as ids with left padding; mask 0 on pads. (B, L) each, kept host-side and grown per step.
        _ids = prompts.Select(p => Enumerable.Repeat(_pad, longest - p.Count).Concat(p).ToList()).ToList();
        _mask = prompts.Select(p => Enumerable.Repeat(0, longest - p.Count).Concat(Enumerable.Repeat(1, p.Count)).ToList()).ToList();
        Outputs = Enumerable.Range(0, _b).Select(_ => new List<int>()).ToArray();
        Finish = new FinishReason?[_b];
        _done = new bool[_b];
        _sampler = new TokenSampler(options, _device);
        _cache = options.UseCache ? lm.NewKvCache(_b, longest + options.MaxNewTokens) : null;
    }

    /// <summary>The ids that end a sequence: the options' override (-1: none), else the model's (config.json and
    /// generation_config.json eos_token_id).</summary>
    public static IReadOnlyList<int> StopIds(ICausalLM lm, GenerationOptions o) =>
        o.EosTokenId is int e ? (e >= 0 ? [e] : []) : lm.EosTokenIds;

    /// <summary>Chooses the next token of every row (-1 for finished rows); false when nothing is left to do.</summary>
    public bool Step(out int[] chosen)
    {
        chosen = [];
        if (_step >= _o.MaxNewTokens || _done.All(d => d)) return false;
        long[] next;
        using (no_grad())
        using (NewDisposeScope())
        {
            var scores = Generation.NextLogits(_lm, _ids, _mask, _cache, prefill: _step == 0);   // (B, V)
            // HF penalises every id of the row, left pads included.
            next = _sampler.Choose(scores, _ids).cpu().data<long>().ToArray();                 // (B,)
        }
        _step++;
        chosen = new int[_b];
        for (int r = 0; r < _b; r++)
        {
            int tok = _done[r] ? _pad : (int)next[r];
            _ids[r].Add(tok);
            _mask[r].Add(1);
            if (_done[r]) { chosen[r] = -1; continue; }
            chosen[r] = tok;
            Outputs[r].Add(tok);
            if (_eos.Contains(tok)) { _done[r] = true; Finish[r] = FinishReason.Eos; }
            else if (_o.StopStrings is { Count: > 0 } stops)
            {
                string text = _decode!(Outputs[r]);
                if (stops.Any(s => text.Contains(s, StringComparison.Ordinal))) { _done[r] = true; Finish[r] = FinishReason.Stop; }
            }
        }
        return true;
    }

    public void Dispose()
    {
        _cache?.Dispose();
        _sampler.Dispose();
    }
}
