// Tree-structured Parzen Estimator, as Optuna's TPESampler defines it (univariate, the default): after
// n_startup_trials random trials, split the finished trials into good (γ(n) = min(⌈0.1 n⌉, 25) best) and bad,
// fit a Parzen estimator l(x) to the good and g(x) to the bad per parameter, draw 24 candidates from l and keep
// the one that maximises log l(x) − log g(x).
namespace TaskLM.Training.Search;

/// <summary>TPE with Optuna's defaults (prior weight 1, magic clip on, endpoints off, its weights function).</summary>
public sealed class TpeSampler(bool maximize, int seed, int nStartupTrials = 10, int nEiCandidates = 24, double priorWeight = 1.0) : ISampler
{
    public string Name => "tpe";

    /// <summary>γ(n) = min(⌈0.1 n⌉, 25): how many of n finished trials count as good.</summary>
    public static int Gamma(int n) => Math.Min((int)Math.Ceiling(0.1 * n), 25);

    /// <summary>Optuna's default_weights: 1 each for fewer than 25 observations, else a ramp 1/n → 1 over the
    /// oldest n − 25 and 1 for the newest 25 (observations in trial order).</summary>
    public static double[] DefaultWeights(int n)
    {
        if (n == 0) return [];
        if (n < 25) return Enumerable.Repeat(1.0, n).ToArray();
        var w = new double[n];
        int m = n - 25;
        for (int i = 0; i < m; i++) w[i] = m == 1 ? 1.0 / n : 1.0 / n + (1.0 - 1.0 / n) * i / (m - 1);   // np.linspace(1/n, 1, m)
        for (int i = m; i < n; i++) w[i] = 1;
        return w;
    }

    /// <summary>Optuna's _split_trials for one objective: complete trials by value, then pruned trials by
    /// (furthest step first, then its last value); both lists come back in trial order.</summary>
    public static (List<TrialRecord> below, List<TrialRecord> above) Split(IReadOnlyList<TrialRecord> trials, int nBelow, bool maximize)
    {
        var complete = trials.Where(t => t.State == TrialState.Complete && t.Value is { } v && !double.IsNaN(v))
            .OrderBy(t => maximize ? -t.Value!.Value : t.Value!.Value).ToList();
        var pruned = trials.Where(t => t.State == TrialState.Pruned).OrderBy(t => PrunedScore(t, maximize).step).ThenBy(t => PrunedScore(t, maximize).value).ToList();
        int nc = Math.Min(nBelow, complete.Count);
        int np = Math.Min(Math.Max(0, nBelow - nc), pruned.Count);
        var below = complete.Take(nc).Concat(pruned.Take(np)).OrderBy(t => t.Number).ToList();
        var above = complete.Skip(nc).Concat(pruned.Skip(np)).OrderBy(t => t.Number).ToList();
        return (below, above);
    }

    static (double step, double value) PrunedScore(TrialRecord t, bool maximize)
    {
        if (t.Intermediate.Count == 0) return (1, 0);
        var (step, v) = t.Intermediate.Last();
        if (double.IsNaN(v)) return (-step, double.PositiveInfinity);
        return (-step, maximize ? -v : v);
    }

    public Dictionary<string, double>? Sample(SearchSpace space, IReadOnlyList<TrialRecord> trials, int number, int attempt, Func<Dictionary<string, double>, bool> taken)
    {
        var rng = Samplers.RngFor(seed, number, attempt);
        var finished = trials.Where(t => t.State is TrialState.Complete or TrialState.Pruned && space.Params.All(p => t.Params.ContainsKey(p.Key))).ToList();
        if (finished.Count < nStartupTrials) return space.Params.ToDictionary(p => p.Key, p => Samplers.Draw(p, rng));
        var (below, above) = Split(finished, Gamma(finished.Count), maximize);
        var result = new Dictionary<string, double>();
        foreach (var p in space.Params)
        {
            var l = new ParzenEstimator(p, below.Select(t => t.Params[p.Key]).ToArray(), priorWeight);
            var g = new ParzenEstimator(p, above.Select(t => t.Params[p.Key]).ToArray(), priorWeight);
            double bestX = double.NaN, bestScore = double.NegativeInfinity;
            for (int i = 0; i < nEiCandidates; i++)
            {
                double x = l.Sample(rng);
                double score = l.LogPdf(x) - g.LogPdf(x);
                if (i == 0 || score > bestScore) { bestScore = score; bestX = x; }
            }
            result[p.Key] = bestX;
        }
        return result;
    }
}

