// strategy.method: features end to end through `tasklm train` on a tiny BERT, best/ reloaded and exported to ONNX, the
// config refusals, BERT's classifier_pooling "mean", and the logistic regression against a closed form.
using System.Text.Json;
using System.Text.Json.Nodes;
using TaskLM.Data.Tokenization;
using TaskLM.Models;
using TaskLM.Onnx;
using TaskLM.Recipes;
using TaskLM.Tasks;
using TaskLM.Tests.Transfer;
using TaskLM.Training;
using static TorchSharp.torch;

namespace TaskLM.Tests.Training;

public class FeatureTrainingTests
{
    static readonly Dictionary<string, string[]> Topics = new()
    {
        ["sport"] = ["goal", "match", "team", "score", "league", "coach", "player", "win"],
        ["food"] = ["bread", "soup", "cook", "taste", "dinner", "spice", "bake", "salt"],
        ["tech"] = ["code", "chip", "server", "data", "cloud", "robot", "laptop", "app"],
    };

    // Sentences of 6..20 words, 40% of them topic words, the rest shared filler (lengths vary: padding matters).
    static void WriteJsonl(string path, int n, int seed)
    {
        var rng = new Random(seed);
        string[] filler = ["the", "a", "today", "we", "saw", "very", "and", "new", "of"], labels = ["sport", "food", "tech"];
        File.WriteAllLines(path, Enumerable.Range(0, n).Select(_ =>
        {
            string label = labels[rng.Next(3)];
            var words = Enumerable.Range(0, rng.Next(6, 20)).Select(_ => rng.NextDouble() < 0.4 ? Topics[label][rng.Next(8)] : filler[rng.Next(filler.Length)]);
            return new JsonObject { ["text"] = string.Join(' ', words), ["label"] = label }.ToJsonString();
        }));
    }

    static string Tok => TextClassificationRecipeTests.Repo("tests", "fixtures", "hf", "tok-wordpiece");

