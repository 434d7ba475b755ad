// The one thread that runs the model: dynamic batching of encoder rows, continuous batching of generated sequences.
using System.Threading.Channels;
using TaskLM.Data.Tokenization;
using TaskLM.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace TaskLM.Serving;

/// <summary>One encoded input row: ids (and BERT segment ids), no padding.</summary>
internal sealed record EncoderRow(int[] Ids, int[]? TypeIds);

/// <summary>What an encoder row asks for: the head's logits, or the mean-pooled last hidden states.</summary>
internal enum RowKind { Logits, Embedding }

/// <summary>Counters the server exports on /metrics. Updated by the engine thread, read by anyone.</summary>
public sealed class EngineStats
{
    long _queued, _tokensIn, _tokensOut, _batches, _batchRows, _active, _cancelled;
    /// <summary>Sequences stopped by their caller's cancellation (client gone, timeout).</summary>
    public long Cancelled => Interlocked.Read(ref _cancelled);
    /// <summary>Rows and sequences waiting for the model.</summary>
    public long QueueLength => Interlocked.Read(ref _queued);
    /// <summary>Sequences decoding now.</summary>
    public long ActiveSequences => Interlocked.Read(ref _active);
    /// <summary>Prompt/input tokens the model has read.</summary>
    public long TokensIn => Interlocked.Read(ref _tokensIn);
    /// <summary>Tokens generated.</summary>
    public long TokensOut => Interlocked.Read(ref _tokensOut);
    /// <summary>Forward passes run (encoder batches and decoding steps).</summary>
    public long Batches => Interlocked.Read(ref _batches);
    /// <summary>Rows over all forward passes (mean batch size = BatchRows / Batches).</summary>
    public long BatchRows => Interlocked.Read(ref _batchRows);
    /// <summary>Batch-size histogram: count of forward passes with size ≤ each bound (1, 2, 4, ..., 256, +Inf).</summary>
    public long[] BatchSizeBuckets { get; } = new long[BucketBounds.Length + 1];
    /// <summary>Upper bounds of <see cref="BatchSizeBuckets"/>.</summary>
    public static readonly int[] BucketBounds = [1, 2, 4, 8, 16, 32, 64, 128, 256];

    internal void Queued(long n) => Interlocked.Add(ref _queued, n);
    internal void In(long n) => Interlocked.Add(ref _tokensIn, n);
    internal void Out(long n) => Interlocked.Add(ref _tokensOut, n);
    internal void Active(long n) => Interlocked.Exchange(ref _active, n);
    internal void Cancel() => Interlocked.Increment(ref _cancelled);
    internal void Batch(int rows)
    {
        Interlocked.Increment(ref _batches);
        Interlocked.Add(ref _batchRows, rows);
        int i = Array.FindIndex(BucketBounds, b => rows <= b);
        Interlocked.Increment(ref BatchSizeBuckets[i < 0 ? BucketBounds.Length : i]);
    }
}

/// <summary>
/// Owns the model: every forward pass runs on this one thread, so callers on any thread are safe, and rows of
/// concurrent callers share passes. Encoder rows wait up to the batch window for company, then run as one
/// right-padded batch. Generated sequences decode together one token per step with a KV cache; a sequence that
/// arrives joins at the next step (the batch is re-prefilled, left-padded, with it), a finished or cancelled one
/// stops taking part and its row is dropped at the next re-prefill. All calls into Models/ are in this file.
/// </summary>
internal sealed class ModelEngine : IDisposable
{
    sealed class EncoderJob(EncoderRow row, RowKind kind, CancellationToken ct)
    {
        public EncoderRow Row { get; } = row;
        public RowKind Kind { get; } = kind;
        public CancellationToken Ct { get; } = ct;
        public TaskCompletionSource<float[]> Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    sealed class Sequence
    {
        public required List<int> Ids { get; init; }              // prompt + generated so far
        public required int PromptLength { get; init; }
        public required GenerateOptions Options { get; init; }
        public required Channel<GeneratedChunk> Out { get; init; }
        public required CancellationToken Ct { get; init; }
        public Generator? Rng { get; set; }
        public int Generated => Ids.Count - PromptLength;
        public int EmittedChars { get; set; }
        public bool Finished { get; set; }
    }

