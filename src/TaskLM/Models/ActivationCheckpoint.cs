// Gradient (activation) checkpointing, as torch.utils.checkpoint: a block runs without storing its activations and is
// run again, with grad, inside backward. Built on TorchSharp's custom autograd function (torch.autograd.MultiTensorFunction).
using TorchSharp;
using static TorchSharp.torch;

namespace TaskLM.Models;

/// <summary>A body whose transformer blocks can be checkpointed (HF's <c>supports_gradient_checkpointing</c>):
/// GPT2Model and BertEncoder. <see cref="ActivationCheckpoint.Enable"/> finds them in any module tree (LoRA too).</summary>
public interface IGradientCheckpointing
{
    /// <summary>Recompute each block's activations in backward instead of keeping them (training mode only).</summary>
    bool GradientCheckpointing { get; set; }
}

/// <summary>Runs a block so that autograd keeps only its input: the forward runs under no_grad, and backward runs the
/// block again with grad from the saved input and differentiates that (torch.utils.checkpoint's reentrant variant).
/// Memory per block falls from all its activations (attention, MLP, norms: ~10-20 (B, T, C) tensors) to its input and
/// output. The recomputation uses the same random numbers: torch's CPU generator state is saved before the forward and
/// restored around the recomputation, so dropout draws the same masks (HF's preserve_rng_state). On CUDA, whose
/// generator state TorchSharp does not expose, the block's CUDA generator is seeded from the CPU generator before the
/// forward and again before the recomputation: the same masks, from a stream that differs from an unchecked run.</summary>
public static class ActivationCheckpoint
{
    /// <summary>Turns checkpointing on or off in every <see cref="IGradientCheckpointing"/> module under
    /// <paramref name="module"/>; returns how many were found.</summary>
    public static int Enable(nn.Module module, bool on = true)
    {
        var all = module.named_modules().Select(x => x.module).Prepend(module).Distinct(ReferenceEqualityComparer.Instance);
        int n = 0;
        foreach (var m in all)
            if (m is IGradientCheckpointing g) { g.GradientCheckpointing = on; n++; }
        return n;
    }

    /// <summary><paramref name="block"/>(<paramref name="x"/>, <paramref name="mask"/>), checkpointed: only
    /// <paramref name="x"/> is kept for backward. <paramref name="block"/> must be a function of x, of the mask (a
    /// constant: no gradient flows to it) and of <paramref name="module"/>'s parameters only; it must not close over
    /// other tensors, which the forward pass's dispose scope frees before backward runs (the mask is held here).
    /// Falls back to a plain call when no gradient is needed.</summary>
    public static Tensor Run(nn.Module module, Func<Tensor, Tensor?, Tensor> block, Tensor x, Tensor? mask)
    {
        var ps = module.parameters().Where(p => p.requires_grad).Cast<Tensor>().ToList();
        if (!is_grad_enabled() || (!x.requires_grad && ps.Count == 0)) return block(x, mask);
        var args = new object[2 + ps.Count];
        args[0] = new Recompute(block, ps, x.requires_grad, mask);
        args[1] = x;
        for (int i = 0; i < ps.Count; i++) args[2 + i] = ps[i];
        return CheckpointFunction.apply(args)[0];
    }

    /// <summary>What backward needs besides the saved input: the block, and the random state its forward started from.</summary>
    sealed class Recompute(Func<Tensor, Tensor?, Tensor> block, List<Tensor> parameters, bool inputNeedsGrad, Tensor? mask)
    {
        public readonly Func<Tensor, Tensor?, Tensor> Block = block;
        /// <summary>The forward's mask; backward gets <see cref="HeldMask"/>, our own handle on the same storage.</summary>
        public readonly Tensor? Mask = mask;
        public Tensor? HeldMask;
        /// <summary>The module's live trainable parameters (the function's tensor inputs after x), in order.</summary>
        public readonly List<Tensor> Parameters = parameters;
        public readonly bool InputNeedsGrad = inputNeedsGrad;
        public Tensor? CpuRngState;
        public long? CudaSeed;

