// The ONNX Runtime runner's text APIs (classify, tag, answer, generate) against TaskLM on the same tokenization,
// the export verb end to end, the HF export (LoRA merged) against PEFT's logits, and ONNX's own checker.
using System.Diagnostics;
using System.Text.Json.Nodes;
using TaskLM.Data.Tokenization;
using TaskLM.Export;
using TaskLM.Models;
using TaskLM.Native;
using TaskLM.Onnx;
using TaskLM.Tests.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace TaskLM.Tests.Export;

/// <summary>A fact that runs only where Debian's python3-onnx is installed (apt-get install -y python3-onnx).</summary>
public sealed class OnnxCheckerFactAttribute : FactAttribute
{
    /// <summary>The interpreter that imports onnx: Debian's /usr/bin/python3 first (where python3-onnx installs), then PATH's.</summary>
    public static readonly string? Python = new[] { "/usr/bin/python3", "python3" }.FirstOrDefault(Imports);

    public OnnxCheckerFactAttribute()
    {
        if (Python is null) Skip = "python3-onnx is not installed (apt-get install -y python3-onnx)";
    }

    static bool Imports(string python)
    {
        try
        {
            using var p = Process.Start(new ProcessStartInfo(python, "-c \"import onnx\"") { RedirectStandardError = true, RedirectStandardOutput = true })!;
            p.WaitForExit(60_000);
            return p.HasExited && p.ExitCode == 0;
        }
        catch (System.ComponentModel.Win32Exception) { return false; }
    }
}

[Collection(SerialCollection.Name)]
public sealed class OnnxRunnerTests : IDisposable
{
    readonly string _tmp = Path.Combine(Path.GetTempPath(), "tasklm-onnx-run-" + Guid.NewGuid().ToString("N"));

    static OnnxRunnerTests() => TorchBackend.EnsureLoaded();

    public void Dispose() { if (Directory.Exists(_tmp)) Directory.Delete(_tmp, recursive: true); }

    static readonly string[] Texts = ["The quick brown fox jumps over the lazy dog.", "A short one.", "Naïve café owners sell croissants, don't they?"];

    /// <summary>A randomly initialised BERT head with the WordPiece fixture's vocabulary, saved as an HF folder with the
    /// tokenizer files, and its ONNX export. Returns (HF folder, ONNX folder).</summary>
    (string hf, string onnx) BertFolder(string task, int labels)
    {
        string hf = Path.Combine(_tmp, task + "-hf"), onnx = Path.Combine(_tmp, task + "-onnx");
        var ov = new Dictionary<string, object> { ["vocab_size"] = 2000, ["num_labels"] = labels, ["max_position_embeddings"] = 128 };
        var m = (BertPreTrainedModel)PreTrainedModel.FromPreset("bert-tiny", task, ov, seed: 7);
        m.SavePretrained(hf);
        foreach (var f in new[] { "tokenizer.json", "vocab.txt" }) File.Copy(Gpt2Tests.Fixture("tok-wordpiece", f), Path.Combine(hf, f));
        OnnxExport.Export(hf, onnx);
        return (hf, onnx);
    }

    static (ITaskModel model, IReadOnlyList<TokenizedInput> enc) TaskLmOn(string hf, IReadOnlyList<string> texts)
    {
        var tok = TokenizerLoader.Load(hf);
        var opts = new EncodeOptions { MaxLength = 128, Truncation = TruncationStrategy.LongestFirst };
        var enc = ModelInputBuilder.PadBatch(texts.Select(t => tok.EncodeForModel(t, null, opts)).ToList(), 0);
        var model = ModelFactory.FromPretrained(hf);
        model.Module.eval(); // no dropout: the reference is inference
        return (model, enc);
    }

    static Tensor T(IEnumerable<int[]> rows)
    {
        var r = rows.ToList();
        return tensor(r.SelectMany(x => x.Select(v => (long)v)).ToArray(), [r.Count, r[0].Length], dtype: int64);
    }

    static ModelBatch Batch(IReadOnlyList<TokenizedInput> enc) => new()
    {
        InputIds = T(enc.Select(e => e.InputIds)), AttentionMask = T(enc.Select(e => e.AttentionMask)), TokenTypeIds = T(enc.Select(e => e.TokenTypeIds)),
    };

