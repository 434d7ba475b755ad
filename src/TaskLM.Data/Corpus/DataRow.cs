// The unit every reader yields and every cleaning step consumes: named fields plus where they came from.
using System.Text.Json.Nodes;

namespace TaskLM.Data.Corpus;

/// <summary>One record of a dataset: its fields as JSON values (text, label, tokens, tags, ...) and the
/// file and 1-based line (or row/record number) it came from, so every error and report can point at it.</summary>
public sealed record DataRow(JsonObject Fields, string Source, long Line);