    readonly ITaskModel _model;
    readonly ITokenizer _tok;
    readonly TaskLMModelOptions _o;
    readonly Device _device;
    readonly object _lock = new();
    readonly Queue<EncoderJob> _encoder = new();
    readonly List<Sequence> _pending = new();
    readonly Thread _thread;
    bool _stopping;
    long _queued;   // encoder rows + pending sequences (under _lock)

    // Decoding state (engine thread only): the rows of the running batch, in cache order, and its KV cache.
    List<Sequence> _rows = new();
    Gpt2KvCache? _cache;
    List<List<int>> _batchIds = new(), _batchMask = new();
    readonly int _eos, _pad, _threads;

    public EngineStats Stats { get; } = new();
    /// <summary>Context length of a causal LM (n_positions); 0 for others.</summary>
    public int Positions { get; }

    public ModelEngine(ITaskModel model, TaskLMModelOptions o, ITokenizer tok)
    {
        _model = model; _o = o; _tok = tok;
        _device = o.Device ?? CPU;
        if (model is Gpt2 g)
        {
            Positions = g.Cfg.n_positions;
            _eos = g.Cfg.eos_token_id ?? tok.EosTokenId ?? -1;
            _pad = g.Cfg.pad_token_id ?? (_eos >= 0 ? _eos : 0);
        }
        // libtorch's intra-op thread count (OpenMP) is per OS thread: carry the caller's setting (--threads) to the model thread.
        _threads = get_num_threads();
        _thread = new Thread(Loop) { IsBackground = true, Name = "tasklm-model" };
        _thread.Start();
    }

    // ───────────── callers' side ─────────────

    public async Task<IReadOnlyList<float[]>> RunEncoder(IReadOnlyList<EncoderRow> rows, RowKind kind, CancellationToken ct)
    {
        if (rows.Count == 0) return [];
        var jobs = rows.Select(r => new EncoderJob(r, kind, ct)).ToList();
        lock (_lock)
        {
            if (_stopping) throw new ObjectDisposedException(nameof(TaskLMModel));
            if (_queued + jobs.Count > _o.MaxQueue) throw new QueueFullException($"the model's queue is full ({_queued} rows waiting, at most {_o.MaxQueue})");
            foreach (var j in jobs) _encoder.Enqueue(j);
            _queued += jobs.Count; Stats.Queued(jobs.Count);
            Monitor.PulseAll(_lock);
        }
        return await Task.WhenAll(jobs.Select(j => j.Done.Task)).ConfigureAwait(false);
    }

