// The one thread that runs the model: dynamic batching of encoder rows, continuous batching of generated sequences.
// The scheduling lives here; the forward passes and the KV cache are a runtime's (IModelRunner: TorchSharp or ONNX Runtime).
using System.Threading.Channels;
using TaskLM.Data.Tokenization;
using TaskLM.Models;

namespace TaskLM.Serving;

/// <summary>One encoded input row: ids (and BERT segment ids), no padding.</summary>
internal sealed record EncoderRow(int[] Ids, int[]? TypeIds);

/// <summary>What an encoder row asks for: the head's logits, or the mean-pooled last hidden states.</summary>
internal enum RowKind { Logits, Embedding }

/// <summary>A sequence being generated: its tokens so far, how to sample it, and where its chunks go.</summary>
internal sealed class Sequence
{
    public required List<int> Ids { get; init; }              // prompt + generated so far
    public required int PromptLength { get; init; }
    /// <summary>How to decode it, with Hugging Face's names (the HTTP edge maps OpenAI's onto them).</summary>
    public required GenerationOptions Options { get; init; }
    public required Channel<GeneratedChunk> Out { get; init; }
    public required CancellationToken Ct { get; init; }
    /// <summary>The runtime's sampler of this sequence (made on its first token; disposed when it finishes).</summary>
    public object? Sampler { get; set; }
    public int Generated => Ids.Count - PromptLength;
    public int EmittedChars { get; set; }
    public bool Finished { get; set; }
}

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
/// stops taking part and its row is dropped at the next re-prefill. The forward passes are the runner's.
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

    readonly IModelRunner _runner;
    readonly ITokenizer _tok;
    readonly TaskLMModelOptions _o;
    readonly object _lock = new();
    readonly Queue<EncoderJob> _encoder = new();
    readonly List<Sequence> _pending = new();
    readonly Thread _thread;
    bool _stopping;
    long _queued;   // encoder rows + pending sequences (under _lock)

    // Decoding state (engine thread only): the rows of the running batch, in the runner's cache order.
    List<Sequence> _rows = new();
    List<List<int>> _batchIds = new(), _batchMask = new();
    readonly IReadOnlyList<int> _eos = [];
    readonly int _pad;

    public EngineStats Stats { get; } = new();
    /// <summary>Context length of a causal LM (n_positions); 0 for others.</summary>
    public int Positions { get; }

    public ModelEngine(IModelRunner runner, TaskLMModelOptions o, ITokenizer tok)
    {
        _runner = runner; _o = o; _tok = tok;
        Positions = runner.Positions;
        if (Positions > 0)
        {
            _eos = runner.EosTokenIds.Count > 0 ? runner.EosTokenIds : tok.EosTokenId is int e ? [e] : [];
            _pad = runner.PadTokenId ?? (_eos.Count > 0 ? _eos[0] : 0);
        }
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
        // A caller that gives up (timeout, client gone) is answered at once; the engine skips its rows when it reaches them.
        using var reg = ct.Register(() => { foreach (var j in jobs) j.Done.TrySetCanceled(ct); });
        return await Task.WhenAll(jobs.Select(j => j.Done.Task)).ConfigureAwait(false);
    }

    public ChannelReader<GeneratedChunk> StartSequence(IReadOnlyList<int> prompt, GenerationOptions o, CancellationToken ct)
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
        _runner.OnEngineThread();
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
            if (Positions > 0) DecodeStep();
        }
        // Shutting down: nobody waits forever.
        lock (_lock)
        {
            foreach (var j in _encoder) j.Done.TrySetException(new ObjectDisposedException(nameof(TaskLMModel)));
            foreach (var s in _pending.Concat(_rows)) { DropSampler(s); s.Out.Writer.TryComplete(new ObjectDisposedException(nameof(TaskLMModel))); }
        }
        _runner.ResetCache();
    }

    void RunEncoderBatch(List<EncoderJob> jobs)
    {
        jobs = jobs.Where(j => { if (j.Ct.IsCancellationRequested) { j.Done.TrySetCanceled(j.Ct); return false; } return true; }).ToList();
        if (jobs.Count == 0) return;
        try
        {
            var outs = _runner.Forward(jobs.Select(j => j.Row).ToList(), jobs[0].Kind);
            Stats.Batch(jobs.Count);
            Stats.In(jobs.Sum(j => j.Row.Ids.Length));
            for (int i = 0; i < jobs.Count; i++) jobs[i].Done.TrySetResult(outs[i]);
        }
        catch (Exception e)
        {
            foreach (var j in jobs) j.Done.TrySetException(e);
        }
    }

    // ───────────── continuous batching ─────────────

    void DecodeStep()
    {
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
        if (!_runner.HasCache || _runner.CacheLength + 1 > _runner.CacheCapacity || _rows.Count - alive > alive) rebuild = true;

        try
        {
            int[] next;
            if (rebuild)
            {
                _rows = _rows.Where(r => !r.Finished).ToList();
                int longest = _rows.Max(r => r.Ids.Count);
                int room = _rows.Max(r => r.Options.MaxNewTokens - r.Generated);
                _batchIds = _rows.Select(r => Enumerable.Repeat(_pad, longest - r.Ids.Count).Concat(r.Ids).ToList()).ToList();
                _batchMask = _rows.Select(r => Enumerable.Repeat(0, longest - r.Ids.Count).Concat(Enumerable.Repeat(1, r.Ids.Count)).ToList()).ToList();
                next = _runner.Decode(_batchIds, _batchMask, Math.Min(Positions, longest + room), _rows);   // a new cache, all S positions
                Stats.In(_rows.Sum(r => r.Ids.Count));
            }
            else next = _runner.Decode(_batchIds, _batchMask, null, _rows);                                // the last position only
            Stats.Batch(_rows.Count);
            for (int r = 0; r < _rows.Count; r++)
            {
                var s = _rows[r];
                int tok = _pad;
                if (!s.Finished)
                {
                    tok = next[r];
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
            foreach (var s in _rows.Where(r => !r.Finished)) { s.Finished = true; DropSampler(s); s.Out.Writer.TryComplete(e); }
            ResetBatch();
        }
    }

    void ResetBatch()
    {
        _rows = _rows.Where(r => !r.Finished).ToList();
        if (_rows.Count == 0) { _runner.ResetCache(); _batchIds = new(); _batchMask = new(); }
    }

    /// <summary>Sends the new text of a sequence and finishes it on an EOS id, a stop text, max_new_tokens or the context
    /// end. Text is held back while it could be the start of a stop text or ends in half a UTF-8 character; the stop
    /// text and the EOS token are not part of it (as OpenAI).</summary>
    void Emit(Sequence s, int tok)
    {
        var o = s.Options;
        bool eos = _eos.Contains(tok);
        var gen = s.Ids.Skip(s.PromptLength).Where(t => !_eos.Contains(t)).ToList();
        string text = _tok.Decode(gen, skipSpecialTokens: true);
        int stopAt = -1;
        foreach (var stop in o.StopStrings ?? [])
        {
            if (stop.Length == 0) continue;
            int i = text.IndexOf(stop, StringComparison.Ordinal);
            if (i >= 0 && (stopAt < 0 || i < stopAt)) stopAt = i;
        }
        FinishReason? finish = eos ? FinishReason.Eos : stopAt >= 0 ? FinishReason.Stop
            : s.Generated >= o.MaxNewTokens || s.Ids.Count >= Positions ? FinishReason.Length : null;
        int safe = stopAt >= 0 ? stopAt : text.Length;
        if (finish == null)
        {
            while (safe > 0 && text[safe - 1] == '\uFFFD') safe--;
            foreach (var stop in o.StopStrings ?? [])
                for (int k = Math.Min(stop.Length - 1, safe); k > 0; k--)
                    if (string.CompareOrdinal(text, safe - k, stop, 0, k) == 0) { safe -= k; break; }
        }
        safe = Math.Max(safe, s.EmittedChars);
        string delta = text[s.EmittedChars..safe];
        s.EmittedChars = safe;
        s.Out.Writer.TryWrite(new GeneratedChunk(delta, [tok], finish, s.PromptLength, s.Generated));
        if (finish != null) Finish(s, finish, cancelled: false);
    }

    void Finish(Sequence s, FinishReason? reason, bool cancelled)
    {
        s.Finished = true;
        DropSampler(s);
        if (cancelled) { Stats.Cancel(); s.Out.Writer.TryComplete(new OperationCanceledException(s.Ct)); }
        else s.Out.Writer.TryComplete();
    }

    // A torch sampler holds a native generator: freed when its sequence ends, however it ends.
    static void DropSampler(Sequence s)
    {
        (s.Sampler as IDisposable)?.Dispose();
        s.Sampler = null;
    }

    public void Dispose()
    {
        lock (_lock) { _stopping = true; Monitor.PulseAll(_lock); }
        _thread.Join();
    }
}
