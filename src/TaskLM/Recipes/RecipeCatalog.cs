// The shipped recipes (recipes/*.yaml): where they are, what each header says, and a recipe resolved with the
// origin of every value (recipe line, command-line override, or default).
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace TaskLM.Recipes;

/// <summary>What <c>tasklm recipes</c> shows of one recipe: its name, what it trains on what, the one-line purpose
/// (first header line), the measured figure (a <c># figure:</c> header line, else the <c># Measured</c> paragraph)
/// and the preparation commands (header lines <c>#   tasklm ...</c>).</summary>
public sealed record RecipeInfo(string Name, string Path, string? Task, string? Model, string? Data, string Purpose, string? Figure,
    IReadOnlyList<string> Prepare, bool HasSearch, string? Error);

/// <summary>One resolved value and where it came from.</summary>
public sealed record ResolvedValue(string Key, string Value, string Source);

/// <summary>Finds recipes by name or path and reads their headers.</summary>
public static class RecipeCatalog
{
    /// <summary>The shipped recipes folder: TASKLM_RECIPES, else recipes/ in the current folder or a parent, else
    /// recipes/ next to the program (the CLI build copies them there).</summary>
    public static string? FindDir()
    {
        var env = Environment.GetEnvironmentVariable("TASKLM_RECIPES");
        if (!string.IsNullOrEmpty(env) && Directory.Exists(env)) return env;
        for (var dir = new DirectoryInfo(Directory.GetCurrentDirectory()); dir != null; dir = dir.Parent)
        {
            var c = System.IO.Path.Combine(dir.FullName, "recipes");
            if (Directory.Exists(c) && Directory.EnumerateFiles(c, "*.yaml").Any()) return c;
        }
        var beside = System.IO.Path.Combine(AppContext.BaseDirectory, "recipes");
        return Directory.Exists(beside) ? beside : null;
    }

    /// <summary>Every shipped recipe, by name.</summary>
    public static IReadOnlyList<RecipeInfo> List(string? dir = null)
    {
        dir ??= FindDir() ?? throw new DirectoryNotFoundException("no recipes/ folder found here, in a parent folder, or next to the program (set TASKLM_RECIPES)");
        return Directory.EnumerateFiles(dir, "*.yaml").Select(Read).OrderBy(r => r.Name, StringComparer.Ordinal).ToList();
    }

    /// <summary>A recipe argument: an existing file, else a shipped recipe's name (with or without .yaml).</summary>
    public static string Resolve(string nameOrPath)
    {
        if (File.Exists(nameOrPath)) return nameOrPath;
        string? dir = FindDir();
        string name = nameOrPath.EndsWith(".yaml", StringComparison.Ordinal) ? System.IO.Path.GetFileNameWithoutExtension(nameOrPath) : nameOrPath;
        if (dir != null)
        {
            var p = System.IO.Path.Combine(dir, name + ".yaml");
            if (File.Exists(p)) return p;
            var names = Directory.EnumerateFiles(dir, "*.yaml").Select(f => System.IO.Path.GetFileNameWithoutExtension(f)!).Order(StringComparer.Ordinal).ToList();
            string? near = RecipeLoader.Closest(name, names);
            throw new RecipeException($"{nameOrPath}: no such recipe file or shipped recipe" + (near != null ? $"; did you mean '{near}'?" : "") + $" (shipped: {string.Join(", ", names)})");
        }
        throw new RecipeException($"{nameOrPath}: recipe file not found (and no recipes/ folder to look it up in)");
    }

