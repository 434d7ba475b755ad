// Samplers propose a trial's parameters from the study's history: grid, random, and (Tpe.cs) TPE.
namespace TaskLM.Training.Search;

/// <summary>Where a trial is: running, finished (complete), stopped by the pruner, or failed (error, NaN, interrupted).</summary>
public enum TrialState { Running, Complete, Pruned, Failed }

/// <summary>One trial as the samplers and pruners see it.</summary>
public sealed class TrialRecord
{
    public int Number { get; init; }
    public TrialState State { get; set; }
    /// <summary>Internal values (choice index, or the number) by dotted key.</summary>
    public Dictionary<string, double> Params { get; init; } = [];
    /// <summary>The objective: the trial's best evaluation (for a pruned trial, the best before it was stopped).</summary>
    public double? Value { get; set; }
    /// <summary>Evaluation index (1, 2, ...) → metric value.</summary>
    public SortedDictionary<int, double> Intermediate { get; init; } = [];
    /// <summary>A running trial whose process died: marked failed and not counted against the trial budget.</summary>
    public bool Interrupted { get; set; }
}

/// <summary>Proposes the next configuration.</summary>
public interface ISampler
{
    string Name { get; }

    /// <summary>Internal values for trial <paramref name="number"/> given the history; <paramref name="attempt"/> &gt; 0 asks
    /// again after a proposal that another trial already holds; null = nothing left to propose (a finished grid).</summary>
    Dictionary<string, double>? Sample(SearchSpace space, IReadOnlyList<TrialRecord> trials, int number, int attempt, Func<Dictionary<string, double>, bool> taken);
}

/// <summary>Sampler by name: grid | random | tpe.</summary>
public static class Samplers
{
    public static readonly string[] Names = ["grid", "random", "tpe"];

    public static ISampler Create(string name, bool maximize, int seed) => name switch
    {
        "grid" => new GridSampler(seed),
        "random" => new RandomSampler(seed),
        "tpe" => new TpeSampler(maximize, seed),
        _ => throw new ArgumentException($"--sampler '{name}': use grid, random or tpe"),
    };

    /// <summary>The random stream of one trial: the same (seed, trial, attempt) gives the same draw in any process.</summary>
    /// <remarks>The three numbers are mixed by SplitMix64 first: System.Random's seeded generator gives nearly linear
    /// first draws for neighbouring seeds (trials 0, 1, 2 drew increasing learning rates before this).</remarks>
    public static Random RngFor(int seed, int number, int attempt)
    {
        ulong z = unchecked((ulong)seed * 0x9E3779B97F4A7C15UL + (ulong)number * 0xBF58476D1CE4E5B9UL + (ulong)attempt * 0x94D049BB133111EBUL + 0x632BE59BD9B4E019UL);
        z = unchecked((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL);
        z = unchecked((z ^ (z >> 27)) * 0x94D049BB133111EBUL);
        z ^= z >> 31;
        return new Random((int)(z >> 33));
    }

    /// <summary>A uniform draw from one parameter (Optuna's RandomSampler: log ranges uniform in log space; ints on
    /// [low - ½, high + ½] then rounded onto the step grid).</summary>
    public static double Draw(SearchParam p, Random rng)
    {
        switch (p.Kind)
        {
            case ParamKind.Choice: return rng.Next(p.Choices.Count);
            case ParamKind.LogUniform: return Math.Exp(Math.Log(p.Low) + rng.NextDouble() * (Math.Log(p.High) - Math.Log(p.Low)));
            case ParamKind.Int when p.Log:
                {
                    double lo = Math.Log(p.Low - 0.5), hi = Math.Log(p.High + 0.5);
                    return Math.Clamp(Math.Round(Math.Exp(lo + rng.NextDouble() * (hi - lo))), p.Low, p.High);
                }
            default:
                if (p.Step is { } s)
                {
                    long n = (long)Math.Round((p.High - p.Low) / s);
                    return p.Low + rng.NextInt64(n + 1) * s;
                }
                return p.Low + rng.NextDouble() * (p.High - p.Low);
        }
    }
}

/// <summary>Every parameter drawn independently and uniformly (Optuna's RandomSampler), seeded per trial.</summary>
public sealed class RandomSampler(int seed) : ISampler
{
    public string Name => "random";

    public Dictionary<string, double>? Sample(SearchSpace space, IReadOnlyList<TrialRecord> trials, int number, int attempt, Func<Dictionary<string, double>, bool> taken)
    {
        var rng = Samplers.RngFor(seed, number, attempt);
        return space.Params.ToDictionary(p => p.Key, p => Samplers.Draw(p, rng));
    }
}

/// <summary>The Cartesian product of the choices and int/stepped ranges, each point once, in a seeded random order
/// (as Optuna's GridSampler picks among the unvisited points). A continuous range has no grid: an error.</summary>
public sealed class GridSampler(int seed) : ISampler
{
    public string Name => "grid";

    public Dictionary<string, double>? Sample(SearchSpace space, IReadOnlyList<TrialRecord> trials, int number, int attempt, Func<Dictionary<string, double>, bool> taken)
    {
        var axes = space.Params.Select(p => p.GridValues() ?? throw new ArgumentException(
            $"--sampler grid: {p.Key} is a continuous range; give it a step or a choice list, or use random/tpe")).ToList();
        long size = axes.Aggregate(1L, (a, x) => a * x.Count);
        if (size > 10_000_000) throw new ArgumentException($"--sampler grid: the grid has {size:N0} points; narrow it");
        var free = new List<Dictionary<string, double>>();
        for (long i = 0; i < size; i++)
        {
            var point = new Dictionary<string, double>();
            long rest = i;
            for (int d = axes.Count - 1; d >= 0; d--) { point[space.Params[d].Key] = axes[d][(int)(rest % axes[d].Count)]; rest /= axes[d].Count; }
            if (!taken(point)) free.Add(point);
        }
        if (free.Count == 0) return null;
        return free[Samplers.RngFor(seed, number, attempt).Next(free.Count)];
    }
}
