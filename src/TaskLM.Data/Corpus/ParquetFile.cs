// Parquet reader/writer on Parquet.Net: one row group in memory at a time, nested columns to JSON arrays/objects.
using System.Collections;
using System.Text.Json.Nodes;
using Parquet;
using Parquet.Schema;
using Parquet.Serialization;

namespace TaskLM.Data.Corpus;

/// <summary>Reads Parquet files (what Hugging Face <c>datasets</c> exports) row group by row group, so memory is
/// bounded by the largest row group, not the file. Lists become JSON arrays, structs JSON objects. A row's
/// Line is its 1-based row number in the file.</summary>
public static class ParquetFile
{
    /// <summary>Yields every row of <paramref name="path"/> as JSON fields.</summary>
    public static IEnumerable<DataRow> Read(string path)
    {
        using var fs = File.OpenRead(path);
        int groups;
        List<string> columns;
        try
        {
            var reader = ParquetReader.CreateAsync(fs, leaveStreamOpen: true).GetAwaiter().GetResult();
            groups = reader.RowGroupCount;
            columns = reader.Schema.Fields.Select(f => f.Name).ToList();
            reader.DisposeAsync().AsTask().GetAwaiter().GetResult();
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // Parquet.Net reports damage as whatever it hits first (an overflow, an index out of range, ...):
            // whatever it is, the user needs the file's name and that it is not valid Parquet.
            throw new DataFormatException(path, 0, $"not a readable Parquet file ({e.Message})", e);
        }
        long rowNo = 0;
        for (int g = 0; g < groups; g++)
        {
            fs.Position = 0;
            DeserializationResult<Dictionary<string, object>> result;
            try { result = ParquetSerializer.DeserializeUntypedAsync(fs, null, g).GetAwaiter().GetResult(); }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                throw new DataFormatException(path, 0, $"row group {g + 1} of {groups} is not readable Parquet ({e.Message})", e);
            }
            foreach (var dict in result.Data)
            {
                rowNo++;
                // The untyped deserializer leaves nulls out; every row gets every column, in schema order.
                var obj = new JsonObject();
                foreach (var c in columns) obj[c] = dict.TryGetValue(c, out var v) ? ToNode(v) : null;
                yield return new DataRow(obj, path, rowNo);
            }
        }
    }

    /// <summary>Writes rows of flat fields (strings, numbers as doubles, booleans; nulls allowed) to a Parquet file in
    /// one row group; the schema is taken from the first row. Meant for small exports and tests.</summary>
    public static void Write(string path, IReadOnlyList<JsonObject> rows)
    {
        if (rows.Count == 0) throw new ArgumentException("no rows to write", nameof(rows));
        var names = rows[0].Select(kv => kv.Key).ToList();
        var kinds = names.Select(n => rows.Select(r => r[n]?.GetValueKind()).FirstOrDefault(k => k != null)).ToList();
        var fields = names.Select((n, i) => kinds[i] switch
        {
            System.Text.Json.JsonValueKind.Number => (DataField)new DataField<double?>(n),
            System.Text.Json.JsonValueKind.True or System.Text.Json.JsonValueKind.False => new DataField<bool?>(n),
            System.Text.Json.JsonValueKind.Object or System.Text.Json.JsonValueKind.Array => throw new ArgumentException($"column '{n}': nested values are not supported by Write"),
            _ => new DataField<string>(n),
        }).ToList();
        using var fs = File.Create(path);
        var writer = ParquetWriter.CreateAsync(new ParquetSchema(fields), fs).GetAwaiter().GetResult();
        try
        {
            using var rg = writer.CreateRowGroup();
            for (int i = 0; i < fields.Count; i++)
            {
                var n = names[i];
                var f = fields[i];
                if (f.ClrType == typeof(double))
                    rg.WriteAsync<double>(f, new ReadOnlyMemory<double?>(rows.Select(r => r[n] is JsonNode v ? v.GetValue<double>() : (double?)null).ToArray())).GetAwaiter().GetResult();
                else if (f.ClrType == typeof(bool))
                    rg.WriteAsync<bool>(f, new ReadOnlyMemory<bool?>(rows.Select(r => r[n] is JsonNode v ? v.GetValue<bool>() : (bool?)null).ToArray())).GetAwaiter().GetResult();
                else
                    rg.WriteAsync(f, rows.Select(r => r[n] is JsonNode v ? (v.GetValueKind() == System.Text.Json.JsonValueKind.String ? v.GetValue<string>() : v.ToJsonString()) : null!).ToList()).GetAwaiter().GetResult();
            }
        }
        finally
        {
            writer.DisposeAsync().AsTask().GetAwaiter().GetResult();
        }
    }

    static JsonNode? ToNode(object? v) => v switch
    {
        null => null,
        string s => JsonValue.Create(s),
        bool b => JsonValue.Create(b),
        byte[] bytes => JsonValue.Create(Convert.ToBase64String(bytes)),
        DateTime dt => JsonValue.Create(dt.ToString("o")),
        DateTimeOffset dto => JsonValue.Create(dto.ToString("o")),
        IDictionary<string, object> d => new JsonObject(d.Select(kv => KeyValuePair.Create(kv.Key, ToNode(kv.Value)))),
        IDictionary d => new JsonObject(d.Keys.Cast<object>().Select(k => KeyValuePair.Create(k.ToString()!, ToNode(d[k])))),
        IEnumerable e => new JsonArray(e.Cast<object?>().Select(ToNode).ToArray()),
        sbyte or byte or short or ushort or int or uint or long or ulong => JsonValue.Create(Convert.ToInt64(v)),
        float f => JsonValue.Create((double)f),
        double d => JsonValue.Create(d),
        decimal m => JsonValue.Create(m),
        _ => JsonValue.Create(v.ToString()),
    };
}
