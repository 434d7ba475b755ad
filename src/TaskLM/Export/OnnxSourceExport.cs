// `tasklm export --format onnx` from anything TaskLM loads (a run, a LoRA adapter, an HF folder): TaskLM.Onnx builds
// graphs from HF folders only, so the model is first written as one (an adapter merged) in a staging folder.
using TaskLM.Onnx;

namespace TaskLM.Export;

/// <summary>Writes an <see cref="ExportSource"/> as an ONNX folder (<see cref="OnnxExport"/>'s layout).</summary>
public static class OnnxSourceExport
{
    /// <summary>The staging folder inside the output, removed whether the export succeeds or fails.</summary>
    public const string StagingFolder = ".hf-staging";

    /// <summary>Exports <paramref name="src"/> into <paramref name="outDir"/> and returns the model task it wrote;
    /// <paramref name="quantize"/>, <paramref name="int8Ops"/>, <paramref name="reduceRange"/> and <paramref name="keepFp32"/>
    /// as <see cref="OnnxExport.Export"/> takes them.</summary>
    public static string Export(ExportSource src, string outDir, string? quantize = null, Int8Ops int8Ops = Int8Ops.Contrib, bool reduceRange = false,
        IReadOnlyCollection<string>? keepFp32 = null)
    {
        string staging = Path.Combine(outDir, StagingFolder);
        try
        {
            string task = HfExport.Export(src, staging).Task;
            OnnxExport.Export(staging, outDir, task, quantize, int8Ops, reduceRange, keepFp32);
            return task;
        }
        finally { if (Directory.Exists(staging)) Directory.Delete(staging, recursive: true); }
    }
}
