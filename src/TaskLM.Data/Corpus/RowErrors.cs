// What to do with a malformed row (--on-error fail|skip), and the record of the rows that were skipped.

namespace TaskLM.Data.Corpus;

/// <summary>How a reader treats a malformed row.</summary>
public enum OnError
{
    /// <summary>Stop with a <see cref="DataFormatException"/> naming file and line (the default).</summary>
    Fail,
    /// <summary>Leave the row out, count it and keep its error for the report.</summary>
    Skip,
}

/// <summary>Collects malformed rows in skip mode (count plus the first <see cref="MaxListed"/> errors) and
/// rethrows them in fail mode, so nothing is ever dropped silently.</summary>
public sealed class RowErrors(OnError mode = OnError.Fail)
{
    readonly List<DataFormatException> _listed = [];

    /// <summary>How many errors are kept for the report; the count keeps going past it.</summary>
    public const int MaxListed = 100;

    /// <summary>Fail or skip.</summary>
    public OnError Mode { get; } = mode;

    /// <summary>Number of rows skipped so far.</summary>
    public long Skipped { get; private set; }

    /// <summary>The first <see cref="MaxListed"/> skipped rows' errors, in file order.</summary>
    public IReadOnlyList<DataFormatException> Listed => _listed;

    /// <summary>Throws <paramref name="error"/> in fail mode; records it in skip mode.</summary>
    public void Report(DataFormatException error)
    {
        if (Mode == OnError.Fail) throw error;
        Skipped++;
        if (_listed.Count < MaxListed) _listed.Add(error);
    }
}