    [Fact]
    public void ClassifyMatchesTaskLmProbabilities()
    {
        var (hf, dir) = BertFolder("classification", 3);
        using var onnx = OnnxTaskModel.Load(dir);
        var preds = onnx.Classify(Texts);
        var (m, enc) = TaskLmOn(hf, Texts);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var probs = nn.functional.softmax(m.Forward(Batch(enc)).Logits!, -1).to(float64).data<double>().ToArray();
        for (int b = 0; b < Texts.Length; b++)
        {
            var row = probs.AsSpan(b * 3, 3).ToArray();
            for (int c = 0; c < 3; c++) Assert.True(Math.Abs(row[c] - preds[b].Probabilities[c]) < 1e-5, $"text {b} class {c}: {preds[b].Probabilities[c]} vs TaskLM {row[c]}");
            Assert.Equal(Array.IndexOf(row, row.Max()), preds[b].LabelId);
            Assert.Equal($"LABEL_{preds[b].LabelId}", preds[b].Label);
        }
    }

    [Fact]
    public async Task TagAgreesWithTheTorchRuntimePerWord()
    {
        // One exported tagger, three ways to run it: ONNX Runtime's own API, predict/serve's torch runtime on the HF
        // folder, and predict/serve's onnx runtime on the export. All tag the same words (whitespace-separated, by their
        // first piece, as training labels them) with the same tags and probabilities.
        var (hf, dir) = BertFolder("token-classification", 5);
        using var onnx = OnnxTaskModel.Load(dir);
        var tags = onnx.Tag(Texts);
        using var torchModel = TaskLM.Serving.TaskLMModel.Load(hf, new TaskLM.Serving.TaskLMModelOptions { Runtime = TaskLM.Serving.ModelRuntime.Torch, Device = CPU });
        using var onnxModel = TaskLM.Serving.TaskLMModel.Load(dir, new TaskLM.Serving.TaskLMModelOptions { Runtime = TaskLM.Serving.ModelRuntime.Onnx });
        var torchTags = await torchModel.TagAsync(Texts);
        var servedOnnx = await onnxModel.TagAsync(Texts);
        for (int b = 0; b < Texts.Length; b++)
        {
            var words = Texts[b].Split(' ', StringSplitOptions.RemoveEmptyEntries);
            Assert.Equal(words, tags[b].Select(t => t.Word));                       // per word, not per piece ("croissants," "don't")
            Assert.Equal(words, torchTags[b].Words.Select(t => t.Word));
            for (int w = 0; w < words.Length; w++)
            {
                var (o, t, so) = (tags[b][w], torchTags[b].Words[w], servedOnnx[b].Words[w]);
                Assert.Equal(Texts[b][o.Start..o.End], o.Word);
                Assert.Equal((t.Start, t.End, t.Tag), (o.Start, o.End, o.Tag));
                Assert.Equal((t.Start, t.End, t.Tag), (so.Start, so.End, so.Tag));
                Assert.True(Math.Abs(t.Score - o.Score) < 1e-5, $"text {b} word '{o.Word}': onnx {o.Score} vs torch {t.Score}");
                Assert.True(Math.Abs(t.Score - so.Score) < 1e-5, $"text {b} word '{o.Word}': served onnx {so.Score} vs torch {t.Score}");
            }
        }
    }

    [Fact]
    public void AnswerIsTheTorchRuntimesAnswer()
    {
        // The same QA encoding (question, then the context word by word) and the same longest answer on both runtimes.
        var (hf, dir) = BertFolder("question-answering", 2);
        using var onnx = OnnxTaskModel.Load(dir);
        string q = "Who sells croissants?", ctx = "In the old town, naive cafe owners sell croissants and strong coffee every morning.";
        var ans = onnx.Answer(q, ctx);
        using var torchModel = TaskLM.Serving.TaskLMModel.Load(hf, new TaskLM.Serving.TaskLMModelOptions { Runtime = TaskLM.Serving.ModelRuntime.Torch, Device = CPU });
        var expected = torchModel.Answer(q, ctx);
        Assert.NotEmpty(ans.Text);
        Assert.Equal(ctx[ans.Start..ans.End], ans.Text);
        Assert.Equal((expected.Text, expected.Start, expected.End), (ans.Text, ans.Start, ans.End));
        Assert.True(Math.Abs(expected.Score - ans.Score) < 1e-6, $"answer score {ans.Score} vs torch {expected.Score}");
    }

