using System.Text;

namespace Aequor.Engine.Tests;

/// <summary>ExportCsv: one COPY … TO STDOUT streamed into the caller's writer, the client usable afterwards.</summary>
[Collection(PostgresCollection.Name)]
public sealed class ClientExportTests(PostgresFixture db)
{
    private const string Huge = "SELECT g, repeat('x', 100) AS pad FROM generate_series(1, 50000000) g";

    private AequorClient NewClient() => new(new AequorClientOptions
    {
        ConnectionString = db.AppConnectionString,
        CoordinationSecret = ClientTestKit.Secret,
        ServiceName = "client-export",
        Reaper = false,
        MinBackoff = 20,
        MaxBackoff = 200,
    });

    private async Task<string> NewTableAsync(AequorClient client)
    {
        var table = "client_export_" + Guid.NewGuid().ToString("N")[..10];
        _ = await client.ExecuteNonQueryAsync(new AequorStatement(
            $"CREATE TABLE {table} (id int PRIMARY KEY, name text, born date, price numeric(10,2), data jsonb, tags text[]); " +
            $"INSERT INTO {table} VALUES (1, 'plain', '2024-02-29', 12.50, '{{\"a\": [1, \"b,c\"]}}', ARRAY['x', 'y z']), " +
            $"(2, E'comma, \"quote\"\\nnew line; ünï ✓', NULL, NULL, NULL, NULL), (3, '', '1999-12-31', -0.01, 'null', '{{}}')"), default);
        return table;
    }

    [Fact]
    public async Task Exports_a_table_as_the_server_formats_CSV_with_one_statement_and_its_events_once()
    {
        await using var client = NewClient();
        var table = await NewTableAsync(client);
        var events = new ClientTestKit.EventLog(client);
        var csv = new StringWriter();
        var result = client.ExportCsv(new AequorCsvExport { Table = table }, csv, default);
        Assert.Equal(3, result.Rows);
        Assert.Equal(
            "id,name,born,price,data,tags\n" +
            "1,plain,2024-02-29,12.50,\"{\"\"a\"\": [1, \"\"b,c\"\"]}\",\"{x,\"\"y z\"\"}\"\n" +
            "2,\"comma, \"\"quote\"\"\nnew line; ünï ✓\",,,,\n" +
            "3,\"\",1999-12-31,-0.01,null,{}\n",
            csv.ToString());
        Assert.Equal(csv.ToString().Length, result.Characters);
        var start = Assert.Single(events.Of<AequorQueryStartEvent>());
        Assert.StartsWith($"COPY \"{table}\" TO STDOUT", start.CommandText, StringComparison.Ordinal);
        var end = Assert.Single(events.Of<AequorQueryEndEvent>());
        Assert.Equal(3, end.RowsRead);
        Assert.Empty(events.Of<AequorQueryErrorEvent>());
    }

