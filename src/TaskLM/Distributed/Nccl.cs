// NCCL (libnccl.so.2 from a PyTorch CUDA installation) by P/Invoke: unique id, communicator, all-reduce on device memory.
// Written against nccl.h (NCCL 2.x); untested here: no GPU machine was at hand when it was written.
using System.Runtime.InteropServices;

namespace TaskLM.Distributed;

/// <summary>The NCCL calls data-parallel training on CUDA needs (the surface vLLM's pynccl wrapper binds):
/// <c>ncclGetUniqueId</c> (rank 0; the 128-byte id travels to the other ranks over MPI), <c>ncclCommInitRank</c>,
/// <c>ncclAllReduce</c> on device pointers, <c>ncclCommDestroy</c>. The library is found next to the libtorch
/// that TASKLM_LIBTORCH names (PyTorch's torch/lib), in pip's nvidia/nccl/lib beside it, or by the loader.</summary>
public sealed unsafe class Nccl : IDisposable
{
    /// <summary>ncclDataType_t values (nccl.h).</summary>
    public enum DataType { Float16 = 6, Float32 = 7, Float64 = 8, BFloat16 = 9 }
    enum RedOp { Sum = 0, Avg = 4 }

    [StructLayout(LayoutKind.Sequential, Size = 128)]
    struct UniqueId { fixed byte internal_[128]; }

    delegate* unmanaged<UniqueId*, int> _getUniqueId;
    delegate* unmanaged<IntPtr*, int, UniqueId, int, int> _commInitRank;
    delegate* unmanaged<IntPtr, IntPtr, nuint, int, int, IntPtr, IntPtr, int> _allReduce;
    delegate* unmanaged<IntPtr, int> _commDestroy;
    delegate* unmanaged<int, IntPtr> _errorString;
    IntPtr _comm;

    /// <summary>Where libnccl.so.2 was loaded from.</summary>
    public string LibraryPath { get; }

    Nccl(IntPtr lib, string path)
    {
        LibraryPath = path;
        _getUniqueId = (delegate* unmanaged<UniqueId*, int>)NativeLibrary.GetExport(lib, "ncclGetUniqueId");
        _commInitRank = (delegate* unmanaged<IntPtr*, int, UniqueId, int, int>)NativeLibrary.GetExport(lib, "ncclCommInitRank");
        _allReduce = (delegate* unmanaged<IntPtr, IntPtr, nuint, int, int, IntPtr, IntPtr, int>)NativeLibrary.GetExport(lib, "ncclAllReduce");
        _commDestroy = (delegate* unmanaged<IntPtr, int>)NativeLibrary.GetExport(lib, "ncclCommDestroy");
        _errorString = (delegate* unmanaged<int, IntPtr>)NativeLibrary.GetExport(lib, "ncclGetErrorString");
    }

    /// <summary>Loads NCCL and builds the communicator of <paramref name="worldSize"/> ranks; with more than one
    /// rank the unique id is broadcast from rank 0 over MPI (which must be initialised). The caller has made
    /// its GPU current (one GPU per rank).</summary>
    public static Nccl Create(int rank, int worldSize)
    {
        var (lib, path) = Load();
        var n = new Nccl(lib, path);
        UniqueId id;
        if (rank == 0) n.Check(n._getUniqueId(&id), "ncclGetUniqueId");
        if (worldSize > 1) Mpi.Broadcast((IntPtr)(&id), sizeof(UniqueId));
        IntPtr comm;
        n.Check(n._commInitRank(&comm, worldSize, id, rank), "ncclCommInitRank");
        n._comm = comm;
        return n;
    }

    /// <summary>In-place average over ranks of <paramref name="count"/> elements at device pointer <paramref name="data"/>,
    /// on the default CUDA stream (the one TorchSharp's kernels run on unless a stream was set).</summary>
    public void AllReduceAverage(IntPtr data, long count, DataType type) =>
        Check(_allReduce(data, data, (nuint)count, (int)type, (int)RedOp.Avg, _comm, IntPtr.Zero), "ncclAllReduce");

    static (IntPtr, string) Load()
    {
        var dirs = new List<string>();
        if (Environment.GetEnvironmentVariable(Native.TorchBackend.LibTorchEnv) is { Length: > 0 } lt)
        {
            dirs.Add(lt);
            dirs.Add(Path.Combine(lt, "..", "..", "nvidia", "nccl", "lib"));   // pip: site-packages/torch/lib → site-packages/nvidia/nccl/lib
        }
        foreach (var d in dirs)
        {
            string p = Path.GetFullPath(Path.Combine(d, "libnccl.so.2"));
            if (File.Exists(p) && NativeLibrary.TryLoad(p, out var h)) return (h, p);
        }
        if (NativeLibrary.TryLoad("libnccl.so.2", out var h2)) return (h2, "libnccl.so.2");
        throw new DllNotFoundException($"libnccl.so.2 not found next to {Native.TorchBackend.LibTorchEnv}'s libtorch nor on the loader path (install PyTorch with CUDA, or NCCL)");
    }

    void Check(int rc, string call)
    {
        if (rc == 0) return;
        string msg = _errorString != null ? Marshal.PtrToStringAnsi(_errorString(rc)) ?? $"code {rc}" : $"code {rc}";
        throw new InvalidOperationException($"{call} failed: {msg}");
    }

    public void Dispose()
    {
        if (_comm != IntPtr.Zero) { _commDestroy(_comm); _comm = IntPtr.Zero; }
    }
}
