using System.Net.Sockets;
using Npgsql;
using Testcontainers.PostgreSql;

namespace Aequor.TestServer;

/// <summary>
/// The real PostgreSQL every test run uses, in this order: <c>AEQUOR_TEST_CONNECTION</c>, a
/// Testcontainers container where a Docker engine answers, else a throwaway local cluster.
/// Provides a superuser (fixtures) and the non-superuser app role the reaper really runs as.
/// </summary>
public sealed class TestPostgres : IAsyncDisposable
{
    public const string ConnectionVariable = "AEQUOR_TEST_CONNECTION";
    public const string AppConnectionVariable = "AEQUOR_TEST_APP_CONNECTION";
    public const string AppRole = "aequor_app";
    public const string AppPassword = "aequor-app-pw";
    public const string Database = "aequor_test";

    private readonly IAsyncDisposable? _owned;

    private TestPostgres(string admin, string app, string source, LocalCluster? cluster, IAsyncDisposable? owned)
    {
        AdminConnectionString = admin;
        AppConnectionString = app;
        Source = source;
        Cluster = cluster;
        _owned = owned;
    }

    /// <summary>Superuser, for fixtures and for what only a superuser may do.</summary>
    public string AdminConnectionString { get; }

    /// <summary>LOGIN, no superuser, member of pg_signal_backend: what the reaper runs as.</summary>
    public string AppConnectionString { get; }

    public string Source { get; }

    /// <summary>Set when this run owns the server (it can restart it); null for an external one.</summary>
    public LocalCluster? Cluster { get; }

    public const string MissingServerMessage =
        "No PostgreSQL server is available for the tests. Fix one of: install the server binaries " +
        "('apt-get install postgresql'), start a Docker engine, or set AEQUOR_TEST_CONNECTION to a " +
        "superuser connection string of an existing server.";

    /// <summary>Uses the server the environment names, else starts one.</summary>
    public static async Task<TestPostgres> StartAsync(int maxConnections = 100, CancellationToken cancellationToken = default)
    {
        var given = Environment.GetEnvironmentVariable(ConnectionVariable);
        if (!string.IsNullOrWhiteSpace(given))
        {
            var app = Environment.GetEnvironmentVariable(AppConnectionVariable);
            if (!string.IsNullOrWhiteSpace(app))
            {
                return new TestPostgres(given, app, "environment", null, null);
            }

            var ready = await PrepareAsync(given, cancellationToken).ConfigureAwait(false);
            return new TestPostgres(ready.Admin, ready.App, "environment", null, null);
        }

        if (await DockerAnswersAsync().ConfigureAwait(false))
        {
            var container = new PostgreSqlBuilder("postgres:15-alpine")
                .WithCommand("-c", "fsync=off", "-c", $"max_connections={maxConnections}")
                .Build();
            await container.StartAsync(cancellationToken).ConfigureAwait(false);
            var ready = await PrepareAsync(container.GetConnectionString(), cancellationToken).ConfigureAwait(false);
            return new TestPostgres(ready.Admin, ready.App, "testcontainers", null, container);
        }

        return await StartLocalAsync(maxConnections, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>A cluster of our own (for restarts, a small max_connections); throws when there are no server binaries.</summary>
    public static async Task<TestPostgres> StartLocalAsync(int maxConnections = 100, CancellationToken cancellationToken = default)
    {
        var bin = LocalCluster.FindServerBinaries() ?? throw new TestServerException(MissingServerMessage);
        var cluster = await LocalCluster.StartAsync(bin, maxConnections).ConfigureAwait(false);
        try
        {
            var ready = await PrepareAsync(cluster.AdminConnectionString, cancellationToken).ConfigureAwait(false);
            return new TestPostgres(ready.Admin, ready.App, "local cluster " + cluster.Root, cluster, cluster);
        }
        catch
        {
            await cluster.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    public static bool CanStartLocal => LocalCluster.FindServerBinaries() is not null;

    /// <summary>Creates the app role and its database on a server we reach as a superuser.</summary>
    private static async Task<(string Admin, string App)> PrepareAsync(string superuser, CancellationToken ct)
    {
        var builder = new NpgsqlConnectionStringBuilder(superuser) { Pooling = false };
        await using (var conn = new NpgsqlConnection(builder.ConnectionString))
        {
            await conn.OpenAsync(ct).ConfigureAwait(false);
            await ExecAsync(conn, $"""
                DO $$ BEGIN
                  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{AppRole}') THEN
                    CREATE ROLE {AppRole} LOGIN PASSWORD '{AppPassword}' NOSUPERUSER NOCREATEDB NOCREATEROLE;
                  END IF;
                END $$;
                GRANT pg_signal_backend TO {AppRole};
                """, ct).ConfigureAwait(false);
            var exists = await ScalarAsync(conn, $"SELECT count(*) FROM pg_database WHERE datname = '{Database}'", ct).ConfigureAwait(false);
            if (Convert.ToInt64(exists, System.Globalization.CultureInfo.InvariantCulture) == 0)
            {
                await ExecAsync(conn, $"CREATE DATABASE {Database} OWNER {AppRole}", ct).ConfigureAwait(false);
            }
        }

        builder.Database = Database;
        var app = new NpgsqlConnectionStringBuilder(builder.ConnectionString) { Username = AppRole, Password = AppPassword };
        return (builder.ConnectionString, app.ConnectionString);
    }

    private static async Task ExecAsync(NpgsqlConnection conn, string sql, CancellationToken ct)
    {
        await using var cmd = new NpgsqlCommand(sql, conn);
        await cmd.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
    }

    private static async Task<object?> ScalarAsync(NpgsqlConnection conn, string sql, CancellationToken ct)
    {
        await using var cmd = new NpgsqlCommand(sql, conn);
        return await cmd.ExecuteScalarAsync(ct).ConfigureAwait(false);
    }

    /// <summary>Asks the Docker socket for /_ping; without it the Testcontainers builder only fails after a while.</summary>
    private static async Task<bool> DockerAnswersAsync()
    {
        var host = Environment.GetEnvironmentVariable("DOCKER_HOST");
        string? socketPath = null;
        if (string.IsNullOrEmpty(host))
        {
            socketPath = "/var/run/docker.sock";
        }
        else if (host.StartsWith("unix://", StringComparison.Ordinal))
        {
            socketPath = host["unix://".Length..];
        }
        else
        {
            // A TCP Docker host: let Testcontainers try it.
            return true;
        }

        if (!File.Exists(socketPath))
        {
            return false;
        }

        try
        {
            using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(2));
            await socket.ConnectAsync(new UnixDomainSocketEndPoint(socketPath), cts.Token).ConfigureAwait(false);
            await socket.SendAsync("GET /_ping HTTP/1.0\r\n\r\n"u8.ToArray(), SocketFlags.None, cts.Token).ConfigureAwait(false);
            var buffer = new byte[64];
            var n = await socket.ReceiveAsync(buffer, SocketFlags.None, cts.Token).ConfigureAwait(false);
            return n > 0 && System.Text.Encoding.ASCII.GetString(buffer, 0, n).Contains(" 200 ", StringComparison.Ordinal);
        }
        catch (Exception ex) when (ex is SocketException or OperationCanceledException or IOException)
        {
            return false;
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_owned is not null)
        {
            await _owned.DisposeAsync().ConfigureAwait(false);
        }
    }
}
