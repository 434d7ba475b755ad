// Freezing and gradual unfreezing on a tiny GPT-2 classifier: exactly the named parts stop (or start) training.
using TaskLM.Models;
using TaskLM.Recipes;
using TaskLM.Tasks;
using TaskLM.Training;
using static TorchSharp.torch;

namespace TaskLM.Tests.Training;

public class StrategyTests
{
    static ITaskModel Tiny() => ModelFactory.FromPreset("gpt2-tiny", "classification", new Dictionary<string, object>
    {
        ["vocab_size"] = 64, ["n_layer"] = 2, ["n_embd"] = 16, ["n_head"] = 2, ["n_positions"] = 16, ["num_labels"] = 2, ["pad_token_id"] = 0,
    });

    static List<Example> Data() => Enumerable.Range(0, 16).Select(i => new Example { InputIds = [1 + i % 7, 2 + i % 5, 3, 4 + i % 3], Label = i % 2 }).ToList();

    static Trainer MakeTrainer(ITaskModel m, int steps, bool allParams = false)
    {
        var (d, nd) = AdamW.HfGroups(m.Module, 0.01, allParams ? (_, _) => true : null);
        var data = Data();
        return new Trainer(m, data, new Collator("classification", 0, CPU), new BatchPlan(data.Count, 4, 1, false, 1),
            new AdamW([d, nd]), new LrSchedule("constant", 1e-2, 0, steps), new TrainerOptions { TotalSteps = steps });
    }

    static Dictionary<string, float[]> Snapshot(ITaskModel m) =>
        m.Module.named_parameters().ToDictionary(p => p.name, p => p.parameter.detach().cpu().data<float>().ToArray());

    [Fact]
    public void Freezing_embeddings_and_bottom_layers_leaves_them_untouched_by_training()
    {
        var m = Tiny();
        Strategies.ApplyFreeze(m, new FreezeSection { Embeddings = true, Layers = 1 });
        var before = Snapshot(m);
        MakeTrainer(m, 3).Train();
        var after = Snapshot(m);
        foreach (var (name, w) in before)
        {
            bool frozen = name.StartsWith("transformer.wte.") || name.StartsWith("transformer.wpe.") || name.StartsWith("transformer.h.0.");
            Assert.True(frozen == w.SequenceEqual(after[name]), $"{name}: frozen={frozen} but {(frozen ? "changed" : "did not change")}");
        }
    }

    [Fact]
    public void All_but_head_trains_only_the_score_layer()
    {
        var m = Tiny();
        Strategies.ApplyFreeze(m, new FreezeSection { AllButHead = true });
        Assert.Equal(["score.weight"], m.Module.named_parameters().Where(p => p.parameter.requires_grad).Select(p => p.name));
    }

    [Fact]
    public void Gradual_unfreezing_opens_one_layer_from_the_top_per_epoch()
    {
        var m = Tiny();
        var g = new Strategies.GradualUnfreezing(m, every: 1);
        string[] Trainable() => m.Module.named_parameters().Where(p => p.parameter.requires_grad).Select(p => p.name).ToArray();
        Assert.Equal(["score.weight"], Trainable());
        var t = MakeTrainer(m, 4, allParams: true);   // 4 batches = 1 epoch per 4 steps
        t.Callbacks.Add(g);
        t.Train();
        Assert.Equal(1, g.Unfrozen);
        Assert.Contains("transformer.h.1.attn.c_attn.weight", Trainable());
        Assert.DoesNotContain("transformer.h.0.attn.c_attn.weight", Trainable());
        Assert.DoesNotContain("transformer.wte.weight", Trainable());
    }
}
