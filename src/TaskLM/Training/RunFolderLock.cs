// One training run per output_dir at a time: an OS file lock held for the run's life and released by the OS when the
// process ends, however it ends (a crash or SIGKILL never leaves a folder locked).
using System.Globalization;

namespace TaskLM.Training;

/// <summary>The lock of a run folder. <see cref="Acquire"/> is re-entrant within a process (the CLI takes it before
/// train.log is opened, <see cref="TrainingRun.Run"/> takes it again); a second process is refused with the holder's
/// pid. On Linux and macOS .NET implements <see cref="FileShare.None"/> with flock(LOCK_EX), so the lock is the
/// kernel's: it goes with the process.</summary>
public sealed class RunFolderLock : IDisposable
{
    /// <summary>The locked file (empty) and the file naming its holder: other processes cannot read a file locked
    /// exclusively, so who holds it is written beside it.</summary>
    public const string LockFile = ".tasklm.lock", OwnerFile = ".tasklm.owner";

    static readonly Dictionary<string, (FileStream Stream, int Count)> Held = new(StringComparer.Ordinal);
    readonly string _key;
    bool _released;

    RunFolderLock(string key) => _key = key;

    /// <summary>Locks <paramref name="dir"/> (created when missing) for this process, or throws a
    /// <see cref="RunSetupException"/> naming the process that holds it.</summary>
    public static RunFolderLock Acquire(string dir)
    {
        Directory.CreateDirectory(dir);
        string key = Path.GetFullPath(dir).TrimEnd(Path.DirectorySeparatorChar);
        lock (Held)
        {
            if (Held.TryGetValue(key, out var held)) { Held[key] = (held.Stream, held.Count + 1); return new RunFolderLock(key); }
            FileStream stream;
            try { stream = new FileStream(Path.Combine(key, LockFile), FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None); }
            catch (IOException)
            {
                string owner = "another process";
                try { owner = File.ReadAllText(Path.Combine(key, OwnerFile)).Trim(); } catch (IOException) { } catch (UnauthorizedAccessException) { }
                throw new RunSetupException($"{dir}: another training run is writing to this output_dir ({owner}); wait for it to finish, or set output_dir to a new folder");
            }
            File.WriteAllText(Path.Combine(key, OwnerFile),
                $"pid {Environment.ProcessId}, started {DateTime.UtcNow.ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture)}\n");
            Held[key] = (stream, 1);
            return new RunFolderLock(key);
        }
    }

    /// <summary>Releases this hold; the OS lock goes with the last one.</summary>
    public void Dispose()
    {
        lock (Held)
        {
            if (_released || !Held.TryGetValue(_key, out var held)) return;
            _released = true;
            if (held.Count > 1) { Held[_key] = (held.Stream, held.Count - 1); return; }
            Held.Remove(_key);
            try { File.Delete(Path.Combine(_key, OwnerFile)); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            held.Stream.Dispose();   // the lock file itself stays: deleting it would let two processes lock two inodes
        }
    }
}
