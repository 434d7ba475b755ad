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

    static readonly JsonSerializerOptions Json = new() { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    /// <summary>Writes the checkpoint of the trainer's current step and prunes old ones. Returns its folder.</summary>
    public string Save(Trainer t)
    {
        Directory.CreateDirectory(Folder);
        string final = Path.Combine(Folder, $"step-{t.State.Step}");
        string tmp = Path.Combine(Folder, $".tmp-step-{t.State.Step}-{Environment.ProcessId}");
        if (Directory.Exists(tmp)) Directory.Delete(tmp, true);
        Directory.CreateDirectory(tmp);
        saveModel(tmp);
        var opt = t.Optimizer.StateDict();
        SafeTensors.Save(Path.Combine(tmp, "optimizer.safetensors"), opt);
        foreach (var v in opt.Values) v.Dispose();
        using (var rng = random.get_rng_state())
            SafeTensors.Save(Path.Combine(tmp, "rng_state.safetensors"), [new("cpu", rng)]);
        var meta = new CheckpointMeta(t.State, t.Schedule.Kind, t.Schedule.BaseLr, t.Schedule.WarmupSteps, t.Schedule.TotalSteps, WorldSize);
        File.WriteAllText(Path.Combine(tmp, "trainer_state.json"), JsonSerializer.Serialize(meta, Json));
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
        var meta = JsonSerializer.Deserialize<CheckpointMeta>(File.ReadAllText(statePath), Json)
            ?? throw new InvalidDataException($"{statePath}: empty");
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
    public sealed record CheckpointMeta(TrainerState State, string Scheduler, double Lr, int WarmupSteps, int TotalSteps, int WorldSize = 1);
}
