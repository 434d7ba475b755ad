// Which files of a Hub repository make a model TaskLM can load: config, weights (single or sharded), tokenizer, adapter.
using System.Text.Json.Nodes;

namespace TaskLM.Data.Hub;

/// <summary>
/// The rule that picks a model's files from a repository listing (online) or checks a cached snapshot (offline):
/// config.json (or adapter_config.json), generation_config.json when present, weights — model.safetensors.index.json
/// and its shards, else model.safetensors, else pytorch_model.bin.index.json and its shards, else pytorch_model.bin;
/// an adapter's adapter_model.safetensors (else .bin) — and the tokenizer files present.
/// </summary>
public static class HubFiles
{
    /// <summary>Weight files in order of preference (the first present wins).</summary>
    public static readonly string[] Weights = ["model.safetensors.index.json", "model.safetensors", "pytorch_model.bin.index.json", "pytorch_model.bin"];

    /// <summary>A PEFT adapter's weights, in order of preference.</summary>
    public static readonly string[] AdapterWeights = ["adapter_model.safetensors", "adapter_model.bin"];

    /// <summary>Files taken when present.</summary>
    public static readonly string[] Optional =
        ["generation_config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt", "vocab.json", "merges.txt"];

    /// <summary>The files to fetch from a repository's listing, config first (so an unsupported architecture is
    /// refused before any weights move). Shards are not included: read them from the index with <see cref="Shards"/>.</summary>
    public static IReadOnlyList<string> Select(IReadOnlyCollection<string> listing, string repo)
    {
        var set = listing.ToHashSet(StringComparer.Ordinal);
        var picked = new List<string>();
        bool adapter = set.Contains("adapter_config.json");
        if (set.Contains("config.json")) picked.Add("config.json");
        if (adapter) picked.Add("adapter_config.json");
        if (picked.Count == 0)
            throw new HubException(HubErrorKind.BadContent, $"{repo}: no config.json or adapter_config.json in the repository, so it is not a model " +
                $"TaskLM can load (files: {Preview(listing)})");
        picked.AddRange(Optional.Where(set.Contains));
        string? weights = Weights.FirstOrDefault(set.Contains) ?? (adapter ? AdapterWeights.FirstOrDefault(set.Contains) : null);
        if (weights == null)
            throw new HubException(HubErrorKind.BadContent, $"{repo}: no weights TaskLM can read ({string.Join(", ", adapter ? AdapterWeights : Weights)}); " +
                $"files: {Preview(listing)}");
        picked.Add(weights);
        return picked;
    }

    /// <summary>Optional files of the rule that a listing lacks (recorded as .no_exist markers, as huggingface_hub does).</summary>
    public static IEnumerable<string> Absent(IReadOnlyCollection<string> listing) =>
        Optional.Concat(Weights).Where(f => !listing.Contains(f));

    /// <summary>True for a sharded checkpoint's index file.</summary>
    public static bool IsIndex(string path) => path.EndsWith(".index.json", StringComparison.Ordinal);

    /// <summary>The shard files an index's weight_map names, in first-seen order (paths relative to the repository root).</summary>
    public static IReadOnlyList<string> Shards(string indexFile)
    {
        var map = JsonNode.Parse(File.ReadAllText(indexFile))?["weight_map"] as JsonObject
            ?? throw new HubException(HubErrorKind.BadContent, $"{indexFile}: no \"weight_map\" object");
        return map.Select(kv => kv.Value?.GetValue<string>() ?? "").Where(s => s.Length > 0).Distinct().ToList();
    }

    /// <summary>What a snapshot folder lacks to be loadable, as file names (empty when complete). Broken links count as missing.</summary>
    public static IReadOnlyList<string> Missing(string folder)
    {
        if (!Directory.Exists(folder)) return ["config.json", string.Join(" or ", Weights[1], Weights[3])];
        string F(string name) => Path.Combine(folder, name);
        bool Has(string name) => HubCache.Present(F(name));
        var missing = new List<string>();
        bool adapter = Has("adapter_config.json");
        if (!adapter && !Has("config.json")) missing.Add("config.json");
        string? weights = Weights.FirstOrDefault(Has) ?? (adapter ? AdapterWeights.FirstOrDefault(Has) : null);
        if (weights == null) missing.Add(adapter ? AdapterWeights[0] : string.Join(" or ", Weights[1], Weights[3]));
        else if (IsIndex(weights)) missing.AddRange(Shards(F(weights)).Where(s => !Has(s)));
        return missing;
    }

    static string Preview(IReadOnlyCollection<string> listing) =>
        listing.Count == 0 ? "none" : string.Join(", ", listing.Take(12)) + (listing.Count > 12 ? $", ... ({listing.Count} in all)" : "");
}