/// <summary>One parameter's Parzen estimator: a mixture with one kernel per observation plus a prior kernel.
/// Numeric: truncated normals on [low, high] (log space for log ranges; widened by step/2 for a stepped range,
/// scored by the mass of the step's cell), σ = the larger gap to a neighbour (endpoints not counted), clipped to
/// [(high−low)/min(100, 1 + kernels), high−low]; the prior is centred with σ = high−low. Categorical: each
/// observation's kernel puts 1 + prior/kernels on its category and prior/kernels on every category, normalised.</summary>
public sealed class ParzenEstimator
{
    readonly SearchParam _p;
    readonly double[] _weights;   // (K,) mixture weights, K = observations + 1
    readonly double[] _mu = [], _sigma = [];
    readonly double[,]? _cat;     // (K, C) category probabilities
    readonly double _low, _high;  // bounds in the transformed space

    public IReadOnlyList<double> Weights => _weights;
    public IReadOnlyList<double> Mus => _mu;
    public IReadOnlyList<double> Sigmas => _sigma;

    public ParzenEstimator(SearchParam p, double[] observations, double priorWeight = 1.0)
    {
        _p = p;
        int n = observations.Length;
        var w = TpeSampler.DefaultWeights(n).Append(priorWeight).ToArray();
        if (n == 0) w = [1.0];
        double sum = w.Sum();
        _weights = w.Select(x => x / sum).ToArray();
        if (p.Kind == ParamKind.Choice)
        {
            int c = p.Choices.Count;
            if (n == 0) { _cat = new double[1, c]; for (int j = 0; j < c; j++) _cat[0, j] = 1.0 / c; return; }
            int k = n + 1;
            _cat = new double[k, c];
            for (int i = 0; i < k; i++)
            {
                for (int j = 0; j < c; j++) _cat[i, j] = priorWeight / k;
                if (i < n) _cat[i, (int)observations[i]] += 1;
                double rs = 0; for (int j = 0; j < c; j++) rs += _cat[i, j];
                if (rs > 0) for (int j = 0; j < c; j++) _cat[i, j] /= rs;
            }
            return;
        }
        double low = p.Low, high = p.High;
        if (p.Step is { } st) { low -= st / 2; high += st / 2; }
        if (p.Log) { low = Math.Log(low); high = Math.Log(high); }
        _low = low; _high = high;
        var mus = observations.Select(x => p.Log ? Math.Log(x) : x).ToArray();
        var sig = Sigmas_(mus, low, high);
        _mu = [.. mus, 0.5 * (low + high)];
        _sigma = [.. sig, high - low];
    }

    static double[] Sigmas_(double[] mus, double low, double high)
    {
        int n = mus.Length;
        var order = Enumerable.Range(0, n).OrderBy(i => mus[i]).ToArray();
        var e = new double[n + 2];
        e[0] = low; e[^1] = high;
        for (int i = 0; i < n; i++) e[i + 1] = mus[order[i]];
        var sorted = new double[n];
        for (int i = 0; i < n; i++) sorted[i] = Math.Max(e[i + 1] - e[i], e[i + 2] - e[i + 1]);
        if (e.Length >= 4) { sorted[0] = e[2] - e[1]; sorted[^1] = e[^2] - e[^3]; }   // consider_endpoints = false
        double maxSigma = high - low, minSigma = (high - low) / Math.Min(100.0, 1.0 + (n + 1));
        var sigmas = new double[n];
        for (int i = 0; i < n; i++) sigmas[order[i]] = Math.Clamp(sorted[i], minSigma, maxSigma);
        return sigmas;
    }

    int PickComponent(Random rng)
    {
        double u = rng.NextDouble(), acc = 0;
        for (int k = 0; k < _weights.Length; k++) { acc += _weights[k]; if (u < acc) return k; }
        return _weights.Length - 1;
    }

    /// <summary>One draw (internal value).</summary>
    public double Sample(Random rng)
    {
        int k = PickComponent(rng);
        if (_cat != null)
        {
            double u = rng.NextDouble(), acc = 0; int c = _cat.GetLength(1);
            for (int j = 0; j < c; j++) { acc += _cat[k, j]; if (u < acc) return j; }
            return c - 1;
        }
        double x = Normal.SampleTruncated(_mu[k], _sigma[k], _low, _high, rng);
        if (_p.Log) x = Math.Exp(x);
        if (_p.Step is { } s) x = Math.Clamp(_p.Low + Math.Round((x - _p.Low) / s) * s, _p.Low, _p.High);
        return x;
    }