    [Fact]
    public void GreedyGenerationMatchesTaskLm()
    {
        string hf = Path.Combine(_tmp, "gpt2-hf"), dir = Path.Combine(_tmp, "gpt2-onnx");
        var m = (Gpt2)PreTrainedModel.FromPretrained(Gpt2Tests.Fixture("gpt2-tiny"), family: Gpt2Family.Instance);
        m.SavePretrained(hf);
        TokenizerLoader.Load("gpt2").Save(hf);
        OnnxExport.Export(hf, dir);
        using var onnx = OnnxTaskModel.Load(dir);
        Assert.NotNull(onnx.Tokenizer);
        string prompt = "In the beginning God created";
        var ids = onnx.Tokenizer!.Encode(prompt);
        var ours = Generation.Generate(m, [ids], new GenerationOptions { MaxNewTokens = 12, EosTokenId = -1 })[0];
        var theirs = onnx.Generate(ids, 12, eosTokenId: -1).ToArray();
        Assert.Equal(ours, theirs);
        Assert.Equal(onnx.Tokenizer.Decode(ours, skipSpecialTokens: true), onnx.GenerateText(prompt, 12));
    }

    [Fact]
    public void BatchedGreedyGenerationWithLeftPaddingMatchesTaskLm()
    {
        // Prompts of three lengths in one batch (left-padded, positions from the mask), and one that stops at EOS
        // early when EOS is set to the id it generates first.
        string dir = Path.Combine(_tmp, "gpt2-batch");
        OnnxExport.Export(Gpt2Tests.Fixture("gpt2-tiny"), dir);
        using var onnx = OnnxTaskModel.Load(dir);
        var m = (Gpt2)PreTrainedModel.FromPretrained(Gpt2Tests.Fixture("gpt2-tiny"), family: Gpt2Family.Instance);
        IReadOnlyList<int>[] prompts = [[464, 3290, 318, 257, 1332, 286], [1212, 318], [50256, 40, 588, 257]];
        var ours = Generation.Generate(m, prompts, new GenerationOptions { MaxNewTokens = 10, EosTokenId = -1 });
        var streamed = new List<(int, int)>();
        var theirs = onnx.GenerateBatch(prompts, 10, eosTokenId: -1, onToken: (r, t) => streamed.Add((r, t)));
        for (int r = 0; r < prompts.Length; r++) Assert.Equal(ours[r], theirs[r]);
        Assert.Equal(30, streamed.Count);
        int eos = ours[1][2];
        var ours2 = Generation.Generate(m, prompts, new GenerationOptions { MaxNewTokens = 10, EosTokenId = eos });
        var theirs2 = onnx.GenerateBatch(prompts, 10, eosTokenId: eos);
        for (int r = 0; r < prompts.Length; r++) Assert.Equal(ours2[r], theirs2[r]);
        Assert.Equal(Array.IndexOf(ours[1], eos) + 1, theirs2[1].Length);        // stopped at the first EOS
        Assert.True(theirs2.Any(row => row.Length == 10), "the batch ran on for the rows that had not stopped");
    }

