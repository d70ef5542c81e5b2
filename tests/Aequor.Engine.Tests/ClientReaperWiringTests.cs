using Aequor.TestServer;
using Npgsql;

namespace Aequor.Engine.Tests;

/// <summary>The client runs the real reaper after connecting: a zombie of its own service is gone.</summary>
[Collection(PostgresCollection.Name)]
public sealed class ClientReaperWiringTests(PostgresFixture db)
{
    private Task<NpgsqlConnection> ZombieAsync(string service) => ClientTestKit.ZombieAsync(db, service);

    private AequorClient NewClient(string service) => new(new AequorClientOptions
    {
        ConnectionString = db.AppConnectionString,
        CoordinationSecret = ClientTestKit.Secret,
        ServiceName = service,
        ReaperRunProbability = 1,
        MinConnectionIdleTimeSec = 0,
    });

    [Fact]
    public async Task A_connect_runs_a_pass_that_kills_an_expired_idle_lease_of_the_service_and_reports_it()
    {
        var service = "client-reap-" + Guid.NewGuid().ToString("N")[..6];
        await using var zombie = await ZombieAsync(service);
        await using var bystander = await db.OpenAsync(db.AppConnectionString, "not-a-lease");
        await Task.Delay(1_100);

        await using var client = NewClient(service);
        var events = new ClientTestKit.EventLog(client);
        Assert.Equal(1, await client.ExecuteScalarAsync(new AequorStatement("SELECT 1"), default));

        await ClientTestKit.WaitGoneAsync(db.AdminConnectionString, zombie.ProcessID);
        var reap = Assert.Single(events.Of<AequorReapEvent>());
        Assert.True(reap.Locked);
        Assert.Equal(1, reap.Killed);
        Assert.Null(reap.Error);
        Assert.Equal(1, client.Counters.ReapPasses);
        Assert.Equal(1, client.Counters.BackendsKilled);
        Assert.Equal([zombie.ProcessID], client.LastReap!.KilledPids);
        Assert.Equal(1, await ClientTestKit.AdminScalarAsync<long>(db.AdminConnectionString, "SELECT count(*) FROM pg_stat_activity WHERE pid = $1", bystander.ProcessID));
    }

    [Fact]
    public async Task A_client_that_gets_in_near_the_limit_reaps_at_once_though_no_one_was_refused_and_one_below_it_does_not()
    {
        // 13 connections, 3 reserved for superusers: 10 slots for the app role.
        await using var server = await TestPostgres.StartLocalAsync(13);
        var service = "near-limit-" + Guid.NewGuid().ToString("N")[..6];
        AequorClient Client() => new(new AequorClientOptions
        {
            ConnectionString = server.AppConnectionString,
            CoordinationSecret = ClientTestKit.Secret,
            ServiceName = service,
            ReaperRunProbability = 0,
        });

        var held = new List<NpgsqlConnection>();
        try
        {
            // 7 plain connections + the client's own = 8 of 10 used: at NearLimitRatio (0.8), though a slot is free.
            for (var i = 0; i < 7; i++)
            {
                var c = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(server.AppConnectionString) { Pooling = false, ApplicationName = "held" }.ConnectionString);
                await c.OpenAsync();
                held.Add(c);
            }

            await using (var near = Client())
            {
                await near.ConnectAsync(default);
                var pass = Assert.IsType<Aequor.Engine.Reaper.ReapResult>(near.LastReap);
                Assert.True(pass.LockAcquired);
                // 8, or more while a set-up session of the cluster is still on its way out.
                Assert.InRange(pass.ConnectionsUsed!.Value, 8, 10);
                Assert.Equal(1, near.Counters.ReapPasses);
            }

            foreach (var c in held.Take(4))
            {
                await c.DisposeAsync();
            }

            await ClientTestKit.WaitUntilAsync(
                async () => await ClientTestKit.AdminScalarAsync<long>(server.AdminConnectionString, "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()") <= 3,
                TimeSpan.FromSeconds(10),
                "the closed connections to leave");

            // 3 + 1 of 10: below the limit, and probability 0: no pass, and storm mode is off for the scope.
            await using var below = Client();
            await below.ConnectAsync(default);
            Assert.Null(below.LastReap);
            Assert.Equal(0, below.Counters.ReapPasses);
        }
        finally
        {
            foreach (var c in held)
            {
                await c.DisposeAsync();
            }
        }
    }

    [Fact]
    public async Task A_manual_pass_runs_now_and_is_refused_inside_a_transaction()
    {
        var service = "client-reap-" + Guid.NewGuid().ToString("N")[..6];
        await using var client = NewClient(service);
        await client.ConnectAsync(default);
        await using var zombie = await ZombieAsync(service);
        await Task.Delay(1_100);

        var dry = await client.ReapNowAsync(new Aequor.Engine.Reaper.ReapRequest { DryRun = true }, default);
        Assert.Empty(dry.KilledPids);
        var result = await client.ReapNowAsync(null, default);
        Assert.Equal([zombie.ProcessID], result.KilledPids);
        Assert.Equal(1, client.Counters.BackendsKilled);

        await client.BeginTransactionAsync(default);
        await Assert.ThrowsAsync<InvalidOperationException>(() => client.ReapNowAsync(null, default));
        await client.RollbackAsync(default);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task A_manual_pass_on_a_connection_the_server_ended_runs_on_a_fresh_one(bool probed)
    {
        var service = "client-reap-" + Guid.NewGuid().ToString("N")[..6];
        await using var client = new AequorClient(new AequorClientOptions
        {
            ConnectionString = db.AppConnectionString,
            CoordinationSecret = ClientTestKit.Secret,
            ServiceName = service,
            ReaperRunProbability = 0,
            MinConnectionIdleTimeSec = 0,
        })
        {
            // Probed: idle past the probe's threshold, the probe finds the connection dead; not probed: the pass
            // itself meets the dead connection (ended within the probe's idle window).
            ProbeAfterIdleMs = probed ? 0 : 600_000,
        };
        await client.ConnectAsync(default);
        var ended = client.BackendPid!.Value;
        await using var zombie = await ZombieAsync(service);
        Assert.True(await ClientTestKit.TerminateAsync(db.AdminConnectionString, ended));
        await ClientTestKit.WaitGoneAsync(db.AdminConnectionString, ended);
        await Task.Delay(1_100);

        var result = await client.ReapNowAsync(null, default);

        Assert.Null(result.Error);
        Assert.True(result.LockAcquired);
        Assert.Equal([zombie.ProcessID], result.KilledPids);
        Assert.NotEqual(ended, client.BackendPid);
        Assert.Equal(2, client.Counters.Connects);
        Assert.Equal(AequorClientState.Connected, client.State);
    }
}
