using System.Diagnostics;
using Aequor.Engine.Tests.Faults;
using Npgsql;

namespace Aequor.Engine.Tests;

/// <summary>
/// Disposing a client while other threads use it (a shared session closed by Disconnect-Aequor, a runspace
/// closing or the module removed while another runspace runs a query): calls end promptly with a clear error,
/// and nothing is run or connected after the dispose.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class ClientDisposeTests(PostgresFixture db)
{
    // Far past what a prompt answer takes on a loaded machine, far below a hang.
    private static readonly TimeSpan Prompt = TimeSpan.FromSeconds(5);

    private AequorClient NewClient() => new(new AequorClientOptions
    {
        ConnectionString = db.AppConnectionString,
        CoordinationSecret = ClientTestKit.Secret,
        ServiceName = "client-dispose",
        Reaper = false,
    });

    private Task<long> BackendsOfAsync(AequorClient client) =>
        ClientTestKit.AdminScalarAsync<long>(db.AdminConnectionString,
            "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE $1", "%" + client.InstanceId + "%");

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Disposing_stops_the_running_statement_and_fails_the_waiting_call_promptly(bool synchronous)
    {
        var client = NewClient();
        await client.ConnectAsync(default);
        var pid = client.BackendPid!.Value;
        var sleeping = new AequorStatement("SELECT pg_sleep(5)");
        var running = synchronous
            ? Task.Factory.StartNew(() => client.ExecuteScalar(sleeping, default), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default)
            : client.ExecuteScalarAsync(sleeping, default);
        await ClientTestKit.WaitActiveAsync(db.AdminConnectionString, pid, "SELECT pg_sleep%");
        var waiting = client.ExecuteScalarAsync(new AequorStatement("SELECT 2"), default);
        Assert.False(waiting.IsCompleted);

        await client.DisposeAsync().AsTask().WaitAsync(Prompt);

        // The server cancelled the sleep (it did not take effect): the client was disposed, not a protocol error.
        await Assert.ThrowsAsync<ObjectDisposedException>(() => running.WaitAsync(Prompt));
        await Assert.ThrowsAsync<ObjectDisposedException>(() => waiting.WaitAsync(Prompt));
        await ClientTestKit.WaitGoneAsync(db.AdminConnectionString, pid);
        Assert.Equal(AequorClientState.Disposed, client.State);
        await Assert.ThrowsAsync<ObjectDisposedException>(() => client.ExecuteScalarAsync(new AequorStatement("SELECT 3"), default));
    }

    [Fact]
    public async Task A_statement_in_its_connect_retry_delay_when_the_client_is_disposed_is_never_run_and_opens_no_connection()
    {
        var b = new NpgsqlConnectionStringBuilder(db.AppConnectionString);
        await using var proxy = new FaultProxy(b.Host!, b.Port);
        var client = new AequorClient(new AequorClientOptions
        {
            ConnectionString = new NpgsqlConnectionStringBuilder(proxy.Rewrite(db.AppConnectionString)) { Timeout = 1 }.ConnectionString,
            CoordinationSecret = ClientTestKit.Secret,
            ServiceName = "client-dispose",
            Reaper = false,
            MinBackoff = 1_000,
            MaxBackoff = 1_000,
        });
        Task? disposing = null;
        client.OnReconnect += (_, e) =>
        {
            if (e.Error is not null && disposing is null)
            {
                // The first connect timed out; the server is back for the next one, the client is disposed meanwhile.
                proxy.BlackHole = false;
                disposing = Task.Run(async () =>
                {
                    await Task.Delay(200);
                    await client.DisposeAsync();
                });
            }
        };

        proxy.BlackHole = true;
        var call = client.ExecuteScalarAsync(new AequorStatement("SELECT 1"), default);

        await Assert.ThrowsAsync<ObjectDisposedException>(() => call.WaitAsync(Prompt));
        Assert.NotNull(disposing);
        await disposing!.WaitAsync(Prompt);
        await Task.Delay(1_200); // past the retry delay: no attempt may follow it
        Assert.Equal(0, await BackendsOfAsync(client));
        Assert.Equal(0, client.Counters.Connects);
    }

    [Fact]
    public async Task A_write_sent_behind_a_probe_and_cut_short_by_dispose_is_outcome_unknown_never_not_run()
    {
        var table = await ClientTestKit.NewKeyedTableAsync(db.AppConnectionString, "dispose_probe");
        var (proxy, client) = ProxiedClient.Create(db, "client-dispose");
        await using var _ = proxy;
        client.ProbeAfterIdleMs = 0; // every statement carries a probe ahead of it, in the same round trip
        await client.ExecuteScalarAsync(new AequorStatement("SELECT 1"), default);
        var pid = client.BackendPid!.Value;

        // The server gets the probe and the insert and runs them; the client hears nothing back, and the cancel
        // the dispose sends never reaches the server: the insert committed, and no reply ever said so.
        proxy.DropReplies = true;
        proxy.SwallowNewLinks = true;
        var insert = client.ExecuteNonQueryAsync(new AequorStatement($"INSERT INTO {table} (id) VALUES (1)"), default);
        await ClientTestKit.WaitUntilAsync(async () => await ClientTestKit.CountKeyAsync(db.AdminConnectionString, table, 1) == 1, Prompt, "the insert committed");
        Assert.False(insert.IsCompleted);

        // The dispose keeps its bound (CancellationTimeout + 1 s) though the call it cut short lasts until Npgsql's own
        // timeouts break the connection (twice the connect Timeout here, with the cancel request swallowed too).
        var disposing = Stopwatch.StartNew();
        await client.DisposeAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(30));
        Assert.True(disposing.Elapsed < Prompt, $"the dispose took {disposing.Elapsed.TotalSeconds:0.0} s");

        // "Not run" would be a lie the caller acts on (it would insert again): only a server error ahead of the
        // statement proves that a statement behind a probe never started.
        var failure = await Assert.ThrowsAsync<AequorOutcomeUnknownException>(() => insert.WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.Contains("disposed", failure.Message, StringComparison.Ordinal);
        Assert.Equal(1, await ClientTestKit.CountKeyAsync(db.AdminConnectionString, table, 1));
        await ClientTestKit.WaitGoneAsync(db.AdminConnectionString, pid);
    }
}
