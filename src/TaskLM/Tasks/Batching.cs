// Tokenized examples, the collator that pads them into a ModelBatch, and the seeded, resumable batch order.
using TaskLM.Models;
using static TorchSharp.torch;

namespace TaskLM.Tasks;

/// <summary>One tokenized training example.</summary>
public sealed class Example
{
    public required int[] InputIds { get; init; }
    public int[]? TokenTypeIds { get; init; }
    /// <summary>Per-token labels (-100 = ignored): token classification, prompt→completion; causal LM uses the
    /// input ids when null.</summary>
    public int[]? TokenLabels { get; init; }
    /// <summary>A packed row of several examples (<see cref="ChatData.Pack"/>): each example's positions from 0; null otherwise.</summary>
    public int[]? PositionIds { get; init; }
    /// <summary>Sequence classification label id (-1 = none).</summary>
    public int Label { get; init; } = -1;
    /// <summary>Extractive QA answer span in token positions.</summary>
    public int StartPosition { get; init; } = -1;
    public int EndPosition { get; init; } = -1;
    /// <summary>Extractive QA read from text: what turns a predicted token span back into answer text for SQuAD's
    /// exact match and F1 (<c>tasklm evaluate</c>); null for pre-tokenized rows and other tasks.</summary>
    public QaText? Qa { get; init; }
}

/// <summary>The text side of a QA example: question, context, every gold answer, and each token's character span
/// in the context (<c>(-1, -1)</c> for question and special tokens).</summary>
public sealed record QaText(string Question, string Context, IReadOnlyList<string> Answers, (int Start, int End)[] Spans)
{
    /// <summary>The context text of token span [start, end]; empty when the span is not inside the context (the
    /// model pointing at [CLS] says "no answer here").</summary>
    public string Answer(int start, int end) =>
        start >= 0 && end >= start && end < Spans.Length && Spans[start].Start >= 0 && Spans[end].Start >= 0
            ? Context[Spans[start].Start..Spans[end].End] : "";
}

/// <summary>Pads examples to the longest in the batch and builds the tensors the task's head takes.
/// Masked LM masks here, as HF's DataCollatorForLanguageModeling: each non-special token is selected with
/// probability <see cref="MlmProbability"/>; of the selected, 80% become [MASK], 10% a random token, 10% stay;
/// only selected tokens carry labels.</summary>
public sealed class Collator(string task, int padId, Device device)
{
    public string Task { get; } = task;
    public int PadId { get; } = padId;
    public double MlmProbability { get; init; } = 0.15;
    public int MaskTokenId { get; init; } = -1;
    public int VocabSize { get; init; }
    /// <summary>Ids never masked (CLS, SEP, PAD, ...).</summary>
    public IReadOnlySet<int> SpecialIds { get; init; } = new HashSet<int>();

    /// <summary>Builds a batch; <paramref name="maskSeed"/> seeds masked-LM masking so a resumed run masks identically.</summary>
    public ModelBatch Collate(IReadOnlyList<Example> examples, long maskSeed = 0)
    {
        int b = examples.Count, t = examples.Max(e => e.InputIds.Length);
        var ids = new long[b * t]; var mask = new long[b * t]; var labels = new long[b * t];
        long[]? types = examples.Any(e => e.TokenTypeIds != null) ? new long[b * t] : null;
        long[]? positions = examples.Any(e => e.PositionIds != null) ? new long[b * t] : null;   // packed rows; pads at 0
        Array.Fill(ids, PadId); Array.Fill(labels, -100);
        var rng = Task == "masked-lm" ? new Random(unchecked((int)(maskSeed * 1000003 + 7919))) : null;
        for (int i = 0; i < b; i++)
        {
            var e = examples[i];
            for (int j = 0; j < e.InputIds.Length; j++)
            {
                int k = i * t + j;
                ids[k] = e.InputIds[j]; mask[k] = 1;
                if (types != null && e.TokenTypeIds != null) types[k] = e.TokenTypeIds[j];
                if (positions != null) positions[k] = e.PositionIds?[j] ?? j;
                labels[k] = e.TokenLabels != null ? e.TokenLabels[j] : e.InputIds[j];
                if (rng != null)
                {
                    // Masked LM (seeded per batch, not HashCode: that is randomised per process): decide selection, then replacement (80/10/10).
                    if (SpecialIds.Contains(e.InputIds[j]) || rng.NextDouble() >= MlmProbability) { labels[k] = -100; continue; }
                    double r = rng.NextDouble();
                    if (r < 0.8) ids[k] = MaskTokenId;
                    else if (r < 0.9) ids[k] = rng.Next(VocabSize);
                }
            }
        }
        Tensor? seqLabels = null, start = null, end = null, tokLabels = null;
        switch (Task)
        {
            case "classification":
                seqLabels = tensor(examples.Select(e => (long)e.Label).ToArray(), device: device); break;
            case "question-answering":
                start = tensor(examples.Select(e => (long)e.StartPosition).ToArray(), device: device);
                end = tensor(examples.Select(e => (long)e.EndPosition).ToArray(), device: device); break;
            default:
                tokLabels = tensor(labels, [b, t], device: device); break;
        }
        return new ModelBatch
        {
            InputIds = tensor(ids, [b, t], device: device),
            AttentionMask = tensor(mask, [b, t], device: device),
            TokenTypeIds = types == null ? null : tensor(types, [b, t], device: device),
            PositionIds = positions == null ? null : tensor(positions, [b, t], device: device),
            Labels = seqLabels ?? tokLabels,
            StartPositions = start,
            EndPositions = end,
        };
    }
}

