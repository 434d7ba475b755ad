// `tasklm export`: a run, LoRA adapter or HF folder → a self-contained HF folder (--format hf), an ONNX folder (--format onnx) or a GGUF file for llama.cpp/Ollama (--format gguf).
using System.CommandLine;
using System.Text.Json.Nodes;
using Spectre.Console;
using TaskLM.Export;
using TaskLM.Onnx;

namespace TaskLM.Cli.Commands;

public static class ExportCommand
{
    public static Command Create()
    {
        var model = new Global.ModelOption("The model to export: a run folder (best/, else the newest checkpoint), a LoRA adapter folder or a Hugging Face model folder");
        var format = new Option<string>("--format") { Description = "hf: HF folder with LoRA merged and tokenizer files; onnx: model.onnx (opset 17) beside config.json and tokenizer files; gguf: model.gguf (llama.cpp, Ollama) with the tokenizer and chat template, and an Ollama Modelfile", Required = true };
        format.AcceptOnlyFromAmong("hf", "onnx", "gguf");
        var outDir = new Option<string>("--out") { Description = "Folder to write (created; files already there with the same names are replaced); for gguf also a file name ending in .gguf", Required = true };
        var outType = new Option<string>("--outtype") { Description = "gguf: tensor type of the weight matrices, f32 | f16 | q8_0 (norms and biases stay f32), as llama.cpp's convert_hf_to_gguf.py --outtype", DefaultValueFactory = _ => "f16" };
        outType.AcceptOnlyFromAmong("f32", "f16", "q8_0");
        var quantize = new Option<string>("--quantize") { Description = "onnx: int8 = dynamic int8 quantization of a BERT-family encoder's Linear layers (weights int8 per output channel, activations quantized at run time; as ONNX Runtime's quantize_dynamic / optimum-cli onnxruntime quantize); none = fp32", DefaultValueFactory = _ => "none" };
        quantize.AcceptOnlyFromAmong(OnnxExport.Quantizations);
        // How the int8 layers are written (measured: bench/README.md); hidden, the default is the faster one.
        var int8Ops = new Option<string>("--int8-ops") { Description = "int8 operators: contrib (com.microsoft DynamicQuantizeMatMul) or onnx (DynamicQuantizeLinear + MatMulInteger, standard ONNX)", DefaultValueFactory = _ => "contrib", Hidden = true };
        int8Ops.AcceptOnlyFromAmong("contrib", "onnx");
        var reduceRange = new Option<bool>("--reduce-range") { Description = "With --quantize int8: 7-bit weights (ONNX Runtime's reduce_range), exact on CPUs without VNNI where 8-bit u8 x s8 products can saturate" };
        var exclude = new Option<string[]>("--int8-exclude") { Description = "With --quantize int8: encoder Linear layers kept fp32 (as ONNX Runtime's nodes_to_exclude): output.dense (in every layer), layer.5 (a whole layer), layer.5.output.dense", AllowMultipleArgumentsPerToken = true };
        var baseModel = new Option<string?>("--base") { Description = "Base HF folder of a LoRA adapter (default: the run's model.init or adapter_config.json's base_model_name_or_path)" };
        var tokenizer = new Option<string?>("--tokenizer") { Description = "Tokenizer folder or \"gpt2\" to ship with the model (default: the run's or the model folder's)" };
        var json = Global.JsonOption();
        var cmd = new Command("export", "Export a trained model as a Hugging Face folder, as ONNX (GPT-2 with past key/values under HF optimum's names), or as GGUF (Llama family and GPT-2 causal LMs)");
        foreach (var o in new Option[] { model, format, outDir, outType, quantize, int8Ops, reduceRange, exclude, baseModel, tokenizer, json }) cmd.Options.Add(o);
        cmd.SetAction(p =>
        {
            string? quant = p.GetValue(quantize) is "none" or null ? null : p.GetValue(quantize);
            if (quant != null && p.GetValue(format) != "onnx")
                throw new ArgumentException($"--quantize {quant} is for --format onnx (for GGUF use --outtype q8_0)");
            string spec = model.Read(p)!;
            Global.StartTorch(p);
            string fmt = p.GetValue(format)!, output = p.GetValue(outDir)!;
            var src = HfExport.Resolve(spec, p.GetValue(baseModel), p.GetValue(tokenizer));
            // Which weights are exported, said whenever it is not the run's best/ (a run that never wrote one).
            if (src.Source.Note != null) Console.Error.WriteLine("note: " + src.Source.Note);
            // A run that ships the baseline or a mix: the export holds the model alone; say where the rest is.
            if (TaskLM.Evaluation.ShippedBaseline.ForRun(src.Source.RunDir) is { } shipped)
                Console.Error.WriteLine($"note: {src.Source.RunDir} ships the {shipped.Ships} (model weight {shipped.ModelWeight:0.00}, chosen on validation); "
                    + $"this export holds the model alone — the TF-IDF baseline is in {Path.Combine(src.Source.RunDir!, TaskLM.Evaluation.ShippedBaseline.FolderName)}, and predict/serve/evaluate on the run folder run the mix");
            src.CheckOutput(output);   // never over what is being exported, nor over a run folder
            string task;
            string? written = null;
            if (fmt == "hf")
                task = HfExport.Export(src, output).Task;
            else if (fmt == "gguf")
            {
                written = GgufExport.Export(src, output, GgufExport.ParseType(p.GetValue(outType)!));
                task = "causal-lm";
                output = Path.GetDirectoryName(Path.GetFullPath(written))!;
            }
            else
                task = OnnxSourceExport.Export(src, output, quant, p.GetValue(int8Ops) == "onnx" ? Int8Ops.Onnx : Int8Ops.Contrib, p.GetValue(reduceRange), p.GetValue(exclude));
            var files = Directory.GetFiles(output).Select(Path.GetFileName).OrderBy(f => f, StringComparer.Ordinal).ToList();
            if (p.GetValue(json))
                Console.WriteLine(new JsonObject
                {
                    ["format"] = fmt, ["task"] = task, ["quantize"] = quant ?? "none", ["out"] = written ?? output, ["source"] = src.ModelDir, ["base"] = src.BaseModel,
                    ["files"] = new JsonArray(files.Select(f => (JsonNode)f!).ToArray()),
                }.ToJsonString());
            else
                AnsiConsole.MarkupLine($"exported {Markup.Escape(task)} model as [bold]{fmt}{(quant != null ? " " + quant : "")}[/] to [bold]{Markup.Escape(output)}[/]: {Markup.Escape(string.Join(", ", files))}");
            return 0;
        });
        return cmd;
    }
}