    /// <summary>A random-init BERT (bert-tiny) still gives linearly separable mean-pooled features for topic words: the
    /// head must learn (validation macro-F1 far above the 1/3 of chance); best/ reloaded through ModelFactory (file order,
    /// other padding) gives the logits of the fitted head on the cached features; the ONNX export too; a rerun reads the cache.</summary>
    [Fact]
    public void Features_run_learns_and_best_reloads_to_the_heads_logits()
    {
        string dir = Directory.CreateTempSubdirectory("tasklm-features-").FullName;
        try
        {
            string train = Path.Combine(dir, "train.jsonl"), val = Path.Combine(dir, "val.jsonl"), test = Path.Combine(dir, "test.jsonl"), run = Path.Combine(dir, "run");
            WriteJsonl(train, 240, 1); WriteJsonl(val, 60, 2); WriteJsonl(test, 60, 3);
            string recipe = Path.Combine(dir, "r.yaml");
            File.WriteAllText(recipe, $"task: classification\nmodel: {{init: bert-tiny}}\ntokenizer: '{Tok}'\n" +
                $"data: {{train: '{train}', validation: '{val}', test: '{test}', max_length: 32}}\nstrategy: {{method: features}}\n" +
                $"training: {{tensorboard: false, class_weights: balanced}}\noutput_dir: '{run}'\n");
            var r = CliRunner.Run(["train", recipe, "--threads", "2", "--json"], timeoutSeconds: 600);
            Assert.True(r.ExitCode == 0, r.Stderr + r.Stdout);
            string log = File.ReadAllText(Path.Combine(run, "train.log"));
            Assert.Contains("features: encode 240 training + 60 validation texts once", log);
            Assert.Matches(@"features: first batch at [\d,]+ tokens/s: encoding takes about", log);
            Assert.Contains("by validation macro_f1", log);

            // The run folder contract: recipe.resolved.yaml, metrics.jsonl (one line per C), best/, eval.json with the baseline.
            Assert.True(File.Exists(Path.Combine(run, "recipe.resolved.yaml")));
            var lines = File.ReadAllLines(Path.Combine(run, "metrics.jsonl")).Select(l => JsonNode.Parse(l)!).ToList();
            Assert.Equal([0.001, 0.01, 0.1, 1, 10], lines.Select(l => l["eval"]!["c"]!.GetValue<double>()));
            var result = JsonNode.Parse(r.Stdout)!;
            Assert.True(result["eval"]!["macro_f1"]!.GetValue<double>() > 0.8, $"validation macro_f1 {result["eval"]!["macro_f1"]}");
            var eval = JsonNode.Parse(File.ReadAllText(Path.Combine(run, "eval.json")))!;
            Assert.Equal("best", eval["model"]!.GetValue<string>());
            Assert.True(eval["metrics"]!["macro_f1"]!.GetValue<double>() > 0.7, $"test macro_f1 {eval["metrics"]!["macro_f1"]}");
            Assert.NotNull(eval["baseline"]);
            string best = Path.Combine(run, "best");
            Assert.Equal("mean", JsonNode.Parse(File.ReadAllText(Path.Combine(best, "config.json")))!["classifier_pooling"]!.GetValue<string>());

            // best/ through ModelFactory, validation in file order (batches of 16, other padding than the encoding's
            // length-sorted batches), against the head on the cached validation features.
            var resolved = RecipeLoader.Load(Path.Combine(run, "recipe.resolved.yaml"));
            var tok = TokenizerLoader.Load(best);
            var model = ModelFactory.FromPretrained(best, "classification");
            model.Module.eval();
            var examples = TaskData.Load(resolved, val, tok, ["food", "sport", "tech"]).Examples;
            var collator = new Collator("classification", 0, CPU);
            using var scope = NewDisposeScope();
            Tensor viaModel;
            using (no_grad())
                viaModel = cat(examples.Chunk(16).Select(ch => model.Forward(collator.Collate(ch)).Logits!).ToList(), 0);   // (60, 3)
            var cached = Directory.GetFiles(Path.Combine(run, "cache"), "features-validation-*.safetensors").Single();
            var features = SafeTensors.Load(cached)["features"];                                             // (60, H)
            var weights = SafeTensors.Load(Path.Combine(best, "model.safetensors"));
            var viaHead = features.matmul(weights["classifier.weight"].t()).add(weights["classifier.bias"]);  // (60, 3)
            Assert.Equal(new long[] { 60, 3 }, viaModel.shape);
            double diff = viaModel.sub(viaHead).abs().max().item<float>();
            Assert.True(diff < 1e-4, $"best/ logits differ from the head's by {diff}");
            Assert.Equal(viaHead.argmax(-1).data<long>().ToArray(), viaModel.argmax(-1).data<long>().ToArray());

            // The ONNX export classifies from the same mean (ONNX Runtime, a padded batch).
            string onnxDir = Path.Combine(dir, "onnx");
            var ex = CliRunner.Run("export", "--model", run, "--format", "onnx", "--out", onnxDir);
            Assert.True(ex.ExitCode == 0, ex.Stderr + ex.Stdout);
            using (var onnx = OnnxTaskModel.Load(onnxDir))
            {
                var few = examples.Take(6).ToList();
                int t = few.Max(e => e.InputIds.Length);
                long[][] ids = few.Select(e => e.InputIds.Select(i => (long)i).Concat(Enumerable.Repeat(0L, t - e.InputIds.Length)).ToArray()).ToArray();
                long[][] mask = few.Select(e => Enumerable.Range(0, t).Select(i => i < e.InputIds.Length ? 1L : 0L).ToArray()).ToArray();
                var logits = onnx.Forward(ids, mask, few.Select(_ => new long[t]).ToArray())["logits"].Data;   // (6·3)
                var expect = viaModel[..6].contiguous().data<float>().ToArray();
                for (int i = 0; i < expect.Length; i++) Assert.True(Math.Abs(expect[i] - logits[i]) < 1e-4, $"onnx logit {i}: {logits[i]} vs {expect[i]}");
            }

            // A rerun reads the cached features (no encoding) and fits the same head.
            var again = CliRunner.Run(["train", recipe, "--threads", "2", "--overwrite"], timeoutSeconds: 600);
            Assert.True(again.ExitCode == 0, again.Stderr + again.Stdout);
            Assert.Contains("features train: 240 texts read from the cache", again.Stdout + again.Stderr);
            var weights2 = SafeTensors.Load(Path.Combine(best, "model.safetensors"));
            Assert.Equal(weights["classifier.weight"].data<float>().ToArray(), weights2["classifier.weight"].data<float>().ToArray());
        }
        finally { Directory.Delete(dir, true); }
    }

