using System.Diagnostics;
using System.Globalization;

namespace Aequor.Bench;

/// <summary>
/// The storm's burst through the cmdlets: a child pwsh (bench/StormRunspaces.ps1) with 30 runspaces of the staged
/// module, each Connect-Aequor + Invoke-AequorQuery. The child is started and every runspace has imported the module
/// before the storm is set up (<see cref="StartAsync"/>: it prints READY); <see cref="GoAsync"/> then releases the
/// burst and reads the PASS lines (the connects that ran a reaper pass) and one RESULT line per runspace. Disposed,
/// and when it never gets ready, it is told to end (stdin closed) and killed with its process tree after 30 s.
/// </summary>
internal sealed class StormRunspaceBurst : IAsyncDisposable
{
    private readonly Process _process;

    private StormRunspaceBurst(Process process) => _process = process;

    /// <summary>The child's own lines that are not results (its errors, if any), for the report.</summary>
    public List<string> OtherLines { get; } = [];

    /// <summary>The connects that ran a reaper pass, as the runspaces reported them (<see cref="GoAsync"/> fills it).</summary>
    public List<Pass> Passes { get; } = [];

    public sealed record Result(bool Served, long Ms, int Retried53300, string? ErrorId, string? Message);

    /// <summary>A connect that ran <see cref="Count"/> passes (locked or not) and returned <see cref="ConnectReturnedMs"/> after GO, right after them.</summary>
    public sealed record Pass(long ConnectReturnedMs, int Count);

    public static async Task<StormRunspaceBurst> StartAsync(
        string pwshDll, string module, string script, string connectionString, string service, string secret, int burst, int minIdleSec, CancellationToken ct)
    {
        var start = new ProcessStartInfo("dotnet")
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in new[]
                 {
                     pwshDll, "-NoProfile", "-NonInteractive", "-File", script, "-ModulePath", module, "-ConnectionString", connectionString,
                     "-ServiceName", service, "-Burst", burst.ToString(CultureInfo.InvariantCulture),
                     "-MinConnectionIdleTimeSec", minIdleSec.ToString(CultureInfo.InvariantCulture),
                 })
        {
            start.ArgumentList.Add(a);
        }

        start.Environment["AEQUOR_COORDINATION_SECRET"] = secret;
        var process = Process.Start(start) ?? throw new InvalidOperationException("Could not start pwsh for the runspace burst.");
        var burstProcess = new StormRunspaceBurst(process);
        _ = Task.Run(async () =>
        {
            while (await process.StandardError.ReadLineAsync(CancellationToken.None).ConfigureAwait(false) is { } line)
            {
                lock (burstProcess.OtherLines)
                {
                    burstProcess.OtherLines.Add("stderr: " + line);
                }
            }
        }, CancellationToken.None);

        try
        {
            using var ready = CancellationTokenSource.CreateLinkedTokenSource(ct);
            ready.CancelAfter(TimeSpan.FromSeconds(120));
            while (true)
            {
                var line = await process.StandardOutput.ReadLineAsync(ready.Token).ConfigureAwait(false)
                    ?? throw new InvalidOperationException("pwsh ended before its runspaces were ready: " + string.Join(" / ", burstProcess.OtherLines));
                if (line == "READY")
                {
                    return burstProcess;
                }

                burstProcess.OtherLines.Add(line);
            }
        }
        catch
        {
            // The caller gets no handle to dispose: a child that never got ready (or a Ctrl+C meanwhile) ends here.
            await burstProcess.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Starts the burst; returns each runspace's result (ms after the start as the child measured it).</summary>
    public async Task<List<Result>> GoAsync(int burst, CancellationToken ct)
    {
        await _process.StandardInput.WriteLineAsync("GO").ConfigureAwait(false);
        await _process.StandardInput.FlushAsync(ct).ConfigureAwait(false);
        using var done = CancellationTokenSource.CreateLinkedTokenSource(ct);
        done.CancelAfter(TimeSpan.FromSeconds(60));
        var results = new List<Result>();
        while (results.Count < burst && await _process.StandardOutput.ReadLineAsync(done.Token).ConfigureAwait(false) is { } line)
        {
            var parts = line.Split('|');
            if (parts[0] == "PASS" && parts.Length >= 3)
            {
                Passes.Add(new Pass(long.Parse(parts[1], CultureInfo.InvariantCulture), int.Parse(parts[2], CultureInfo.InvariantCulture)));
                continue;
            }

            if (parts[0] != "RESULT" || parts.Length < 4)
            {
                OtherLines.Add(line);
                continue;
            }

            results.Add(new Result(
                parts[1] == "served",
                long.Parse(parts[2], CultureInfo.InvariantCulture),
                int.Parse(parts[3], CultureInfo.InvariantCulture),
                parts.Length > 4 ? parts[4] : null,
                parts.Length > 5 ? parts[5] : null));
        }

        return results;
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            // End of stdin: a child still waiting for GO gives up at once; one past it finishes its cleanup.
            _process.StandardInput.Close();
        }
        catch (IOException)
        {
            // The child is already gone (a broken pipe): nothing to tell it.
        }

        if (!_process.WaitForExit(TimeSpan.FromSeconds(30)))
        {
            _process.Kill(entireProcessTree: true);
        }

        await _process.WaitForExitAsync(CancellationToken.None).ConfigureAwait(false);
        _process.Dispose();
    }
}
