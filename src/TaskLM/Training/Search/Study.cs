// A study's record: one SQLite file (study.db) in the study folder with its trials, parameters, intermediate values
// and states, shared safely by several worker processes.
using System.Diagnostics;
using System.Globalization;
using Microsoft.Data.Sqlite;

namespace TaskLM.Training.Search;

/// <summary>A trial as stored: the sampler's view plus its bookkeeping.</summary>
public sealed record StoredTrial(TrialRecord Record, string? RunDir, int? Steps, int? BestStep, double? WallSeconds, string? Error, string? Started, string? Ended);

/// <summary>The study database. Every change is one transaction; claiming a new trial takes the write lock
/// (BEGIN IMMEDIATE), so two processes never start the same trial number or, through a unique index on the
/// configuration of every trial not interrupted, the same configuration. A trial left running by a process that
/// is gone (SIGKILL, power cut) is marked failed (interrupted) the next time any worker claims a trial; it does not
/// count against the trial budget and its configuration may run again.</summary>
public sealed class Study : IDisposable
{
    readonly SqliteConnection _db;
    /// <summary>The study folder.</summary>
    public string Dir { get; }
    public string DbPath => Path.Combine(Dir, "study.db");

    Study(string dir)
    {
        Dir = dir;
        Directory.CreateDirectory(dir);
        _db = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = DbPath, DefaultTimeout = 120, Pooling = false }.ToString());
        _db.Open();
        Exec("PRAGMA journal_mode=WAL");
        Exec("PRAGMA busy_timeout=120000");
        Exec("""
            CREATE TABLE IF NOT EXISTS study (key TEXT PRIMARY KEY, value TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS trials (
              number INTEGER PRIMARY KEY, state TEXT NOT NULL, config TEXT NOT NULL, value REAL,
              steps INTEGER, best_step INTEGER, wall_s REAL, run_dir TEXT, started TEXT, ended TEXT,
              host TEXT, pid INTEGER, pid_start INTEGER, error TEXT, interrupted INTEGER NOT NULL DEFAULT 0);
            CREATE UNIQUE INDEX IF NOT EXISTS one_live_config ON trials(config) WHERE interrupted = 0;
            CREATE TABLE IF NOT EXISTS params (trial INTEGER NOT NULL, name TEXT NOT NULL, internal REAL NOT NULL, value TEXT NOT NULL, PRIMARY KEY (trial, name));
            CREATE TABLE IF NOT EXISTS intermediate (trial INTEGER NOT NULL, step INTEGER NOT NULL, train_step INTEGER NOT NULL, value REAL, PRIMARY KEY (trial, step));
            """);
    }

    /// <summary>Opens (or creates) the study in <paramref name="dir"/>. <paramref name="meta"/> (recipe, metric,
    /// direction, space) is stored on creation; a re-run whose metric, direction or space differ is refused.</summary>
    public static Study Open(string dir, IReadOnlyDictionary<string, string> meta)
    {
        var s = new Study(dir);
        using var tx = s._db.BeginTransaction();
        var existing = s.Meta(tx);
        foreach (var (k, v) in meta)
        {
            if (!existing.TryGetValue(k, out var old)) s.Exec("INSERT INTO study(key, value) VALUES ($k, $v)", tx, ("$k", k), ("$v", v));
            else if (old != v && k is "metric" or "direction" or "space")
            {
                s.Dispose();
                throw new InvalidOperationException($"{s.DbPath}: this study was made with {k} '{old}', not '{v}'; use another --out (or delete the folder)");
            }
        }
        tx.Commit();
        return s;
    }

    /// <summary>The stored study settings.</summary>
    public Dictionary<string, string> Meta(SqliteTransaction? tx = null)
    {
        var d = new Dictionary<string, string>();
        using var cmd = Cmd("SELECT key, value FROM study", tx);
        using var r = cmd.ExecuteReader();
        while (r.Read()) d[r.GetString(0)] = r.GetString(1);
        return d;
    }

    /// <summary>Every trial, with parameters and intermediate values, in number order.</summary>
    public List<StoredTrial> Trials(SqliteTransaction? tx = null)
    {
        var list = new List<StoredTrial>();
        var byNumber = new Dictionary<int, TrialRecord>();
        using (var cmd = Cmd("SELECT number, state, value, run_dir, steps, best_step, wall_s, error, started, ended, interrupted FROM trials ORDER BY number", tx))
        using (var r = cmd.ExecuteReader())
            while (r.Read())
            {
                var rec = new TrialRecord
                {
                    Number = r.GetInt32(0), State = Enum.Parse<TrialState>(r.GetString(1), ignoreCase: true),
                    Value = r.IsDBNull(2) ? null : r.GetDouble(2), Interrupted = r.GetInt32(10) != 0,
                };
                byNumber[rec.Number] = rec;
                list.Add(new StoredTrial(rec, Str(r, 3), Int(r, 4), Int(r, 5), r.IsDBNull(6) ? null : r.GetDouble(6), Str(r, 7), Str(r, 8), Str(r, 9)));
            }
        using (var cmd = Cmd("SELECT trial, name, internal FROM params", tx))
        using (var r = cmd.ExecuteReader())
            while (r.Read()) if (byNumber.TryGetValue(r.GetInt32(0), out var t)) t.Params[r.GetString(1)] = r.GetDouble(2);
        using (var cmd = Cmd("SELECT trial, step, value FROM intermediate ORDER BY trial, step", tx))
        using (var r = cmd.ExecuteReader())
            while (r.Read()) if (byNumber.TryGetValue(r.GetInt32(0), out var t)) t.Intermediate[r.GetInt32(1)] = r.IsDBNull(2) ? double.NaN : r.GetDouble(2);
        return list;
    }

    static string? Str(SqliteDataReader r, int i) => r.IsDBNull(i) ? null : r.GetString(i);
    static int? Int(SqliteDataReader r, int i) => r.IsDBNull(i) ? null : r.GetInt32(i);

    /// <summary>Reaps dead trials, then — when fewer than <paramref name="budget"/> trials count (every trial not
    /// interrupted) — asks the sampler for a configuration no counted trial holds and records it as running under this
    /// process, all in one write transaction. Null = the budget is spent or the space is exhausted.</summary>
    public (int number, Dictionary<string, double> values)? Claim(SearchSpace space, ISampler sampler, int budget, Func<int, string> runDirOf)
    {
        using var tx = _db.BeginTransaction(deferred: false);   // BEGIN IMMEDIATE: the write lock first
        ReapDead(tx);
        var trials = Trials(tx).Select(t => t.Record).ToList();
        if (trials.Count(t => !t.Interrupted) >= budget) return null;
        int number = trials.Count == 0 ? 0 : trials.Max(t => t.Number) + 1;
        var held = trials.Where(t => !t.Interrupted).Select(t => SearchSpace.ConfigKey(t.Params)).ToHashSet();
        bool Taken(Dictionary<string, double> v) => held.Contains(SearchSpace.ConfigKey(v));
        Dictionary<string, double>? values = null;
        for (int attempt = 0; attempt < 100 && values == null; attempt++)
        {
            var v = sampler.Sample(space, trials, number, attempt, Taken);
            if (v == null) return null;   // grid exhausted
            if (!Taken(v)) values = v;
        }
        if (values == null) return null;   // 100 proposals all held: a small space, fully explored
        using var me = Process.GetCurrentProcess();
        Exec("INSERT INTO trials(number, state, config, run_dir, started, host, pid, pid_start) VALUES ($n, 'running', $c, $d, $t, $h, $p, $ps)", tx,
            ("$n", number), ("$c", SearchSpace.ConfigKey(values)), ("$d", runDirOf(number)), ("$t", Now()),
            ("$h", Environment.MachineName), ("$p", Environment.ProcessId), ("$ps", StartTicks(me)));
        foreach (var p in space.Params)
            Exec("INSERT INTO params(trial, name, internal, value) VALUES ($t, $n, $i, $v)", tx,
                ("$t", number), ("$n", p.Key), ("$i", values[p.Key]), ("$v", p.ValueText(values[p.Key])));
        tx.Commit();
        return (number, values);
    }

    /// <summary>Records evaluation <paramref name="step"/> (1-based) of a running trial.</summary>
    public void Report(int number, int step, int trainStep, double value) =>
        Exec("INSERT OR REPLACE INTO intermediate(trial, step, train_step, value) VALUES ($t, $s, $ts, $v)", null,
            ("$t", number), ("$s", step), ("$ts", trainStep), ("$v", double.IsNaN(value) ? DBNull.Value : value));

    /// <summary>Ends a trial: complete, pruned or failed, with its objective (best evaluation) and figures.</summary>
    public void Finish(int number, TrialState state, double? value, int steps, int bestStep, double wallSeconds, string? error) =>
        Exec("UPDATE trials SET state = $s, value = $v, steps = $st, best_step = $b, wall_s = $w, ended = $e, error = $err WHERE number = $n", null,
            ("$s", state.ToString().ToLowerInvariant()), ("$v", value is { } v && double.IsFinite(v) ? v : DBNull.Value), ("$st", steps), ("$b", bestStep),
            ("$w", Math.Round(wallSeconds, 2)), ("$e", Now()), ("$err", (object?)error ?? DBNull.Value), ("$n", number));

    /// <summary>Marks running trials of processes on this machine that no longer exist as failed (interrupted).</summary>
    void ReapDead(SqliteTransaction tx)
    {
        var dead = new List<(int, int)>();
        using (var cmd = Cmd("SELECT number, pid, pid_start FROM trials WHERE state = 'running' AND host = $h", tx, ("$h", Environment.MachineName)))
        using (var r = cmd.ExecuteReader())
            while (r.Read())
                if (!Alive(r.GetInt32(1), r.GetInt64(2))) dead.Add((r.GetInt32(0), r.GetInt32(1)));
        foreach (var (n, pid) in dead)
            Exec("UPDATE trials SET state = 'failed', interrupted = 1, ended = $e, error = $err WHERE number = $n", tx,
                ("$e", Now()), ("$err", $"interrupted: process {pid} ended while the trial ran"), ("$n", n));
    }

    static long StartTicks(Process p) => p.StartTime.ToUniversalTime().Ticks;

    // The pid exists, is not a zombie, and started when the trial's process did (pids are reused).
    static bool Alive(int pid, long startTicks)
    {
        try
        {
            using var p = Process.GetProcessById(pid);
            if (p.HasExited) return false;
            string stat = $"/proc/{pid}/stat";
            if (File.Exists(stat))
            {
                string text = File.ReadAllText(stat);
                int close = text.LastIndexOf(')');
                if (close > 0 && close + 2 < text.Length && text[close + 2] is 'Z' or 'X') return false;
            }
            return Math.Abs(StartTicks(p) - startTicks) < TimeSpan.TicksPerSecond;
        }
        catch (ArgumentException) { return false; }
        catch (InvalidOperationException) { return false; }
    }

    static string Now() => DateTime.UtcNow.ToString("yyyy-MM-ddTHH:mm:ss.fffZ", CultureInfo.InvariantCulture);

    SqliteCommand Cmd(string sql, SqliteTransaction? tx, params (string, object)[] args)
    {
        var c = _db.CreateCommand();
        c.CommandText = sql;
        c.Transaction = tx;
        foreach (var (k, v) in args) c.Parameters.AddWithValue(k, v);
        return c;
    }

    void Exec(string sql, SqliteTransaction? tx = null, params (string, object)[] args)
    {
        using var c = Cmd(sql, tx, args);
        c.ExecuteNonQuery();
    }

    public void Dispose() => _db.Dispose();
}
