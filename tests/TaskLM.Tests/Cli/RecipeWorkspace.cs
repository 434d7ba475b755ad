// A scratch folder laid out like the repository (data/ and models/ linked read-only) in which the shipped recipes'
// preparation commands and tiny runs execute, so the repository's own data/ gets no outputs.
using TaskLM.Data.Corpus;
using TaskLM.Models;
using TaskLM.Recipes;

namespace TaskLM.Tests.Cli;

/// <summary>Tests that run shipped recipes share this collection (and its prepared data), one at a time.</summary>
[CollectionDefinition(Name)]
public sealed class RecipeCollection
{
    public const string Name = "shipped recipes (shared prepared data)";
}

public static class RecipeWorkspace
{
    /// <summary>The repository root (the folder holding data/catalog.json).</summary>
    public static readonly string Repo = Directory.GetParent(CorpusCatalog.Load().DataDir)!.FullName;
    public static string RecipesDir => Path.Combine(Repo, "recipes");

    static readonly Lazy<string> _dir = new(() =>
    {
        string dir = Directory.CreateTempSubdirectory("tasklm-recipes-").FullName;
        string data = Path.Combine(Repo, "data");
        foreach (var entry in Directory.EnumerateFileSystemEntries(data))
        {
            string target = Path.Combine(dir, "data", Path.GetFileName(entry));
            if (File.Exists(entry)) { Directory.CreateDirectory(Path.GetDirectoryName(target)!); File.CreateSymbolicLink(target, entry); continue; }
            Directory.CreateDirectory(target);
            foreach (var f in Directory.EnumerateFiles(entry)) File.CreateSymbolicLink(Path.Combine(target, Path.GetFileName(f)), f);
        }
        if (Directory.Exists(Path.Combine(Repo, "models"))) Directory.CreateSymbolicLink(Path.Combine(dir, "models"), Path.Combine(Repo, "models"));
        return dir;
    });

    /// <summary>The scratch folder (made on first use).</summary>
    public static string Dir => _dir.Value;

    static readonly HashSet<string> Done = [];
    static readonly object Gate = new();

    /// <summary>Runs each preparation command of the recipe's header (<c>#   tasklm ...</c>) once, in the scratch folder.</summary>
    public static void Prepare(string recipePath)
    {
        foreach (var cmd in RecipeCatalog.Read(recipePath).Prepare)
            lock (Gate)
            {
                if (Done.Contains(cmd)) continue;
                var r = CliRunner.Run(cmd.Split(' ', StringSplitOptions.RemoveEmptyEntries).Skip(1), timeoutSeconds: 600, workingDirectory: Dir);
                Assert.True(r.ExitCode == 0, $"{Path.GetFileName(recipePath)}: '{cmd}' failed: {r.Stderr}");
                Done.Add(cmd);
            }
    }

    /// <summary>Overrides that shrink any recipe to a few steps of a one-layer model on a few examples.</summary>
    public static List<string> Tiny(string recipePath, string outputDir, int steps = 3)
    {
        var recipe = RecipeLoader.Load(recipePath);
        var o = new List<string>
        {
            $"training.max_steps={steps}", $"training.eval_every={steps}", "training.save_every=0", "training.batch_size=4", "training.eval_batch_size=8",
            "data.max_length=32", "training.tensorboard=false", $"output_dir={outputDir}",
        };
        // The first N rows of a split made by `tasklm data split` are in corpus order (the spam corpus lists all ham
        // first), so a classification recipe keeps all its rows: N of them could hold one label only.
        if (recipe.Task != "classification") o.AddRange(["data.max_train_examples=64", "data.max_eval_examples=16"]);
        bool folder = Directory.Exists(Path.Combine(Dir, recipe.Model.Init)) || Directory.Exists(recipe.Model.Init);
        if (!folder && ModelPresets.All.Any(p => p.Name == recipe.Model.Init))
            o.AddRange(ModelPresets.Get(recipe.Model.Init).ModelType == "gpt2"
                ? ["model.config.n_layer=1", "model.config.n_embd=32", "model.config.n_head=2"]
                : ["model.config.num_hidden_layers=1", "model.config.hidden_size=32", "model.config.num_attention_heads=2", "model.config.intermediate_size=64"]);
        return o;
    }
}
