// The search engine against its definitions: Optuna's TPE (γ, weights, Parzen kernels, trial split), ASHA's promotion
// rule, the median pruner, the search-space checks, the study database's claims, and TPE beating random search.
using Microsoft.Data.Sqlite;
using Xunit.Abstractions;
using TaskLM.Recipes;
using TaskLM.Training.Search;

namespace TaskLM.Tests.Search;

public class SearchTests(ITestOutputHelper output)
{
    static SearchParam Uniform(string k, double lo, double hi) => new() { Key = k, Kind = ParamKind.Uniform, Low = lo, High = hi };

    [Fact]
    public void Gamma_and_weights_follow_optunas_defaults()
    {
        // γ(n) = min(⌈0.1 n⌉, 25)
        Assert.Equal([1, 1, 2, 10, 25, 25], new[] { 1, 10, 11, 100, 250, 1000 }.Select(TpeSampler.Gamma));
        Assert.Equal(Enumerable.Repeat(1.0, 24), TpeSampler.DefaultWeights(24));
        // n = 30: np.linspace(1/30, 1, 5) then 25 ones.
        var w = TpeSampler.DefaultWeights(30);
        Assert.Equal(30, w.Length);
        double[] ramp = [1 / 30.0, 1 / 30.0 + (1 - 1 / 30.0) / 4, 1 / 30.0 + 2 * (1 - 1 / 30.0) / 4, 1 / 30.0 + 3 * (1 - 1 / 30.0) / 4, 1.0];
        for (int i = 0; i < 5; i++) Assert.Equal(ramp[i], w[i], 12);
        Assert.All(w.Skip(5), x => Assert.Equal(1.0, x));
    }

    [Fact]
    public void Parzen_kernels_match_the_definition_worked_by_hand()
    {
        // [0, 10], observations 2, 3, 7. Neighbour gaps with endpoints 0 and 10: max(2,1)=2, max(1,4)=4, max(4,3)=4;
        // endpoints not considered: first = 3-2 = 1, last = 7-3 = 4 → [1, 4, 4]; magic clip: min σ = 10 / min(100, 1 + 4) = 2
        // → [2, 4, 4]; prior kernel μ = 5, σ = 10; weights 1/4 each.
        var pe = new ParzenEstimator(Uniform("x", 0, 10), [2, 3, 7]);
        Assert.Equal([2.0, 3, 7, 5], pe.Mus);
        Assert.Equal([2.0, 4, 4, 10], pe.Sigmas);
        Assert.All(pe.Weights, x => Assert.Equal(0.25, x, 12));
        // Its density integrates to 1 over [0, 10] (truncated kernels) and is largest near the observations.
        double integral = 0; const int n = 20000;
        for (int i = 0; i < n; i++) integral += Math.Exp(pe.LogPdf((i + 0.5) * 10.0 / n)) * 10.0 / n;
        Assert.Equal(1.0, integral, 3);
        Assert.True(pe.LogPdf(2.5) > pe.LogPdf(9.5));
    }

    [Fact]
    public void Categorical_kernels_add_one_to_the_observed_choice_over_a_prior()
    {
        var p = new SearchParam { Key = "c", Kind = ParamKind.Choice, Choices = ["a", "b", "c"], High = 2 };
        var pe = new ParzenEstimator(p, [0, 0, 2]);
        // Kernel rows: prior/4 = 0.25 on each category, +1 on the observed one, normalised; the prior row is uniform.
        // Mixture (weights 1/4): P(a) = (1.25/1.75 · 2 + 0.25/1.75 + 1/3) / 4.
        double pa = (1.25 / 1.75 * 2 + 0.25 / 1.75 + 1 / 3.0) / 4, pb = (0.25 / 1.75 * 3 + 1 / 3.0) / 4;
        Assert.Equal(Math.Log(pa), pe.LogPdf(0), 10);
        Assert.Equal(Math.Log(pb), pe.LogPdf(1), 10);
        Assert.Equal(1.0, Enumerable.Range(0, 3).Sum(i => Math.Exp(pe.LogPdf(i))), 10);
    }

    [Fact]
    public void Stepped_ranges_score_the_mass_of_each_cell_and_sample_on_the_grid()
    {
        var p = new SearchParam { Key = "n", Kind = ParamKind.Int, Low = 1, High = 9, Step = 2 };
        var pe = new ParzenEstimator(p, [3, 5]);
        Assert.Equal(1.0, new[] { 1.0, 3, 5, 7, 9 }.Sum(v => Math.Exp(pe.LogPdf(v))), 9);
        var rng = new Random(1);
        for (int i = 0; i < 200; i++) Assert.Contains(pe.Sample(rng), new[] { 1.0, 3, 5, 7, 9 });
    }

