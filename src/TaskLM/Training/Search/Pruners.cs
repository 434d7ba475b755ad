// Pruners decide after each evaluation whether a trial is worth finishing: none, ASHA (successive halving), median.
namespace TaskLM.Training.Search;

/// <summary>Reads a trial's intermediate values (evaluation index → metric) against the study's and says stop or go.</summary>
public interface IPruner
{
    string Name { get; }

    /// <summary>True = stop <paramref name="trial"/> now. Its newest intermediate value is the one just reported;
    /// <paramref name="all"/> is every trial of the study (this one included).</summary>
    bool ShouldPrune(TrialRecord trial, IReadOnlyList<TrialRecord> all, bool maximize);
}

/// <summary>Pruner by name: none | asha | median.</summary>
public static class Pruners
{
    public static readonly string[] Names = ["none", "asha", "median"];

    public static IPruner Create(string name) => name switch
    {
        "none" => new NopPruner(),
        "asha" => new AshaPruner(),
        "median" => new MedianPruner(),
        _ => throw new ArgumentException($"--pruner '{name}': use none, asha or median"),
    };
}

/// <summary>Never prunes.</summary>
public sealed class NopPruner : IPruner
{
    public string Name => "none";
    public bool ShouldPrune(TrialRecord trial, IReadOnlyList<TrialRecord> all, bool maximize) => false;
}

/// <summary>Asynchronous successive halving (Li et al. 2020) as Optuna's SuccessiveHalvingPruner: rung k is reached
/// after r·η^(s+k) evaluations (min resource r = 1, reduction factor η = 4, min early-stopping rate s = 0); there the
/// trial's value joins every value any trial recorded at that rung, and the trial goes on only if it is in the top
/// ⌊n/η⌋ of them, or, while a rung holds fewer than η values, only if it is the best there.</summary>
public sealed class AshaPruner(int minResource = 1, int reductionFactor = 4, int minEarlyStoppingRate = 0) : IPruner
{
    public string Name => "asha";

    /// <summary>The evaluation index at which rung <paramref name="rung"/> is judged.</summary>
    public long RungStep(int rung) => minResource * (long)Math.Pow(reductionFactor, minEarlyStoppingRate + rung);

    public bool ShouldPrune(TrialRecord trial, IReadOnlyList<TrialRecord> all, bool maximize)
    {
        if (trial.Intermediate.Count == 0) return false;
        var (step, value) = trial.Intermediate.Last();
        // Evaluations are reported 1, 2, 3, ... and judged as they come, so a rung is judged when its step arrives.
        int rung = 0;
        while (RungStep(rung) < step) rung++;
        if (RungStep(rung) != step) return false;
        if (double.IsNaN(value)) return true;
        var competing = all.Where(t => t.Number != trial.Number && t.Intermediate.TryGetValue(step, out _))
            .Select(t => t.Intermediate[step]).Append(value).ToList();
        return !Promotable(value, competing, reductionFactor, maximize);
    }

    /// <summary>Optuna's _is_trial_promotable_to_next_rung: in the top ⌊n/η⌋ (at least the best) of the rung's values.</summary>
    public static bool Promotable(double value, List<double> competing, int eta, bool maximize)
    {
        int idx = competing.Count / eta - 1;
        if (idx == -1) idx = 0;
        competing.Sort();
        return maximize ? value >= competing[^(idx + 1)] : value <= competing[idx];
    }
}

/// <summary>Optuna's MedianPruner (a 50th-percentile pruner; n_startup_trials 5, no warm-up, every step): once 5 trials
/// have completed, stop a trial whose best value so far is worse than the median of the completed trials' values at the
/// same evaluation.</summary>
public sealed class MedianPruner(int nStartupTrials = 5, int nWarmupSteps = 0) : IPruner
{
    public string Name => "median";

    public bool ShouldPrune(TrialRecord trial, IReadOnlyList<TrialRecord> all, bool maximize)
    {
        if (trial.Intermediate.Count == 0) return false;
        var complete = all.Where(t => t.State == TrialState.Complete && t.Number != trial.Number).ToList();
        if (complete.Count < nStartupTrials) return false;
        int step = trial.Intermediate.Keys.Last();
        if (step < nWarmupSteps) return false;
        var vals = trial.Intermediate.Values.Where(v => !double.IsNaN(v)).ToList();
        if (vals.Count == 0) return true;
        double best = maximize ? vals.Max() : vals.Min();
        var at = complete.Where(t => t.Intermediate.ContainsKey(step)).Select(t => t.Intermediate[step]).Where(v => !double.IsNaN(v)).ToList();
        if (at.Count == 0) return false;
        double median = Median(at);
        return maximize ? best < median : best > median;
    }

    /// <summary>The 50th percentile with linear interpolation (numpy's default).</summary>
    public static double Median(List<double> xs)
    {
        var s = xs.OrderBy(x => x).ToList();
        double pos = 0.5 * (s.Count - 1);
        int lo = (int)Math.Floor(pos), hi = (int)Math.Ceiling(pos);
        return s[lo] + (s[hi] - s[lo]) * (pos - lo);
    }
}
