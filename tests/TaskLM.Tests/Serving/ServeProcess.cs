// Runs `tasklm serve --port 0` as a separate process and waits until its /health answers 200.
using System.Diagnostics;
using System.Net;

namespace TaskLM.Tests.Serving;

internal sealed class ServeProcess : IAsyncDisposable
{
    readonly Process _p;
    public string Url { get; }
    /// <summary>The server's process id (its /proc/PID/maps lists the native libraries it loaded).</summary>
    public int Pid => _p.Id;
    public System.Text.StringBuilder Stderr { get; } = new();

    ServeProcess(Process p, string url) { _p = p; Url = url; }

    public static async Task<ServeProcess> StartAsync(params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(CliRunner.CliDll);
        psi.ArgumentList.Add("serve");
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.ArgumentList.Add("--port"); psi.ArgumentList.Add("0");
        psi.Environment["NO_COLOR"] = "1";
        var p = Process.Start(psi)!;
        var err = new System.Text.StringBuilder();
        p.ErrorDataReceived += (_, e) => { lock (err) err.AppendLine(e.Data); };
        p.BeginErrorReadLine();
        string? url = null;
        var readTask = Task.Run(async () =>
        {
            string? line;
            while ((line = await p.StandardOutput.ReadLineAsync()) != null)
            {
                int i = line.IndexOf("listening on http://", StringComparison.Ordinal);
                if (i >= 0) { url = line[(i + "listening on ".Length)..].Split(' ')[0]; break; }
            }
        });
        if (await Task.WhenAny(readTask, Task.Delay(TimeSpan.FromMinutes(2))) != readTask || url == null)
        {
            try { p.Kill(true); } catch (InvalidOperationException) { }
            throw new InvalidOperationException($"tasklm serve did not start: {err}");
        }
        _ = Task.Run(async () => { while (await p.StandardOutput.ReadLineAsync() != null) { } });
        var sp = new ServeProcess(p, url);
        using var http = new HttpClient();
        var deadline = DateTime.UtcNow.AddMinutes(2);
        while (true)
        {
            try { if ((await http.GetAsync(url + "/health")).StatusCode == HttpStatusCode.OK) break; }
            catch (HttpRequestException) { }
            if (p.HasExited || DateTime.UtcNow > deadline) throw new InvalidOperationException($"tasklm serve never became healthy: {err}");
            await Task.Delay(100);
        }
        return sp;
    }

    public async ValueTask DisposeAsync()
    {
        if (!_p.HasExited) _p.Kill(entireProcessTree: true);
        await _p.WaitForExitAsync();
        _p.Dispose();
    }
}
