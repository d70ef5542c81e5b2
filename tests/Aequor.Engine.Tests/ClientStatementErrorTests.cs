using Npgsql;

namespace Aequor.Engine.Tests;

/// <summary>
/// Server errors of the classes PostgreSQL also uses for dead connections (08, 57P0x), sent at severity ERROR:
/// the statement failed and was rolled back, so the caller gets the server's own verdict, never "outcome unknown",
/// and nothing is retried.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class ClientStatementErrorTests(PostgresFixture db)
{
    private AequorClient NewClient() => new(new AequorClientOptions
    {
        ConnectionString = db.AppConnectionString,
        CoordinationSecret = ClientTestKit.Secret,
        ServiceName = "statement-errors",
        Reaper = false,
    });

    [Fact]
    public void A_statement_whose_text_holds_a_NUL_is_refused_before_it_could_break_the_connection()
    {
        var error = Assert.Throws<ArgumentException>(() => new AequorStatement("SELECT 1 AS a\0"));
        Assert.Contains("NUL character (U+0000) at character 14", error.Message, StringComparison.Ordinal);
        Assert.Equal("SELECT 1 AS a", new AequorStatement("SELECT 1 AS a").CommandText);
    }

    [Theory]
    [InlineData("COPY t FROM STDIN", "FROM STDIN")]
    [InlineData("copy t (a, b) from stdin with (format csv);", "FROM STDIN")]
    [InlineData("SELECT 1; COPY (SELECT 1) TO STDOUT", "TO STDOUT")]
    [InlineData("/* load */ COPY t TO\nstdout", "TO STDOUT")]
    [InlineData("COPY t TO '/tmp/stdout'", null)]
    [InlineData("COPY t FROM PROGRAM 'cat stdin'", null)]
    [InlineData("COPY (SELECT * FROM stdin) TO '/tmp/x'", null)]
    [InlineData("SELECT 'COPY t FROM STDIN'", null)]
    [InlineData("SELECT $$; COPY t FROM STDIN$$", null)]
    [InlineData("-- COPY t FROM STDIN\nSELECT 1", null)]
    public void COPY_to_or_from_the_client_is_refused_before_sending_COPY_of_a_server_file_is_not(string sql, string? refused)
    {
        if (refused is null)
        {
            Assert.Equal(sql, new AequorStatement(sql).CommandText);
            return;
        }

        var error = Assert.Throws<ArgumentException>(() => new AequorStatement(sql));
        Assert.Contains("COPY … " + refused + " needs PostgreSQL's COPY protocol", error.Message, StringComparison.Ordinal);
        Assert.Contains("Nothing was sent", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_statement_whose_text_holds_half_a_surrogate_pair_is_refused_before_it_could_break_the_connection()
    {
        var error = Assert.Throws<ArgumentException>(() => new AequorStatement("SELECT 'caf\uD83D'"));
        Assert.Contains("unpaired UTF-16 surrogate (U+D83D) at character 12", error.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => new AequorStatement("SELECT '\uDE00x'"));
        Assert.Equal("SELECT '\uD83D\uDE00'", new AequorStatement("SELECT '\uD83D\uDE00'").CommandText);
    }

    [Fact]
    public async Task A_parameter_holding_half_a_surrogate_pair_is_refused_before_sending_and_the_transaction_goes_on()
    {
        await using var client = NewClient();
        var log = new ClientTestKit.EventLog(client);
        await client.ConnectAsync(CancellationToken.None);
        var pid = client.BackendPid;
        await client.BeginTransactionAsync(CancellationToken.None);
        await client.ExecuteNonQueryAsync(new AequorStatement("CREATE TEMP TABLE kept (a int); INSERT INTO kept VALUES (1)"), CancellationToken.None);

        async Task<string> RefusedAsync(AequorStatement statement) =>
            (await Assert.ThrowsAsync<AequorConfigurationException>(() => client.ExecuteScalarAsync(statement, CancellationToken.None))).Message;

        var named = await RefusedAsync(new AequorStatement("SELECT @p") { NamedParameters = new Dictionary<string, object?> { ["@p"] = "a\uD800b" } });
        Assert.StartsWith("Parameter 'p' holds an unpaired UTF-16 surrogate (U+D800) at index 1: PostgreSQL text is UTF-8 and cannot store it. Nothing was sent.", named, StringComparison.Ordinal);
        Assert.StartsWith("Parameter $2 holds an unpaired UTF-16 surrogate (U+DE00) at index 0:",
            await RefusedAsync(new AequorStatement("SELECT $1, $2") { PositionalParameters = ["ok", "\uDE00x"] }), StringComparison.Ordinal);
        Assert.StartsWith("Parameter 'tags' holds an unpaired UTF-16 surrogate (U+D83D) at index 3 of its element [1]:",
            await RefusedAsync(new AequorStatement("SELECT @tags") { NamedParameters = new Dictionary<string, object?> { ["tags"] = new[] { "ok", "caf\uD83D", null } } }), StringComparison.Ordinal);
        Assert.Contains("of its element [0]",
            await RefusedAsync(new AequorStatement("SELECT $1") { PositionalParameters = [new List<string> { "\uDFFF" }] }), StringComparison.Ordinal);
        Assert.Contains("(U+D800) at index 0",
            await RefusedAsync(new AequorStatement("SELECT $1") { PositionalParameters = ['\uD800'] }), StringComparison.Ordinal);

        // Nothing reached the server: the transaction and its backend are as they were, and a whole pair is text like any other.
        Assert.True(client.InTransaction);
        Assert.Equal(1L, await client.ExecuteScalarAsync(new AequorStatement("SELECT count(*) FROM kept"), CancellationToken.None));
        Assert.Equal("caf\uD83D\uDE00", await client.ExecuteScalarAsync(new AequorStatement("SELECT $1") { PositionalParameters = ["caf\uD83D\uDE00"] }, CancellationToken.None));
        await client.CommitAsync(CancellationToken.None);
        Assert.Equal(0, client.Counters.Retries);
        Assert.Equal(0, client.Counters.ClientDeaths);
        Assert.Empty(log.Of<AequorClientDeadEvent>());
        await AssertGoesOnOnTheSameBackendAsync(client, pid);
    }

    [Fact]
    public async Task An_error_of_class_08_on_a_live_session_is_the_statements_own_and_keeps_the_connection()
    {
        await using var client = NewClient();
        var log = new ClientTestKit.EventLog(client);
        await client.ConnectAsync(CancellationToken.None);
        var pid = client.BackendPid;

        // What dblink or postgres_fdw raise when their remote server is down: the session itself is fine.
        var error = await Assert.ThrowsAsync<PostgresException>(() => client.ExecuteNonQueryAsync(
            new AequorStatement("DO $$ BEGIN RAISE EXCEPTION 'remote server unreachable' USING ERRCODE = '08001'; END $$"), CancellationToken.None));
        Assert.Equal("08001", error.SqlState);

        Assert.Equal(0, client.Counters.Retries);
        Assert.Equal(0, client.Counters.ClientDeaths);
        Assert.Empty(log.Of<AequorClientDeadEvent>());
        await AssertGoesOnOnTheSameBackendAsync(client, pid);
    }

    [Fact]
    public async Task A_bind_with_too_few_parameters_is_refused_before_sending_not_retried_and_the_connection_kept()
    {
        await using var client = NewClient();
        await client.ConnectAsync(CancellationToken.None);
        var pid = client.BackendPid;

        // The server would answer it with 08P01, after which Npgsql drops the connection: refused before it is sent.
        var error = await Assert.ThrowsAsync<AequorConfigurationException>(() =>
            client.ExecuteScalarAsync(new AequorStatement("SELECT $1::int, $2::int") { PositionalParameters = [1], Idempotent = true }, CancellationToken.None));
        Assert.Contains("placeholders up to $2 but 1 positional value was given", error.Message, StringComparison.Ordinal);
        Assert.Equal(0, client.Counters.Retries);

        Assert.Equal(7, await client.ExecuteScalarAsync(new AequorStatement("SELECT 7"), CancellationToken.None));
        Assert.Equal(pid, client.BackendPid);
    }

    [Fact]
    public async Task A_command_timeout_is_its_own_error_the_write_did_not_take_effect_and_the_connection_stays()
    {
        var table = await ClientTestKit.NewKeyedTableAsync(db.AppConnectionString, "timeout");
        await using var client = NewClient();
        await client.ConnectAsync(CancellationToken.None);
        var pid = client.BackendPid;

        var error = await Assert.ThrowsAsync<AequorCommandTimeoutException>(() => client.ExecuteNonQueryAsync(
            new AequorStatement($"INSERT INTO {table} VALUES (1); SELECT pg_sleep(10)") { CommandTimeout = 1, Idempotent = true }, CancellationToken.None));
        Assert.Equal(1, error.TimeoutSeconds);
        Assert.Contains("command timeout (1 s)", error.Message, StringComparison.Ordinal);
        Assert.Contains("did not take effect", error.Message, StringComparison.Ordinal);

        Assert.Equal(0, await ClientTestKit.CountKeyAsync(db.AdminConnectionString, table, 1));
        Assert.Equal(0, client.Counters.Retries);
        Assert.Equal(0, client.Counters.ClientDeaths);
        await AssertGoesOnOnTheSameBackendAsync(client, pid);
    }

    [Fact]
    public async Task A_command_timeout_inside_a_transaction_says_the_transaction_is_aborted()
    {
        await using var client = NewClient();
        await client.BeginTransactionAsync(CancellationToken.None);
        var pid = client.BackendPid;

        var error = await Assert.ThrowsAsync<AequorCommandTimeoutException>(() => client.ExecuteScalarAsync(
            new AequorStatement("SELECT pg_sleep(10)") { CommandTimeout = 1 }, CancellationToken.None));
        Assert.Contains("transaction is now aborted", error.Message, StringComparison.Ordinal);

        var aborted = await Assert.ThrowsAsync<PostgresException>(() => client.ExecuteScalarAsync(new AequorStatement("SELECT 1"), CancellationToken.None));
        Assert.Equal("25P02", aborted.SqlState);
        await client.RollbackAsync(CancellationToken.None);
        await AssertGoesOnOnTheSameBackendAsync(client, pid);
    }

    [Fact]
    public async Task A_command_timeout_after_rows_were_handed_out_is_the_same_error()
    {
        await using var client = NewClient();
        await client.ConnectAsync(CancellationToken.None);
        var pid = client.BackendPid;

        // The first row fills the server's 8 KB output buffer, so it is sent before the sleep begins.
        await using var reader = await client.ExecuteReaderAsync(
            new AequorStatement("SELECT repeat('x', 100000) UNION ALL SELECT pg_sleep(10)::text") { CommandTimeout = 1 }, CancellationToken.None);
        Assert.True(await reader.ReadAsync(CancellationToken.None));
        Assert.Equal(100_000, ((string)reader.GetValue(0)!).Length);
        var error = await Assert.ThrowsAsync<AequorCommandTimeoutException>(() => reader.ReadAsync(CancellationToken.None));
        Assert.Equal(1, error.TimeoutSeconds);
        await reader.DisposeAsync();

        await AssertGoesOnOnTheSameBackendAsync(client, pid);
    }

    /// <summary>The session survived the error: the next statement runs, on the very same backend.</summary>
    private static async Task AssertGoesOnOnTheSameBackendAsync(AequorClient client, int? pid)
    {
        Assert.Equal(7, await client.ExecuteScalarAsync(new AequorStatement("SELECT 7"), CancellationToken.None));
        Assert.Equal(pid, client.BackendPid);
    }
}
