using Npgsql;

namespace Aequor.Engine.Tests;

/// <summary>Dead connections, write safety, transactions, cancellation: against the shared real server.</summary>
[Collection(PostgresCollection.Name)]
public sealed class ClientResilienceTests(PostgresFixture db)
{
    private AequorClient NewClient(Action<AequorClientOptions>? _ = null, int retries = 3) => new(new AequorClientOptions
    {
        ConnectionString = db.AppConnectionString,
        CoordinationSecret = ClientTestKit.Secret,
        ServiceName = "client-resilience",
        Reaper = false,
        Retries = retries,
        MinBackoff = 20,
        MaxBackoff = 200,
    });

    private Task<string> NewTableAsync() => ClientTestKit.NewKeyedTableAsync(db.AppConnectionString, "client_rows");

    private Task<long> CountAsync(string table, int id) => ClientTestKit.CountKeyAsync(db.AdminConnectionString, table, id);

    /// <summary>Terminates the client's backend as soon as it is running the statement that matches.</summary>
    private async Task TerminateWhenActiveAsync(int pid, string like)
    {
        await ClientTestKit.WaitActiveAsync(db.AdminConnectionString, pid, like);
        Assert.True(await ClientTestKit.TerminateAsync(db.AdminConnectionString, pid));
    }

    [Fact]
    public async Task A_terminated_idle_backend_is_replaced_and_the_next_statement_succeeds_on_a_new_pid()
    {
        await using var client = NewClient();
        var events = new ClientTestKit.EventLog(client);
        var pid = (int)(await client.ExecuteScalarAsync(new AequorStatement("SELECT pg_backend_pid()"), default))!;
        Assert.Equal(1, client.Generation);

        await ClientTestKit.TerminateAsync(db.AdminConnectionString, pid);
        await ClientTestKit.WaitGoneAsync(db.AdminConnectionString, pid);
        await Task.Delay(AequorClient.DefaultProbeAfterIdleMs + 100);

        var newPid = (int)(await client.ExecuteScalarAsync(new AequorStatement("SELECT pg_backend_pid()"), default))!;
        Assert.NotEqual(pid, newPid);
        Assert.Equal(newPid, client.BackendPid);
        Assert.Equal(2, client.Generation);
        var dead = Assert.Single(events.Of<AequorClientDeadEvent>());
        Assert.Equal(pid, dead.BackendPid);
        Assert.Equal("57P01", (dead.Error as PostgresException)?.SqlState);
        var reconnect = Assert.Single(events.Of<AequorReconnectEvent>());
        Assert.Equal(0, reconnect.Retries);
        Assert.Equal(2, events.Of<AequorConnectEvent>().Count);
        Assert.Equal(1, client.Counters.Reconnects);
        Assert.Equal(1, client.Counters.ClientDeaths);
        Assert.Empty(events.Of<AequorQueryRetryEvent>()); // a reconnect, not a retry
        var serverLease = await ClientTestKit.ApplicationNameOfAsync(db.AdminConnectionString, newPid);
        Assert.True(new LeaseSigner(ClientTestKit.Secret).Verify(serverLease));

        // What the client reports (Get-AequorLease) is the new backend's lease, not the one that died with the old.
        Assert.Equal(serverLease, client.ApplicationName);
        Assert.True(Lease.TryParse(serverLease, out var lease));
        Assert.Equal(DateTimeOffset.FromUnixTimeMilliseconds(lease.ExpiresAtMs), client.LeaseExpiresAt);
    }

    /// <summary>
    /// idle_session_timeout (what serverless deployments set) ends the backend with FATAL 57P05, a code in no retry
    /// list; the client's probe shows the write never started, so it goes to a fresh connection, once.
    /// </summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_backend_ended_by_idle_session_timeout_is_replaced_and_the_write_runs_once(bool synchronous)
    {
        var table = await NewTableAsync();
        await using var client = new AequorClient(new AequorClientOptions
        {
            ConnectionString = db.AppConnectionString + ";Options=-c idle_session_timeout=1000",
            CoordinationSecret = ClientTestKit.Secret,
            ServiceName = "client-resilience",
            Reaper = false,
        });
        var events = new ClientTestKit.EventLog(client);
        var pid = (int)(await client.ExecuteScalarAsync(new AequorStatement("SELECT pg_backend_pid()"), default))!;
        await ClientTestKit.WaitGoneAsync(db.AdminConnectionString, pid);
        await Task.Delay(AequorClient.DefaultProbeAfterIdleMs + 100);

        Assert.Equal(1, await NonQueryAsync(client, new AequorStatement($"INSERT INTO {table} VALUES (1)"), synchronous));
        Assert.Equal(1, await CountAsync(table, 1));
        Assert.NotEqual(pid, client.BackendPid);
        Assert.Equal("57P05", (Assert.Single(events.Of<AequorClientDeadEvent>()).Error as PostgresException)?.SqlState);
        Assert.Equal(0, client.Counters.Retries);
    }

