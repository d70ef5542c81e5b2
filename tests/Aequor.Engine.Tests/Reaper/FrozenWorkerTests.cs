using System.Diagnostics;
using System.Runtime.InteropServices;
using Aequor.Engine.Reaper;
using Aequor.TestServer;
using Npgsql;

namespace Aequor.Engine.Tests.Reaper;

/// <summary>
/// A truly frozen worker: a real child process (psql) holding a leased connection, stopped with
/// SIGSTOP as a suspended Lambda or a paused container would be. Its socket stays open, so only the
/// reaper can free the slot.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class FrozenWorkerTests(PostgresFixture db)
{
    private const int SigCont = 18;
    private const int SigStop = 19;

    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int Signal(int pid, int signal);

    [Fact]
    public async Task Stopped_process_keeps_its_backend_until_its_lease_expires_then_a_pass_kills_it()
    {
        Assert.True(OperatingSystem.IsLinux(), "SIGSTOP needs Linux.");
        await using var kit = new ReaperKit(db);
        var expiresAtMs = ReaperKit.NowMs + 5_000;
        var lease = kit.Lease(expiresAtMs);
        using var child = StartPsql(kit.AppConnectionString, lease);
        try
        {
            var pid = await WaitForBackendAsync(kit, lease, TimeSpan.FromSeconds(15));
            Assert.Equal(0, Signal(child.Id, SigStop));
            var reaper = await kit.ReaperConnectionAsync();
            var options = kit.Options(minIdleSec: 1);

            var whileLeased = await ReaperPass.RunAsync(reaper, options);
            Assert.True(ReaperKit.NowMs < expiresAtMs, "psql took longer than the lease to connect; the negative half proves nothing.");
            Assert.Empty(whileLeased.KilledPids);
            Assert.Equal(1, whileLeased.Skipped[ReapReasons.NotExpired]);
            Assert.True(await kit.IsAliveAsync(pid));

            // The lease runs out while the process is frozen: nobody renews it.
            await Task.Delay(TimeSpan.FromMilliseconds(Math.Max(0, expiresAtMs - ReaperKit.NowMs) + 1_200));
            Assert.False(child.HasExited);
            var afterExpiry = await ReaperPass.RunAsync(reaper, options);

            Assert.Equal([pid], afterExpiry.KilledPids);
            Assert.True(await kit.IsGoneAsync(pid));
        }
        finally
        {
            _ = Signal(child.Id, SigCont);
            if (!child.HasExited)
            {
                child.Kill(entireProcessTree: true);
            }

            await child.WaitForExitAsync(new CancellationTokenSource(TimeSpan.FromSeconds(10)).Token);
        }
    }

    private static Process StartPsql(string connectionString, string applicationName)
    {
        var b = new NpgsqlConnectionStringBuilder(connectionString);
        var psql = FindPsql() ?? throw new InvalidOperationException("psql is needed for the frozen-process test: apt-get install postgresql-client.");
        var psi = new ProcessStartInfo(psql)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        psi.ArgumentList.Add("-X");
        psi.ArgumentList.Add("-q");
        psi.Environment["PGHOST"] = b.Host;
        psi.Environment["PGPORT"] = b.Port.ToString(System.Globalization.CultureInfo.InvariantCulture);
        psi.Environment["PGUSER"] = b.Username;
        psi.Environment["PGPASSWORD"] = b.Password;
        psi.Environment["PGDATABASE"] = b.Database;
        psi.Environment["PGAPPNAME"] = applicationName;
        // stdin stays open and empty: psql connects and waits, idle, like a worker between queries.
        return Process.Start(psi) ?? throw new InvalidOperationException("psql did not start.");
    }

    private static string? FindPsql()
    {
        var dirs = new List<string>();
        if (LocalCluster.FindServerBinaries() is { } bin)
        {
            dirs.Add(bin);
        }

        dirs.AddRange((Environment.GetEnvironmentVariable("PATH") ?? string.Empty).Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries));
        return dirs.Select(d => Path.Combine(d, "psql")).FirstOrDefault(File.Exists);
    }

    private static async Task<int> WaitForBackendAsync(ReaperKit kit, string applicationName, TimeSpan timeout)
    {
        await using var observer = await kit.OpenObserverAsync();
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline)
        {
            if (await ReaperKit.ScalarAsync(observer, "SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND state = 'idle'", applicationName) is int pid)
            {
                return pid;
            }

            await Task.Delay(100);
        }

        throw new TimeoutException("psql's backend never showed up idle in pg_stat_activity.");
    }
}
