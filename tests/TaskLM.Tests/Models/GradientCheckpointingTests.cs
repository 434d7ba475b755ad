// training.gradient_checkpointing: the same loss and gradients as libtorch's ordinary autograd (which keeps every
// activation), for GPT-2 and BERT; dropout draws the same masks in the recomputation.
using TaskLM.Models;
using TaskLM.Recipes;
using static TorchSharp.torch;

namespace TaskLM.Tests.Models;

// Alone: the dropout masks and the init come from torch's one global CPU generator, which parallel tests would draw from.
[Collection(SerialCollection.Name)]
public class GradientCheckpointingTests
{
    static Dictionary<string, object> Gpt2Shape(double dropout) => new()
    {
        ["vocab_size"] = 64, ["n_layer"] = 2, ["n_head"] = 2, ["n_embd"] = 32, ["n_positions"] = 32,
        ["resid_pdrop"] = dropout, ["embd_pdrop"] = dropout, ["attn_pdrop"] = dropout,
    };

    static Dictionary<string, object> BertShape(double dropout) => new()
    {
        ["vocab_size"] = 64, ["hidden_size"] = 32, ["num_hidden_layers"] = 2, ["num_attention_heads"] = 2,
        ["intermediate_size"] = 64, ["max_position_embeddings"] = 32, ["num_labels"] = 3,
        ["hidden_dropout_prob"] = dropout, ["attention_probs_dropout_prob"] = dropout,
    };

    /// <summary>Loss and every parameter's gradient after one forward/backward in training mode.</summary>
    static (float loss, Dictionary<string, Tensor> grads) Step(ITaskModel model, ModelBatch batch, long seed)
    {
        model.Module.train();
        manual_seed(seed);   // the same dropout stream for both runs
        var loss = model.Forward(batch).Loss!;
        loss.backward();
        var grads = model.Module.named_parameters().Where(p => p.parameter.grad is not null)
            .ToDictionary(p => p.name, p => p.parameter.grad!.detach().clone());
        return (loss.item<float>(), grads);
    }

    static void SameNumbers(ITaskModel plain, ITaskModel checkpointed, ModelBatch batch)
    {
        var (l0, g0) = Step(plain, batch, seed: 11);
        Assert.Equal(1, ActivationCheckpoint.Enable(checkpointed.Module));   // one body (GPT2Model / BertEncoder)
        var (l1, g1) = Step(checkpointed, batch, seed: 11);
        Assert.Equal(l0, l1, 5);
        Assert.Equal(g0.Keys.Order(), g1.Keys.Order());
        Assert.True(g0.Count >= 10);
        foreach (var (name, g) in g0)
            Assert.True(allclose(g, g1[name], rtol: 1e-5, atol: 1e-5), $"{name}: max |diff| {(g - g1[name]).abs().max().item<float>():G3}");
    }

    static ModelBatch Batch(bool causal)
    {
        manual_seed(5);
        var ids = randint(4, 64, [3, 12]);
        var mask = ones(3, 12, ScalarType.Int64);
        mask[1, 8..] = 0;                              // a padded row: the explicit-mask path of attention
        var labels = causal ? ids.clone() : tensor(new long[] { 0, 2, 1 });
        if (causal) labels[1, 8..] = -100;
        return new ModelBatch { InputIds = ids, AttentionMask = mask, Labels = labels };
    }

    [Theory]
    [InlineData(0.0)]
    [InlineData(0.2)]   // dropout on: the recomputation must draw the same masks (the CPU generator is restored)
    public void Gpt2_checkpointed_loss_and_gradients_equal_plain_autograd(double dropout)
    {
        using var scope = NewDisposeScope();
        var plain = ModelFactory.FromPreset("gpt2-tiny", "causal-lm", Gpt2Shape(dropout));
        var ckpt = ModelFactory.FromPreset("gpt2-tiny", "causal-lm", Gpt2Shape(dropout));
        ckpt.Module.load_state_dict(plain.Module.state_dict());
        SameNumbers(plain, ckpt, Batch(causal: true));
    }

    [Theory]
    [InlineData(0.0)]
    [InlineData(0.2)]
    public void Bert_checkpointed_loss_and_gradients_equal_plain_autograd(double dropout)
    {
        using var scope = NewDisposeScope();
        var plain = ModelFactory.FromPreset("bert-tiny", "classification", BertShape(dropout));
        var ckpt = ModelFactory.FromPreset("bert-tiny", "classification", BertShape(dropout));
        ckpt.Module.load_state_dict(plain.Module.state_dict());
        SameNumbers(plain, ckpt, Batch(causal: false));
    }

    [Fact]
    public void The_rng_stream_after_a_checkpointed_step_is_unchanged_and_eval_gives_the_same_logits()
    {
        using var scope = NewDisposeScope();
        var plain = ModelFactory.FromPreset("gpt2-tiny", "causal-lm", Gpt2Shape(0.1));
        var ckpt = ModelFactory.FromPreset("gpt2-tiny", "causal-lm", Gpt2Shape(0.1));
        ckpt.Module.load_state_dict(plain.Module.state_dict());
        ActivationCheckpoint.Enable(ckpt.Module);
        var batch = Batch(causal: true);
        // After a checkpointed step the generator is where an ordinary step leaves it: later draws agree.
        Step(plain, batch, 3); var a = rand(4);
        Step(ckpt, batch, 3); var b = rand(4);
        Assert.True(allclose(a, b, 0, 0));
        Assert.True(allclose(EvalLogits(plain, batch), EvalLogits(ckpt, batch), 1e-6, 1e-6));
    }

    static Tensor EvalLogits(ITaskModel m, ModelBatch batch) { m.Module.eval(); using (no_grad()) return m.Forward(batch).Logits!; }

    [Fact]
    public void The_recipe_key_turns_it_on_and_a_run_trains()
    {
        var r = RecipeLoader.Parse("task: causal-lm\nmodel: {init: gpt2-tiny}\ndata: {train: t.jsonl}\ntraining: {gradient_checkpointing: true}\n");
        Assert.True(r.Training.GradientCheckpointing);
        Assert.False(RecipeLoader.Parse("task: causal-lm\ndata: {train: t.jsonl}\n").Training.GradientCheckpointing);
        var e = Assert.Throws<RecipeException>(() => RecipeLoader.Parse("data: {train: t.jsonl}\ntraining: {gradient_checkpointing: 2}\n"));
        Assert.Contains("training.gradient_checkpointing", e.Message);
    }
}
