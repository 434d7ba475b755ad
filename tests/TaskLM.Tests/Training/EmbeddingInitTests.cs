// model.embedding_init: ppmi-svd — word embeddings from co-occurrence statistics before pre-training from random.
using TaskLM.Models;
using TaskLM.Recipes;
using TaskLM.Training;
using static TorchSharp.torch;

namespace TaskLM.Tests.Training;

[Collection(SerialCollection.Name)]
public class EmbeddingInitTests
{
    // A corpus of marker + word pairs in random order: DET noun, PRON verb, VERY adjective, then [SEP]. Words of one
    // class share their marker as neighbour, so their distributional rows must be closer to each other than to
    // another class's (the rest of each window is the same random mix for every word).
    const int Sep = 2, Det = 5, Pron = 6, Very = 7;
    static readonly int[] Nouns = Enumerable.Range(10, 8).ToArray(), Verbs = Enumerable.Range(20, 8).ToArray(), Adjs = Enumerable.Range(30, 8).ToArray();

    static List<int[]> Corpus()
    {
        var rng = new Random(3);
        var docs = new List<int[]>();
        var classes = new[] { (Det, Nouns), (Pron, Verbs), (Very, Adjs) };
        for (int d = 0; d < 400; d++)
        {
            var s = new List<int>();
            for (int k = 0; k < 12; k++)
            {
                var (marker, words) = classes[rng.Next(classes.Length)];
                s.AddRange([marker, words[rng.Next(words.Length)]]);
            }
            s.Add(Sep);
            docs.Add(s.ToArray());
        }
        return docs;
    }

    static double MeanCosine(Tensor e, int[] a, int[] b)
    {
        var n = e / e.norm(1, keepdim: true);
        double sum = 0; int count = 0;
        foreach (int i in a) foreach (int j in b) if (i != j) { sum += n[i].dot(n[j]).item<float>(); count++; }
        return sum / count;
    }

    // Seeded, so two calls give the same random rows.
    static ITaskModel TinyBert()
    {
        manual_seed(11);
        return ModelFactory.FromPreset("bert-tiny", "masked-lm", new Dictionary<string, object>
        {
            ["vocab_size"] = 64, ["hidden_size"] = 16, ["num_hidden_layers"] = 1, ["num_attention_heads"] = 2,
            ["intermediate_size"] = 32, ["max_position_embeddings"] = 64,
        });
    }

    [Fact]
    public void Ppmi_svd_rows_group_words_by_their_contexts_and_leave_unseen_and_special_rows_alone()
    {
        var model = TinyBert();
        var weight = model.Module.named_parameters().First(p => p.name == "bert.embeddings.word_embeddings.weight").parameter;
        var before = weight.detach().clone();

        string said = EmbeddingInit.Apply(model, Corpus(), new HashSet<int> { 0, 1, Sep, 3, 4 }, seed: 1);
        Assert.Contains("rows for 27 of 64 tokens", said); // 3 markers + 3 classes x 8

        var after = weight.detach();
        // Random init: rows of one class are no closer than rows of two classes.
        Assert.InRange(MeanCosine(before, Nouns, Nouns) - MeanCosine(before, Nouns, Verbs), -0.2, 0.2);
        foreach (var (cls, other) in new[] { (Nouns, Verbs), (Verbs, Adjs), (Adjs, Nouns) })
        {
            double within = MeanCosine(after, cls, cls), across = MeanCosine(after, cls, other);
            Assert.True(within > across + 0.2, $"within-class cosine {within:F3} vs across {across:F3}");
        }
        // Unseen tokens and the special ids (never counted) keep their random rows; written rows have the documented scale.
        foreach (int id in new[] { 0, Sep, 40, 63 }) Assert.True(after[id].eq(before[id]).all().item<bool>(), $"row {id} changed");
        var written = after.index_select(0, tensor(Nouns.Concat(Verbs).Concat(Adjs).Append(Det).Append(Pron).Select(i => (long)i).ToArray()));
        Assert.True(written.isfinite().all().item<bool>());
        Assert.InRange(written.pow(2).mean().sqrt().item<float>(), EmbeddingInit.Scale * 0.5, EmbeddingInit.Scale * 2);

        // Seeded: the same corpus gives the same rows.
        var again = TinyBert();
        EmbeddingInit.Apply(again, Corpus(), new HashSet<int> { 0, 1, Sep, 3, 4 }, seed: 1);
        Assert.True(again.Module.named_parameters().First(p => p.name == "bert.embeddings.word_embeddings.weight").parameter.detach().allclose(after, rtol: 0, atol: 0));
    }

    [Fact]
    public void An_unknown_embedding_init_is_refused_naming_the_key()
    {
        var e = Assert.Throws<RecipeException>(() => RecipeLoader.Apply(new Recipe { Data = { Train = "d.jsonl" } }, ["model.embedding_init=glove"]));
        Assert.Contains("model.embedding_init", e.Message);
        Assert.Contains("ppmi-svd", e.Message);
    }
}
