// AdamW (decoupled weight decay, as torch.optim.AdamW) with Hugging Face's decay grouping, on flat parameter and gradient buffers.
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace TaskLM.Training;

/// <summary>One parameter group: the parameters, their names and the weight decay they get.</summary>
public sealed record ParamGroup(IReadOnlyList<string> Names, IReadOnlyList<Parameter> Params, double WeightDecay);

/// <summary>One contiguous buffer: the parameters of one group that share a dtype and device.</summary>
public sealed class FlatBucket
{
    internal FlatBucket(ParamGroup group, List<Parameter> ps, Tensor values, Tensor grads)
    {
        Group = group; Params = ps; Values = values; Grads = grads;
        Offsets = new long[ps.Count]; Counts = new long[ps.Count];
        long off = 0;
        for (int i = 0; i < ps.Count; i++) { Offsets[i] = off; Counts[i] = ps[i].numel(); off += Counts[i]; }
        Attached = new bool[ps.Count]; Active = new bool[ps.Count];
    }

    /// <summary>The group this bucket belongs to (its weight decay).</summary>
    public ParamGroup Group { get; }
    /// <summary>The parameters, in buffer order.</summary>
    public IReadOnlyList<Parameter> Params { get; }
    /// <summary>(N,) all parameter values; each parameter's storage is a view into it.</summary>
    public Tensor Values { get; }
    /// <summary>(N,) all gradients; each parameter's <c>.grad</c> is a view into it once it has had one.</summary>
    public Tensor Grads { get; }
    internal long[] Offsets { get; }
    internal long[] Counts { get; }
    /// <summary>Whether parameter i's .grad is currently our view (autograd accumulates into it in place).</summary>
    internal bool[] Attached { get; }
    /// <summary>Whether parameter i got a gradient this step (torch skips parameters whose grad is None).</summary>
    internal bool[] Active { get; }
    internal bool AllActive { get; set; }
    internal bool AnyActive { get; set; }
    /// <summary>(N,) fp32 master weights of a bf16/fp16 bucket (mixed precision, training.precision: bf16): the update
    /// works on them and copies the result back into <see cref="Values"/>; null for an fp32 bucket.</summary>
    public Tensor? Master { get; internal set; }
}

/// <summary>AdamW exactly as <c>torch.optim.AdamW</c> (foreach=False semantics): decoupled weight decay
/// <c>p ← p·(1 − lr·wd)</c>, bias-corrected moments, <c>p ← p − lr/bc1 · m / (√v/√bc2 + eps)</c>.
/// Parameters, gradients and both moments of a group live in flat (N,) buffers (one per dtype and device,
/// a <see cref="FlatBucket"/>): each parameter's storage and, after its first backward, its <c>.grad</c> are
/// views into them, so autograd accumulates straight into the flat gradient buffer and the gradient norm,
/// clipping, an all-reduce and the update are a few large tensor ops per bucket instead of loops over
/// parameters. Parameters without a gradient in a step (frozen, or unused by the forward) are skipped, as
/// torch skips a <c>grad is None</c>.</summary>
public sealed class AdamW : IDisposable
{
    readonly List<ParamGroup> _groups;
    readonly List<FlatBucket> _buckets = [];
    readonly List<Tensor> _expAvg = [], _expAvgSq = [];     // (N_b,) per bucket
    readonly double _beta1, _beta2, _eps;

    /// <summary>Optimizer steps taken (torch's per-parameter "step", the same for all here).</summary>
    public long StepCount { get; private set; }

    public IReadOnlyList<ParamGroup> Groups => _groups;

    /// <summary>The flat buffers (what a data-parallel all-reduce works on).</summary>
    public IReadOnlyList<FlatBucket> Buckets => _buckets;