    public ChannelReader<GeneratedChunk> StartSequence(IReadOnlyList<int> prompt, GenerateOptions o, CancellationToken ct)
    {
        var seq = new Sequence
        {
            Ids = prompt.ToList(), PromptLength = prompt.Count, Options = o, Ct = ct,
            Out = Channel.CreateUnbounded<GeneratedChunk>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true }),
        };
        lock (_lock)
        {
            if (_stopping) throw new ObjectDisposedException(nameof(TaskLMModel));
            if (_queued + 1 > _o.MaxQueue) throw new QueueFullException($"the model's queue is full ({_queued} waiting, at most {_o.MaxQueue})");
            _pending.Add(seq);
            _queued++; Stats.Queued(1);
            Monitor.PulseAll(_lock);
        }
        return seq.Out.Reader;
    }

    // ───────────── the model thread ─────────────

    void Loop()
    {
        set_num_threads(_threads);
        while (true)
        {
            List<EncoderJob>? batch = null;
            lock (_lock)
            {
                while (!_stopping && _encoder.Count == 0 && _pending.Count == 0 && _rows.Count == 0) Monitor.Wait(_lock);
                if (_stopping) break;
                if (_encoder.Count > 0)
                {
                    // Dynamic batching: give other callers a moment to add rows, unless the batch is already full.
                    if (_encoder.Count < _o.MaxBatchSize && _o.BatchWindow > TimeSpan.Zero && _rows.Count == 0)
                        Monitor.Wait(_lock, _o.BatchWindow);
                    batch = new List<EncoderJob>();
                    var kind = _encoder.Peek().Kind;
                    while (_encoder.Count > 0 && batch.Count < _o.MaxBatchSize && _encoder.Peek().Kind == kind) batch.Add(_encoder.Dequeue());
                    _queued -= batch.Count; Stats.Queued(-batch.Count);
                }
            }
            if (batch != null) RunEncoderBatch(batch);
            if (_model is Gpt2) DecodeStep();
        }
        // Shutting down: nobody waits forever.
        lock (_lock)
        {
            foreach (var j in _encoder) j.Done.TrySetException(new ObjectDisposedException(nameof(TaskLMModel)));
            foreach (var s in _pending.Concat(_rows)) s.Out.Writer.TryComplete(new ObjectDisposedException(nameof(TaskLMModel)));
        }
        _cache?.Dispose();
    }

    void RunEncoderBatch(List<EncoderJob> jobs)
    {
        jobs = jobs.Where(j => { if (j.Ct.IsCancellationRequested) { j.Done.TrySetCanceled(j.Ct); return false; } return true; }).ToList();
        if (jobs.Count == 0) return;
        try
        {
            var outs = Forward(jobs.Select(j => j.Row).ToList(), jobs[0].Kind);
            Stats.Batch(jobs.Count);
            Stats.In(jobs.Sum(j => j.Row.Ids.Length));
            for (int i = 0; i < jobs.Count; i++) jobs[i].Done.TrySetResult(outs[i]);
        }
        catch (Exception e)
        {
            foreach (var j in jobs) j.Done.TrySetException(e);
        }
    }

    /// <summary>One right-padded forward pass. Per row: classification (C); token classification (T·C) over the
    /// row's own T positions; QA start then end logits (2T); embedding (H).</summary>
    List<float[]> Forward(List<EncoderRow> rows, RowKind kind)
    {
        int b = rows.Count, t = rows.Max(r => r.Ids.Length);
        int pad = (int?)_model.Config["pad_token_id"] ?? 0;
        var ids = new long[b * t]; var mask = new long[b * t];
        long[]? types = rows.Any(r => r.TypeIds != null) ? new long[b * t] : null;
        Array.Fill(ids, pad);
        for (int i = 0; i < b; i++)
            for (int j = 0; j < rows[i].Ids.Length; j++)
            {
                ids[i * t + j] = rows[i].Ids[j]; mask[i * t + j] = 1;
                if (types != null && rows[i].TypeIds != null) types[i * t + j] = rows[i].TypeIds![j];
            }
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var input = tensor(ids, [b, t], device: _device);
        var attn = tensor(mask, [b, t], device: _device);
        var typeT = types == null ? null : tensor(types, [b, t], device: _device);
        var result = new List<float[]>(b);
        if (kind == RowKind.Embedding)
        {
            var hidden = LastHidden(input, attn, typeT);                                  // (B, T, H)
            var m = attn.unsqueeze(-1).to(hidden.dtype);                                   // (B, T, 1)
            var mean = (hidden * m).sum(1) / m.sum(1).clamp_min(1);                        // (B, H)
            var flat = mean.to(float32).cpu().data<float>().ToArray();
            int h = (int)mean.shape[1];
            for (int i = 0; i < b; i++) result.Add(flat.AsSpan(i * h, h).ToArray());
            return result;
        }
        var o = _model.Forward(new ModelBatch { InputIds = input, AttentionMask = attn, TokenTypeIds = typeT });
        if (o.StartLogits is not null)
        {
            var s = o.StartLogits.to(float32).cpu().data<float>().ToArray();               // (B, T)
            var e = o.EndLogits!.to(float32).cpu().data<float>().ToArray();
            for (int i = 0; i < b; i++)
            {
                int n = rows[i].Ids.Length;
                result.Add([.. s.AsSpan(i * t, n), .. e.AsSpan(i * t, n)]);
            }
            return result;
        }
        var logits = o.Logits!.to(float32).cpu();
        var data = logits.data<float>().ToArray();
        if (logits.dim() == 2)                                                              // (B, C)
        {
            int c = (int)logits.shape[1];
            for (int i = 0; i < b; i++) result.Add(data.AsSpan(i * c, c).ToArray());
        }
        else                                                                                // (B, T, C)
        {
            int c = (int)logits.shape[2];
            for (int i = 0; i < b; i++) result.Add(data.AsSpan(i * t * c, rows[i].Ids.Length * c).ToArray());
        }
        return result;
    }

    /// <summary>The family's last hidden states (B, T, H), from the base model module HF names "bert" / "transformer".</summary>
    Tensor LastHidden(Tensor ids, Tensor mask, Tensor? types)
    {
        foreach (var (name, child) in _model.Module.named_children())
        {
            if (child is BertModel bert) return bert.forward(ids, mask, types).sequence_output;
            if (child is GPT2Model gpt) return gpt.Forward(ids, mask);
            if (name == "transformer" && child is GPT2Model g2) return g2.Forward(ids, mask);
        }
        if (_model.Module is GPT2LMHeadModel lm) return lm.Transformer.Forward(ids, mask);
        throw new BadRequestException($"embeddings are not available for this '{_model.Task}' model", code: "wrong_task");
    }

    // ───────────── continuous batching ─────────────

    void DecodeStep()
    {
        var gpt = (Gpt2)_model;
        var lm = gpt.LMHead!;
        bool rebuild = false;
        lock (_lock)
        {
            // A caller that left while its sequence waited for a slot frees its place in the queue now, not when a slot opens.
            for (int i = _pending.Count - 1; i >= 0; i--)
            {
                if (!_pending[i].Ct.IsCancellationRequested) continue;
                Finish(_pending[i], null, cancelled: true);
                _pending.RemoveAt(i);
                _queued--; Stats.Queued(-1);
            }
            int live = _rows.Count(r => !r.Finished);
            if (_pending.Count > 0 && live < _o.MaxBatchSize)
            {
                int take = Math.Min(_pending.Count, _o.MaxBatchSize - live);
                _rows.AddRange(_pending.Take(take));
                _pending.RemoveRange(0, take);
                _queued -= take; Stats.Queued(-take);
                rebuild = true;
            }
        }
        foreach (var s in _rows)
            if (!s.Finished && s.Ct.IsCancellationRequested) Finish(s, null, cancelled: true);
        int alive = _rows.Count(r => !r.Finished);
        Stats.Active(alive);
        if (alive == 0) { ResetBatch(); return; }
        // Re-prefill when rows joined, when the cache would overflow, or when most rows are finished (compaction).
        if (_cache is null || _cache.Length + 1 > _cache.Capacity || _rows.Count - alive > alive) rebuild = true;

        try
        {
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            Tensor logits;
            if (rebuild)
            {
                _rows = _rows.Where(r => !r.Finished).ToList();
                int b = _rows.Count, longest = _rows.Max(r => r.Ids.Count);
                int room = _rows.Max(r => r.Options.MaxTokens - r.Generated);
                _batchIds = _rows.Select(r => Enumerable.Repeat(_pad, longest - r.Ids.Count).Concat(r.Ids).ToList()).ToList();
                _batchMask = _rows.Select(r => Enumerable.Repeat(0, longest - r.Ids.Count).Concat(Enumerable.Repeat(1, r.Ids.Count)).ToList()).ToList();
                _cache?.Dispose();
                _cache = new Gpt2KvCache(gpt.Cfg, b, Math.Min(Positions, longest + room), _device, lm.Transformer.TokenEmbedding.dtype);
                var mask = Tensor2D(_batchMask);                                           // (B, S)
                logits = lm.Logits(Tensor2D(_batchIds), mask, Positions2D(mask), _cache);  // (B, S, V)
                Stats.In(_rows.Sum(r => r.Ids.Count));
            }
            else
            {
                var mask = Tensor2D(_batchMask);                                           // (B, S): the new token is already in
                var last = tensor(_batchIds.Select(r => (long)r[^1]).ToArray(), dtype: int64, device: _device).view(_rows.Count, 1);
                var pos = Positions2D(mask);
                logits = lm.Logits(last, mask, pos.narrow(1, pos.shape[1] - 1, 1), _cache);  // (B, 1, V)
            }
            Stats.Batch(_rows.Count);
            var scores = logits.select(1, logits.shape[1] - 1).to(float32);                 // (B, V)
            long[] greedy = scores.argmax(-1).cpu().data<long>().ToArray();
            for (int r = 0; r < _rows.Count; r++)
            {
                var s = _rows[r];
                int tok = _pad;
                if (!s.Finished)
                {
                    tok = s.Options.Temperature is null or 0 ? (int)greedy[r] : Sample(scores[r], s);
                    s.Ids.Add(tok);
                    Stats.Out(1);
                }
                // Every row takes a token each step (finished rows a pad) so the cache stays aligned; the mask keeps it 1 as HF does.
                _batchIds[r].Add(tok); _batchMask[r].Add(1);
                if (!s.Finished) Emit(s, tok);
            }
        }
        catch (Exception e)
        {
            foreach (var s in _rows.Where(r => !r.Finished)) { s.Finished = true; s.Out.Writer.TryComplete(e); }
            ResetBatch();
        }
    }

    void ResetBatch()
    {
        _rows = _rows.Where(r => !r.Finished).ToList();
        if (_rows.Count == 0) { _cache?.Dispose(); _cache = null; _batchIds = new(); _batchMask = new(); }
    }

    /// <summary>HF's sampling processors for one row: temperature, top-k, top-p, then a draw from the row's own generator. scores (V).</summary>
    int Sample(Tensor scores, Sequence s)
    {
        var o = s.Options;
        s.Rng ??= new Generator((ulong)(o.Seed ?? Random.Shared.NextInt64()), _device);
        var x = scores / o.Temperature!.Value;
        if (o.TopK > 0 && o.TopK < x.shape[0])
        {
            var kth = x.topk(o.TopK).values[o.TopK - 1];
            x = x.masked_fill(x.lt(kth), double.NegativeInfinity);
        }
        if (o.TopP < 1.0)
        {
            // HF: sort ascending, drop tokens whose cumulative probability is <= 1 - top_p, keep at least one.
            var (sorted, order) = x.sort(descending: false);
            var remove = softmax(sorted, -1).cumsum(-1).le(1 - o.TopP);
            remove[TensorIndex.Single(-1)] = tensor(false, device: _device);
            x = x.masked_fill(remove.scatter(0, order, remove), double.NegativeInfinity);
        }
        return (int)multinomial(softmax(x, -1), 1, generator: s.Rng).item<long>();
    }

    /// <summary>Sends the new text of a sequence and finishes it on EOS, a stop text, max_tokens or the context end.
    /// Text is held back while it could be the start of a stop text or ends in half a UTF-8 character.</summary>
    void Emit(Sequence s, int tok)
    {
        var o = s.Options;
        bool eos = tok == _eos;
        var gen = s.Ids.Skip(s.PromptLength).Where(t => t != _eos).ToList();
        string text = _tok.Decode(gen, skipSpecialTokens: true);
        int stopAt = -1;
        foreach (var stop in o.Stop ?? [])
        {
            if (stop.Length == 0) continue;
            int i = text.IndexOf(stop, StringComparison.Ordinal);
            if (i >= 0 && (stopAt < 0 || i < stopAt)) stopAt = i;
        }
        string? finish = eos || stopAt >= 0 ? "stop"
            : s.Generated >= o.MaxTokens || s.Ids.Count >= Positions ? "length" : null;
        int safe = stopAt >= 0 ? stopAt : text.Length;
        if (finish == null)
        {
            while (safe > 0 && text[safe - 1] == '\uFFFD') safe--;
            foreach (var stop in o.Stop ?? [])
                for (int k = Math.Min(stop.Length - 1, safe); k > 0; k--)
                    if (string.CompareOrdinal(text, safe - k, stop, 0, k) == 0) { safe -= k; break; }
        }
        safe = Math.Max(safe, s.EmittedChars);
        string delta = text[s.EmittedChars..safe];
        s.EmittedChars = safe;
        s.Out.Writer.TryWrite(new GeneratedChunk(delta, [tok], finish, s.PromptLength, s.Generated));
        if (finish != null) Finish(s, finish, cancelled: false);
    }

    void Finish(Sequence s, string? reason, bool cancelled)
    {
        s.Finished = true;
        s.Rng?.Dispose();
        if (cancelled) { Stats.Cancel(); s.Out.Writer.TryComplete(new OperationCanceledException(s.Ct)); }
        else s.Out.Writer.TryComplete();
    }

    // HF: position = (number of real tokens before it) - 1; pads get 1 (never attended).
    static Tensor Positions2D(Tensor mask) => mask.cumsum(1, ScalarType.Int64).sub(1).masked_fill(mask.eq(0), 1);

    Tensor Tensor2D(List<List<int>> rows)
    {
        int b = rows.Count, l = rows[0].Count;
        var flat = new long[b * l];
        for (int r = 0; r < b; r++) for (int c = 0; c < l; c++) flat[r * l + c] = rows[r][c];
        return tensor(flat, [b, l], dtype: int64, device: _device);
    }

    public void Dispose()
    {
        lock (_lock) { _stopping = true; Monitor.PulseAll(_lock); }
        _thread.Join();
    }
}
