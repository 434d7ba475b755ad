// What a Hub pull gives back (the snapshot folder and its provenance), download progress, and the errors a user can act on.
using System.Text.Json.Nodes;

namespace TaskLM.Data.Hub;

/// <summary>A model's files at one commit in the local Hub cache: an HF model folder any loader can read.</summary>
public sealed record HubSnapshot
{
    /// <summary>The snapshot folder, <c>{cache}/models--org--name/snapshots/{commit}</c>.</summary>
    public required string Folder { get; init; }
    /// <summary>Repository id (org/name).</summary>
    public required string Repo { get; init; }
    /// <summary>The revision asked for (branch, tag or commit).</summary>
    public required string Revision { get; init; }
    /// <summary>The 40-hex commit the revision resolved to.</summary>
    public required string Commit { get; init; }
    /// <summary>SHA-256 (lower-case hex) of each file of the snapshot, by its path inside the repository.</summary>
    public required IReadOnlyDictionary<string, string> FileSha256 { get; init; }
    /// <summary>True when the Hub was not asked (offline, a cached commit, or the Hub unreachable).</summary>
    public bool FromCache { get; init; }

    /// <summary>Provenance for recipe.resolved.yaml, eval.json and model READMEs:
    /// <c>{"source": "hf", "repo", "revision", "commit", "files": {path: sha256}}</c>.</summary>
    public JsonObject Provenance()
    {
        var files = new JsonObject();
        foreach (var (path, sha) in FileSha256.OrderBy(kv => kv.Key, StringComparer.Ordinal)) files[path] = sha;
        return new JsonObject
        {
            ["source"] = "hf", ["repo"] = Repo, ["revision"] = Revision, ["commit"] = Commit, ["files"] = files,
        };
    }
}

/// <summary>One progress report of a download: the file, bytes so far, its size (when known), rate and time left.</summary>
public readonly record struct HubProgress(string File, long Bytes, long? Total, double BytesPerSecond, TimeSpan? Eta);

/// <summary>Why a Hub request failed, for callers that react differently.</summary>
public enum HubErrorKind
{
    /// <summary>401/403: a gated or private repository, or a bad token.</summary>
    Unauthorized,
    /// <summary>404 RepoNotFound.</summary>
    RepoNotFound,
    /// <summary>404 RevisionNotFound.</summary>
    RevisionNotFound,
    /// <summary>404 EntryNotFound (a file).</summary>
    EntryNotFound,
    /// <summary>config.json names a model_type the caller cannot load.</summary>
    UnsupportedArchitecture,
    /// <summary>Offline (HF_HUB_OFFLINE=1 or the Hub unreachable) and the cache lacks what is needed.</summary>
    NotCached,
    /// <summary>The repository has no weights TaskLM can read, or a download failed its size/sha256 check.</summary>
    BadContent,
    /// <summary>The Hub could not be reached, timed out, or answered an unexpected status.</summary>
    Network,
}

/// <summary>A Hub failure with a message that says what to do.</summary>
public sealed class HubException(HubErrorKind kind, string message, Exception? inner = null) : Exception(message, inner)
{
    /// <summary>What went wrong.</summary>
    public HubErrorKind Kind { get; } = kind;
}
