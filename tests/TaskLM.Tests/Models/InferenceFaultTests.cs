// Issue 11 on the inference side: logits, generate and evaluate refuse a checkpoint that does not fill the model
// its config.json describes, naming the keys; bad inputs and settings are one line naming what is wrong; training
// from a checkpoint prints HF's load report.
using System.Text.Json.Nodes;
using TaskLM.Models;
using TaskLM.Native;
using TorchSharp;

namespace TaskLM.Tests.Models;

[Collection(SerialCollection.Name)]
public class InferenceFaultTests
{
    static InferenceFaultTests() => TorchBackend.EnsureLoaded();

    static string Fixture(string name) => Gpt2Tests.Fixture(name);

    sealed class TempDir : IDisposable
    {
        public string Path { get; } = Directory.CreateTempSubdirectory("tasklm-inference-fault").FullName;
        public string File(string name) => System.IO.Path.Combine(Path, name);
        public void Dispose() { if (Directory.Exists(Path)) Directory.Delete(Path, true); }
    }

    static string CopyFixture(string name, string into)
    {
        string dir = Path.Combine(into, name);
        Directory.CreateDirectory(dir);
        foreach (var f in Directory.GetFiles(Fixture(name))) File.Copy(f, Path.Combine(dir, Path.GetFileName(f)));
        return dir;
    }

    static void SetConfig(string dir, string key, int? value)
    {
        var cfg = HfCheckpoint.LoadConfig(dir);
        if (value is int v) cfg[key] = v; else cfg.Remove(key);
        HfCheckpoint.WriteConfig(dir, cfg);
    }

    static void RemoveTensor(string dir, string key)
    {
        using var scope = torch.NewDisposeScope();
        var sd = SafeTensors.Load(Path.Combine(dir, "model.safetensors"));
        Assert.True(sd.Remove(key));
        SafeTensors.Save(Path.Combine(dir, "model.safetensors"), sd);
    }

    static string Ids(string path, object json)
    {
        File.WriteAllText(path, System.Text.Json.JsonSerializer.Serialize(json));
        return path;
    }

    static void AssertOneLineError(CliResult r, params string[] words)
    {
        Assert.NotEqual(0, r.ExitCode);
        var lines = r.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(lines.Length <= 3, r.Stderr);
        foreach (var w in words) Assert.Contains(w, r.Stderr);
    }

    [Fact]
    public void LogitsRefusesConfigWithMoreLayersThanTheCheckpoint()
    {
        using var t = new TempDir();
        string model = CopyFixture("gpt2-cls", t.Path);
        SetConfig(model, "n_layer", 4);
        var r = CliRunner.Run("logits", model, Ids(t.File("in.json"), new { input_ids = new[] { new[] { 1, 2, 3 } } }),
            "--out", t.File("out.json"), "--device", "cpu", "--threads", "1");
        AssertOneLineError(r, "transformer.h.2.", "describes 4 layers, the checkpoint holds 2");
        Assert.False(File.Exists(t.File("out.json")));
    }

    [Fact]
    public void LogitsRefusesConfigWithoutTheLayerCount()
    {
        using var t = new TempDir();
        string model = CopyFixture("bert-cls", t.Path);
        SetConfig(model, "num_hidden_layers", null);   // HF's default is 12
        var r = CliRunner.Run("logits", model, Ids(t.File("in.json"), new { input_ids = new[] { new[] { 1, 2, 3 } } }),
            "--out", t.File("out.json"), "--device", "cpu", "--threads", "1");
        AssertOneLineError(r, "bert.encoder.layer.", "describes 12 layers, the checkpoint holds 2");
    }

    [Fact]
    public void GenerateRefusesACheckpointWithoutItsTokenEmbedding()
    {
        using var t = new TempDir();
        string model = CopyFixture("gpt2-tiny", t.Path);
        RemoveTensor(model, "transformer.wte.weight");
        var r = CliRunner.Run("generate", model, "--prompt-ids", "1,2,3", "--max-new-tokens", "2", "--device", "cpu", "--threads", "1");
        AssertOneLineError(r, "transformer.wte.weight", "lacks 1 weight");
    }

