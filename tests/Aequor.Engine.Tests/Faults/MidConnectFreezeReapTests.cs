using System.Globalization;
using Aequor.Engine.Reaper;
using Npgsql;
using Xunit.Abstractions;

namespace Aequor.Engine.Tests.Faults;

/// <summary>
/// The other side of <see cref="SlowConnectReapTests"/>: a process that stops for good between the startup and the
/// connect's first statement leaves a backend with the startup lease (TTL plus connect timeout), never its own. A
/// reaper of the service leaves it alone until that lease has expired, then takes it like any zombie.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class MidConnectFreezeReapTests(PostgresFixture db, ITestOutputHelper output)
{
    private const int TtlMs = 1_000;
    // Longer than the TTL, so a lease of the TTL alone would be reapable for most of the startup lease's life: a
    // loaded machine's passes, seconds apart at worst, still land in that window.
    private const int ConnectTimeoutSec = 3;
    private const int MinIdleSec = 1;

    [Fact]
    public async Task A_process_frozen_mid_connect_is_reaped_once_its_startup_lease_of_ttl_plus_connect_timeout_expired_and_not_before()
    {
        var service = "midconnect-" + Guid.NewGuid().ToString("N")[..6];
        await using var reaper = new AequorClient(new AequorClientOptions
        {
            ConnectionString = db.AppConnectionString,
            CoordinationSecret = ClientTestKit.Secret,
            ServiceName = service,
            ReaperRunProbability = 0,
            MinConnectionIdleTimeSec = MinIdleSec,
        });
        // Connected first, so its own connect takes nothing from the time the test watches.
        await reaper.ConnectAsync(CancellationToken.None);
        var b = new NpgsqlConnectionStringBuilder(db.AppConnectionString);
        await using var proxy = new FaultProxy(b.Host!, b.Port) { FreezeAtFirstStatement = true };
        // Unencrypted, so the proxy can tell the authentication from the first statement; a cancel that does not
        // wait for the server's answer, which the frozen link would never pass on.
        var cs = new NpgsqlConnectionStringBuilder(proxy.Rewrite(db.AppConnectionString))
        {
            Timeout = ConnectTimeoutSec,
            SslMode = SslMode.Disable,
            CancellationTimeout = -1,
        }.ConnectionString;
        var startedAtMs = await DatabaseNowMsAsync();
        await using var victim = new AequorClient(new AequorClientOptions
        {
            ConnectionString = cs,
            CoordinationSecret = ClientTestKit.Secret,
            ServiceName = service,
            LeaseTtlMs = TtlMs,
            HeartbeatSoftRemainingMs = TtlMs / 3,
            HeartbeatHardWaitRemainingMs = TtlMs / 10,
            Reaper = false,
        });
        using var stop = new CancellationTokenSource();
        var connect = victim.ConnectAsync(stop.Token);
        await ClientTestKit.WaitUntilAsync(() => Task.FromResult(proxy.FrozenLinks > 0), TimeSpan.FromSeconds(10), "the connect to reach its first statement");
        // The process stops here for good: its connect sends nothing more, and the server's end of its socket stays
        // open (the proxy holds it). Cancelled, so that the client does not connect again once its own connect
        // timeout has passed; the backend is the only trace the frozen connect leaves.
        await stop.CancelAsync();
        var pid = await FrozenBackendAsync(service, reaper.BackendPid!.Value);
        output.WriteLine($"+{await DatabaseNowMsAsync() - startedAtMs} ms: frozen mid-connect, backend {pid}");
        Assert.Equal("idle", await ClientTestKit.StateOfAsync(db.AdminConnectionString, pid));

        // The startup lease was signed at the connect's start or after it, for the TTL plus the connect timeout.
        var startupLeaseEndsNoSoonerThanMs = startedAtMs + TtlMs + (ConnectTimeoutSec * 1_000);
        // Where a lease signed for the TTL alone would have been reaped (expired, idle past the threshold).
        var ttlAloneReapableFromMs = startedAtMs + TtlMs + (MinIdleSec * 1_000) + 200;
        var deadlineMs = startupLeaseEndsNoSoonerThanMs + 5_000;
        var passes = new List<(long NowMs, bool Alive, string Skipped)>();
        ReapResult? killing = null;
        await using var admin = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(db.AdminConnectionString) { Pooling = false }.ConnectionString);
        await admin.OpenAsync();
        while (killing is null)
        {
            var pass = await reaper.ReapNowAsync(null, CancellationToken.None);
            Assert.True(pass.Succeeded, pass.ToString());
            Assert.True(pass.LockAcquired, pass.ToString());
            var nowMs = pass.DatabaseNowMs!.Value;
            var skipped = string.Join(", ", pass.Skipped.OrderBy(s => s.Key, StringComparer.Ordinal).Select(s => $"{s.Key} {s.Value}"));
            if (pass.KilledPids.Contains(pid))
            {
                killing = pass;
                var c = pass.Candidates.Single(c => c.Pid == pid);
                output.WriteLine($"+{nowMs - startedAtMs} ms: killed {pid}, lease expired {nowMs - c.ExpiresAtMs} ms before, {c.State} {c.IdleSeconds.ToString("0.0", CultureInfo.InvariantCulture)} s");
                break;
            }

            var alive = await AliveAsync(admin, pid);
            passes.Add((nowMs, alive, skipped));
            output.WriteLine($"+{nowMs - startedAtMs} ms: left {pid} ({(alive ? "alive" : "gone")}), skipped: {skipped}; not killed: {string.Join(", ", pass.NotKilled.Select(n => $"{n.Pid} {n.Reason}"))}");
            Assert.True(nowMs < deadlineMs, $"no pass killed the frozen backend {pid} by +{nowMs - startedAtMs} ms");
            await Task.Delay(100);
        }

        // Not before: every pass until then found it alive and left it, among them passes that a lease of the TTL
        // alone would have let kill it, and the one that killed it came after the startup lease's whole life.
        Assert.True(killing.DatabaseNowMs >= startupLeaseEndsNoSoonerThanMs,
            $"killed at +{killing.DatabaseNowMs - startedAtMs} ms, before the startup lease's TTL plus connect timeout (+{TtlMs + (ConnectTimeoutSec * 1_000)} ms)");
        Assert.All(passes, p => Assert.True(p.Alive, $"backend {pid} was gone at +{p.NowMs - startedAtMs} ms before any pass killed it"));
        Assert.All(passes, p => Assert.Equal($"{ReapReasons.NotExpired} 1", p.Skipped));
        Assert.Contains(passes, p => p.NowMs >= ttlAloneReapableFromMs);
        Assert.True(killing.Candidates.Single(c => c.Pid == pid).IdleSeconds >= MinIdleSec);

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => connect);
        Assert.Equal(0, victim.Counters.Connects);
        Assert.Equal(1, proxy.FrozenLinks);

        // And after: it is gone, and so is the proxy's link to it.
        await ClientTestKit.WaitGoneAsync(db.AdminConnectionString, pid);
        await ClientTestKit.WaitUntilAsync(() => Task.FromResult(proxy.OpenLinks == 0), TimeSpan.FromSeconds(10), "the frozen link to close with its backend");
    }

    private async Task<long> DatabaseNowMsAsync() =>
        await ClientTestKit.AdminScalarAsync<long>(db.AdminConnectionString, "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::int8");

    private static async Task<bool> AliveAsync(NpgsqlConnection admin, int pid)
    {
        await using var cmd = new NpgsqlCommand("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", admin) { Parameters = { new() { Value = pid } } };
        return (long)(await cmd.ExecuteScalarAsync())! == 1;
    }

    /// <summary>The one backend but the reaper's carrying a lease of the service: the frozen connect's, with the startup lease.</summary>
    private async Task<int> FrozenBackendAsync(string service, int reaperPid)
    {
        var found = new List<int>();
        var admin = new NpgsqlConnectionStringBuilder(db.AdminConnectionString) { Pooling = false }.ConnectionString;
        await using var conn = new NpgsqlConnection(admin);
        await conn.OpenAsync();
        await using var cmd = new NpgsqlCommand("SELECT pid, application_name FROM pg_stat_activity WHERE backend_type = 'client backend'", conn);
        await using var reader = await cmd.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            if (Lease.TryParse(reader.GetString(1), out var lease) && lease.ServiceName == service && reader.GetInt32(0) != reaperPid)
            {
                found.Add(reader.GetInt32(0));
            }
        }

        return Assert.Single(found);
    }
}
