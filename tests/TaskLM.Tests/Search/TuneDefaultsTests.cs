// `tasklm tune` on a recipe with neither data.validation nor a search: section: train's held-out split, once, and the default space.
using TaskLM.Recipes;
using TaskLM.Tests.Faults;
using TaskLM.Training.Search;

namespace TaskLM.Tests.Search;

public class TuneDefaultsTests
{
    /// <summary>A 2-class CSV and a tiny GPT-2 classifier recipe on it: no validation file, no search: section.</summary>
    static string Recipe(string dir, string training = "max_steps: 2, ")
    {
        var rows = new List<string> { "text,label" };
        for (int i = 0; i < 40; i++) rows.Add(i % 2 == 0 ? $"win a free prize now {i},spam" : $"meeting moved to monday {i},ham");
        File.WriteAllLines(Path.Combine(dir, "cls.csv"), rows);
        string recipe = Path.Combine(dir, "cls.yaml");
        File.WriteAllText(recipe, $$"""
            task: classification
            model:
              init: gpt2-tiny
              config: {n_layer: 1, n_head: 2, n_embd: 16, n_positions: 32, pad_token_id: 50256}
            tokenizer: gpt2
            data: {train: cls.csv, max_length: 16}
            training: {{{training}}batch_size: 8, lr: 1.0e-3, eval_every: 2, save_every: 0, tensorboard: false}
            evaluation: {baseline: false}
            output_dir: run
            """);
        return recipe;
    }

    [Fact]
    public void The_default_space_is_the_documented_one_and_checked_against_the_recipe()
    {
        string dir = TrainingFaultTests.NewDir("tune-space");
        try
        {
            string steps = Recipe(dir);
            Assert.False(SearchSpace.HasSection(steps));
            var space = SearchSpace.Default(steps);
            Assert.Equal(["training.lr", "training.batch_size", "training.warmup", "training.weight_decay"], space.Params.Select(p => p.Key));
            var lr = space.Params[0];
            Assert.Equal((ParamKind.LogUniform, 1e-5, 1e-3), (lr.Kind, lr.Low, lr.High));
            // A recipe that counts epochs searches them too (1 to 4).
            string epochs = Recipe(dir, training: "epochs: 2, ");
            var withEpochs = SearchSpace.Default(epochs);
            var e = Assert.Single(withEpochs.Params, p => p.Key == "training.epochs");
            Assert.Equal((ParamKind.Int, 1.0, 4.0), (e.Kind, e.Low, e.High));
            // Every value of the space is a valid recipe.
            foreach (var p in withEpochs.Params)
                foreach (var v in p.GridValues() ?? [p.Low, p.High])
                    RecipeLoader.Load(epochs, [p.Override(v)]);
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void Tune_without_validation_or_search_holds_out_trains_split_once_and_prints_the_default_space_first()
    {
        string dir = TrainingFaultTests.NewDir("tune-defaults");
        try
        {
            Recipe(dir);
            var r = CliRunner.Run(["tune", "cls.yaml", "--trials", "2", "--sampler", "random", "--pruner", "none", "--threads", "1"],
                timeoutSeconds: 600, workingDirectory: dir);
            Assert.True(r.ExitCode == 0, r.Stderr + r.Stdout);
            string o = r.Stdout;
            int spaceAt = o.IndexOf("the recipe has no search: section, so the default space is searched", StringComparison.Ordinal);
            Assert.True(spaceAt >= 0, o);
            Assert.Contains("training.lr: loguniform [1E-05, 0.001]", o);
            Assert.Contains("training.batch_size: choice of 8, 16, 32", o);
            Assert.True(spaceAt < o.IndexOf("trial   0", StringComparison.Ordinal), "the space is printed before the first trial");
            // train's split (10%, stratified, seeded) is made once, in the study folder, and every trial trains and scores on it.
            Assert.Contains("tune holds out 10% of the training file", o);
            Assert.Matches(@"4 of 40 training rows \(10 ?%, stratified by label, seed 42\) are held out as validation", o);
            string study = Path.Combine(dir, "run-tune");
            string train = Path.Combine(study, "data", "train.jsonl"), val = Path.Combine(study, "data", "validation.jsonl");
            Assert.Equal(36, File.ReadAllLines(train).Length);
            Assert.Equal(4, File.ReadAllLines(val).Length);
            foreach (var trial in Directory.GetDirectories(Path.Combine(study, "trials")))
            {
                var resolved = RecipeLoader.Load(Path.Combine(trial, "recipe.resolved.yaml"));
                Assert.Equal(Path.GetFullPath(val), resolved.Data.Validation);
                Assert.Equal(Path.GetFullPath(train), resolved.Data.Train);
                Assert.False(Directory.Exists(Path.Combine(trial, "data")), "a trial splits nothing of its own");
            }
            Assert.Equal(2, Directory.GetDirectories(Path.Combine(study, "trials")).Length);
        }
        finally { Directory.Delete(dir, true); }
    }
}
