using Aequor.Engine.Tests.Faults;
using Npgsql;

namespace Aequor.Engine.Tests;

/// <summary>
/// Network faults between the client and the server, through the loopback fault proxy, that the fault matrix
/// (<see cref="FaultMatrixTests"/>, unique-key writes) does not cover: an idempotent retry, a renewal that times out.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class ClientFaultTests(PostgresFixture db)
{
    /// <summary>
    /// The fault matrix (<see cref="FaultMatrixTests"/>) covers a write after a reset while idle (one clear
    /// unknown outcome, the key at most once); this is the other half: an idempotent statement is retried on a
    /// fresh connection, and the retry and the reconnect are counted.
    /// </summary>
    [Fact]
    public async Task A_reset_idle_connection_is_replaced_for_an_idempotent_statement_and_counted()
    {
        var (proxy, client) = ProxiedClient.Create(db, "client-faults");
        await using var _ = proxy;
        await using var __ = client;
        await client.ExecuteScalarAsync(new AequorStatement("SELECT 1"), default);
        var pid = client.BackendPid;

        proxy.ResetAll();
        Assert.Equal(4, await client.ExecuteScalarAsync(new AequorStatement("SELECT 4") { Idempotent = true }, default));
        Assert.NotEqual(pid, client.BackendPid);
        Assert.Equal(1, client.Counters.Retries);
        Assert.Equal(2, client.Counters.Connects);
    }

    [Fact]
    public async Task A_hard_wait_renewal_that_times_out_sends_the_statement_to_a_fresh_connection()
    {
        var b = new NpgsqlConnectionStringBuilder(db.AppConnectionString);
        await using var proxy = new FaultProxy(b.Host!, b.Port);
        await using var client = new AequorClient(new AequorClientOptions
        {
            ConnectionString = new NpgsqlConnectionStringBuilder(proxy.Rewrite(db.AppConnectionString)) { CancellationTimeout = 500, Timeout = 5 }.ConnectionString,
            CoordinationSecret = ClientTestKit.Secret,
            ServiceName = "client-faults",
            Reaper = false,
            LeaseTtlMs = 3_000,
            HeartbeatSoftRemainingMs = 2_500,
            HeartbeatHardWaitRemainingMs = 2_000,
            HeartbeatTimeoutMs = 500,
        });
        var failures = new List<AequorHeartbeatFailEvent>();
        client.OnHeartbeatFail += (_, e) =>
        {
            failures.Add(e);
            proxy.BlackHole = false; // the network recovers for the fresh connection
        };
        await client.ExecuteScalarAsync(new AequorStatement("SELECT 1"), default);
        var pid = client.BackendPid;
        await Task.Delay(1_200); // ≤ 2 s left: the next statement waits for its renewal

        proxy.BlackHole = true;
        var started = DateTime.UtcNow;
        Assert.Equal(2, await client.ExecuteScalarAsync(new AequorStatement("SELECT 2"), default));

        var failure = Assert.Single(failures);
        Assert.Equal(HeartbeatErrorMode.Reconnect, failure.Mode);
        Assert.NotEqual(pid, client.BackendPid);
        Assert.True(DateTime.UtcNow - started < TimeSpan.FromSeconds(8));
        Assert.Equal(1, client.Counters.HeartbeatFailures);
        Assert.True(new LeaseSigner(ClientTestKit.Secret).Verify(await ClientTestKit.ApplicationNameOfAsync(db.AdminConnectionString, client.BackendPid!.Value)));
    }

    /// <summary>
    /// A server that takes the connection and never answers (a black-holed route, a frozen host): every attempt ends
    /// at the connection string's Timeout, the retries stop at MaxConnectRetryTimeMs, and the caller gets one
    /// AequorConnectFailedException that says the attempts timed out - never a hang, never Npgsql's own exception.
    /// The same client connects once the network is back.
    /// </summary>
    [Fact]
    public async Task A_connect_that_never_gets_an_answer_fails_by_its_timeouts_with_one_clear_error_and_the_client_recovers()
    {
        var b = new NpgsqlConnectionStringBuilder(db.AppConnectionString);
        await using var proxy = new FaultProxy(b.Host!, b.Port);
        await using var client = new AequorClient(new AequorClientOptions
        {
            ConnectionString = new NpgsqlConnectionStringBuilder(proxy.Rewrite(db.AppConnectionString)) { Timeout = 1 }.ConnectionString,
            CoordinationSecret = ClientTestKit.Secret,
            ServiceName = "client-faults",
            Reaper = false,
            MinBackoff = 50,
            MaxBackoff = 100,
            MaxConnectRetryTimeMs = 2_500,
        });

        proxy.BlackHole = true;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var error = await Assert.ThrowsAsync<AequorConnectFailedException>(() => client.ExecuteScalarAsync(new AequorStatement("SELECT 1"), default));
        clock.Stop();

        // Each attempt waits its 1 s; the budget of 2.5 s leaves room for two or three of them, not for the fourth.
        Assert.InRange(error.Attempts, 2, 3);
        Assert.InRange(clock.Elapsed, TimeSpan.FromSeconds(1.9), TimeSpan.FromSeconds(6));
        // Npgsql words it "The operation has timed out" or "Timeout during connection attempt", by where it was.
        Assert.Matches("(?i)timed out|timeout", error.Message);
        Assert.DoesNotContain("Npgsql", error.Message, StringComparison.Ordinal);
        Assert.Equal(0, client.Counters.Connects);

        proxy.BlackHole = false;
        Assert.Equal(2, await client.ExecuteScalarAsync(new AequorStatement("SELECT 2"), default));
        Assert.Equal(1, client.Counters.Connects);
    }

    /// <summary>
    /// A cancel the server's answer never reaches: Npgsql gives up after its cancellation timeout and breaks the
    /// connection. The write was sent and may have committed, so the caller hears "outcome unknown", not a bare
    /// cancellation it could take for "nothing happened".
    /// </summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_cancel_whose_connection_then_breaks_is_an_unknown_outcome_never_a_plain_cancellation(bool synchronous)
    {
        var table = await ClientTestKit.NewKeyedTableAsync(db.AppConnectionString, "cancelbreak");
        var (proxy, client) = ProxiedClient.Create(db, "client-faults", commandTimeout: 2);
        await using var _ = proxy;
        await using var __ = client;
        await client.ExecuteScalarAsync(new AequorStatement("SELECT 1"), default);

        proxy.BlackHole = true;
        using var cancel = new CancellationTokenSource(TimeSpan.FromMilliseconds(500));
        var insert = new AequorStatement($"INSERT INTO {table} VALUES (1)");
        var error = await Assert.ThrowsAsync<AequorOutcomeUnknownException>(() => synchronous
            ? Task.Run(() => client.ExecuteNonQuery(insert, cancel.Token))
            : client.ExecuteNonQueryAsync(insert, cancel.Token));
        Assert.Contains("cancelled and the connection broke", error.Message, StringComparison.Ordinal);

        proxy.BlackHole = false;
        Assert.True(await ClientTestKit.CountKeyAsync(db.AdminConnectionString, table, 1) <= 1);
        Assert.Equal(5, await client.ExecuteScalarAsync(new AequorStatement("SELECT 5"), default));
    }

    /// <summary>A wall clock the test moves forward: a lease falls due for its renewal without waiting for it.</summary>
    private sealed class MovableClock : TimeProvider
    {
        public TimeSpan Ahead { get; set; }

        public override DateTimeOffset GetUtcNow() => base.GetUtcNow() + Ahead;
    }

    /// <summary>
    /// A renewal abandoned at its deadline goes on in the background until its answer arrives. That late answer
    /// belongs to the dropped connection: it must not count as the liveness probe of the connection that replaced
    /// it (a backend lost since that connect would turn the next write into an unknown outcome instead of a retry),
    /// nor set the clock offset from its seconds-long round trip. The offset is what shows it deterministically.
    /// </summary>
    [Fact]
    public async Task A_late_answer_to_an_abandoned_renewal_does_not_spare_the_next_connection_its_first_probe()
    {
        var table = await ClientTestKit.NewKeyedTableAsync(db.AppConnectionString, "client_faults");
        var b = new NpgsqlConnectionStringBuilder(db.AppConnectionString);
        await using var proxy = new FaultProxy(b.Host!, b.Port);
        var clock = new MovableClock();
        await using var client = new AequorClient(
            new AequorClientOptions
            {
                // CancellationTimeout 0: Npgsql waits for the abandoned renewal's own (late) answer.
                ConnectionString = new NpgsqlConnectionStringBuilder(proxy.Rewrite(db.AppConnectionString)) { CancellationTimeout = 0, Timeout = 5 }.ConnectionString,
                CoordinationSecret = ClientTestKit.Secret,
                ServiceName = "client-faults",
                Reaper = false,
                HeartbeatTimeoutMs = 200,
                HeartbeatErrorMode = HeartbeatErrorMode.Throw,
            },
            new Random(),
            clock)
        {
            ProbeAfterIdleMs = 60_000, // only the first statement on a connection carries a probe
        };
        client.OnHeartbeatFail += (_, _) => proxy.Delay = TimeSpan.Zero;
        await client.ExecuteScalarAsync(new AequorStatement("SELECT 1"), default);
        var abandonedPid = client.BackendPid!.Value;

        clock.Ahead = TimeSpan.FromMilliseconds(client.Options.LeaseTtlMs - client.Options.HeartbeatHardWaitRemainingMs + 1_000);
        proxy.Delay = TimeSpan.FromSeconds(2); // the renewal's answer comes, but long after its deadline and the reconnect
        await Assert.ThrowsAsync<AequorHeartbeatException>(() => client.ExecuteScalarAsync(new AequorStatement("SELECT 2"), default));
        await client.ConnectAsync(default);
        var pid = client.BackendPid!.Value;
        var offset = client.ServerClockOffset;
        await ClientTestKit.WaitGoneAsync(db.AdminConnectionString, abandonedPid); // the abandoned renewal has ended
        Assert.Equal(offset, client.ServerClockOffset); // read by the new connection's connect, not the late answer

        await ClientTestKit.TerminateAsync(db.AdminConnectionString, pid);
        await ClientTestKit.WaitGoneAsync(db.AdminConnectionString, pid);
        Assert.Equal(1, await client.ExecuteNonQueryAsync(new AequorStatement($"INSERT INTO {table} VALUES (1)"), default));
        Assert.Equal(1, await ClientTestKit.CountKeyAsync(db.AdminConnectionString, table, 1));
        Assert.NotEqual(pid, client.BackendPid);
    }
}
