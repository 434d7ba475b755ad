// Logging for runs: Microsoft.Extensions.Logging to the console and to a file in the run folder.
using Microsoft.Extensions.Logging;

namespace TaskLM.Logging;

/// <summary>Builds the logger factory a run uses: console (optional) plus an append-only log file.</summary>
public static class RunLogging
{
    /// <summary>Creates a factory that writes to <paramref name="logFile"/> (when given) and, when
    /// <paramref name="console"/> is true, to standard error.</summary>
    public static ILoggerFactory Create(string? logFile, bool console = false, LogLevel minimum = LogLevel.Information)
    {
        return LoggerFactory.Create(b =>
        {
            b.SetMinimumLevel(minimum);
            if (console) b.AddSimpleConsole(o => { o.SingleLine = true; o.TimestampFormat = "HH:mm:ss "; })
                          .AddFilter<Microsoft.Extensions.Logging.Console.ConsoleLoggerProvider>(l => l >= LogLevel.Warning);
            if (logFile != null) b.AddProvider(new FileLoggerProvider(logFile));
        });
    }
}

/// <summary>Writes one line per log entry (UTC time, level, category, message) to a file, flushed per line
/// so a killed process loses nothing it logged.</summary>
public sealed class FileLoggerProvider : ILoggerProvider
{
    readonly StreamWriter _writer;
    readonly object _gate = new();

    public FileLoggerProvider(string path)
    {
        string? dir = Path.GetDirectoryName(Path.GetFullPath(path));
        if (dir != null) Directory.CreateDirectory(dir);
        _writer = new StreamWriter(new FileStream(path, FileMode.Append, FileAccess.Write, FileShare.ReadWrite)) { AutoFlush = true };
    }

    public ILogger CreateLogger(string categoryName) => new FileLogger(this, categoryName);

    public void Dispose() { lock (_gate) _writer.Dispose(); }

    void Write(string line) { lock (_gate) _writer.WriteLine(line); }

    sealed class FileLogger(FileLoggerProvider owner, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
        public bool IsEnabled(LogLevel logLevel) => logLevel != LogLevel.None;
        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            string msg = formatter(state, exception);
            if (exception != null) msg += Environment.NewLine + exception;
            owner.Write($"{DateTime.UtcNow:yyyy-MM-ddTHH:mm:ss.fffZ} {logLevel,-11} {category}: {msg}");
        }
    }
}
