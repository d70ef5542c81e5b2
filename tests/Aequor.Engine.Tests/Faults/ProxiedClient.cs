using Npgsql;

namespace Aequor.Engine.Tests.Faults;

/// <summary>
/// A client that reaches the test server through a fault proxy of its own, with short connect and cancel
/// timeouts and short backoffs, so a fault shows within a test's time. The caller disposes both.
/// </summary>
internal static class ProxiedClient
{
    public static (FaultProxy Proxy, AequorClient Client) Create(PostgresFixture db, string serviceName, int commandTimeout = 30)
    {
        var b = new NpgsqlConnectionStringBuilder(db.AppConnectionString);
        var proxy = new FaultProxy(b.Host!, b.Port);
        var cs = new NpgsqlConnectionStringBuilder(proxy.Rewrite(db.AppConnectionString)) { CancellationTimeout = 500, Timeout = 3 }.ConnectionString;
        var client = new AequorClient(new AequorClientOptions
        {
            ConnectionString = cs,
            CoordinationSecret = ClientTestKit.Secret,
            ServiceName = serviceName,
            Reaper = false,
            MinBackoff = 20,
            MaxBackoff = 100,
            CommandTimeout = commandTimeout,
        });
        return (proxy, client);
    }
}
