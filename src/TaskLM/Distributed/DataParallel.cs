// Data-parallel training across MPI ranks: gradient averaging on the optimizer's flat buffers, parameter broadcast, small reductions.
using TaskLM.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace TaskLM.Distributed;

/// <summary>One rank's view of a data-parallel job (as torch's DistributedDataParallel, without buckets that
/// overlap backward: TorchSharp exposes no gradient hooks, so the whole flat gradient buffer is all-reduced in
/// one call per buffer after backward). Every rank holds the full model and optimizer; gradients are averaged
/// before clipping and the update, so every rank computes the same update and the weights stay identical.</summary>
public sealed class DataParallel
{
    DataParallel(int rank, int worldSize) { Rank = rank; WorldSize = worldSize; }

    /// <summary>This process's rank (0 = the one that writes files).</summary>
    public int Rank { get; }
    /// <summary>Number of ranks.</summary>
    public int WorldSize { get; }
    /// <summary>Rank 0: writes metrics.jsonl, TensorBoard events, checkpoints and best/.</summary>
    public bool IsMain => Rank == 0;

    /// <summary>The job this process belongs to when a launcher (mpiexec, srun) started several; null when alone.
    /// Initialises MPI.</summary>
    public static DataParallel? FromEnvironment()
    {
        int n = Mpi.LaunchedWorldSize();
        // TASKLM_NCCL=1 alone: a one-rank job whose gradients still go through NCCL (checks the GPU path on one GPU).
        if (n <= 1) return Environment.GetEnvironmentVariable("TASKLM_NCCL") == "1" ? new DataParallel(0, 1) : null;
        Mpi.Init();
        return new DataParallel(Mpi.Rank, Mpi.Size);
    }

    /// <summary>Averages every flat gradient buffer of <paramref name="opt"/> across ranks (sum-all-reduce, then
    /// 1/world). Call after <see cref="AdamW.GatherGradients"/>, before the norm, clipping and the step.</summary>
    public void AverageGradients(AdamW opt)
    {
        bool scale = false;
        foreach (var b in opt.Buckets)
        {
            if (Gpu != null && b.Grads.device_type == DeviceType.CUDA && b.Grads.dtype == ScalarType.Float32)
            {
                using var st = b.Grads.storage<float>();
                Gpu.AllReduceAverage(st.data_ptr(), b.Grads.numel(), Nccl.DataType.Float32);   // averages on the GPU
            }
            else if (WorldSize > 1) { AllReduceSum(b.Grads); scale = true; }
        }
        if (scale) opt.ScaleGradients(1.0 / WorldSize);
    }

    /// <summary>NCCL for CUDA gradient buffers (null: MPI through host memory).</summary>
    public Nccl? Gpu { get; private set; }

    /// <summary>Sets up NCCL when training runs on CUDA (one GPU per rank; the id travels over MPI).</summary>
    public void UseNccl() => Gpu ??= Nccl.Create(Rank, WorldSize);

    /// <summary>Copies rank 0's values of every parameter and buffer of <paramref name="module"/> to all ranks (as DDP
    /// does at construction), so ranks start identical whatever their RNG did.</summary>
    public void BroadcastModule(nn.Module module)
    {
        if (WorldSize == 1) return;
        using var _ = no_grad();
        foreach (var t in module.parameters().Cast<Tensor>().Concat(module.buffers()).DistinctBy(t => t.Handle))
            Broadcast(t);
    }

    /// <summary>Element-wise sum across ranks, in place. A contiguous float32/float64 CPU tensor is reduced where it
    /// lies; anything else through a contiguous CPU float64 copy.</summary>
    public static void AllReduceSum(Tensor t)
    {
        if (t.device_type == DeviceType.CPU && t.is_contiguous() && t.dtype == ScalarType.Float32)
            Mpi.AllReduce(Pointer<float>(t), t.numel(), Mpi.Float);
        else if (t.device_type == DeviceType.CPU && t.is_contiguous() && t.dtype == ScalarType.Float64)
            Mpi.AllReduce(Pointer<double>(t), t.numel(), Mpi.Double);
        else
        {
            using var tmp = t.to(ScalarType.Float64, CPU).contiguous();
            Mpi.AllReduce(Pointer<double>(tmp), tmp.numel(), Mpi.Double);
            using (no_grad()) t.copy_(tmp);
        }
    }

    /// <summary>Rank 0's values into <paramref name="t"/> on every rank.</summary>
    public static void Broadcast(Tensor t)
    {
        if (t.device_type == DeviceType.CPU && t.is_contiguous() && t.dtype == ScalarType.Float32)
            Mpi.Broadcast(Pointer<float>(t), t.numel() * 4);
        else
        {
            using var tmp = t.to(ScalarType.Float64, CPU).contiguous();
            Mpi.Broadcast(Pointer<double>(tmp), tmp.numel() * 8);
            using (no_grad()) t.copy_(tmp);
        }
    }

    /// <summary>Sums doubles across ranks (losses, counts, confusion matrices); returns the same array.</summary>
    public double[] Sum(double[] values) { if (WorldSize > 1) Mpi.AllReduce(values); return values; }

    /// <summary>Rank 0's flag on every rank (early stopping is decided on rank 0).</summary>
    public bool BroadcastFlag(bool value)
    {
        if (WorldSize == 1) return value;
        var v = new[] { value ? 1.0 : 0.0 };
        Mpi.Broadcast(v);
        return v[0] != 0;
    }

    /// <summary>Address of the first element of a CPU tensor (storage base + offset).</summary>
    static IntPtr Pointer<T>(Tensor t) where T : unmanaged
    {
        using var s = t.storage<T>();
        return s.data_ptr() + (nint)(t.storage_offset() * t.element_size());
    }

    /// <summary>The examples of a global batch this rank takes: every WorldSize-th, from its rank (the batch plan
    /// itself is global, so resuming on another world size keeps the global order).</summary>
    public int[] Shard(int[] globalBatch) => globalBatch.Where((_, i) => i % WorldSize == Rank).ToArray();
}
