using System.Collections.Concurrent;
using Npgsql;

namespace Aequor.Engine.Tests;

/// <summary>Helpers the client's integration tests share: a superuser's view of the server.</summary>
internal static class ClientTestKit
{
    public const string Secret = AequorClientTests.Secret;

    public static async Task<T?> AdminScalarAsync<T>(string adminConnectionString, string sql, params object[] args)
    {
        var b = new NpgsqlConnectionStringBuilder(adminConnectionString) { Pooling = false };
        await using var conn = new NpgsqlConnection(b.ConnectionString);
        await conn.OpenAsync();
        await using var cmd = new NpgsqlCommand(sql, conn);
        foreach (var a in args)
        {
            cmd.Parameters.Add(new NpgsqlParameter { Value = a });
        }

        var value = await cmd.ExecuteScalarAsync();
        return value is null or DBNull ? default : (T)value;
    }

    /// <summary>The first row of <paramref name="select"/> as <see cref="AequorReader.GetValue"/> reads it.</summary>
    public static async Task<object?[]> ReadRowAsync(AequorClient client, string select)
    {
        await using var reader = await client.ExecuteReaderAsync(new AequorStatement(select), CancellationToken.None);
        Assert.True(await reader.ReadAsync(CancellationToken.None));
        var row = new object?[reader.FieldCount];
        for (var i = 0; i < row.Length; i++)
        {
            row[i] = reader.GetValue(i);
        }

        return row;
    }

    /// <summary>A frozen worker's backend: a lease of <paramref name="service"/> signed with <see cref="Secret"/>, expired a minute ago.</summary>
    public static Task<NpgsqlConnection> ZombieAsync(PostgresFixture db, string service) =>
        db.OpenAsync(db.AppConnectionString, new LeaseSigner(Secret).Sign(service, InstanceIds.Generate(), DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() - 60_000));

    /// <summary>A statement with $1, $2 … values, its first column's value returned.</summary>
    public static Task<object?> RunAsync(AequorClient client, string sql, params object?[] values) =>
        client.ExecuteScalarAsync(new AequorStatement(sql) { PositionalParameters = values.Length == 0 ? null : values }, default);

    /// <summary>What an administrator (or a reaper, a restart, an idle timeout) does between two statements.</summary>
    public static async Task TerminateBetweenStatementsAsync(string adminConnectionString, AequorClient client)
    {
        var pid = client.BackendPid!.Value;
        Assert.True(await TerminateAsync(adminConnectionString, pid));
        await WaitGoneAsync(adminConnectionString, pid);
        await Task.Delay(AequorClient.DefaultProbeAfterIdleMs + 100);
    }

    /// <summary>How many backends hold the session or transaction advisory lock of a 64-bit key.</summary>
    public static Task<long> AdvisoryLocksOfAsync(string adminConnectionString, long key) =>
        AdminScalarAsync<long>(adminConnectionString,
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND ((classid::int8 << 32) | objid::int8) = $1", key);

    public static Task<bool> TerminateAsync(string adminConnectionString, int pid) =>
        AdminScalarAsync<bool>(adminConnectionString, "SELECT pg_terminate_backend($1)", pid);

    public static async Task WaitUntilAsync(Func<Task<bool>> condition, TimeSpan timeout, string what)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!await condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"Timed out after {timeout.TotalSeconds} s waiting for: {what}");
            }

            await Task.Delay(50);
        }
    }

    public static Task WaitGoneAsync(string adminConnectionString, int pid) =>
        WaitUntilAsync(async () => await AdminScalarAsync<long>(adminConnectionString, "SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid) == 0,
            TimeSpan.FromSeconds(10), $"backend {pid} to leave pg_stat_activity");

    /// <summary>A fresh table with a unique key (id int PRIMARY KEY), created as the app role: for counting writes.</summary>
    public static async Task<string> NewKeyedTableAsync(string appConnectionString, string prefix)
    {
        var name = prefix + "_" + Guid.NewGuid().ToString("N")[..10];
        await using var setup = new AequorClient(new AequorClientOptions { ConnectionString = appConnectionString, LeaseMode = LeaseMode.Optional, Reaper = false });
        await setup.ExecuteNonQueryAsync(new AequorStatement($"CREATE TABLE {name} (id int PRIMARY KEY)"), default);
        return name;
    }

    /// <summary>How many rows of <paramref name="table"/> have the key: 0 or 1 proves no write ran twice.</summary>
    public static Task<long> CountKeyAsync(string adminConnectionString, string table, int id) =>
        AdminScalarAsync<long>(adminConnectionString, $"SELECT count(*) FROM {table} WHERE id = $1", id);

    /// <summary>Waits until the backend is running a statement whose text matches the LIKE pattern.</summary>
    public static Task WaitActiveAsync(string adminConnectionString, int pid, string like) =>
        WaitUntilAsync(async () => await AdminScalarAsync<long>(adminConnectionString,
                "SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND state = 'active' AND query LIKE $2", pid, like) > 0,
            TimeSpan.FromSeconds(10), "the statement to be running");

    public static Task<string?> StateOfAsync(string adminConnectionString, int pid) =>
        AdminScalarAsync<string>(adminConnectionString, "SELECT state FROM pg_stat_activity WHERE pid = $1", pid);

    public static Task<string?> ApplicationNameOfAsync(string adminConnectionString, int pid) =>
        AdminScalarAsync<string>(adminConnectionString, "SELECT application_name FROM pg_stat_activity WHERE pid = $1", pid);

    /// <summary>Records every event a client raises, in order.</summary>
    public sealed class EventLog
    {
        public ConcurrentQueue<object> All { get; } = new();

        public EventLog(AequorClient client)
        {
            client.OnConnect += (_, e) => All.Enqueue(e);
            client.OnReconnect += (_, e) => All.Enqueue(e);
            client.OnQueryStart += (_, e) => All.Enqueue(e);
            client.OnQueryEnd += (_, e) => All.Enqueue(e);
            client.OnQueryError += (_, e) => All.Enqueue(e);
            client.OnQueryRetry += (_, e) => All.Enqueue(e);
            client.OnHeartbeat += (_, e) => All.Enqueue(e);
            client.OnHeartbeatFail += (_, e) => All.Enqueue(e);
            client.OnReap += (_, e) => All.Enqueue(e);
            client.OnClientDead += (_, e) => All.Enqueue(e);
        }

        public IReadOnlyList<T> Of<T>() => All.OfType<T>().ToList();
    }
}