/// <summary>Where the data loader stands: epoch and micro-batch index within it (what a checkpoint saves).</summary>
public sealed record LoaderPosition(int Epoch, int Batch);

/// <summary>Micro-batches in a seeded order (a permutation per epoch from seed + epoch, or file order when not
/// shuffling), grouped into optimizer steps of <c>gradAccum</c>. The order depends only on (seed, epoch), so a
/// position is all resume needs. With <paramref name="lengths"/> (training.group_by_length) the permutation is cut
/// into mega-batches of 50 batches, each sorted longest first, so a batch holds examples of similar length and pads
/// little; the mega-batch holding the longest example goes first, so an out-of-memory shows at step 1 — the scheme
/// of HF's LengthGroupedSampler.</summary>
public sealed class BatchPlan(int exampleCount, int batchSize, int gradAccum, bool shuffle, int seed, IReadOnlyList<int>? lengths = null)
{
    /// <summary>Batches per mega-batch when grouping by length (HF's mega_batch_mult default).</summary>
    public const int MegaBatchMult = 50;

    public int ExampleCount { get; } = lengths == null || lengths.Count == exampleCount ? exampleCount
        : throw new ArgumentException($"{lengths.Count} lengths for {exampleCount} examples");
    public int BatchSize { get; } = batchSize;
    public int GradAccum { get; } = gradAccum;

    /// <summary>Micro-batches per epoch (the last one may be short, as HF's drop_last=False).</summary>
    public int BatchesPerEpoch => (ExampleCount + BatchSize - 1) / BatchSize;

    /// <summary>Optimizer steps per epoch: ceil(batches / grad_accum), as HF.</summary>
    public int StepsPerEpoch => Math.Max(1, (BatchesPerEpoch + GradAccum - 1) / GradAccum);

    public LoaderPosition Position { get; set; } = new(0, 0);

    int[]? _order; int _orderEpoch = -1;

    int[] Order(int epoch)
    {
        if (_orderEpoch == epoch && _order != null) return _order;
        _order = Enumerable.Range(0, ExampleCount).ToArray();
        if (shuffle) new Random(unchecked(seed * 1000003 + epoch * 7919 + 0x5eed)).Shuffle(_order);
        if (lengths != null && ExampleCount > 0)
        {
            var megas = _order.Chunk(BatchSize * MegaBatchMult).Select(m => m.OrderByDescending(i => lengths[i]).ToArray()).ToList();
            int first = Enumerable.Range(0, megas.Count).MaxBy(j => lengths[megas[j][0]]);   // each mega-batch's longest is its first
            (megas[0], megas[first]) = (megas[first], megas[0]);
            _order = megas.SelectMany(m => m).ToArray();
        }
        _orderEpoch = epoch;
        return _order;
    }

    /// <summary>Tokens the first <paramref name="steps"/> optimizer steps from the start will compute: each micro-batch
    /// padded to its longest example (<paramref name="exampleLengths"/>), as the collator pads. The plan's own order,
    /// so length grouping's saving is counted; <see cref="Position"/> is left as it is.</summary>
    public long PaddedTokens(int steps, IReadOnlyList<int> exampleLengths)
    {
        long tokens = 0;
        if (ExampleCount == 0) return 0;
        // As NextStep walks: up to GradAccum micro-batches a step, a step never crossing an epoch's end.
        for (int e = 0, step = 0; step < steps; e++)
        {
            var order = Order(e);
            for (int bi = 0; bi < BatchesPerEpoch && step < steps; step++)
                for (int m = 0; m < GradAccum && bi < BatchesPerEpoch; m++, bi++)
                {
                    var batch = order[(bi * BatchSize)..Math.Min(ExampleCount, (bi + 1) * BatchSize)];
                    tokens += (long)batch.Length * batch.Max(i => exampleLengths[i]);
                }
        }
        return tokens;
    }

    /// <summary>The example indices of the next optimizer step's micro-batches; <paramref name="epochEnded"/> is true
    /// when they finish an epoch. Advances <see cref="Position"/>.</summary>
    public List<int[]> NextStep(out int epoch, out bool epochEnded)
    {
        var (e, bi) = Position;
        var order = Order(e);
        var micro = new List<int[]>();
        while (micro.Count < GradAccum && bi < BatchesPerEpoch)
        {
            micro.Add(order[(bi * BatchSize)..Math.Min(ExampleCount, (bi + 1) * BatchSize)]);
            bi++;
        }
        epoch = e;
        epochEnded = bi >= BatchesPerEpoch;
        Position = epochEnded ? new LoaderPosition(e + 1, 0) : new LoaderPosition(e, bi);
        return micro;
    }
}
