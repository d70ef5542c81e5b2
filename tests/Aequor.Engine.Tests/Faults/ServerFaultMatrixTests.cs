using System.Collections.Concurrent;
using Aequor.TestServer;
using Npgsql;
using Xunit.Abstractions;

namespace Aequor.Engine.Tests.Faults;

/// <summary>
/// The fault matrix's server cases: restarts, fast and immediate, and a full max_connections, on a cluster of
/// their own. Each row names the fault, what the user must see, and how often the unique key is there
/// afterwards; as in FaultMatrixTests, nothing may reach the unhandled-exception events and the same client
/// must work afterwards. docs/client.md ("Fault matrix") lists every case of both classes.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class ServerFaultMatrixTests(OwnServerFixture own, ITestOutputHelper output) : IClassFixture<OwnServerFixture>
{
    private const int MinBackoff = 100;
    private const int MaxBackoff = 1_000;

    public enum ServerFault
    {
        RestartFastWhileIdle,
        StoppedFastInsertMadeWhileDown,
        RestartFastMidStatement,
        RestartFastMidStatementIdempotent,
        RestartImmediateWhileIdle,
        RestartImmediateWhileIdleIdempotent,
        RestartImmediateMidStatement,
        RestartImmediateMidStatementIdempotent,
        MaxConnectionsSlotFreed,
        MaxConnectionsFull,
    }

    public enum Seen
    {
        Success,
        OutcomeUnknown,
        ConnectFailed,
    }

    [Theory]
    [InlineData(ServerFault.RestartFastWhileIdle, Seen.Success, 1)]
    [InlineData(ServerFault.StoppedFastInsertMadeWhileDown, Seen.Success, 1)]
    [InlineData(ServerFault.RestartFastMidStatement, Seen.OutcomeUnknown, 0)]
    [InlineData(ServerFault.RestartFastMidStatementIdempotent, Seen.Success, 1)]
    [InlineData(ServerFault.RestartImmediateWhileIdle, Seen.OutcomeUnknown, 0)]
    [InlineData(ServerFault.RestartImmediateWhileIdleIdempotent, Seen.Success, 1)]
    [InlineData(ServerFault.RestartImmediateMidStatement, Seen.OutcomeUnknown, 0)]
    [InlineData(ServerFault.RestartImmediateMidStatementIdempotent, Seen.Success, 1)]
    [InlineData(ServerFault.MaxConnectionsSlotFreed, Seen.Success, 1)]
    [InlineData(ServerFault.MaxConnectionsFull, Seen.ConnectFailed, 0)]
    public async Task A_server_fault_gives_one_clear_outcome_no_duplicate_write_and_a_working_client(ServerFault fault, Seen expected, long keyCount)
    {
        await own.WaitQuietAsync();
        var table = "server_fault_" + fault.ToString().ToLowerInvariant();
        // The cluster runs with synchronous_commit off: an immediate restart would lose a table whose commit
        // still sat in the WAL buffers. On, the commit is written out (fsync off keeps it in the OS, which is
        // enough to survive a server crash).
        await own.AdminScalarAsync<object>($"SET synchronous_commit = on; DROP TABLE IF EXISTS {table}; CREATE TABLE {table} (k int PRIMARY KEY); GRANT ALL ON {table} TO {TestPostgres.AppRole};");
        using var watch = new FaultWatch();
        var retries = fault == ServerFault.MaxConnectionsFull ? 3 : 10;
        await using var client = new AequorClient(new AequorClientOptions
        {
            ConnectionString = own.Server.AppConnectionString,
            CoordinationSecret = ClientTestKit.Secret,
            ServiceName = "server-fault-matrix",
            Reaper = false,
            Retries = retries,
            MinBackoff = MinBackoff,
            MaxBackoff = MaxBackoff,
        });
        var reconnects = new ConcurrentQueue<AequorReconnectEvent>();
        client.OnReconnect += (_, e) => reconnects.Enqueue(e);
        var fillers = fault is ServerFault.MaxConnectionsSlotFreed or ServerFault.MaxConnectionsFull ? await own.FillAsync() : [];
        if (fault == ServerFault.MaxConnectionsSlotFreed)
        {
            // Frees a slot while the client backs off from its second refusal.
            client.OnReconnect += (_, _) =>
            {
                if (reconnects.Count == 2)
                {
                    fillers[^1].Dispose();
                    fillers.RemoveAt(fillers.Count - 1);
                }
            };
        }

        Exception? seen;
        try
        {
            seen = await FaultWatch.CaptureAsync(fault switch
            {
                ServerFault.RestartFastWhileIdle => RestartWhileIdleThenInsert(client, table, "fast", idempotent: false),
                ServerFault.StoppedFastInsertMadeWhileDown => StopThenInsertWhileDown(client, table),
                ServerFault.RestartFastMidStatement => RestartDuringInsert(client, table, "fast", idempotent: false),
                ServerFault.RestartFastMidStatementIdempotent => RestartDuringInsert(client, table, "fast", idempotent: true),
                ServerFault.RestartImmediateWhileIdle => RestartWhileIdleThenInsert(client, table, "immediate", idempotent: false),
                ServerFault.RestartImmediateWhileIdleIdempotent => RestartWhileIdleThenInsert(client, table, "immediate", idempotent: true),
                ServerFault.RestartImmediateMidStatement => RestartDuringInsert(client, table, "immediate", idempotent: false),
                ServerFault.RestartImmediateMidStatementIdempotent => RestartDuringInsert(client, table, "immediate", idempotent: true),
                // A full server: the insert is the client's first call, so its connect meets the refusals.
                _ => client.ExecuteNonQueryAsync(Insert(table, idempotent: false), default),
            });
        }
        finally
        {
            await own.ReleaseAsync(fillers);
        }

        AssertSeen(fault, expected, seen, retries);
        AssertHow(fault, client, reconnects.ToList(), retries);

        // The same client works afterwards, and the key is there as often as the outcome allows.
        Assert.Equal(1, await client.ExecuteNonQueryAsync(new AequorStatement($"INSERT INTO {table} VALUES (2)"), default));
        var count = await own.AdminScalarAsync<long>($"SELECT count(*) FROM {table} WHERE k = 1");
        output.WriteLine($"{fault}: the user saw {FaultWatch.Describe(seen)}; key rows afterwards: {count}");
        Assert.Equal(keyCount, count);
        watch.AssertNothingEscaped();
    }

    private static void AssertSeen(ServerFault fault, Seen expected, Exception? seen, int retries)
    {
        var described = $"{fault}: the user saw {FaultWatch.Describe(seen)}";
        switch (expected)
        {
            case Seen.Success:
                Assert.True(seen is null, described);
                break;
            case Seen.OutcomeUnknown:
                Assert.True(seen is AequorOutcomeUnknownException, described);
                Assert.Contains("outcome is unknown", seen.Message, StringComparison.Ordinal);
                break;
            default:
                var failed = Assert.IsType<AequorConnectFailedException>(seen, exactMatch: true);
                Assert.Equal("53300", failed.SqlState);
                Assert.Contains($"after {retries + 1} attempt(s)", failed.Message, StringComparison.Ordinal);
                Assert.Equal(retries + 1, failed.Attempts); // Retries + 1, not nested statement × connect retries
                break;
        }
    }

    /// <summary>How the client got to that outcome, where the case pins it down.</summary>
    private static void AssertHow(ServerFault fault, AequorClient client, List<AequorReconnectEvent> reconnects, int retries)
    {
        switch (fault)
        {
            case ServerFault.RestartFastWhileIdle:
                // The probe read the FATAL a fast shutdown leaves on an idle connection: replaced, not retried.
                Assert.Equal(1, client.Counters.Reconnects);
                Assert.Equal(0, client.Counters.Retries);
                break;
            case ServerFault.StoppedFastInsertMadeWhileDown:
                Assert.Contains(reconnects, e => e.Retries >= 1); // refused while down, then retried with a delay
                Assert.All(reconnects.Where(e => e.Retries >= 1), e => Assert.InRange(e.Delay.TotalMilliseconds, MinBackoff, MaxBackoff));
                break;
            case ServerFault.RestartFastMidStatement or ServerFault.RestartImmediateWhileIdle or ServerFault.RestartImmediateMidStatement:
                Assert.Equal(0, client.Counters.Retries); // a write that may have run is never sent again
                break;
            case ServerFault.RestartImmediateWhileIdleIdempotent:
                Assert.Equal(1, client.Counters.Retries);
                break;
            case ServerFault.RestartFastMidStatementIdempotent or ServerFault.RestartImmediateMidStatementIdempotent:
                Assert.True(client.Counters.Retries >= 1, $"{client.Counters.Retries} retries");
                break;
            case ServerFault.MaxConnectionsSlotFreed:
                Assert.True(reconnects.Count >= 2, $"{reconnects.Count} reconnects");
                var previous = (double)MinBackoff;
                foreach (var e in reconnects)
                {
                    Assert.Equal("53300", (e.Error as PostgresException)?.SqlState);
                    Assert.InRange(e.Delay.TotalMilliseconds, MinBackoff, Math.Min(MaxBackoff, previous * 3));
                    previous = e.Delay.TotalMilliseconds;
                }

                Assert.Equal(reconnects.Count, client.Counters.Retries);
                Assert.Equal(1, client.Counters.Connects);
                break;
            case ServerFault.MaxConnectionsFull:
                Assert.Equal(retries, reconnects.Count);
                Assert.Equal(retries, client.Counters.Retries);
                Assert.Equal(0, client.Counters.Connects);
                break;
        }
    }

    private static AequorStatement Insert(string table, bool idempotent) => idempotent
        ? new AequorStatement($"INSERT INTO {table} VALUES (1) ON CONFLICT DO NOTHING") { Idempotent = true }
        : new AequorStatement($"INSERT INTO {table} VALUES (1)");

    private async Task RestartWhileIdleThenInsert(AequorClient client, string table, string mode, bool idempotent)
    {
        await client.ExecuteScalarAsync(new AequorStatement("SELECT 1"), default);
        await own.Cluster.RestartAsync(mode);
        // Only a statement made DefaultProbeAfterIdleMs after the previous one carries the probe that can prove
        // the old connection dead before the statement ran.
        await Task.Delay(AequorClient.DefaultProbeAfterIdleMs + 100);
        await client.ExecuteNonQueryAsync(Insert(table, idempotent), default);
    }

    private async Task StopThenInsertWhileDown(AequorClient client, string table)
    {
        await client.ExecuteScalarAsync(new AequorStatement("SELECT 1"), default);
        await own.Cluster.StopAsync("fast");
        var restart = Task.Run(async () =>
        {
            await Task.Delay(1_500);
            await own.Cluster.StartAgainAsync();
        });
        try
        {
            await Task.Delay(AequorClient.DefaultProbeAfterIdleMs + 100);
            await client.ExecuteNonQueryAsync(Insert(table, idempotent: false), default);
        }
        finally
        {
            // Whatever the insert saw, the server is up again for the rest of the case and the next one.
            await restart;
        }
    }

    private async Task RestartDuringInsert(AequorClient client, string table, string mode, bool idempotent)
    {
        await client.ExecuteScalarAsync(new AequorStatement("SELECT 1"), default);
        var pid = client.BackendPid!.Value;
        var startedAt = await own.AdminScalarAsync<DateTime>("SELECT pg_postmaster_start_time()");
        // One statement, so the restart lands inside the keyed insert itself. It sleeps only on the server as it
        // was before the restart: a loaded machine has 20 s to deliver the fault, and a retry does not wait.
        var insert = new AequorStatement(
            $"INSERT INTO {table} SELECT 1 FROM pg_sleep(CASE WHEN pg_postmaster_start_time() = $1 THEN 20 ELSE 0 END)"
            + (idempotent ? " ON CONFLICT DO NOTHING" : string.Empty))
        {
            PositionalParameters = [startedAt],
            Idempotent = idempotent,
        };
        var running = client.ExecuteNonQueryAsync(insert, default);
        await ClientTestKit.WaitActiveAsync(own.Server.AdminConnectionString, pid, "%pg_sleep%");
        await own.Cluster.RestartAsync(mode);
        await running;
    }
}
