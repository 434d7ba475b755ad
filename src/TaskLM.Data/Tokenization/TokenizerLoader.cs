// Opens a tokenizer by name ("gpt2") or from a Hugging Face tokenizer folder, whichever files it holds.
using System.Text.Json;
using System.Text.Json.Nodes;

namespace TaskLM.Data.Tokenization;

/// <summary>Loads tokenizers the way <c>AutoTokenizer.from_pretrained</c> finds them in a folder.</summary>
public static class TokenizerLoader
{
    /// <summary>
    /// "gpt2" = the embedded GPT-2 vocabulary. Otherwise a folder (or a tokenizer.json file), tried in HF's order:
    /// <c>tokenizer.json</c> (byte-level or SentencePiece-style BPE, or WordPiece), <c>vocab.json</c> + <c>merges.txt</c> (byte-level BPE),
    /// <c>vocab.txt</c> (WordPiece). <c>tokenizer_config.json</c> supplies do_lower_case, special tokens, model_max_length.
    /// </summary>
    public static ITokenizer Load(string dirOrName)
    {
        if (string.Equals(dirOrName, "gpt2", StringComparison.OrdinalIgnoreCase) && !Directory.Exists(dirOrName))
            return ByteLevelBpeTokenizer.Gpt2();
        if (File.Exists(dirOrName) && Path.GetFileName(dirOrName) == "tokenizer.json")
            return FromTokenizerJson(dirOrName, TokenizerConfig.Read(Path.GetDirectoryName(Path.GetFullPath(dirOrName))!));
        if (!Directory.Exists(dirOrName))
            throw new DirectoryNotFoundException($"tokenizer '{dirOrName}' is neither \"gpt2\" nor a folder");
        var config = TokenizerConfig.Read(dirOrName);
        string P(string f) => Path.Combine(dirOrName, f);
        if (File.Exists(P("tokenizer.json"))) return FromTokenizerJson(P("tokenizer.json"), config);
        if (File.Exists(P("vocab.json")) && File.Exists(P("merges.txt"))) return ByteLevelBpeTokenizer.FromFiles(P("vocab.json"), P("merges.txt"), config);
        if (File.Exists(P("vocab.txt"))) return WordPieceTokenizer.FromVocabTxt(P("vocab.txt"), config);
        throw new FileNotFoundException($"{dirOrName}: no tokenizer.json, vocab.json + merges.txt, or vocab.txt");
    }

    private static ITokenizer FromTokenizerJson(string path, TokenizerConfig config)
    {
        JsonObject root;
        try { root = JsonNode.Parse(File.ReadAllText(path))?.AsObject() ?? throw new JsonException("not an object"); }
        catch (Exception e) when (e is JsonException or InvalidOperationException) { throw new FormatException($"{path}: {e.Message}", e); }
        var type = root["model"]?["type"]?.GetValue<string>();
        switch (type)
        {
            case "BPE":
                var pre = root["pre_tokenizer"];
                bool byteLevel = pre?["type"]?.GetValue<string>() == "ByteLevel"
                    || (pre?["pretokenizers"] as JsonArray)?.Any(p => p?["type"]?.GetValue<string>() == "ByteLevel") == true;
                // No ByteLevel step: SentencePiece-style BPE (Llama 2, Mistral), which refuses the steps it does not know.
                if (!byteLevel) return SentencePieceBpeTokenizer.FromTokenizerJson(path, root, config);
                if (pre?["add_prefix_space"]?.GetValue<bool>() == true)
                    throw new NotSupportedException($"{path}: pre_tokenizer.add_prefix_space = true is not supported");
                return ByteLevelBpeTokenizer.FromTokenizerJson(path, root, config);
            case "WordPiece":
                return WordPieceTokenizer.FromTokenizerJson(path, root, config);
            default:
                throw new NotSupportedException($"{path}: model.type '{type}' is not supported (BPE, WordPiece are)");
        }
    }
}
