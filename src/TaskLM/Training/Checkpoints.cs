// Checkpoints: HF model folder + optimizer, scheduler, RNG and data position, written atomically; resume; pruning.
using System.Text.Json;
using TaskLM.Models;
using static TorchSharp.torch;

namespace TaskLM.Training;

/// <summary>Writes <c>checkpoints/step-N/</c> under a run folder: the model as an HF folder (whatever
/// <c>saveModel</c> writes), <c>optimizer.safetensors</c> (AdamW moments and step), <c>rng_state.safetensors</c>
/// (torch's CPU generator) and <c>trainer_state.json</c> (step, data-loader position, best metric, scheduler).
/// Each is written into a temporary folder that is renamed into place, so a crash never leaves a checkpoint
/// that resume would trust half-written. Keeps the newest <c>keepLast</c>.</summary>
public sealed class Checkpoints(string runDir, int keepLast, Action<string> saveModel)
{
    public string Folder { get; } = Path.Combine(runDir, "checkpoints");

    /// <summary>Ranks of the data-parallel job writing the checkpoints (recorded in trainer_state.json).</summary>
    public int WorldSize { get; init; } = 1;

    /// <summary>The run the checkpoints belong to (recorded in trainer_state.json; resume checks it).</summary>
    public string? RunId { get; init; }