    /// <summary>features is for classification with a BERT-family encoder: another task is refused by the recipe check,
    /// a GPT-2 model when the model is loaded, --resume with the way to rerun; each message says why.</summary>
    [Fact]
    public void Features_refuses_other_tasks_gpt2_models_and_resume()
    {
        string dir = Directory.CreateTempSubdirectory("tasklm-features-").FullName;
        try
        {
            string train = Path.Combine(dir, "train.jsonl");
            WriteJsonl(train, 40, 1);
            string lm = Path.Combine(dir, "lm.yaml");
            File.WriteAllText(lm, $"task: causal-lm\nmodel: {{init: gpt2-tiny}}\ntokenizer: gpt2\ndata: {{train: '{train}'}}\nstrategy: {{method: features}}\noutput_dir: '{Path.Combine(dir, "lm")}'\n");
            var r = CliRunner.Run("recipe", "validate", lm);
            Assert.Equal(1, r.ExitCode);
            Assert.Contains("strategy.method: features trains a classifier on frozen sentence features; it needs task: classification, not 'causal-lm'", r.Stderr);
            r = CliRunner.Run("recipe", "validate", lm, "task=classification", "strategy.method=featurs");
            Assert.Contains("did you mean 'features'?", r.Stderr);

            string gpt = Path.Combine(dir, "gpt.yaml");
            File.WriteAllText(gpt, $"task: classification\nmodel: {{init: gpt2-tiny, config: {{n_layer: 1, n_embd: 32, n_head: 2}}}}\ntokenizer: gpt2\ndata: {{train: '{train}', max_length: 16}}\nstrategy: {{method: features}}\noutput_dir: '{Path.Combine(dir, "gpt")}'\n");
            r = CliRunner.Run(["train", gpt, "--threads", "2"], timeoutSeconds: 300);
            Assert.Equal(1, r.ExitCode);
            string said = string.Join(" ", (r.Stderr + r.Stdout).Split('\n', StringSplitOptions.TrimEntries));   // lines wrap at COLUMNS
            Assert.Contains("strategy.method: features needs a BERT-family encoder", said);
            Assert.Contains("is a gpt2 model", said);
            Assert.False(File.Exists(Path.Combine(dir, "gpt", "recipe.resolved.yaml")), "nothing committed to the run folder");

            string bert = Path.Combine(dir, "bert.yaml");
            File.WriteAllText(bert, $"task: classification\nmodel: {{init: bert-tiny}}\ntokenizer: '{Tok}'\ndata: {{train: '{train}', max_length: 16}}\nstrategy: {{method: features}}\noutput_dir: '{Path.Combine(dir, "bert")}'\n");
            r = CliRunner.Run(["train", bert, "--threads", "2", "--resume", "latest"], timeoutSeconds: 300);
            Assert.Equal(1, r.ExitCode);
            said = string.Join(" ", (r.Stderr + r.Stdout).Split('\n', StringSplitOptions.TrimEntries));
            Assert.Contains("strategy.method: features writes no checkpoints to resume", said);
        }
        finally { Directory.Delete(dir, true); }
    }