    [Fact]
    public void EvaluateRefusesACheckpointWithARemovedLayerTensor()
    {
        using var t = new TempDir();
        string model = CopyFixture("bert-cls", t.Path);
        RemoveTensor(model, "bert.encoder.layer.1.output.dense.weight");
        File.WriteAllLines(t.File("test.jsonl"), ["{\"input_ids\": [2, 5, 7, 3], \"labels\": 0}", "{\"input_ids\": [2, 6, 3], \"labels\": 1}"]);
        var r = CliRunner.Run("evaluate", model, t.File("test.jsonl"), "--out", t.File("out"), "--device", "cpu", "--threads", "1");
        AssertOneLineError(r, "bert.encoder.layer.1.output.dense.weight");
        Assert.False(File.Exists(Path.Combine(t.File("out"), "eval.json")));
    }

    [Fact]
    public void LogitsInputFaultsNameTheKeyThePositionAndTheLimit()
    {
        using var t = new TempDir();
        string model = Fixture("gpt2-cls");
        CliResult Logits(object json) => CliRunner.Run("logits", model, Ids(t.File("in.json"), json), "--out", t.File("out.json"), "--device", "cpu", "--threads", "1");

        AssertOneLineError(Logits(new { input_ids = new[] { new[] { 1, 99999, 3 } } }), "in.json", "input_ids[0][1] = 99999", "vocab_size 1000: ids 0..999");
        AssertOneLineError(Logits(new { input_ids = new[] { new[] { 1, -4 } } }), "input_ids[0][1] = -4");
        AssertOneLineError(Logits(new { input_ids = Array.Empty<int>() }), "in.json", "input_ids", "empty");
        AssertOneLineError(Logits(new { input_ids = new[] { Array.Empty<int>() } }), "input_ids", "empty");
        AssertOneLineError(Logits(new { input_ids = new[] { new[] { 1, 2, 3 } }, attention_mask = new[] { new[] { 1, 1 } } }),
            "attention_mask has shape [1, 2], input_ids [1, 3]");
        AssertOneLineError(Logits(new { input_ids = new[] { new[] { 1, 2 } }, attention_mask = new[] { new[] { 1, 7 } } }), "attention_mask[0][1] = 7");
        Assert.False(File.Exists(t.File("out.json")));
    }

    [Theory]
    [InlineData("--max-new-tokens", "-1", "max_new_tokens (--max-new-tokens) must be 0 or more")]
    [InlineData("--top-p", "2", "top_p (--top-p) must be in (0, 1]")]
    [InlineData("--top-k", "-3", "top_k (--top-k) must be 0 (off) or more")]
    [InlineData("--temperature", "0", "temperature (--temperature) must be > 0")]
    [InlineData("--prompt-ids", "1,60000", "prompt id 60000 at position 1 is outside the model's vocabulary (vocab_size 50257")]
    public void GenerateSettingsAreCheckedInOnePlace(string option, string value, string message)
    {
        var args = new List<string> { "generate", Fixture("gpt2-tiny"), "--device", "cpu", "--threads", "1" };
        if (option != "--prompt-ids") args.AddRange(["--prompt-ids", "1,2"]);
        args.AddRange([option, value]);
        AssertOneLineError(CliRunner.Run(args), message);
        // The same rule for a program or server using the facade.
        var request = new GenerationRequest { PromptIds = [1, 2], MaxNewTokens = option == "--max-new-tokens" ? -1 : 2, TopP = option == "--top-p" ? 2 : null, TopK = option == "--top-k" ? -3 : null, Temperature = option == "--temperature" ? 0 : null };
        if (option != "--prompt-ids") Assert.Contains(message, Assert.Throws<ArgumentException>(() => request.Validate()).Message);
    }

