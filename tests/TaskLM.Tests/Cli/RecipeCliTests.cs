// tasklm recipes / recipe validate|copy|show, and every shipped recipe prepared as its header says and run tiny.
using System.Text.Json.Nodes;
using TaskLM.Models;
using TaskLM.Recipes;

namespace TaskLM.Tests.Cli;

[Collection(RecipeCollection.Name)]
public class RecipeCliTests
{
    public static TheoryData<string> ShippedRecipes()
    {
        var data = new TheoryData<string>();
        foreach (var n in Directory.EnumerateFiles(RecipeWorkspace.RecipesDir, "*.yaml").Select(f => Path.GetFileNameWithoutExtension(f)!).Order(StringComparer.Ordinal)) data.Add(n);
        return data;
    }

    [Fact]
    public void Recipes_lists_every_shipped_recipe_with_task_model_data_purpose()
    {
        var r = CliRunner.Run(["recipes", "--json"], workingDirectory: RecipeWorkspace.Repo);
        Assert.True(r.ExitCode == 0, r.Stderr);
        var list = JsonNode.Parse(r.Stdout)!["recipes"]!.AsArray();
        var names = list.Select(x => x!["name"]!.GetValue<string>()).ToList();
        var files = Directory.EnumerateFiles(RecipeWorkspace.RecipesDir, "*.yaml").Select(f => Path.GetFileNameWithoutExtension(f)!).Order(StringComparer.Ordinal).ToList();
        Assert.Equal(files, names);
        foreach (var must in new[] { "spam", "spam-lora", "brown-pos", "brown-genre", "sotu-causal-lm" }) Assert.Contains(must, names);
        foreach (var x in list)
        {
            Assert.Null(x!["error"]);
            Assert.False(string.IsNullOrWhiteSpace(x["task"]?.GetValue<string>()));
            Assert.False(string.IsNullOrWhiteSpace(x["model"]?.GetValue<string>()));
            Assert.False(string.IsNullOrWhiteSpace(x["purpose"]?.GetValue<string>()));
        }
        var genre = list.First(x => x!["name"]!.GetValue<string>() == "brown-genre")!;
        Assert.Equal("classification", genre["task"]!.GetValue<string>());
        Assert.Equal(["tasklm data brown-genre --out runs/brown-genre/data"], genre["prepare"]!.AsArray().Select(p => p!.GetValue<string>()));
        // The table form, as people read it.
        r = CliRunner.Run(["recipes"], workingDirectory: RecipeWorkspace.Repo);
        Assert.Equal(0, r.ExitCode);
        Assert.Contains("brown-genre", r.Stdout);
    }

    [Fact]
    public void Validate_names_the_file_line_and_closest_key_and_exits_non_zero()
    {
        string dir = Directory.CreateTempSubdirectory("tasklm-recipe-").FullName;
        string path = Path.Combine(dir, "typo.yaml");
        File.WriteAllText(path, "task: classification\nmodel: {init: gpt2-tiny}\ndata: {train: t.jsonl}\ntraining:\n  epochs: 1\n  lrr: 1.0e-3\n");
        var r = CliRunner.Run("recipe", "validate", path);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains($"{path}:6: unknown key 'training.lrr'; did you mean 'training.lr'?", r.Stderr);
        // An override is checked by the same rules; a good recipe passes.
        r = CliRunner.Run("recipe", "validate", "spam", "training.batch_sise=8");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("did you mean 'training.batch_size'", r.Stderr);
        r = CliRunner.Run("recipe", "validate", "spam", "training.batch_size=8");
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.StartsWith("ok:", r.Stdout);
        r = CliRunner.Run("recipe", "validate", "spma");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("did you mean 'spam'", r.Stderr);
    }

    [Fact]
    public void Copy_writes_the_recipe_and_never_overwrites_without_force()
    {
        string dir = Directory.CreateTempSubdirectory("tasklm-recipe-").FullName;
        var r = CliRunner.Run(["recipe", "copy", "brown-genre", dir + "/"]);
        Assert.True(r.ExitCode == 0, r.Stderr);
        string copy = Path.Combine(dir, "brown-genre.yaml");
        Assert.Equal(File.ReadAllText(Path.Combine(RecipeWorkspace.RecipesDir, "brown-genre.yaml")), File.ReadAllText(copy));
        File.WriteAllText(copy, "# edited\n");
        r = CliRunner.Run(["recipe", "copy", "brown-genre", copy]);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("already exists", r.Stderr);
        Assert.Equal("# edited\n", File.ReadAllText(copy));   // nothing lost
        r = CliRunner.Run(["recipe", "copy", "brown-genre", copy, "--force"]);
        Assert.Equal(0, r.ExitCode);
        Assert.StartsWith("# Genre classification", File.ReadAllText(copy));
        // The copy runs from anywhere: `tasklm recipe validate` by path.
        Assert.Equal(0, CliRunner.Run("recipe", "validate", copy).ExitCode);
    }

