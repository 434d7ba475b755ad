// Prometheus counters of `tasklm serve`: requests by route and status, latency histogram, and the engine's own figures.
using System.Collections.Concurrent;
using System.Globalization;
using System.Text;

namespace TaskLM.Serving;

/// <summary>Request counters and latency histograms, rendered in Prometheus' text exposition format.</summary>
public sealed class ServerMetrics
{
    static readonly double[] Bounds = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

    sealed class Histogram
    {
        public readonly long[] Buckets = new long[Bounds.Length];
        public long Count;
        public double Sum;
    }

    readonly ConcurrentDictionary<(string Route, int Status), long> _requests = new();
    readonly ConcurrentDictionary<string, Histogram> _latency = new();

    /// <summary>Counts one finished request.</summary>
    public void Observe(string route, int status, double seconds)
    {
        _requests.AddOrUpdate((route, status), 1, (_, n) => n + 1);
        var h = _latency.GetOrAdd(route, _ => new Histogram());
        lock (h)
        {
            h.Count++; h.Sum += seconds;
            for (int i = 0; i < Bounds.Length; i++) if (seconds <= Bounds[i]) h.Buckets[i]++;
        }
    }

    /// <summary>All metrics as Prometheus text (version 0.0.4).</summary>
    public string Render(EngineStats? engine)
    {
        var sb = new StringBuilder();
        string F(double d) => d.ToString("R", CultureInfo.InvariantCulture);
        sb.Append("# HELP tasklm_http_requests_total HTTP requests by route and status code.\n# TYPE tasklm_http_requests_total counter\n");
        foreach (var ((route, status), n) in _requests.OrderBy(kv => kv.Key.Route, StringComparer.Ordinal).ThenBy(kv => kv.Key.Status))
            sb.Append($"tasklm_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}\n");
        sb.Append("# HELP tasklm_http_request_duration_seconds Time from request to the last byte of the response.\n# TYPE tasklm_http_request_duration_seconds histogram\n");
        foreach (var (route, h) in _latency.OrderBy(kv => kv.Key, StringComparer.Ordinal))
            lock (h)
            {
                for (int i = 0; i < Bounds.Length; i++) sb.Append($"tasklm_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{F(Bounds[i])}\"}} {h.Buckets[i]}\n");
                sb.Append($"tasklm_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {h.Count}\n");
                sb.Append($"tasklm_http_request_duration_seconds_sum{{route=\"{route}\"}} {F(h.Sum)}\n");
                sb.Append($"tasklm_http_request_duration_seconds_count{{route=\"{route}\"}} {h.Count}\n");
            }
        if (engine == null) return sb.ToString();
        sb.Append("# HELP tasklm_tokens_in_total Input and prompt tokens the model read.\n# TYPE tasklm_tokens_in_total counter\n");
        sb.Append($"tasklm_tokens_in_total {engine.TokensIn}\n");
        sb.Append("# HELP tasklm_tokens_out_total Tokens generated.\n# TYPE tasklm_tokens_out_total counter\n");
        sb.Append($"tasklm_tokens_out_total {engine.TokensOut}\n");
        sb.Append("# HELP tasklm_queue_length Rows and sequences waiting for the model.\n# TYPE tasklm_queue_length gauge\n");
        sb.Append($"tasklm_queue_length {engine.QueueLength}\n");
        sb.Append("# HELP tasklm_active_sequences Sequences decoding in the running batch.\n# TYPE tasklm_active_sequences gauge\n");
        sb.Append($"tasklm_active_sequences {engine.ActiveSequences}\n");
        sb.Append("# HELP tasklm_sequences_cancelled_total Sequences stopped because their client went away or timed out.\n# TYPE tasklm_sequences_cancelled_total counter\n");
        sb.Append($"tasklm_sequences_cancelled_total {engine.Cancelled}\n");
        sb.Append("# HELP tasklm_batch_size Rows per forward pass (encoder batches and decoding steps).\n# TYPE tasklm_batch_size histogram\n");
        long cum = 0;
        for (int i = 0; i < EngineStats.BucketBounds.Length; i++)
        {
            cum += engine.BatchSizeBuckets[i];
            sb.Append($"tasklm_batch_size_bucket{{le=\"{EngineStats.BucketBounds[i]}\"}} {cum}\n");
        }
        sb.Append($"tasklm_batch_size_bucket{{le=\"+Inf\"}} {engine.Batches}\n");
        sb.Append($"tasklm_batch_size_sum {engine.BatchRows}\ntasklm_batch_size_count {engine.Batches}\n");
        return sb.ToString();
    }
}