        public void Capture(Device device)
        {
            CpuRngState = torch.random.get_rng_state().DetachFromDisposeScope();
            HeldMask = Mask?.alias().DetachFromDisposeScope();
            if (device.type == DeviceType.CUDA)
            {
                CudaSeed = torch.randint(0, int.MaxValue, [1], dtype: int64).item<long>();
                torch.cuda.manual_seed(CudaSeed.Value);
            }
        }
    }

    sealed class CheckpointFunction : autograd.MultiTensorFunction<CheckpointFunction>
    {
        public override string Name => "CheckpointFunction";

        // The gradients the last backward handed to libtorch. Native code copies them (a reference) as soon as backward
        // returns, so our wrappers can go then; holding them to the end of the step would keep a second copy of every
        // block's parameter gradients alive. They are released at the next forward or backward of this function.
        static readonly object Gate = new();
        static readonly List<Tensor> HandedBack = [];

        static void ReleaseHandedBack()
        {
            lock (Gate)
            {
                foreach (var t in HandedBack) t.Dispose();
                HandedBack.Clear();
            }
        }

        // vars: [Recompute, x (B, T, C), the block's trainable parameters...]. Runs under no_grad (apply's doing).
        public override List<Tensor> forward(autograd.AutogradContext ctx, params object[] vars)
        {
            ReleaseHandedBack();
            var run = (Recompute)vars[0];
            var x = (Tensor)vars[1];
            run.Capture(x.device);
            ctx.save_data("run", run);
            ctx.save_for_backward([x]);
            // The block's intermediate tensors die here, not at the end of the step: that is the memory saved.
            using var scope = NewDisposeScope();
            var y = run.Block(x, run.Mask);
            return [y.MoveToOuterDisposeScope()];
        }

        public override List<Tensor> backward(autograd.AutogradContext ctx, List<Tensor> gradOutputs)
        {
            ReleaseHandedBack();
            var run = (Recompute)ctx.get_data("run");
            var result = new List<Tensor>(2 + run.Parameters.Count) { null! };   // none for the Recompute argument
            IList<Tensor> grads;
            // Everything made here (the saved input's wrapper, the recomputed activations, the incoming gradient's
            // wrapper) is freed when this block's backward ends, not at the end of the step.
            using (var scope = NewDisposeScope())
            {
                var x = ctx.get_saved_variables()[0];
                var xd = x.detach().requires_grad_(run.InputNeedsGrad);
                var now = torch.random.get_rng_state();
                torch.random.set_rng_state(run.CpuRngState!);
                if (run.CudaSeed is long seed) torch.cuda.manual_seed(seed);
                Tensor y;
                try
                {
                    using (enable_grad()) y = run.Block(xd, run.HeldMask);
                }
                finally { torch.random.set_rng_state(now); }
                var inputs = new List<Tensor>();
                if (run.InputNeedsGrad) inputs.Add(xd);
                // The parameters are the function's inputs 2.. in order; ask autograd for d(y)/d(them) with the
                // incoming gradient. The engine then accumulates them into .grad as for any other node.
                inputs.AddRange(run.Parameters);
                grads = torch.autograd.grad([y], inputs, [gradOutputs[0]], allow_unused: true);
                lock (Gate)
                    foreach (var g in grads)
                        if (g is not null) HandedBack.Add(g.DetachFromDisposeScope());
                gradOutputs[0].Dispose();
            }
            int k = 0;
            result.Add(run.InputNeedsGrad ? grads[k++] : null!);
            for (int i = 0; i < run.Parameters.Count; i++) result.Add(grads[k++]);
            run.CpuRngState?.Dispose();
            run.CpuRngState = null;
            run.HeldMask?.Dispose();
            run.HeldMask = null;
            return result;
        }
    }
}
