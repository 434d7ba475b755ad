// The tokenizer surface the rest of TaskLM uses, whichever kind (byte-level BPE, WordPiece) is behind it.
namespace TaskLM.Data.Tokenization;

/// <summary>A tokenizer as models and training see it. Ids are Hugging Face's ids for the same files.</summary>
public interface ITokenizer
{
    /// <summary>"bpe" (GPT-2 byte-level), "sentencepiece-bpe" (Llama 2, Mistral) or "wordpiece" (BERT).</summary>
    string Kind { get; }

    /// <summary>Number of ids, added special tokens included.</summary>
    int VocabSize { get; }

    /// <summary>Encodes text to ids without adding special tokens.</summary>
    IReadOnlyList<int> Encode(string text);

    /// <summary>Turns ids back into text.</summary>
    string Decode(IEnumerable<int> ids, bool skipSpecialTokens = false);

    /// <summary>Id of a token string, or null when it is not in the vocabulary.</summary>
    int? TokenToId(string token);

    /// <summary>Token string of an id, or null when out of range.</summary>
    string? IdToToken(int id);

    /// <summary>End-of-sequence id (GPT-2's &lt;|endoftext|&gt;, BERT's [SEP]), if any.</summary>
    int? EosTokenId { get; }

    /// <summary>Padding id, if the tokenizer defines one.</summary>
    int? PadTokenId { get; }

    /// <summary>Writes the tokenizer as Hugging Face files into <paramref name="directory"/>.</summary>
    void Save(string directory);

    // Members added after the first surface; defaults keep other implementations compiling.

    /// <summary>Beginning-of-sequence id (GPT-2's &lt;|endoftext|&gt;), if any.</summary>
    int? BosTokenId => null;

    /// <summary>Unknown-token id (BERT's [UNK]), if any.</summary>
    int? UnkTokenId => null;

    /// <summary>Classifier id (BERT's [CLS]), if any.</summary>
    int? ClsTokenId => null;

    /// <summary>Separator id (BERT's [SEP]), if any.</summary>
    int? SepTokenId => null;

    /// <summary>Mask id for masked-LM (BERT's [MASK]), if any.</summary>
    int? MaskTokenId => null;

    /// <summary>Longest input the model was trained for (tokenizer_config.json's model_max_length), if known.</summary>
    int? ModelMaxLength => null;

    /// <summary>
    /// What a model takes, as Hugging Face's <c>tokenizer(text, text_pair, ...)</c> returns it: ids with the
    /// special tokens of the tokenizer's template, token_type_ids, attention_mask, offsets back to characters,
    /// after truncation and padding. The default joins plain encodings without special tokens or offsets.
    /// </summary>
    TokenizedInput EncodeForModel(string text, string? pair = null, EncodeOptions? options = null)
    {
        var a = Encode(text).Select(id => new TokenSpan(id, 0, 0)).ToList();
        var b = pair == null ? null : Encode(pair).Select(id => new TokenSpan(id, 0, 0)).ToList();
        return ModelInputBuilder.Build(a, b, SpecialTokensTemplate.None, options ?? new EncodeOptions(), PadTokenId ?? 0);
    }
}
