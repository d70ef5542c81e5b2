using Aequor.Engine.Reaper;
using Npgsql;

namespace Aequor.Engine.Tests.Reaper;

/// <summary>The per-client reaper the connection client calls after each connect, against a real PostgreSQL.</summary>
[Collection(PostgresCollection.Name)]
public sealed class ClientReaperTests(PostgresFixture db)
{
    private static ReaperOptions With(ReaperOptions o, double probability, Action<ReapResult>? onReap = null, ReaperErrorMode mode = ReaperErrorMode.Swallow) => new()
    {
        ServiceName = o.ServiceName,
        CoordinationSecret = o.CoordinationSecret,
        MinConnectionIdleTimeSec = o.MinConnectionIdleTimeSec,
        ReaperRunProbability = probability,
        OnReap = onReap,
        ErrorMode = mode,
    };

    [Fact]
    public async Task Probability_zero_runs_no_pass_over_many_connects()
    {
        await using var kit = new ReaperKit(db);
        var zombie = await kit.ZombieAsync();
        var passes = 0;
        var reaper = new ClientReaper(With(kit.Options(), probability: 0, onReap: _ => passes++));

        for (var i = 0; i < 25; i++)
        {
            await using var conn = await kit.OpenAsync(kit.Lease(ReaperKit.NowMs + 90_000));
            Assert.Null(await reaper.AfterConnectAsync(conn));
        }

        Assert.Equal(0, passes);
        Assert.True(await kit.IsAliveAsync(zombie.ProcessID));
    }

    [Fact]
    public async Task Probability_one_runs_a_pass_after_connect_then_respects_the_cooldown()
    {
        await using var kit = new ReaperKit(db);
        var zombie = await kit.ZombieAsync();
        var seen = new List<ReapResult>();
        var reaper = new ClientReaper(With(kit.Options(), probability: 1, onReap: seen.Add));

        var conn = await kit.OpenAsync(kit.Lease(ReaperKit.NowMs + 90_000));
        var first = await reaper.AfterConnectAsync(conn);

        Assert.NotNull(first);
        Assert.Equal([zombie.ProcessID], first.KilledPids);
        Assert.Same(first, Assert.Single(seen));
        Assert.True(await kit.IsGoneAsync(zombie.ProcessID));

        var next = await kit.ZombieAsync();
        Assert.Null(await reaper.AfterConnectAsync(conn));
        Assert.True(await kit.IsAliveAsync(next.ProcessID));
        Assert.Equal(1, reaper.Schedule.PassesStarted);
    }

    [Fact]
    public async Task A_53300_connect_error_turns_storm_mode_on_and_the_next_connect_reaps_despite_probability_zero()
    {
        await using var kit = new ReaperKit(db);
        var zombie = await kit.ZombieAsync();
        var reaper = new ClientReaper(With(kit.Options(), probability: 0));

        Assert.False(reaper.ReportConnectError(new TimeoutException("slow")));
        Assert.True(reaper.ReportConnectError(new NpgsqlException("connect failed", new PostgresException("sorry, too many clients already", "FATAL", "FATAL", PostgresErrorCodes.TooManyConnections))));
        Assert.True(reaper.Schedule.InStormMode);

        var conn = await kit.OpenAsync(kit.Lease(ReaperKit.NowMs + 90_000));
        var pass = await reaper.AfterConnectAsync(conn);

        Assert.NotNull(pass);
        Assert.Equal([zombie.ProcessID], pass.KilledPids);
        Assert.Equal(1, reaper.Schedule.StormPasses);
        // The test server is far from its limit: the pass measured that and storm mode ended.
        Assert.False(pass.NearLimit);
        Assert.False(reaper.Schedule.InStormMode);
        Assert.Null(await reaper.AfterConnectAsync(conn));
    }

    [Fact]
    public async Task A_throwing_OnReap_hook_and_a_failed_pass_never_escape_in_swallow_mode()
    {
        await using var kit = new ReaperKit(db);
        var reaper = new ClientReaper(With(kit.Options(), probability: 1, onReap: _ => throw new InvalidOperationException("hook")));
        var closed = new NpgsqlConnection(kit.AppConnectionString);

        var result = await reaper.AfterConnectAsync(closed);

        Assert.NotNull(result);
        Assert.IsType<InvalidOperationException>(result.Error);
        Assert.DoesNotContain("hook", result.Error.Message, StringComparison.Ordinal);

        var throwing = new ClientReaper(With(kit.Options(), probability: 1, mode: ReaperErrorMode.Throw));
        await Assert.ThrowsAsync<InvalidOperationException>(() => throwing.AfterConnectAsync(closed));
    }

