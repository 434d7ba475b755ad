// strategy.lora.adapter continues an adapter with the settings it was trained with: r, alpha or target_modules set to
// other values beside it are refused by name (they used to be ignored without a word).
using TaskLM.Recipes;
using TaskLM.Tests.Models;
using TaskLM.Training;

namespace TaskLM.Tests.Training;

[Collection(SerialCollection.Name)]
public class LoraAdapterRecipeTests
{
    [Fact]
    public void Settings_the_adapter_does_not_have_are_refused_by_name()
    {
        string dir = TaskLM.Tests.Evaluation.Fixture.TempDir();
        try
        {
            string data = Path.Combine(dir, "train.jsonl");
            File.WriteAllLines(data, Enumerable.Range(0, 8).Select(i => $"{{\"input_ids\": [{1 + i % 5}, {2 + i % 7}, {3 + i % 4}, 4, 5]}}"));
            string Recipe(string lora) => $$"""
                task: causal-lm
                model: {init: '{{Gpt2Tests.Fixture("lora-base")}}'}
                data: {train: '{{data}}', max_length: 8}
                strategy: {method: lora, lora: {{lora}}}
                training: {max_steps: 1, batch_size: 4, eval_every: none, tensorboard: false}
                output_dir: '{{Path.Combine(dir, "run")}}'
                """;
            // The fixture adapter (PEFT 0.21): r 4, lora_alpha 8, target_modules [c_attn].
            string adapter = Gpt2Tests.Fixture("lora-adapter");
            var e = Assert.Throws<RecipeException>(() => TrainingRun.Run(
                RecipeLoader.Parse(Recipe($"{{adapter: '{adapter}', r: 16, alpha: 32, target_modules: [c_proj]}}"), "adapter recipe"),
                new RunOptions { TokenizerLoader = null }));
            Assert.Contains("strategy.lora.r is 16, the adapter's r is 4", e.Message);
            Assert.Contains("strategy.lora.alpha is 32, the adapter's lora_alpha is 8", e.Message);
            Assert.Contains("strategy.lora.target_modules is [c_proj], the adapter's is [c_attn]", e.Message);
            Assert.Contains(adapter, e.Message);
            // The adapter's own values, or keys left out, are no clash: the run continues the adapter.
            TrainingRun.Run(RecipeLoader.Parse(Recipe($"{{adapter: '{adapter}', r: 4, alpha: 8}}"), "adapter recipe"),
                new RunOptions { TokenizerLoader = null });
            Assert.True(Directory.Exists(Path.Combine(dir, "run")));
        }
        finally { Directory.Delete(dir, true); }
    }
}
