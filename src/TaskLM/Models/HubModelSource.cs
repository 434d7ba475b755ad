// The Hugging Face Hub as a model source: `hf:org/name@rev`, `org/name`, a bare Hub name → a snapshot folder in huggingface_hub's cache (TaskLM.Data.Hub).
using System.Collections.Concurrent;
using TaskLM.Data.Hub;

namespace TaskLM.Models;

/// <summary>
/// Resolves a Hub id by <see cref="HubSpec"/>'s naming rule (docs/models-by-name.md) with the environment's settings
/// (HF_HUB_CACHE, HF_TOKEN, HF_HUB_OFFLINE, ...). Asked after local folders and presets, so a folder or a preset of
/// the same name wins. A spec is resolved once per process (verbs resolve the same spec several times).
/// </summary>
static class HubModelSource
{
    static readonly ConcurrentDictionary<string, ModelSource> Resolved = new();

    public static ModelSource? TryResolve(string spec)
    {
        if (!HubSpec.TryParse(spec, name => ModelPresets.All.Any(p => string.Equals(p.Name, name, StringComparison.OrdinalIgnoreCase)), out var hub)) return null;
        var options = HubOptions.FromEnvironment() with { SupportedModelTypes = ModelFamilies.All.Select(f => f.ModelType).ToArray() };
        string key = $"{options.Endpoint}|{options.CacheDir}|{hub}";
        if (Resolved.TryGetValue(key, out var known)) return known;
        using var client = new HubClient(options);
        HubSnapshot snap;
        try { snap = client.Snapshot(hub, new FileDone()); }
        catch (HubException e) when (!hub.IsExplicit && e.Kind is HubErrorKind.RepoNotFound or HubErrorKind.NotCached or HubErrorKind.Network)
        {
            // Not found anywhere: the error a mistyped preset or folder would have got before, then the Hub's answer
            // (which states the naming rule). Same exception types, so callers' filters still catch it.
            if (hub.IsBareName)
                throw new ArgumentException($"unknown model preset '{spec}'{ModelPresets.Suggest(spec, ModelPresets.All.Select(p => p.Name))}, " +
                    $"nor a Hugging Face Hub model: {e.Message}", e);
            throw new DirectoryNotFoundException($"model '{spec}' is not a local folder (run, LoRA adapter or Hugging Face model folder), " +
                $"nor a Hugging Face Hub model: {e.Message}", e);
        }
        // An adapter's base model is a spec of its own (usually a Hub id too).
        ModelSource? baseModel = File.Exists(Path.Combine(snap.Folder, "adapter_config.json"))
            && System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(snap.Folder, "adapter_config.json")))?["base_model_name_or_path"]?.GetValue<string>() is string b
            ? ModelSource.Resolve(b) : null;
        return Resolved[key] = new ModelSource
        {
            Spec = spec, Kind = ModelSourceKind.Hub, Folder = snap.Folder, Base = baseModel, Provenance = snap.Provenance(),
        };
    }

    /// <summary>One line on standard error per downloaded file (verbs other than `models pull` show no bar).</summary>
    sealed class FileDone : IProgress<HubProgress>
    {
        public void Report(HubProgress p)
        {
            if (p.Total is long total && p.Bytes == total && total > 0)
                Console.Error.WriteLine($"downloaded {p.File} ({total / 1e6:0.0} MB, {p.BytesPerSecond / 1e6:0.0} MB/s)");
        }
    }
}
