using Npgsql;

namespace Aequor.Engine.Tests;

[Collection(PostgresCollection.Name)]
public sealed class AequorClientTests(PostgresFixture db)
{
    internal const string Secret = "test-coordination-secret-0123456789";

    private AequorClient NewClient(string service = "client-tests") => new(new AequorClientOptions
    {
        ConnectionString = db.AppConnectionString,
        CoordinationSecret = Secret,
        ServiceName = service,
        Reaper = false,
    });

    [Fact]
    public async Task The_lease_is_in_pg_stat_activity_after_connect_and_verifies()
    {
        await using var client = NewClient();
        await client.ConnectAsync(CancellationToken.None);

        var seen = await db.ScalarAsync<string>("SELECT application_name FROM pg_stat_activity WHERE pid = $1", client.BackendPid!.Value);
        Assert.Equal(client.ApplicationName, seen);
        Assert.True(new LeaseSigner(Secret).Verify(seen));
        Assert.True(Lease.TryParse(seen, out var lease));
        Assert.Equal("client-tests", lease.ServiceName);
        Assert.Equal(client.InstanceId, lease.InstanceId);
        Assert.InRange(lease.ExpiresAtMs - DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(), 80_000, 90_000);
    }

    [Fact]
    public async Task Rows_stream_with_positional_and_named_parameters_kept_as_values()
    {
        await using var client = NewClient();
        var hostile = "'; DROP TABLE x; --";
        var text = await client.ExecuteScalarAsync(new AequorStatement("SELECT $1::text") { PositionalParameters = [hostile] }, CancellationToken.None);
        Assert.Equal(hostile, text);
        var sum = await client.ExecuteScalarAsync(
            new AequorStatement("SELECT @a::int + @b::int") { NamedParameters = new Dictionary<string, object?> { ["a"] = 2, ["@b"] = 3 } },
            CancellationToken.None);
        Assert.Equal(5, sum);

        await using var reader = await client.ExecuteReaderAsync(new AequorStatement("SELECT g, NULL::text AS n FROM generate_series(1, 3) g"), CancellationToken.None);
        var rows = new List<object?[]>();
        while (await reader.ReadAsync(CancellationToken.None))
        {
            rows.Add([reader.GetValue(0), reader.GetValue(1)]);
        }

        Assert.Equal(3, rows.Count);
        Assert.All(rows, r => Assert.Null(r[1]));
    }

    [Fact]
    public async Task Optional_without_a_secret_is_a_plain_connection_and_required_without_one_is_refused()
    {
        var ex = Assert.Throws<AequorConfigurationException>(() => new AequorClient(new AequorClientOptions { ConnectionString = db.AppConnectionString }));
        Assert.Contains("coordination secret is required", ex.Message, StringComparison.Ordinal);

        await using var plain = new AequorClient(new AequorClientOptions { ConnectionString = db.AppConnectionString, LeaseMode = LeaseMode.Optional });
        await plain.ConnectAsync(CancellationToken.None);
        Assert.False(plain.IsLeased);
        var seen = await db.ScalarAsync<string>("SELECT application_name FROM pg_stat_activity WHERE pid = $1", plain.BackendPid!.Value);
        Assert.False(Lease.TryParse(seen, out _));
    }

    [Fact]
    public void ToString_never_shows_the_password_or_secret()
    {
        var client = NewClient();
        var text = client.ToString();
        Assert.DoesNotContain(Secret, text, StringComparison.Ordinal);
        Assert.DoesNotContain(new NpgsqlConnectionStringBuilder(db.AppConnectionString).Password!, text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_void_column_reads_as_null()
    {
        await using var client = NewClient();
        Assert.Null(await client.ExecuteScalarAsync(new AequorStatement("SELECT pg_sleep(0)"), CancellationToken.None));
        await using var reader = await client.ExecuteReaderAsync(new AequorStatement("SELECT pg_sleep(0), 1 AS one"), CancellationToken.None);
        Assert.True(await reader.ReadAsync(CancellationToken.None));
        Assert.Null(reader.GetValue(0));
        Assert.Equal(1, reader.GetValue(1));
    }
}
