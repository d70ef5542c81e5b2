using Npgsql;

namespace Aequor.Engine.Tests;

/// <summary>The client runs the real reaper after connecting: a zombie of its own service is gone.</summary>
[Collection(PostgresCollection.Name)]
public sealed class ClientReaperWiringTests(PostgresFixture db)
{
    private async Task<NpgsqlConnection> ZombieAsync(string service)
    {
        // A lease of our service, signed with our secret, expired a minute ago: a frozen worker's backend.
        var lease = new LeaseSigner(ClientTestKit.Secret).Sign(service, InstanceIds.Generate(), DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() - 60_000);
        return await db.OpenAsync(db.AppConnectionString, lease);
    }

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
}
