// MSBuild task (compiled by RoslynCodeTaskFactory) that makes TorchSharp's libLibTorchSharp.so load on
// glibc systems whose libstdc++ stops at GLIBCXX_3.4.30 (Debian 12, Ubuntu 22.04).
//
// Why: the library asks for GLIBCXX_3.4.32 only because of the marker symbol
// std::ios_base_library_init() (GCC 13), which has no relocation. Renaming that one version
// requirement in .gnu.version_r to GLIBCXX_3.4.21 (same length, so no layout change) and updating its
// vna_hash lets the dynamic linker accept the file; nothing else in it changes.
using System;
using System.Collections.Generic;
using System.IO;
using System.Text;
using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;

public class PatchLibTorchSharp : Microsoft.Build.Utilities.Task
{
    /// <summary>Files to patch in place (copies in an output folder, never the NuGet cache).</summary>
    [Required]
    public ITaskItem[] Files { get; set; } = Array.Empty<ITaskItem>();

    public override bool Execute()
    {
        foreach (var item in Files)
        {
            string path = item.ItemSpec;
            if (!File.Exists(path)) continue;
            string result = ElfVersionPatch.PatchFile(path);
            Log.LogMessage(MessageImportance.Low, "PatchLibTorchSharp: {0}: {1}", path, result);
        }
        return !Log.HasLoggedErrors;
    }
}

/// <summary>Renames a GLIBCXX version requirement in an ELF64 little-endian shared library.</summary>
public static class ElfVersionPatch
{
    public const string From = "GLIBCXX_3.4.32";
    public const string To = "GLIBCXX_3.4.21";
    const uint SHT_GNU_verneed = 0x6ffffffe;

    /// <summary>Patches the file if it needs it: writes a new file and renames it over the old one, so a
    /// hard link into the NuGet cache is never written through. Returns "patched", "unchanged" or why not.</summary>
    public static string PatchFile(string path)
    {
        byte[] bytes = File.ReadAllBytes(path);
        string result = Patch(bytes);
        if (result != "patched") return result;
        string tmp = path + ".patching";
        File.WriteAllBytes(tmp, bytes);
        File.Delete(path);  // unlink first: never write through a hard link
        File.Move(tmp, path);
        return result;
    }

    /// <summary>Patches an in-memory image. Returns "patched" when it changed bytes, else "unchanged"
    /// (already patched, or a library that never asked for GLIBCXX_3.4.32) or "not ELF64-LE".</summary>
    public static string Patch(byte[] b)
    {
        if (!IsElf64Le(b)) return "not ELF64-LE";
        bool changed = false;
        ForEachRequirement(b, (aux, nameAt) =>
        {
            if (ReadCString(b, nameAt) != From) return;
            Encoding.ASCII.GetBytes(To).CopyTo(b, nameAt);
            BitConverter.GetBytes(ElfHash(To)).CopyTo(b, aux);
            changed = true;
        });
        return changed ? "patched" : "unchanged";
    }

    /// <summary>Every version requirement (Vernaux entry) of the file: its name and its vna_hash.</summary>
    public static List<(string Name, uint Hash)> Requirements(byte[] b)
    {
        var list = new List<(string, uint)>();
        if (IsElf64Le(b))
            ForEachRequirement(b, (aux, nameAt) => list.Add((ReadCString(b, nameAt), BitConverter.ToUInt32(b, aux))));
        return list;
    }

    static bool IsElf64Le(byte[] b) =>
        b.Length >= 64 && b[0] == 0x7f && b[1] == (byte)'E' && b[2] == (byte)'L' && b[3] == (byte)'F'
        && b[4] == 2 /* ELFCLASS64 */ && b[5] == 1 /* little endian */;

    // Walks .gnu.version_r: Verneed entries (16 bytes: version, cnt, file, aux, next), each followed
    // by Vernaux entries (16 bytes: hash, flags, other, name, next). Calls visit(auxOffset, nameOffset).
    static void ForEachRequirement(byte[] b, Action<int, int> visit)
    {
        ulong shoff = BitConverter.ToUInt64(b, 0x28);
        int shentsize = BitConverter.ToUInt16(b, 0x3A);
        int shnum = BitConverter.ToUInt16(b, 0x3C);
        for (int i = 0; i < shnum; i++)
        {
            int sh = checked((int)shoff + i * shentsize);
            if (BitConverter.ToUInt32(b, sh + 4) != SHT_GNU_verneed) continue;
            int vn = checked((int)BitConverter.ToUInt64(b, sh + 24));
            int link = (int)BitConverter.ToUInt32(b, sh + 40);       // index of the string table (.dynstr)
            int count = (int)BitConverter.ToUInt32(b, sh + 44);      // number of Verneed entries
            int strOff = checked((int)BitConverter.ToUInt64(b, checked((int)shoff + link * shentsize) + 24));
            for (int n = 0; n < count; n++)
            {
                int auxCount = BitConverter.ToUInt16(b, vn + 2);
                int aux = vn + (int)BitConverter.ToUInt32(b, vn + 8);
                for (int a = 0; a < auxCount; a++)
                {
                    visit(aux, strOff + (int)BitConverter.ToUInt32(b, aux + 8));
                    uint next = BitConverter.ToUInt32(b, aux + 12);
                    if (next == 0) break;
                    aux += (int)next;
                }
                uint vnNext = BitConverter.ToUInt32(b, vn + 12);
                if (vnNext == 0) break;
                vn += (int)vnNext;
            }
        }
    }

    /// <summary>The System V ELF hash the dynamic linker compares with vna_hash.</summary>
    public static uint ElfHash(string name)
    {
        uint h = 0;
        foreach (char c in name)
        {
            h = (h << 4) + c;
            uint g = h & 0xf0000000;
            if (g != 0) h ^= g >> 24;
            h &= ~g;
        }
        return h;
    }

    static string ReadCString(byte[] b, int at)
    {
        int end = at;
        while (end < b.Length && b[end] != 0) end++;
        return Encoding.ASCII.GetString(b, at, end - at);
    }
}
