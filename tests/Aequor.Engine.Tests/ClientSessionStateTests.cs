using Npgsql;

namespace Aequor.Engine.Tests;

/// <summary>
/// Session state (advisory locks, temporary tables, settings …) lost when the backend is terminated between statements
/// and the client reconnects transparently: never silent, and a statement that may rely on a lost lock is not run.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class ClientSessionStateTests(PostgresFixture db)
{
    private AequorClient NewClient() => new(new AequorClientOptions
    {
        ConnectionString = db.AppConnectionString,
        CoordinationSecret = ClientTestKit.Secret,
        ServiceName = "client-session-state",
        Reaper = false,
        MinBackoff = 20,
        MaxBackoff = 200,
    });

    private static long NewKey() => Random.Shared.NextInt64(1, long.MaxValue);

    private static Task<object?> RunAsync(AequorClient client, string sql, params object?[] values) => ClientTestKit.RunAsync(client, sql, values);

    private Task TerminateBetweenStatementsAsync(AequorClient client) => ClientTestKit.TerminateBetweenStatementsAsync(db.AdminConnectionString, client);

    private Task<long> AdvisoryLocksOfAsync(long key) => ClientTestKit.AdvisoryLocksOfAsync(db.AdminConnectionString, key);

    private static List<AequorSessionStateLostEvent> LostEvents(AequorClient client)
    {
        var lost = new List<AequorSessionStateLostEvent>();
        client.OnSessionStateLost += (_, e) => lost.Add(e);
        return lost;
    }

    [Theory]
    [InlineData("SET ROLE {0}", true)]
    [InlineData("SET SESSION AUTHORIZATION {0}", false)]
    public async Task A_statement_after_a_reconnect_that_lost_the_role_the_session_took_is_not_run_as_the_login_role(string take, bool viaRole)
    {
        // A script that drops to a narrower role: after a silent reconnect its writes would run as the login role.
        var login = new NpgsqlConnectionStringBuilder(db.AppConnectionString).Username!;
        var role = $"aequor_narrow_{Guid.NewGuid():N}"[..30];
        var admin = db.AdminConnectionString;
        await ClientTestKit.AdminScalarAsync<object>(admin, $"CREATE ROLE {role} NOLOGIN");
        await ClientTestKit.AdminScalarAsync<object>(admin, $"GRANT {role} TO {login}");
        try
        {
            // SET SESSION AUTHORIZATION needs a superuser session: the admin's, as a client of its own.
            await using var client = new AequorClient(new AequorClientOptions
            {
                ConnectionString = viaRole ? db.AppConnectionString : db.AdminConnectionString,
                CoordinationSecret = ClientTestKit.Secret,
                ServiceName = "client-session-state",
                Reaper = false,
            });
            await RunAsync(client, string.Format(System.Globalization.CultureInfo.InvariantCulture, take, role));
            Assert.Equal(role, await RunAsync(client, "SELECT current_user::text"));
            Assert.True(client.SessionState.HasFlag(SessionStateKinds.Role));

            await TerminateBetweenStatementsAsync(client);
            var refused = await Assert.ThrowsAsync<AequorSessionStateLostException>(() => RunAsync(client, "SELECT current_user::text"));

            Assert.True(refused.Lost.HasFlag(SessionStateKinds.Role));
            Assert.Contains("SET ROLE or SET SESSION AUTHORIZATION", refused.Message, StringComparison.Ordinal);
            Assert.Contains("as the login role", refused.Message, StringComparison.Ordinal);
            Assert.NotEqual(role, await RunAsync(client, "SELECT current_user::text"));

            // RESET ROLE / SET ROLE NONE go back to the login role: nothing to miss after the next reconnect.
            await RunAsync(client, string.Format(System.Globalization.CultureInfo.InvariantCulture, take, role));
            await RunAsync(client, viaRole ? "RESET ROLE" : "RESET SESSION AUTHORIZATION");
            await TerminateBetweenStatementsAsync(client);
            Assert.NotEqual(role, await RunAsync(client, "SELECT current_user::text"));
        }
        finally
        {
            await ClientTestKit.AdminScalarAsync<object>(admin, $"DROP ROLE {role}");
        }
    }

    [Fact]
    public async Task Taking_the_lost_lock_again_is_not_refused_and_the_loss_is_reported()
    {
        var key = NewKey();
        await using var client = NewClient();
        var lost = LostEvents(client);
        await RunAsync(client, "SELECT pg_advisory_lock($1)", key);

        await TerminateBetweenStatementsAsync(client);
        await RunAsync(client, "SELECT pg_advisory_lock($1)", key);

        Assert.Equal(1, await AdvisoryLocksOfAsync(key));
        var said = Assert.Single(lost);
        Assert.True(said.Lost.HasFlag(SessionStateKinds.AdvisoryLock));
        Assert.True(client.SessionState.HasFlag(SessionStateKinds.AdvisoryLock));
    }

    [Theory]
    [InlineData("SELECT pg_advisory_lock($1)", false)]
    [InlineData("SELECT pg_try_advisory_lock($1)", false)]
    [InlineData("SELECT pg_advisory_lock($1)", true)]
    public async Task A_statement_after_a_reconnect_that_lost_an_advisory_lock_is_not_run_and_the_next_one_is(string take, bool synchronous)
    {
        var table = await ClientTestKit.NewKeyedTableAsync(db.AppConnectionString, "session_lock");
        var key = NewKey();
        await using var client = NewClient();
        var lost = LostEvents(client);
        await RunAsync(client, take, key);
        Assert.Equal(1, await AdvisoryLocksOfAsync(key));
        Assert.True(client.SessionState.HasFlag(SessionStateKinds.AdvisoryLock));

        await TerminateBetweenStatementsAsync(client);
        var insert = new AequorStatement($"INSERT INTO {table} VALUES (1)");
        var refused = synchronous
            ? Assert.Throws<AequorSessionStateLostException>(() => client.ExecuteNonQuery(insert, default))
            : await Assert.ThrowsAsync<AequorSessionStateLostException>(() => client.ExecuteNonQueryAsync(insert, default));

        Assert.True(refused.Lost.HasFlag(SessionStateKinds.AdvisoryLock));
        Assert.Contains("session advisory locks (pg_advisory_lock)", refused.Message, StringComparison.Ordinal);
        Assert.Contains("The statement was not run", refused.Message, StringComparison.Ordinal);
        Assert.Equal(0, await ClientTestKit.CountKeyAsync(db.AdminConnectionString, table, 1));
        Assert.Equal(0, await AdvisoryLocksOfAsync(key));
        Assert.Empty(lost);

        // Told once: the session works, on the new connection.
        Assert.Equal(1, await client.ExecuteNonQueryAsync(insert, default));
        Assert.Equal(1, await ClientTestKit.CountKeyAsync(db.AdminConnectionString, table, 1));
        Assert.Equal(SessionStateKinds.None, client.SessionState);
    }

    [Theory]
    [InlineData("SELECT pg_advisory_unlock($1)")]
    [InlineData("SELECT pg_advisory_unlock_all()")]
    [InlineData("DISCARD ALL")]
    public async Task A_released_lock_is_not_missed_after_a_reconnect(string release)
    {
        var key = NewKey();
        await using var client = NewClient();
        var lost = LostEvents(client);
        await RunAsync(client, "SELECT pg_advisory_lock($1)", key);
        await client.ExecuteScalarAsync(new AequorStatement(release) { PositionalParameters = release.Contains("$1", StringComparison.Ordinal) ? [key] : null }, default);
        Assert.Equal(0, await AdvisoryLocksOfAsync(key));
        Assert.Equal(SessionStateKinds.None, client.SessionState);

        await TerminateBetweenStatementsAsync(client);
        Assert.Equal(1, await RunAsync(client, "SELECT 1"));
        Assert.Empty(lost);
        Assert.Equal(1, client.Counters.Reconnects);
    }

    [Fact]
    public async Task A_lock_that_was_not_granted_is_not_missed_after_a_reconnect()
    {
        var key = NewKey();
        var holderConnection = new NpgsqlConnectionStringBuilder(db.AppConnectionString) { Pooling = false }.ConnectionString;
        await using var holder = new NpgsqlConnection(holderConnection);
        await holder.OpenAsync();
        await using (var take = new NpgsqlCommand($"SELECT pg_advisory_lock({key})", holder))
        {
            await take.ExecuteScalarAsync();
        }

        await using var client = NewClient();
        var lost = LostEvents(client);
        Assert.Equal(false, await RunAsync(client, "SELECT pg_try_advisory_lock($1)", key));
        Assert.Equal(SessionStateKinds.None, client.SessionState);

        await TerminateBetweenStatementsAsync(client);
        Assert.Equal(1, await RunAsync(client, "SELECT 1"));
        Assert.Empty(lost);
    }

    [Fact]
    public async Task A_transaction_after_a_reconnect_that_lost_an_advisory_lock_is_not_begun()
    {
        await using var client = NewClient();
        await RunAsync(client, "SELECT pg_advisory_lock($1)", NewKey());
        await TerminateBetweenStatementsAsync(client);

        var refused = await Assert.ThrowsAsync<AequorSessionStateLostException>(() => client.BeginTransactionAsync(default));
        Assert.Contains("The transaction was not begun", refused.Message, StringComparison.Ordinal);
        Assert.False(client.InTransaction);

        await client.BeginTransactionAsync(default);
        Assert.Equal(1, await RunAsync(client, "SELECT 1"));
        await client.CommitAsync(default);
    }

    [Fact]
    public async Task A_lock_taken_inside_a_transaction_outlives_it_and_is_missed_after_a_reconnect()
    {
        await using var client = NewClient();
        await client.BeginTransactionAsync(default);
        await RunAsync(client, "SELECT pg_advisory_lock($1)", NewKey());
        await client.RollbackAsync(default);

        await TerminateBetweenStatementsAsync(client);
        await Assert.ThrowsAsync<AequorSessionStateLostException>(() => RunAsync(client, "SELECT 1"));
    }

    [Theory]
    [InlineData("DO $$ BEGIN PERFORM pg_advisory_lock({0}); END $$", true)]
    [InlineData("DO $$ BEGIN IF NOT pg_try_advisory_lock({0}) THEN RAISE EXCEPTION 'busy'; END IF; END $$", true)]
    [InlineData("DO $$ BEGIN PERFORM pg_advisory_lock({0}); PERFORM pg_advisory_unlock({0}); END $$", false)]
    public async Task A_lock_taken_in_a_do_block_is_missed_after_a_reconnect_and_one_it_released_is_not(string block, bool held)
    {
        // The usual way a script says "only one of us": a DO block that fails when another session holds the lock.
        var key = NewKey();
        await using var client = NewClient();
        var lost = LostEvents(client);
        await client.ExecuteNonQueryAsync(new AequorStatement(string.Format(System.Globalization.CultureInfo.InvariantCulture, block, key)), default);
        Assert.Equal(held ? 1 : 0, await AdvisoryLocksOfAsync(key));

        await TerminateBetweenStatementsAsync(client);
        if (held)
        {
            var refused = await Assert.ThrowsAsync<AequorSessionStateLostException>(() => RunAsync(client, "SELECT 1"));
            Assert.True(refused.Lost.HasFlag(SessionStateKinds.AdvisoryLock));
        }

        Assert.Equal(1, await RunAsync(client, "SELECT 1"));
        Assert.Empty(lost);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task A_lock_released_inside_a_transaction_is_not_missed_after_a_reconnect(bool commit)
    {
        // Advisory locks ignore transactions: the unlock stands whether the block commits or rolls back, and the end of
        // the block is the first moment the client may ask pg_locks again.
        var key = NewKey();
        await using var client = NewClient();
        var lost = LostEvents(client);
        await RunAsync(client, "SELECT pg_advisory_lock($1)", key);
        await client.BeginTransactionAsync(default);
        Assert.Equal(true, await RunAsync(client, "SELECT pg_advisory_unlock($1)", key));
        await (commit ? client.CommitAsync(default) : client.RollbackAsync(default));
        Assert.Equal(0, await AdvisoryLocksOfAsync(key));
        Assert.Equal(SessionStateKinds.None, client.SessionState);

        await TerminateBetweenStatementsAsync(client);
        Assert.Equal(1, await RunAsync(client, "SELECT 1"));
        Assert.Empty(lost);
    }

    [Fact]
    public async Task Temporary_tables_settings_and_the_rest_lost_by_a_reconnect_are_reported_and_the_statement_runs()
    {
        await using var client = NewClient();
        var lost = LostEvents(client);
        await RunAsync(client, "CREATE TEMP TABLE scratch (a int)");
        await RunAsync(client, "SET search_path = pg_catalog");
        await RunAsync(client, "LISTEN aequor_jobs");
        await RunAsync(client, "PREPARE one AS SELECT 1");
        await using (var reader = await client.ExecuteReaderAsync(new AequorStatement("SELECT set_config('work_mem', '8MB', false)"), default))
        {
            Assert.True(await reader.ReadAsync(default));
        }

        var expected = SessionStateKinds.TemporaryObjects | SessionStateKinds.Settings | SessionStateKinds.ListenChannels | SessionStateKinds.PreparedStatements;
        Assert.Equal(expected, client.SessionState);
        await TerminateBetweenStatementsAsync(client);

        // Run, on a session without them: the temporary table and the search_path are gone.
        Assert.Equal(true, await RunAsync(client, "SELECT to_regclass('pg_temp.scratch') IS NULL AND current_setting('search_path') LIKE '%public%'"));
        var report = Assert.Single(lost);
        Assert.Equal(expected, report.Lost);
        Assert.Equal(client.Generation, report.Generation);

        // Reported once.
        Assert.Equal(1, await RunAsync(client, "SELECT 1"));
        Assert.Single(lost);
    }

    [Fact]
    public async Task Discard_all_forgets_what_it_discarded()
    {
        await using var client = NewClient();
        var lost = LostEvents(client);
        await RunAsync(client, "CREATE TEMP TABLE scratch (a int)");
        await RunAsync(client, "SET work_mem = '8MB'");
        await RunAsync(client, "DISCARD ALL");
        Assert.Equal(SessionStateKinds.None, client.SessionState);

        await TerminateBetweenStatementsAsync(client);
        Assert.Equal(1, await RunAsync(client, "SELECT 1"));
        Assert.Empty(lost);
    }
}