    /// <summary>Moves every parameter of <paramref name="groups"/> into flat buffers (values are copied, the
    /// Parameter objects stay the same, so modules and tied weights keep working). Build it after the model
    /// is on its device: moving the model later would move parameters out of the buffers.</summary>
    /// <param name="groups">The parameter groups (HF's decay grouping).</param>
    /// <param name="beta1">Adam's β1.</param><param name="beta2">Adam's β2.</param><param name="eps">Adam's ε.</param>
    /// <param name="masters">Mixed precision: fp32 values by parameter name for parameters held in bf16/fp16 (the
    /// weights before the cast). Every bf16/fp16 bucket gets fp32 master weights and fp32 moments: the update runs in
    /// fp32 on the masters and is copied back to the bf16 parameters. A bf16 parameter not named here starts its
    /// master from its bf16 value.</param>
    public AdamW(IEnumerable<ParamGroup> groups, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8,
        IReadOnlyDictionary<string, Tensor>? masters = null)
    {
        _groups = groups.Where(g => g.Params.Count > 0).ToList();
        _beta1 = beta1; _beta2 = beta2; _eps = eps;
        using var _ = no_grad();
        foreach (var g in _groups)
            foreach (var same in g.Params.Select((p, i) => (p, name: g.Names[i])).GroupBy(x => (x.p.dtype, x.p.device.type, x.p.device.index)))
            {
                var ps = same.Select(x => x.p).ToList();
                var names = same.Select(x => x.name).ToList();
                long n = ps.Sum(p => p.numel());
                var values = empty(n, dtype: ps[0].dtype, device: ps[0].device);
                var grads = zeros(n, dtype: ps[0].dtype, device: ps[0].device);
                long off = 0;
                foreach (var p in ps)
                {
                    long k = p.numel();
                    var view = values.narrow(0, off, k).view(p.shape);
                    view.copy_(p);
                    p.set_(view);          // the parameter now lives in the flat buffer
                    view.Dispose();
                    off += k;
                }
                var bucket = new FlatBucket(g, ps, values, grads);
                _buckets.Add(bucket);
                bool low = ps[0].dtype is ScalarType.BFloat16 or ScalarType.Float16;
                var stateType = low ? ScalarType.Float32 : ps[0].dtype;
                if (low)
                {
                    var master = values.to(ScalarType.Float32);
                    for (int i = 0; i < ps.Count; i++)
                        if (masters != null && masters.TryGetValue(names[i], out var m32) && m32.numel() == bucket.Counts[i])
                            master.narrow(0, bucket.Offsets[i], bucket.Counts[i]).copy_(m32.reshape(-1));
                    bucket.Master = master;
                }
                _expAvg.Add(zeros(n, dtype: stateType, device: ps[0].device));
                _expAvgSq.Add(zeros(n, dtype: stateType, device: ps[0].device));
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

    /// <summary>Call after backward, before <see cref="GradNorm"/>, clipping, an all-reduce or <see cref="Step"/>:
    /// a gradient autograd created afresh (first step, or a newly unfrozen parameter) is copied into the flat
    /// buffer and replaced by a view of it, so later backwards accumulate there in place; frozen parameters
    /// are detached. After this the flat gradient buffers hold every gradient of the step (zeros where none).</summary>
    public void GatherGradients()
    {
        using var _ = no_grad();
        foreach (var b in _buckets)
        {
            bool all = true, any = false;
            for (int i = 0; i < b.Params.Count; i++)
            {
                var p = b.Params[i];
                var gr = p.grad;
                if (gr is null || !p.requires_grad)
                {
                    if (gr is not null) { p.grad = null; gr.Dispose(); }
                    if (b.Attached[i]) { b.Attached[i] = false; b.Grads.narrow(0, b.Offsets[i], b.Counts[i]).zero_(); }
                    b.Active[i] = false; all = false;
                    continue;
                }
                if (!b.Attached[i])
                {
                    var view = b.Grads.narrow(0, b.Offsets[i], b.Counts[i]).view(p.shape);
                    view.copy_(gr);
                    p.grad = view;     // autograd's AccumulateGrad adds into a defined .grad in place
                    b.Attached[i] = true;
                    view.Dispose();
                }
                gr.Dispose();
                b.Active[i] = true; any = true;
            }
            b.AllActive = all; b.AnyActive = any;
        }
    }

    /// <summary>torch.nn.utils.clip_grad_norm_'s total norm (the 2-norm over every gradient) from the flat
    /// buffers: one norm per bucket and one host read. Call <see cref="GatherGradients"/> first.</summary>
    public double GradNorm()
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        // A bf16 gradient's norm is taken in fp32 (bf16's 8-bit mantissa would round the sum of squares).
        var norms = _buckets.Where(b => b.AnyActive).Select(b => b.Master is null ? b.Grads.norm() : b.Grads.to(ScalarType.Float32).norm()).ToArray();
        if (norms.Length == 0) return 0;
        return (norms.Length == 1 ? norms[0] : stack(norms).norm()).item<float>();
    }

    /// <summary>Multiplies every gradient by <paramref name="factor"/> (clipping; averaging after a sum-all-reduce).</summary>
    public void ScaleGradients(double factor)
    {
        using var _ = no_grad();
        foreach (var b in _buckets) if (b.AnyActive) b.Grads.mul_(factor);
    }

    /// <summary>One update with learning rate <paramref name="lr"/>; parameters without a gradient are skipped.
    /// Gathers the gradients first if the caller did not.</summary>
    public void Step(double lr)
    {
        StepCount++;
        double bc1 = 1 - Math.Pow(_beta1, StepCount);
        double bc2Sqrt = Math.Sqrt(1 - Math.Pow(_beta2, StepCount));
        double stepSize = lr / bc1;
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        for (int k = 0; k < _buckets.Count; k++)
        {
            var b = _buckets[k];
            if (!b.AnyActive) continue;
            double wd = b.Group.WeightDecay;
            // Mixed precision: the update runs on the fp32 masters with the gradient in fp32, then the bf16
            // parameters are the rounded masters.
            var values = b.Master ?? b.Values;
            var grads = b.Master is null ? b.Grads : b.Grads.to(ScalarType.Float32);
            if (b.AllActive) Update(values, grads, _expAvg[k], _expAvgSq[k], lr, wd, stepSize, bc2Sqrt);
            else
            {
                // Some parameters had no gradient: update each contiguous run of those that had one.
                int i = 0;
                while (i < b.Params.Count)
                {
                    if (!b.Active[i]) { i++; continue; }
                    int j = i;
                    while (j + 1 < b.Params.Count && b.Active[j + 1]) j++;
                    long off = b.Offsets[i], len = b.Offsets[j] + b.Counts[j] - off;
                    Update(values.narrow(0, off, len), grads.narrow(0, off, len), _expAvg[k].narrow(0, off, len), _expAvgSq[k].narrow(0, off, len),
                        lr, wd, stepSize, bc2Sqrt);
                    i = j + 1;
                }
            }
            if (b.Master is not null) b.Values.copy_(b.Master);
        }
    }

    /// <summary>torch's _single_tensor_adamw on (n,) slices, op for op.</summary>
    void Update(Tensor p, Tensor g, Tensor m, Tensor v, double lr, double wd, double stepSize, double bc2Sqrt)
    {
        if (wd != 0) p.mul_(1 - lr * wd);
        m.lerp_(g, 1 - _beta1);
        v.mul_(_beta2).addcmul_(g, g, 1 - _beta2);
        var denom = v.sqrt().div_(bc2Sqrt).add_(_eps);   // one temporary: torch's (sqrt(v) / bc2_sqrt).add_(eps)
        p.addcdiv_(m, denom, -stepSize);
    }

    /// <summary>The state to checkpoint: step count and per-bucket moments, by name "exp_avg.{b}" / "exp_avg_sq.{b}"
    /// (one bucket per group when a group has one dtype, as every TaskLM model).</summary>
    public Dictionary<string, Tensor> StateDict()
    {
        var d = new Dictionary<string, Tensor>();
        for (int k = 0; k < _buckets.Count; k++)
        {
            d[$"exp_avg.{k}"] = _expAvg[k].cpu();
            d[$"exp_avg_sq.{k}"] = _expAvgSq[k].cpu();
            if (_buckets[k].Master is { } m) d[$"master.{k}"] = m.cpu();
        }
        d["step"] = tensor(new[] { StepCount });
        return d;
    }

    /// <summary>Restores <see cref="StateDict"/>'s output (same grouping and sizes).</summary>
    public void LoadStateDict(IReadOnlyDictionary<string, Tensor> state)
    {
        using var _ = no_grad();
        for (int k = 0; k < _buckets.Count; k++)
        {
            foreach (var (name, dst) in new[] { ($"exp_avg.{k}", _expAvg[k]), ($"exp_avg_sq.{k}", _expAvgSq[k]) })
            {
                if (!state.TryGetValue(name, out var src) || src.numel() != dst.numel())
                    throw new InvalidDataException($"optimizer state: '{name}' missing or of another size (the checkpoint's parameters differ from this run's)");
                dst.copy_(src);
            }
            // Mixed precision: the fp32 masters continue exactly (the checkpoint's weights hold only their bf16 rounding).
            if (_buckets[k].Master is { } m && state.TryGetValue($"master.{k}", out var ms) && ms.numel() == m.numel())
            {
                m.copy_(ms);
                _buckets[k].Values.copy_(m);
            }
        }
        StepCount = state["step"].item<long>();
    }

    /// <summary>Clears every gradient for the next step: one fill of each flat buffer (the views stay attached,
    /// so the next backward accumulates into zeros); a gradient that is not a view yet is dropped, as torch's
    /// zero_grad(set_to_none=True).</summary>
    public void ZeroGrad()
    {
        using var _ = no_grad();
        foreach (var b in _buckets)
        {
            b.Grads.zero_();
            for (int i = 0; i < b.Params.Count; i++)
                if (!b.Attached[i] && b.Params[i].grad is { } gr) { b.Params[i].grad = null; gr.Dispose(); }
        }
    }

    public void Dispose()
    {
        foreach (var t in _expAvg) t.Dispose();
        foreach (var t in _expAvgSq) t.Dispose();
        foreach (var b in _buckets) b.Master?.Dispose();
    }
}
