using System.Text;
using Aequor.Engine.Tests.Faults;

namespace Aequor.Engine.Tests;

/// <summary>ImportCsv: one COPY … FROM STDIN (FORMAT csv) streamed from the caller's stream, all rows or none, the client usable afterwards.</summary>
[Collection(PostgresCollection.Name)]
public sealed class ClientImportTests(PostgresFixture db)
{
    private AequorClient NewClient() => new(new AequorClientOptions
    {
        ConnectionString = db.AppConnectionString,
        CoordinationSecret = ClientTestKit.Secret,
        ServiceName = "client-import",
        Reaper = false,
        MinBackoff = 20,
        MaxBackoff = 200,
    });

    private static string NewName() => "client_import_" + Guid.NewGuid().ToString("N")[..10];

    private Task<long> CountAsync(string table) => ClientTestKit.AdminScalarAsync<long>(db.AdminConnectionString, $"SELECT count(*) FROM {table}");

    private static MemoryStream Utf8(string text, bool bom = false) =>
        new([.. (bom ? Encoding.UTF8.GetPreamble() : []), .. Encoding.UTF8.GetBytes(text)]);

    private async Task<string> NewTableAsync(AequorClient client)
    {
        var table = NewName();
        _ = await client.ExecuteNonQueryAsync(new AequorStatement(
            $"CREATE TABLE {table} (id int PRIMARY KEY, name text, born date, at timestamptz, price numeric(10,2), data jsonb, tags text[], twice int GENERATED ALWAYS AS (id * 2) STORED)"), default);
        return table;
    }

    [Fact]
    public async Task Reads_back_what_ExportCsv_wrote_NULL_and_empty_strings_apart_in_one_statement()
    {
        await using var client = NewClient();
        var table = await NewTableAsync(client);
        _ = await client.ExecuteNonQueryAsync(new AequorStatement(
            $"INSERT INTO {table} (id, name, born, at, price, data, tags) VALUES " +
            "(1, NULL, NULL, NULL, NULL, NULL, NULL), " +
            "(2, '', '2024-02-29', '2024-02-29 23:59:59.999999+05:30', 12.50, '{\"a\": [1, \"b,c\"], \"q\": \"\\\"\"}', ARRAY['x', 'y z', NULL, '', 'q\"uote', 'a,b']), " +
            "(3, E'comma, \"quote\"\\nnew line\\r\\ncrlf ünï 🙂 \\\\. \\\\N', '1999-12-31', 'infinity', -0.01, 'null', '{}'), " +
            "(4, E'\\\\.', NULL, NULL, 0, '\"\"', ARRAY[''])"), default);
        var copy = table + "_copy";
        _ = await client.ExecuteNonQueryAsync(new AequorStatement($"CREATE TABLE {copy} (LIKE {table} INCLUDING GENERATED)"), default);
        var columns = new[] { "id", "name", "born", "at", "price", "data", "tags" };
        var csv = new StringWriter();
        client.ExportCsv(new AequorCsvExport { Table = table, Columns = columns }, csv, default);

        var events = new ClientTestKit.EventLog(client);
        var result = client.ImportCsv(new AequorCsvImport { Table = copy }, Utf8(csv.ToString()), default);
        Assert.Equal(4, result.Rows);
        Assert.Equal(columns, result.Columns);
        var start = Assert.Single(events.Of<AequorQueryStartEvent>());
        Assert.Equal($"COPY \"{copy}\" (\"id\", \"name\", \"born\", \"at\", \"price\", \"data\", \"tags\") FROM STDIN (FORMAT csv, HEADER false, DELIMITER ',')", start.CommandText);
        Assert.Single(events.Of<AequorQueryEndEvent>());
        Assert.Empty(events.Of<AequorQueryErrorEvent>());
        Assert.Equal(0L, await client.ExecuteScalarAsync(new AequorStatement($"SELECT count(*) FROM (SELECT * FROM {table} EXCEPT SELECT * FROM {copy}) d"), default));
        Assert.Equal(0L, await client.ExecuteScalarAsync(new AequorStatement($"SELECT count(*) FROM (SELECT * FROM {copy} EXCEPT SELECT * FROM {table}) d"), default));
        Assert.Equal("1:null 2:text", await client.ExecuteScalarAsync(new AequorStatement($"SELECT string_agg(id || ':' || CASE WHEN name IS NULL THEN 'null' ELSE 'text' END, ' ' ORDER BY id) FROM {copy} WHERE id < 3"), default));
    }

