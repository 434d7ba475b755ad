// The model-family contract: both families load, report and save through the one shared path, and answer
// the questions training, LoRA and the optimizer ask; checkpoints that do not fill the body are refused.
using System.Text.Json.Nodes;
using TaskLM.Models;
using TaskLM.Native;
using TaskLM.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace TaskLM.Tests.Models;

[Collection(SerialCollection.Name)]
public class FamilyContractTests
{
    static FamilyContractTests() => TorchBackend.EnsureLoaded();

    static string Fixture(string name) => Gpt2Tests.Fixture(name);

    static string CopyFixture(string name)
    {
        string dir = Path.Combine(Path.GetTempPath(), $"tasklm-family-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        foreach (var f in Directory.GetFiles(Fixture(name))) File.Copy(f, Path.Combine(dir, Path.GetFileName(f)));
        return dir;
    }

    static ModelBatch Batch(long vocab) => new() { InputIds = tensor(new long[] { 1, 5, 9, 3, 7, 2 }, new long[] { 1, 6 }).remainder(vocab) };

    [Theory]
    [InlineData("gpt2-tiny", "gpt2", "GPT2LMHeadModel")]
    [InlineData("gpt2-cls", "gpt2", "GPT2ForSequenceClassification")]
    [InlineData("bert-cls", "bert", "BertForSequenceClassification")]
    [InlineData("bert-qa", "bert", "BertForQuestionAnswering")]
    public void BothFamiliesLoadReportAndSaveThroughTheSharedPath(string fixture, string modelType, string architecture)
    {
        string dir = Path.Combine(Path.GetTempPath(), $"tasklm-family-{Guid.NewGuid():N}");
        try
        {
            using var scope = NewDisposeScope();
            var m = (PreTrainedModel)ModelFactory.FromPretrained(Fixture(fixture));
            Assert.Equal(modelType, m.Family.ModelType);
            Assert.Equal(architecture, m.Architecture);
            Assert.True(m.LoadReport!.IsExact, m.LoadReport.ToString());
            Assert.Equal($"All the weights of {architecture} were initialized from the model checkpoint at {Fixture(fixture)}.", m.LoadReport.ToString());
            m.LoadReport.EnsureUsableForInference();

            long vocab = (int)m.Config["vocab_size"]!;
            var before = m.Forward(Batch(vocab));
            m.SavePretrained(dir);
            // The saved folder is an HF folder with the same tensors under the same names and the same architecture.
            Assert.Equal(SafeTensors.Load(Path.Combine(Fixture(fixture), "model.safetensors")).Keys.Order(), SafeTensors.Load(Path.Combine(dir, "model.safetensors")).Keys.Order());
            Assert.Equal(architecture, JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "config.json")))!["architectures"]![0]!.GetValue<string>());

