// The few MPI calls data-parallel training needs, bound by P/Invoke to MPICH's libmpi (MPICH ABI: int handles).
using System.Runtime.InteropServices;

namespace TaskLM.Distributed;

/// <summary>MPI through MPICH's C ABI (libmpich.so.12: Debian/Ubuntu <c>mpich</c>, Intel MPI, MVAPICH and Cray
/// MPICH share it). MPICH's handles are 32-bit integers with fixed values (<c>MPI_COMM_WORLD</c> = 0x44000000,
/// <c>MPI_FLOAT</c> = 0x4c00040a ...), which is what lets a managed binding work without a native shim.
/// Open MPI's handles are pointers to library globals instead, so Open MPI is not supported (its
/// <c>mpirun</c> is detected and refused with a clear message).</summary>
public static unsafe class Mpi
{
    const string Lib = "libmpich.so.12";

    // mpi.h (MPICH 4.0.2) constants.
    const int CommWorld = 0x44000000;
    /// <summary>MPI_FLOAT.</summary>
    public const int Float = 0x4c00040a;
    /// <summary>MPI_DOUBLE.</summary>
    public const int Double = 0x4c00080b;
    /// <summary>MPI_INT.</summary>
    public const int Int = 0x4c000405;
    /// <summary>MPI_BYTE.</summary>
    public const int Byte = 0x4c00010d;
    /// <summary>MPI_SUM.</summary>
    public const int Sum = 0x58000003;
    /// <summary>MPI_MAX.</summary>
    public const int Max = 0x58000001;
    static readonly IntPtr InPlace = new(-1);
    const int ErrorsReturn = 0x54000001;

    [DllImport(Lib)] static extern int MPI_Initialized(out int flag);
    [DllImport(Lib)] static extern int MPI_Finalized(out int flag);
    [DllImport(Lib)] static extern int MPI_Init(IntPtr argc, IntPtr argv);
    [DllImport(Lib)] static extern int MPI_Finalize();
    [DllImport(Lib)] static extern int MPI_Comm_rank(int comm, out int rank);
    [DllImport(Lib)] static extern int MPI_Comm_size(int comm, out int size);
    [DllImport(Lib)] static extern int MPI_Comm_set_errhandler(int comm, int handler);
    [DllImport(Lib)] static extern int MPI_Bcast(void* buffer, int count, int datatype, int root, int comm);
    [DllImport(Lib)] static extern int MPI_Allreduce(IntPtr sendbuf, void* recvbuf, int count, int datatype, int op, int comm);
    [DllImport(Lib)] static extern int MPI_Barrier(int comm);
    [DllImport(Lib)] static extern int MPI_Abort(int comm, int errorcode);
    [DllImport(Lib)] static extern int MPI_Error_string(int errorcode, byte* str, out int resultlen);

    /// <summary>This process's rank in MPI_COMM_WORLD (after <see cref="Init"/>).</summary>
    public static int Rank { get; private set; }
    /// <summary>Number of processes in MPI_COMM_WORLD (after <see cref="Init"/>).</summary>
    public static int Size { get; private set; } = 1;
    /// <summary>Whether <see cref="Init"/> ran and <see cref="Shutdown"/> has not.</summary>
    public static bool Active { get; private set; }

    /// <summary>The world size the launcher announced in the environment (mpiexec/Hydra's PMI_SIZE, Slurm's
    /// srun with PMI-2 or PMIx), or 1 when this process was started alone. Throws for Open MPI's mpirun.</summary>
    public static int LaunchedWorldSize()
    {
        if (Environment.GetEnvironmentVariable("OMPI_COMM_WORLD_SIZE") != null)
            throw new NotSupportedException("started by Open MPI's mpirun: TaskLM binds MPICH's ABI (libmpich.so.12); install mpich and launch with its mpiexec (see docs/distributed.md)");
        foreach (var v in new[] { "PMI_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS" })
            if (int.TryParse(Environment.GetEnvironmentVariable(v), out int n) && n > 1) return n;
        if (Environment.GetEnvironmentVariable("PMIX_RANK") != null && int.TryParse(Environment.GetEnvironmentVariable("SLURM_NTASKS"), out int s) && s > 1) return s;
        return 1;
    }