    [Fact]
    public async Task Takes_a_byte_order_mark_CRLF_another_delimiter_and_no_header()
    {
        await using var client = NewClient();
        var table = await NewTableAsync(client);
        Assert.Equal(2, client.ImportCsv(new AequorCsvImport { Table = table }, Utf8("ID,Name\r\n1,\"a;b\"\r\n2,\r\n", bom: true), default).Rows);
        var wrongDelimiter = Assert.Throws<AequorConfigurationException>(() => client.ImportCsv(new AequorCsvImport { Table = table }, Utf8("ID;Name\r\n3;x\r\n"), default));
        Assert.Contains("'ID;Name' of the file's header (field 1) is no column", wrongDelimiter.Message, StringComparison.Ordinal);
        Assert.Equal(2, client.ImportCsv(new AequorCsvImport { Table = table, Delimiter = ';' }, Utf8("ID;Name\r\n3;\"c;d\"\r\n4;\r\n", bom: true), default).Rows);
        Assert.Equal(1, client.ImportCsv(new AequorCsvImport { Table = table, Header = false, Columns = ["name", "id"] }, Utf8("e,5"), default).Rows);
        Assert.Equal("1=a;b 2=NULL 3=c;d 4=NULL 5=e", await client.ExecuteScalarAsync(new AequorStatement($"SELECT string_agg(id || '=' || coalesce(name, 'NULL'), ' ' ORDER BY id) FROM {table}"), default));
    }

    [Theory]
    [InlineData("id,nope\n1,x\n", "'nope' of the file's header")]
    [InlineData("id,twice\n1,2\n", "generated column 'twice'")]
    [InlineData("id,name,ID\n1,x,1\n", "a second time")]
    [InlineData("", "The file is empty")]
    public async Task A_header_that_does_not_fit_the_table_is_refused_before_anything_is_sent_and_a_transaction_goes_on(string text, string named)
    {
        await using var client = NewClient();
        var table = await NewTableAsync(client);
        await client.BeginTransactionAsync(default);
        var events = new ClientTestKit.EventLog(client);
        var refused = Assert.Throws<AequorConfigurationException>(() => client.ImportCsv(new AequorCsvImport { Table = table }, Utf8(text), default));
        Assert.Contains(named, refused.Message, StringComparison.Ordinal);
        Assert.Empty(events.Of<AequorQueryStartEvent>());
        _ = await client.ExecuteNonQueryAsync(new AequorStatement($"INSERT INTO {table} (id) VALUES (9)"), default);
        await client.CommitAsync(default);
        Assert.Equal(1, await CountAsync(table));
        var missing = Assert.Throws<AequorConfigurationException>(() => client.ImportCsv(new AequorCsvImport { Table = "no_such_table_xyz" }, Utf8("id\n1\n"), default));
        Assert.Contains("no_such_table_xyz does not exist", missing.Message, StringComparison.Ordinal);
    }

