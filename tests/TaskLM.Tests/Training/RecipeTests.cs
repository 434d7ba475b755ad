// Recipe loading: strict keys with suggestions, type errors naming key and type, dotted overrides, resolved YAML.
using TaskLM.Recipes;
using TaskLM.Training;

namespace TaskLM.Tests.Training;

public class RecipeTests
{
    const string Yaml = """
        task: classification
        model:
          init: models/bert-mini
        data:
          train: data/spam/train.jsonl
          max_length: 128
        strategy:
          method: lora
          lora: {r: 4, target_modules: [query, value]}
        training:
          lr: 3.0e-5
          epochs: 2
          early_stopping: {metric: macro_f1, patience: 2}
        output_dir: runs/spam
        """;

    [Fact]
    public void Reads_sections_and_fills_defaults()
    {
        var r = RecipeLoader.Parse(Yaml, "spam.yaml");
        Assert.Equal("classification", r.Task);
        Assert.Equal(128, r.Data.MaxLength);
        Assert.Equal(4, r.Strategy.Lora.R);
        Assert.Equal(16, r.Strategy.Lora.Alpha);              // default kept beside the given key
        Assert.Equal(["query", "value"], r.Strategy.Lora.TargetModules!);
        Assert.Equal(3e-5, r.Training.Lr);
        Assert.Equal("macro_f1", r.Training.EarlyStopping!.Metric);
        Assert.Equal(16, r.Training.BatchSize);
    }

    [Fact]
    public void Overrides_apply_to_a_recipe_built_in_code_with_the_same_checks()
    {
        var r = RecipeLoader.Apply(new Recipe { Task = "classification", Model = { Init = "models/m" }, Data = { Train = "d.jsonl" } },
            ["data.text_column=body", "training.eval_batch_size=8"], "models/m (defaults)");
        Assert.Equal("body", r.Data.TextColumn);
        Assert.Equal("d.jsonl", r.Data.Train);                  // the section merges: the other keys stay
        Assert.Equal("label", r.Data.LabelColumn);
        Assert.Equal("models/m", r.Model.Init);
        Assert.Equal(8, r.Training.EvalBatchSize);
        var e = Assert.Throws<RecipeException>(() => RecipeLoader.Apply(new Recipe { Data = { Train = "d.jsonl" } }, ["data.text_colum=body"], "models/m (defaults)"));
        Assert.Contains("unknown key 'data.text_colum'; did you mean 'data.text_column'?", e.Message);
        Assert.Contains("data.train is required", Assert.Throws<RecipeException>(() => RecipeLoader.Apply(new Recipe(), [])).Message);
    }

    [Fact]
    public void Unknown_key_names_file_line_and_the_closest_valid_key()
    {
        var e = Assert.Throws<RecipeException>(() => RecipeLoader.Parse(Yaml.Replace("  lr: 3.0e-5", "  lrr: 3.0e-5"), "spam.yaml"));
        Assert.Contains("spam.yaml:11", e.Message);
        Assert.Contains("unknown key 'training.lrr'", e.Message);
        Assert.Contains("did you mean 'training.lr'", e.Message);
        var e2 = Assert.Throws<RecipeException>(() => RecipeLoader.Parse(Yaml, "spam.yaml", ["training.warmpu=0.1"]));
        Assert.Contains("override 'training.warmpu=0.1'", e2.Message);
        Assert.Contains("did you mean 'training.warmup'", e2.Message);
    }

    [Fact]
    public void Wrong_type_names_key_and_expected_type()
    {
        var e = Assert.Throws<RecipeException>(() => RecipeLoader.Parse(Yaml.Replace("epochs: 2", "epochs: two"), "spam.yaml"));
        Assert.Contains("spam.yaml:12", e.Message);
        Assert.Contains("training.epochs expects an integer, got 'two'", e.Message);
        var e2 = Assert.Throws<RecipeException>(() => RecipeLoader.Parse(Yaml, "spam.yaml", ["data.shuffle=maybe"]));
        Assert.Contains("data.shuffle expects true or false", e2.Message);
        var e3 = Assert.Throws<RecipeException>(() => RecipeLoader.Parse(Yaml, "spam.yaml", ["training.scheduler=cosin"]));
        Assert.Contains("did you mean 'cosine'", e3.Message);
    }

    [Fact]
    public void Overrides_use_dotted_paths_and_yaml_values()
    {
        var r = RecipeLoader.Parse(Yaml, "spam.yaml", ["training.lr=3e-4", "strategy.lora.target_modules=[c_attn]", "data.shuffle=false", "training.betas=[0.9, 0.95]"]);
        Assert.Equal(3e-4, r.Training.Lr);
        Assert.Equal(["c_attn"], r.Strategy.Lora.TargetModules!);
        Assert.False(r.Data.Shuffle);
        Assert.Equal([0.9, 0.95], r.Training.Betas);
    }

    [Fact]
    public void Resolved_yaml_holds_every_setting_and_reads_back_the_same()
    {
        var r = RecipeLoader.Parse(Yaml, "spam.yaml");
        string resolved = RecipeLoader.ToYaml(r);
        Assert.Contains("max_grad_norm: 1.0", resolved);
        Assert.Contains("weight_decay: 0.0", resolved);
        var again = RecipeLoader.Parse(resolved, "recipe.resolved.yaml");
        Assert.Equal(resolved, RecipeLoader.ToYaml(again));
    }
}
