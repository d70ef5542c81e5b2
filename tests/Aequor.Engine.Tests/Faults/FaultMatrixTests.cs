using Npgsql;
using Xunit.Abstractions;

namespace Aequor.Engine.Tests.Faults;

/// <summary>
/// The fault matrix: each fault, through the loopback proxy or the server itself, during a unique-key
/// insert. For every case: what the user sees is a success or one clear Aequor error, the key is present at
/// most once, nothing reaches the unhandled-exception events, and the same client works afterwards.
/// Server restarts, fast and immediate, and a full max_connections need a cluster of their own: they are in
/// ServerFaultMatrixTests. docs/client.md ("Fault matrix") lists every case with what the user sees.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class FaultMatrixTests(PostgresFixture db, ITestOutputHelper output)
{
    public enum Fault
    {
        ResetWhileIdle,
        ResetMidStatement,
        BlackHoleMidStatement,
        TerminatedInsideTransaction,
    }

    [Theory]
    [InlineData(Fault.ResetWhileIdle)]
    [InlineData(Fault.ResetMidStatement)]
    [InlineData(Fault.BlackHoleMidStatement)]
    [InlineData(Fault.TerminatedInsideTransaction)]
    public async Task A_fault_gives_one_clear_outcome_no_duplicate_write_and_a_working_client(Fault fault)
    {
        var table = "fault_" + fault.ToString().ToLowerInvariant();
        await ExecAdminAsync($"DROP TABLE IF EXISTS {table}; CREATE TABLE {table} (k int PRIMARY KEY); GRANT ALL ON {table} TO aequor_app;");
        using var watch = new FaultWatch();
        var (proxy, client) = ProxiedClient.Create(db, "fault-matrix", commandTimeout: fault == Fault.BlackHoleMidStatement ? 1 : 30);
        await using var disposeProxy = proxy;
        await using var disposeClient = client;
        await client.ExecuteScalarAsync(new AequorStatement("SELECT 1"), default);
        var insert = new AequorStatement($"INSERT INTO {table} VALUES (1); SELECT pg_sleep(0.8)");
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var seen = await FaultWatch.CaptureAsync(fault switch
        {
            Fault.ResetWhileIdle => ResetThen(proxy, () => client.ExecuteNonQueryAsync(new AequorStatement($"INSERT INTO {table} VALUES (1)"), default)),
            Fault.ResetMidStatement => During(() => client.ExecuteNonQueryAsync(insert, default), proxy.ResetAll),
            Fault.BlackHoleMidStatement => During(() => client.ExecuteNonQueryAsync(insert, default), () => proxy.BlackHole = true),
            _ => InsideTransactionThenTerminate(client, table),
        });

        // Never a hang: the black hole ends by CommandTimeout (1 s) and the cancel's own timeout (0.5 s).
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), $"{fault}: the call took {clock.Elapsed}");

        // One clear outcome: success, or an Aequor error that says what happened.
        if (seen is not null)
        {
            Assert.True(
                seen is AequorOutcomeUnknownException or AequorTransactionLostException,
                $"{fault}: the user saw {FaultWatch.Describe(seen)}");
            Assert.True(seen.Message.Contains("unknown", StringComparison.Ordinal) || seen.Message.Contains("transaction", StringComparison.Ordinal), seen.Message);
        }

        proxy.BlackHole = false;
        if (client.InTransaction)
        {
            await client.RollbackAsync(default);
        }

        // The same client works afterwards, and the key is there at most once (0 after a lost transaction).
        Assert.Equal(1, await client.ExecuteNonQueryAsync(new AequorStatement($"INSERT INTO {table} VALUES (2)"), default));
        var count = await db.ScalarAsync<long>($"SELECT count(*) FROM {table} WHERE k = 1");
        output.WriteLine($"{fault}: the user saw {FaultWatch.Describe(seen)}; key rows afterwards: {count}");
        Assert.InRange(count, 0, 1);
        if (fault == Fault.TerminatedInsideTransaction)
        {
            Assert.Equal(0, count);
        }

        watch.AssertNothingEscaped();
    }

    private static async Task ResetThen(FaultProxy proxy, Func<Task<int>> statement)
    {
        proxy.ResetAll();
        await Task.Delay(50);
        await statement();
    }

    private static async Task During(Func<Task<int>> statement, Action fault)
    {
        var running = statement();
        await Task.Delay(300);
        fault();
        await running;
    }

    private async Task InsideTransactionThenTerminate(AequorClient client, string table)
    {
        await client.BeginTransactionAsync(default);
        await client.ExecuteNonQueryAsync(new AequorStatement($"INSERT INTO {table} VALUES (1)"), default);
        await ExecAdminAsync($"SELECT pg_terminate_backend({client.BackendPid})");
        await Task.Delay(200);
        await client.ExecuteNonQueryAsync(new AequorStatement($"INSERT INTO {table} VALUES (3)"), default);
    }

    private async Task ExecAdminAsync(string sql)
    {
        await using var conn = await db.OpenAsync(db.AdminConnectionString);
        await using var cmd = new NpgsqlCommand(sql, conn);
        await cmd.ExecuteNonQueryAsync();
    }
}
