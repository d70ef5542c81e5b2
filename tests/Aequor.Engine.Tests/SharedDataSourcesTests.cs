using Aequor.Engine.Reaper;
using Aequor.Engine.Tests.Reaper;
using Npgsql;

namespace Aequor.Engine.Tests;

/// <summary>
/// One Npgsql data source per connection string, service, secret and TTL in the process; its startup lease is
/// valid, and a backend that never got past it (its process frozen right after the startup) is reaped once
/// that lease expired, like any zombie — while a client's own lease is in place before it is handed out.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class SharedDataSourcesTests(PostgresFixture db)
{
    private static readonly LeaseSigner Signer = new(ClientTestKit.Secret);

    private static string Base(string connectionString) =>
        new NpgsqlConnectionStringBuilder(connectionString) { Pooling = false }.ConnectionString;

    [Fact]
    public void Clients_with_the_same_options_share_one_data_source_and_other_options_get_their_own()
    {
        var service = "sds-" + Guid.NewGuid().ToString("N")[..8];
        var now = ReaperKit.NowMs;
        var first = SharedDataSources.For(Base(db.AppConnectionString), Signer, service, 90_000, now);

        Assert.Same(first, SharedDataSources.For(Base(db.AppConnectionString), Signer, service, 90_000, now + 1_000));
        Assert.NotSame(first, SharedDataSources.For(Base(db.AppConnectionString), new LeaseSigner("another-secret-0123456789"), service, 90_000, now));
        Assert.NotSame(first, SharedDataSources.For(Base(db.AppConnectionString), Signer, service + "x", 90_000, now));
        Assert.NotSame(first, SharedDataSources.For(Base(db.AppConnectionString), Signer, service, 60_000, now));
        Assert.NotSame(first, SharedDataSources.For(Base(db.AdminConnectionString), Signer, service, 90_000, now));

        // Its startup lease is this service's, signed with the secret, valid for the TTL.
        Assert.True(Lease.TryParse(first.StartupLease, out var lease));
        Assert.Equal(service, lease.ServiceName);
        Assert.True(Signer.IsSignatureValid(lease));
        Assert.Equal(now + 90_000, lease.ExpiresAtMs);

        // Replaced once less than nine tenths of the TTL is left: a new lease, a new data source.
        Assert.Same(first, SharedDataSources.For(Base(db.AppConnectionString), Signer, service, 90_000, now + 9_000));
        var next = SharedDataSources.For(Base(db.AppConnectionString), Signer, service, 90_000, now + 9_001);
        Assert.NotSame(first, next);
        Assert.Equal(now + 9_001 + 90_000, next.StartupLeaseExpiresAtMs);
        Assert.NotEqual(first.StartupLease, next.StartupLease);

        // Without a secret there is no lease to replace: one data source per connection string, for good.
        var plain = SharedDataSources.For(Base(db.AppConnectionString), null, service, 90_000, now);
        Assert.Null(plain.StartupLease);
        Assert.Same(plain, SharedDataSources.For(Base(db.AppConnectionString), null, service, 90_000, now + 10_000_000));
    }

    [Fact]
    public async Task Each_client_hands_out_its_connection_with_its_own_lease_though_they_share_the_data_source()
    {
        var service = "sds-" + Guid.NewGuid().ToString("N")[..8];
        AequorClient NewClient() => new(new AequorClientOptions
        {
            ConnectionString = db.AppConnectionString,
            CoordinationSecret = ClientTestKit.Secret,
            ServiceName = service,
            Reaper = false,
        });

        await using var a = NewClient();
        await using var b = NewClient();
        await a.ConnectAsync(default);
        await b.ConnectAsync(default);

        foreach (var client in new[] { a, b })
        {
            var name = await ClientTestKit.ApplicationNameOfAsync(db.AdminConnectionString, client.BackendPid!.Value);
            Assert.True(Lease.TryParse(name, out var lease), name);
            Assert.Equal(client.InstanceId, lease.InstanceId);
            Assert.Equal(client.ApplicationName, name);
        }

        var shared = SharedDataSources.For(Base(db.AppConnectionString), Signer, service, new AequorClientOptions { ConnectionString = "Host=x" }.LeaseTtlMs, ReaperKit.NowMs);
        Assert.NotEqual(a.ApplicationName, shared.StartupLease);
    }

    [Fact]
    public async Task A_replaced_data_source_is_disposed_once_its_last_connect_is_done_and_what_it_opened_goes_on()
    {
        var service = "sds-" + Guid.NewGuid().ToString("N")[..8];
        var now = ReaperKit.NowMs;
        var first = SharedDataSources.For(Base(db.AppConnectionString), Signer, service, 10_000, now);
        await using var open = await first.DataSource.OpenConnectionAsync();

        // Replaced while a connect still holds it: kept, and that connect can still open from it.
        var second = SharedDataSources.For(Base(db.AppConnectionString), Signer, service, 10_000, now + 1_001);
        Assert.NotSame(first, second);
        Assert.False(first.IsDisposed);
        await (await first.DataSource.OpenConnectionAsync()).DisposeAsync();

        // Its last connect done: disposed (Npgsql would otherwise keep it, catalogue and all, for good).
        first.Release();
        Assert.True(first.IsDisposed);
        await Assert.ThrowsAsync<ObjectDisposedException>(async () => await first.DataSource.OpenConnectionAsync());

        // What it opened goes on working.
        await using (var command = new NpgsqlCommand("SELECT 1", open))
        {
            Assert.Equal(1, await command.ExecuteScalarAsync());
        }

        // Replaced with no connect on it: disposed at once; the new one stays.
        second.Release();
        var third = SharedDataSources.For(Base(db.AppConnectionString), Signer, service, 10_000, now + 2_002);
        Assert.True(second.IsDisposed);
        third.Release();
        Assert.False(third.IsDisposed);
    }

    [Fact]
    public async Task Data_sources_of_options_nobody_connected_with_for_a_whole_ttl_are_disposed_unless_a_connect_holds_them()
    {
        var service = "sds-" + Guid.NewGuid().ToString("N")[..8];
        var now = ReaperKit.NowMs;
        var idle = SharedDataSources.For(Base(db.AppConnectionString), Signer, service + "-idle", 10_000, now);
        idle.Release();
        var held = SharedDataSources.For(Base(db.AppConnectionString), Signer, service + "-held", 10_000, now);
        await using var open = await idle.DataSource.OpenConnectionAsync();

        // Within the TTL, another options' connect leaves both alone.
        SharedDataSources.For(Base(db.AppConnectionString), Signer, service, 10_000, now + 9_999).Release();
        Assert.False(idle.IsDisposed);

        // Past it: the unused one is disposed (what it opened goes on), the one a connect still holds is kept.
        SharedDataSources.For(Base(db.AppConnectionString), Signer, service, 10_000, now + 10_001).Release();
        Assert.True(idle.IsDisposed);
        Assert.False(held.IsDisposed);
        await using (var command = new NpgsqlCommand("SELECT 1", open))
        {
            Assert.Equal(1, await command.ExecuteScalarAsync());
        }

        // A later connect with the evicted options gets a data source of its own, which works.
        var again = SharedDataSources.For(Base(db.AppConnectionString), Signer, service + "-idle", 10_000, now + 10_002);
        Assert.NotSame(idle, again);
        await (await again.DataSource.OpenConnectionAsync()).DisposeAsync();
        again.Release();
        held.Release();
    }

    [Fact]
    public async Task A_client_is_done_with_the_data_source_once_connected_so_its_replacement_disposes_it_and_the_client_goes_on()
    {
        var service = "sds-" + Guid.NewGuid().ToString("N")[..8];
        await using var client = new AequorClient(new AequorClientOptions
        {
            ConnectionString = db.AppConnectionString,
            CoordinationSecret = ClientTestKit.Secret,
            ServiceName = service,
            Reaper = false,
            LeaseTtlMs = 60_000,
        });
        await client.ConnectAsync(default);

        // The client's data source (its key names the TTL) signs its startup lease for the TTL plus the connect timeout.
        var key = SharedDataSources.KeyFor(Base(db.AppConnectionString), Signer, service, 60_000);
        var ttl = client.StartupLeaseTtlMs;
        var used = SharedDataSources.For(key, Base(db.AppConnectionString), Signer, service, ttl, ReaperKit.NowMs);
        used.Release();
        var next = SharedDataSources.For(key, Base(db.AppConnectionString), Signer, service, ttl, ReaperKit.NowMs + (ttl / 10) + 1);
        next.Release();

        Assert.NotSame(used, next);
        Assert.True(used.IsDisposed);
        Assert.Equal(1, await client.ExecuteScalarAsync(new AequorStatement("SELECT 1"), default));
    }

    [Fact]
    public async Task A_backend_left_with_the_startup_lease_is_reaped_once_that_lease_expired_and_not_before()
    {
        await using var kit = new ReaperKit(db);
        var signer = new LeaseSigner(ReaperKit.Secret);
        var shared = SharedDataSources.For(Base(db.AppConnectionString), signer, kit.Service, 3_000, ReaperKit.NowMs);

        // A process frozen right after the startup packet: its backend carries the data source's lease.
        await using var frozen = shared.DataSource.CreateConnection();
        await frozen.OpenAsync();
        Assert.Equal(shared.StartupLease, await ClientTestKit.ApplicationNameOfAsync(db.AdminConnectionString, frozen.ProcessID));

        await using var reaper = await kit.ReaperConnectionAsync();
        var early = await ReaperPass.RunAsync(reaper, kit.Options(minIdleSec: 0));
        Assert.DoesNotContain(frozen.ProcessID, early.KilledPids);

        await Task.Delay(TimeSpan.FromMilliseconds(shared.StartupLeaseExpiresAtMs - ReaperKit.NowMs + 500));
        var late = await ReaperPass.RunAsync(reaper, kit.Options(minIdleSec: 0));
        Assert.Contains(frozen.ProcessID, late.KilledPids);
    }
}
