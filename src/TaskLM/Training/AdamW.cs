// AdamW (decoupled weight decay, as torch.optim.AdamW) with Hugging Face's decay grouping and flat per-group state.
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace TaskLM.Training;

/// <summary>One parameter group: the parameters, their names and the weight decay they get.</summary>
public sealed record ParamGroup(IReadOnlyList<string> Names, IReadOnlyList<Parameter> Params, double WeightDecay);

/// <summary>AdamW exactly as <c>torch.optim.AdamW</c> (foreach=False semantics): decoupled weight decay
/// <c>p ← p·(1 − lr·wd)</c>, bias-corrected moments, <c>p ← p − lr/bc1 · m / (√v/√bc2 + eps)</c>.
/// The moments of a group live in two flat tensors (m, v: (N,) for the group's N elements) and each
/// parameter's state is a view into them, so the update is a handful of large ops per group and the
/// design carries over to one flat parameter buffer.</summary>
public sealed class AdamW : IDisposable
{
    readonly List<ParamGroup> _groups;
    readonly Tensor[] _expAvg, _expAvgSq;     // (N_g,) per group
    readonly double _beta1, _beta2, _eps;

    /// <summary>Optimizer steps taken (torch's per-parameter "step", the same for all here).</summary>
    public long StepCount { get; private set; }

    public IReadOnlyList<ParamGroup> Groups => _groups;

    public AdamW(IEnumerable<ParamGroup> groups, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8)
    {
        _groups = groups.Where(g => g.Params.Count > 0).ToList();
        _beta1 = beta1; _beta2 = beta2; _eps = eps;
        _expAvg = new Tensor[_groups.Count];
        _expAvgSq = new Tensor[_groups.Count];
        for (int i = 0; i < _groups.Count; i++)
        {
            var p0 = _groups[i].Params[0];
            long n = _groups[i].Params.Sum(p => p.numel());
            _expAvg[i] = zeros(n, dtype: p0.dtype, device: p0.device);
            _expAvgSq[i] = zeros(n, dtype: p0.dtype, device: p0.device);
        }
    }

    /// <summary>Hugging Face Trainer's grouping: weight decay on every trainable parameter except biases and
    /// the weights of LayerNorm modules (transformers' get_parameter_names with LayerNorm forbidden and
    /// "bias"/"layernorm"/"rmsnorm" excluded by name).</summary>
    /// <param name="model">The module whose named parameters are grouped.</param>
    /// <param name="weightDecay">Decay of the first group.</param>
    /// <param name="trainable">Which parameters the optimizer holds; default: those with requires_grad (gradual
    /// unfreezing passes all that will ever be unfrozen; a parameter without a gradient is skipped by the step).</param>
    public static (ParamGroup decay, ParamGroup noDecay) HfGroups(nn.Module model, double weightDecay, Func<string, Parameter, bool>? trainable = null)
    {
        var norms = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (name, module) in model.named_modules())
            if (TaskLM.Models.ModelFamilies.IsNormModule(module))   // each family declares its norm types
                foreach (var (pn, _) in module.named_parameters(recurse: false))
                    norms.Add(name.Length == 0 ? pn : $"{name}.{pn}");
        var dn = new List<string>(); var dp = new List<Parameter>();
        var nn_ = new List<string>(); var np = new List<Parameter>();
        var seen = new HashSet<IntPtr>();
        foreach (var (name, p) in model.named_parameters())
        {
            // Tied weights (GPT-2's lm_head = wte) appear once, under their first name, as torch's named_parameters.
            if ((trainable != null ? !trainable(name, p) : !p.requires_grad) || !seen.Add(p.Handle)) continue;
            string lower = name.ToLowerInvariant();
            bool decay = !norms.Contains(name) && !lower.Contains("bias") && !lower.Contains("layernorm") && !lower.Contains("rmsnorm");
            if (decay) { dn.Add(name); dp.Add(p); } else { nn_.Add(name); np.Add(p); }
        }
        return (new ParamGroup(dn, dp, weightDecay), new ParamGroup(nn_, np, 0.0));
    }

    /// <summary>One update with learning rate <paramref name="lr"/>; parameters without a gradient are skipped.</summary>
    public void Step(double lr)
    {
        StepCount++;
        double bc1 = 1 - Math.Pow(_beta1, StepCount);
        double bc2Sqrt = Math.Sqrt(1 - Math.Pow(_beta2, StepCount));
        double stepSize = lr / bc1;
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        for (int g = 0; g < _groups.Count; g++)
        {
            var group = _groups[g];
            // (N,) gradients of the group, zeros where a parameter got none.
            var grads = cat(group.Params.Select(p => p.grad is { } gr ? gr.reshape(-1) : zeros(p.numel(), dtype: p.dtype, device: p.device)).ToArray());
            _expAvg[g].lerp_(grads, 1 - _beta1);
            _expAvgSq[g].mul_(_beta2).addcmul_(grads, grads, 1 - _beta2);
            var update = _expAvg[g] / (_expAvgSq[g].sqrt() / bc2Sqrt + _eps);   // (N,)
            long offset = 0;
            foreach (var p in group.Params)
            {
                long n = p.numel();
                if (p.grad is not null)
                {
                    if (group.WeightDecay != 0) p.mul_(1 - lr * group.WeightDecay);
                    p.add_(update.narrow(0, offset, n).view(p.shape), alpha: -stepSize);
                }
                offset += n;
            }
        }
    }

    /// <summary>The state to checkpoint: step count and per-group moments, by name "exp_avg.{g}" / "exp_avg_sq.{g}".</summary>
    public Dictionary<string, Tensor> StateDict()
    {
        var d = new Dictionary<string, Tensor>();
        for (int g = 0; g < _groups.Count; g++)
        {
            d[$"exp_avg.{g}"] = _expAvg[g].cpu();
            d[$"exp_avg_sq.{g}"] = _expAvgSq[g].cpu();
        }
        d["step"] = tensor(new[] { StepCount });
        return d;
    }

    /// <summary>Restores <see cref="StateDict"/>'s output (same grouping and sizes).</summary>
    public void LoadStateDict(IReadOnlyDictionary<string, Tensor> state)
    {
        using var _ = no_grad();
        for (int g = 0; g < _groups.Count; g++)
        {
            foreach (var (name, dst) in new[] { ($"exp_avg.{g}", _expAvg[g]), ($"exp_avg_sq.{g}", _expAvgSq[g]) })
            {
                if (!state.TryGetValue(name, out var src) || src.numel() != dst.numel())
                    throw new InvalidDataException($"optimizer state: '{name}' missing or of another size (the checkpoint's parameters differ from this run's)");
                dst.copy_(src);
            }
        }
        StepCount = state["step"].item<long>();
    }

    /// <summary>Sets every gradient to none (torch's zero_grad(set_to_none=True)).</summary>
    public void ZeroGrad()
    {
        foreach (var g in _groups)
            foreach (var p in g.Params)
                if (p.grad is { } gr) { p.grad = null; gr.Dispose(); }
    }

    public void Dispose()
    {
        foreach (var t in _expAvg) t.Dispose();
        foreach (var t in _expAvgSq) t.Dispose();
    }
}
