// The corpora shipped in data/: read from data/catalog.json, found by walking up from the working folder or the program.
using System.Text.Json;
using System.Text.Json.Serialization;

namespace TaskLM.Data.Corpus;

/// <summary>One shipped corpus as listed in <c>data/catalog.json</c>.</summary>
public sealed record CorpusInfo(
    [property: JsonPropertyName("name")] string Name,
    [property: JsonPropertyName("file")] string File,
    [property: JsonPropertyName("rows")] long Rows,
    [property: JsonPropertyName("task")] string Task,
    [property: JsonPropertyName("text_field")] string? TextField,
    [property: JsonPropertyName("label_field")] string? LabelField,
    [property: JsonPropertyName("description")] string Description);

/// <summary>The catalog of shipped corpora and where their files are.</summary>
public sealed class CorpusCatalog
{
    sealed record CatalogFile([property: JsonPropertyName("corpora")] List<CorpusInfo> Corpora);

    /// <summary>The data folder (holding catalog.json).</summary>
    public string DataDir { get; }

    /// <summary>The corpora in catalog order.</summary>
    public IReadOnlyList<CorpusInfo> Corpora { get; }

    CorpusCatalog(string dataDir, IReadOnlyList<CorpusInfo> corpora) { DataDir = dataDir; Corpora = corpora; }

    /// <summary>Loads <c>catalog.json</c> from <paramref name="dataDir"/>, or finds a <c>data/catalog.json</c> in the
    /// TASKLM_DATA folder, the working folder or one above it, or the program's folder or one above it.</summary>
    public static CorpusCatalog Load(string? dataDir = null)
    {
        dataDir ??= Find() ?? throw new DirectoryNotFoundException(
            "no data/catalog.json found in the working folder, the program's folder or their parents; pass --data-dir or set TASKLM_DATA");
        var path = Path.Combine(dataDir, "catalog.json");
        if (!System.IO.File.Exists(path)) throw new FileNotFoundException($"{path}: no such file");
        var cat = JsonSerializer.Deserialize<CatalogFile>(System.IO.File.ReadAllText(path))
            ?? throw new DataFormatException(path, 1, "empty catalog");
        return new CorpusCatalog(dataDir, cat.Corpora);
    }

    /// <summary>Full path of a corpus's file.</summary>
    public string PathOf(CorpusInfo c) => Path.Combine(DataDir, c.File);

    /// <summary>The corpus called <paramref name="name"/>; the error lists the names that exist.</summary>
    public CorpusInfo Get(string name) => Corpora.FirstOrDefault(c => c.Name == name)
        ?? throw new KeyNotFoundException($"no corpus '{name}'; the corpora are: {string.Join(", ", Corpora.Select(c => c.Name))}");

    static string? Find()
    {
        var env = Environment.GetEnvironmentVariable("TASKLM_DATA");
        if (!string.IsNullOrEmpty(env) && System.IO.File.Exists(Path.Combine(env, "catalog.json"))) return env;
        foreach (var start in new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory })
            for (var dir = new DirectoryInfo(start); dir != null; dir = dir.Parent)
            {
                var candidate = Path.Combine(dir.FullName, "data");
                if (System.IO.File.Exists(Path.Combine(candidate, "catalog.json"))) return candidate;
            }
        return null;
    }
}