    [Fact]
    public void Split_puts_complete_trials_by_value_then_pruned_by_furthest_step()
    {
        TrialRecord C(int n, double v) => new() { Number = n, State = TrialState.Complete, Value = v };
        var p3 = new TrialRecord { Number = 3, State = TrialState.Pruned, Intermediate = new() { [1] = 0.95 } };
        var p4 = new TrialRecord { Number = 4, State = TrialState.Pruned, Intermediate = new() { [1] = 0.2, [2] = 0.3 } };
        var (below, above) = TpeSampler.Split([C(0, 0.5), C(1, 0.9), C(2, 0.7), p3, p4], 4, maximize: true);
        Assert.Equal([0, 1, 2, 4], below.Select(t => t.Number));
        Assert.Equal([3], above.Select(t => t.Number));
        (below, above) = TpeSampler.Split([C(0, 0.5), C(1, 0.9), C(2, 0.7)], 1, maximize: false);
        Assert.Equal([0], below.Select(t => t.Number));
    }

    [Fact]
    public void Asha_promotes_only_the_top_quarter_of_a_rung()
    {
        // Fewer than η values in the rung: only the best goes on.
        Assert.True(AshaPruner.Promotable(0.1, [0.1], 4, maximize: true));
        Assert.False(AshaPruner.Promotable(0.3, [0.5, 0.3], 4, maximize: true));
        Assert.True(AshaPruner.Promotable(0.3, [0.5, 0.3], 4, maximize: false));
        // 8 values: top ⌊8/4⌋ = 2.
        List<double> eight() => [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8];
        Assert.True(AshaPruner.Promotable(0.7, eight(), 4, maximize: true));
        Assert.False(AshaPruner.Promotable(0.6, eight(), 4, maximize: true));
        var asha = new AshaPruner();
        Assert.Equal([1L, 4, 16], new[] { 0, 1, 2 }.Select(asha.RungStep));
        var others = Enumerable.Range(0, 3).Select(i => new TrialRecord { Number = i, Intermediate = new() { [1] = 0.9, [2] = 0.9, [4] = 0.9 } }).ToList();
        var me = new TrialRecord { Number = 9, Intermediate = new() { [1] = 0.5 } };
        Assert.True(asha.ShouldPrune(me, [.. others, me], maximize: true));      // rung 0 (step 1): worse than all
        me.Intermediate[1] = 0.95; me.Intermediate[2] = 0.1;
        Assert.False(asha.ShouldPrune(me, [.. others, me], maximize: true));     // step 2 is no rung
        me.Intermediate[3] = 0.1; me.Intermediate[4] = 0.1;
        Assert.True(asha.ShouldPrune(me, [.. others, me], maximize: true));      // rung 1 (step 4)
        Assert.False(asha.ShouldPrune(me, [.. others, me], maximize: false));
    }

    [Fact]
    public void Median_pruner_waits_for_five_complete_trials_then_compares_with_their_median()
    {
        var done = Enumerable.Range(0, 5).Select(i => new TrialRecord { Number = i, State = TrialState.Complete, Intermediate = new() { [1] = 0.1 * (i + 1) } }).ToList();
        var me = new TrialRecord { Number = 7, State = TrialState.Running, Intermediate = new() { [1] = 0.25 } };
        var median = new MedianPruner();
        Assert.True(median.ShouldPrune(me, [.. done, me], maximize: true));    // median 0.3
        Assert.False(median.ShouldPrune(me, [.. done, me], maximize: false));
        me.Intermediate[1] = 0.35;
        Assert.False(median.ShouldPrune(me, [.. done, me], maximize: true));
        Assert.False(median.ShouldPrune(me, [.. done.Take(4), me], maximize: false));  // 4 complete: not yet
        Assert.Equal(2.5, MedianPruner.Median([4, 1, 3, 2]));
    }

