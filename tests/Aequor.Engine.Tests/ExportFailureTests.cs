using System.Text;
using Npgsql;

namespace Aequor.Engine.Tests;

/// <summary>
/// ExportCsv stopped before its end — its own command timeout, the server's statement_timeout, the caller's writer
/// failing (a full disk), the connection lost inside a transaction: one clear exception, the COPY over on the server,
/// the client usable at once.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class ExportFailureTests(PostgresFixture db)
{
    // 1,000 rows of 10 ms each: about 10 s, and its few bytes stay in the server's output buffer until the end.
    private const string Slow = "SELECT g, pg_sleep(0.01) FROM generate_series(1, 1000) g";

    private const string Huge = "SELECT g, repeat('x', 100) AS pad FROM generate_series(1, 50000000) g";

    private AequorClient NewClient() => new(new AequorClientOptions
    {
        ConnectionString = db.AppConnectionString,
        CoordinationSecret = ClientTestKit.Secret,
        ServiceName = "client-export-failure",
        Reaper = false,
        MinBackoff = 20,
        MaxBackoff = 200,
    });

    [Fact]
    public async Task A_command_timeout_is_named_with_its_seconds_and_the_client_keeps_its_connection()
    {
        await using var client = NewClient();
        await client.ConnectAsync(default);
        var pid = client.BackendPid!.Value;
        var events = new ClientTestKit.EventLog(client);
        var csv = new StringWriter();
        var timedOut = Assert.Throws<AequorCommandTimeoutException>(() => client.ExportCsv(new AequorCsvExport { Query = Slow, CommandTimeout = 1 }, csv, default));
        Assert.Equal(1, timedOut.TimeoutSeconds);
        Assert.Contains("command timeout of 1 s", timedOut.Message, StringComparison.Ordinal);
        Assert.IsType<AequorCommandTimeoutException>(Assert.Single(events.Of<AequorQueryErrorEvent>()).Error);
        Assert.Equal(1, await client.ExecuteScalarAsync(new AequorStatement("SELECT 1"), default));
        Assert.Equal(pid, client.BackendPid);
    }

    [Fact]
    public async Task A_command_timeout_inside_a_transaction_aborts_it_and_keeps_the_connection()
    {
        await using var client = NewClient();
        await client.BeginTransactionAsync(default);
        var pid = client.BackendPid!.Value;
        Assert.Throws<AequorCommandTimeoutException>(() => client.ExportCsv(new AequorCsvExport { Query = Slow, CommandTimeout = 1 }, new StringWriter(), default));
        var aborted = Assert.Throws<AequorTransactionAbortedException>(() => client.CommitAsync(default).GetAwaiter().GetResult());
        Assert.IsType<AequorCommandTimeoutException>(aborted.InnerException);
        Assert.Equal(1, await client.ExecuteScalarAsync(new AequorStatement("SELECT 1"), default));
        Assert.Equal(pid, client.BackendPid);
    }

    [Fact]
    public async Task A_COPY_slow_to_start_times_out_by_a_cancel_and_with_no_timeout_waits()
    {
        await using var client = NewClient();
        await client.ConnectAsync(default);
        var pid = client.BackendPid!.Value;
        const string SlowStart = "SELECT 1 AS one FROM pg_sleep(2.5)";
        var timedOut = Assert.Throws<AequorCommandTimeoutException>(() => client.ExportCsv(new AequorCsvExport { Query = SlowStart, CommandTimeout = 1 }, new StringWriter(), default));
        Assert.Equal(1, timedOut.TimeoutSeconds);
        Assert.Equal(pid, client.BackendPid);
        var csv = new StringWriter();
        Assert.Equal(1, client.ExportCsv(new AequorCsvExport { Query = SlowStart, CommandTimeout = 0 }, csv, default).Rows);
        Assert.Equal("one\n1\n", csv.ToString());
        Assert.Equal(pid, client.BackendPid);
    }

    [Fact]
    public async Task A_COPY_slower_to_start_than_the_session_s_timeout_names_that_timeout_and_the_client_goes_on()
    {
        await using var client = new AequorClient(new AequorClientOptions
        {
            ConnectionString = db.AppConnectionString,
            CoordinationSecret = ClientTestKit.Secret,
            ServiceName = "client-export-failure",
            Reaper = false,
            CommandTimeout = 1,
        });
        await client.ConnectAsync(default);
        var timedOut = Assert.Throws<AequorCommandTimeoutException>(() => client.ExportCsv(new AequorCsvExport { Query = "SELECT 1 AS one FROM pg_sleep(2.5)", CommandTimeout = 10 }, new StringWriter(), default));
        Assert.Equal(1, timedOut.TimeoutSeconds);
        Assert.Contains("session's command timeout of 1 s", timedOut.Message, StringComparison.Ordinal);
        Assert.Equal(1, await client.ExecuteScalarAsync(new AequorStatement("SELECT 1"), default));
    }

    [Fact]
    public async Task The_server_s_statement_timeout_is_its_57014_and_the_client_keeps_its_connection()
    {
        await using var client = NewClient();
        _ = await client.ExecuteNonQueryAsync(new AequorStatement("SET statement_timeout = '300ms'"), default);
        var pid = client.BackendPid!.Value;
        var csv = new StringWriter();
        var cut = Assert.Throws<PostgresException>(() => client.ExportCsv(new AequorCsvExport { Query = Slow }, csv, default));
        Assert.Equal(PostgresErrorCodes.QueryCanceled, cut.SqlState);
        Assert.Contains("statement timeout", cut.MessageText, StringComparison.Ordinal);
        _ = await client.ExecuteNonQueryAsync(new AequorStatement("RESET statement_timeout"), default);
        Assert.Equal(1, await client.ExecuteScalarAsync(new AequorStatement("SELECT 1"), default));
        Assert.Equal(pid, client.BackendPid);
    }

    [Fact]
    public async Task A_writer_that_fails_mid_export_stops_the_COPY_on_the_server_and_its_own_exception_comes_out()
    {
        await using var client = NewClient();
        await client.ConnectAsync(default);
        var pid = client.BackendPid!.Value;
        var events = new ClientTestKit.EventLog(client);
        var full = new FailingWriter(1_000_000);
        var thrown = Assert.Throws<IOException>(() => client.ExportCsv(new AequorCsvExport { Query = Huge }, full, default));
        Assert.Same(full.Thrown, thrown);
        Assert.Single(events.Of<AequorQueryErrorEvent>());
        Assert.Empty(events.Of<AequorQueryEndEvent>());
        // The cancel ended the COPY: had the rows been read to their end, the backend would still be sending 50 million.
        Assert.Equal("idle", await ClientTestKit.StateOfAsync(db.AdminConnectionString, pid));
        Assert.Equal(1, await client.ExecuteScalarAsync(new AequorStatement("SELECT 1"), default));
        Assert.Equal(pid, client.BackendPid);
    }

    [Fact]
    public async Task A_writer_that_fails_inside_a_transaction_leaves_it_aborted_not_lost()
    {
        await using var client = NewClient();
        await client.BeginTransactionAsync(default);
        Assert.Throws<IOException>(() => client.ExportCsv(new AequorCsvExport { Query = Huge }, new FailingWriter(100_000), default));
        Assert.Throws<AequorTransactionAbortedException>(() => client.CommitAsync(default).GetAwaiter().GetResult());
        Assert.Equal(1, await client.ExecuteScalarAsync(new AequorStatement("SELECT 1"), default));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_connection_lost_mid_export_inside_a_transaction_is_the_transaction_lost_and_nothing_runs_outside_it(bool inSql)
    {
        await using var client = NewClient();
        if (inSql)
        {
            _ = await client.ExecuteNonQueryAsync(new AequorStatement("BEGIN"), default);
        }
        else
        {
            await client.BeginTransactionAsync(default);
        }

        var pid = client.BackendPid!.Value;
        var csv = new TerminatingWriter(() => ClientTestKit.TerminateAsync(db.AdminConnectionString, pid).GetAwaiter().GetResult());
        var lost = Assert.Throws<AequorTransactionLostException>(() => client.ExportCsv(new AequorCsvExport { Query = Huge }, csv, default));
        Assert.Contains("transaction is lost", lost.Message, StringComparison.Ordinal);
        Assert.Contains("nothing was sent again", lost.Message, StringComparison.Ordinal);
        // Not on a fresh connection in autocommit: the caller must end the transaction first.
        Assert.Throws<AequorTransactionLostException>(() => client.ExportCsv(new AequorCsvExport { Query = "SELECT 1" }, new StringWriter(), default));
        await Assert.ThrowsAsync<AequorTransactionLostException>(() => client.ExecuteScalarAsync(new AequorStatement("SELECT 1"), default));
        if (inSql)
        {
            _ = await client.ExecuteNonQueryAsync(new AequorStatement("ROLLBACK"), default);
        }
        else
        {
            await client.RollbackAsync(default);
        }

        Assert.Equal(1, await client.ExecuteScalarAsync(new AequorStatement("SELECT 1"), default));
        Assert.NotEqual(pid, client.BackendPid);
    }

    /// <summary>A destination that takes <c>limit</c> characters, then fails as a full disk does.</summary>
    private sealed class FailingWriter(long limit) : TextWriter
    {
        private long _written;

        public IOException Thrown { get; } = new("No space left on device");

        public override Encoding Encoding => Encoding.UTF8;

        public override void Write(char value) => Write([value], 0, 1);

        public override void Write(char[] buffer, int index, int count)
        {
            if (_written + count > limit)
            {
                throw Thrown;
            }

            _written += count;
        }
    }

    /// <summary>Calls back once, at the first write: the rows are flowing.</summary>
    private sealed class TerminatingWriter(Action first) : TextWriter
    {
        private Action? _first = first;

        public override Encoding Encoding => Encoding.UTF8;

        public override void Write(char value)
        {
        }

        public override void Write(char[] buffer, int index, int count) => Interlocked.Exchange(ref _first, null)?.Invoke();
    }
}