    /// <summary>MPI_Init (once), rank and size; errors return codes instead of aborting inside the library, so
    /// they surface as exceptions naming the call.</summary>
    public static void Init()
    {
        if (Active) return;
        if (!NativeLibrary.TryLoad(Lib, typeof(Mpi).Assembly, null, out _))
            throw new DllNotFoundException($"{Lib} not found: data-parallel training needs MPICH (Debian/Ubuntu: apt-get install mpich)");
        Check(MPI_Initialized(out int done), "MPI_Initialized");
        if (done == 0) Check(MPI_Init(IntPtr.Zero, IntPtr.Zero), "MPI_Init");
        Check(MPI_Comm_set_errhandler(CommWorld, ErrorsReturn), "MPI_Comm_set_errhandler");
        Check(MPI_Comm_rank(CommWorld, out int r), "MPI_Comm_rank");
        Check(MPI_Comm_size(CommWorld, out int s), "MPI_Comm_size");
        Rank = r; Size = s; Active = true;
    }

    /// <summary>MPI_Finalize (collective: every rank must reach it).</summary>
    public static void Shutdown()
    {
        if (!Active) return;
        Active = false;
        MPI_Finalized(out int f);
        if (f == 0) MPI_Finalize();
    }

    /// <summary>Ends every rank of the job (MPI_Abort): what a failing rank calls so no peer waits for it.</summary>
    public static void Abort(int code)
    {
        if (Active) MPI_Abort(CommWorld, code);
    }

    /// <summary>MPI_Barrier on the world.</summary>
    public static void Barrier() { if (Active) Check(MPI_Barrier(CommWorld), "MPI_Barrier"); }

    /// <summary>In-place sum (or <paramref name="op"/>) over all ranks of <paramref name="count"/> elements at
    /// <paramref name="data"/> (host or, with a CUDA-aware MPI, device memory), in chunks that fit MPI's int count.</summary>
    public static void AllReduce(IntPtr data, long count, int datatype, int op = Sum)
    {
        int elem = datatype switch { Float => 4, Int => 4, Double => 8, Byte => 1, _ => throw new ArgumentException($"datatype 0x{datatype:x}") };
        for (long off = 0; off < count; off += int.MaxValue / 2)
        {
            int n = (int)Math.Min(int.MaxValue / 2, count - off);
            Check(MPI_Allreduce(InPlace, (byte*)data + off * elem, n, datatype, op, CommWorld), "MPI_Allreduce");
        }
    }

    /// <summary>Sums doubles across ranks in place.</summary>
    public static void AllReduce(double[] values, int op = Sum)
    {
        fixed (double* p = values) AllReduce((IntPtr)p, values.Length, Double, op);
    }

    /// <summary>MPI_Bcast from <paramref name="root"/> of <paramref name="bytes"/> bytes at <paramref name="data"/>.</summary>
    public static void Broadcast(IntPtr data, long bytes, int root = 0)
    {
        for (long off = 0; off < bytes; off += int.MaxValue / 2)
        {
            int n = (int)Math.Min(int.MaxValue / 2, bytes - off);
            Check(MPI_Bcast((byte*)data + off, n, Byte, root, CommWorld), "MPI_Bcast");
        }
    }

    /// <summary>Broadcasts doubles from rank 0.</summary>
    public static void Broadcast(double[] values, int root = 0)
    {
        fixed (double* p = values) Broadcast((IntPtr)p, values.Length * 8L, root);
    }

    static void Check(int rc, string call)
    {
        if (rc == 0) return;
        var buf = stackalloc byte[1024];
        string msg = MPI_Error_string(rc, buf, out int len) == 0 ? System.Text.Encoding.ASCII.GetString(buf, len) : $"code {rc}";
        throw new MpiException($"rank {Rank} of {Size}: {call} failed: {msg} (a peer rank probably died; see the other ranks' errors)");
    }
}

/// <summary>An MPI call returned an error.</summary>
public sealed class MpiException(string message) : Exception(message);
