using Aequor.Engine.Reaper;
using Aequor.Engine.Tests.Reaper;

namespace Aequor.Engine.Tests;

/// <summary>The lease in application_name: renewed along the caller's statements, never inside a transaction.</summary>
[Collection(PostgresCollection.Name)]
public sealed class ClientHeartbeatTests(PostgresFixture db)
{
    // TTL 4 s, renew when ≤ 3 s remain, wait for it when ≤ 0.5 s remain: the soft zone starts 1 s after signing.
    private AequorClient NewClient(int ttl = 4_000, int soft = 3_000, int hard = 500, HeartbeatErrorMode mode = HeartbeatErrorMode.Reconnect) => new(new AequorClientOptions
    {
        ConnectionString = db.AppConnectionString,
        CoordinationSecret = ClientTestKit.Secret,
        ServiceName = "client-heartbeat",
        Reaper = false,
        LeaseTtlMs = ttl,
        HeartbeatSoftRemainingMs = soft,
        HeartbeatHardWaitRemainingMs = hard,
        HeartbeatErrorMode = mode,
    });

    private async Task<long> ServerExpiryAsync(AequorClient client)
    {
        var name = await ClientTestKit.ApplicationNameOfAsync(db.AdminConnectionString, client.BackendPid!.Value);
        Assert.True(new LeaseSigner(ClientTestKit.Secret).Verify(name), $"not a valid lease: {name}");
        Assert.True(Lease.TryParse(name, out var lease));
        return lease.ExpiresAtMs;
    }

    [Fact]
    public async Task After_the_soft_threshold_the_renewal_rides_with_the_next_statement_and_a_new_expiry_is_visible()
    {
        await using var client = NewClient();
        var events = new ClientTestKit.EventLog(client);
        Assert.Equal(1, await client.ExecuteScalarAsync(new AequorStatement("SELECT 1"), default));
        Assert.NotNull(client.ServerClockOffset);
        Assert.InRange(Math.Abs(client.ServerClockOffset!.Value.TotalMilliseconds), 0, 1_000);
        var first = await ServerExpiryAsync(client);

        await Task.Delay(1_300);
        Assert.Equal(2, await client.ExecuteScalarAsync(new AequorStatement("SELECT 2"), default));

        var renewed = await ServerExpiryAsync(client);
        Assert.True(renewed > first, $"expiry {renewed} should be later than {first}");
        Assert.Equal(renewed, client.LeaseExpiresAt!.Value.ToUnixTimeMilliseconds());
        var dbNow = await ClientTestKit.AdminScalarAsync<long>(db.AdminConnectionString, "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::int8");
        // Signed on the database timeline: now + TTL (4 s), less what passed since (up to 2.5 s on a loaded machine).
        Assert.InRange(renewed - dbNow, 1_500, 4_000);
        var heartbeat = Assert.Single(events.Of<AequorHeartbeatEvent>());
        Assert.True(heartbeat.SharedRoundTrip);
        Assert.Equal(1, client.Counters.Heartbeats);
        Assert.Equal(1, client.Counters.Connects);
    }

    [Fact]
    public async Task No_renewal_inside_a_transaction_and_one_right_after_it_ends()
    {
        await using var client = NewClient();
        await client.ExecuteScalarAsync(new AequorStatement("SELECT 1"), default);
        var first = await ServerExpiryAsync(client);

        await client.BeginTransactionAsync(default);
        await Task.Delay(1_300);
        await client.ExecuteScalarAsync(new AequorStatement("SELECT 1"), default);
        await client.ExecuteScalarAsync(new AequorStatement("SELECT 2"), default);
        Assert.Equal(first, await ServerExpiryAsync(client));
        Assert.Equal(0, client.Counters.Heartbeats);
        await client.RollbackAsync(default);

        Assert.Equal(first, await ServerExpiryAsync(client));
        await client.ExecuteScalarAsync(new AequorStatement("SELECT 3"), default);
        var renewed = await ServerExpiryAsync(client);
        Assert.True(renewed > first);
        Assert.Equal(renewed, client.LeaseExpiresAt!.Value.ToUnixTimeMilliseconds());
        Assert.Equal(1, client.Counters.Heartbeats);
    }

    [Fact]
    public async Task A_renewal_reverted_with_a_failing_statement_is_noticed_and_made_again()
    {
        await using var client = NewClient();
        await client.ExecuteScalarAsync(new AequorStatement("SELECT 1"), default);
        var first = await ServerExpiryAsync(client);
        await Task.Delay(1_300);

        // The renewal shares the batch's implicit transaction with the division by zero, which rolls it back.
        await Assert.ThrowsAsync<Npgsql.PostgresException>(() => client.ExecuteScalarAsync(new AequorStatement("SELECT 1/0"), default));
        Assert.Equal(first, await ServerExpiryAsync(client));
        Assert.Equal(first, client.LeaseExpiresAt!.Value.ToUnixTimeMilliseconds()); // the client saw the revert
        Assert.Equal(0, client.Counters.Heartbeats);

        await client.ExecuteScalarAsync(new AequorStatement("SELECT 1"), default);
        var renewed = await ServerExpiryAsync(client);
        Assert.True(renewed > first);
        Assert.Equal(1, client.Counters.Heartbeats);
    }