    [Fact]
    public void Show_gives_every_value_and_its_source()
    {
        var r = CliRunner.Run("recipe", "show", "spam", "training.lr=3e-4", "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var v = JsonNode.Parse(r.Stdout)!["values"]!.AsObject();
        var lines = File.ReadAllLines(Path.Combine(RecipeWorkspace.RecipesDir, "spam.yaml"));
        int epochsLine = Array.FindIndex(lines, l => l.StartsWith("  epochs:")) + 1;
        Assert.Equal("0.0003", v["training.lr"]!["value"]!.GetValue<string>());
        Assert.Equal("override", v["training.lr"]!["source"]!.GetValue<string>());
        Assert.Equal($"recipe:{epochsLine}", v["training.epochs"]!["source"]!.GetValue<string>());
        Assert.Equal("default", v["training.eps"]!["source"]!.GetValue<string>());
        Assert.Equal("default", v["training.early_stopping.min_delta"]!["source"]!.GetValue<string>());
        Assert.Equal("f1_spam", v["training.early_stopping.metric"]!["value"]!.GetValue<string>());
        // Every property of the recipe types appears (defaults filled in).
        Assert.Contains("strategy.lora.r", v.Select(kv => kv.Key));
        Assert.Contains("data.mlm_probability", v.Select(kv => kv.Key));
        r = CliRunner.Run("recipe", "show", "spam");
        Assert.Contains("# default", r.Stdout);
        Assert.Contains($"training.epochs: 2", r.Stdout);
    }

    [Theory]
    [MemberData(nameof(ShippedRecipes))]
    public void Every_shipped_recipe_validates_prepares_and_runs_tiny(string name)
    {
        string recipe = Path.Combine(RecipeWorkspace.RecipesDir, name + ".yaml");
        var v = CliRunner.Run(["recipe", "validate", recipe], workingDirectory: RecipeWorkspace.Repo);
        Assert.True(v.ExitCode == 0, v.Stderr);
        RecipeWorkspace.Prepare(recipe);
        string run = Path.Combine(RecipeWorkspace.Dir, "runs", "tiny-" + name);
        var o = RecipeWorkspace.Tiny(recipe, run);
        var parsed = RecipeLoader.Load(recipe);
        // A recipe that adapts a base model folder not shipped yet (models/ comes with the pre-training recipes) runs on
        // a tiny base of the same family, made here from the spam recipe.
        if (parsed.Model.Init.Contains('/') && !Directory.Exists(Path.Combine(RecipeWorkspace.Dir, parsed.Model.Init)))
            o.Add($"model.init={TinyGpt2Base()}");
        // A features recipe's NuGet encoder (minilm-l6: 6 x 384) encodes every row of the split once, minutes here: the
        // tiny run uses a one-layer BERT preset with the fixture WordPiece vocabulary (minilm-l6 itself: ModelImportCliTests).
        if (parsed.Strategy.Method == "features" && !ModelPresets.All.Any(p => p.Name == parsed.Model.Init))
            o.AddRange(["model.init=bert-tiny", $"tokenizer={Path.Combine(RecipeWorkspace.Repo, "tests", "fixtures", "hf", "tok-wordpiece")}",
                "model.config.num_hidden_layers=1", "model.config.hidden_size=32", "model.config.num_attention_heads=2", "model.config.intermediate_size=64"]);
        var r = CliRunner.Run(["train", recipe, .. o, "--threads", "2", "--json"], timeoutSeconds: 600, workingDirectory: RecipeWorkspace.Dir);
        Assert.True(r.ExitCode == 0, $"{name}: {r.Stderr}");
        var result = JsonNode.Parse(r.Stdout)!;
        if (parsed.Strategy.Method == "features")
        {
            // No optimizer steps: one fit and one validation line per strategy.features.c; best/ classifies from the mean.
            Assert.Equal(parsed.Strategy.Features.C.Count, result["steps"]!.GetValue<int>());
            var fits = File.ReadAllLines(Path.Combine(run, "metrics.jsonl")).Select(l => JsonNode.Parse(l)!).ToList();
            Assert.Equal(parsed.Strategy.Features.C, fits.Select(l => l["eval"]!["c"]!.GetValue<double>()));
            Assert.Contains("\"classifier_pooling\": \"mean\"", File.ReadAllText(Path.Combine(run, "best", "config.json")));
            return;
        }
        Assert.Equal(3, result["steps"]!.GetValue<int>());
        var steps = File.ReadAllLines(Path.Combine(run, "metrics.jsonl")).Select(l => JsonNode.Parse(l)!).Where(l => l["loss"] != null).ToList();
        Assert.Equal(3, steps.Count);
        Assert.All(steps, s => Assert.True(double.IsFinite(s["loss"]!.GetValue<double>())));
        Assert.True(File.Exists(Path.Combine(run, "recipe.resolved.yaml")));
        if (parsed.Data.Validation != null)
        {
            Assert.NotNull(result["eval"]);
            Assert.True(File.Exists(Path.Combine(run, "best", "config.json")) || File.Exists(Path.Combine(run, "best", "adapter_config.json")));
        }
    }

    static readonly Lazy<string> _tinyBase = new(() =>
    {
        string recipe = Path.Combine(RecipeWorkspace.RecipesDir, "spam.yaml");
        RecipeWorkspace.Prepare(recipe);
        string run = Path.Combine(RecipeWorkspace.Dir, "runs", "tiny-gpt2-base");
        var r = CliRunner.Run(["train", recipe, .. RecipeWorkspace.Tiny(recipe, run), "--threads", "2"], timeoutSeconds: 600, workingDirectory: RecipeWorkspace.Dir);
        Assert.True(r.ExitCode == 0, r.Stderr);
        return Path.Combine(run, "best");
    });

    static string TinyGpt2Base() => _tinyBase.Value;
}
