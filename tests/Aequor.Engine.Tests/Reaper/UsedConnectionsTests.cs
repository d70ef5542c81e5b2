using Aequor.Engine.Reaper;
using Aequor.Engine.Tests.Faults;
using Npgsql;

namespace Aequor.Engine.Tests.Reaper;

/// <summary>
/// The slot count the lease listing (Get-AequorLease, Invoke-AequorReap -Confirm) reports is the pass's own: a
/// non-superuser sees no backend_type for another role's session, which still holds a slot. On a cluster of its
/// own, so nothing else connects meanwhile.
/// </summary>
public sealed class UsedConnectionsTests(OwnServerFixture own) : IClassFixture<OwnServerFixture>
{
    [Fact]
    public async Task The_listing_counts_another_roles_session_as_the_pass_does()
    {
        await own.WaitQuietAsync();
        await using var admin = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(own.Server.AdminConnectionString) { Pooling = false }.ConnectionString);
        await admin.OpenAsync();
        await using var client = new AequorClient(new AequorClientOptions
        {
            ConnectionString = own.Server.AppConnectionString,
            CoordinationSecret = ClientTestKit.Secret,
            ServiceName = "used-connections",
            ReaperRunProbability = 0,
        });
        await client.ConnectAsync(default);

        // The superuser sees exactly its own session and the client's once earlier backends have exited.
        await ClientTestKit.WaitUntilAsync(async () =>
        {
            await using var count = new NpgsqlCommand("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'", admin);
            return (long)(await count.ExecuteScalarAsync())! == 2;
        }, TimeSpan.FromSeconds(10), "only the superuser's and the client's backends");

        var listing = await LeaseScanner.ScanAsync(client, all: false, overrides: null, default);
        var pass = await client.ReapNowAsync(new ReapRequest { DryRun = true }, default);
        Assert.Equal(2, listing.ConnectionsUsed);
        Assert.Equal(2, pass.ConnectionsUsed);
    }
}
