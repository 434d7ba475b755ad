// The flat-buffer AdamW against torch.optim.AdamW (TorchSharp's port of torch's, per-parameter loop), with clipping, a frozen and an unused parameter.
using TaskLM.Training;
using TorchSharp;
using Linear = TorchSharp.Modules.Linear;
using LayerNorm = TorchSharp.Modules.LayerNorm;
using AdamW = TaskLM.Training.AdamW;
using static TorchSharp.torch;

namespace TaskLM.Tests.Training;

// Serial: it seeds torch's global RNG, which parallel test classes (TinyLm inits) also draw from.
[Collection(SerialCollection.Name)]
public class AdamWTests
{
    /// <summary>Two linear layers feed the loss; a third exists but is never used (grad stays None), and the
    /// second layer's bias is frozen half-way.</summary>
    sealed class Net : nn.Module<Tensor, Tensor>
    {
        public readonly Linear a, b, unused;
        public readonly LayerNorm ln;
        public Net() : base("net")
        {
            a = nn.Linear(6, 8); b = nn.Linear(8, 3); unused = nn.Linear(3, 3); ln = nn.LayerNorm(8);
            RegisterComponents();
        }
        public override Tensor forward(Tensor x) => b.call(nn.functional.gelu(ln.call(a.call(x))));
    }

    static Net Make() { manual_seed(7); return new Net(); }

    [Fact]
    public void Flat_buffers_give_torch_adamw_weights_norms_and_skip_params_without_grads()
    {
        var ours = Make(); var ref_ = Make();
        var (d, nd) = AdamW.HfGroups(ours, 0.1);
        using var opt = new AdamW([d, nd], 0.9, 0.95, 1e-8);
        // The reference: torch's AdamW on HF's two groups, clip_grad_norm_ from torch.nn.utils.
        var (rd, rnd) = AdamW.HfGroups(ref_, 0.1);
        var refOpt = optim.AdamW([
            new TorchSharp.Modules.AdamW.ParamGroup(rd.Params, new TorchSharp.Modules.AdamW.Options { weight_decay = 0.1 }),
            new TorchSharp.Modules.AdamW.ParamGroup(rnd.Params, new TorchSharp.Modules.AdamW.Options { weight_decay = 0.0 })],
            lr: 1e-2, beta1: 0.9, beta2: 0.95, eps: 1e-8);
        Assert.Single(opt.Buckets, bk => bk.Group.WeightDecay == 0.1);
        var rng = new Random(1);
        for (int step = 0; step < 8; step++)
        {
            if (step == 4) { ours.b.bias!.requires_grad = false; ref_.b.bias!.requires_grad = false; }
            using var scope = NewDisposeScope();
            manual_seed(100 + step);
            var x = randn(5, 6) * 3; var y = randint(0, 3, [5]);
            nn.functional.cross_entropy(ours.call(x), y).backward();
            nn.functional.cross_entropy(ref_.call(x), y).backward();
            opt.GatherGradients();
            double norm = opt.GradNorm();
            double refNorm = nn.utils.clip_grad_norm_(ref_.parameters().Where(p => p.grad is not null), 0.5);
            Assert.InRange(Math.Abs(norm - refNorm), 0, 1e-5 * Math.Max(1, refNorm));
            double coef = 0.5 / (norm + 1e-6);
            if (coef < 1) opt.ScaleGradients(coef);
            double lr = 1e-2 * (1 + rng.Next(3));
            opt.Step(lr);
            foreach (var g in refOpt.ParamGroups) g.LearningRate = lr;
            refOpt.step();
            opt.ZeroGrad();
            foreach (var p in ref_.parameters()) p.grad = null;   // zero_grad(set_to_none=True)
        }
        foreach (var ((name, p), (_, q)) in ours.named_parameters().Zip(ref_.named_parameters()))
        {
            double diff = (p - q).abs().max().item<float>();
            Assert.True(diff < 1e-6, $"{name}: max |ours - torch| = {diff}");
        }
        // The unused layer never moved (no weight decay on a parameter without a gradient), and its values
        // are still views into the flat buffer: writing the buffer changes the parameter.
        using (no_grad())
        {
            var fresh = Make();
            Assert.Equal(0, (ours.unused.weight! - fresh.unused.weight!).abs().max().item<float>());
            var bucket = opt.Buckets.First(bk => bk.Params[0].Handle == ours.a.weight!.Handle);   // a.weight comes first
            bucket.Values.narrow(0, 0, 1).fill_(42);
            Assert.Equal(42f, ours.a.weight![0, 0].item<float>());
        }
    }
}