    /// <summary>
    /// The server counts its "line N" its own way (a line per row, plus line breaks inside quotes of its end-of-line
    /// style, and '\r' ones in the first row): a refused row is named by the file's line whatever the layout.
    /// </summary>
    [Theory]
    [InlineData("id,name\n1,a\n2,\"x\ny\"\nzz,b\n", 5, 3)]
    [InlineData("id,name\n1,\"m\nl\nv\"\n2,ok\nzz,bad\n", 6, 3)]
    [InlineData("id,name\r\n1,\"m\r\nl\"\r\nzz,bad\r\n", 4, 2)]
    [InlineData("id,name\r\n1,\"m\nl\"\r\n2,\"p\nq\"\r\nzz,bad\r\n", 6, 3)]
    [InlineData("id,name\n1,\"m\r\nl\"\n2,\"p\r\nq\"\nzz,bad\n", 6, 3)]
    [InlineData("\"id\",\"na\nme\"\n1,\"a\"\"\nb\"\n2,c\n3,\"d\ne\"\nzz,z", 8, 4)]
    [InlineData("1,\"a\nb\"\nzz,q\n", 3, 2)]
    public async Task A_refused_row_is_named_by_its_line_in_the_file_and_nothing_is_imported(string text, long line, long row)
    {
        await using var client = NewClient();
        var table = await NewTableAsync(client);
        var header = !text.StartsWith('1');
        var import = header ? new AequorCsvImport { Table = table } : new AequorCsvImport { Table = table, Header = false, Columns = ["id", "name"] };
        if (text.StartsWith("\"id\",\"na\nme\"", StringComparison.Ordinal))
        {
            _ = await client.ExecuteNonQueryAsync(new AequorStatement($"ALTER TABLE {table} RENAME name TO \"na\nme\""), default);
        }

        var refused = Assert.Throws<AequorCopyFailedException>(() => client.ImportCsv(import, Utf8(text), default));
        Assert.StartsWith($"Line {line} of the file (row {row}) was refused: 22P02: invalid input syntax for type integer: \"zz\" (column id).", refused.Message, StringComparison.Ordinal);
        Assert.Equal(row, refused.Row);
        Assert.Equal(0, await CountAsync(table));
        Assert.Equal(1, await client.ExecuteScalarAsync(new AequorStatement("SELECT 1"), default));
    }

    [Fact]
    public async Task The_rows_counted_are_those_the_server_stored_not_those_sent_when_a_trigger_skips_some()
    {
        await using var client = NewClient();
        var table = await NewTableAsync(client);
        // A BEFORE INSERT trigger returning NULL keeps the row out (deduplication, old-style partitioning).
        await ClientTestKit.AdminScalarAsync<object>(db.AdminConnectionString,
            $"CREATE FUNCTION {table}_odd() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN CASE WHEN NEW.id % 2 = 1 THEN NEW END; END'; " +
            $"CREATE TRIGGER odd BEFORE INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION {table}_odd()");
        var ends = new List<int>();
        client.OnQueryEnd += (_, e) => ends.Add(e.RecordsAffected);
        Assert.Equal(3, client.ImportCsv(new AequorCsvImport { Table = table }, Utf8("id\n1\n2\n3\n4\n5\n6\n"), default).Rows);
        Assert.Equal(3, await CountAsync(table));
        Assert.Equal([3], ends);
    }

    /// <summary>
    /// PostgreSQL 15 reads a record of only <c>\.</c> in COPY … FROM STDIN (FORMAT csv) as the end of the data and
    /// drops every row after it without a word; as a CSV value it is text, and Export writes it quoted. Sent quoted.
    /// </summary>
    [Theory]
    [InlineData("name\nx\n\\.\ny\n", new[] { "x", "\\.", "y" })]
    [InlineData("name\r\nx\r\n\\.\r\ny\r\n", new[] { "x", "\\.", "y" })]
    [InlineData("name\n\\.\n\\.\n\\.", new[] { "\\.", "\\.", "\\." })]
    [InlineData("name\n\\.x\n\"a\n\\.\nb\"\n\\\\.\n", new[] { "\\.x", "a\n\\.\nb", "\\\\." })]
    public async Task A_line_holding_only_backslash_dot_is_a_value_and_the_rows_after_it_are_imported(string text, string[] names)
    {
        await using var client = NewClient();
        var table = NewName();
        _ = await client.ExecuteNonQueryAsync(new AequorStatement($"CREATE TABLE {table} (n serial, name text)"), default);
        Assert.Equal(names.Length, client.ImportCsv(new AequorCsvImport { Table = table }, Utf8(text), default).Rows);
        Assert.Equal(names, (string[]?)await client.ExecuteScalarAsync(new AequorStatement($"SELECT array_agg(name ORDER BY n) FROM {table}"), default));
    }

