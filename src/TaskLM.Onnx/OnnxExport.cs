// `tasklm export --format onnx`: an HF model folder → model.onnx beside its config.json and tokenizer files.
using Google.Protobuf;
using TaskLM.Hf;

namespace TaskLM.Onnx;

/// <summary>Writes an HF model folder (config.json + safetensors) as an ONNX folder: <c>model.onnx</c>, the
/// config.json, and the tokenizer and generation files copied, the layout HF optimum's exports have.</summary>
public static class OnnxExport
{
    /// <summary>Files copied beside model.onnx when the source folder has them.</summary>
    public static readonly string[] SideFiles =
    [
        "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
        "vocab.txt", "vocab.json", "merges.txt", "added_tokens.json",
    ];

    /// <summary>The model's metadata_props key that says how it was quantized (absent: fp32).</summary>
    public const string QuantizationKey = "quantization";
    /// <summary>Its value for <c>--quantize int8</c>.</summary>
    public const string Int8Dynamic = "int8 dynamic (weights per output channel, activations per tensor at run time)";
    /// <summary>The values <c>--quantize</c> takes.</summary>
    public static readonly string[] Quantizations = ["none", "int8"];

    /// <summary>Exports <paramref name="hfFolder"/> to <paramref name="outDir"/> and returns the path of model.onnx.
    /// <paramref name="task"/> defaults to the head config.json's architectures names. The model file is written to
    /// a temporary name and renamed, so a failed export never leaves a model.onnx that looks complete.
    /// <paramref name="quantize"/> "int8": dynamic int8 Linear layers in the encoder (BERT family only; see
    /// <see cref="OnnxGraph.DenseInt8"/>), written with <paramref name="int8Ops"/>, 7-bit weights with
    /// <paramref name="reduceRange"/>, the encoder Linear layers named in <paramref name="keepFp32"/> left fp32
    /// (<see cref="BertOnnx.Build"/>); null or "none": fp32.</summary>
    public static string Export(string hfFolder, string outDir, string? task = null, string? quantize = null, Int8Ops int8Ops = Int8Ops.Contrib, bool reduceRange = false,
        IReadOnlyCollection<string>? keepFp32 = null)
    {
        var cfg = HfConfig.Load(hfFolder);
        Int8Ops? int8 = quantize switch
        {
            null or "none" => null,
            "int8" when cfg.ModelType == "bert" => int8Ops,
            "int8" => throw new NotSupportedException($"{cfg.Source}: --quantize int8 is for BERT-family encoders (model_type bert); model_type '{cfg.ModelType}' has no int8 ONNX export (export it in fp32 without --quantize, or as GGUF q8_0 for a causal LM)"),
            _ => throw new ArgumentException($"--quantize '{quantize}': expected one of {string.Join(", ", Quantizations)}"),
        };
        var weights = HfWeights.Load(hfFolder);
        task ??= cfg.Task;
        var model = cfg.ModelType switch
        {
            "gpt2" => Gpt2Onnx.Build(cfg, weights, task),
            "bert" => BertOnnx.Build(cfg, weights, task, int8, reduceRange, keepFp32),
            var t => throw new NotSupportedException($"{cfg.Source}: model_type '{t}' has no ONNX export (gpt2, bert)"),
        };
        if (model.CalculateSize() > int.MaxValue - 1024)
            throw new NotSupportedException($"{hfFolder}: the model is larger than 2 GB, protobuf's limit for one ONNX file (external data is not supported)");
        Directory.CreateDirectory(outDir);
        foreach (var f in SideFiles)
        {
            string src = Path.Combine(hfFolder, f), dst = Path.Combine(outDir, f);
            if (File.Exists(src) && Path.GetFullPath(src) != Path.GetFullPath(dst)) File.Copy(src, dst, overwrite: true);
        }
        string path = Path.Combine(outDir, "model.onnx"), tmp = path + ".tmp";
        using (var fs = File.Create(tmp)) model.WriteTo(fs);
        File.Move(tmp, path, overwrite: true);
        return path;
    }
}
