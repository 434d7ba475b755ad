// `tasklm recipes` and `tasklm recipe validate|copy|show`: the shipped recipes, listed, checked, copied and resolved.
using System.CommandLine;
using System.Text.Json.Nodes;
using Spectre.Console;
using TaskLM.Recipes;
using TaskLM.Training.Search;

namespace TaskLM.Cli.Commands;

public static class RecipeCommands
{
    /// <summary>The <c>recipes</c> verb and the <c>recipe</c> group.</summary>
    public static IEnumerable<Command> Create()
    {
        yield return List();
        var group = new Command("recipe", "Check, copy or resolve one recipe (a file, or a shipped recipe by name)");
        group.Subcommands.Add(Validate());
        group.Subcommands.Add(Copy());
        group.Subcommands.Add(Show());
        yield return group;
    }

    static Argument<string> RecipeArg() => new("recipe") { Description = "Recipe file, or the name of a shipped recipe (tasklm recipes)" };
    static Argument<string[]> OverridesArg() => new("overrides") { Description = "key=value overrides with dotted paths, e.g. training.lr=3e-4", Arity = ArgumentArity.ZeroOrMore };

    static Command List()
    {
        var json = Global.JsonOption();
        var cmd = new Command("recipes", "List the shipped recipes: task, model, data, purpose, measured figure");
        cmd.Options.Add(json);
        cmd.SetAction(p =>
        {
            var all = RecipeCatalog.List();
            if (p.GetValue(json))
            {
                var arr = new JsonArray(all.Select(r => (JsonNode?)new JsonObject
                {
                    ["name"] = r.Name, ["path"] = r.Path, ["task"] = r.Task, ["model"] = r.Model, ["data"] = r.Data, ["purpose"] = r.Purpose,
                    ["figure"] = r.Figure, ["prepare"] = new JsonArray(r.Prepare.Select(x => (JsonNode?)x).ToArray()), ["search"] = r.HasSearch, ["error"] = r.Error,
                }).ToArray());
                Console.WriteLine(new JsonObject { ["recipes"] = arr }.ToJsonString(Global.JsonOut));
                return 0;
            }
            // One block per recipe rather than a six-column table: readable at any width, nothing cut (a table was
            // hundreds of columns wide when redirected, and its cells wrapped word by word in a terminal).
            foreach (var r in all)
            {
                AnsiConsole.MarkupLine($"[bold]{Markup.Escape(r.Name)}[/]{(r.HasSearch ? " [grey](tune)[/]" : "")}  {Markup.Escape(r.Task ?? "invalid")}, model {Markup.Escape(r.Model ?? "-")}");
                AnsiConsole.MarkupLine("  " + Markup.Escape(r.Error ?? r.Purpose));
                AnsiConsole.MarkupLine("  [grey]data:[/] " + Markup.Escape(r.Data ?? "-"));
                if (r.Figure != null) AnsiConsole.MarkupLine("  [grey]measured:[/] " + Markup.Escape(r.Figure));
            }
            AnsiConsole.MarkupLine("[grey]tasklm recipe show NAME: every setting and where it comes from; tasklm recipe copy NAME: a copy to edit[/]");
            return 0;
        });
        return cmd;
    }