    [Fact]
    public async Task A_user_rollback_of_a_renewal_made_in_sql_is_noticed()
    {
        await using var client = NewClient(ttl: 60_000, soft: 1_000, hard: 500);
        await client.ExecuteScalarAsync(new AequorStatement("SELECT 1"), default);
        var leased = client.ApplicationName;
        await client.BeginTransactionAsync(default);
        // Inside a function body, where the client's refusal of a statement that sets application_name cannot see it
        // (a DO block's body it reads, like the statement around it).
        await client.ExecuteNonQueryAsync(new AequorStatement("CREATE FUNCTION pg_temp.relabel() RETURNS void LANGUAGE plpgsql AS $$ BEGIN PERFORM set_config('application_name', 'not-a-lease', false); END $$"), default);
        await client.ExecuteScalarAsync(new AequorStatement("SELECT pg_temp.relabel()"), default);
        Assert.Equal("not-a-lease", client.ApplicationName is null ? null : await ClientTestKit.ApplicationNameOfAsync(db.AdminConnectionString, client.BackendPid!.Value));
        await client.RollbackAsync(default);
        await client.ExecuteScalarAsync(new AequorStatement("SELECT 1"), default);
        Assert.Equal(leased, await ClientTestKit.ApplicationNameOfAsync(db.AdminConnectionString, client.BackendPid!.Value));
        Assert.Equal(leased, client.ApplicationName);
    }

    [Fact]
    public async Task A_statement_that_cannot_share_a_batch_gets_its_renewal_in_a_round_trip_of_its_own()
    {
        await using var client = NewClient();
        await client.ExecuteScalarAsync(new AequorStatement("SELECT 1"), default);
        var first = await ServerExpiryAsync(client);
        await Task.Delay(1_300);
        Assert.Equal(1, await client.ExecuteScalarAsync(new AequorStatement("SELECT 1; SELECT 2"), default));
        Assert.True(await ServerExpiryAsync(client) > first);
        Assert.Equal(1, client.Counters.Heartbeats);
    }

    // A renewal that finds the backend gone is a dead connection, not a refused renewal: the statement was not
    // sent, so it goes to a fresh connection whatever HeartbeatErrorMode says (Throw is for a live refusal or a timeout).
    [Theory]
    [InlineData(HeartbeatErrorMode.Reconnect)]
    [InlineData(HeartbeatErrorMode.Swallow)]
    [InlineData(HeartbeatErrorMode.Throw)]
    public async Task When_the_hard_wait_renewal_finds_the_backend_gone_the_statement_goes_to_a_fresh_connection_in_every_mode(HeartbeatErrorMode mode)
    {
        await using var client = NewClient(ttl: 2_000, soft: 1_900, hard: 1_800, mode: mode);
        var events = new ClientTestKit.EventLog(client);
        await client.ExecuteScalarAsync(new AequorStatement("SELECT 1"), default);
        var pid = client.BackendPid!.Value;
        await ClientTestKit.TerminateAsync(db.AdminConnectionString, pid);
        await ClientTestKit.WaitGoneAsync(db.AdminConnectionString, pid);
        await Task.Delay(300);

        // ≤ 1.8 s left: the renewal goes first and alone, fails on the dead backend; the insert goes elsewhere.
        var newPid = await client.ExecuteScalarAsync(new AequorStatement("SELECT pg_backend_pid()"), default);
        Assert.NotEqual(pid, newPid);
        Assert.Single(events.Of<AequorHeartbeatFailEvent>());
        Assert.Contains(events.Of<AequorClientDeadEvent>(), e => e.Source == "heartbeat");
        Assert.Equal(2, client.Counters.Connects);
    }

    [Fact]
    public async Task Optional_mode_without_a_secret_never_renews()
    {
        await using var client = new AequorClient(new AequorClientOptions { ConnectionString = db.AppConnectionString, LeaseMode = LeaseMode.Optional });
        await client.ExecuteScalarAsync(new AequorStatement("SELECT 1"), default);
        await client.ExecuteScalarAsync(new AequorStatement("SELECT 1"), default);
        Assert.Equal(0, client.Counters.Heartbeats);
        Assert.Null(client.LeaseExpiresAt);
    }

