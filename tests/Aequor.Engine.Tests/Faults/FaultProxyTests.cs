using Npgsql;

namespace Aequor.Engine.Tests.Faults;

/// <summary>The proxy itself does what the fault tests rely on, seen through plain Npgsql.</summary>
[Collection(PostgresCollection.Name)]
public sealed class FaultProxyTests(PostgresFixture db)
{
    private FaultProxy NewProxy()
    {
        var b = new NpgsqlConnectionStringBuilder(db.AppConnectionString);
        return new FaultProxy(b.Host!, b.Port);
    }

    [Fact]
    public async Task Forwards_then_a_reset_breaks_the_connection()
    {
        await using var proxy = NewProxy();
        await using var conn = await db.OpenAsync(proxy.Rewrite(db.AppConnectionString));
        await using (var ok = new NpgsqlCommand("SELECT 41 + 1", conn))
        {
            Assert.Equal(42, (int)(await ok.ExecuteScalarAsync())!);
        }

        proxy.ResetAll();
        await using var cmd = new NpgsqlCommand("SELECT 1", conn);
        await Assert.ThrowsAnyAsync<NpgsqlException>(() => cmd.ExecuteScalarAsync());
    }

    [Fact]
    public async Task A_black_hole_ends_in_a_command_timeout_not_a_hang()
    {
        await using var proxy = NewProxy();
        var b = new NpgsqlConnectionStringBuilder(proxy.Rewrite(db.AppConnectionString)) { CommandTimeout = 1, CancellationTimeout = 500, Timeout = 2 };
        await using var conn = await db.OpenAsync(b.ConnectionString);
        proxy.BlackHole = true;
        await using var cmd = new NpgsqlCommand("SELECT 1", conn);
        var started = DateTime.UtcNow;
        // Npgsql gives up after CommandTimeout, then spends up to Timeout on a cancel request the black hole also eats.
        await Assert.ThrowsAnyAsync<NpgsqlException>(() => cmd.ExecuteScalarAsync());
        var elapsed = DateTime.UtcNow - started;
        Assert.True(elapsed < TimeSpan.FromSeconds(15), $"took {elapsed}");
    }

    [Fact]
    public async Task A_delay_slows_but_keeps_the_connection()
    {
        await using var proxy = NewProxy();
        await using var conn = await db.OpenAsync(proxy.Rewrite(db.AppConnectionString));
        proxy.Delay = TimeSpan.FromMilliseconds(200);
        await using var cmd = new NpgsqlCommand("SELECT 7", conn);
        var started = DateTime.UtcNow;
        Assert.Equal(7, (int)(await cmd.ExecuteScalarAsync())!);
        Assert.True(DateTime.UtcNow - started >= TimeSpan.FromMilliseconds(190));
    }
}
