// The build's ELF patch: what it changes, that it is idempotent, and that its hash is the linker's.
namespace TaskLM.Tests.Native;

public class LibTorchPatchTests
{
    static string OutputNative => Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native");

    // The unpatched original, read (never written) from the NuGet package folder.
    static string PackageOriginal()
    {
        string root = Environment.GetEnvironmentVariable("NUGET_PACKAGES")
            ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        return Path.Combine(root, "torchsharp", "0.107.0", "runtimes", "linux-x64", "native", "libLibTorchSharp.so");
    }

    static bool LinuxX64 => OperatingSystem.IsLinux() && System.Runtime.InteropServices.RuntimeInformation.OSArchitecture == System.Runtime.InteropServices.Architecture.X64;

    [Fact]
    public void BuildOutputNoLongerAsksForGlibcxx3432()
    {
        if (!LinuxX64) return; // the patch is a linux-x64 build step only
        var reqs = ElfVersionPatch.Requirements(File.ReadAllBytes(Path.Combine(OutputNative, "libLibTorchSharp.so")));
        Assert.NotEmpty(reqs);
        Assert.DoesNotContain(reqs, r => r.Name == ElfVersionPatch.From);
        Assert.Contains(reqs, r => r.Name == ElfVersionPatch.To && r.Hash == ElfVersionPatch.ElfHash(ElfVersionPatch.To));
    }

    [Fact]
    public void PatchChangesOnlyTheOneRequirementAndIsIdempotent()
    {
        if (!LinuxX64) return;
        byte[] original = File.ReadAllBytes(PackageOriginal());
        Assert.Contains(ElfVersionPatch.Requirements(original), r => r.Name == ElfVersionPatch.From);

        byte[] once = (byte[])original.Clone();
        Assert.Equal("patched", ElfVersionPatch.Patch(once));
        // Same length; exactly the 14-byte name and the 4-byte hash differ (at most 18 bytes).
        Assert.Equal(original.Length, once.Length);
        int diff = original.Zip(once).Count(p => p.First != p.Second);
        Assert.InRange(diff, 2, 18);
        // The build output is byte-for-byte what the patch produces.
        Assert.Equal(once, File.ReadAllBytes(Path.Combine(OutputNative, "libLibTorchSharp.so")));

        byte[] twice = (byte[])once.Clone();
        Assert.Equal("unchanged", ElfVersionPatch.Patch(twice));
        Assert.Equal(once, twice);
    }

    [Fact]
    public void LibraryThatNeverAskedForGcc13IsLeftUnchanged()
    {
        if (!LinuxX64) return;
        byte[] c10 = File.ReadAllBytes(Path.Combine(OutputNative, "libc10.so"));
        byte[] copy = (byte[])c10.Clone();
        Assert.Equal("unchanged", ElfVersionPatch.Patch(copy));
        Assert.Equal(c10, copy);
        Assert.Equal("not ELF64-LE", ElfVersionPatch.Patch(new byte[100]));
    }

    [Fact]
    public void ElfHashAgreesWithTheHashesTheLinkerWrote()
    {
        if (!LinuxX64) return;
        // libtorch_cpu.so was linked by GCC's toolchain, which computed every vna_hash itself.
        var reqs = ElfVersionPatch.Requirements(File.ReadAllBytes(Path.Combine(OutputNative, "libtorch_cpu.so")));
        Assert.True(reqs.Count >= 5, $"only {reqs.Count} requirements read");
        Assert.All(reqs, r => Assert.Equal(r.Hash, ElfVersionPatch.ElfHash(r.Name)));
    }

    [Fact]
    public void PatchFileReplacesTheFileInsteadOfWritingThroughAHardLink()
    {
        if (!LinuxX64) return;
        string dir = Directory.CreateTempSubdirectory("tasklm-patch").FullName;
        try
        {
            string a = Path.Combine(dir, "orig.so"), b = Path.Combine(dir, "link.so");
            File.Copy(PackageOriginal(), a);
            using (var ln = System.Diagnostics.Process.Start("ln", new[] { a, b })!) { ln.WaitForExit(); Assert.Equal(0, ln.ExitCode); }
            Assert.Equal("patched", ElfVersionPatch.PatchFile(b));
            Assert.Contains(ElfVersionPatch.Requirements(File.ReadAllBytes(a)), r => r.Name == ElfVersionPatch.From);
            Assert.DoesNotContain(ElfVersionPatch.Requirements(File.ReadAllBytes(b)), r => r.Name == ElfVersionPatch.From);
        }
        finally { Directory.Delete(dir, true); }
    }
}