    [Fact]
    public void HfExportMergesLoraAndReloadsWithPeftLogits()
    {
        // The PEFT adapter fixture merged into its base: a plain HF folder whose logits are PEFT's (not merged) ones.
        var exp = JsonNode.Parse(File.ReadAllText(Gpt2Tests.Fixture("lora.expected.json")))!;
        string outDir = Path.Combine(_tmp, "merged");
        var r = CliRunner.Run("export", "--model", Gpt2Tests.Fixture("lora-adapter"), "--base", Gpt2Tests.Fixture("lora-base"), "--format", "hf", "--out", outDir, "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.True(File.Exists(Path.Combine(outDir, "config.json")) && File.Exists(Path.Combine(outDir, "model.safetensors")));
        Assert.False(File.Exists(Path.Combine(outDir, "adapter_config.json")));
        var merged = ModelFactory.FromPretrained(outDir);
        Assert.Equal("causal-lm", merged.Task);
        var ids = exp["input_ids"]![0]!.AsArray().Select(x => x!.GetValue<long>()).ToArray();
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var logits = merged.Forward(new ModelBatch { InputIds = tensor(ids, [1, ids.Length]) }).Logits!.to(float64).data<double>().ToArray();
        var want = Gpt2Tests.Flat(exp["logits"]);
        Assert.Equal(want.Length, logits.Length);
        double worst = want.Zip(logits, (a, b) => Math.Abs(a - b)).Max();
        Assert.True(worst < 1e-4, $"merged export logits differ from PEFT's by {worst}");

        // And the same export again as ONNX, through the verb: ONNX Runtime gives PEFT's logits too.
        string onnxDir = Path.Combine(_tmp, "merged-onnx");
        r = CliRunner.Run("export", "--model", Gpt2Tests.Fixture("lora-adapter"), "--base", Gpt2Tests.Fixture("lora-base"), "--format", "onnx", "--out", onnxDir);
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.False(Directory.Exists(Path.Combine(onnxDir, ".hf-staging")));
        using var onnx = OnnxTaskModel.Load(onnxDir);
        var ol = onnx.Forward([ids])["logits"].Data;
        worst = want.Zip(ol, (a, b) => Math.Abs(a - b)).Max();
        Assert.True(worst < 1e-4, $"ONNX export of the merged LoRA model differs from PEFT's logits by {worst}");
    }

    [Fact]
    public void HfExportOfAPytorchBinFolderReloadsWithHfLogitsAndOnnxMatches()
    {
        // pytorch_model.bin in, model.safetensors out; the reloaded model and the ONNX export both give HF's logits.
        var exp = Gpt2Tests.Expected("gpt2-bin");
        string hf = Path.Combine(_tmp, "bin-hf"), dir = Path.Combine(_tmp, "bin-onnx");
        Assert.True(CliRunner.Run("export", "--model", Gpt2Tests.Fixture("gpt2-bin"), "--format", "hf", "--out", hf) is { ExitCode: 0 });
        Assert.True(File.Exists(Path.Combine(hf, "model.safetensors")));
        var ids = exp["input_ids"]!.AsArray().Select(r => r!.AsArray().Select(x => x!.GetValue<long>()).ToArray()).ToArray();
        var want = Gpt2Tests.Flat(exp["logits"]);
        var m = ModelFactory.FromPretrained(hf);
        double[] got;
        using (var scope = NewDisposeScope())
        using (no_grad())
            got = m.Forward(new ModelBatch { InputIds = tensor(ids.SelectMany(r => r).ToArray(), [ids.Length, ids[0].Length]) }).Logits!.to(float64).data<double>().ToArray();
        Assert.True(want.Zip(got, (a, b) => Math.Abs(a - b)).Max() < 1e-4, "reloaded HF export");
        var r = CliRunner.Run("export", "--model", Gpt2Tests.Fixture("gpt2-bin"), "--format", "onnx", "--out", dir);
        Assert.True(r.ExitCode == 0, r.Stderr);
        using var onnx = OnnxTaskModel.Load(dir);
        Assert.True(want.Zip(onnx.Forward(ids)["logits"].Data, (a, b) => Math.Abs(a - b)).Max() < 1e-4, "ONNX export of a pytorch_model.bin folder");
    }

    [Fact]
    public void HfExportShipsTheTokenizerAndLabels()
    {
        var (hf, _) = BertFolder("token-classification", 3);
        string outDir = Path.Combine(_tmp, "tok-export");
        var r = CliRunner.Run("export", "--model", hf, "--format", "hf", "--out", outDir);
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.True(File.Exists(Path.Combine(outDir, "tokenizer.json")) && File.Exists(Path.Combine(outDir, "vocab.txt")));
        string text = Texts[2];
        Assert.Equal(TokenizerLoader.Load(hf).Encode(text), TokenizerLoader.Load(outDir).Encode(text));
        var cfg = JsonNode.Parse(File.ReadAllText(Path.Combine(outDir, "config.json")))!;
        Assert.Equal("BertForTokenClassification", (string)cfg["architectures"]![0]!);
        Assert.Equal(3, cfg["id2label"]!.AsObject().Count);
    }

    [Fact]
    public void ExportVerbRefusesBadInputWithOneClearLine()
    {
        string outDir = Path.Combine(_tmp, "bad");
        var r = CliRunner.Run("export", "--model", Gpt2Tests.Fixture("gpt2-tiny"), "--format", "tflite", "--out", outDir);
        Assert.NotEqual(0, r.ExitCode);
        Assert.Contains("tflite", r.Stderr);
        r = CliRunner.Run("export", "--model", Path.Combine(_tmp, "no-such-model"), "--format", "onnx", "--out", outDir);
        Assert.NotEqual(0, r.ExitCode);
        Assert.Contains("no-such-model", r.Stderr);
        Assert.False(File.Exists(Path.Combine(outDir, "model.onnx")));
        // Exporting over the model itself is refused before anything is written.
        string copy = Path.Combine(_tmp, "gpt2-copy");
        Directory.CreateDirectory(copy);
        foreach (var f in Directory.GetFiles(Gpt2Tests.Fixture("gpt2-tiny"))) File.Copy(f, Path.Combine(copy, Path.GetFileName(f)));
        var before = File.GetLastWriteTimeUtc(Path.Combine(copy, "model.safetensors"));
        r = CliRunner.Run("export", "--model", copy, "--format", "hf", "--out", copy);
        Assert.NotEqual(0, r.ExitCode);
        Assert.Contains("--out", r.Stderr);
        Assert.Equal(before, File.GetLastWriteTimeUtc(Path.Combine(copy, "model.safetensors")));
        // An adapter without a base names the option that fixes it.
        r = CliRunner.Run("export", "--model", Gpt2Tests.Fixture("lora-adapter"), "--format", "onnx", "--out", outDir);
        Assert.NotEqual(0, r.ExitCode);
        Assert.Contains("--base", r.Stderr);
    }

    [Fact]
    public void BrokenWeightsOrConfigNameTheFile()
    {
        string dir = Path.Combine(_tmp, "broken");
        Directory.CreateDirectory(dir);
        File.Copy(Gpt2Tests.Fixture("gpt2-tiny", "config.json"), Path.Combine(dir, "config.json"));
        var bytes = File.ReadAllBytes(Gpt2Tests.Fixture("gpt2-tiny", "model.safetensors"));
        File.WriteAllBytes(Path.Combine(dir, "model.safetensors"), bytes[..(bytes.Length / 2)]);     // cut in half
        var e = Assert.Throws<InvalidDataException>(() => OnnxExport.Export(dir, Path.Combine(_tmp, "broken-out")));
        Assert.Contains("model.safetensors", e.Message);
        Assert.False(File.Exists(Path.Combine(_tmp, "broken-out", "model.onnx")));
        // A config whose shapes disagree with the weights is refused before a graph is written.
        var cfg = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "config.json")))!.AsObject();
        cfg["n_embd"] = 64;
        File.WriteAllText(Path.Combine(dir, "config.json"), cfg.ToJsonString());
        File.Copy(Gpt2Tests.Fixture("gpt2-tiny", "model.safetensors"), Path.Combine(dir, "model.safetensors"), overwrite: true);
        e = Assert.Throws<InvalidDataException>(() => OnnxExport.Export(dir, Path.Combine(_tmp, "broken-out")));
        Assert.Contains("transformer.wte.weight", e.Message);
        Assert.False(OnnxTaskModel.IsExport(Path.Combine(_tmp, "broken-out")));
    }

    [OnnxCheckerFact]
    public void OnnxCheckerAcceptsTheExports()
    {
        foreach (var fixture in new[] { "gpt2-tiny", "gpt2-cls", "bert-cls", "bert-tok", "bert-qa" })
        {
            string dir = Path.Combine(_tmp, "check-" + fixture);
            string path = OnnxExport.Export(Gpt2Tests.Fixture(fixture), dir);
            var psi = new ProcessStartInfo(OnnxCheckerFactAttribute.Python!) { RedirectStandardError = true, RedirectStandardOutput = true };
            foreach (var a in new[] { "-c", "import onnx, sys; m = onnx.load(sys.argv[1]); onnx.checker.check_model(m, full_check=True); print(m.opset_import[0].version)", path })
                psi.ArgumentList.Add(a);
            using var p = Process.Start(psi)!;
            string stdout = p.StandardOutput.ReadToEnd(), stderr = p.StandardError.ReadToEnd();
            p.WaitForExit();
            Assert.True(p.ExitCode == 0, $"{fixture}: onnx.checker: {stderr}");
            Assert.Equal("17", stdout.Trim());
        }
    }
}
