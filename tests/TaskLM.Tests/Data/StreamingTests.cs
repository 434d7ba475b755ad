// A large-ish JSONL import must run in bounded memory: the managed heap stays far below the file's size.
using System.Text.Json.Nodes;
using TaskLM.Data.Corpus;

namespace TaskLM.Tests.Data;

// Alone: the heap is process-wide, so tests running beside this one would show up in its measurement.
[CollectionDefinition(nameof(StreamingTests), DisableParallelization = true)]
public sealed class StreamingCollection;

[Collection(nameof(StreamingTests))]
public class StreamingTests
{
    [Fact]
    public void Import_of_a_45_MB_jsonl_keeps_the_heap_bounded()
    {
        var dir = Path.Combine(Path.GetTempPath(), "tasklm-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        var input = Path.Combine(dir, "big.jsonl");
        var output = Path.Combine(dir, "out.jsonl");
        try
        {
            const int rows = 64_000;
            var filler = new string('x', 680);
            // Generated lazily, so writing it is itself a streaming check of JsonlFile.Write.
            JsonlFile.Write(input, Enumerable.Range(0, rows).Select(i => new JsonObject { ["id"] = i, ["body"] = $"{i} {filler}", ["y"] = i % 3 }));
            long fileBytes = new FileInfo(input).Length;
            Assert.True(fileBytes > 45_000_000, $"file is {fileBytes} bytes");

            long baseline = GC.GetTotalMemory(forceFullCollection: true);
            long peak = 0;
            var result = DataImport.Run(input, output, new ImportOptions { Columns = new ColumnMap { Text = "body", Label = "y" } }, n =>
            {
                if (n % 16_000 == 0) peak = Math.Max(peak, GC.GetTotalMemory(forceFullCollection: true) - baseline);
            });
            Assert.Equal(rows, result.Rows);
            Assert.Equal(rows, File.ReadLines(output).Count());
            // Live heap growth while importing: a few buffers, not the file (which would be > 90 MB as UTF-16 strings).
            Assert.True(peak < 16_000_000, $"heap grew by {peak:N0} bytes while importing a {fileBytes:N0}-byte file");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