    [Fact]
    public async Task A_line_holding_only_backslash_dot_where_a_row_needs_other_values_is_refused_naming_its_line()
    {
        await using var client = NewClient();
        var table = await NewTableAsync(client);
        var refused = Assert.Throws<AequorCopyFailedException>(() => client.ImportCsv(new AequorCsvImport { Table = table }, Utf8("id,name\n1,a\n\\.\n2,b\n"), default));
        Assert.StartsWith("Line 3 of the file (row 2) was refused: 22P02: invalid input syntax for type integer: \"\\.\"", refused.Message, StringComparison.Ordinal);
        Assert.Equal(0, await CountAsync(table));
    }

    /// <summary>Line ends of a carriage return alone (classic Mac, Excel's "CSV (Macintosh)"), which the server reads.</summary>
    [Fact]
    public async Task A_file_whose_lines_end_in_a_carriage_return_alone_is_read_counted_and_located()
    {
        await using var client = NewClient();
        var table = await NewTableAsync(client);
        Assert.Equal(2, client.ImportCsv(new AequorCsvImport { Table = table }, Utf8("id,name\r1,a\r2,\"b\rc\"\r"), default).Rows);
        Assert.Equal(1, client.ImportCsv(new AequorCsvImport { Table = table, Header = false, Columns = ["id", "name"] }, Utf8("3,d\r"), default).Rows);
        Assert.Equal("1=a 2=b\rc 3=d", await client.ExecuteScalarAsync(new AequorStatement($"SELECT string_agg(id || '=' || name, ' ' ORDER BY id) FROM {table}"), default));
        var refused = Assert.Throws<AequorCopyFailedException>(() => client.ImportCsv(new AequorCsvImport { Table = table }, Utf8("id,name\r4,\"x\ry\"\rzz,q\r"), default));
        Assert.StartsWith("Line 4 of the file (row 2) was refused: 22P02", refused.Message, StringComparison.Ordinal);
        Assert.Equal(3, await CountAsync(table));
    }

    [Fact]
    public async Task A_row_with_too_many_fields_or_a_unique_violation_fails_the_whole_import()
    {
        await using var client = NewClient();
        var table = await NewTableAsync(client);
        var extra = Assert.Throws<AequorCopyFailedException>(() => client.ImportCsv(new AequorCsvImport { Table = table }, Utf8("id,name\n1,a\n2,b,c\n"), default));
        Assert.StartsWith("Line 3 of the file (row 2) was refused: 22P04: extra data after last expected column", extra.Message, StringComparison.Ordinal);
        var twice = Assert.Throws<AequorCopyFailedException>(() => client.ImportCsv(new AequorCsvImport { Table = table }, Utf8("id\n1\n2\n1\n"), default));
        Assert.StartsWith("Line 4 of the file (row 3) was refused: 23505: duplicate key value", twice.Message, StringComparison.Ordinal);
        Assert.Equal(0, await CountAsync(table));
    }

    [Fact]
    public async Task A_file_that_is_not_UTF8_is_refused_naming_its_line_nothing_imported_and_the_client_goes_on()
    {
        await using var client = NewClient();
        var table = await NewTableAsync(client);
        var bytes = Encoding.UTF8.GetBytes("id,name\n1,ok\n2,caf").Concat(new byte[] { 0xE9, (byte)'\n' }).ToArray();
        var refused = Assert.Throws<AequorCopyFailedException>(() => client.ImportCsv(new AequorCsvImport { Table = table }, new MemoryStream(bytes), default));
        Assert.StartsWith("The file is not UTF-8: the byte 0xE9 on its line 3 is no UTF-8", refused.Message, StringComparison.Ordinal);
        Assert.Equal(0, await CountAsync(table));
        Assert.Equal(1, await client.ExecuteScalarAsync(new AequorStatement("SELECT 1"), default));
    }

