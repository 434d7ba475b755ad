// model.config with a model folder as init: the keys override the folder's config.json, as HF's
// from_pretrained(folder, resid_pdrop=0.0) does (before, they were silently ignored and the folder's dropout used).
using System.Text.Json.Nodes;
using TaskLM.Models;
using TaskLM.Tasks;
using static TorchSharp.torch;

namespace TaskLM.Tests.Training;

[Collection(SerialCollection.Name)]
public class FolderConfigOverrideTests
{
    static string SaveTinyGpt2(string dir)
    {
        manual_seed(5);
        var b = ModelFactory.FromPreset("gpt2-tiny", "causal-lm", new Dictionary<string, object>
        {
            ["vocab_size"] = 64, ["n_layer"] = 1, ["n_head"] = 2, ["n_embd"] = 16, ["n_positions"] = 16, ["pad_token_id"] = 0,
        });
        b.SavePretrained(dir);
        b.Module.Dispose();
        return dir;
    }

    // Two forward passes in training mode: equal only when every dropout is off.
    static bool TrainModeIsDeterministic(ITaskModel m)
    {
        m.Module.train();
        var batch = new Collator("classification", 0, CPU).Collate([new Example { InputIds = [3, 9, 27, 44, 5, 6], Label = 1 }]);
        using var _ = no_grad();
        var a = m.Forward(batch).Logits!.clone();
        var b = m.Forward(batch).Logits!;
        return a.allclose(b, rtol: 0, atol: 0);
    }

    [Fact]
    public void Dropout_overrides_apply_to_a_folder_init_and_wrong_keys_are_refused()
    {
        string dir = Path.Combine(Path.GetTempPath(), "tasklm-folderov-" + Guid.NewGuid().ToString("N"));
        try
        {
            string folder = SaveTinyGpt2(Path.Combine(dir, "base"));
            Assert.Equal(0.1, (double)JsonNode.Parse(File.ReadAllText(Path.Combine(folder, "config.json")))!["resid_pdrop"]!);

            var plain = ModelFactory.FromPretrained(folder, "classification", 2);
            Assert.False(TrainModeIsDeterministic(plain), "the fixture's dropout 0.1 should make training-mode passes differ");

            var off = new Dictionary<string, object> { ["resid_pdrop"] = 0.0, ["embd_pdrop"] = 0.0, ["attn_pdrop"] = 0.0 };
            var noDrop = ModelFactory.FromPretrained(folder, "classification", 2, null, off);
            Assert.True(TrainModeIsDeterministic(noDrop), "model.config dropout 0 was not applied to the folder's model");
            string saved = Path.Combine(dir, "saved");
            ((PreTrainedModel)noDrop).SavePretrained(saved);
            Assert.Equal(0.0, (double)JsonNode.Parse(File.ReadAllText(Path.Combine(saved, "config.json")))!["resid_pdrop"]!);

            // A key HF's GPT-2 config reads but this config.json lacks (pad_token_id on an HF gpt2 folder) is accepted.
            var j = JsonNode.Parse(File.ReadAllText(Path.Combine(folder, "config.json")))!.AsObject();
            j.Remove("pad_token_id");
            File.WriteAllText(Path.Combine(folder, "config.json"), j.ToJsonString());
            var padded = ModelFactory.FromPretrained(folder, "classification", 2, null, new Dictionary<string, object> { ["pad_token_id"] = 7 });
            string saved2 = Path.Combine(dir, "saved2");
            ((PreTrainedModel)padded).SavePretrained(saved2);
            Assert.Equal(7, (int)JsonNode.Parse(File.ReadAllText(Path.Combine(saved2, "config.json")))!["pad_token_id"]!);

            var typo = Assert.Throws<ArgumentException>(() => ModelFactory.FromPretrained(folder, "classification", 2, null,
                new Dictionary<string, object> { ["resid_pdropp"] = 0.0 }));
            Assert.Contains("resid_pdropp", typo.Message);
            Assert.Contains("resid_pdrop", typo.Message.Replace("resid_pdropp", ""));   // the closest key suggested

            // A shape the weights do not have fails the load, naming a tensor (HF: size mismatch).
            var shape = Assert.ThrowsAny<Exception>(() => ModelFactory.FromPretrained(folder, "classification", 2, null,
                new Dictionary<string, object> { ["n_embd"] = 32 }));
            Assert.Contains("size mismatch", shape.Message);
        }
        finally { if (Directory.Exists(dir)) Directory.Delete(dir, true); }
    }
}
