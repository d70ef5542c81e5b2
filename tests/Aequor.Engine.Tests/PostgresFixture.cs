using Aequor.TestServer;
using Npgsql;

namespace Aequor.Engine.Tests;

/// <summary>One real PostgreSQL for the test run: the one build.ps1 passes down, else one we start.</summary>
public sealed class PostgresFixture : IAsyncLifetime
{
    private TestPostgres? _server;

    public TestPostgres Server => _server ?? throw new InvalidOperationException("The fixture has not started.");

    public string AdminConnectionString => Server.AdminConnectionString;

    public string AppConnectionString => Server.AppConnectionString;

    public async Task InitializeAsync() => _server = await TestPostgres.StartAsync();

    public async Task DisposeAsync()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }
    }

    public async Task<NpgsqlConnection> OpenAsync(string connectionString, string? applicationName = null)
    {
        var b = new NpgsqlConnectionStringBuilder(connectionString) { Pooling = false };
        if (applicationName is not null)
        {
            b.ApplicationName = applicationName;
        }

        var conn = new NpgsqlConnection(b.ConnectionString);
        await conn.OpenAsync();
        return conn;
    }

    public async Task<T> ScalarAsync<T>(string sql, params object[] args)
    {
        await using var conn = await OpenAsync(AdminConnectionString);
        await using var cmd = new NpgsqlCommand(sql, conn);
        foreach (var a in args)
        {
            cmd.Parameters.Add(new NpgsqlParameter { Value = a });
        }

        return (T)(await cmd.ExecuteScalarAsync())!;
    }
}

[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class PostgresCollection : ICollectionFixture<PostgresFixture>
{
    public const string Name = "postgres";
}
