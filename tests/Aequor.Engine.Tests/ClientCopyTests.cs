using Aequor.Engine.Tests.Faults;

namespace Aequor.Engine.Tests;

/// <summary>OpenTableWriter: one COPY … FROM STDIN, all rows or none, the client usable afterwards.</summary>
[Collection(PostgresCollection.Name)]
public sealed class ClientCopyTests(PostgresFixture db)
{
    private AequorClient NewClient() => new(new AequorClientOptions
    {
        ConnectionString = db.AppConnectionString,
        CoordinationSecret = ClientTestKit.Secret,
        ServiceName = "client-copy",
        Reaper = false,
        MinBackoff = 20,
        MaxBackoff = 200,
    });

    private Task<string> NewTableAsync() => ClientTestKit.NewKeyedTableAsync(db.AppConnectionString, "client_copy");

    private Task<long> CountAsync(string table) => ClientTestKit.AdminScalarAsync<long>(db.AdminConnectionString, $"SELECT count(*) FROM {table}");

    [Fact]
    public async Task Writes_all_rows_in_one_COPY()
    {
        var table = await NewTableAsync();
        await using var client = NewClient();
        using (var writer = client.OpenTableWriter(table, columns => columns, null, default))
        {
            Assert.Equal(["id"], writer.Columns);
            for (var i = 1; i <= 1000; i++)
            {
                writer.WriteRow([i.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
            }

            Assert.Equal(1000, writer.Complete());
        }

        Assert.Equal(1000, await CountAsync(table));
    }

    [Fact]
    public async Task Complete_returns_the_rows_the_server_stored_not_those_sent_when_a_trigger_skips_some()
    {
        var table = await NewTableAsync();
        // A BEFORE INSERT trigger that returns NULL keeps the row out (deduplication, old-style partitioning): the
        // server's COPY count says so, as INSERT's does.
        await ClientTestKit.AdminScalarAsync<object>(db.AdminConnectionString,
            $"CREATE FUNCTION {table}_odd() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN CASE WHEN NEW.id % 2 = 1 THEN NEW END; END'; " +
            $"CREATE TRIGGER odd BEFORE INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION {table}_odd()");
        await using var client = NewClient();
        var ends = new List<int>();
        client.OnQueryEnd += (_, e) => ends.Add(e.RecordsAffected);
        using (var writer = client.OpenTableWriter(table, columns => columns, null, default))
        {
            for (var i = 1; i <= 10; i++)
            {
                writer.WriteRow([i]);
            }

            Assert.Equal(5, writer.Complete());
            Assert.Equal(10, writer.RowsWritten);
        }

        Assert.Equal(5, await CountAsync(table));
        Assert.Equal([5], ends);
    }

    [Fact]
    public async Task Times_read_back_as_written_and_as_a_parameter_stores_them_DateTime_s_end_included()
    {
        var table = "client_copy_times_" + Guid.NewGuid().ToString("N")[..10];
        await using var client = NewClient();
        await client.ExecuteNonQueryAsync(new AequorStatement($"CREATE TABLE {table} (id int, ts timestamp, tz timestamptz, t time)"), default);
        await AssertWrittenAsBoundAsync(client, table, "ts, tz, t, ts::text, tz::text, t::text",
        [
            [1, DateTime.MaxValue, DateTimeOffset.MaxValue, TimeOnly.MaxValue],
            [2, new DateTime(638500000000000016), new DateTime(638500000000009999, DateTimeKind.Utc), new TimeOnly(12, 0).Add(TimeSpan.FromTicks(9))],
        ]);

        var ends = await ClientTestKit.ReadRowAsync(client, $"SELECT ts, tz, t::text FROM {table} WHERE id = 1");
        Assert.Equal(DateTime.MaxValue, ends[0]);
        Assert.Equal(DateTime.MaxValue, ends[1]);
        Assert.Equal("23:59:59.999999", ends[2]);
    }

    /// <summary>
    /// A [timespan] of a day or more is stored with its days, as a parameter binds it (Npgsql: days, then the time):
    /// '1 day 12:00:00', not '36:00:00', which added to a timestamptz across a change of daylight saving time gives
    /// another instant.
    /// </summary>
    [Fact]
    public async Task Intervals_of_a_day_or_more_are_stored_with_their_days_as_a_parameter_stores_them()
    {
        var table = "client_copy_spans_" + Guid.NewGuid().ToString("N")[..10];
        await using var client = NewClient();
        await client.ExecuteNonQueryAsync(new AequorStatement($"CREATE TABLE {table} (id int, i interval, t time)"), default);
        await AssertWrittenAsBoundAsync(client, table, "i, t, i::text, t::text, justify_hours(i)::text",
        [
            [1, TimeSpan.FromDays(1.5), TimeSpan.FromHours(23.5)],
            [2, TimeSpan.FromDays(-1.5).Add(TimeSpan.FromTicks(-10)), TimeSpan.Zero],
            [3, TimeSpan.FromDays(400).Add(TimeSpan.FromTicks(17)), new TimeSpan(0, 0, 0, 59, 999)],
            [4, TimeSpan.FromHours(-5), TimeSpan.FromMinutes(1)],
        ]);
        Assert.Equal("1 day 12:00:00", await client.ExecuteScalarAsync(new AequorStatement($"SELECT i::text FROM {table} WHERE id = 1"), default));
    }

    /// <summary>
    /// Writes each row (an id first) with a table writer, then again with INSERT and the values as parameters (id +
    /// 10), and compares what the two stored, as <paramref name="read"/> reads it.
    /// </summary>
    private static async Task AssertWrittenAsBoundAsync(AequorClient client, string table, string read, object?[][] values)
    {
        using (var writer = client.OpenTableWriter(table, columns => columns, null, default))
        {
            foreach (var row in values)
            {
                writer.WriteRow(row);
            }

            writer.Complete();
        }

        var placeholders = string.Join(", ", Enumerable.Range(2, values[0].Length - 1).Select(i => "$" + i));
        foreach (var row in values)
        {
            await client.ExecuteNonQueryAsync(new AequorStatement($"INSERT INTO {table} VALUES ($1 + 10, {placeholders})") { PositionalParameters = row }, default);
        }

        foreach (var id in values.Select(row => (int)row[0]!))
        {
            var copied = await ClientTestKit.ReadRowAsync(client, $"SELECT {read} FROM {table} WHERE id = {id}");
            var bound = await ClientTestKit.ReadRowAsync(client, $"SELECT {read} FROM {table} WHERE id = {id + 10}");
            Assert.Equal(bound, copied);
        }
    }

    [Fact]
    public async Task An_array_for_a_column_of_no_array_type_is_refused_naming_row_and_column_not_stored_as_its_literal()
    {
        // INSERT refuses text[] for a text column; COPY's text took the array literal, and stored {"a","b"} as text.
        var table = "client_copy_arrays_" + Guid.NewGuid().ToString("N")[..10];
        await using var client = NewClient();
        await client.ExecuteNonQueryAsync(new AequorStatement($"CREATE TABLE {table} (id int, name text, doc jsonb, tags text[], data bytea)"), default);
        using (var writer = client.OpenTableWriter(table, columns => columns, null, default))
        {
            writer.WriteRow([1, "plain", "{}", new object?[] { "a", null }, new object[] { (byte)1 }]);
            var refused = Assert.Throws<AequorConfigurationException>(() => writer.WriteRow([2, new object?[] { "a", "b" }, null, null, null]));
            Assert.Contains("Row 2, column 'name'", refused.Message, StringComparison.Ordinal);
            Assert.Contains("text", refused.Message, StringComparison.Ordinal);
            Assert.Throws<AequorConfigurationException>(() => writer.WriteRow([3, null, Array.Empty<object>(), null, null]));
        }

        Assert.Equal(0, await CountAsync(table));
    }

    [Fact]
    public async Task A_refused_row_writes_nothing_names_the_row_and_the_client_goes_on()
    {
        var table = await NewTableAsync();
        await using var client = NewClient();
        using var writer = client.OpenTableWriter(table, columns => columns, null, default);
        for (var i = 1; i <= 10; i++)
        {
            writer.WriteRow([i == 7 ? "seven" : i]);
        }

        var failed = Assert.Throws<AequorCopyFailedException>(() => writer.Complete());
        Assert.Equal(7, failed.Row);
        Assert.Equal("22P02", failed.SqlState);
        Assert.Equal(0, await CountAsync(table));
        Assert.Equal(1, await client.ExecuteScalarAsync(new AequorStatement("SELECT 1"), default));
    }

    [Fact]
    public async Task Disposed_before_the_end_writes_nothing_and_inside_a_transaction_aborts_it()
    {
        var table = await NewTableAsync();
        await using var client = NewClient();
        using (var writer = client.OpenTableWriter(table, columns => columns, null, default))
        {
            writer.WriteRow([1]);
        }

        Assert.Equal(0, await CountAsync(table));
        Assert.Equal(1, await client.ExecuteScalarAsync(new AequorStatement("SELECT 1"), default));

        await client.BeginTransactionAsync(default);
        using (var writer = client.OpenTableWriter(table, columns => columns, null, default))
        {
            writer.WriteRow([2]);
            writer.Complete();
        }

        Assert.Equal(1L, await client.ExecuteScalarAsync(new AequorStatement($"SELECT count(*) FROM {table}"), default));
        await client.RollbackAsync(default);
        Assert.Equal(0, await CountAsync(table));
    }

    [Fact]
    public async Task A_connection_lost_while_rows_are_sent_writes_nothing_and_the_client_reconnects()
    {
        var table = await NewTableAsync();
        await using var client = NewClient();
        await client.ConnectAsync(default);
        var pid = client.BackendPid!.Value;
        using var writer = client.OpenTableWriter(table, columns => columns, null, default);
        writer.WriteRow([1]);
        Assert.True(await ClientTestKit.TerminateAsync(db.AdminConnectionString, pid));
        await ClientTestKit.WaitGoneAsync(db.AdminConnectionString, pid);
        var failed = Assert.Throws<AequorCopyFailedException>(() =>
        {
            for (var i = 2; i < 1_000_000; i++)
            {
                writer.WriteRow([i]);
            }
        });
        Assert.Contains("nothing was written", failed.Message, StringComparison.Ordinal);
        Assert.Equal(0, await CountAsync(table));
        Assert.Equal(1, await client.ExecuteScalarAsync(new AequorStatement("SELECT 1"), default));
    }

    [Fact]
    public async Task A_missing_table_or_a_refused_choice_sends_nothing_and_frees_the_client()
    {
        await using var client = NewClient();
        var missing = Assert.Throws<AequorConfigurationException>(() => client.OpenTableWriter("no_such_table_xyz", c => c, null, default));
        Assert.Contains("no_such_table_xyz", missing.Message, StringComparison.Ordinal);
        var table = await NewTableAsync();
        Assert.Throws<InvalidOperationException>(() => client.OpenTableWriter(table, _ => throw new InvalidOperationException("no"), null, default));
        Assert.Equal(1, await client.ExecuteScalarAsync(new AequorStatement("SELECT 1"), default));
    }

    /// <summary>What a load of no rows checks: the columns rows can fill, the generated one left out; a missing table
    /// named; inside a transaction the read joins it and leaves it open and usable; the client free afterwards.</summary>
    [Fact]
    public async Task ReadTableColumns_reads_the_fillable_columns_names_a_missing_table_and_leaves_a_transaction_usable()
    {
        var table = await NewTableAsync();
        await using var client = NewClient();
        await client.ExecuteNonQueryAsync(new AequorStatement($"ALTER TABLE {table} ADD COLUMN \"Note\" text, ADD COLUMN twice int GENERATED ALWAYS AS (id * 2) STORED"), default);

        Assert.Equal(["id", "Note"], client.ReadTableColumns(table, default));
        var missing = Assert.Throws<AequorConfigurationException>(() => client.ReadTableColumns("no_such_table_xyz", default));
        Assert.Contains("The table no_such_table_xyz does not exist", missing.Message, StringComparison.Ordinal);

        await client.BeginTransactionAsync(default);
        await client.ExecuteNonQueryAsync(new AequorStatement($"INSERT INTO {table} (id) VALUES (1)"), default);
        Assert.Equal(["id", "Note"], client.ReadTableColumns(table, default));
        Assert.Throws<AequorConfigurationException>(() => client.ReadTableColumns("no_such_table_xyz", default));
        Assert.True(client.InTransaction);
        await client.CommitAsync(default);
        Assert.Equal(1, await CountAsync(table));
        Assert.Equal(1, await client.ExecuteScalarAsync(new AequorStatement("SELECT 1"), default));
    }

    [Fact]
    public async Task A_load_raises_query_start_then_end_or_error_once_with_the_COPY_text_and_no_values()
    {
        var table = await NewTableAsync();
        await using var client = NewClient();
        await client.ConnectAsync(default);
        var events = new ClientTestKit.EventLog(client);
        using (var writer = client.OpenTableWriter(table, columns => columns, null, default))
        {
            // Values no duration, timestamp or table name in an event can hold by chance ("41" was: 00:00:00.0041…).
            writer.WriteRow([987654321]);
            writer.WriteRow([987654322]);
            writer.Complete();
        }

        var start = Assert.Single(events.Of<AequorQueryStartEvent>());
        Assert.Equal($"COPY \"{table}\" (\"id\") FROM STDIN", start.CommandText);
        Assert.Equal(0, start.ParameterCount);
        var end = Assert.Single(events.Of<AequorQueryEndEvent>());
        Assert.Equal(start.CommandText, end.CommandText);
        Assert.Equal(2, end.RecordsAffected);
        Assert.Empty(events.Of<AequorQueryErrorEvent>());
        Assert.DoesNotContain(events.All, e => e.ToString()!.Contains("987654321", StringComparison.Ordinal));

        // Refused by the server at the end, cancelled by disposing, refused before sending: an error each, no end.
        events.All.Clear();
        using (var writer = client.OpenTableWriter(table, columns => columns, null, default))
        {
            writer.WriteRow(["seven"]);
            Assert.Throws<AequorCopyFailedException>(() => writer.Complete());
        }

        using (var writer = client.OpenTableWriter(table, columns => columns, null, default))
        {
            writer.WriteRow([43]);
        }

        using (var writer = client.OpenTableWriter(table, columns => columns, null, default))
        {
            Assert.Throws<AequorConfigurationException>(() => writer.WriteRow([new object()]));
        }

        Assert.Equal(3, events.Of<AequorQueryStartEvent>().Count);
        Assert.Empty(events.Of<AequorQueryEndEvent>());
        var errors = events.Of<AequorQueryErrorEvent>();
        Assert.Equal(3, errors.Count);
        Assert.All(errors, e => Assert.Equal(start.CommandText, e.CommandText));
        Assert.All(errors, e => Assert.False(e.WillRetry));
        Assert.Equal("22P02", Assert.IsType<AequorCopyFailedException>(errors[0].Error).SqlState);
        Assert.IsType<AequorConfigurationException>(errors[2].Error);
        Assert.Equal(2, await CountAsync(table));
    }

    [Fact]
    public async Task A_connection_lost_before_the_last_rows_left_at_the_finish_writes_nothing_and_says_so()
    {
        var table = await NewTableAsync();
        var (proxy, client) = ProxiedClient.Create(db, "client-copy-lost-at-finish");
        await using var _ = proxy;
        await using var __ = client;
        await client.ConnectAsync(default);
        var pid = client.BackendPid!.Value;
        var events = new ClientTestKit.EventLog(client);
        using var writer = client.OpenTableWriter(table, columns => columns, 5, default);
        for (var i = 1; i <= 10; i++)
        {
            // A few bytes: they wait in the client's buffers until Complete sends them.
            writer.WriteRow([i]);
        }

        proxy.ResetAll();
        await ClientTestKit.WaitGoneAsync(db.AdminConnectionString, pid);
        var failed = Assert.Throws<AequorCopyFailedException>(() => writer.Complete());
        Assert.Contains("nothing was written", failed.Message, StringComparison.Ordinal);
        Assert.Equal(0, await CountAsync(table));
        Assert.IsType<AequorCopyFailedException>(Assert.Single(events.Of<AequorQueryErrorEvent>()).Error);
        Assert.Equal(1, await client.ExecuteScalarAsync(new AequorStatement("SELECT 1"), default));
    }

    [Fact]
    public async Task A_connection_lost_after_the_end_of_the_COPY_was_sent_is_an_unknown_outcome_the_rows_may_be_written()
    {
        var table = await NewTableAsync();
        var (proxy, client) = ProxiedClient.Create(db, "client-copy-lost-after-done");
        await using var _ = proxy;
        await using var __ = client;
        using var writer = client.OpenTableWriter(table, columns => columns, 1, default);
        for (var i = 1; i <= 10; i++)
        {
            writer.WriteRow([i]);
        }

        // The server receives the rows and the end of the COPY and commits; its answer never comes back.
        proxy.DropReplies = true;
        var unknown = Assert.Throws<AequorOutcomeUnknownException>(() => writer.Complete());
        Assert.Contains("unknown", unknown.Message, StringComparison.Ordinal);
        proxy.DropReplies = false;
        Assert.Equal(10, await CountAsync(table));
        Assert.Equal(1, await client.ExecuteScalarAsync(new AequorStatement("SELECT 1"), default));
    }

    [Fact]
    public async Task A_cancelled_token_stops_a_COPY_the_server_is_still_finishing_and_nothing_is_written()
    {
        var table = await NewTableAsync();
        await using var client = NewClient();
        // Each row takes the server a second: the rows, sent only when Complete flushes them, keep it busy past the end.
        _ = await client.ExecuteNonQueryAsync(new AequorStatement(
            $"CREATE FUNCTION {table}_slow() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(1); RETURN NEW; END $$; "
            + $"CREATE TRIGGER {table}_slow BEFORE INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION {table}_slow()"), default);
        var pid = client.BackendPid!.Value;
        var events = new ClientTestKit.EventLog(client);
        using var cts = new CancellationTokenSource();
        var writer = client.OpenTableWriter(table, columns => columns, null, default);
        for (var i = 1; i <= 60; i++)
        {
            writer.WriteRow([i]);
        }

        var finishing = Task.Run(() => writer.Complete(cts.Token));
        await ClientTestKit.WaitUntilAsync(
            async () => await ClientTestKit.AdminScalarAsync<long>(db.AdminConnectionString,
                "SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND wait_event = 'PgSleep'", pid) > 0,
            TimeSpan.FromSeconds(30), "the trigger to run");
        await cts.CancelAsync();
        // Bounded only so that a cancel never sent fails here instead of after all 60 rows.
        var done = await Task.WhenAny(finishing, Task.Delay(TimeSpan.FromSeconds(30)));
        Assert.Same(finishing, done);
        var cancelled = await Assert.ThrowsAnyAsync<OperationCanceledException>(() => finishing);
        Assert.Contains("nothing was written", cancelled.Message, StringComparison.Ordinal);
        Assert.IsType<AequorCopyCancelledException>(Assert.Single(events.Of<AequorQueryErrorEvent>()).Error);
        Assert.Empty(events.Of<AequorQueryEndEvent>());
        Assert.Equal(0, await CountAsync(table));
        Assert.Equal(pid, client.BackendPid);
        Assert.Equal(1, await client.ExecuteScalarAsync(new AequorStatement("SELECT 1"), default));
    }
}