    /// <summary>log density (log mass of the step's cell for a stepped range) of an internal value.</summary>
    public double LogPdf(double x)
    {
        var terms = new double[_weights.Length];
        for (int k = 0; k < _weights.Length; k++)
        {
            double lp;
            if (_cat != null) lp = Math.Log(_cat[k, (int)x]);
            else
            {
                double mu = _mu[k], s = _sigma[k];
                double norm = Normal.LogGaussMass((_low - mu) / s, (_high - mu) / s);
                if (_p.Step is { } st)
                {
                    double left = x - st / 2, right = x + st / 2;
                    if (_p.Log) { left = Math.Log(left); right = Math.Log(right); }
                    lp = Normal.LogGaussMass((left - mu) / s, (right - mu) / s) - norm;
                }
                else
                {
                    double t = _p.Log ? Math.Log(x) : x;
                    double z = (t - mu) / s;
                    lp = -0.5 * z * z - 0.5 * Math.Log(2 * Math.PI) - Math.Log(s) - norm;
                }
            }
            terms[k] = lp + Math.Log(_weights[k]);
        }
        double max = terms.Max();
        if (double.IsNegativeInfinity(max)) return max;
        return max + Math.Log(terms.Sum(t => Math.Exp(t - max)));
    }
}

/// <summary>The standard normal distribution in log space (what truncated-normal kernels need).</summary>
public static class Normal
{
    /// <summary>erfc(z) by the Chebyshev fit of Numerical Recipes (erfcc; fractional error below 1.2e-7), as
    /// log erfc for z ≥ 0 so tails keep their precision.</summary>
    static double LogErfcPositive(double z)
    {
        double t = 1.0 / (1.0 + 0.5 * z);
        double poly = -z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 +
            t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))));
        return Math.Log(t) + poly;
    }

    /// <summary>erfc(z).</summary>
    public static double Erfc(double z) => z >= 0 ? Math.Exp(LogErfcPositive(z)) : 2 - Math.Exp(LogErfcPositive(-z));

    /// <summary>log Φ(x).</summary>
    public static double LogCdf(double x) =>
        x < 0 ? Math.Log(0.5) + LogErfcPositive(-x / Math.Sqrt(2)) : Log1p(-0.5 * Math.Exp(LogErfcPositive(x / Math.Sqrt(2))));

    /// <summary>Φ(x).</summary>
    public static double Cdf(double x) => 0.5 * Erfc(-x / Math.Sqrt(2));

    static double Log1p(double x) => Math.Abs(x) < 1e-4 ? x - x * x / 2 + x * x * x / 3 : Math.Log(1 + x);

    /// <summary>log(Φ(b) − Φ(a)) for a ≤ b, computed on the side where it does not cancel (as Optuna's _log_gauss_mass).</summary>
    public static double LogGaussMass(double a, double b)
    {
        if (b <= a) return double.NegativeInfinity;
        if (b <= 0) return LogDiff(LogCdf(b), LogCdf(a));
        if (a > 0) return LogDiff(LogCdf(-a), LogCdf(-b));
        // Central: 1 − Φ(a) − Φ(−b).
        return Log1p(-Cdf(a) - Cdf(-b));
    }

    // log(e^x − e^y), x ≥ y.
    static double LogDiff(double x, double y) => double.IsNegativeInfinity(y) ? x : x + Log1p(-Math.Exp(y - x));

    /// <summary>Φ⁻¹(p): Acklam's rational approximation, refined by one Halley step.</summary>
    public static double InverseCdf(double p)
    {
        if (p <= 0) return double.NegativeInfinity;
        if (p >= 1) return double.PositiveInfinity;
        double[] a = [-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02, 1.383577518672690e+02, -3.066479806614716e+01, 2.506628277459239e+00];
        double[] b = [-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02, 6.680131188771972e+01, -1.328068155288572e+01];
        double[] c = [-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00, -2.549732539343734e+00, 4.374664141464968e+00, 2.938163982698783e+00];
        double[] d = [7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00, 3.754408661907416e+00];
        double x;
        if (p < 0.02425)
        {
            double q = Math.Sqrt(-2 * Math.Log(p));
            x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
        }
        else if (p <= 1 - 0.02425)
        {
            double q = p - 0.5, r = q * q;
            x = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q / (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
        }
        else
        {
            double q = Math.Sqrt(-2 * Math.Log(1 - p));
            x = -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
        }
        double e = Cdf(x) - p, u = e * Math.Sqrt(2 * Math.PI) * Math.Exp(x * x / 2);
        return x - u / (1 + x * u / 2);
    }

    /// <summary>A draw from N(mu, sigma²) truncated to [low, high], by inverting the CDF.</summary>
    public static double SampleTruncated(double mu, double sigma, double low, double high, Random rng)
    {
        double pa = Cdf((low - mu) / sigma), pb = Cdf((high - mu) / sigma);
        double u = pa + rng.NextDouble() * (pb - pa);
        return Math.Clamp(mu + sigma * InverseCdf(u), low, high);
    }
}