    [Fact]
    public async Task A_long_statement_after_an_idle_spell_leaves_the_clock_offset_alone_and_the_next_lease_gets_its_full_ttl()
    {
        await using var client = NewClient(ttl: 10_000, soft: 1_500, hard: 500);
        await client.ConnectAsync(default);
        await client.ExecuteScalarAsync(new AequorStatement("SELECT 1"), default);
        var accurate = client.ServerClockOffset!.Value.TotalMilliseconds;

        // Idle past the probe threshold: the next statement carries a clock reading in its batch, and the server
        // answers it only when the 6 s statement is done.
        await Task.Delay(client.ProbeAfterIdleMs + 200);
        await client.ExecuteScalarAsync(new AequorStatement("SELECT pg_sleep(6)"), default);
        Assert.InRange(client.ServerClockOffset!.Value.TotalMilliseconds - accurate, -Heartbeat.SkewToleranceMs, Heartbeat.SkewToleranceMs);

        // Past the expiry by more than the skew the statement would have caused, so the next statement renews
        // first with the offset as it stands, right or wrong.
        var expiry = await ServerExpiryAsync(client);
        var dbNow = await ClientTestKit.AdminScalarAsync<long>(db.AdminConnectionString, "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::int8");
        await Task.Delay(TimeSpan.FromMilliseconds(Math.Max(0, expiry - dbNow + 3_500)));
        var renewals = client.Counters.Heartbeats;
        await client.ExecuteScalarAsync(new AequorStatement("SELECT 1"), default);
        Assert.True(client.Counters.Heartbeats > renewals);

        var renewed = await ServerExpiryAsync(client);
        dbNow = await ClientTestKit.AdminScalarAsync<long>(db.AdminConnectionString, "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::int8");
        // Signed for 10 s on the database clock; with the offset skewed by half the statement it had 7 s at most.
        Assert.InRange(renewed - dbNow, 8_000, 10_000);
    }
}

/// <summary>A client whose wall clock is off: leases are judged and signed on the database's timeline.</summary>
[Collection(PostgresCollection.Name)]
public sealed class ClientClockSkewTests(PostgresFixture db)
{
    private sealed class ShiftedClock(TimeSpan shift) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => base.GetUtcNow() + shift;
    }

    private AequorClient NewClient(TimeSpan skew) => new(
        new AequorClientOptions
        {
            ConnectionString = db.AppConnectionString,
            CoordinationSecret = ClientTestKit.Secret,
            ServiceName = "client-skew",
            Reaper = false,
        },
        new Random(),
        new ShiftedClock(skew));

    private async Task<long> RemainingOnDatabaseClockAsync(AequorClient client)
    {
        var name = await ClientTestKit.ApplicationNameOfAsync(db.AdminConnectionString, client.BackendPid!.Value);
        Assert.True(Lease.TryParse(name, out var lease));
        var dbNow = await ClientTestKit.AdminScalarAsync<long>(db.AdminConnectionString, "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::int8");
        return lease.ExpiresAtMs - dbNow;
    }

    [Theory]
    [InlineData(-80)] // behind: a lease signed on the client clock would look expired 80 s early
    [InlineData(120)] // ahead: a lease signed on the client clock would outlive its TTL by two minutes
    public async Task A_skewed_client_signs_its_lease_on_the_database_timeline_at_connect(int skewSeconds)
    {
        await using var client = NewClient(TimeSpan.FromSeconds(skewSeconds));
        await client.ConnectAsync(default);

        // The connect read the database clock, found the lease it had set off by the skew, and set it again.
        Assert.InRange(client.ServerClockOffset!.Value.TotalSeconds, -skewSeconds - 1, -skewSeconds + 1);
        Assert.InRange(await RemainingOnDatabaseClockAsync(client), 80_000, 90_000);
        Assert.Equal(0, client.Counters.Heartbeats);

        // Nothing left for the statements to fix: no renewal while more than the soft threshold remains.
        await client.ExecuteScalarAsync(new AequorStatement("SELECT 1"), default);
        await client.ExecuteScalarAsync(new AequorStatement("SELECT 2"), default);
        Assert.Equal(0, client.Counters.Heartbeats);
        Assert.InRange(await RemainingOnDatabaseClockAsync(client), 80_000, 90_000);
    }

    [Fact]
    public async Task A_live_idle_client_whose_clock_is_behind_by_more_than_its_lease_is_not_reaped_after_connect()
    {
        var service = "skew-" + Guid.NewGuid().ToString("N")[..8];
        AequorClient Client(TimeSpan skew) => new(
            new AequorClientOptions
            {
                ConnectionString = db.AppConnectionString,
                CoordinationSecret = ClientTestKit.Secret,
                ServiceName = service,
                LeaseTtlMs = 600_000,
                Reaper = false,
            },
            new Random(),
            new ShiftedClock(skew));
        await using var slow = Client(TimeSpan.FromMinutes(-11)); // behind by more than the 10-minute lease
        await using var fast = Client(TimeSpan.FromMinutes(11));
        await slow.ConnectAsync(default);
        await fast.ConnectAsync(default);
        await Task.Delay(2_200);

        await using var kit = new ReaperKit(db) { Service = service };
        var result = await ReaperPass.RunAsync(await kit.ReaperConnectionAsync(), new ReaperOptions
        {
            ServiceName = service,
            CoordinationSecret = ClientTestKit.Secret,
            MinConnectionIdleTimeSec = 2,
        });

        Assert.Null(result.Error);
        Assert.Empty(result.KilledPids);
        Assert.True(await kit.IsAliveAsync(slow.BackendPid!.Value));
        // Neither lease is off by the skew: the slow one is not expired, the fast one does not outlive its TTL.
        Assert.InRange(await RemainingOnDatabaseClockAsync(slow), 590_000, 600_000);
        Assert.InRange(await RemainingOnDatabaseClockAsync(fast), 590_000, 600_000);
    }
}
