// The local Hugging Face Hub cache as huggingface_hub lays it out: models--org--name/{blobs,refs,snapshots,.no_exist}; read, list, remove.
using System.Security.Cryptography;
using System.Text.RegularExpressions;

namespace TaskLM.Data.Hub;

/// <summary>
/// The Hub cache under one root (see <see cref="HubOptions.CacheDir"/>), shared with Python's huggingface_hub:
/// <code>
/// models--{org}--{name}/blobs/{etag}                 file contents (sha256 for LFS files, git sha1 otherwise)
/// models--{org}--{name}/refs/{revision}              the commit a branch or tag points to
/// models--{org}--{name}/snapshots/{commit}/{path}    relative symlinks to ../../blobs/{etag}
/// models--{org}--{name}/.no_exist/{commit}/{path}    empty markers: the file does not exist at that commit
/// .locks/models--{org}--{name}/{etag}.lock            one lock per blob while it is downloaded
/// </code>
/// </summary>
public sealed class HubCache(string root)
{
    /// <summary>The cache root.</summary>
    public string Root { get; } = root;

    static readonly Regex CommitHash = new("^[0-9a-f]{40}$", RegexOptions.CultureInvariant);
    static readonly Regex Sha256Hex = new("^[0-9a-f]{64}$", RegexOptions.CultureInvariant);

    /// <summary>True for a 40-hex commit hash.</summary>
    public static bool IsCommit(string revision) => CommitHash.IsMatch(revision);

    /// <summary>True for a 64-hex etag (an LFS file: the etag is the file's SHA-256).</summary>
    public static bool IsSha256(string etag) => Sha256Hex.IsMatch(etag);

    /// <summary><c>models--org--name</c>.</summary>
    public static string RepoFolderName(string repoId) => "models--" + repoId.Replace("/", "--");

    /// <summary>The repository's folder in the cache.</summary>
    public string RepoFolder(string repoId) => Path.Combine(Root, RepoFolderName(repoId));

    /// <summary>A snapshot folder.</summary>
    public string SnapshotFolder(string repoId, string commit) => Path.Combine(RepoFolder(repoId), "snapshots", commit);

    /// <summary>A blob file.</summary>
    public string BlobPath(string repoId, string etag) => Path.Combine(RepoFolder(repoId), "blobs", etag);

    /// <summary>The lock file guarding one blob's download.</summary>
    public string LockPath(string repoId, string etag) => Path.Combine(Root, ".locks", RepoFolderName(repoId), etag + ".lock");

    /// <summary>The commit a revision means in the cache: itself when it is a commit hash, else refs/{revision}, else null.</summary>
    public string? ResolveCommit(string repoId, string revision)
    {
        if (IsCommit(revision)) return revision;
        string refFile = Path.Combine(RepoFolder(repoId), "refs", revision);
        return File.Exists(refFile) && File.ReadAllText(refFile).Trim() is { } c && IsCommit(c) ? c : null;
    }

    /// <summary>Records that a branch or tag points to a commit (refs/{revision}, no newline, as Python writes it).</summary>
    public void WriteRef(string repoId, string revision, string commit)
    {
        if (revision == commit) return;
        string refFile = Path.Combine(RepoFolder(repoId), "refs", revision);
        if (File.Exists(refFile) && File.ReadAllText(refFile).Trim() == commit) return;
        Directory.CreateDirectory(Path.GetDirectoryName(refFile)!);
        string tmp = $"{refFile}.{Guid.NewGuid().ToString("N")[..8]}.tmp";
        File.WriteAllText(tmp, commit);
        File.Move(tmp, refFile, overwrite: true);
    }

    /// <summary>An empty marker saying <paramref name="path"/> does not exist at <paramref name="commit"/>.</summary>
    public void MarkNoExist(string repoId, string commit, string path)
    {
        string marker = Path.Combine(RepoFolder(repoId), ".no_exist", commit, path);
        if (File.Exists(marker)) return;
        Directory.CreateDirectory(Path.GetDirectoryName(marker)!);
        File.WriteAllBytes(marker, []);
    }