    [Fact]
    public async Task Inside_a_transaction_it_joins_it_and_a_refused_row_aborts_it()
    {
        await using var client = NewClient();
        var table = await NewTableAsync(client);
        await client.BeginTransactionAsync(default);
        Assert.Equal(2, client.ImportCsv(new AequorCsvImport { Table = table }, Utf8("id\n1\n2\n"), default).Rows);
        Assert.Equal(2L, await client.ExecuteScalarAsync(new AequorStatement($"SELECT count(*) FROM {table}"), default));
        await client.RollbackAsync(default);
        Assert.Equal(0, await CountAsync(table));

        await client.BeginTransactionAsync(default);
        Assert.Throws<AequorCopyFailedException>(() => client.ImportCsv(new AequorCsvImport { Table = table }, Utf8("id\nx\n"), default));
        Assert.True(client.TransactionAborted);
        await Assert.ThrowsAnyAsync<AequorClientException>(() => client.CommitAsync(default));
    }

    [Fact]
    public async Task A_cancelled_token_stops_the_COPY_nothing_imported_and_the_client_goes_on()
    {
        await using var client = NewClient();
        var table = await NewTableAsync(client);
        var pid = client.BackendPid!.Value;
        var events = new ClientTestKit.EventLog(client);
        using var cts = new CancellationTokenSource();
        using var source = new CallbackStream(Rows(1, 2_000_000), 1_000_000, cts.Cancel);
        var cancelled = Assert.ThrowsAny<OperationCanceledException>(() => client.ImportCsv(new AequorCsvImport { Table = table, Header = false, Columns = ["id"] }, source, cts.Token));
        Assert.Contains("nothing was imported", cancelled.Message, StringComparison.Ordinal);
        Assert.True(source.Position < source.Length, "the rest of the file was not read");
        Assert.IsType<OperationCanceledException>(Assert.Single(events.Of<AequorQueryErrorEvent>()).Error);
        Assert.Equal(0, await CountAsync(table));
        Assert.Equal(pid, client.BackendPid);
        Assert.Equal(1, await client.ExecuteScalarAsync(new AequorStatement("SELECT 1"), default));
    }

    [Fact]
    public async Task A_cancelled_token_inside_a_transaction_says_the_transaction_is_aborted_as_a_table_writer_does()
    {
        await using var client = NewClient();
        var table = await NewTableAsync(client);
        await client.BeginTransactionAsync(default);
        using var cts = new CancellationTokenSource();
        using var source = new CallbackStream(Rows(1, 2_000_000), 1_000_000, cts.Cancel);
        var cancelled = Assert.Throws<AequorCopyCancelledException>(() => client.ImportCsv(new AequorCsvImport { Table = table, Header = false, Columns = ["id"] }, source, cts.Token));
        Assert.Contains("nothing was imported", cancelled.Message, StringComparison.Ordinal);
        Assert.Contains("The transaction it ran in is aborted: roll it back.", cancelled.Message, StringComparison.Ordinal);
        Assert.True(client.TransactionAborted);
        await client.RollbackAsync(default);
        Assert.Equal(0, await CountAsync(table));
        Assert.Equal(1, await client.ExecuteScalarAsync(new AequorStatement("SELECT 1"), default));
    }

