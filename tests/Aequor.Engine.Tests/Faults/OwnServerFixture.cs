using Aequor.TestServer;
using Npgsql;

namespace Aequor.Engine.Tests.Faults;

/// <summary>
/// A cluster of the server fault cases' own, which they restart and fill up; the shared fixture's server is
/// never touched. max_connections 8 minus superuser_reserved_connections 3 leaves five slots for the app role,
/// so filling it takes a handful of connections; the superuser still gets in to look.
/// </summary>
public sealed class OwnServerFixture : IAsyncLifetime
{
    private const string FillerName = "filler";

    private TestPostgres? _server;

    public TestPostgres Server => _server ?? throw new InvalidOperationException("The fixture has not started.");

    public LocalCluster Cluster => Server.Cluster ?? throw new InvalidOperationException("The server is not a local cluster.");

    public async Task InitializeAsync() => _server = await TestPostgres.StartLocalAsync(maxConnections: 8);

    public async Task DisposeAsync()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }
    }

    public Task<T?> AdminScalarAsync<T>(string sql, params object[] args) =>
        ClientTestKit.AdminScalarAsync<T>(Server.AdminConnectionString, sql, args);

    /// <summary>
    /// Waits until no client backend but the caller's is left: a backend exits a moment after its connection
    /// closes, and one left from the previous case would free a slot mid-case or count against a full server.
    /// </summary>
    public Task WaitQuietAsync() =>
        ClientTestKit.WaitUntilAsync(
            async () => await AdminScalarAsync<long>("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()") == 0,
            TimeSpan.FromSeconds(10), "the earlier cases' backends to exit");

    /// <summary>Closes the fillers and waits for their backends to exit, so their slots are really free.</summary>
    public async Task ReleaseAsync(List<NpgsqlConnection> fillers)
    {
        foreach (var f in fillers)
        {
            await f.DisposeAsync();
        }

        fillers.Clear();
        await ClientTestKit.WaitUntilAsync(
            async () => await AdminScalarAsync<long>($"SELECT count(*) FROM pg_stat_activity WHERE application_name = '{FillerName}'") == 0,
            TimeSpan.FromSeconds(10), "the fillers' backends to exit");
    }

    /// <summary>Takes every slot the app role can get, with plain connections.</summary>
    public async Task<List<NpgsqlConnection>> FillAsync()
    {
        var fillers = new List<NpgsqlConnection>();
        var cs = new NpgsqlConnectionStringBuilder(Server.AppConnectionString) { Pooling = false, ApplicationName = FillerName }.ConnectionString;
        while (true)
        {
            var c = new NpgsqlConnection(cs);
            try
            {
                await c.OpenAsync();
                fillers.Add(c);
            }
            catch (PostgresException ex) when (ex.SqlState == "53300")
            {
                await c.DisposeAsync();
                return fillers;
            }

            Assert.True(fillers.Count < 20, "max_connections did not fill up");
        }
    }
}