    /// <summary>
    /// Points snapshots/{commit}/{path} at a blob with a relative symlink (../../blobs/{etag}, one more ../ per folder
    /// of a nested path), replacing any link there atomically. Where symlinks cannot be made (Windows without developer
    /// mode) the blob is copied, as huggingface_hub does.
    /// </summary>
    public void Link(string repoId, string commit, string path, string etag)
    {
        string pointer = Path.Combine(SnapshotFolder(repoId, commit), path);
        string dir = Path.GetDirectoryName(pointer)!;
        Directory.CreateDirectory(dir);
        string blob = BlobPath(repoId, etag);
        string tmp = $"{pointer}.{Guid.NewGuid():N}.tmp";
        try { File.CreateSymbolicLink(tmp, Path.GetRelativePath(dir, blob)); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or PlatformNotSupportedException) { File.Copy(blob, tmp); }
        File.Move(tmp, pointer, overwrite: true);
    }

    /// <summary>True when a snapshot file is there and readable: a link whose blob is gone (a broken link) is not.</summary>
    public static bool Present(string path)
    {
        var info = new FileInfo(path);
        if (!info.Exists) return false;
        return info.LinkTarget == null || info.ResolveLinkTarget(returnFinalTarget: true) is { Exists: true };
    }

    /// <summary>SHA-256 of a snapshot file: the blob's name when it is an LFS blob (named by its SHA-256), else hashed.</summary>
    public static string FileSha256(string snapshotFile)
    {
        if (new FileInfo(snapshotFile).LinkTarget is string target && IsSha256(Path.GetFileName(target))) return Path.GetFileName(target);
        using var s = File.OpenRead(snapshotFile);
        return Convert.ToHexStringLower(SHA256.HashData(s));
    }

    /// <summary>Every readable file of a snapshot, as paths relative to it ('/'-separated, as in the repository).</summary>
    public static IReadOnlyCollection<string> Files(string snapshotFolder) =>
        Directory.EnumerateFiles(snapshotFolder, "*", SearchOption.AllDirectories)
            .Where(f => !f.EndsWith(".tmp", StringComparison.Ordinal) && Present(f))
            .Select(f => Path.GetRelativePath(snapshotFolder, f).Replace('\\', '/')).ToHashSet(StringComparer.Ordinal);

    /// <summary>One cached commit of a repository: its folder, the refs that point to it, its files and their size.</summary>
    public sealed record CachedRevision(string Commit, IReadOnlyList<string> Refs, string Folder, int Files, long Bytes);

    /// <summary>One cached repository: its revisions and the size of its blobs on disk.</summary>
    public sealed record CachedRepo(string Repo, string Folder, long Bytes, IReadOnlyList<CachedRevision> Revisions);

    /// <summary>The cached model repositories (Python's and ours alike), sorted by name.</summary>
    public IReadOnlyList<CachedRepo> List()
    {
        if (!Directory.Exists(Root)) return [];
        var repos = new List<CachedRepo>();
        foreach (string dir in Directory.EnumerateDirectories(Root, "models--*").Order(StringComparer.Ordinal))
        {
            string repo = Path.GetFileName(dir)["models--".Length..].Replace("--", "/");
            var refs = Refs(dir);
            var revisions = new List<CachedRevision>();
            string snapshots = Path.Combine(dir, "snapshots");
            if (Directory.Exists(snapshots))
                foreach (string snap in Directory.EnumerateDirectories(snapshots).Order(StringComparer.Ordinal))
                {
                    string commit = Path.GetFileName(snap);
                    var files = Directory.EnumerateFiles(snap, "*", SearchOption.AllDirectories).Where(Present).ToList();
                    revisions.Add(new CachedRevision(commit, refs.Where(r => r.Commit == commit).Select(r => r.Name).ToList(), snap,
                        files.Count, files.Sum(SizeOf)));
                }
            string blobs = Path.Combine(dir, "blobs");
            long bytes = Directory.Exists(blobs) ? Directory.EnumerateFiles(blobs).Sum(f => new FileInfo(f).Length) : 0;
            repos.Add(new CachedRepo(repo, dir, bytes, revisions));
        }
        return repos;
    }

