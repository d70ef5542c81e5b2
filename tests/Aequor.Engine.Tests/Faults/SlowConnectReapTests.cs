using System.Collections.Concurrent;
using System.Diagnostics;
using Aequor.Engine.Reaper;
using Npgsql;
using Xunit.Abstractions;

namespace Aequor.Engine.Tests.Faults;

/// <summary>
/// A live client whose connect is slow (every packet held up by the proxy) while a reaper of its service runs passes
/// in a loop: the soak once saw a worker's first statement cut off (57P01) by a reaper after a 13.9 s connect.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class SlowConnectReapTests(PostgresFixture db, ITestOutputHelper output)
{
    [Fact]
    public async Task A_live_client_whose_connect_outlasts_its_lease_is_not_reaped_before_its_first_statement()
    {
        var service = "slowconnect-" + Guid.NewGuid().ToString("N")[..6];
        const int ttl = 2_500;
        var b = new NpgsqlConnectionStringBuilder(db.AppConnectionString);
        await using var proxy = new FaultProxy(b.Host!, b.Port) { Delay = TimeSpan.FromMilliseconds(500) };
        var cs = new NpgsqlConnectionStringBuilder(proxy.Rewrite(db.AppConnectionString)) { Timeout = 15 }.ConnectionString;
        await using var victim = new AequorClient(new AequorClientOptions
        {
            ConnectionString = cs,
            CoordinationSecret = ClientTestKit.Secret,
            ServiceName = service,
            LeaseTtlMs = ttl,
            HeartbeatSoftRemainingMs = ttl / 3,
            HeartbeatHardWaitRemainingMs = ttl / 10,
            Reaper = false,
            MaxConnectRetryTimeMs = 15_000,
            MaxQueryRetryTimeMs = 15_000,
        });
        await using var reaper = new AequorClient(new AequorClientOptions
        {
            ConnectionString = db.AppConnectionString,
            CoordinationSecret = ClientTestKit.Secret,
            ServiceName = service,
            ReaperRunProbability = 0,
            MinConnectionIdleTimeSec = 1,
        });

        var sw = Stopwatch.StartNew();
        var timeline = new ConcurrentQueue<string>();
        victim.OnConnect += (_, e) =>
        {
            timeline.Enqueue($"{sw.ElapsedMilliseconds} ms: connected, backend {e.BackendPid}");

            // The connect is what is under test. Held up past its fresh lease plus the 1 s idle threshold (under load,
            // 0.5 s per packet became > 1.5 s once in CI), the first statement would look like a frozen worker's
            // backend to any reaper: that is the threshold's job, not a mid-connect reap.
            proxy.Delay = TimeSpan.Zero;
        };
        victim.OnReconnect += (_, e) => timeline.Enqueue($"{sw.ElapsedMilliseconds} ms: connecting again ({e.Retries} retries, {e.Error?.Message})");
        victim.OnClientDead += (_, e) => timeline.Enqueue($"{sw.ElapsedMilliseconds} ms: connection {e.BackendPid} dead ({e.Source})");
        var call = victim.ExecuteScalarAsync(new AequorStatement("SELECT pg_backend_pid()"), CancellationToken.None);
        var killed = new List<ReapCandidate>();
        while (!call.IsCompleted && sw.Elapsed < TimeSpan.FromSeconds(15))
        {
            var pass = await reaper.ReapNowAsync(null, CancellationToken.None);
            foreach (var c in pass.Candidates.Where(c => pass.KilledPids.Contains(c.Pid)))
            {
                killed.Add(c);
                timeline.Enqueue($"{sw.ElapsedMilliseconds} ms: reaper killed {c.Pid}: lease expired {pass.DatabaseNowMs - c.ExpiresAtMs} ms before the pass, {c.State} for {c.IdleSeconds:0.0} s, lease {c.ApplicationName}");
                // The point is made: the next connect goes through at full speed.
                proxy.Delay = TimeSpan.Zero;
            }

            await Task.Delay(100);
        }

        object? pid = null;
        Exception? failure = null;
        try
        {
            pid = await call;
        }
        catch (Exception ex)
        {
            failure = ex;
        }

        foreach (var line in timeline)
        {
            output.WriteLine(line);
        }

        output.WriteLine($"client instance {victim.InstanceId}");
        output.WriteLine($"{sw.ElapsedMilliseconds} ms: the statement {(failure is null ? $"ran on backend {pid}" : "failed: " + failure)}");
        Assert.Null(failure);
        Assert.Empty(killed);
        Assert.Equal(1, victim.Counters.Connects);
        Assert.Equal(victim.BackendPid, Convert.ToInt32(pid, System.Globalization.CultureInfo.InvariantCulture));
    }
}
