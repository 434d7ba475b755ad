// LoRA mechanics on the tiny model: PEFT key names, adapter round trip, merge equivalence, frozen base.
using TaskLM.Models;
using TaskLM.Training;
using static TorchSharp.torch;

namespace TaskLM.Tests.Training;

// TinyLm seeds torch's global generator and draws its weights from it: run alone, so a parallel test's draw cannot
// make the two TinyLm below differ (seen once in CI: the reloaded adapter's logits off by 2.9).
[Collection(SerialCollection.Name)]
public class LoraTests
{
    [Fact]
    public void Reads_the_peft_adapter_config_of_the_hf_fixture()
    {
        var (cfg, mts) = LoraModel.ReadAdapterConfig(Path.Combine(AppContext.BaseDirectory, "fixtures", "hf", "lora-adapter"));
        Assert.Equal(4, cfg.R);
        Assert.Equal(2.0, cfg.Scaling);               // lora_alpha 8 / r 4
        Assert.Equal(["c_attn"], cfg.TargetModules);
        Assert.Empty(mts);
    }

    [Fact]
    public void Adapter_saves_in_peft_layout_loads_back_identically_and_merges()
    {
        string dir = Path.Combine(Path.GetTempPath(), "tasklm-lora-" + Guid.NewGuid().ToString("N"));
        try
        {
            using var scope = NewDisposeScope();
            var batch = new ModelBatch { InputIds = tensor(new long[] { 1, 5, 9, 13, 2, 7 }, [1, 6]) };
            var lora = new LoraModel(new TinyLm(dropout: 0), new LoraConfig(4, 8, 0.0, ["fc"]));
            var baseLogits = lora.Forward(batch).Logits!.detach().clone();
            // B starts at zero (PEFT's init): the wrapped model is the base model.
            Assert.True(lora.Forward(batch).Logits!.allclose(baseLogits));
            using (no_grad()) lora.Layers["fc"].lora_B.weight!.normal_(0, 0.5);
            var adapted = lora.Forward(batch).Logits!.detach().clone();
            Assert.False(adapted.allclose(baseLogits, 1e-4, 1e-4));
            var (trainable, total) = lora.CountParameters();
            Assert.Equal(4 * 16 + 16 * 4, trainable);
            Assert.True(total > trainable);
            Assert.All(AdamW.HfGroups(lora.Module, 0.01).decay.Names, n => Assert.Contains("lora_", n));

            lora.SaveAdapter(dir);
            var keys = SafeTensors.Load(Path.Combine(dir, "adapter_model.safetensors")).Keys.Order().ToArray();
            Assert.Equal(["base_model.model.fc.lora_A.weight", "base_model.model.fc.lora_B.weight"], keys);

            var back = LoraModel.FromAdapter(new TinyLm(dropout: 0), dir);
            Assert.Equal(0.0, (back.Forward(batch).Logits! - adapted).abs().max().item<float>());

            var merged = back.MergeAndUnload();
            double diff = (merged.Forward(batch).Logits! - adapted).abs().max().item<float>();
            Assert.True(diff < 1e-5, $"merged differs by {diff}");
        }
        finally { if (Directory.Exists(dir)) Directory.Delete(dir, true); }
    }
}