    /// <summary>A snapshot file's size: its blob's, for a link (FileInfo.Length of a link is the link's own).</summary>
    static long SizeOf(string file)
    {
        var info = new FileInfo(file);
        return info.LinkTarget != null && info.ResolveLinkTarget(returnFinalTarget: true) is FileInfo target ? target.Length : info.Length;
    }

    static List<(string Name, string Commit)> Refs(string repoFolder)
    {
        string refs = Path.Combine(repoFolder, "refs");
        if (!Directory.Exists(refs)) return [];
        return Directory.EnumerateFiles(refs, "*", SearchOption.AllDirectories)
            .Select(f => (Path.GetRelativePath(refs, f).Replace('\\', '/'), File.ReadAllText(f).Trim())).ToList();
    }

    /// <summary>
    /// Removes a repository from the cache (with its locks), or only one revision: its snapshot, the refs pointing to
    /// its commit, its .no_exist markers and the blobs no other snapshot uses (the repository folder goes with its last
    /// snapshot). Returns the bytes freed; a <see cref="HubException"/> (NotCached) names what is cached when nothing matches.
    /// </summary>
    public long Remove(string repoId, string? revision = null)
    {
        string dir = RepoFolder(repoId);
        if (!Directory.Exists(dir))
            throw new HubException(HubErrorKind.NotCached, $"{repoId} is not in the Hub cache {Root}" +
                (List() is { Count: > 0 } all ? $" (cached: {string.Join(", ", all.Select(r => r.Repo))})" : " (it is empty)"));
        long before = BlobBytes(dir);
        if (revision == null)
        {
            Directory.Delete(dir, recursive: true);
            string locks = Path.Combine(Root, ".locks", RepoFolderName(repoId));
            if (Directory.Exists(locks)) Directory.Delete(locks, recursive: true);
            return before;
        }
        string commit = ResolveCommit(repoId, revision) is string c && Directory.Exists(SnapshotFolder(repoId, c)) ? c
            : throw new HubException(HubErrorKind.NotCached, $"{repoId}: revision '{revision}' is not cached (cached: " +
                string.Join(", ", List().Where(r => r.Repo == repoId).SelectMany(r => r.Revisions)
                    .Select(r => r.Refs.Count > 0 ? $"{string.Join("/", r.Refs)} ({r.Commit[..7]})" : r.Commit)) + ")");
        Directory.Delete(SnapshotFolder(repoId, commit), recursive: true);   // deletes the links, never what they point to
        foreach (var (name, _) in Refs(dir).Where(r => r.Commit == commit)) File.Delete(Path.Combine(dir, "refs", name));
        string noExist = Path.Combine(dir, ".no_exist", commit);
        if (Directory.Exists(noExist)) Directory.Delete(noExist, recursive: true);

        // Blobs still used by a remaining snapshot stay.
        string snapshots = Path.Combine(dir, "snapshots");
        var used = Directory.Exists(snapshots)
            ? Directory.EnumerateFiles(snapshots, "*", SearchOption.AllDirectories)
                .Select(f => new FileInfo(f).LinkTarget is string t ? Path.GetFullPath(Path.Combine(Path.GetDirectoryName(f)!, t)) : null)
                .OfType<string>().ToHashSet()
            : [];
        string blobs = Path.Combine(dir, "blobs");
        if (Directory.Exists(blobs))
            foreach (string blob in Directory.EnumerateFiles(blobs).Where(b => !used.Contains(Path.GetFullPath(b))).ToList())
                File.Delete(blob);
        long freed = before - BlobBytes(dir);
        if (!Directory.Exists(snapshots) || !Directory.EnumerateDirectories(snapshots).Any()) Remove(repoId);  // the last revision: the repo goes
        return freed;
    }

    static long BlobBytes(string repoFolder)
    {
        string blobs = Path.Combine(repoFolder, "blobs");
        return Directory.Exists(blobs) ? Directory.EnumerateFiles(blobs).Sum(f => new FileInfo(f).Length) : 0;
    }
}
