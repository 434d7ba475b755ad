// bf16 mixed precision without autocast: the module's weights become bf16, and the fp32 values go to AdamW as masters.
using TorchSharp;
using static TorchSharp.torch;

namespace TaskLM.Training;

/// <summary>training.precision: bf16. TorchSharp has no autocast, so the whole module computes in bf16 (weights,
/// activations; the heads compute the loss in fp32) and <see cref="AdamW"/> keeps fp32 master weights and moments.</summary>
public static class MixedPrecision
{
    /// <summary>Casts every floating-point parameter and buffer of <paramref name="module"/> to bf16 and returns the
    /// fp32 values the parameters had, by name (for <see cref="AdamW"/>'s masters; the caller disposes them).</summary>
    public static Dictionary<string, Tensor> CastToBf16(nn.Module module)
    {
        var fp32 = new Dictionary<string, Tensor>();
        using (no_grad())
            foreach (var (name, p) in module.named_parameters())
                if (p.dtype == ScalarType.Float32 && !fp32.ContainsKey(name)) fp32[name] = p.detach().clone().DetachFromDisposeScope();
        module.to(ScalarType.BFloat16);
        return fp32;
    }
}
