// Builds an ITaskModel from an HF folder or a preset name, dispatching on config.json's model_type.
using System.Text.Json;
using System.Text.Json.Nodes;

namespace TaskLM.Models;

/// <summary>The one entry point that turns a folder or a preset name into a model of the right family.</summary>
public static class ModelFactory
{
    /// <summary>Loads an HF model folder (config.json + weights) with a task head. <paramref name="task"/>
    /// defaults to the folder's own architecture; a head the checkpoint lacks is newly initialised (see
    /// the family's LoadReport). <paramref name="numLabels"/>/<paramref name="labels"/> set the head's classes.</summary>
    public static ITaskModel FromPretrained(string folder, string? task = null, int? numLabels = null, IReadOnlyList<string>? labels = null)
    {
        if (!Directory.Exists(folder)) throw new DirectoryNotFoundException($"model folder '{folder}' does not exist");
        var cfg = HfCheckpoint.LoadConfig(folder);
        string type = cfg["model_type"]?.GetValue<string>() ?? throw new InvalidDataException($"{Path.Combine(folder, "config.json")}: no \"model_type\"");
        switch (type)
        {
            case "gpt2":
                return Gpt2.FromPretrained(folder, task, numLabels, labels);
            case "bert":
                return Bert.FromPretrained(folder, task, numLabels, labels);
            default:
                throw new NotSupportedException($"{Path.Combine(folder, "config.json")}: model_type '{type}' is not supported (gpt2, bert)");
        }
    }

    /// <summary>A randomly initialised model of a preset shape (see <see cref="ModelPresets"/>), with
    /// config.json keys overridden (e.g. n_layer, n_embd, vocab_size, num_labels; "labels" = class names).
    /// Unknown keys fail with the closest known key suggested. Seed torch before calling for a reproducible init.</summary>
    public static ITaskModel FromPreset(string name, string task, IDictionary<string, object>? overrides = null)
    {
        var preset = ModelPresets.Get(name);
        var json = preset.ToConfigJson();
        switch (preset.ModelType)
        {
            case "gpt2":
            {
                var known = new Gpt2Config().ToJson();
                IReadOnlyList<string>? labels = null;
                int? numLabels = null;
                foreach (var (key, value) in overrides ?? new Dictionary<string, object>())
                {
                    if (key == "labels") { labels = ToStrings(value, key); continue; }
                    if (key == "num_labels") { numLabels = Convert.ToInt32(value); continue; }
                    if (!known.ContainsKey(key))
                        throw new ArgumentException($"unknown GPT-2 config key '{key}'{ModelPresets.Suggest(key, known.Select(k => k.Key).Append("labels").Append("num_labels"))}");
                    json[key] = value is JsonNode node ? node.DeepClone() : JsonSerializer.SerializeToNode(value);
                }
                var cfg = Gpt2Config.FromJson(json);
                if (numLabels != null || labels != null) cfg.SetLabels(numLabels ?? labels!.Count, labels);
                return new Gpt2(cfg, task);
            }
            case "bert":
                return Bert.FromPreset(name, task, overrides);
            default:
                throw new NotSupportedException($"preset '{name}': model_type '{preset.ModelType}' is not supported");
        }
    }

    static IReadOnlyList<string> ToStrings(object value, string key) => value switch
    {
        IEnumerable<string> s => s.ToList(),
        JsonArray a => a.Select(x => x!.GetValue<string>()).ToList(),
        System.Collections.IEnumerable e when value is not string => e.Cast<object>().Select(x => x.ToString() ?? "").ToList(),
        _ => throw new ArgumentException($"override '{key}' must be a list of class names"),
    };
}