    static readonly JsonSerializerOptions Json = new() { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    /// <summary>Writes the checkpoint of the trainer's current step and prunes old ones. Returns its folder.</summary>
    public string Save(Trainer t)
    {
        Directory.CreateDirectory(Folder);
        string final = Path.Combine(Folder, $"step-{t.State.Step}");
        string tmp = Path.Combine(Folder, $"{TmpPrefix}{t.State.Step}-{Environment.ProcessId}");
        if (Directory.Exists(tmp)) Directory.Delete(tmp, true);
        try
        {
            Directory.CreateDirectory(tmp);
            saveModel(tmp);
            var opt = t.Optimizer.StateDict();
            SafeTensors.Save(Path.Combine(tmp, "optimizer.safetensors"), opt);
            foreach (var v in opt.Values) v.Dispose();
            using (var rng = random.get_rng_state())
                SafeTensors.Save(Path.Combine(tmp, "rng_state.safetensors"), [new("cpu", rng)]);
            var meta = new CheckpointMeta(t.State, t.Schedule.Kind, t.Schedule.BaseLr, t.Schedule.WarmupSteps, t.Schedule.TotalSteps, WorldSize) { RunId = RunId };
            File.WriteAllText(Path.Combine(tmp, "trainer_state.json"), JsonSerializer.Serialize(meta, Json));
        }
        catch (IOException e) when (IsDiskFull(e))
        {
            // Measure what the half-written checkpoint took before removing it: that is about the space still needed.
            long written = FolderBytes(tmp);
            long previous = List(Folder).LastOrDefault() is { } last ? FolderBytes(last) : 0;
            // Without an earlier checkpoint, what it managed to write is only the free space: the weights and AdamW's two
            // moments (three copies of every parameter) are the size it needs.
            long estimate = 3 * t.Model.Module.parameters().Sum(p => p.numel() * p.element_size());
            try { Directory.Delete(tmp, true); } catch (IOException) { }
            throw new IOException($"{final}: no space left on device while writing the checkpoint of step {t.State.Step} "
                + $"(a checkpoint needs about {Mb(Math.Max(previous, Math.Max(written, estimate)))}; {FreeSpace(Folder)}); free space, then --resume from the last checkpoint", e);
        }
        if (Directory.Exists(final)) Directory.Delete(final, true);
        Directory.Move(tmp, final);
        Prune();
        return final;
    }

    void Prune()
    {
        if (keepLast <= 0) return;
        foreach (var old in List(Folder).SkipLast(keepLast)) Directory.Delete(old, true);
    }

    const string TmpPrefix = ".tmp-step-";

    /// <summary>Temporary folders a killed or disk-full run left in <paramref name="runDir"/> (checkpoints/.tmp-step-N-PID,
    /// best.tmp, best.merge.tmp): never complete, never trusted.</summary>
    public static List<string> StaleTemporaries(string runDir)
    {
        var list = new List<string>();
        string ck = Path.Combine(runDir, "checkpoints");
        if (Directory.Exists(ck)) list.AddRange(Directory.GetDirectories(ck, TmpPrefix + "*"));
        foreach (var name in new[] { "best.tmp", "best.merge.tmp" })
            if (Directory.Exists(Path.Combine(runDir, name))) list.Add(Path.Combine(runDir, name));
        return list;
    }

    /// <summary>ENOSPC (Linux 28, macOS 28) or Windows' ERROR_DISK_FULL / ERROR_HANDLE_DISK_FULL.</summary>
    public static bool IsDiskFull(IOException e) =>
        (e.HResult & 0xFFFF) is 28 or 112 or 39 || e.Message.Contains("No space left", StringComparison.OrdinalIgnoreCase);

    /// <summary>"N MB free on the device of <paramref name="dir"/>" (or "free space unknown").</summary>
    public static string FreeSpace(string dir)
    {
        try
        {
            string existing = Path.GetFullPath(dir);
            while (!Directory.Exists(existing)) existing = Path.GetDirectoryName(existing) ?? "/";
            return $"{Mb(new DriveInfo(existing).AvailableFreeSpace)} free there";
        }
        catch (Exception e) when (e is IOException or ArgumentException or UnauthorizedAccessException) { return "free space unknown"; }
    }

    static string Mb(long bytes) => $"{bytes / 1048576.0:F0} MB";

    static long FolderBytes(string dir)
    {
        try { return Directory.Exists(dir) ? Directory.EnumerateFiles(dir, "*", SearchOption.AllDirectories).Sum(f => new FileInfo(f).Length) : 0; }
        catch (IOException) { return 0; }
    }

    /// <summary>Reads trainer_state.json; a damaged one is an error naming the file.</summary>
    public static CheckpointMeta ReadMeta(string statePath)
    {
        try
        {
            return JsonSerializer.Deserialize<CheckpointMeta>(File.ReadAllText(statePath), Json)
                ?? throw new InvalidDataException($"{statePath}: empty (a damaged checkpoint; resume from another one)");
        }
        catch (JsonException e)
        {
            string where = e.Path is { Length: > 1 } p ? $" at {p}" : "";
            throw new InvalidDataException($"{statePath}: not a valid trainer_state.json{where} (a damaged checkpoint; resume from another one): {e.Message.Split('.')[0]}", e);
        }
    }

    /// <summary>Complete checkpoints of a checkpoints folder, oldest first (temporary folders are ignored).</summary>
    public static List<string> List(string checkpointsFolder) =>
        !Directory.Exists(checkpointsFolder) ? [] :
        Directory.GetDirectories(checkpointsFolder, "step-*")
            .Where(d => File.Exists(Path.Combine(d, "trainer_state.json")) && int.TryParse(Path.GetFileName(d)[5..], out _))
            .OrderBy(d => int.Parse(Path.GetFileName(d)[5..])).ToList();

    /// <summary>The newest complete checkpoint of a run folder, or an error saying there is none.</summary>
    public static string Latest(string runDir) =>
        List(Path.Combine(runDir, "checkpoints")).LastOrDefault()
        ?? throw new FileNotFoundException($"{runDir}: no checkpoint to resume from (checkpoints/step-N with trainer_state.json)");

    /// <summary>Restores optimizer, scheduler check, RNG and loop state from <paramref name="dir"/> into a trainer
    /// built on the checkpoint's weights. Returns the world size that wrote it (1 for checkpoints before it was recorded).</summary>
    public static int Restore(Trainer t, string dir)
    {
        string statePath = Path.Combine(dir, "trainer_state.json");
        if (!File.Exists(statePath)) throw new FileNotFoundException($"{dir}: not a checkpoint (no trainer_state.json)");
        var meta = ReadMeta(statePath);
        if (meta.TotalSteps != t.Schedule.TotalSteps || meta.WarmupSteps != t.Schedule.WarmupSteps || meta.Scheduler != t.Schedule.Kind)
            throw new InvalidOperationException($"{dir}: the checkpoint was made with schedule {meta.Scheduler}/{meta.WarmupSteps} warmup/{meta.TotalSteps} steps, this run has {t.Schedule.Kind}/{t.Schedule.WarmupSteps}/{t.Schedule.TotalSteps}; resume with the same recipe");
        var opt = SafeTensors.Load(Path.Combine(dir, "optimizer.safetensors"));
        t.Optimizer.LoadStateDict(opt);
        foreach (var v in opt.Values) v.Dispose();
        var rng = SafeTensors.Load(Path.Combine(dir, "rng_state.safetensors"));
        random.set_rng_state(rng["cpu"]);
        rng["cpu"].Dispose();
        t.Restore(meta.State);
        return meta.WorldSize;
    }

    /// <summary>trainer_state.json.</summary>
    public sealed record CheckpointMeta(TrainerState State, string Scheduler, double Lr, int WarmupSteps, int TotalSteps, int WorldSize = 1)
    {
        /// <summary>The run this checkpoint belongs to (recipe.resolved.yaml's run_id); null in checkpoints made before run ids.</summary>
        public string? RunId { get; init; }
    }
}