    [Fact]
    public void TokenizeRefusesMaxLengthZero()
    {
        var r = CliRunner.Run("tokenize", "--tokenizer", "gpt2", "--text", "hello", "--max-length", "0");
        AssertOneLineError(r, "--max-length must be at least 1, got 0");
    }

    [Fact]
    public async Task StreamEndsWithTheFinishReason()
    {
        using var scope = torch.NewDisposeScope();
        var m = (Gpt2)PreTrainedModel.FromPretrained(Fixture("gpt2-tiny"), family: Gpt2Family.Instance);
        var gen = new TextGenerator(m, null);
        var free = await gen.GenerateAsync(new GenerationRequest { PromptIds = [5, 6, 7], MaxNewTokens = 6, EosTokenId = -1 });
        Assert.Equal(FinishReason.Length, free.Finish);
        Assert.Equal(6, free.NewIds.Count);
        // HF's greedy tokens, as the batch API gives them.
        Assert.Equal(Generation.Generate(m, [new[] { 5, 6, 7 }], new GenerationOptions { MaxNewTokens = 6, EosTokenId = -1 })[0], free.NewIds);
        var eos = await gen.GenerateAsync(new GenerationRequest { PromptIds = [5, 6, 7], MaxNewTokens = 6, EosTokenId = free.NewIds[0] });
        Assert.Equal(FinishReason.Eos, eos.Finish);
        Assert.Equal(free.NewIds.Take(1), eos.NewIds);
        var chunks = new List<GenerationChunk>();
        await foreach (var c in gen.StreamAsync(new GenerationRequest { PromptIds = [5, 6, 7], MaxNewTokens = 0 })) chunks.Add(c);
        Assert.Equal(FinishReason.Length, Assert.Single(chunks).Finish);

        // Cancellation stops the stream between tokens.
        using var cts = new CancellationTokenSource();
        int seen = 0;
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
        {
            await foreach (var c in gen.StreamAsync(new GenerationRequest { PromptIds = [5, 6, 7], MaxNewTokens = 6, EosTokenId = -1 }, cts.Token))
                if (++seen == 2) cts.Cancel();
        });
        Assert.Equal(2, seen);

        // The generator never switches the shared module's mode: a module left in training mode is an error.
        m.train();
        Assert.Contains("eval mode", (await Assert.ThrowsAsync<InvalidOperationException>(() => gen.GenerateAsync(new GenerationRequest { PromptIds = [5], MaxNewTokens = 1 }))).Message);
        Assert.True(m.training);
    }

    [Fact]
    public void TrainingFromACheckpointPrintsHfLoadReport()
    {
        using var t = new TempDir();
        File.WriteAllLines(t.File("train.jsonl"), Enumerable.Range(0, 4).Select(i => $"{{\"input_ids\": [{i + 1}, {i + 2}, {i + 3}], \"labels\": {i % 2}}}"));
        File.WriteAllText(t.File("r.yaml"), $"""
            task: classification
            model: {"{"}init: '{Fixture("gpt2-bin")}'{"}"}
            data: {"{"}train: train.jsonl, max_length: 8{"}"}
            training: {"{"}max_steps: 1, batch_size: 1, tensorboard: false{"}"}
            output_dir: run
            """);
        // Without COLUMNS a redirected stdout never wraps the report's long line.
        var r = CliRunner.Run(["train", t.File("r.yaml"), "--threads", "1"], env: new Dictionary<string, string?> { ["COLUMNS"] = null }, workingDirectory: t.Path);
        Assert.True(r.ExitCode == 0, r.Stderr + r.Stdout);
        Assert.Contains("Some weights of GPT2ForSequenceClassification were not initialized from the model checkpoint", r.Stdout);
        Assert.Contains("newly initialized: [score.weight]. You should probably TRAIN", r.Stdout);
    }
}
