using Npgsql;

namespace Aequor.Engine.Tests;

/// <summary>The harness gives what the reaper tests rely on: an app role that can signal its peers but not a superuser.</summary>
[Collection(PostgresCollection.Name)]
public sealed class HarnessTests(PostgresFixture db)
{
    [Fact]
    public async Task App_role_terminates_another_app_backend_and_it_is_gone()
    {
        await using var victim = await db.OpenAsync(db.AppConnectionString, "harness-victim");
        await using var killer = await db.OpenAsync(db.AppConnectionString);
        var pid = victim.ProcessID;

        await using (var cmd = new NpgsqlCommand("SELECT pg_terminate_backend($1)", killer))
        {
            cmd.Parameters.Add(new NpgsqlParameter { Value = pid });
            Assert.True((bool)(await cmd.ExecuteScalarAsync())!);
        }

        Assert.True(await GoneWithinAsync(killer, pid, TimeSpan.FromSeconds(5)));
    }

    [Fact]
    public async Task App_role_cannot_terminate_a_superuser_backend()
    {
        await using var admin = await db.OpenAsync(db.AdminConnectionString, "harness-admin");
        await using var app = await db.OpenAsync(db.AppConnectionString);
        await using var cmd = new NpgsqlCommand("SELECT pg_terminate_backend($1)", app);
        cmd.Parameters.Add(new NpgsqlParameter { Value = admin.ProcessID });

        var ex = await Assert.ThrowsAsync<PostgresException>(() => cmd.ExecuteScalarAsync());
        Assert.Equal("42501", ex.SqlState);
        await using var check = new NpgsqlCommand("SELECT 1", admin);
        Assert.Equal(1, (int)(await check.ExecuteScalarAsync())!);
    }

    [Fact]
    public async Task App_role_is_not_a_superuser_and_holds_pg_signal_backend()
    {
        await using var app = await db.OpenAsync(db.AppConnectionString);
        await using var cmd = new NpgsqlCommand(
            "SELECT rolsuper::text || ',' || pg_has_role(current_user, 'pg_signal_backend', 'MEMBER')::text FROM pg_roles WHERE rolname = current_user", app);
        Assert.Equal("false,true", (string)(await cmd.ExecuteScalarAsync())!);
    }

    internal static async Task<bool> GoneWithinAsync(NpgsqlConnection observer, int pid, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline)
        {
            await using var cmd = new NpgsqlCommand("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", observer);
            cmd.Parameters.Add(new NpgsqlParameter { Value = pid });
            if ((long)(await cmd.ExecuteScalarAsync())! == 0)
            {
                return true;
            }

            await Task.Delay(50);
        }

        return false;
    }
}
