// strategy.lora.merge: best/ becomes a full model (the adapter merged into the base weights, PEFT's merge_and_unload)
// whose logits are the trained adapter model's; the adapter itself is kept in best/adapter/.
using System.Text.Json.Nodes;
using TaskLM.Models;
using TaskLM.Recipes;
using TaskLM.Tasks;
using TaskLM.Training;
using static TorchSharp.torch;

namespace TaskLM.Tests.Training;

// In-process training draws from torch's global generator: run alone, so no parallel test's seeded init is disturbed.
[Collection(SerialCollection.Name)]
public class LoraMergeTests
{
    /// <summary>Scores a fixed batch with the trained model as the loop ends (eval mode, no grad): the reference.</summary>
    sealed class FinalLogits(ModelBatch batch) : ITrainerCallback
    {
        public float[]? Logits;
        public void OnTrainEnd(Trainer t)
        {
            t.Model.Module.eval();
            using (no_grad()) Logits = t.Model.Forward(batch).Logits!.to(float32).cpu().data<float>().ToArray();
        }
    }

    [Theory]
    [InlineData(false)]   // a preset (random) base: rebuilt from the run's seed
    [InlineData(true)]    // a pretrained folder base
    public void Merge_writes_a_full_best_model_with_the_trained_adapters_logits(bool folderInit)
    {
        string dir = Path.Combine(Path.GetTempPath(), "tasklm-loramerge-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            var rng = new Random(4);
            var examples = Enumerable.Range(0, 16).Select(i => new Example
            {
                InputIds = Enumerable.Range(0, 8).Select(_ => rng.Next(1, 64)).ToArray(), Label = i % 2,
            }).ToList();
            File.WriteAllLines(Path.Combine(dir, "cls.jsonl"), examples.Select(e => new JsonObject
            {
                ["input_ids"] = new JsonArray(e.InputIds.Select(x => (JsonNode)x).ToArray()), ["labels"] = e.Label,
            }.ToJsonString()));
            string config = "{vocab_size: 64, n_layer: 1, n_head: 2, n_embd: 16, n_positions: 16, pad_token_id: 0}";
            string init = "gpt2-tiny";
            if (folderInit)
            {
                init = Path.Combine(dir, "base");
                manual_seed(11);
                var b = ModelFactory.FromPreset("gpt2-tiny", "causal-lm", new Dictionary<string, object>
                {
                    ["vocab_size"] = 64, ["n_layer"] = 1, ["n_head"] = 2, ["n_embd"] = 16, ["n_positions"] = 16, ["pad_token_id"] = 0,
                });
                b.SavePretrained(init);
                b.Module.Dispose();
            }
            string run = Path.Combine(dir, "run");
            var recipe = RecipeLoader.Parse($$"""
                task: classification
                model:
                  init: '{{init}}'
                  {{(folderInit ? "" : "config: " + config)}}
                data: {train: '{{Path.Combine(dir, "cls.jsonl")}}', max_length: 8}
                strategy:
                  method: lora
                  lora: {r: 4, alpha: 8, dropout: 0.1, merge: true}
                training: {max_steps: 6, batch_size: 4, lr: 2.0e-2, eval_every: none, tensorboard: false, seed: 3}
                output_dir: '{{run}}'
                """, "merge test recipe");

            var batch = new Collator("classification", 0, CPU).Collate(examples.Take(6).ToList());
            var probe = new FinalLogits(batch);
            TrainingRun.Run(recipe, new RunOptions { Callbacks = [probe], TokenizerLoader = null });

            string best = Path.Combine(run, "best");
            Assert.True(File.Exists(Path.Combine(best, "config.json")), "best/ is not a full model folder");
            Assert.False(File.Exists(Path.Combine(best, "adapter_config.json")));
            Assert.True(File.Exists(Path.Combine(best, "adapter", "adapter_config.json")), "the adapter was not kept in best/adapter/");
            var merged = ModelFactory.ForInference(best, "classification");
            merged.Module.eval();
            float[] got;
            using (no_grad()) got = merged.Forward(batch).Logits!.to(float32).cpu().data<float>().ToArray();
            Assert.Equal(probe.Logits!.Length, got.Length);
            for (int i = 0; i < got.Length; i++) Assert.True(Math.Abs(got[i] - probe.Logits[i]) < 1e-4, $"logit {i}: merged {got[i]}, trained {probe.Logits[i]}");
            merged.Module.Dispose();
        }
        finally { Directory.Delete(dir, true); }
    }
}

[Collection(SerialCollection.Name)]
public class LoraEvalModeTests
{
    [Fact]
    public void Eval_mode_turns_the_lora_dropout_off()
    {
        using var scope = NewDisposeScope();
        manual_seed(5);
        var lora = new LoraModel(new TinyLm(dropout: 0), new LoraConfig(4, 8, 0.5, ["fc"]));
        using (no_grad()) lora.Layers["fc"].lora_B.weight!.normal_(0, 0.5);   // a side path that matters
        var batch = new ModelBatch { InputIds = tensor(new long[] { 1, 5, 9, 13, 2, 7 }, [1, 6]) };
        lora.Module.train();
        Assert.False(lora.Forward(batch).Logits!.allclose(lora.Forward(batch).Logits!), "dropout 0.5 should differ between two training forwards");
        lora.Module.eval();
        Assert.True(lora.Forward(batch).Logits!.allclose(lora.Forward(batch).Logits!), "eval mode still applies the LoRA dropout");
    }
}
