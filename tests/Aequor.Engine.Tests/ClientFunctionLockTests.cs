using System.Collections.Concurrent;
using System.Diagnostics;

namespace Aequor.Engine.Tests;

/// <summary>
/// A session advisory lock taken inside a user function or procedure the statement calls (<c>SELECT take_job_lock(42)</c>,
/// <c>CALL p()</c>): remembered like one the text names, so a reconnect that loses it is not silent.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class ClientFunctionLockTests(PostgresFixture db)
{
    private AequorClient NewClient() => new(new AequorClientOptions
    {
        ConnectionString = db.AppConnectionString,
        CoordinationSecret = ClientTestKit.Secret,
        ServiceName = "client-function-lock",
        Reaper = false,
        MinBackoff = 20,
        MaxBackoff = 200,
    });

    private static long NewKey() => Random.Shared.NextInt64(1, long.MaxValue);

    private static string NewName(string prefix) => prefix + "_" + Guid.NewGuid().ToString("N")[..10];

    private static Task<object?> RunAsync(AequorClient client, string sql, params object?[] values) => ClientTestKit.RunAsync(client, sql, values);

    private Task TerminateBetweenStatementsAsync(AequorClient client) => ClientTestKit.TerminateBetweenStatementsAsync(db.AdminConnectionString, client);

    private Task<long> AdvisoryLocksOfAsync(long key) => ClientTestKit.AdvisoryLocksOfAsync(db.AdminConnectionString, key);

    private async Task DropAsync(params string[] routines)
    {
        foreach (var routine in routines)
        {
            await ClientTestKit.AdminScalarAsync<object>(db.AdminConnectionString, $"DROP ROUTINE IF EXISTS {routine}");
        }
    }

    private static List<AequorSessionStateLostEvent> LostEvents(AequorClient client)
    {
        var lost = new List<AequorSessionStateLostEvent>();
        client.OnSessionStateLost += (_, e) => lost.Add(e);
        return lost;
    }

    private static async Task AssertLockLostAsync(AequorClient client)
    {
        var refused = await Assert.ThrowsAsync<AequorSessionStateLostException>(() => RunAsync(client, "SELECT 1"));
        Assert.True(refused.Lost.HasFlag(SessionStateKinds.AdvisoryLock));
        Assert.Contains("session advisory locks (pg_advisory_lock)", refused.Message, StringComparison.Ordinal);
        Assert.Contains("The statement was not run", refused.Message, StringComparison.Ordinal);

        // Told once: the session works on the new connection.
        Assert.Equal(1, await RunAsync(client, "SELECT 1"));
    }

    [Theory]
    [InlineData("SELECT {0}($1)", "plpgsql")]
    [InlineData("SELECT * FROM public.{0}($1)", "plpgsql")]
    [InlineData("SELECT \"{0}\" ($1)", "sql")]
    public async Task A_lock_taken_inside_a_called_function_is_missed_after_a_reconnect(string call, string language)
    {
        var function = NewName("take_job_lock");
        var body = language == "sql" ? "SELECT pg_advisory_lock(k)" : "BEGIN PERFORM pg_advisory_lock(k); END";
        var key = NewKey();
        await using var client = NewClient();
        try
        {
            await RunAsync(client, $"CREATE FUNCTION {function}(k bigint) RETURNS void LANGUAGE {language} AS $$ {body} $$");
            await RunAsync(client, string.Format(System.Globalization.CultureInfo.InvariantCulture, call, function), key);
            Assert.Equal(1, await AdvisoryLocksOfAsync(key));
            Assert.True(client.SessionState.HasFlag(SessionStateKinds.AdvisoryLock));

            await TerminateBetweenStatementsAsync(client);
            await AssertLockLostAsync(client);
        }
        finally
        {
            await DropAsync(function);
        }
    }

    [Fact]
    public async Task A_lock_taken_by_a_function_that_the_called_one_calls_is_missed_after_a_reconnect()
    {
        var inner = NewName("inner_lock");
        var middle = NewName("middle");
        var outer = NewName("outer");
        var key = NewKey();
        await using var client = NewClient();
        try
        {
            await RunAsync(client, $"CREATE FUNCTION {inner}(k bigint) RETURNS void LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_advisory_lock(k); END $$");
            await RunAsync(client, $"CREATE FUNCTION {middle}(k bigint) RETURNS void LANGUAGE sql AS $$ SELECT {inner}(k) $$");
            await RunAsync(client, $"CREATE FUNCTION {outer}(k bigint) RETURNS int LANGUAGE plpgsql AS $$ BEGIN PERFORM {middle}(k); RETURN 1; END $$");
            Assert.Equal(1, await RunAsync(client, $"SELECT {outer}($1)", key));
            Assert.Equal(1, await AdvisoryLocksOfAsync(key));

            await TerminateBetweenStatementsAsync(client);
            await AssertLockLostAsync(client);
        }
        finally
        {
            await DropAsync(outer, middle, inner);
        }
    }

    [Fact]
    public async Task A_lock_taken_inside_a_called_procedure_is_missed_after_a_reconnect()
    {
        var procedure = NewName("take_lock_proc");
        var key = NewKey();
        await using var client = NewClient();
        try
        {
            await RunAsync(client, $"CREATE PROCEDURE {procedure}(k bigint) LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_advisory_lock(k); END $$");
            await RunAsync(client, $"CALL {procedure}($1)", key);
            Assert.Equal(1, await AdvisoryLocksOfAsync(key));

            await TerminateBetweenStatementsAsync(client);
            await AssertLockLostAsync(client);
        }
        finally
        {
            await DropAsync(procedure);
        }
    }

    [Fact]
    public async Task A_function_that_takes_and_releases_the_lock_is_asked_about_and_the_reconnect_stays_transparent()
    {
        var function = NewName("lock_briefly");
        var key = NewKey();
        await using var client = NewClient();
        var lost = LostEvents(client);
        try
        {
            await RunAsync(client, $"CREATE FUNCTION {function}(k bigint) RETURNS bool LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_advisory_lock(k); RETURN pg_advisory_unlock(k); END $$");
            using var sent = new SentStatements();
            Assert.Equal(true, await RunAsync(client, $"SELECT {function}($1)", key));
            Assert.Equal(0, await AdvisoryLocksOfAsync(key));

            // The server was asked, and said nothing is held.
            Assert.Equal(1, sent.Count(AequorClient.HoldsAdvisoryLockSql));
            Assert.Equal(SessionStateKinds.None, client.SessionState);

            await TerminateBetweenStatementsAsync(client);
            Assert.Equal(1, await RunAsync(client, "SELECT 1"));
            Assert.Empty(lost);
            Assert.Equal(1, client.Counters.Reconnects);
        }
        finally
        {
            await DropAsync(function);
        }
    }

    [Fact]
    public async Task A_function_that_never_locks_costs_no_round_trip_after_the_first_look_and_the_reconnect_stays_transparent()
    {
        var function = NewName("no_lock");
        await using var client = NewClient();
        var lost = LostEvents(client);
        try
        {
            await RunAsync(client, $"CREATE FUNCTION {function}(a int) RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETURN a + 1; END $$");
            using var sent = new SentStatements();
            Assert.Equal(2, await RunAsync(client, $"SELECT {function}(1)"));

            // Learnt once (the CREATE made the process forget what it knew) ...
            Assert.Equal(1, sent.Count(AdvisoryLockFunctions.LoadSql));
            for (var i = 0; i < 20; i++)
            {
                Assert.Equal(i + 1, await RunAsync(client, $"SELECT {function}($1)", i));
            }

            // ... then nothing more: neither the functions nor pg_locks asked again.
            Assert.Equal(1, sent.Count(AdvisoryLockFunctions.LoadSql));
            Assert.Equal(0, sent.Count(AequorClient.HoldsAdvisoryLockSql));
            Assert.Equal(SessionStateKinds.None, client.SessionState);

            await TerminateBetweenStatementsAsync(client);
            Assert.Equal(3, await RunAsync(client, $"SELECT {function}(2)"));
            Assert.Empty(lost);
        }
        finally
        {
            await DropAsync(function);
        }
    }

    [Fact]
    public async Task A_function_replaced_in_the_session_so_that_it_now_locks_is_seen()
    {
        var function = NewName("becomes_lock");
        var key = NewKey();
        await using var client = NewClient();
        try
        {
            await RunAsync(client, $"CREATE FUNCTION {function}(k bigint) RETURNS void LANGUAGE plpgsql AS $$ BEGIN NULL; END $$");
            await RunAsync(client, $"SELECT {function}($1)", key);
            Assert.Equal(SessionStateKinds.None, client.SessionState);

            await RunAsync(client, $"CREATE OR REPLACE FUNCTION {function}(k bigint) RETURNS void LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_advisory_lock(k); END $$");
            await RunAsync(client, $"SELECT {function}($1)", key);
            Assert.Equal(1, await AdvisoryLocksOfAsync(key));
            Assert.True(client.SessionState.HasFlag(SessionStateKinds.AdvisoryLock));

            await TerminateBetweenStatementsAsync(client);
            await AssertLockLostAsync(client);
        }
        finally
        {
            await DropAsync(function);
        }
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task A_statement_that_died_with_its_connection_is_judged_by_what_it_called_on_the_next_one(bool locks)
    {
        // Nothing is known of the names when the statement dies (the CREATE made the process forget): the server is asked
        // on the replacement connection. A lock-taking call is then a lost lock; a plain INSERT INTO t (id) is not.
        var function = NewName("lock_then_sleep");
        var table = await ClientTestKit.NewKeyedTableAsync(db.AppConnectionString, "fn_lock_died");
        await using var client = NewClient();
        var lost = LostEvents(client);
        try
        {
            await RunAsync(client, $"CREATE FUNCTION {function}(k bigint) RETURNS void LANGUAGE plpgsql AS $$ BEGIN {(locks ? "PERFORM pg_advisory_lock(k);" : "NULL;")} END $$");
            var pid = client.BackendPid!.Value;
            var run = locks
                ? RunAsync(client, $"SELECT {function}($1), pg_sleep(30)", NewKey())
                : RunAsync(client, $"INSERT INTO {table} (id) SELECT 1 FROM pg_sleep(30)");
            await ClientTestKit.WaitActiveAsync(db.AdminConnectionString, pid, "%pg_sleep%");
            Assert.True(await ClientTestKit.TerminateAsync(db.AdminConnectionString, pid));
            await Assert.ThrowsAsync<AequorOutcomeUnknownException>(() => run);

            if (locks)
            {
                await AssertLockLostAsync(client);
            }
            else
            {
                Assert.Equal(1, await RunAsync(client, "SELECT 1"));
                Assert.Empty(lost);
            }
        }
        finally
        {
            await DropAsync(function);
        }
    }

    /// <summary>The statements Npgsql sends (its tracing: one activity per command), counted by their text.</summary>
    private sealed class SentStatements : IDisposable
    {
        private readonly ConcurrentQueue<string> _texts = new();
        private readonly ActivityListener _listener;

        public SentStatements()
        {
            _listener = new ActivityListener
            {
                ShouldListenTo = source => source.Name == "Npgsql",
                Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
                ActivityStopped = activity =>
                {
                    if (activity.GetTagItem("db.query.text") is string text)
                    {
                        _texts.Enqueue(text);
                    }
                },
            };
            ActivitySource.AddActivityListener(_listener);
        }

        public int Count(string text) => _texts.Count(t => t == text);

        public void Dispose() => _listener.Dispose();
    }
}
