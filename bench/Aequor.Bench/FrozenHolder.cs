using System.Diagnostics;
using System.Globalization;

namespace Aequor.Bench;

/// <summary>
/// The parent's handle on a <see cref="StormHolder"/> child: starts it, waits for READY, freezes it with
/// SIGSTOP; disposing always sends SIGCONT and then SIGKILL, whatever happened in between.
/// </summary>
internal sealed class FrozenHolder : IAsyncDisposable
{
    private readonly Process _process;

    private FrozenHolder(Process process) => _process = process;

    public int Pid => _process.Id;

    public static async Task<FrozenHolder> StartAsync(string connectionString, string secret, string service, int count, int leaseMs, CancellationToken ct)
    {
        var psi = new ProcessStartInfo
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };

        // The same bench, whether started as an apphost or as 'dotnet Aequor.Bench.dll'.
        var self = Environment.ProcessPath ?? "dotnet";
        psi.FileName = self;
        if (Path.GetFileNameWithoutExtension(self) == "dotnet")
        {
            psi.ArgumentList.Add(typeof(FrozenHolder).Assembly.Location);
        }

        psi.ArgumentList.Add(StormHolder.Mode);
        psi.Environment[StormHolder.ConnectionVariable] = connectionString;
        psi.Environment[StormHolder.SecretVariable] = secret;
        psi.Environment[StormHolder.ServiceVariable] = service;
        psi.Environment[StormHolder.CountVariable] = count.ToString(CultureInfo.InvariantCulture);
        psi.Environment[StormHolder.LeaseMsVariable] = leaseMs.ToString(CultureInfo.InvariantCulture);

        var process = Process.Start(psi) ?? throw new InvalidOperationException("Could not start the holder process.");
        var holder = new FrozenHolder(process);
        try
        {
            var stderr = process.StandardError.ReadToEndAsync(CancellationToken.None);
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
            timeout.CancelAfter(TimeSpan.FromSeconds(90));
            var line = await process.StandardOutput.ReadLineAsync(timeout.Token);
            if (line != "READY")
            {
                await process.WaitForExitAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(5), CancellationToken.None).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
                var message = process.HasExited ? (await stderr).Trim() : "no READY";
                throw new InvalidOperationException($"The holder did not get its {count} connections: {message}");
            }

            return holder;
        }
        catch
        {
            await holder.DisposeAsync();
            throw;
        }
    }

    public Task FreezeAsync() => SignalAsync("STOP");

    private async Task SignalAsync(string signal)
    {
        if (_process.HasExited)
        {
            return;
        }

        using var kill = Process.Start("kill", ["-" + signal, _process.Id.ToString(CultureInfo.InvariantCulture)]);
        await kill.WaitForExitAsync();
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            await SignalAsync("CONT");
        }
        finally
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
            }

            await _process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(10)).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            _process.Dispose();
        }
    }
}
