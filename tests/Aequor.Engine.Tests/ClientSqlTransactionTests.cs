using Npgsql;

namespace Aequor.Engine.Tests;

/// <summary>
/// A transaction opened in SQL (BEGIN sent as a statement) is a transaction to the client too: a reconnect between
/// two calls must not split it, its half rolled back by the server and the rest run outside it and committed.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class ClientSqlTransactionTests(PostgresFixture db)
{
    private AequorClient NewClient() => new(new AequorClientOptions
    {
        ConnectionString = db.AppConnectionString,
        CoordinationSecret = ClientTestKit.Secret,
        ServiceName = "sql-tx",
        Reaper = false,
    });

    private static AequorStatement Sql(string text) => new(text);

    private Task<long> CountAsync(string table) => ClientTestKit.AdminScalarAsync<long>(db.AdminConnectionString, $"SELECT count(*) FROM {table}");

    [Theory]
    [InlineData("COMMIT")]
    [InlineData("ROLLBACK")]
    public async Task A_connection_lost_inside_a_SQL_transaction_is_never_reconnected_under_it_until_it_is_ended(string end)
    {
        var table = await ClientTestKit.NewKeyedTableAsync(db.AppConnectionString, "sqltx");
        await using var client = NewClient();
        _ = await client.ExecuteNonQueryAsync(Sql("BEGIN"), default);
        Assert.True(client.InTransaction);
        _ = await client.ExecuteNonQueryAsync(Sql($"INSERT INTO {table} VALUES (50)"), default);
        var pid = client.BackendPid!.Value;
        await ClientTestKit.TerminateAsync(db.AdminConnectionString, pid);
        await ClientTestKit.WaitGoneAsync(db.AdminConnectionString, pid);

        // Not run on a fresh connection outside the transaction: every statement says the transaction is lost.
        await Assert.ThrowsAsync<AequorTransactionLostException>(() => client.ExecuteNonQueryAsync(Sql($"INSERT INTO {table} VALUES (51)"), default));
        Assert.Throws<AequorTransactionLostException>(() => client.ExecuteNonQuery(Sql($"INSERT INTO {table} VALUES (52)"), default));
        Assert.True(client.InTransaction);
        Assert.Equal(AequorClientState.Broken, client.State);

        if (end == "COMMIT")
        {
            var lost = await Assert.ThrowsAsync<AequorTransactionLostException>(() => client.ExecuteNonQueryAsync(Sql("commit;"), default));
            Assert.StartsWith("Nothing was committed", lost.Message, StringComparison.Ordinal);
        }
        else
        {
            await using var reader = await client.ExecuteReaderAsync(Sql("ROLLBACK"), default);
            Assert.False(await reader.ReadAsync(default));
        }

        Assert.False(client.InTransaction);
        Assert.NotEqual(AequorClientState.Broken, client.State);
        _ = await client.ExecuteNonQueryAsync(Sql($"INSERT INTO {table} VALUES (53)"), default);
        Assert.Equal(1, await CountAsync(table));
        Assert.Equal(1, await ClientTestKit.CountKeyAsync(db.AdminConnectionString, table, 53));
    }

    [Fact]
    public async Task A_SQL_COMMIT_of_a_transaction_an_error_aborted_throws_and_commits_nothing()
    {
        var table = await ClientTestKit.NewKeyedTableAsync(db.AppConnectionString, "sqltx");
        await using var client = NewClient();
        _ = await client.ExecuteNonQueryAsync(Sql("BEGIN"), default);
        _ = await client.ExecuteNonQueryAsync(Sql($"INSERT INTO {table} VALUES (1)"), default);
        await Assert.ThrowsAsync<PostgresException>(() => client.ExecuteNonQueryAsync(Sql($"INSERT INTO {table} VALUES (1)"), default));

        var aborted = await Assert.ThrowsAsync<AequorTransactionAbortedException>(() => client.ExecuteScalarAsync(Sql("END"), default));
        Assert.StartsWith("Nothing was committed", aborted.Message, StringComparison.Ordinal);
        Assert.False(client.InTransaction);
        Assert.Equal(0, await CountAsync(table));
        _ = await client.ExecuteNonQueryAsync(Sql($"INSERT INTO {table} VALUES (2)"), default);
        Assert.Equal(1, await CountAsync(table));
    }

    [Fact]
    public async Task A_SQL_transaction_commits_as_usual_and_is_reported_while_open()
    {
        var table = await ClientTestKit.NewKeyedTableAsync(db.AppConnectionString, "sqltx");
        await using var client = NewClient();
        Assert.False(client.InTransaction);
        _ = await client.ExecuteNonQueryAsync(Sql("START TRANSACTION"), default);
        _ = await client.ExecuteNonQueryAsync(Sql($"INSERT INTO {table} VALUES (1)"), default);
        Assert.True(client.InTransaction);
        var open = await Assert.ThrowsAsync<AequorTransactionStateException>(() => client.BeginTransactionAsync(default));
        Assert.True(open.TransactionOpen);
        _ = await client.ExecuteNonQueryAsync(Sql("COMMIT"), default);
        Assert.False(client.InTransaction);
        var none = await Assert.ThrowsAsync<AequorTransactionStateException>(() => client.RollbackAsync(default));
        Assert.False(none.TransactionOpen);
        Assert.Equal(1, await CountAsync(table));
    }

    [Fact]
    public async Task A_COMMIT_sent_in_SQL_ends_the_transaction_BeginTransactionAsync_opened_and_the_session_goes_on()
    {
        var table = await ClientTestKit.NewKeyedTableAsync(db.AppConnectionString, "sqltx");
        await using var client = NewClient();
        await client.BeginTransactionAsync(default);
        _ = await client.ExecuteNonQueryAsync(Sql($"INSERT INTO {table} VALUES (1)"), default);
        _ = await client.ExecuteNonQueryAsync(Sql("COMMIT"), default);

        Assert.False(client.InTransaction);
        _ = await client.ExecuteNonQueryAsync(Sql($"INSERT INTO {table} VALUES (2)"), default);
        Assert.Equal(2, await CountAsync(table));
    }

    [Fact]
    public async Task A_COMMIT_statement_of_a_transaction_an_error_aborted_throws_under_BeginTransactionAsync_too()
    {
        var table = await ClientTestKit.NewKeyedTableAsync(db.AppConnectionString, "sqltx");
        await using var client = NewClient();
        await client.BeginTransactionAsync(default);
        _ = await client.ExecuteNonQueryAsync(Sql($"INSERT INTO {table} VALUES (1)"), default);
        await Assert.ThrowsAsync<PostgresException>(() => client.ExecuteNonQueryAsync(Sql("SELECT 1 / 0"), default));

        await Assert.ThrowsAsync<AequorTransactionAbortedException>(() => client.ExecuteNonQueryAsync(Sql("COMMIT"), default));
        Assert.False(client.InTransaction);
        Assert.Equal(0, await CountAsync(table));
        _ = await client.ExecuteNonQueryAsync(Sql($"INSERT INTO {table} VALUES (2)"), default);
        Assert.Equal(1, await CountAsync(table));
    }

    [Fact]
    public async Task A_first_statement_that_ends_BeginTransactionAsyncs_transaction_ends_it()
    {
        var table = await ClientTestKit.NewKeyedTableAsync(db.AppConnectionString, "sqltx");
        await using var client = NewClient();
        await client.BeginTransactionAsync(default);
        _ = await client.ExecuteNonQueryAsync(Sql($"INSERT INTO {table} VALUES (1); COMMIT"), default);

        Assert.False(client.InTransaction);
        _ = await client.ExecuteNonQueryAsync(Sql($"INSERT INTO {table} VALUES (2)"), default);
        Assert.Equal(2, await CountAsync(table));
    }

    [Fact]
    public async Task RollbackAsync_and_CommitAsync_end_a_transaction_opened_in_SQL()
    {
        var table = await ClientTestKit.NewKeyedTableAsync(db.AppConnectionString, "sqltx");
        await using var client = NewClient();
        _ = await client.ExecuteNonQueryAsync(Sql("BEGIN"), default);
        _ = await client.ExecuteNonQueryAsync(Sql($"INSERT INTO {table} VALUES (1)"), default);
        await client.RollbackAsync(default);
        Assert.False(client.InTransaction);
        _ = await client.ExecuteNonQueryAsync(Sql("BEGIN"), default);
        _ = await client.ExecuteNonQueryAsync(Sql($"INSERT INTO {table} VALUES (2)"), default);
        await client.CommitAsync(default);
        Assert.Equal(1, await CountAsync(table));
        Assert.Equal(1, await ClientTestKit.CountKeyAsync(db.AdminConnectionString, table, 2));
    }

    /// <summary>A COMMIT that reached the server may have committed: losing its connection is not "rolled back".</summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_connection_lost_during_a_COMMIT_statement_is_an_unknown_outcome(bool managed)
    {
        var table = await ClientTestKit.NewKeyedTableAsync(db.AppConnectionString, "sqltx");
        // A deferred check that takes its time at COMMIT: the backend is terminated while the COMMIT runs.
        await using (var setup = NewClient())
        {
            _ = await setup.ExecuteNonQueryAsync(Sql(
                $"CREATE FUNCTION {table}_slow() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(3); RETURN NULL; END $$; "
                + $"CREATE CONSTRAINT TRIGGER {table}_at_commit AFTER INSERT ON {table} DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION {table}_slow()"), default);
        }

        await using var client = NewClient();
        if (managed)
        {
            await client.BeginTransactionAsync(default);
        }
        else
        {
            _ = await client.ExecuteNonQueryAsync(Sql("BEGIN"), default);
        }

        _ = await client.ExecuteNonQueryAsync(Sql($"INSERT INTO {table} VALUES (1)"), default);
        var pid = client.BackendPid!.Value;
        var commit = client.ExecuteNonQueryAsync(Sql("COMMIT"), default);
        await ClientTestKit.WaitActiveAsync(db.AdminConnectionString, pid, "COMMIT%");
        Assert.True(await ClientTestKit.TerminateAsync(db.AdminConnectionString, pid));

        var error = await Assert.ThrowsAsync<AequorOutcomeUnknownException>(() => commit);
        Assert.Contains("whether the transaction committed is unknown", error.Message, StringComparison.Ordinal);

        // The COMMIT ended the transaction either way: never reported "rolled back" afterwards, and the session goes on.
        Assert.False(client.InTransaction);
        Assert.Equal(1, await client.ExecuteScalarAsync(Sql("SELECT 1"), default));
    }

    [Fact]
    public async Task ROLLBACK_AND_CHAIN_after_a_lost_SQL_transaction_opens_the_new_one_it_asks_for()
    {
        var table = await ClientTestKit.NewKeyedTableAsync(db.AppConnectionString, "sqltx");
        await using var client = NewClient();
        _ = await client.ExecuteNonQueryAsync(Sql("BEGIN"), default);
        _ = await client.ExecuteNonQueryAsync(Sql($"INSERT INTO {table} VALUES (1)"), default);
        var pid = client.BackendPid!.Value;
        await ClientTestKit.TerminateAsync(db.AdminConnectionString, pid);
        await ClientTestKit.WaitGoneAsync(db.AdminConnectionString, pid);
        await Assert.ThrowsAsync<AequorTransactionLostException>(() => client.ExecuteNonQueryAsync(Sql($"INSERT INTO {table} VALUES (2)"), default));

        _ = await client.ExecuteNonQueryAsync(Sql("ROLLBACK AND CHAIN"), default);
        Assert.True(client.InTransaction);
        _ = await client.ExecuteNonQueryAsync(Sql($"INSERT INTO {table} VALUES (3)"), default);
        _ = await client.ExecuteNonQueryAsync(Sql("ROLLBACK"), default);
        Assert.False(client.InTransaction);
        Assert.Equal(0, await CountAsync(table));
    }

    [Fact]
    public async Task RollbackAsync_of_a_SQL_transaction_whose_connection_died_is_quiet_and_ends_it()
    {
        await using var client = NewClient();
        _ = await client.ExecuteNonQueryAsync(Sql("BEGIN"), default);
        var pid = client.BackendPid!.Value;
        await ClientTestKit.TerminateAsync(db.AdminConnectionString, pid);
        await ClientTestKit.WaitGoneAsync(db.AdminConnectionString, pid);

        await client.RollbackAsync(default);
        Assert.False(client.InTransaction);
        Assert.Equal(1, await client.ExecuteScalarAsync(Sql("SELECT 1"), default));
    }

    [Fact]
    public async Task COMMIT_AND_CHAIN_of_an_aborted_managed_transaction_throws_and_opens_the_chained_one()
    {
        var table = await ClientTestKit.NewKeyedTableAsync(db.AppConnectionString, "sqltx");
        await using var client = NewClient();
        await client.BeginTransactionAsync(default);
        _ = await client.ExecuteNonQueryAsync(Sql($"INSERT INTO {table} VALUES (1)"), default);
        await Assert.ThrowsAsync<PostgresException>(() => client.ExecuteNonQueryAsync(Sql("SELECT 1 / 0"), default));

        var aborted = await Assert.ThrowsAsync<AequorTransactionAbortedException>(() => client.ExecuteNonQueryAsync(Sql("COMMIT AND CHAIN"), default));
        Assert.Contains("AND CHAIN: a new transaction is open", aborted.Message, StringComparison.Ordinal);
        Assert.True(client.InTransaction);
        _ = await client.ExecuteNonQueryAsync(Sql($"INSERT INTO {table} VALUES (2)"), default);
        await client.RollbackAsync(default);
        Assert.Equal(0, await CountAsync(table));
    }

    [Theory]
    [InlineData("COMMIT", TransactionControl.Commit)]
    [InlineData(" commit work ; ", TransactionControl.Commit)]
    [InlineData("END TRANSACTION", TransactionControl.Commit)]
    [InlineData("ROLLBACK", TransactionControl.Rollback)]
    [InlineData("abort", TransactionControl.Rollback)]
    [InlineData("ROLLBACK TO SAVEPOINT a", TransactionControl.None)]
    [InlineData("ROLLBACK PREPARED 'x'", TransactionControl.None)]
    [InlineData("COMMIT AND CHAIN", TransactionControl.Commit)]
    [InlineData("rollback and no chain", TransactionControl.Rollback)]
    [InlineData("COMMIT; SELECT 1", TransactionControl.None)]
    [InlineData("SELECT 'commit'", TransactionControl.None)]
    internal void Only_a_plain_COMMIT_or_ROLLBACK_counts_as_ending_the_block(string text, TransactionControl expected) =>
        Assert.Equal(expected, TransactionControlText.Of(text));

    [Fact]
    public async Task The_server_status_is_readable_from_this_Npgsql()
    {
        await using var connection = new NpgsqlConnection(db.AppConnectionString);
        await connection.OpenAsync();
        Assert.Equal(ServerTransactionStatus.Idle, ServerTransaction.Of(connection));
        await using (var begin = new NpgsqlCommand("BEGIN", connection))
        {
            await begin.ExecuteNonQueryAsync();
        }

        Assert.Equal(ServerTransactionStatus.InBlock, ServerTransaction.Of(connection));
    }
}