    [Fact]
    public async Task A_cancelled_token_stops_a_COPY_whose_server_stopped_reading_waiting_for_a_lock_and_nothing_is_imported()
    {
        var table = await ClientTestKit.NewKeyedTableAsync(db.AppConnectionString, "client_import");
        await using var holder = new Npgsql.NpgsqlConnection(db.AppConnectionString);
        await holder.OpenAsync();
        await using var held = await holder.BeginTransactionAsync();
        // Row 5 of the file waits for this transaction (the same key, uncommitted): the server stops reading the rows.
        await using (var insert = new Npgsql.NpgsqlCommand($"INSERT INTO {table} VALUES (5)", holder, held))
        {
            await insert.ExecuteNonQueryAsync();
        }

        await using var client = NewClient();
        await client.ConnectAsync(default);
        var pid = client.BackendPid!.Value;
        using var cts = new CancellationTokenSource();
        // 2,000,000 rows, some 15 MB: far more than the socket buffers hold, so the client's writes block.
        using var source = new MemoryStream(Rows(1, 2_000_000));
        var importing = Task.Run(() => client.ImportCsv(new AequorCsvImport { Table = table, Header = false }, source, cts.Token));
        await ClientTestKit.WaitUntilAsync(
            async () => await ClientTestKit.AdminScalarAsync<long>(db.AdminConnectionString,
                "SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND wait_event_type = 'Lock'", pid) > 0,
            TimeSpan.FromSeconds(30), "the COPY to wait for the lock");
        await ClientTestKit.WaitUntilAsync(() => Task.FromResult(source.Position > 2_000_000 || importing.IsCompleted), TimeSpan.FromSeconds(30), "the client to fill the buffers");
        await cts.CancelAsync();
        // Bounded only so that a cancel never sent fails here instead of after the session's 30 s timeout.
        var done = await Task.WhenAny(importing, Task.Delay(TimeSpan.FromSeconds(20)));
        Assert.Same(importing, done);
        var cancelled = await Assert.ThrowsAnyAsync<OperationCanceledException>(() => importing);
        Assert.Contains("nothing was imported", cancelled.Message, StringComparison.Ordinal);
        Assert.True(source.Position < source.Length, "the rest of the file was not read");
        await held.RollbackAsync();
        Assert.Equal(0, await CountAsync(table));
        Assert.Equal(pid, client.BackendPid);
        Assert.Equal(1, await client.ExecuteScalarAsync(new AequorStatement("SELECT 1"), default));
    }

    [Fact]
    public async Task A_cancel_that_gets_no_answer_closes_the_connection_after_the_cancellation_timeout_and_the_client_reconnects()
    {
        var table = await ClientTestKit.NewKeyedTableAsync(db.AppConnectionString, "client_import");
        // The proxy's client sets Cancellation Timeout=500 (ms): how long the answer to a cancel is waited for.
        var (proxy, client) = ProxiedClient.Create(db, "client-import-hole");
        await using var _ = proxy;
        await using var __ = client;
        await client.ConnectAsync(default);
        var pid = client.BackendPid!.Value;
        using var cts = new CancellationTokenSource();
        // Once the COPY is under way nothing gets through any more, the cancel request included: the server never
        // answers, and the client's writes block on full socket buffers.
        using var source = new CallbackStream(Rows(1, 2_000_000), 100_000, () => proxy.BlackHole = true);
        var importing = Task.Run(() => client.ImportCsv(new AequorCsvImport { Table = table, Header = false }, source, cts.Token));
        var before = -1L;
        await ClientTestKit.WaitUntilAsync(async () =>
        {
            await Task.Delay(1000);
            var now = source.Position;
            var still = now == before && now > 100_000;
            before = now;
            return still || importing.IsCompleted;
        }, TimeSpan.FromSeconds(30), "the client's writes to block");
        Assert.False(importing.IsCompleted, $"the import ended before it was cancelled: {importing.Exception}");

        await cts.CancelAsync();
        // Bounded by far more than the 500 ms Cancellation Timeout, far less than the 30 s round-trip timeout.
        var done = await Task.WhenAny(importing, Task.Delay(TimeSpan.FromSeconds(10)));
        Assert.Same(importing, done);
        var cancelled = await Assert.ThrowsAsync<AequorCopyCancelledException>(() => importing);
        Assert.Contains("nothing was imported", cancelled.Message, StringComparison.Ordinal);
        Assert.Contains("connection was closed", cancelled.Message, StringComparison.Ordinal);
        Assert.True(source.Position < source.Length, "the rest of the file was not read");
        proxy.BlackHole = false;
        Assert.Equal(1, await client.ExecuteScalarAsync(new AequorStatement("SELECT 1"), default));
        Assert.NotEqual(pid, client.BackendPid);
        // The first backend ends when the server notices its client gone; its COPY never finished.
        await ClientTestKit.TerminateAsync(db.AdminConnectionString, pid);
        await ClientTestKit.WaitGoneAsync(db.AdminConnectionString, pid);
        Assert.Equal(0, await CountAsync(table));
    }

