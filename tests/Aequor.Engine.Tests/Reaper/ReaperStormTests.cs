using Aequor.Engine.Reaper;
using Aequor.Engine.Tests.Faults;
using Aequor.TestServer;
using Npgsql;

namespace Aequor.Engine.Tests.Reaper;

/// <summary>
/// A zombie storm on a server of its own with max_connections = 20 (17 slots for non-superusers):
/// frozen leased connections fill it, the reaper's pass sees the database near its limit and clears
/// every zombie at once and waits for them to exit, which ends storm mode (their slots count free), and
/// then a burst of new clients all get in.
/// </summary>
public sealed class ReaperStormTests
{
    private const int MaxConnections = 20;

    // The slots held but the asking connection's, counted as the reaper's pass counts them.
    private const string OtherClientBackends = $"SELECT {ReaperSql.UsedConnections} - 1";

    [Fact]
    public async Task Near_full_server_of_expired_zombies_is_cleared_by_storm_passes_and_a_burst_all_gets_in()
    {
        await using var server = await TestPostgres.StartLocalAsync(MaxConnections);
        await using var kit = new ReaperKit(server.AdminConnectionString, server.AppConnectionString);
        var available = MaxConnections - 3;

        // 16 zombies: one slot of 17 left.
        var zombies = new List<NpgsqlConnection>();
        for (var i = 0; i < 16; i++)
        {
            zombies.Add(await kit.ZombieAsync(ReaperKit.NowMs - 60_000 + i));
        }

        var reaper = new ClientReaper(new ReaperOptions
        {
            ServiceName = kit.Service,
            CoordinationSecret = ReaperKit.Secret,
            MinConnectionIdleTimeSec = 0,
            ReaperRunProbability = 0, // only storm mode can start a pass here
        });

        // Three workers connect at once: one gets the last slot, the others are refused with 53300.
        var attempts = await Task.WhenAll(Enumerable.Range(0, 3).Select(async _ =>
        {
            var c = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(server.AppConnectionString) { Pooling = false, ApplicationName = kit.Lease(ReaperKit.NowMs + 90_000), Timeout = 15 }.ConnectionString);
            try
            {
                await c.OpenAsync();
                return (Conn: c, Error: (Exception?)null);
            }
            catch (NpgsqlException ex)
            {
                await c.DisposeAsync();
                return (Conn: (NpgsqlConnection?)null, Error: (Exception?)ex);
            }
        }));
        // At least two are refused; a backend of an earlier test still exiting can take the last slot for a
        // moment, so the one that should get in may need a few tries.
        var refusals = attempts.Where(a => a.Error is not null).ToList();
        Assert.InRange(refusals.Count, 2, 3);
        Assert.All(refusals, r => Assert.True(reaper.ReportConnectError(r.Error!), r.Error!.Message));
        await using var conn = attempts.SingleOrDefault(a => a.Conn is not null).Conn ?? await OpenWithinAsync(server.AppConnectionString, kit.Lease(ReaperKit.NowMs + 90_000));

        var first = await reaper.AfterConnectAsync(conn);

        Assert.NotNull(first);
        Assert.Null(first.Error);
        Assert.Equal(available, first.ConnectionsAvailable);
        Assert.True(first.NearLimit, $"used {first.ConnectionsUsed} of {first.ConnectionsAvailable}");
        // Near the limit the cap is NearLimitMaxIdleConnectionsToKill (100), not 10: all 16 go in one pass.
        Assert.Equal(zombies.Select(z => z.ProcessID).Order(), first.KilledPids.Order());
        // The kill waited for the 16 to exit (all but at most one straggler): their slots are free as the pass
        // returns, no polling needed.
        await kit.AssertExitedAsync(first);

        // Counted free, they take the database below the limit: storm mode ended with that pass, so the next
        // connect does not reap (probability 0, cooldown running).
        Assert.False(first.StillNearLimit);
        Assert.False(reaper.Schedule.InStormMode);
        Assert.Null(await reaper.AfterConnectAsync(conn));
        Assert.Equal(1, reaper.Schedule.StormPasses);