    /// <summary>Reads one recipe file's header and main keys; a recipe that does not load is listed with its error.</summary>
    public static RecipeInfo Read(string path)
    {
        var lines = File.ReadAllLines(path);
        var header = lines.TakeWhile(l => l.StartsWith('#')).Select(l => l.Length > 1 && l[1] == ' ' ? l[2..] : l[1..]).ToList();
        // The purpose is the header's first sentence, however many comment lines it spans (it was cut at the first line).
        var first = new List<string>();
        foreach (var h in header)
        {
            if (h.Trim().Length == 0) break;
            first.Add(h.Trim());
            if (h.TrimEnd().EndsWith('.') || h.TrimEnd().EndsWith(':')) break;
        }
        string purpose = string.Join(' ', first).TrimEnd(':');
        string? figure = header.FirstOrDefault(h => h.StartsWith("figure:", StringComparison.OrdinalIgnoreCase))?["figure:".Length..].Trim();
        if (figure == null)
        {
            int i = header.FindIndex(h => h.StartsWith("Measured", StringComparison.Ordinal));
            if (i >= 0)
                figure = string.Join(' ', header.Skip(i).TakeWhile((h, k) => k == 0 || !(h.StartsWith("  ", StringComparison.Ordinal) || h.StartsWith("Then", StringComparison.Ordinal) || h.StartsWith("Make", StringComparison.Ordinal) || h.Length == 0)).Select(h => h.Trim()));
        }
        var prepare = header.Where(h => h.StartsWith("  tasklm ", StringComparison.Ordinal)).Select(h => h.Trim()).ToList();
        string name = System.IO.Path.GetFileNameWithoutExtension(path);
        try
        {
            var r = RecipeLoader.Load(path);
            return new RecipeInfo(name, path, r.Task, r.Model.Init, r.Data.Train, purpose, figure, prepare, r.Search != null, null);
        }
        catch (RecipeException e)
        {
            return new RecipeInfo(name, path, null, null, null, purpose, figure, prepare, false, e.Message);
        }
    }

    /// <summary>The recipe with every default filled in, each leaf with its origin: <c>recipe:LINE</c> (the file),
    /// <c>override</c> (a key=value), or <c>default</c>. Validates first (the loader's errors).</summary>
    public static IReadOnlyList<ResolvedValue> Show(string path, IReadOnlyList<string> overrides)
    {
        var recipe = RecipeLoader.Load(path, overrides);
        var fileKeys = new Dictionary<string, int>();
        var stream = new YamlStream();
        stream.Load(new StringReader(File.ReadAllText(path)));
        if (stream.Documents.Count > 0 && stream.Documents[0].RootNode is YamlMappingNode root) Keys(root, "", fileKeys);
        var overrideKeys = overrides.Select(o => o[..Math.Max(0, o.IndexOf('='))].Trim()).Where(k => k.Length > 0).ToList();
        var resolved = new YamlStream();
        resolved.Load(new StringReader(RecipeLoader.ToYaml(recipe)));
        var leaves = new List<(string key, string value)>();
        Leaves((YamlMappingNode)resolved.Documents[0].RootNode, "", leaves);
        return leaves.Select(l =>
        {
            if (overrideKeys.Any(k => l.key == k || l.key.StartsWith(k + ".", StringComparison.Ordinal))) return new ResolvedValue(l.key, l.value, "override");
            // The file names this key, or a mapping/list above it given whole (model.config: {...}).
            for (string k = l.key; ; k = k[..k.LastIndexOf('.')])
            {
                if (fileKeys.TryGetValue(k, out int line)) return new ResolvedValue(l.key, l.value, $"recipe:{line}");
                if (!k.Contains('.')) break;
            }
            return new ResolvedValue(l.key, l.value, "default");
        }).ToList();
    }

    static void Keys(YamlMappingNode m, string prefix, Dictionary<string, int> into)
    {
        foreach (var (k, v) in m.Children)
        {
            string key = prefix + ((YamlScalarNode)k).Value;
            // A mapping's own line says nothing about the keys it leaves out (they stay defaults): only leaves count.
            if (v is YamlMappingNode mm && mm.Children.Count > 0) Keys(mm, key + ".", into);
            else into[key] = (int)k.Start.Line;
        }
    }

    static void Leaves(YamlMappingNode m, string prefix, List<(string, string)> into)
    {
        foreach (var (k, v) in m.Children)
        {
            string key = prefix + ((YamlScalarNode)k).Value;
            if (v is YamlMappingNode mm && mm.Children.Count > 0) Leaves(mm, key + ".", into);
            else into.Add((key, Text(v)));
        }
    }

    static string Text(YamlNode n) => n switch
    {
        YamlScalarNode s when s.Style is ScalarStyle.DoubleQuoted or ScalarStyle.SingleQuoted => "\"" + s.Value + "\"",
        YamlScalarNode s => s.Value ?? "null",
        YamlSequenceNode q => "[" + string.Join(", ", q.Children.Select(Text)) + "]",
        YamlMappingNode mm => mm.Children.Count == 0 ? "{}" : "{" + string.Join(", ", mm.Children.Select(kv => Text(kv.Key) + ": " + Text(kv.Value))) + "}",
        _ => "",
    };
}