    [Fact]
    public async Task A_connection_lost_while_the_file_is_sent_imports_nothing_and_is_never_sent_again()
    {
        var table = await ClientTestKit.NewKeyedTableAsync(db.AppConnectionString, "client_import");
        var (proxy, client) = ProxiedClient.Create(db, "client-import-lost");
        await using var _ = proxy;
        await using var __ = client;
        await client.ConnectAsync(default);
        var events = new ClientTestKit.EventLog(client);
        using var source = new CallbackStream(Rows(1, 1_000_000), 1_000_000, proxy.ResetAll);
        var failed = Assert.Throws<AequorCopyFailedException>(() => client.ImportCsv(new AequorCsvImport { Table = table, Header = false }, source, default));
        Assert.Contains("before the end of the COPY was sent: nothing was imported", failed.Message, StringComparison.Ordinal);
        Assert.Single(events.Of<AequorQueryStartEvent>());
        Assert.Equal(0, await CountAsync(table));
        Assert.Equal(1, await client.ExecuteScalarAsync(new AequorStatement("SELECT 1"), default));
    }

    [Fact]
    public async Task A_connection_lost_after_the_end_of_the_COPY_was_sent_is_an_unknown_outcome()
    {
        var table = await ClientTestKit.NewKeyedTableAsync(db.AppConnectionString, "client_import");
        var (proxy, client) = ProxiedClient.Create(db, "client-import-unknown", commandTimeout: 2);
        await using var _ = proxy;
        await using var __ = client;
        await client.ConnectAsync(default);
        // The whole file is read (and sent) before the end of the COPY: the replies stop as the last bytes are read.
        var text = Rows(1, 10);
        using var source = new CallbackStream(text, text.Length, () => proxy.DropReplies = true);
        var unknown = Assert.Throws<AequorOutcomeUnknownException>(() => client.ImportCsv(new AequorCsvImport { Table = table, Header = false, CommandTimeout = 1 }, source, default));
        Assert.Contains("whether they were imported is unknown", unknown.Message, StringComparison.Ordinal);
        proxy.DropReplies = false;
        Assert.Equal(10, await CountAsync(table));
        Assert.Equal(1, await client.ExecuteScalarAsync(new AequorStatement("SELECT 1"), default));
    }

    private static byte[] Rows(int from, int count)
    {
        var text = new StringBuilder();
        for (var i = from; i < from + count; i++)
        {
            text.Append(i).Append('\n');
        }

        return Encoding.UTF8.GetBytes(text.ToString());
    }

    /// <summary>A file that runs <paramref name="action"/> once its reader has been handed <paramref name="after"/> bytes; it cannot seek, as a pipe.</summary>
    private sealed class CallbackStream(byte[] bytes, long after, Action action) : MemoryStream(bytes)
    {
        private bool _done;

        public override bool CanSeek => false;

        public override int Read(byte[] buffer, int offset, int count) => Fire(base.Read(buffer, offset, count));

        public override int Read(Span<byte> buffer) => Fire(base.Read(buffer));

        private int Fire(int read)
        {
            if (!_done && base.Position >= after)
            {
                _done = true;
                action();
            }

            return read;
        }
    }
}
