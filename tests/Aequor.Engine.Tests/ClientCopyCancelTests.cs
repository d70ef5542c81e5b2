using System.Globalization;
using Aequor.Engine.Tests.Faults;
using Npgsql;

namespace Aequor.Engine.Tests;

/// <summary>
/// A cancelled token stops a COPY that the server holds up (a lock, a server that stopped reading the rows): nothing
/// written, the client usable after. The bounds below are far under the 30 s round-trip timeout that used to end such
/// a wait, and far over the cancel's own time: they fail a cancel that is not sent, never a slow machine.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class ClientCopyCancelTests(PostgresFixture db)
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(10);

    // A row the size of the socket buffers' share: the sender blocks after a few hundred rows, not a few million.
    private static readonly string Pad = new('x', 8 * 1024);

    private AequorClient NewClient() => new(new AequorClientOptions
    {
        ConnectionString = db.AppConnectionString,
        CoordinationSecret = ClientTestKit.Secret,
        ServiceName = "client-copy-cancel",
        Reaper = false,
        MinBackoff = 20,
        MaxBackoff = 200,
        CommandTimeout = 30,
    });

    private async Task<string> NewTableAsync()
    {
        var name = "copy_cancel_" + Guid.NewGuid().ToString("N")[..10];
        await using var setup = new AequorClient(new AequorClientOptions { ConnectionString = db.AppConnectionString, LeaseMode = LeaseMode.Optional, Reaper = false });
        await setup.ExecuteNonQueryAsync(new AequorStatement($"CREATE TABLE {name} (id int PRIMARY KEY, pad text)"), default);
        return name;
    }

    private Task<long> CountAsync(string table) => ClientTestKit.AdminScalarAsync<long>(db.AdminConnectionString, $"SELECT count(*) FROM {table}");

    /// <summary>Sends rows until the token stops it (or a million rows, which a server that reads no more never takes).</summary>
    private static Task Send(AequorTableWriter writer, CancellationToken cancellationToken) => Task.Run(() =>
    {
        for (var i = 1; i < 1_000_000; i++)
        {
            writer.WriteRow([i.ToString(CultureInfo.InvariantCulture), Pad], cancellationToken);
        }
    });

    /// <summary>Waits until rows stopped going out for a second: the sender is blocked on full socket buffers.</summary>
    private static async Task WaitBlockedAsync(AequorTableWriter writer, Task sending)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        var before = -1L;
        while (DateTime.UtcNow < deadline && !sending.IsCompleted)
        {
            await Task.Delay(1000);
            var now = writer.RowsWritten;
            if (now == before && now > 0)
            {
                return;
            }

            before = now;
        }

        Assert.Fail(sending.IsCompleted ? $"the sending ended: {sending.Exception}" : "the sending never blocked");
    }

    private static async Task<T> EndsWithinBoundAsync<T>(Task sending)
        where T : Exception
    {
        var done = await Task.WhenAny(sending, Task.Delay(Bound));
        Assert.True(ReferenceEquals(sending, done), $"the cancelled COPY had not ended after {Bound.TotalSeconds} s");
        return await Assert.ThrowsAnyAsync<T>(() => sending);
    }

    [Fact]
    public async Task A_cancelled_token_frees_a_row_blocked_on_a_server_that_reads_no_more_nothing_is_written_and_the_connection_is_kept()
    {
        var table = await NewTableAsync();
        await using var client = NewClient();
        await client.ConnectAsync(default);
        var pid = client.BackendPid!.Value;
        // Another transaction's uncommitted row 1: the COPY waits for it at its first rows, and reads no more.
        await using var locker = new NpgsqlConnection(db.AdminConnectionString);
        await locker.OpenAsync();
        await using var locking = await locker.BeginTransactionAsync();
        await using (var insert = new NpgsqlCommand($"INSERT INTO {table} (id) VALUES (1)", locker, locking))
        {
            await insert.ExecuteNonQueryAsync();
        }

        var events = new ClientTestKit.EventLog(client);
        using var cts = new CancellationTokenSource();
        var writer = client.OpenTableWriter(table, columns => columns, null, default);
        var sending = Send(writer, cts.Token);
        await WaitBlockedAsync(writer, sending);
        Assert.Equal(1L, await ClientTestKit.AdminScalarAsync<long>(db.AdminConnectionString,
            "SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND wait_event_type = 'Lock'", pid));

        await cts.CancelAsync();
        var cancelled = await EndsWithinBoundAsync<AequorCopyCancelledException>(sending);
        Assert.Contains("nothing was written", cancelled.Message, StringComparison.Ordinal);
        Assert.IsType<AequorCopyCancelledException>(Assert.Single(events.Of<AequorQueryErrorEvent>()).Error);
        await locking.RollbackAsync();
        Assert.Equal(0, await CountAsync(table));
        // The server stopped the COPY: the same connection goes on, not a new one.
        Assert.Equal(pid, client.BackendPid);
        Assert.Equal(1, await client.ExecuteScalarAsync(new AequorStatement("SELECT 1"), default));
    }

    [Fact]
    public async Task A_writer_disposed_between_rows_while_the_server_waits_for_a_lock_ends_at_once_and_nothing_is_written()
    {
        var table = await NewTableAsync();
        await using var client = NewClient();
        await client.ConnectAsync(default);
        var pid = client.BackendPid!.Value;
        await using var locker = new NpgsqlConnection(db.AdminConnectionString);
        await locker.OpenAsync();
        await using var locking = await locker.BeginTransactionAsync();
        await using (var insert = new NpgsqlCommand($"INSERT INTO {table} (id) VALUES (1)", locker, locking))
        {
            await insert.ExecuteNonQueryAsync();
        }

        var writer = client.OpenTableWriter(table, columns => columns, null, default);
        // Enough for the server to insert its first batch (64 kB) and wait on row 1; too few to fill the socket buffers.
        for (var i = 1; i <= 1500; i++)
        {
            writer.WriteRow([i.ToString(CultureInfo.InvariantCulture), Pad[..100]]);
        }

        await ClientTestKit.WaitUntilAsync(
            async () => await ClientTestKit.AdminScalarAsync<long>(db.AdminConnectionString,
                "SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND wait_event_type = 'Lock'", pid) > 0,
            TimeSpan.FromSeconds(30), "the COPY to wait for row 1's lock");

        // What a stopped command does between rows: the CopyFail waits behind the lock, unread.
        var disposing = Task.Run(writer.Dispose);
        var done = await Task.WhenAny(disposing, Task.Delay(Bound));
        Assert.True(ReferenceEquals(disposing, done), $"the disposed COPY had not ended after {Bound.TotalSeconds} s");
        await disposing;
        await locking.RollbackAsync();
        Assert.Equal(0, await CountAsync(table));
        // The server, sent a cancel request, answered the CopyFail: the same connection goes on.
        Assert.Equal(pid, client.BackendPid);
        Assert.Equal(1, await client.ExecuteScalarAsync(new AequorStatement("SELECT 1"), default));
    }

    [Fact]
    public async Task A_cancelled_token_stops_a_COPY_waiting_for_a_locked_table_and_inside_a_transaction_aborts_it()
    {
        var table = await NewTableAsync();
        await using var client = NewClient();
        await client.ConnectAsync(default);
        var pid = client.BackendPid!.Value;
        await using var locker = new NpgsqlConnection(db.AdminConnectionString);
        await locker.OpenAsync();
        await using var locking = await locker.BeginTransactionAsync();
        await using (var lockTable = new NpgsqlCommand($"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE", locker, locking))
        {
            await lockTable.ExecuteNonQueryAsync();
        }

        await client.BeginTransactionAsync(default);
        using var cts = new CancellationTokenSource();
        var opening = Task.Run(() => client.OpenTableWriter(table, columns => columns, null, cts.Token));
        await ClientTestKit.WaitUntilAsync(
            async () => await ClientTestKit.AdminScalarAsync<long>(db.AdminConnectionString,
                "SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND wait_event_type = 'Lock' AND query LIKE 'COPY %'", pid) > 0,
            TimeSpan.FromSeconds(30), "the COPY to wait for the table's lock");

        await cts.CancelAsync();
        var cancelled = await EndsWithinBoundAsync<AequorCopyCancelledException>(opening);
        Assert.Contains("nothing was written", cancelled.Message, StringComparison.Ordinal);
        Assert.Equal(pid, client.BackendPid);
        Assert.Contains("The transaction it ran in is aborted: roll it back.", cancelled.Message, StringComparison.Ordinal);
        Assert.True(client.TransactionAborted);
        var refused = await Assert.ThrowsAsync<PostgresException>(() => client.ExecuteScalarAsync(new AequorStatement("SELECT 1"), default));
        Assert.Equal(PostgresErrorCodes.InFailedSqlTransaction, refused.SqlState);
        await client.RollbackAsync(default);
        await locking.RollbackAsync();
        Assert.Equal(0, await CountAsync(table));
        Assert.Equal(1, await client.ExecuteScalarAsync(new AequorStatement("SELECT 1"), default));
    }

    [Fact]
    public async Task A_cancel_that_gets_no_answer_closes_the_connection_after_the_cancellation_timeout_and_the_client_reconnects()
    {
        var table = await NewTableAsync();
        // The proxy's client sets Cancellation Timeout=500 (ms): how long the answer to a cancel is waited for.
        var (proxy, client) = ProxiedClient.Create(db, "client-copy-cancel-hole");
        await using var _ = proxy;
        await using var __ = client;
        await client.ConnectAsync(default);
        var pid = client.BackendPid!.Value;
        var writer = client.OpenTableWriter(table, columns => columns, null, default);
        // Nothing gets through any more, the cancel request included: the server never answers.
        proxy.BlackHole = true;
        using var cts = new CancellationTokenSource();
        var sending = Send(writer, cts.Token);
        await WaitBlockedAsync(writer, sending);

        await cts.CancelAsync();
        var cancelled = await EndsWithinBoundAsync<AequorCopyCancelledException>(sending);
        Assert.Contains("nothing was written", cancelled.Message, StringComparison.Ordinal);
        Assert.Contains("connection", cancelled.Message, StringComparison.Ordinal);
        proxy.BlackHole = false;
        Assert.Equal(1, await client.ExecuteScalarAsync(new AequorStatement("SELECT 1"), default));
        Assert.NotEqual(pid, client.BackendPid);
        // The first backend ends when the server notices its client gone; its COPY never finished.
        await ClientTestKit.TerminateAsync(db.AdminConnectionString, pid);
        await ClientTestKit.WaitGoneAsync(db.AdminConnectionString, pid);
        Assert.Equal(0, await CountAsync(table));
    }
}
