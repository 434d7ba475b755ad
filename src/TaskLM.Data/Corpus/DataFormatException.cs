// The one error every reader throws for bad input: it names the file and the line (or row/record).

namespace TaskLM.Data.Corpus;

/// <summary>A malformed line, row or record in an input file. The message reads
/// <c>file:line: what is wrong</c> so a user can open the file at the right place (<c>file: what is wrong</c>
/// when the problem concerns the whole file).</summary>
public sealed class DataFormatException : Exception
{
    /// <summary>The file (as given by the caller) that holds the bad input.</summary>
    public string File { get; }

    /// <summary>1-based line (for text formats) or row/record number (Parquet, folders of files); 0 when
    /// the problem concerns the whole file.</summary>
    public long Line { get; }

    /// <summary>What is wrong, without the location prefix.</summary>
    public string Problem { get; }

    public DataFormatException(string file, long line, string problem, Exception? inner = null)
        : base(line > 0 ? $"{file}:{line}: {problem}" : $"{file}: {problem}", inner)
    {
        File = file;
        Line = line;
        Problem = problem;
    }
}
