using Npgsql;

namespace Aequor.Engine.Tests;

/// <summary>
/// PostgreSQL answers the COMMIT of a transaction that a statement's error aborted with a rollback and no error:
/// the client must not report that as committed.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class ClientTransactionAbortTests(PostgresFixture db)
{
    private AequorClient NewClient(int commandTimeout = 30) => new(new AequorClientOptions
    {
        ConnectionString = db.AppConnectionString + $";Command Timeout={commandTimeout}",
        CoordinationSecret = ClientTestKit.Secret,
        ServiceName = "tx-abort",
        Reaper = false,
    });

    private static AequorStatement Insert(string table, int id) => new($"INSERT INTO {table} VALUES ($1)") { PositionalParameters = [id] };

    private Task<long> CountAsync(string table) => ClientTestKit.AdminScalarAsync<long>(db.AdminConnectionString, $"SELECT count(*) FROM {table}");

    /// <summary>TransactionAborted: set by a statement's error in a transaction (begun by the client or by a BEGIN sent
    /// as SQL), cleared when the transaction ends; a healthy transaction, or none, is not aborted.</summary>
    [Fact]
    public async Task TransactionAborted_says_a_statement_error_aborted_the_open_transaction_until_it_ends()
    {
        var table = await ClientTestKit.NewKeyedTableAsync(db.AppConnectionString, "txabortflag");
        await using var client = NewClient();
        Assert.False(client.TransactionAborted);

        await client.BeginTransactionAsync(default);
        await client.ExecuteNonQueryAsync(Insert(table, 1), default);
        Assert.False(client.TransactionAborted);
        await Assert.ThrowsAsync<PostgresException>(() => client.ExecuteNonQueryAsync(Insert(table, 1), default));
        Assert.True(client.TransactionAborted);
        Assert.False(client.TransactionLost);
        await client.RollbackAsync(default);
        Assert.False(client.TransactionAborted);

        await client.ExecuteNonQueryAsync(new AequorStatement("BEGIN"), default);
        Assert.False(client.TransactionAborted);
        await Assert.ThrowsAsync<PostgresException>(() => client.ExecuteScalarAsync(new AequorStatement("SELECT 1/0"), default));
        Assert.True(client.TransactionAborted);
        await client.ExecuteNonQueryAsync(new AequorStatement("ROLLBACK"), default);
        Assert.False(client.TransactionAborted);
        Assert.False(client.InTransaction);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Committing_after_a_failed_statement_throws_commits_nothing_and_ends_the_transaction(bool synchronous)
    {
        var table = await ClientTestKit.NewKeyedTableAsync(db.AppConnectionString, "txabort");
        await using var client = NewClient();
        await client.BeginTransactionAsync(default);
        _ = synchronous ? client.ExecuteNonQuery(Insert(table, 1), default) : await client.ExecuteNonQueryAsync(Insert(table, 1), default);
        var duplicate = await Assert.ThrowsAsync<PostgresException>(() => client.ExecuteNonQueryAsync(Insert(table, 1), default));
        Assert.Equal(PostgresErrorCodes.UniqueViolation, duplicate.SqlState);
        var ignored = await Assert.ThrowsAsync<PostgresException>(() => client.ExecuteNonQueryAsync(Insert(table, 2), default));
        Assert.Equal(PostgresErrorCodes.InFailedSqlTransaction, ignored.SqlState);

        var aborted = await Assert.ThrowsAsync<AequorTransactionAbortedException>(() => client.CommitAsync(default));
        Assert.Same(duplicate, aborted.InnerException);
        Assert.Contains("Nothing was committed", aborted.Message, StringComparison.Ordinal);
        Assert.Contains("23505", aborted.Message, StringComparison.Ordinal);

        Assert.Equal(0, await CountAsync(table));
        Assert.False(client.InTransaction);
        _ = await client.ExecuteNonQueryAsync(Insert(table, 3), default);
        Assert.Equal(1, await CountAsync(table));
    }

    [Fact]
    public async Task An_error_while_reading_rows_aborts_the_transaction_too()
    {
        var table = await ClientTestKit.NewKeyedTableAsync(db.AppConnectionString, "txabort");
        await using var client = NewClient();
        await client.BeginTransactionAsync(default);
        _ = await client.ExecuteNonQueryAsync(Insert(table, 1), default);
        await Assert.ThrowsAsync<PostgresException>(async () =>
        {
            await using var reader = await client.ExecuteReaderAsync(new AequorStatement("SELECT 1 / (3 - g) FROM generate_series(1, 5) g"), default);
            while (await reader.ReadAsync(default))
            {
            }
        });

        await Assert.ThrowsAsync<AequorTransactionAbortedException>(() => client.CommitAsync(default));
        Assert.Equal(0, await CountAsync(table));
    }

    [Fact]
    public async Task A_command_timeout_inside_the_transaction_aborts_it()
    {
        var table = await ClientTestKit.NewKeyedTableAsync(db.AppConnectionString, "txabort");
        await using var client = NewClient(commandTimeout: 1);
        await client.BeginTransactionAsync(default);
        _ = await client.ExecuteNonQueryAsync(Insert(table, 1), default);
        var timeout = await Assert.ThrowsAsync<AequorCommandTimeoutException>(() => client.ExecuteNonQueryAsync(new AequorStatement("SELECT pg_sleep(5)"), default));

        var aborted = await Assert.ThrowsAsync<AequorTransactionAbortedException>(() => client.CommitAsync(default));
        Assert.Same(timeout, aborted.InnerException);
        Assert.Equal(0, await CountAsync(table));
    }

    [Fact]
    public async Task A_transaction_rolled_back_to_a_savepoint_after_the_error_commits_the_rest()
    {
        var table = await ClientTestKit.NewKeyedTableAsync(db.AppConnectionString, "txabort");
        await using var client = NewClient();
        await client.BeginTransactionAsync(default);
        _ = await client.ExecuteNonQueryAsync(Insert(table, 1), default);
        _ = await client.ExecuteNonQueryAsync(new AequorStatement("SAVEPOINT before_batch"), default);
        await Assert.ThrowsAsync<PostgresException>(() => client.ExecuteNonQueryAsync(Insert(table, 1), default));
        _ = await client.ExecuteNonQueryAsync(new AequorStatement("ROLLBACK TO SAVEPOINT before_batch"), default);
        _ = await client.ExecuteNonQueryAsync(Insert(table, 2), default);

        await client.CommitAsync(default);
        Assert.Equal(2, await CountAsync(table));
    }

    [Fact]
    public async Task Rolling_back_after_the_error_is_quiet_and_the_next_transaction_commits()
    {
        var table = await ClientTestKit.NewKeyedTableAsync(db.AppConnectionString, "txabort");
        await using var client = NewClient();
        await client.BeginTransactionAsync(default);
        await Assert.ThrowsAsync<PostgresException>(() => client.ExecuteNonQueryAsync(new AequorStatement("SELECT 1 / 0"), default));
        await client.RollbackAsync(default);

        await client.BeginTransactionAsync(default);
        _ = await client.ExecuteNonQueryAsync(Insert(table, 1), default);
        await client.CommitAsync(default);
        Assert.Equal(1, await CountAsync(table));
    }
}
