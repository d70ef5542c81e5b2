using Aequor.TestServer;
using Npgsql;

namespace Aequor.Engine.Tests;

/// <summary>
/// What only a server of our own can show: restarts and a full max_connections. Each test starts a throwaway
/// cluster (TestPostgres.StartLocalAsync) and removes it afterwards.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class ClientServerRestartTests
{
    private static AequorClient NewClient(TestPostgres server, int retries, int minBackoff = 100, int maxBackoff = 1_000, int connectBudgetMs = 15_000) => new(new AequorClientOptions
    {
        ConnectionString = server.AppConnectionString,
        CoordinationSecret = ClientTestKit.Secret,
        ServiceName = "client-restart",
        Reaper = false,
        Retries = retries,
        MinBackoff = minBackoff,
        MaxBackoff = maxBackoff,
        MaxConnectRetryTimeMs = connectBudgetMs,
    });

    [Fact]
    public async Task After_a_fast_restart_the_next_statement_succeeds_within_the_budget()
    {
        const string mode = "fast";
        await using var server = await TestPostgres.StartLocalAsync();
        await using var client = NewClient(server, retries: 3);
        var pid = (int)(await client.ExecuteScalarAsync(new AequorStatement("SELECT pg_backend_pid()"), default))!;

        // A fast shutdown sends the idle backend a FATAL 57P01 before it exits; the probe sees it before the statement.
        await server.Cluster!.RestartAsync(mode);
        // A restart while the worker idles (a statement within DefaultProbeAfterIdleMs of the previous one
        // carries no probe: it gets an unknown outcome instead of a silent second run).
        await Task.Delay(AequorClient.DefaultProbeAfterIdleMs + 100);

        var started = DateTime.UtcNow;
        var newPid = (int)(await client.ExecuteScalarAsync(new AequorStatement("SELECT pg_backend_pid()"), default))!;
        Assert.NotEqual(pid, newPid);
        Assert.True(DateTime.UtcNow - started < TimeSpan.FromMilliseconds(client.Options.MaxQueryRetryTimeMs));
        Assert.Equal(1, client.Counters.Reconnects);
    }

    [Fact]
    public async Task After_an_immediate_restart_an_idempotent_statement_succeeds_and_a_write_is_an_unknown_outcome()
    {
        await using var server = await TestPostgres.StartLocalAsync();
        await using var client = NewClient(server, retries: 3);
        await client.ExecuteScalarAsync(new AequorStatement("SELECT 1"), default);

        // An immediate shutdown closes the socket without a word: nothing proves a statement did not run.
        await server.Cluster!.RestartAsync("immediate");
        await Task.Delay(AequorClient.DefaultProbeAfterIdleMs + 100);
        await Assert.ThrowsAsync<AequorOutcomeUnknownException>(() => client.ExecuteScalarAsync(new AequorStatement("SELECT 2"), default));
        Assert.Equal(3, await client.ExecuteScalarAsync(new AequorStatement("SELECT 3"), default));

        await server.Cluster.RestartAsync("immediate");
        await Task.Delay(AequorClient.DefaultProbeAfterIdleMs + 100);
        Assert.Equal(4, await client.ExecuteScalarAsync(new AequorStatement("SELECT 4") { Idempotent = true }, default));
        Assert.Equal(1, client.Counters.Retries);
    }

    [Fact]
    public async Task A_statement_made_while_the_server_restarts_waits_for_it_within_the_connect_budget()
    {
        await using var server = await TestPostgres.StartLocalAsync();
        await using var client = NewClient(server, retries: 10, minBackoff: 100, maxBackoff: 1_000);
        var reconnects = new List<AequorReconnectEvent>();
        client.OnReconnect += (_, e) => reconnects.Add(e);
        await client.ExecuteScalarAsync(new AequorStatement("SELECT 1"), default);

        await server.Cluster!.StopAsync("fast");
        var restart = Task.Run(async () =>
        {
            await Task.Delay(1_500);
            await server.Cluster.StartAgainAsync();
        });

        Assert.Equal(2, await client.ExecuteScalarAsync(new AequorStatement("SELECT 2") { Idempotent = true }, default));
        await restart;
        Assert.Contains(reconnects, e => e.Retries >= 1); // refused while down, then retried with a delay
        Assert.All(reconnects.Where(e => e.Retries >= 1), e => Assert.InRange(e.Delay.TotalMilliseconds, 100, 1_000));
    }

    [Fact]
    public async Task With_max_connections_full_connect_retries_with_jittered_delays_and_succeeds_once_a_slot_frees()
    {
        // max_connections 8 with superuser_reserved_connections 3: five slots for the app role.
        await using var server = await TestPostgres.StartLocalAsync(maxConnections: 8);
        var fillers = await FillAsync(server);
        try
        {
            await using var client = NewClient(server, retries: 6, minBackoff: 100, maxBackoff: 800);
            var reconnects = new List<AequorReconnectEvent>();
            client.OnReconnect += (_, e) =>
            {
                lock (reconnects)
                {
                    reconnects.Add(e);
                    if (reconnects.Count == 2)
                    {
                        // Free a slot while the client is backing off.
                        var last = fillers[^1];
                        fillers.RemoveAt(fillers.Count - 1);
                        last.Dispose();
                    }
                }
            };

            Assert.Equal(1, await client.ExecuteScalarAsync(new AequorStatement("SELECT 1"), default));
            Assert.InRange(reconnects.Count, 2, 3);
            var previous = 100.0;
            foreach (var e in reconnects)
            {
                Assert.Equal("53300", (e.Error as PostgresException)?.SqlState);
                Assert.InRange(e.Delay.TotalMilliseconds, 100, Math.Min(800, previous * 3));
                previous = e.Delay.TotalMilliseconds;
            }

            Assert.Equal(reconnects.Count, client.Counters.Retries);
            Assert.Equal(1, client.Counters.Connects);
        }
        finally
        {
            foreach (var f in fillers)
            {
                await f.DisposeAsync();
            }
        }
    }

    [Fact]
    public async Task With_max_connections_full_and_no_slot_freed_connect_fails_after_Retries_plus_one_attempts_with_53300()
    {
        await using var server = await TestPostgres.StartLocalAsync(maxConnections: 8);
        var fillers = await FillAsync(server);
        try
        {
            await using var client = NewClient(server, retries: 3, minBackoff: 50, maxBackoff: 200);
            var reconnects = 0;
            client.OnReconnect += (_, _) => reconnects++;
            var ex = await Assert.ThrowsAsync<AequorConnectFailedException>(() => client.ExecuteScalarAsync(new AequorStatement("SELECT 1"), default));

            Assert.Equal("53300", ex.SqlState);
            Assert.Contains("53300", ex.Message, StringComparison.Ordinal);
            Assert.Contains("after 4 attempt(s)", ex.Message, StringComparison.Ordinal);
            Assert.Equal(4, ex.Attempts); // Retries + 1, not nested statement × connect retries
            Assert.Equal(3, reconnects);
            Assert.Equal(3, client.Counters.Retries);
            Assert.Equal(0, client.Counters.Connects);
        }
        finally
        {
            foreach (var f in fillers)
            {
                await f.DisposeAsync();
            }
        }
    }

    /// <summary>Takes every slot the app role can get, with plain connections.</summary>
    private static async Task<List<NpgsqlConnection>> FillAsync(TestPostgres server)
    {
        var fillers = new List<NpgsqlConnection>();
        var cs = new NpgsqlConnectionStringBuilder(server.AppConnectionString) { Pooling = false, ApplicationName = "filler" }.ConnectionString;
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