    // A cheap objective with a known minimum 0 at lr = 1e-3, x = 0.7, n = 5, c = "b".
    static readonly SearchSpace Synthetic = new([
        new SearchParam { Key = "lr", Kind = ParamKind.LogUniform, Low = 1e-5, High = 1e-1, Log = true },
        Uniform("x", 0, 1),
        new SearchParam { Key = "n", Kind = ParamKind.Int, Low = 1, High = 10, Step = 1 },
        new SearchParam { Key = "c", Kind = ParamKind.Choice, Choices = ["a", "b", "c", "d"], High = 3 },
    ]);

    static double Objective(Dictionary<string, double> v) =>
        Math.Pow(Math.Log10(v["lr"]) + 3, 2) + 4 * Math.Pow(v["x"] - 0.7, 2) + Math.Pow((v["n"] - 5) / 4, 2) + (v["c"] == 1 ? 0 : 0.5);

    static double BestAfter(ISampler sampler, int trials)
    {
        var history = new List<TrialRecord>();
        for (int i = 0; i < trials; i++)
        {
            var v = sampler.Sample(Synthetic, history, i, 0, _ => false)!;
            history.Add(new TrialRecord { Number = i, State = TrialState.Complete, Params = v, Value = Objective(v) });
        }
        return history.Min(t => t.Value!.Value);
    }

    [Fact]
    public void Tpe_finds_a_lower_value_than_random_search_in_the_same_trials_averaged_over_seeds()
    {
        const int trials = 50, seeds = 10;
        double tpe = Enumerable.Range(0, seeds).Average(s => BestAfter(new TpeSampler(maximize: false, seed: s), trials));
        double random = Enumerable.Range(0, seeds).Average(s => BestAfter(new RandomSampler(s), trials));
        output.WriteLine($"synthetic objective, {trials} trials, mean best over {seeds} seeds: TPE {tpe:G4}, random {random:G4}");
        Assert.True(tpe < random, $"TPE mean best {tpe:G4} vs random {random:G4}");
        // The first 10 trials are TPE's random start-up: identical to what random search would need to beat.
        Assert.True(tpe < 0.5 * random, $"TPE mean best {tpe:G4} should be well below random's {random:G4}");
    }

    [Fact]
    public void Seeded_samplers_repeat_their_draws()
    {
        var a = new TpeSampler(false, 3).Sample(Synthetic, [], 0, 0, _ => false);
        var b = new TpeSampler(false, 3).Sample(Synthetic, [], 0, 0, _ => false);
        Assert.Equal(a, b);
    }

    static string RecipeWith(string search)
    {
        string dir = Directory.CreateTempSubdirectory("tasklm-space-").FullName;
        string path = Path.Combine(dir, "r.yaml");
        File.WriteAllText(path, "task: classification\nmodel: {init: gpt2-tiny}\ndata:\n  train: t.jsonl\n  validation: v.jsonl\ntraining:\n  lr: 1.0e-3\nsearch:\n" + search);
        return path;
    }

    [Fact]
    public void Search_keys_are_checked_by_the_recipe_rules_with_line_and_closest_key()
    {
        string path = RecipeWith("  training.lr: {loguniform: [1.0e-4, 1.0e-2]}\n  training.batch_sise: {choice: [8, 16]}\n");
        var e = Assert.Throws<RecipeException>(() => SearchSpace.Load(path));
        Assert.Contains($"{path}:10: search.training.batch_sise", e.Message);
        Assert.Contains("did you mean 'training.batch_size'", e.Message);
        e = Assert.Throws<RecipeException>(() => SearchSpace.Load(RecipeWith("  training.batch_size: {uniform: [4, 64]}\n")));
        Assert.Contains("expects an integer", e.Message);
        e = Assert.Throws<RecipeException>(() => SearchSpace.Load(RecipeWith("  training.lr: {logunifrom: [1.0e-4, 1.0e-2]}\n")));
        Assert.Contains("did you mean 'loguniform'", e.Message);
        e = Assert.Throws<RecipeException>(() => SearchSpace.Load(RecipeWith("  training.lr: {loguniform: [0, 1.0e-2]}\n")));
        Assert.Contains("low > 0", e.Message);
        var space = SearchSpace.Load(RecipeWith("  training.lr: {loguniform: [1.0e-4, 1.0e-2]}\n  model.config.n_layer: {int: [1, 8], step: 3}\n  data.max_length: {choice: [32, 64]}\n"));
        Assert.Equal(["training.lr", "model.config.n_layer", "data.max_length"], space.Params.Select(p => p.Key));
        Assert.Equal([1.0, 4, 7], space.Params[1].GridValues());   // high moved onto the grid, as Optuna
        // A training run ignores the section; a sampled trial's recipe carries the values.
        var r = RecipeLoader.Load(path.Replace("r.yaml", "r.yaml"), []);
        Assert.NotNull(r.Search);
    }