            var back = (PreTrainedModel)ModelFactory.FromPretrained(dir);
            Assert.True(back.LoadReport!.IsExact, back.LoadReport.ToString());
            var after = back.Forward(Batch(vocab));
            foreach (var (a, b) in new[] { (before.Logits, after.Logits), (before.StartLogits, after.StartLogits) })
                if (a is not null) Assert.True(a.allclose(b!, rtol: 0, atol: 1e-6), $"{fixture}: logits changed through save/load");
        }
        finally { if (Directory.Exists(dir)) Directory.Delete(dir, true); }
    }

    [Fact]
    public void FamiliesAnswerTheQuestionsTrainingLoraAndTheOptimizerAsk()
    {
        using var scope = NewDisposeScope();
        var gpt = ModelFactory.FromPretrained(Fixture("gpt2-cls"));
        var bert = ModelFactory.FromPretrained(Fixture("bert-cls"));
        Assert.Equal(1, Strategies.LayerOf(gpt, "transformer.h.1.attn.c_attn.weight"));
        Assert.Equal(1, Strategies.LayerOf(bert, "bert.encoder.layer.1.output.dense.weight"));
        Assert.Equal(-1, Strategies.LayerOf(bert, "transformer.h.1.attn.c_attn.weight")); // another family's pattern
        Assert.True(Strategies.IsEmbedding(gpt, "transformer.wpe.weight"));
        Assert.True(Strategies.IsEmbedding(bert, "bert.embeddings.LayerNorm.weight"));
        Assert.True(Strategies.IsHead(gpt, "score.weight"));
        Assert.False(Strategies.IsHead(bert, "bert.pooler.dense.weight"));
        Assert.Equal(new[] { "c_attn" }, LoraConfig.DefaultTargets("gpt2"));
        Assert.Equal(new[] { "query", "value" }, LoraConfig.DefaultTargets("bert"));
        Assert.True(gpt.Family!.FanInFanOut);
        Assert.False(bert.Family!.FanInFanOut);
        Assert.Equal("gpt2", ModelFactory.DefaultTokenizerSource("gpt2-tiny"));
        Assert.Null(ModelFactory.DefaultTokenizerSource("bert-tiny"));
        // The decay grouping finds each family's norm modules by the family's declared types.
        var (_, noDecay) = AdamW.HfGroups(bert.Module, 0.01);
        Assert.Contains("bert.embeddings.LayerNorm.weight", noDecay.Names);
        Assert.Contains("bert.encoder.layer.0.attention.output.LayerNorm.weight", noDecay.Names);
        var (_, gptNoDecay) = AdamW.HfGroups(gpt.Module, 0.01);
        Assert.Contains("transformer.h.0.ln_1.weight", gptNoDecay.Names);
        Assert.Equal(ModelFamilies.All.Select(f => f.ModelType).Order(), ModelPresets.All.Select(p => p.Family.ModelType).Distinct().Order());
    }

    /// <summary>The two family lists (TorchSharp's ModelFamilies.All, the libtorch-free HfFamilies.All) name the same
    /// families: a family added to one and not the other fails here, naming its model_type.</summary>
    [Fact]
    public void EveryTorchFamilyHasItsHuggingFaceRowAndEveryRowItsFamily()
    {
        Assert.Equal(TaskLM.Hf.HfFamilies.All.Select(f => f.ModelType).Order(), ModelFamilies.All.Select(f => f.ModelType).Order());
        foreach (var f in ModelFamilies.All) Assert.Same(TaskLM.Hf.HfFamilies.Find(f.ModelType), f.Names);
    }

    /// <summary>Issue 11: a config.json that describes more layers than the weights hold, one without n_layer
    /// (HF's default 12), and checkpoints with a body tensor removed are refused for inference, naming keys.</summary>
    [Theory]
    [InlineData("gpt2-tiny", "n_layer", "3", "transformer.h.2.", "describes 3 layers, the checkpoint holds 2")]
    [InlineData("gpt2-tiny", "n_layer", null, "transformer.h.10.", "describes 12 layers, the checkpoint holds 2")]
    [InlineData("gpt2-tiny", "n_layer", "1", "transformer.h.1.", "describes 1 layers, the checkpoint holds 2")]
    [InlineData("bert-cls", "num_hidden_layers", "3", "bert.encoder.layer.2.", "describes 3 layers, the checkpoint holds 2")]
    public void ConfigThatTheCheckpointDoesNotFillIsRefusedNamingTheKeys(string fixture, string key, string? value, string named, string hint)
    {
        string dir = CopyFixture(fixture);
        try
        {
            using var scope = NewDisposeScope();
            var cfg = HfCheckpoint.LoadConfig(dir);
            if (value == null) cfg.Remove(key); else cfg[key] = int.Parse(value);
            HfCheckpoint.WriteConfig(dir, cfg);
            var e = Assert.Throws<ModelWeightsException>(() => ModelFactory.ForInference(dir));
            Assert.Contains(named, e.Message);
            Assert.Contains(hint, e.Message);
            Assert.Contains(dir, e.Message);
            // Training still loads it, and the report says what is new or unused, as HF does.
            var m = (PreTrainedModel)ModelFactory.FromPretrained(dir);
            Assert.False(m.LoadReport!.BodyComplete);
            Assert.Contains(named, string.Join("\n", m.LoadReport.Warnings()));
        }
        finally { Directory.Delete(dir, true); }
    }

    [Theory]
    [InlineData("gpt2-tiny", "transformer.wte.weight")]
    [InlineData("bert-cls", "bert.encoder.layer.1.output.dense.weight")]
    public void RemovedBodyTensorIsRefusedForInference(string fixture, string removed)
    {
        string dir = CopyFixture(fixture);
        try
        {
            using var scope = NewDisposeScope();
            var sd = SafeTensors.Load(Path.Combine(dir, "model.safetensors"));
            Assert.True(sd.Remove(removed));
            SafeTensors.Save(Path.Combine(dir, "model.safetensors"), sd);
            var e = Assert.Throws<ModelWeightsException>(() => ModelFactory.ForInference(dir));
            Assert.Contains(removed, e.Message);
            Assert.Contains("lacks 1 weight", e.Message);
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void NewHeadIsNormalForTrainingButRefusedForInference()
    {
        using var scope = NewDisposeScope();
        var m = (PreTrainedModel)ModelFactory.FromPretrained(Fixture("gpt2-bin"), "classification", labels: ["ham", "spam"]);
        Assert.True(m.LoadReport!.BodyComplete);
        Assert.Contains("newly initialized: [score.weight]. You should probably TRAIN", m.LoadReport.ToString());
        m.LoadReport.EnsureUsableForInference(allowNewHead: true);
        var e = Assert.Throws<ModelWeightsException>(() => ModelFactory.ForInference(Fixture("gpt2-bin"), "classification"));
        Assert.Contains("score.weight", e.Message);
    }
}