        // A burst of new clients at once, the straggler (if any) gone too: every one is served. Asked on this
        // connection, not a fresh one: the observer's own backend (a superuser's takes a plain slot while one is
        // free) would still be leaving as the burst arrives, and one of the burst would be refused.
        await ClientTestKit.WaitUntilAsync(
            async () => await ReaperKit.ScalarAsync(conn, OtherClientBackends) is 0,
            TimeSpan.FromSeconds(10),
            "the killed backends and the exit check's observer to leave");
        var burst = await Task.WhenAll(Enumerable.Range(0, available - 1).Select(async i =>
        {
            var c = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(server.AppConnectionString) { Pooling = false, ApplicationName = "burst-" + i, Timeout = 15 }.ConnectionString);
            await c.OpenAsync();
            return c;
        }));
        try
        {
            foreach (var c in burst)
            {
                Assert.Equal(1, await ReaperKit.ScalarAsync(c, "SELECT 1"));
            }
        }
        finally
        {
            foreach (var c in burst)
            {
                await c.DisposeAsync();
            }
        }

        // With the burst gone, a manual pass measures the server far below its limit. A closed connection's
        // backend leaves a moment after the close (one was still counted on a loaded machine): wait until
        // this connection is the only client backend the pass would count.
        await ClientTestKit.WaitUntilAsync(
            async () => await ReaperKit.ScalarAsync(conn, OtherClientBackends) is 0,
            TimeSpan.FromSeconds(10), "the burst's backends to exit");
        var after = await reaper.RunNowAsync(conn);
        Assert.False(after.NearLimit);
        Assert.Equal(1, after.ConnectionsUsed);

        // A superuser's session counts though the app role cannot see its details.
        await using var admin = await kit.OpenObserverAsync();
        Assert.Equal(2, (await reaper.RunNowAsync(conn)).ConnectionsUsed);
    }

    [Fact]
    public async Task A_refused_client_waits_for_the_pass_a_neighbours_slow_connect_will_run_instead_of_spending_its_retries()
    {
        // Both clients through one proxy (one storm scope: same host, port, database and service); the first one's
        // packets held 300 ms each way: it gets the last slot and takes seconds to finish its connect and run the
        // storm pass, as a cold process's first connect does under a burst. The other one is refused at once.
        await using var server = await TestPostgres.StartLocalAsync(MaxConnections);
        await using var kit = new ReaperKit(server.AdminConnectionString, server.AppConnectionString);
        var zombies = new List<NpgsqlConnection>();
        for (var i = 0; i < 15; i++)
        {
            zombies.Add(await kit.ZombieAsync(ReaperKit.NowMs - 60_000 + i));
        }

        // A superuser's session takes a plain slot while one is free: the observer takes the 16th of 17 before the
        // slow client knocks, so the 17th is the slow client's.
        await using var observer = await kit.OpenObserverAsync();
        var b = new NpgsqlConnectionStringBuilder(server.AppConnectionString);
        await using var proxy = new FaultProxy(b.Host!, b.Port) { NewLinkDelay = TimeSpan.FromMilliseconds(300) };
        AequorClientOptions Options() => new()
        {
            ConnectionString = new NpgsqlConnectionStringBuilder(proxy.Rewrite(server.AppConnectionString)) { Timeout = 30, CommandTimeout = 30 }.ConnectionString,
            CoordinationSecret = ReaperKit.Secret,
            ServiceName = kit.Service,
            MinConnectionIdleTimeSec = 0,
            ReaperRunProbability = 0, // only storm mode starts a pass
            Retries = 1,
            MinBackoff = 100,
            MaxBackoff = 20_000,
            MaxConnectRetryTimeMs = 60_000,
        };
        await using var slow = new AequorClient(Options());
        await using var refused = new AequorClient(Options());
        var refusals = 0;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var timeline = new System.Collections.Concurrent.ConcurrentQueue<string>();
        refused.OnReconnect += (_, e) =>
        {
            Interlocked.Increment(ref refusals);
            timeline.Enqueue($"{clock.ElapsedMilliseconds} ms: refused client retries after {e.Delay.TotalMilliseconds:0} ms ({e.Error?.Message})");
        };
        refused.OnConnect += (_, _) => timeline.Enqueue($"{clock.ElapsedMilliseconds} ms: refused client connected");
        slow.OnConnect += (_, _) => timeline.Enqueue($"{clock.ElapsedMilliseconds} ms: slow client connected");
        slow.OnReap += (_, e) => timeline.Enqueue($"{clock.ElapsedMilliseconds} ms: slow client's pass ended, {e.Killed} killed in {e.Duration.TotalMilliseconds:0} ms");

        var first = slow.ExecuteScalarAsync(new AequorStatement("SELECT 1"), CancellationToken.None);
        await ClientTestKit.WaitUntilAsync(() => Task.FromResult(proxy.OpenLinks > 0), TimeSpan.FromSeconds(10), "the slow client's link");
        proxy.NewLinkDelay = TimeSpan.Zero;

        // The slow client's backend holds the last slot before the other one knocks. A backend under authentication
        // has no user name yet, so every client backend but the observer's is counted.
        const string OtherBackends = "FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()";
        try
        {
            await ClientTestKit.WaitUntilAsync(
                async () => Convert.ToInt64(await ReaperKit.ScalarAsync(observer, $"SELECT count(*) {OtherBackends}")) > zombies.Count,
                TimeSpan.FromSeconds(10),
                "the slow client's backend to take the last slot");
        }
        catch (TimeoutException ex)
        {
            var seen = await ReaperKit.ScalarAsync(observer, $"SELECT string_agg(coalesce(usename, '-') || ':' || coalesce(state, '-'), ', ') {OtherBackends}");
            throw new TimeoutException($"{ex.Message}; backends: {seen}; slow client: {first.Status} {first.Exception?.GetBaseException().Message}", ex);
        }

        timeline.Enqueue($"{clock.ElapsedMilliseconds} ms: the slow client holds the last slot; the other one starts");
        object? answer = null;
        try
        {
            answer = await refused.ExecuteScalarAsync(new AequorStatement("SELECT 1"), CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(60));
        }
        catch (Exception ex)
        {
            // Without the wait its one retry went ~0.1-0.3 s after the 53300, into a server still full, and it failed.
            Assert.Fail($"{ex.Message}\n{string.Join("\n", timeline)}");
        }

        Assert.Equal(1, answer);
        Assert.Equal(1, await first.WaitAsync(TimeSpan.FromSeconds(60)));
        Assert.True(refusals == 1, string.Join("\n", timeline));
        Assert.True(slow.Counters.BackendsKilled >= zombies.Count, $"the slow client's storm pass killed {slow.Counters.BackendsKilled}");
        foreach (var z in zombies)
        {
            await z.DisposeAsync();
        }
    }

    private static async Task<NpgsqlConnection> OpenWithinAsync(string connectionString, string applicationName)
    {
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (true)
        {
            var c = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(connectionString) { Pooling = false, ApplicationName = applicationName, Timeout = 15 }.ConnectionString);
            try
            {
                await c.OpenAsync();
                return c;
            }
            catch (PostgresException ex) when (ex.SqlState == "53300" && DateTime.UtcNow < deadline)
            {
                await c.DisposeAsync();
                await Task.Delay(100);
            }
        }
    }
}