    static SearchSpace GridSpace() => new([
        new SearchParam { Key = "a", Kind = ParamKind.Choice, Choices = ["1", "2", "3"], High = 2 },
        new SearchParam { Key = "b", Kind = ParamKind.Int, Low = 0, High = 1, Step = 1 },
    ]);

    static Dictionary<string, string> Meta() => new() { ["metric"] = "loss", ["direction"] = "minimize", ["space"] = GridSpace().Signature() };

    [Fact]
    public void Two_connections_claiming_at_once_never_take_the_same_configuration()
    {
        string dir = Directory.CreateTempSubdirectory("tasklm-study-").FullName;
        var claimed = new System.Collections.Concurrent.ConcurrentBag<string>();
        void Worker()
        {
            using var s = Study.Open(dir, Meta());
            while (s.Claim(GridSpace(), new GridSampler(1), 100, n => $"t{n}") is { } c)
            {
                claimed.Add(SearchSpace.ConfigKey(c.values));
                s.Finish(c.number, TrialState.Complete, c.number, 1, 1, 0.1, null);
            }
        }
        var threads = Enumerable.Range(0, 3).Select(_ => new Thread(Worker)).ToList();
        threads.ForEach(t => t.Start());
        threads.ForEach(t => t.Join());
        Assert.Equal(6, claimed.Count);             // the whole grid, each point once
        Assert.Equal(6, claimed.Distinct().Count());
        using var study = Study.Open(dir, Meta());
        Assert.Equal(Enumerable.Range(0, 6), study.Trials().Select(t => t.Record.Number));
    }

    [Fact]
    public void A_trial_left_running_by_a_dead_process_is_marked_failed_and_not_counted()
    {
        string dir = Directory.CreateTempSubdirectory("tasklm-study-").FullName;
        using var study = Study.Open(dir, Meta());
        var first = study.Claim(GridSpace(), new GridSampler(1), 2, n => $"t{n}")!.Value;
        // Pretend the claim was made by a process that has since died.
        using var gone = System.Diagnostics.Process.Start("true")!;
        gone.WaitForExit();
        using (var db = new SqliteConnection($"Data Source={Path.Combine(dir, "study.db")};Pooling=False"))
        {
            db.Open();
            using var cmd = db.CreateCommand();
            cmd.CommandText = $"UPDATE trials SET pid = {gone.Id} WHERE number = {first.number}";
            cmd.ExecuteNonQuery();
        }
        var second = study.Claim(GridSpace(), new GridSampler(1), 2, n => $"t{n}")!.Value;
        var third = study.Claim(GridSpace(), new GridSampler(1), 2, n => $"t{n}")!.Value;
        Assert.Null(study.Claim(GridSpace(), new GridSampler(1), 2, n => $"t{n}"));   // budget 2: both live trials count
        var trials = study.Trials();
        Assert.Equal(TrialState.Failed, trials[0].Record.State);
        Assert.True(trials[0].Record.Interrupted);
        Assert.Contains("interrupted", trials[0].Error);
        Assert.Equal([1, 2], new[] { second.number, third.number });
        Assert.NotEqual(SearchSpace.ConfigKey(second.values), SearchSpace.ConfigKey(third.values));
    }

    [Fact]
    public void A_study_refuses_a_changed_metric()
    {
        string dir = Directory.CreateTempSubdirectory("tasklm-study-").FullName;
        Study.Open(dir, Meta()).Dispose();
        var changed = Meta(); changed["metric"] = "accuracy";
        var e = Assert.Throws<InvalidOperationException>(() => Study.Open(dir, changed));
        Assert.Contains("metric 'loss'", e.Message);
    }
}

public class SamplerStreamTests
{
    [Fact]
    public void Neighbouring_trials_draw_unrelated_values()
    {
        // Spearman-free check: the first uniform draw of trials 0..199 must not rise with the trial number.
        var xs = Enumerable.Range(0, 200).Select(n => Samplers.RngFor(42, n, 0).NextDouble()).ToArray();
        int rises = Enumerable.Range(1, xs.Length - 1).Count(i => xs[i] > xs[i - 1]);
        Assert.InRange(rises, 70, 130);   // about half for independent draws
        Assert.InRange(xs.Average(), 0.4, 0.6);
    }
}
