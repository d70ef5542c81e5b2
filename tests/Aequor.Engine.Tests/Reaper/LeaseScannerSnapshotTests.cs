using Aequor.Engine.Reaper;
using Npgsql;

namespace Aequor.Engine.Tests.Reaper;

/// <summary>
/// Inside a transaction PostgreSQL keeps the first pg_stat_activity snapshot it read until the transaction ends:
/// a listing taken there (Get-AequorLease in Start-AequorTransaction) must still show the backends as they are now.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class LeaseScannerSnapshotTests(PostgresFixture db)
{
    private Task<NpgsqlConnection> ZombieAsync(string service) => ClientTestKit.ZombieAsync(db, service);

    [Fact]
    public async Task A_listing_inside_a_transaction_shows_backends_that_left_and_came_since_the_first_one()
    {
        var service = "scan-snapshot-" + Guid.NewGuid().ToString("N")[..6];
        await using var client = new AequorClient(new AequorClientOptions
        {
            ConnectionString = db.AppConnectionString,
            CoordinationSecret = ClientTestKit.Secret,
            ServiceName = service,
            ReaperRunProbability = 0,
        });
        var leaving = await ZombieAsync(service);
        await client.BeginTransactionAsync(default);

        var first = await LeaseScanner.ScanAsync(client, all: false, overrides: null, default);
        Assert.Contains(leaving.ProcessID, first.Leases.Select(l => l.Pid));

        var left = leaving.ProcessID;
        await leaving.DisposeAsync();
        await ClientTestKit.WaitGoneAsync(db.AdminConnectionString, left);
        await using var coming = await ZombieAsync(service);

        var second = await LeaseScanner.ScanAsync(client, all: false, overrides: null, default);
        Assert.DoesNotContain(left, second.Leases.Select(l => l.Pid));
        Assert.Contains(coming.ProcessID, second.Leases.Select(l => l.Pid));
        Assert.True(client.InTransaction);
        await client.RollbackAsync(default);
    }
}
