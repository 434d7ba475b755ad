// Tests that measure process-wide figures (resident memory) must not share the process with others running.
namespace TaskLM.Tests;

/// <summary>Classes in this collection run alone, after the parallel ones, so a working-set reading
/// sees only their own allocations.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class SerialCollection
{
    public const string Name = "serial (process-wide measurements)";
}
