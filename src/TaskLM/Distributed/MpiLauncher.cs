// `tasklm train --nproc N`: runs the same command under MPICH's mpiexec and turns a dead rank into one clear error.
using System.Diagnostics;
using System.Text.RegularExpressions;

namespace TaskLM.Distributed;

/// <summary>Starts <c>mpiexec -n N</c> on the current command line (without <c>--nproc</c>), forwards its output,
/// and watches the ranks: a rank that dies ends the job within <see cref="GraceSeconds"/> (Hydra usually ends
/// the others at once; if not, the launcher kills the whole process tree) with an error naming the rank.</summary>
public static partial class MpiLauncher
{
    /// <summary>How long the other ranks get to end after one died before the launcher kills them.</summary>
    public const int GraceSeconds = 5;
    const string PidDirEnv = "TASKLM_RANK_PIDS";

    /// <summary>Runs the job; returns its exit code (0 when every rank finished).</summary>
    public static int Run(int n, string recipe, IReadOnlyList<string> overrides)
    {
        string mpiexec = FindOnPath("mpiexec") ?? FindOnPath("mpiexec.hydra")
            ?? throw new FileNotFoundException("--nproc needs MPICH's mpiexec on PATH (Debian/Ubuntu: apt-get install mpich)");
        string pidDir = Directory.CreateTempSubdirectory("tasklm-ranks-").FullName;
        var psi = new ProcessStartInfo(mpiexec) { RedirectStandardError = true, UseShellExecute = false };
        // Hydra's auto-cleanup would kill the survivors within milliseconds of a death, leaving no way to tell
        // which rank died first; without it the launcher sees exactly one dead rank and ends the rest itself.
        psi.ArgumentList.Add("-disable-auto-cleanup");
        psi.ArgumentList.Add("-n"); psi.ArgumentList.Add(n.ToString(System.Globalization.CultureInfo.InvariantCulture));
        // The same program: the apphost, or `dotnet <entry.dll>` when run through dotnet.
        string self = Environment.ProcessPath ?? throw new InvalidOperationException("cannot tell this program's path");
        psi.ArgumentList.Add(self);
        if (Path.GetFileNameWithoutExtension(self) == "dotnet")
            psi.ArgumentList.Add(System.Reflection.Assembly.GetEntryAssembly()!.Location);
        foreach (var a in WithoutNproc(Environment.GetCommandLineArgs().Skip(1).ToList())) psi.ArgumentList.Add(a);
        psi.Environment[PidDirEnv] = pidDir;
        using var proc = Process.Start(psi) ?? throw new InvalidOperationException($"could not start {mpiexec}");
        bool rankReported = false;
        var peerReporters = new HashSet<int>();   // ranks that failed because another one died
        var hydraPid = new List<(int Pid, int Code)>();
        int? lastPid = null, vanishedPid = null;
        // UCX prints a native backtrace (~25 frames) from the surviving rank when its peer vanishes; the job's own error
        // names the dead rank, so the frames are left out unless --verbose asks for them.
        bool verbose = Environment.GetCommandLineArgs().Contains("--verbose"), inBacktrace = false, saidBacktrace = false;
        proc.ErrorDataReceived += (_, e) =>
        {
            if (e.Data == null) return;
            if (!verbose && (inBacktrace || e.Data.StartsWith("==== backtrace", StringComparison.Ordinal)))
            {
                bool end = inBacktrace && e.Data.Length > 8 && e.Data.All(ch => ch == '=');
                inBacktrace = !end;
                if (!saidBacktrace) { saidBacktrace = true; Console.Error.WriteLine("(a native backtrace of the transport (UCX) was left out; --verbose shows it)"); }
                return;
            }
            if (RankError().Match(e.Data) is { Success: true } re)
            {
                if (e.Data.Contains("peer rank probably died", StringComparison.Ordinal)) lock (peerReporters) peerReporters.Add(int.Parse(re.Groups[1].Value));
                else rankReported = true;
            }
            // Hydra's report of a bad termination: "=   PID 1234 RUNNING AT host" then "=   EXIT CODE: 9".
            // MPICH over UCX: a survivor's transport names the peer that is gone, "...(pid=1234 ...) ... No such process".
            if (vanishedPid == null && VanishedPeer().Match(e.Data) is { Success: true } vp) vanishedPid = int.Parse(vp.Groups[1].Value);
            if (HydraPid().Match(e.Data) is { Success: true } m) lastPid = int.Parse(m.Groups[1].Value);
            else if (HydraCode().Match(e.Data) is { Success: true } c && lastPid is int pid) lock (hydraPid) hydraPid.Add((pid, int.Parse(c.Groups[1].Value)));
            Console.Error.WriteLine(e.Data);
        };
        proc.BeginErrorReadLine();

        (int Rank, int Pid)? dead = null;
        var deadAt = Stopwatch.StartNew();
        while (!proc.WaitForExit(5))
        {
            if (dead == null)
            {
                // A survivor can die within milliseconds of the rank that was killed, and a late poll (a loaded machine)
                // then finds both: one gone (already reaped by Hydra's proxy) ended before a zombie (exited, not yet
                // reaped). Before, the first pid file was named: rank 0 for a killed rank 1 in 1-5 of 10 runs of the
                // kill test; with this order 0 of 44.
                dead = Ranks(pidDir).Select(x => (x, state: State(x.Pid))).Where(y => y.state != 'R')
                    .OrderBy(y => y.state == 'G' ? 0 : 1).Select(y => ((int Rank, int Pid)?)y.x).FirstOrDefault();
                if (dead != null) deadAt.Restart();
            }
            else if (deadAt.Elapsed.TotalSeconds > GraceSeconds)
            {
                proc.Kill(entireProcessTree: true);
                foreach (var (_, pid) in Ranks(pidDir)) if (Alive(pid)) try { Process.GetProcessById(pid).Kill(); } catch (ArgumentException) { } catch (InvalidOperationException) { }
                proc.WaitForExit();
                break;
            }
        }
        proc.WaitForExit();
        var ranks = Ranks(pidDir).ToDictionary(x => x.Pid, x => x.Rank);
        try { Directory.Delete(pidDir, true); } catch (IOException) { }
        int code = proc.ExitCode;
        if (code == 0) return 0;
        if (rankReported) return code == 0 ? 1 : code;   // the failing rank already said why
        (int Pid, int Code)? hp;
        lock (hydraPid) hp = hydraPid.Count > 0 ? hydraPid.FirstOrDefault(h => ranks.ContainsKey(h.Pid) && h.Code != 0) : null;
        if (vanishedPid is int vpid && ranks.TryGetValue(vpid, out int vr)) dead = (vr, vpid);   // the survivors' word beats polling order
        if (dead == null)
        {
            // Too quick to catch in the act: the survivors said a peer died, so the dead rank is the one that did not.
            List<int> silent;
            lock (peerReporters) silent = peerReporters.Count > 0 ? Enumerable.Range(0, n).Where(r => !peerReporters.Contains(r)).ToList() : [];
            if (silent.Count == 1) dead = (silent[0], ranks.FirstOrDefault(kv => kv.Value == silent[0]).Key);
        }
        if (dead is { } d)
            Console.Error.WriteLine($"error: rank {d.Rank} of {n} (pid {d.Pid}) died; the other ranks were ended within {GraceSeconds} s");
        else if (hp is { Pid: > 0 } h && ranks.TryGetValue(h.Pid, out int r))
            Console.Error.WriteLine($"error: rank {r} of {n} (pid {h.Pid}) ended with {Describe(h.Code)}; mpiexec ended the other ranks");
        else
            Console.Error.WriteLine($"error: the data-parallel job failed (mpiexec exit code {code})");
        return code == 0 ? 1 : code;
    }