    /// <summary>The engine's synchronous methods (the cmdlets') and its async ones, the same write safety.</summary>
    private static Task<int> NonQueryAsync(AequorClient client, AequorStatement statement, bool synchronous) =>
        synchronous
            ? Task.Factory.StartNew(() => client.ExecuteNonQuery(statement, default), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default)
            : client.ExecuteNonQueryAsync(statement, default);

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_write_after_a_terminated_idle_backend_runs_exactly_once_batched_or_not(bool synchronous)
    {
        var table = await NewTableAsync();
        await using var client = NewClient();
        foreach (var (id, sql) in new[] { (1, $"INSERT INTO {table} VALUES (1)"), (2, $"INSERT INTO {table} VALUES (2); SELECT 1") })
        {
            await client.ExecuteScalarAsync(new AequorStatement("SELECT 1"), default);
            var pid = client.BackendPid!.Value;
            await ClientTestKit.TerminateAsync(db.AdminConnectionString, pid);
            await ClientTestKit.WaitGoneAsync(db.AdminConnectionString, pid);
            await Task.Delay(AequorClient.DefaultProbeAfterIdleMs + 100);

            var changed = await NonQueryAsync(client, new AequorStatement(sql), synchronous);
            if (id == 1)
            {
                Assert.Equal(1, changed);
            }

            Assert.NotEqual(pid, client.BackendPid);
            Assert.Equal(1, await CountAsync(table, id));
            Assert.Equal(id, client.Counters.Reconnects);
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_backend_terminated_during_the_statement_gives_an_outcome_unknown_error_and_never_a_second_run(bool synchronous)
    {
        var table = await NewTableAsync();
        await using var client = NewClient();
        await client.ConnectAsync(default);
        var pid = client.BackendPid!.Value;
        var run = NonQueryAsync(client, new AequorStatement($"INSERT INTO {table} VALUES (7); SELECT pg_sleep(5)"), synchronous);
        await TerminateWhenActiveAsync(pid, "%pg_sleep%");

        var ex = await Assert.ThrowsAsync<AequorOutcomeUnknownException>(() => run);
        Assert.Contains("outcome is unknown", ex.Message, StringComparison.Ordinal);
        Assert.Equal("57P01", ex.SqlState);
        Assert.InRange(await CountAsync(table, 7), 0, 1);
        Assert.Equal(0, client.Counters.Retries);

        // The client is usable again, on a new backend.
        Assert.Equal(1, await client.ExecuteScalarAsync(new AequorStatement("SELECT 1"), default));
        Assert.NotEqual(pid, client.BackendPid);
        Assert.InRange(await CountAsync(table, 7), 0, 1);
    }

    [Fact]
    public async Task The_same_statement_marked_idempotent_is_retried_and_succeeds()
    {
        var table = await NewTableAsync();
        await using var client = NewClient();
        var events = new ClientTestKit.EventLog(client);
        await client.ConnectAsync(default);
        var pid = client.BackendPid!.Value;
        var run = client.ExecuteNonQueryAsync(
            new AequorStatement($"INSERT INTO {table} VALUES (8) ON CONFLICT DO NOTHING; SELECT pg_sleep(1.5)") { Idempotent = true }, default);
        await TerminateWhenActiveAsync(pid, "%pg_sleep%");

        await run;
        Assert.Equal(1, await CountAsync(table, 8));
        Assert.NotEqual(pid, client.BackendPid);
        Assert.Equal(1, client.Counters.Retries);
        var retry = Assert.Single(events.Of<AequorQueryRetryEvent>());
        Assert.Equal(1, retry.Retries);
        Assert.Contains(events.Of<AequorQueryErrorEvent>(), e => e.WillRetry);
        Assert.Single(events.Of<AequorQueryEndEvent>());
    }

    [Fact]
    public async Task A_lost_transaction_is_never_retried_and_says_so_until_it_is_ended()
    {
        var table = await NewTableAsync();
        await using var client = NewClient();
        await client.BeginTransactionAsync(default);
        await client.ExecuteNonQueryAsync(new AequorStatement($"INSERT INTO {table} VALUES (1)"), default);
        await ClientTestKit.TerminateAsync(db.AdminConnectionString, client.BackendPid!.Value);
        await ClientTestKit.WaitGoneAsync(db.AdminConnectionString, client.BackendPid!.Value);

        var lost = await Assert.ThrowsAsync<AequorTransactionLostException>(() => client.ExecuteNonQueryAsync(new AequorStatement($"INSERT INTO {table} VALUES (2)"), default));
        Assert.Contains("transaction is lost", lost.Message, StringComparison.Ordinal);
        Assert.True(client.InTransaction);
        Assert.True(client.TransactionLost);
        await Assert.ThrowsAsync<AequorTransactionLostException>(() => client.ExecuteNonQueryAsync(new AequorStatement($"INSERT INTO {table} VALUES (3)"), default));
        await client.RollbackAsync(default);
        Assert.False(client.InTransaction);

        await client.ExecuteNonQueryAsync(new AequorStatement($"INSERT INTO {table} VALUES (4)"), default);
        Assert.Equal(0, await CountAsync(table, 1));
        Assert.Equal(0, await CountAsync(table, 2));
        Assert.Equal(0, await CountAsync(table, 3));
        Assert.Equal(1, await CountAsync(table, 4));
        Assert.Equal(0, client.Counters.Retries);
    }

    [Fact]
    public async Task Committing_a_lost_transaction_fails_and_commits_nothing()
    {
        var table = await NewTableAsync();
        await using var client = NewClient();
        await client.BeginTransactionAsync(default);
        await client.ExecuteNonQueryAsync(new AequorStatement($"INSERT INTO {table} VALUES (1)"), default);
        await ClientTestKit.TerminateAsync(db.AdminConnectionString, client.BackendPid!.Value);
        await ClientTestKit.WaitGoneAsync(db.AdminConnectionString, client.BackendPid!.Value);
        await Assert.ThrowsAnyAsync<AequorClientException>(() => client.CommitAsync(default));
        Assert.False(client.InTransaction);
        Assert.Equal(0, await CountAsync(table, 1));
    }

    [Fact]
    public async Task Cancelling_a_running_statement_cancels_it_on_the_server()
    {
        await using var client = NewClient();
        await client.ConnectAsync(default);
        var pid = client.BackendPid!.Value;
        using var cts = new CancellationTokenSource();
        var run = client.ExecuteScalarAsync(new AequorStatement("SELECT pg_sleep(60)"), cts.Token);
        await ClientTestKit.WaitUntilAsync(async () => await ClientTestKit.StateOfAsync(db.AdminConnectionString, pid) == "active", TimeSpan.FromSeconds(10), "statement running");
        var started = DateTime.UtcNow;
        await cts.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => run);
        await ClientTestKit.WaitUntilAsync(async () => await ClientTestKit.StateOfAsync(db.AdminConnectionString, pid) == "idle", TimeSpan.FromSeconds(5), "backend idle again");
        Assert.True(DateTime.UtcNow - started < TimeSpan.FromSeconds(5));
        Assert.Equal(1, await client.ExecuteScalarAsync(new AequorStatement("SELECT 1"), default));
        Assert.Equal(pid, client.BackendPid);
        Assert.Equal(0, client.Counters.Retries);
    }

    [Fact]
    public async Task A_reader_hands_out_rows_after_its_first_row_arrived_and_is_never_retried_mid_stream()
    {
        await using var client = NewClient();
        await client.ConnectAsync(default);
        var pid = client.BackendPid!.Value;
        // Rows of 20 kB make the server flush each one: the first row arrives before the sleep at row 3.
        var reader = await client.ExecuteReaderAsync(
            new AequorStatement("SELECT g, repeat('x', 20000), CASE WHEN g = 3 THEN pg_sleep(5) END FROM generate_series(1, 5) g") { Idempotent = true }, default);
        await using (reader)
        {
            Assert.True(await reader.ReadAsync(default));
            Assert.Equal(1, reader.GetValue(0));
            var kill = TerminateWhenActiveAsync(pid, "%pg_sleep%");
            var ex = await Assert.ThrowsAsync<AequorOutcomeUnknownException>(async () =>
            {
                while (await reader.ReadAsync(default))
                {
                }
            });
            await kill;
            Assert.Contains("before the first row is handed out", ex.Message, StringComparison.Ordinal);
        }

        Assert.Equal(0, client.Counters.Retries);
        Assert.Equal(1, await client.ExecuteScalarAsync(new AequorStatement("SELECT 1"), default));
        Assert.NotEqual(pid, client.BackendPid);
    }

    [Fact]
    public async Task Throwing_event_handlers_do_not_break_the_statement()
    {
        await using var client = NewClient();
        client.OnConnect += (_, _) => throw new InvalidOperationException("boom");
        client.OnReconnect += (_, _) => throw new InvalidOperationException("boom");
        client.OnQueryStart += (_, _) => throw new InvalidOperationException("boom");
        client.OnQueryEnd += (_, _) => throw new InvalidOperationException("boom");
        client.OnQueryError += (_, _) => throw new InvalidOperationException("boom");
        client.OnClientDead += (_, _) => throw new InvalidOperationException("boom");
        var later = 0;
        client.OnQueryEnd += (_, _) => later++;

        Assert.Equal(1, await client.ExecuteScalarAsync(new AequorStatement("SELECT 1"), default));
        await ClientTestKit.TerminateAsync(db.AdminConnectionString, client.BackendPid!.Value);
        await ClientTestKit.WaitGoneAsync(db.AdminConnectionString, client.BackendPid!.Value);
        await Task.Delay(AequorClient.DefaultProbeAfterIdleMs + 100);
        Assert.Equal(2, await client.ExecuteScalarAsync(new AequorStatement("SELECT 2"), default));
        await Assert.ThrowsAsync<PostgresException>(() => client.ExecuteScalarAsync(new AequorStatement("SELECT 1/0"), default));

        Assert.Equal(2, later); // the handler after a throwing one still runs
        Assert.True(client.Counters.HandlerFailures >= 8, $"{client.Counters.HandlerFailures} handler failures counted");
    }

    [Fact]
    public async Task No_failure_escapes_to_the_unhandled_or_unobserved_exception_events()
    {
        var escaped = new List<object>();
        UnhandledExceptionEventHandler unhandled = (_, e) => { lock (escaped) { escaped.Add(e.ExceptionObject); } };
        EventHandler<UnobservedTaskExceptionEventArgs> unobserved = (_, e) => { lock (escaped) { escaped.Add(e.Exception); } };
        AppDomain.CurrentDomain.UnhandledException += unhandled;
        TaskScheduler.UnobservedTaskException += unobserved;
        try
        {
            var table = await NewTableAsync();
            for (var round = 0; round < 3; round++)
            {
                var client = NewClient();
                client.OnQueryEnd += (_, _) => throw new InvalidOperationException("handler");
                client.OnClientDead += (_, _) => throw new InvalidOperationException("handler");
                await client.ExecuteScalarAsync(new AequorStatement("SELECT 1"), default);
                var pid = client.BackendPid!.Value;
                var run = client.ExecuteNonQueryAsync(new AequorStatement($"INSERT INTO {table} VALUES ({round}); SELECT pg_sleep(5)"), default);
                await TerminateWhenActiveAsync(pid, "%pg_sleep%");
                await Assert.ThrowsAsync<AequorOutcomeUnknownException>(() => run);
                using var cts = new CancellationTokenSource(200);
                await Assert.ThrowsAnyAsync<OperationCanceledException>(() => client.ExecuteScalarAsync(new AequorStatement("SELECT pg_sleep(10)"), cts.Token));
                await ClientTestKit.TerminateAsync(db.AdminConnectionString, client.BackendPid!.Value);
                await Task.Delay(100);

                // Dropped without disposal, with a dead connection: nothing may surface later either.
                if (round == 2)
                {
                    await client.DisposeAsync();
                }
            }

            for (var i = 0; i < 3; i++)
            {
                GC.Collect();
                GC.WaitForPendingFinalizers();
                await Task.Delay(100);
            }

            Assert.Empty(escaped);
        }
        finally
        {
            AppDomain.CurrentDomain.UnhandledException -= unhandled;
            TaskScheduler.UnobservedTaskException -= unobserved;
        }
    }

    [Fact]
    public async Task The_reaper_hook_runs_after_connect_feeds_OnReap_and_its_failure_is_contained()
    {
        await using var client = NewClient();
        var events = new ClientTestKit.EventLog(client);
        var calls = new List<ReapTrigger>();
        client.Reaper = (connection, trigger, ct) =>
        {
            Assert.Equal(System.Data.ConnectionState.Open, connection.State);
            calls.Add(trigger);
            return Task.FromResult(new ReapReport(true, true, 2, TimeSpan.FromMilliseconds(3)));
        };

        // Leased client with Reaper on: one pass per connect.
        await using var leased = new AequorClient(new AequorClientOptions
        {
            ConnectionString = db.AppConnectionString,
            CoordinationSecret = ClientTestKit.Secret,
            ServiceName = "client-resilience",
        });
        var leasedEvents = new ClientTestKit.EventLog(leased);
        leased.Reaper = client.Reaper;
        await leased.ExecuteScalarAsync(new AequorStatement("SELECT 1"), default);
        Assert.Equal([ReapTrigger.AfterConnect], calls);
        var reap = Assert.Single(leasedEvents.Of<AequorReapEvent>());
        Assert.Equal(2, reap.Killed);
        Assert.Equal(1, leased.Counters.ReapPasses);
        Assert.Equal(2, leased.Counters.BackendsKilled);

        // Reaper = false in the options: never called.
        await client.ExecuteScalarAsync(new AequorStatement("SELECT 1"), default);
        Assert.Single(calls);
        Assert.Empty(events.Of<AequorReapEvent>());

        // A throwing pass is swallowed (ReaperErrorMode Swallow): the statement still runs.
        await using var failing = new AequorClient(new AequorClientOptions
        {
            ConnectionString = db.AppConnectionString,
            CoordinationSecret = ClientTestKit.Secret,
        });
        failing.Reaper = (_, _, _) => throw new InvalidOperationException("reaper down");
        Assert.Equal(1, await failing.ExecuteScalarAsync(new AequorStatement("SELECT 1"), default));
        Assert.Equal(0, failing.Counters.ReapPasses);
    }

    [Fact]
    public async Task A_connection_lost_during_the_pass_after_connect_is_replaced_before_the_statement()
    {
        // Found by the soak: a worker frozen during its pass came back to find its own backend reaped,
        // and the statement then failed with "Connection is not open". Nothing had been sent: connect again.
        await using var leased = new AequorClient(new AequorClientOptions
        {
            ConnectionString = db.AppConnectionString,
            CoordinationSecret = ClientTestKit.Secret,
            ServiceName = "client-resilience",
        });
        var firstPid = 0;
        leased.Reaper = async (connection, trigger, ct) =>
        {
            if (firstPid == 0)
            {
                firstPid = connection.ProcessID;
                await using var admin = await db.OpenAsync(db.AdminConnectionString);
                await using var kill = new Npgsql.NpgsqlCommand($"SELECT pg_terminate_backend({firstPid})", admin);
                await kill.ExecuteScalarAsync(ct);
                await using var probe = new Npgsql.NpgsqlCommand("SELECT 1", connection);
                await Assert.ThrowsAnyAsync<Exception>(() => probe.ExecuteScalarAsync(ct));
            }

            return ReapReport.Skipped;
        };

        var pid = await leased.ExecuteScalarAsync(new AequorStatement("SELECT pg_backend_pid()"), default);
        Assert.NotEqual(0, firstPid);
        Assert.NotEqual(firstPid, Assert.IsType<int>(pid));
    }

    [Fact]
    public async Task Connections_lost_before_the_statement_until_the_retries_are_spent_give_a_connect_failure_not_the_servers_57P01()
    {
        // Found by the soak: a worker frozen past its time budget came back to its backend reaped, twice, and the
        // server's raw "57P01: terminating connection" reached the caller although the statement never ran.
        await using var leased = new AequorClient(new AequorClientOptions
        {
            ConnectionString = db.AppConnectionString,
            CoordinationSecret = ClientTestKit.Secret,
            ServiceName = "client-resilience",
            Retries = 0,
        });
        var killed = new List<int>();
        leased.Reaper = async (connection, trigger, ct) =>
        {
            // Every new connection dies before the statement: its backend is gone, Npgsql does not know yet.
            killed.Add(connection.ProcessID);
            Assert.True(await ClientTestKit.TerminateAsync(db.AdminConnectionString, connection.ProcessID));
            await ClientTestKit.WaitGoneAsync(db.AdminConnectionString, connection.ProcessID);
            return ReapReport.Skipped;
        };

        var error = await Assert.ThrowsAsync<AequorConnectFailedException>(() =>
            leased.ExecuteNonQueryAsync(new AequorStatement("SELECT 1"), default));
        Assert.Equal(2, killed.Count); // the first connect and the one free reconnect; Retries 0
        Assert.Contains("The statement was not run", error.Message, StringComparison.Ordinal);
        Assert.Equal("57P01", error.SqlState);

        leased.Reaper = (_, _, _) => Task.FromResult(ReapReport.Skipped);
        Assert.Equal(1, await leased.ExecuteScalarAsync(new AequorStatement("SELECT 1"), default));
    }
}

