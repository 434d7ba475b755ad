// training.group_by_length: batches of similar length, every example once per epoch, the order a function of (seed, epoch).

using TaskLM.Recipes;
using TaskLM.Tasks;

namespace TaskLM.Tests.Training;

public class GroupByLengthTests
{
    static List<int[]> Epoch(BatchPlan plan)
    {
        var batches = new List<int[]>();
        int start = plan.Position.Epoch;
        while (plan.Position.Epoch == start) batches.AddRange(plan.NextStep(out _, out _));
        return batches;
    }

    // Padded tokens of a batch = batch size × its longest example (the collator pads to the batch's longest).
    static long Padded(IEnumerable<int[]> batches, int[] len) => batches.Sum(b => (long)b.Length * b.Max(i => len[i]));

    [Fact]
    public void Grouped_batches_cover_every_example_once_pad_far_less_and_start_with_the_longest()
    {
        // 2,000 examples of 5..200 tokens (a short-text task with a long tail), batch 8: mega-batches of 400.
        var rng = new Random(7);
        int[] len = Enumerable.Range(0, 2000).Select(_ => rng.NextDouble() < 0.9 ? rng.Next(5, 40) : rng.Next(40, 201)).ToArray();
        var random = Epoch(new BatchPlan(len.Length, 8, 1, shuffle: true, seed: 1));
        var grouped = Epoch(new BatchPlan(len.Length, 8, 1, shuffle: true, seed: 1, lengths: len));

        Assert.Equal(Enumerable.Range(0, len.Length), grouped.SelectMany(b => b).Order());
        Assert.Equal(250, grouped.Count);
        long real = len.Sum(x => (long)x);
        // Random batches of 8 usually hold one long-tail example and pad to it; sorted mega-batches barely pad.
        Assert.True(Padded(grouped, len) < 1.1 * real, $"grouped pads to {Padded(grouped, len)} for {real} real tokens");
        Assert.True(Padded(random, len) > 2 * real, $"random pads to {Padded(random, len)} for {real} real tokens");
        Assert.Equal(len.Max(), len[grouped[0][0]]);
        // Still random: another seed or epoch gives another order of batches.
        var other = Epoch(new BatchPlan(len.Length, 8, 1, shuffle: true, seed: 2, lengths: len));
        Assert.NotEqual(grouped.Skip(1).Select(b => b[0]), other.Skip(1).Select(b => b[0]));
    }

    [Fact]
    public void A_position_restores_the_same_grouped_order_for_resume()
    {
        int[] len = Enumerable.Range(0, 300).Select(i => 5 + (i * 37) % 90).ToArray();
        var a = new BatchPlan(len.Length, 4, 2, shuffle: true, seed: 5, lengths: len);
        for (int i = 0; i < 50; i++) a.NextStep(out _, out _);   // into epoch 1
        var pos = a.Position;
        var expected = a.NextStep(out _, out _);
        var b = new BatchPlan(len.Length, 4, 2, shuffle: true, seed: 5, lengths: len) { Position = pos };
        Assert.Equal(expected, b.NextStep(out _, out _));
    }

    [Fact]
    public void The_plan_counts_the_padded_tokens_training_will_compute_and_leaves_the_position()
    {
        // 3.5 epochs of a 100-example set, batch 8, two micro-batches a step: the estimate `train` prints before its
        // first step must count the batches NextStep will hand the trainer, across epoch ends, grouped or not.
        int[] len = Enumerable.Range(0, 100).Select(i => 3 + (i * 53) % 70).ToArray();
        foreach (var lengths in new[] { null, len })
        {
            var plan = new BatchPlan(len.Length, 8, 2, shuffle: true, seed: 3, lengths: lengths);
            int steps = 7 * 3 + 3;   // 7 steps an epoch (13 batches, the last step one batch)
            long planned = plan.PaddedTokens(steps, len);
            Assert.Equal(new LoaderPosition(0, 0), plan.Position);
            var seen = new List<int[]>();
            for (int s = 0; s < steps; s++) seen.AddRange(plan.NextStep(out _, out _));
            Assert.Equal(Padded(seen, len), planned);
        }
    }

    [Fact]
    public void The_recipe_key_is_group_by_length_under_training()
    {
        var r = RecipeLoader.Parse("task: classification\nmodel: {init: bert-tiny}\ndata: {train: t.jsonl}\ntraining: {group_by_length: true}\n");
        Assert.True(r.Training.GroupByLength);
        Assert.False(RecipeLoader.Parse("task: classification\nmodel: {init: bert-tiny}\ndata: {train: t.jsonl}\n").Training.GroupByLength);
    }
}
