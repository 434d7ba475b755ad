// `tasklm bench train --model` and `bench predict --runtime torch|onnx`: the JSON-line contract (figures are never asserted).
using System.Text.Json.Nodes;
using TaskLM.Tests.Serving;

namespace TaskLM.Tests.Cli;

public class BenchCliTests
{
    static List<JsonNode> Lines(CliResult r) =>
        r.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonNode.Parse(l)!).ToList();

    [Fact]
    public void Bench_train_takes_any_model_source_and_task_and_measures_the_gemm_rates_beside_it()
    {
        // A model folder (HF's BERT classifier fixture) fine-tuned as a classifier, one JSON line.
        string folder = ServingFixtures.Bert("bert-cls", ["a", "b", "c"]);
        var r = CliRunner.Run("bench", "train", "--model", folder, "--task", "classification", "--batch", "2", "--seq", "16", "--steps", "2",
            "--warmup", "0", "--gemm-size", "128", "--dropout", "0", "--threads", "1", "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var j = Assert.Single(Lines(r));
        Assert.Equal(("train", "classification", folder), ((string)j["bench"]!, (string)j["task"]!, (string)j["model"]!));
        Assert.Equal((2, 32, 4), ((int)j["n_layer"]!, (int)j["n_embd"]!, (int)j["n_head"]!));
        long all = (long)j["params"]!, nonEmbedding = (long)j["non_embedding_params"]!;
        // The fixture: 1,000 x 32 words, 64 x 32 positions, 2 x 32 types are looked up, not multiplied.
        Assert.Equal((1000 + 64 + 2) * 32, all - nonEmbedding);
        // 6 x the weights that multiply + 12 x layers x hidden x seq per token.
        Assert.Equal(Math.Round((6.0 * nonEmbedding + 12.0 * 2 * 32 * 16) / 1e6, 2), (double)j["mflop_per_token"]!, 6);
        Assert.True((double)j["tokens_per_s"]! > 0 && (double)j["gemm_gflops_fp32"]! > 0 && (double)j["gemm_gflops_bf16"]! > 0);
        Assert.Equal((double)j["gemm_gflops_fp32"]!, (double)j["matmul_gflops"]!);
        Assert.True(double.IsFinite((double)j["final_loss"]!));

        // --preset is --model's old name; a preset keeps its language-model task; --config reshapes it.
        r = CliRunner.Run("bench", "train", "--preset", "bert-tiny", "--config", "num_hidden_layers=1", "intermediate_size=64", "--batch", "2", "--seq", "16",
            "--steps", "1", "--warmup", "0", "--gemm-size", "128", "--threads", "1", "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        j = Assert.Single(Lines(r));
        Assert.Equal(("masked-lm", 1), ((string)j["task"]!, (int)j["n_layer"]!));

        r = CliRunner.Run("bench", "train", "--model", "bert-tiny", "--task", "question-answering", "--threads", "1");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("--task question-answering", r.Stderr);
    }

    [Fact]
    public void Bench_predict_gives_a_line_per_batch_size_for_the_torch_and_the_onnx_runtime()
    {
        string folder = ServingFixtures.Bert("bert-cls", ["a", "b", "c"]);
        string onnx = Path.Combine(ServingFixtures.TempDir(), "onnx");
        var e = CliRunner.Run("export", "--model", folder, "--format", "onnx", "--out", onnx, "--threads", "1");
        Assert.True(e.ExitCode == 0, e.Stderr);
        foreach (var (model, runtime) in new[] { (folder, "torch"), (onnx, "onnx") })
        {
            var r = CliRunner.Run("bench", "predict", "--model", model, "--runtime", runtime, "--seq", "24", "--batch", "1", "4", "--steps", "3",
                "--warmup", "1", "--threads", "1", "--json");
            Assert.True(r.ExitCode == 0, r.Stderr);
            var lines = Lines(r);
            Assert.Equal([1, 4], lines.Select(l => (int)l["batch"]!));
            foreach (var l in lines)
            {
                Assert.Equal(("predict", "classify", runtime, 24), ((string)l["bench"]!, (string)l["op"]!, (string)l["runtime"]!, (int)l["seq"]!));
                Assert.True((double)l["texts_per_s"]! > 0);
                Assert.True((double)l["p99_ms"]! >= (double)l["p50_ms"]!);
                Assert.Equal(3, (int)l["calls"]!);
            }
        }
    }
}