    [Fact]
    public async Task Manual_pass_ignores_probability_and_cooldown_but_not_the_lock()
    {
        await using var kit = new ReaperKit(db);
        var zombie = await kit.ZombieAsync();
        var reaper = new ClientReaper(With(kit.Options(), probability: 0));
        var conn = await kit.ReaperConnectionAsync();
        var holder = await kit.OpenAsync("holder");
        var key = LeaseFormat.NormalizeServiceName(kit.Service);
        await ReaperKit.ScalarAsync(holder, "SELECT pg_advisory_lock(1346847057, hashtext($1))", key);

        var blocked = await reaper.RunNowAsync(conn);
        Assert.False(blocked.LockAcquired);
        Assert.True(await kit.IsAliveAsync(zombie.ProcessID));

        await ReaperKit.ScalarAsync(holder, "SELECT pg_advisory_unlock(1346847057, hashtext($1))", key);
        var done = await reaper.RunNowAsync(conn, new ReapRequest { MinConnectionIdleTimeSec = 0 });
        Assert.Equal([zombie.ProcessID], done.KilledPids);
    }

    [Fact]
    public void Invalid_options_are_refused_at_set_up_without_showing_the_secret()
    {
        var ex = Assert.Throws<AequorConfigurationException>(() => new ClientReaper(new ReaperOptions { ServiceName = "svc", CoordinationSecret = "short-secret" }));
        Assert.DoesNotContain("short-secret", ex.Message, StringComparison.Ordinal);
        Assert.Throws<AequorConfigurationException>(() => new ClientReaper(new ReaperOptions { ServiceName = "svc", CoordinationSecret = ReaperKit.Secret, ReaperRunProbability = 1.5 }));
        var options = new ReaperOptions { ServiceName = "svc", CoordinationSecret = ReaperKit.Secret, PreviousCoordinationSecret = ReaperKit.OtherSecret };
        Assert.DoesNotContain(ReaperKit.Secret, options.ToString(), StringComparison.Ordinal);
        Assert.DoesNotContain(ReaperKit.OtherSecret, options.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void Client_options_map_to_reaper_options_and_no_reaper_without_a_secret_or_when_off()
    {
        var client = new AequorClientOptions
        {
            ConnectionString = "Host=localhost",
            CoordinationSecret = ReaperKit.Secret,
            PreviousCoordinationSecret = ReaperKit.OtherSecret,
            ServiceName = "orders api",
            MaxIdleConnectionsToKill = 3,
            MinConnectionIdleTimeSec = 42,
            IncludeIdleInTransaction = true,
            MinIdleInTransactionSec = 77,
            ReaperRunProbability = 0.25,
            ReaperCooldownMs = 1234,
            ReaperErrorMode = ReaperErrorMode.Throw,
        };

        var mapped = ReaperOptions.ForClient(client);

        Assert.NotNull(mapped);
        Assert.Equal(LeaseFormat.NormalizeServiceName("orders api"), mapped.ServiceName);
        Assert.Equal((ReaperKit.Secret, ReaperKit.OtherSecret), (mapped.CoordinationSecret, mapped.PreviousCoordinationSecret));
        Assert.Equal((3, 42, true, 77), (mapped.MaxIdleConnectionsToKill, mapped.MinConnectionIdleTimeSec, mapped.IncludeIdleInTransaction, mapped.MinIdleInTransactionSec));
        Assert.Equal((0.25, 1234, ReaperErrorMode.Throw), (mapped.ReaperRunProbability, mapped.ReaperCooldownMs, mapped.ErrorMode));
        Assert.Null(ReaperOptions.ForClient(new AequorClientOptions { ConnectionString = "Host=x", CoordinationSecret = ReaperKit.Secret, Reaper = false }));
        Assert.Null(ReaperOptions.ForClient(new AequorClientOptions { ConnectionString = "Host=x", LeaseMode = LeaseMode.Optional }));
    }
}