    /// <summary>Called by each rank at start when the launcher asked for it: records rank → pid.</summary>
    public static void WritePidFile(DataParallel dp)
    {
        string? dir = Environment.GetEnvironmentVariable(PidDirEnv);
        if (dir != null && Directory.Exists(dir))
            File.WriteAllText(Path.Combine(dir, $"rank-{dp.Rank}.pid"), Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture));
    }

    static IEnumerable<(int Rank, int Pid)> Ranks(string dir)
    {
        foreach (var f in Directory.Exists(dir) ? Directory.GetFiles(dir, "rank-*.pid") : [])
            if (int.TryParse(Path.GetFileNameWithoutExtension(f)[5..], out int r) && int.TryParse(SafeRead(f), out int pid)) yield return (r, pid);
    }

    static string SafeRead(string f) { try { return File.ReadAllText(f).Trim(); } catch (IOException) { return ""; } }

    // 'R' running (or any live state), 'Z' exited but not reaped, 'G' gone.
    static char State(int pid)
    {
        try
        {
            string stat = File.ReadAllText($"/proc/{pid}/stat");
            int close = stat.LastIndexOf(')');
            return close > 0 && close + 2 < stat.Length && stat[close + 2] == 'Z' ? 'Z' : 'R';
        }
        catch (IOException) { return 'G'; }
        catch (UnauthorizedAccessException) { return 'R'; }
    }

    // A zombie (exited, not yet reaped by Hydra) counts as dead.
    static bool Alive(int pid) => State(pid) == 'R';

    static string Describe(int code) => code > 128 && code < 160 ? $"signal {code - 128}" : code is 9 or 15 ? $"exit code {code} (killed by signal {code}?)" : $"exit code {code}";

    static List<string> WithoutNproc(List<string> args)
    {
        var o = new List<string>();
        for (int i = 0; i < args.Count; i++)
        {
            if (args[i] == "--nproc") { i++; continue; }
            if (args[i].StartsWith("--nproc=", StringComparison.Ordinal)) continue;
            o.Add(args[i]);
        }
        return o;
    }

    static string? FindOnPath(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator)
            .Select(d => Path.Combine(d, name)).FirstOrDefault(File.Exists);

    [GeneratedRegex(@"^error: rank (\d+) of \d+: ")] private static partial Regex RankError();
    [GeneratedRegex(@"pid=(\d+)\b.*No such process")] private static partial Regex VanishedPeer();
    [GeneratedRegex(@"PID (\d+) RUNNING AT")] private static partial Regex HydraPid();
    [GeneratedRegex(@"EXIT CODE: (\d+)")] private static partial Regex HydraCode();
}
