// Learning-rate schedules with warmup, the formulas of transformers' get_{linear,cosine,constant}_schedule_with_warmup.
namespace TaskLM.Training;

/// <summary>The learning rate for each optimizer step. A pure function of the step, so resuming needs only the step.</summary>
public sealed class LrSchedule
{
    public string Kind { get; }
    public double BaseLr { get; }
    public int WarmupSteps { get; }
    public int TotalSteps { get; }

    public LrSchedule(string kind, double baseLr, int warmupSteps, int totalSteps)
    {
        if (kind is not ("linear" or "cosine" or "constant")) throw new ArgumentException($"unknown scheduler '{kind}' (linear | cosine | constant)");
        Kind = kind; BaseLr = baseLr; WarmupSteps = warmupSteps; TotalSteps = totalSteps;
    }

    /// <summary>HF's warmup: a ratio (&lt; 1) becomes ceil(total · ratio) steps, a value ≥ 1 is a step count.</summary>
    public static int WarmupStepsFor(double warmup, int totalSteps) =>
        warmup <= 0 ? 0 : warmup < 1 ? (int)Math.Ceiling(totalSteps * warmup) : (int)warmup;

    /// <summary>Learning rate used by the optimizer step that follows <paramref name="step"/> completed steps (0-based).</summary>
    public double LrAt(int step) => BaseLr * Factor(step);

    /// <summary>The multiplier of the base rate (transformers' lr_lambda).</summary>
    public double Factor(int step)
    {
        if (step < WarmupSteps) return (double)step / Math.Max(1, WarmupSteps);
        double remaining = Math.Max(1, TotalSteps - WarmupSteps);
        return Kind switch
        {
            "linear" => Math.Max(0.0, (TotalSteps - step) / remaining),
            // num_cycles = 0.5: half a cosine from 1 down to 0.
            "cosine" => Math.Max(0.0, 0.5 * (1.0 + Math.Cos(Math.PI * 0.5 * 2.0 * ((step - WarmupSteps) / remaining)))),
            _ => 1.0,
        };
    }
}