    /// <summary>classifier_pooling "mean" (TaskLM's/ModernBERT's key): logits = classifier(masked mean of last_hidden_state),
    /// padding ignored; the key round-trips through config.json, is absent by default (HF's BERT has none), and a bad value is refused.</summary>
    [Fact]
    public void Bert_classifier_pooling_mean_classifies_the_masked_mean()
    {
        manual_seed(3);
        var m = (BertForSequenceClassification)ModelFactory.FromPreset("bert-tiny", "classification",
            new Dictionary<string, object> { ["num_hidden_layers"] = 1, ["hidden_size"] = 32, ["num_attention_heads"] = 2, ["intermediate_size"] = 64, ["classifier_pooling"] = "mean", ["vocab_size"] = 100 });
        m.Module.eval();
        Assert.True(m.MeanPooling);
        using var scope = NewDisposeScope();
        var ids = tensor(new long[] { 2, 5, 7, 9, 3, 2, 6, 3, 0, 0 }, [2, 5]);
        var mask = tensor(new long[] { 1, 1, 1, 1, 1, 1, 1, 1, 0, 0 }, [2, 5]);
        using (no_grad())
        {
            var logits = m.Forward(new ModelBatch { InputIds = ids, AttentionMask = mask }).Logits!;          // (2, 2)
            var seq = m.LastHiddenState(ids, mask);                                                              // (2, 5, 32)
            var sd = m.Module.state_dict();
            var mean1 = seq[1, ..3].mean([0]);                                                                   // the 3 real tokens only
            var manual = stack([seq[0].mean([0]), mean1]).matmul(sd["classifier.weight"].t()).add(sd["classifier.bias"]);
            Assert.True(logits.sub(manual).abs().max().item<float>() < 1e-5);
            // The unpadded second row alone gives the same logits.
            var alone = m.Forward(new ModelBatch { InputIds = ids[1..2, ..3], AttentionMask = mask[1..2, ..3] }).Logits!;
            Assert.True(alone.sub(logits[1..2]).abs().max().item<float>() < 1e-5);
        }
        string dir = Directory.CreateTempSubdirectory("tasklm-pooling-").FullName;
        try
        {
            m.SavePretrained(dir);
            Assert.Equal("mean", JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "config.json")))!["classifier_pooling"]!.GetValue<string>());
            Assert.True(((BertForSequenceClassification)ModelFactory.FromPretrained(dir, "classification")).MeanPooling);
            var plain = ModelFactory.FromPreset("bert-tiny", "classification", new Dictionary<string, object> { ["num_hidden_layers"] = 1, ["hidden_size"] = 32, ["num_attention_heads"] = 2 });
            Assert.False(plain.Config.ContainsKey("classifier_pooling"));
            var bad = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "config.json")))!.AsObject();
            bad["classifier_pooling"] = "max";
            var e = Assert.Throws<InvalidDataException>(() => BertConfig.FromJson(bad, "config.json"));
            Assert.Contains("classifier_pooling 'max' is not one of cls, mean", e.Message);
        }
        finally { Directory.Delete(dir, true); }
    }

    /// <summary>The head's fit: binary logistic regression with C·Σ CE + ½w² on a 1-feature problem has the stationary
    /// point the gradient says (checked directly), and standardisation is folded back (raw features in, same logits).</summary>
    [Fact]
    public void Fit_reaches_the_stationary_point_of_sklearns_objective()
    {
        using var scope = NewDisposeScope();
        manual_seed(1);
        var x = cat([randn(50, 3).add(1), randn(50, 3).sub(1)], 0).mul(5).add(10);   // (100, 3), far from standardised
        var y = cat([zeros(50, dtype: int64), ones(50, dtype: int64)]);
        var head = FeatureTraining.Fit(x, y, 2, c: 0.5, classWeights: null);
        // Gradient of C·Σ CE + ½‖W‖² in raw terms is not zero (the penalty is on standardised weights), so check in the
        // standardised space: W_std = W_raw·σ must satisfy C·Σ (p − y)·z + W_std = 0.
        var mu = x.mean([0]);
        var sd = x.sub(mu).pow(2).mean([0]).sqrt();                                   // (3) population std
        var z = x.sub(mu).div(sd);
        var wStd = head.Weight.mul(sd);                                                // (2, 3)
        var logits = FeatureTraining.Logits(head, x);                                  // (100, 2)
        Assert.True(logits.sub(z.matmul(wStd.t()).add(head.Bias.add(head.Weight.matmul(mu)))).abs().max().item<float>() < 1e-3);
        var p = nn.functional.softmax(logits, 1).sub(nn.functional.one_hot(y, 2).to(float32));                  // (100, 2)
        var grad = p.t().matmul(z).mul(0.5).add(wStd);                                // (2, 3)
        Assert.True(grad.abs().max().item<float>() < 1e-3, $"gradient {grad.abs().max().item<float>()}");
        Assert.True(p.sum(new long[] { 0 }).abs().max().item<float>() < 1e-3, "the unpenalised bias: Σ (p − y) = 0");
    }
}
