// The tokenizer surface the rest of TaskLM uses, whichever kind (byte-level BPE, WordPiece) is behind it.
namespace TaskLM.Data.Tokenization;

/// <summary>A tokenizer as models and training see it. Ids are Hugging Face's ids for the same files.</summary>
public interface ITokenizer
{
    /// <summary>"bpe" (GPT-2 byte-level) or "wordpiece" (BERT).</summary>
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
}
