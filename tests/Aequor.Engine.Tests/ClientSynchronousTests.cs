using Npgsql;

namespace Aequor.Engine.Tests;

/// <summary>
/// The synchronous methods (ExecuteScalar, ExecuteNonQuery, ExecuteReader) the cmdlets use: the round trip on
/// the calling thread, with the same write safety (ClientResilienceTests runs its write-safety cases both ways), heartbeat and cancellation.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class ClientSynchronousTests(PostgresFixture db)
{
    private AequorClient NewClient(int ttl = 90_000, int soft = 30_000) => new(new AequorClientOptions
    {
        ConnectionString = db.AppConnectionString,
        CoordinationSecret = ClientTestKit.Secret,
        ServiceName = "client-synchronous",
        Reaper = false,
        LeaseTtlMs = ttl,
        HeartbeatSoftRemainingMs = soft,
        HeartbeatHardWaitRemainingMs = Math.Min(500, soft),
        MinBackoff = 20,
        MaxBackoff = 200,
    });

    private Task<string> NewTableAsync() => ClientTestKit.NewKeyedTableAsync(db.AppConnectionString, "client_sync");

    [Fact]
    public async Task Each_method_runs_its_round_trip_on_the_calling_thread_and_returns_what_the_async_one_does()
    {
        var table = await NewTableAsync();
        await using var client = NewClient();
        Assert.Equal(1, await client.ExecuteScalarAsync(new AequorStatement("SELECT 1"), default)); // connected, clock read

        // Each statement sleeps 50 ms on the server, so an asynchronous read would have to wait and resume elsewhere.
        var threads = new List<int>();
        client.OnQueryEnd += (_, _) => threads.Add(Environment.CurrentManagedThreadId);
        var caller = -1;
        object? scalar = null;
        var changed = -1;
        var rows = new List<object?>();
        var worker = new Thread(() =>
        {
            caller = Environment.CurrentManagedThreadId;
            scalar = client.ExecuteScalar(new AequorStatement("SELECT $1::int + 1 FROM pg_sleep(0.05)") { PositionalParameters = [41] }, default);
            changed = client.ExecuteNonQuery(new AequorStatement($"INSERT INTO {table} SELECT g FROM generate_series(1, 3) g, pg_sleep(0.05)"), default);
            var reader = client.ExecuteReader(new AequorStatement($"SELECT id FROM {table}, pg_sleep(0.05) ORDER BY id"), default);
            try
            {
                while (reader.ReadAsync(default).GetAwaiter().GetResult())
                {
                    rows.Add(reader.GetValue(0));
                }
            }
            finally
            {
                reader.DisposeAsync().AsTask().GetAwaiter().GetResult();
            }
        });
        worker.Start();
        Assert.True(worker.Join(TimeSpan.FromSeconds(30)), "the synchronous calls did not return");

        Assert.Equal(42, scalar);
        Assert.Equal(3, changed);
        Assert.Equal(new object?[] { 1, 2, 3 }, rows);
        Assert.Equal(3, threads.Count);
        Assert.All(threads, t => Assert.Equal(caller, t));
    }

    [Fact]
    public async Task A_renewal_due_rides_in_the_same_synchronous_batch()
    {
        // TTL 4 s, renew when 3 s remain: due 1 s after signing.
        await using var client = NewClient(ttl: 4_000, soft: 3_000);
        var events = new ClientTestKit.EventLog(client);
        client.ExecuteScalar(new AequorStatement("SELECT 1"), default);
        var first = client.LeaseExpiresAt!.Value;

        await Task.Delay(1_300);
        Assert.Equal(2, client.ExecuteScalar(new AequorStatement("SELECT 2"), default));

        Assert.True(client.LeaseExpiresAt > first, "the lease was not renewed");
        var heartbeat = Assert.Single(events.Of<AequorHeartbeatEvent>());
        Assert.True(heartbeat.SharedRoundTrip);
        var name = await ClientTestKit.ApplicationNameOfAsync(db.AdminConnectionString, client.BackendPid!.Value);
        Assert.True(Lease.TryParse(name, out var lease) && new LeaseSigner(ClientTestKit.Secret).Verify(name));
        Assert.Equal(client.LeaseExpiresAt!.Value.ToUnixTimeMilliseconds(), lease.ExpiresAtMs);
    }

    [Fact]
    public async Task Cancelling_the_token_cancels_the_statement_on_the_server_and_the_client_goes_on()
    {
        await using var client = NewClient();
        await client.ConnectAsync(default);
        var pid = client.BackendPid!.Value;
        using var cts = new CancellationTokenSource();
        var started = DateTime.UtcNow;
        var run = Task.Factory.StartNew(
            () => client.ExecuteScalar(new AequorStatement("SELECT pg_sleep(30)"), cts.Token),
            CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        await ClientTestKit.WaitActiveAsync(db.AdminConnectionString, pid, "%pg_sleep(30)%");
        cts.Cancel();

        var ex = await Assert.ThrowsAnyAsync<OperationCanceledException>(() => run);
        Assert.True(DateTime.UtcNow - started < TimeSpan.FromSeconds(20), "the statement ran on after the cancel");
        Assert.Equal("57014", (ex.InnerException as PostgresException)?.SqlState);
        Assert.Equal(pid, client.BackendPid); // cancelled, not killed: the same backend
        Assert.Equal("idle", await ClientTestKit.StateOfAsync(db.AdminConnectionString, pid));
        Assert.Equal(1, client.ExecuteScalar(new AequorStatement("SELECT 1"), default));
    }

    [Fact]
    public async Task An_already_cancelled_token_sends_nothing()
    {
        await using var client = NewClient();
        var events = new ClientTestKit.EventLog(client);
        client.ExecuteScalar(new AequorStatement("SELECT 1"), default);
        using var cts = new CancellationTokenSource();
        await cts.CancelAsync();

        Assert.ThrowsAny<OperationCanceledException>(() => client.ExecuteScalar(new AequorStatement("SELECT 2"), cts.Token));
        Assert.Single(events.Of<AequorQueryEndEvent>());
        Assert.Equal(3, client.ExecuteScalar(new AequorStatement("SELECT 3"), default));
    }
}