    static Command Validate()
    {
        var recipeArg = RecipeArg(); var overridesArg = OverridesArg(); var json = Global.JsonOption();
        var cmd = new Command("validate", "Check a recipe (keys, types, ranges, its search: section) without running it");
        cmd.Arguments.Add(recipeArg); cmd.Arguments.Add(overridesArg); cmd.Options.Add(json);
        cmd.SetAction(p =>
        {
            string path = RecipeCatalog.Resolve(p.GetValue(recipeArg)!);
            var overrides = p.GetValue(overridesArg) ?? [];
            var recipe = RecipeLoader.Load(path, overrides);
            SearchSpace? space = recipe.Search != null ? SearchSpace.Load(path, overrides) : null;
            var info = RecipeCatalog.Read(path);
            var missing = new[] { recipe.Data.Train, recipe.Data.Validation, recipe.Data.Test }.Where(f => f != null && !File.Exists(f) && !Directory.Exists(f)).ToList();
            if (p.GetValue(json))
            {
                Console.WriteLine(new JsonObject
                {
                    ["valid"] = true, ["path"] = path, ["task"] = recipe.Task, ["model"] = recipe.Model.Init,
                    ["search"] = space == null ? null : new JsonArray(space.Params.Select(x => (JsonNode?)x.Key).ToArray()),
                    ["missing_data"] = new JsonArray(missing.Select(m => (JsonNode?)m).ToArray()),
                    ["prepare"] = new JsonArray(info.Prepare.Select(x => (JsonNode?)x).ToArray()),
                }.ToJsonString(Global.JsonOut));
                return 0;
            }
            Console.WriteLine($"ok: {path} ({recipe.Task}, model {recipe.Model.Init}" + (space != null ? $", search over {string.Join(", ", space.Params.Select(x => x.Key))}" : "") + ")");
            if (missing.Count > 0)
                Console.Error.WriteLine($"note: {string.Join(", ", missing)} not there yet" + (info.Prepare.Count > 0 ? $"; make the data with: {string.Join(" && ", info.Prepare)}" : ""));
            return 0;
        });
        return cmd;
    }

    static Command Copy()
    {
        var name = new Argument<string>("name") { Description = "A shipped recipe's name (tasklm recipes)" };
        var dest = new Argument<string?>("dest") { Description = "File or folder to write (default: NAME.yaml here)", Arity = ArgumentArity.ZeroOrOne };
        var force = new Option<bool>("--force") { Description = "Overwrite an existing file" };
        var cmd = new Command("copy", "Copy a shipped recipe to edit (as torchtune's tune cp)");
        cmd.Arguments.Add(name); cmd.Arguments.Add(dest); cmd.Options.Add(force);
        cmd.SetAction(p =>
        {
            string n = p.GetValue(name)!;
            string src = RecipeCatalog.Resolve(n);
            string file = Path.GetFileName(src);
            string target = p.GetValue(dest) is { } d ? (Directory.Exists(d) || d.EndsWith('/') ? Path.Combine(d, file) : d) : file;
            if (File.Exists(target) && !p.GetValue(force)) throw new IOException($"{target} already exists; pass --force to overwrite it");
            if (Path.GetDirectoryName(Path.GetFullPath(target)) is { } dir) Directory.CreateDirectory(dir);
            File.Copy(src, target, overwrite: true);
            Console.WriteLine($"copied {src} → {target}");
            return 0;
        });
        return cmd;
    }

    static Command Show()
    {
        var recipeArg = RecipeArg(); var overridesArg = OverridesArg(); var json = Global.JsonOption();
        var cmd = new Command("show", "Print the resolved recipe, every default filled in, with where each value came from (recipe:LINE, override, default)");
        cmd.Arguments.Add(recipeArg); cmd.Arguments.Add(overridesArg); cmd.Options.Add(json);
        cmd.SetAction(p =>
        {
            string path = RecipeCatalog.Resolve(p.GetValue(recipeArg)!);
            var values = RecipeCatalog.Show(path, p.GetValue(overridesArg) ?? []);
            if (p.GetValue(json))
            {
                var o = new JsonObject();
                foreach (var v in values) o[v.Key] = new JsonObject { ["value"] = v.Value, ["source"] = v.Source };
                Console.WriteLine(new JsonObject { ["path"] = path, ["values"] = o }.ToJsonString(Global.JsonOut));
                return 0;
            }
            Console.WriteLine($"# {path}, resolved (source: recipe:LINE = this file, override = the command line, default = TaskLM's default)");
            int width = values.Max(v => v.Key.Length + v.Value.Length) + 4;
            foreach (var v in values)
            {
                string line = $"{v.Key}: {v.Value}";
                Console.WriteLine(line.PadRight(width) + "# " + v.Source);
            }
            return 0;
        });
        return cmd;
    }
}