    [Fact]
    public async Task Exports_the_rows_of_a_table_s_inheritance_children_as_SELECT_shows_them()
    {
        // COPY t TO copies t's own rows only: an inheritance parent (partitioning by INHERITS) lost its children's.
        await using var client = NewClient();
        var table = "client_export_parent_" + Guid.NewGuid().ToString("N")[..10];
        await client.ExecuteNonQueryAsync(new AequorStatement(
            $"CREATE TABLE {table} (id int); CREATE TABLE {table}_c () INHERITS ({table}); INSERT INTO {table} VALUES (1); INSERT INTO {table}_c VALUES (2), (3)"), default);
        var csv = new StringWriter();
        var result = client.ExportCsv(new AequorCsvExport { Table = table, Header = false }, csv, default);
        Assert.Equal(3, result.Rows);
        Assert.Equal(["1", "2", "3"], csv.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries).Order());
    }

    [Fact]
    public async Task Exports_chosen_columns_a_query_without_header_and_another_delimiter()
    {
        await using var client = NewClient();
        var table = await NewTableAsync(client);
        var columns = new StringWriter();
        client.ExportCsv(new AequorCsvExport { Table = table, Columns = ["NAME", "id"], Delimiter = ';' }, columns, default);
        Assert.StartsWith("name;id\nplain;1\n", columns.ToString(), StringComparison.Ordinal);

        var query = new StringWriter();
        var result = client.ExportCsv(new AequorCsvExport { Query = $"SELECT id, price FROM {table} WHERE id <> 2 ORDER BY id; -- done", Header = false }, query, default);
        Assert.Equal("1,12.50\n3,-0.01\n", query.ToString());
        Assert.Equal(2, result.Rows);
    }

    [Theory]
    [InlineData("SELECT * FROM t WHERE id = $1", "$1")]
    [InlineData("SELECT * FROM t WHERE id = @id", "@id")]
    [InlineData("SELECT 1; DELETE FROM t", "more than one statement")]
    [InlineData("COPY t TO STDOUT", "itself a COPY")]
    [InlineData("DELETE FROM t RETURNING *", "'DELETE'")]
    [InlineData("  -- nothing\n ", "empty")]
    public async Task A_query_a_COPY_cannot_run_is_refused_before_anything_is_sent(string query, string named)
    {
        await using var client = NewClient();
        var events = new ClientTestKit.EventLog(client);
        var csv = new StringWriter();
        var refused = Assert.Throws<AequorConfigurationException>(() => client.ExportCsv(new AequorCsvExport { Query = query }, csv, default));
        Assert.Contains(named, refused.Message, StringComparison.Ordinal);
        Assert.Contains("Nothing was exported", refused.Message, StringComparison.Ordinal);
        Assert.Empty(csv.ToString());
        Assert.Empty(events.All);
    }

    [Fact]
    public async Task Operators_and_quoted_text_that_look_like_placeholders_are_exported()
    {
        await using var client = NewClient();
        var csv = new StringWriter();
        client.ExportCsv(new AequorCsvExport { Query = "SELECT '$1 @x' AS t, ARRAY[1,2] @> ARRAY[1] AS c, @ -2 AS a, $$;$$ AS s;", Header = false }, csv, default);
        Assert.Equal("$1 @x,t,2,;\n", csv.ToString());
    }

    [Fact]
    public async Task A_missing_table_or_column_is_named_nothing_is_written_and_the_client_goes_on()
    {
        await using var client = NewClient();
        var table = await NewTableAsync(client);
        var csv = new StringWriter();
        var missing = Assert.Throws<AequorConfigurationException>(() => client.ExportCsv(new AequorCsvExport { Table = "no_such_table_xyz" }, csv, default));
        Assert.Contains("no_such_table_xyz", missing.Message, StringComparison.Ordinal);
        var column = Assert.Throws<AequorConfigurationException>(() => client.ExportCsv(new AequorCsvExport { Table = table, Columns = ["id", "nope"] }, csv, default));
        Assert.Contains("'nope' is no column", column.Message, StringComparison.Ordinal);
        Assert.Contains("born", column.Message, StringComparison.Ordinal);
        var failing = Assert.Throws<Npgsql.PostgresException>(() => client.ExportCsv(new AequorCsvExport { Query = "SELECT 1 / (g - 3) FROM generate_series(1, 5) g" }, csv, default));
        Assert.Equal("22012", failing.SqlState);
        Assert.Equal(1, await client.ExecuteScalarAsync(new AequorStatement("SELECT 1"), default));
    }

    [Fact]
    public async Task A_cancelled_token_stops_the_rows_on_the_server_and_the_client_goes_on()
    {
        await using var client = NewClient();
        await client.ConnectAsync(default);
        var pid = client.BackendPid!.Value;
        var events = new ClientTestKit.EventLog(client);
        using var cts = new CancellationTokenSource();
        var csv = new CallbackWriter(cts.Cancel);
        var cancelled = Assert.ThrowsAny<OperationCanceledException>(() => client.ExportCsv(new AequorCsvExport { Query = Huge }, csv, cts.Token));
        Assert.Contains("cancelled", cancelled.Message, StringComparison.Ordinal);
        Assert.True(csv.Length < 50_000_000L * 100, "the rows stopped");
        Assert.IsType<OperationCanceledException>(Assert.Single(events.Of<AequorQueryErrorEvent>()).Error);
        Assert.Empty(events.Of<AequorQueryEndEvent>());
        Assert.Equal(pid, client.BackendPid);
        Assert.Equal(1, await client.ExecuteScalarAsync(new AequorStatement("SELECT 1"), default));
    }

    [Fact]
    public async Task A_connection_lost_during_the_rows_is_an_incomplete_export_never_sent_again()
    {
        await using var client = NewClient();
        await client.ConnectAsync(default);
        var pid = client.BackendPid!.Value;
        var events = new ClientTestKit.EventLog(client);
        var csv = new CallbackWriter(() => ClientTestKit.TerminateAsync(db.AdminConnectionString, pid).GetAwaiter().GetResult());
        var failed = Assert.Throws<AequorExportFailedException>(() => client.ExportCsv(new AequorCsvExport { Query = Huge }, csv, default));
        Assert.Contains("incomplete", failed.Message, StringComparison.Ordinal);
        Assert.Single(events.Of<AequorQueryStartEvent>());
        Assert.IsType<AequorExportFailedException>(Assert.Single(events.Of<AequorQueryErrorEvent>()).Error);
        Assert.Equal(1, await client.ExecuteScalarAsync(new AequorStatement("SELECT 1"), default));
        Assert.NotEqual(pid, client.BackendPid);
    }

    [Fact]
    public async Task A_connection_found_dead_before_the_export_is_replaced_and_the_table_exported()
    {
        await using var client = NewClient();
        var table = await NewTableAsync(client);
        await ClientTestKit.TerminateBetweenStatementsAsync(db.AdminConnectionString, client);
        var csv = new StringWriter();
        Assert.Equal(3, client.ExportCsv(new AequorCsvExport { Table = table }, csv, default).Rows);
    }

    [Fact]
    public async Task A_connection_dead_under_the_COPY_as_it_begins_exports_a_table_on_a_fresh_one_but_never_resends_a_query()
    {
        await using var client = NewClient();
        var table = await NewTableAsync(client);
        // No probe ahead of the COPY: the dead connection is found by the COPY itself.
        client.ProbeAfterIdleMs = int.MaxValue;
        var events = new ClientTestKit.EventLog(client);
        var pid = client.BackendPid!.Value;
        Assert.True(await ClientTestKit.TerminateAsync(db.AdminConnectionString, pid));
        await ClientTestKit.WaitGoneAsync(db.AdminConnectionString, pid);
        var csv = new StringWriter();
        Assert.Equal(3, client.ExportCsv(new AequorCsvExport { Table = table }, csv, default).Rows);
        Assert.NotEqual(pid, client.BackendPid);
        Assert.Single(events.Of<AequorQueryStartEvent>());
        Assert.Single(events.Of<AequorQueryEndEvent>());

        pid = client.BackendPid!.Value;
        Assert.True(await ClientTestKit.TerminateAsync(db.AdminConnectionString, pid));
        await ClientTestKit.WaitGoneAsync(db.AdminConnectionString, pid);
        var failed = Assert.Throws<AequorExportFailedException>(() => client.ExportCsv(new AequorCsvExport { Query = $"SELECT * FROM {table}" }, new StringWriter(), default));
        Assert.Contains("not sent again", failed.Message, StringComparison.Ordinal);
        Assert.Equal(1, await client.ExecuteScalarAsync(new AequorStatement("SELECT 1"), default));
    }

    [Fact]
    public async Task Inside_a_transaction_it_sees_the_transaction_s_own_rows()
    {
        await using var client = NewClient();
        var table = await NewTableAsync(client);
        await client.BeginTransactionAsync(default);
        _ = await client.ExecuteNonQueryAsync(new AequorStatement($"INSERT INTO {table} (id, name) VALUES (4, 'uncommitted')"), default);
        var csv = new StringWriter();
        Assert.Equal(4, client.ExportCsv(new AequorCsvExport { Table = table, Columns = ["name"] }, csv, default).Rows);
        Assert.Contains("uncommitted", csv.ToString(), StringComparison.Ordinal);
        await client.RollbackAsync(default);
        Assert.Equal(3, client.ExportCsv(new AequorCsvExport { Table = table }, new StringWriter(), default).Rows);
    }

    [Fact]
    public async Task An_export_waits_its_turn_behind_an_open_reader()
    {
        await using var client = NewClient();
        var reader = await client.ExecuteReaderAsync(new AequorStatement("SELECT 1"), default);
        using (var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(300)))
        {
            var csv = new StringWriter();
            Assert.ThrowsAny<OperationCanceledException>(() => client.ExportCsv(new AequorCsvExport { Query = "SELECT 1" }, csv, cts.Token));
            Assert.Empty(csv.ToString());
        }

        await reader.DisposeAsync();
        var after = new StringWriter();
        client.ExportCsv(new AequorCsvExport { Query = "SELECT 1 AS one" }, after, default);
        Assert.Equal("one\n1\n", after.ToString());
    }

    [Fact]
    public void A_COPY_TO_STDOUT_refused_as_a_statement_points_to_the_export()
    {
        Assert.Contains("Export-AequorTableData", CopyStreamText.Refusal("COPY (SELECT 1) TO STDOUT"), StringComparison.Ordinal);
    }

    /// <summary>Counts what is written and calls back once, at the first write (the rows are flowing).</summary>
    private sealed class CallbackWriter(Action first) : TextWriter
    {
        private Action? _first = first;

        public long Length { get; private set; }

        public override Encoding Encoding => Encoding.UTF8;

        public override void Write(char value) => Length++;

        public override void Write(char[] buffer, int index, int count)
        {
            Length += count;
            Interlocked.Exchange(ref _first, null)?.Invoke();
        }
    }
}
