namespace Aequor.Engine.Tests;

/// <summary>
/// The server's own idle timeouts, set by the user (SET, the role, the connection string): idle_session_timeout
/// (FATAL 57P05) and idle_in_transaction_session_timeout (FATAL 25P03). PostgreSQL raises both only while it waits
/// for a command, and handles one that fires as a command arrives before running it: the statement the client sent
/// afterwards provably never started. Found by use: a COMMIT after the idle-in-transaction timeout was reported as
/// "whether the transaction committed is unknown", and a write after a short idle-session timeout as "outcome unknown".
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class ClientIdleTimeoutTests(PostgresFixture db)
{
    private AequorClient NewClient() => new(new AequorClientOptions
    {
        ConnectionString = db.AppConnectionString,
        CoordinationSecret = ClientTestKit.Secret,
        ServiceName = "idle-timeouts",
        Reaper = false,
    })
    {
        ProbeAfterIdleMs = 600_000, // no probe ahead of the statement: the server's FATAL is all the client has
    };

    [Fact]
    public async Task A_write_after_the_server_ended_the_idle_session_runs_once_on_a_fresh_connection()
    {
        var table = await ClientTestKit.NewKeyedTableAsync(db.AppConnectionString, "idle_session");
        await using var client = NewClient();
        await client.ExecuteNonQueryAsync(new AequorStatement("SET idle_session_timeout = '100ms'"), default);
        var pid = client.BackendPid!.Value;
        await ClientTestKit.WaitGoneAsync(db.AdminConnectionString, pid);

        Assert.Equal(1, await client.ExecuteNonQueryAsync(new AequorStatement($"INSERT INTO {table} VALUES (1)"), default));

        Assert.NotEqual(pid, client.BackendPid);
        Assert.Equal(1L, await ClientTestKit.CountKeyAsync(db.AdminConnectionString, table, 1));
    }

    [Fact]
    public async Task A_commit_after_the_idle_in_transaction_timeout_says_nothing_was_committed_and_why()
    {
        var table = await ClientTestKit.NewKeyedTableAsync(db.AppConnectionString, "idle_tx");
        await using var client = NewClient();
        await client.BeginTransactionAsync(default);
        await client.ExecuteNonQueryAsync(new AequorStatement($"INSERT INTO {table} VALUES (1)"), default);
        await client.ExecuteNonQueryAsync(new AequorStatement("SET idle_in_transaction_session_timeout = '100ms'"), default);
        await ClientTestKit.WaitGoneAsync(db.AdminConnectionString, client.BackendPid!.Value);

        var lost = await Assert.ThrowsAsync<AequorTransactionLostException>(() => client.CommitAsync(default));

        Assert.StartsWith("Nothing was committed", lost.Message, StringComparison.Ordinal);
        Assert.Contains("25P03", lost.Message, StringComparison.Ordinal);
        Assert.False(client.InTransaction);
        Assert.Equal(0L, await ClientTestKit.CountKeyAsync(db.AdminConnectionString, table, 1));
        Assert.Equal(1, await client.ExecuteScalarAsync(new AequorStatement("SELECT 1"), default));
    }

    [Fact]
    public async Task A_COMMIT_statement_after_the_idle_in_transaction_timeout_says_nothing_was_committed_and_ends_the_block()
    {
        var table = await ClientTestKit.NewKeyedTableAsync(db.AppConnectionString, "idle_sqltx");
        await using var client = NewClient();
        await client.ExecuteNonQueryAsync(new AequorStatement($"SET idle_in_transaction_session_timeout = '100ms'; BEGIN; INSERT INTO {table} VALUES (1)"), default);
        Assert.True(client.InTransaction);
        await ClientTestKit.WaitGoneAsync(db.AdminConnectionString, client.BackendPid!.Value);

        var lost = await Assert.ThrowsAsync<AequorTransactionLostException>(() => client.ExecuteNonQueryAsync(new AequorStatement("COMMIT"), default));

        Assert.StartsWith("Nothing was committed", lost.Message, StringComparison.Ordinal);
        Assert.Contains("25P03", lost.Message, StringComparison.Ordinal);
        Assert.False(client.InTransaction);
        Assert.Equal(0L, await ClientTestKit.CountKeyAsync(db.AdminConnectionString, table, 1));
        Assert.Equal(1, await client.ExecuteScalarAsync(new AequorStatement("SELECT 1"), default));
    }

    [Fact]
    public async Task A_statement_inside_the_transaction_after_the_timeout_names_the_server_s_reason()
    {
        await using var client = NewClient();
        await client.ExecuteNonQueryAsync(new AequorStatement("SET idle_in_transaction_session_timeout = '100ms'; BEGIN"), default);
        await ClientTestKit.WaitGoneAsync(db.AdminConnectionString, client.BackendPid!.Value);

        var lost = await Assert.ThrowsAsync<AequorTransactionLostException>(() => client.ExecuteNonQueryAsync(new AequorStatement("SELECT 1"), default));

        Assert.Contains("idle-in-transaction timeout", lost.Message, StringComparison.Ordinal);
        Assert.True(client.InTransaction);
        await client.RollbackAsync(default);
        Assert.False(client.InTransaction);
    }

    [Fact]
    public async Task A_commit_after_the_backend_was_terminated_while_the_transaction_sat_idle_says_nothing_was_committed()
    {
        // A reaper with IncludeIdleInTransaction, an administrator, a restart: the COMMIT met the FATAL and was called
        // "whether the transaction committed is unknown". After ProbeAfterIdleMs of quiet a probe goes first and tells.
        var table = await ClientTestKit.NewKeyedTableAsync(db.AppConnectionString, "idle_kill");
        await using var client = NewClient();
        client.ProbeAfterIdleMs = 200;
        await client.BeginTransactionAsync(default);
        await client.ExecuteNonQueryAsync(new AequorStatement($"INSERT INTO {table} VALUES (1)"), default);
        await ClientTestKit.TerminateAsync(db.AdminConnectionString, client.BackendPid!.Value);
        await ClientTestKit.WaitGoneAsync(db.AdminConnectionString, client.BackendPid!.Value);
        await Task.Delay(300);

        var lost = await Assert.ThrowsAsync<AequorTransactionLostException>(() => client.CommitAsync(default));

        Assert.StartsWith("Nothing was committed", lost.Message, StringComparison.Ordinal);
        Assert.False(client.InTransaction);
        Assert.Equal(0L, await ClientTestKit.CountKeyAsync(db.AdminConnectionString, table, 1));
    }

    [Fact]
    public async Task A_COMMIT_statement_after_the_backend_was_terminated_while_idle_says_nothing_was_committed_and_ends_the_block()
    {
        var table = await ClientTestKit.NewKeyedTableAsync(db.AppConnectionString, "idle_kill_sql");
        await using var client = NewClient();
        client.ProbeAfterIdleMs = 200;
        await client.ExecuteNonQueryAsync(new AequorStatement($"BEGIN; INSERT INTO {table} VALUES (1)"), default);
        await ClientTestKit.TerminateAsync(db.AdminConnectionString, client.BackendPid!.Value);
        await ClientTestKit.WaitGoneAsync(db.AdminConnectionString, client.BackendPid!.Value);
        await Task.Delay(300);

        var lost = await Assert.ThrowsAsync<AequorTransactionLostException>(() => client.ExecuteNonQueryAsync(new AequorStatement("COMMIT"), default));

        Assert.StartsWith("Nothing was committed", lost.Message, StringComparison.Ordinal);
        Assert.False(client.InTransaction);
        Assert.Equal(0L, await ClientTestKit.CountKeyAsync(db.AdminConnectionString, table, 1));
        Assert.Equal(1, await client.ExecuteScalarAsync(new AequorStatement("SELECT 1"), default));
    }

    [Fact]
    public async Task A_commit_right_after_a_statement_sends_no_probe()
    {
        await using var client = NewClient();
        client.ProbeAfterIdleMs = 60_000;
        var log = new ClientTestKit.EventLog(client);
        await client.BeginTransactionAsync(default);
        await client.ExecuteNonQueryAsync(new AequorStatement("SELECT 1"), default);
        await client.ExecuteNonQueryAsync(new AequorStatement("COMMIT"), default);

        Assert.False(client.InTransaction);
        Assert.Empty(log.Of<AequorClientDeadEvent>());
    }
}
