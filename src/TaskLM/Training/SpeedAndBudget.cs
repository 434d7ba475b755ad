// Training speed as a run measures it: the tokens of its optimizer steps over the seconds spent in them (evaluation
// excluded). Used by every `train` (the plan's estimate next time, MeasuredSpeeds) and by compare / learning-curve.
using System.Diagnostics;

namespace TaskLM.Training;

/// <summary>Observes a run: training tokens and the seconds spent in optimizer steps (evaluation excluded), and
/// stops the run once a wall-clock budget is spent (after one last evaluation, so best/ reflects the end).</summary>
public sealed class SpeedAndBudget(double? seconds) : ITrainerCallback
{
    readonly Stopwatch _clock = new();
    long _lastTokens;
    /// <summary>Tokens seen (padding included, as training counts them) and seconds inside optimizer steps.</summary>
    public long Tokens { get; private set; }
    public double StepSeconds { get; private set; }
    public bool StoppedByBudget { get; private set; }
    public double TokensPerSecond => Tokens / Math.Max(StepSeconds, 1e-9);

    public void OnTrainBegin(Trainer t) { _clock.Restart(); _lastTokens = t.State.TokensSeen; }

    public void OnStep(Trainer t, StepLog log)
    {
        long delta = t.State.TokensSeen - _lastTokens;
        _lastTokens = t.State.TokensSeen;
        Tokens += delta;
        if (log.TokensPerSecond > 0) StepSeconds += delta / log.TokensPerSecond;
        if (seconds is { } limit && _clock.Elapsed.TotalSeconds >= limit && !t.Control.ShouldStop)
        {
            t.Control.ShouldStop = true;
            t.Control.ShouldEvaluate = true;
            t.Control.StopReason = $"time budget of {limit:0.#} s spent at step {t.State.Step}";
            StoppedByBudget = true;
        }
    }
}
