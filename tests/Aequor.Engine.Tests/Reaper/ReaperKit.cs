using Aequor.Engine.Reaper;
using Npgsql;

namespace Aequor.Engine.Tests.Reaper;

/// <summary>Leased connections for one test, a service name of its own, and cleanup of everything it opened.</summary>
internal sealed class ReaperKit : IAsyncDisposable
{
    public const string Secret = "reaper-test-secret-0123456789";
    public const string OtherSecret = "a-different-secret-9876543210";

    private readonly List<NpgsqlConnection> _opened = [];

    public ReaperKit(string adminConnectionString, string appConnectionString)
    {
        AdminConnectionString = adminConnectionString;
        AppConnectionString = appConnectionString;
    }

    public ReaperKit(PostgresFixture db)
        : this(db.AdminConnectionString, db.AppConnectionString)
    {
    }

    public string AdminConnectionString { get; }

    public string AppConnectionString { get; }

    /// <summary>Unique per test, so leftovers of another test are never in scope.</summary>
    public string Service { get; init; } = "rp-" + Guid.NewGuid().ToString("N")[..10];

    /// <summary>The role the app connection logs in as (aequor_app unless the environment gives another).</summary>
    public string AppUser => new NpgsqlConnectionStringBuilder(AppConnectionString).Username!;

    public static long NowMs => DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();

    public ReaperOptions Options(
        int minIdleSec = 0,
        int maxKills = 10,
        bool includeIdleInTransaction = false,
        int minIdleInTransactionSec = 0,
        string secret = Secret,
        string? previousSecret = null,
        ReaperErrorMode errorMode = ReaperErrorMode.Swallow) => new()
        {
            ServiceName = Service,
            CoordinationSecret = secret,
            PreviousCoordinationSecret = previousSecret,
            MinConnectionIdleTimeSec = minIdleSec,
            MaxIdleConnectionsToKill = maxKills,
            IncludeIdleInTransaction = includeIdleInTransaction,
            MinIdleInTransactionSec = minIdleInTransactionSec,
            ErrorMode = errorMode,
        };

    /// <summary>
    /// The kill waited for its backends to exit but for at most a tenth of them (rounded down), and reported
    /// exactly the ones gone. A pass that lasted as long as the wait's cap may have stopped at the cap (a slow
    /// exit on a loaded machine): then only the report is checked.
    /// </summary>
    public async Task AssertExitedAsync(ReapResult result)
    {
        Assert.Subset(result.KilledPids.ToHashSet(), result.ExitedPids.ToHashSet());
        if (result.DurationMs < ReaperSql.ExitWaitPolls * 10)
        {
            Assert.InRange(result.ExitedPids.Count, result.KilledPids.Count - (result.KilledPids.Count / 10), result.KilledPids.Count);
        }

        await using var observer = await OpenObserverAsync();
        Assert.Equal(0L, await ScalarAsync(observer, "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1)", result.ExitedPids.ToArray()));
    }

    public string Lease(long expiresAtMs, string secret = Secret, string? service = null) =>
        new LeaseSigner(secret).Sign(service ?? Service, InstanceIds.Generate(), expiresAtMs);

    /// <summary>A leased idle connection as the app role; expired by default.</summary>
    public Task<NpgsqlConnection> ZombieAsync(long? expiresAtMs = null, string secret = Secret, string? service = null) =>
        OpenAsync(Lease(expiresAtMs ?? (NowMs - 60_000), secret, service));

    public async Task<NpgsqlConnection> OpenAsync(string? applicationName, string? connectionString = null)
    {
        var b = new NpgsqlConnectionStringBuilder(connectionString ?? AppConnectionString) { Pooling = false, Timeout = 10 };
        if (applicationName is not null)
        {
            b.ApplicationName = applicationName;
        }

        var conn = new NpgsqlConnection(b.ConnectionString);
        _opened.Add(conn);
        await conn.OpenAsync();
        return conn;
    }

    /// <summary>The connection a pass runs on: the non-superuser app role.</summary>
    public Task<NpgsqlConnection> ReaperConnectionAsync() => OpenAsync("aequor-test-reaper");

    public async Task<bool> IsAliveAsync(int pid)
    {
        await using var observer = await OpenObserverAsync();
        await using var cmd = new NpgsqlCommand("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", observer);
        cmd.Parameters.Add(new NpgsqlParameter { Value = pid });
        return (long)(await cmd.ExecuteScalarAsync())! == 1;
    }

    /// <summary>pg_terminate_backend returns before the backend exits: wait until it left pg_stat_activity.</summary>
    public async Task<bool> IsGoneAsync(int pid)
    {
        await using var observer = await OpenObserverAsync();
        return await HarnessTests.GoneWithinAsync(observer, pid, TimeSpan.FromSeconds(5));
    }

    public async Task<NpgsqlConnection> OpenObserverAsync()
    {
        var conn = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(AdminConnectionString) { Pooling = false, ApplicationName = "aequor-test-observer" }.ConnectionString);
        await conn.OpenAsync();
        return conn;
    }

    public static async Task<object?> ScalarAsync(NpgsqlConnection conn, string sql, params object[] args)
    {
        await using var cmd = new NpgsqlCommand(sql, conn);
        foreach (var a in args)
        {
            cmd.Parameters.Add(new NpgsqlParameter { Value = a });
        }

        return await cmd.ExecuteScalarAsync();
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var conn in _opened)
        {
            try
            {
                await conn.DisposeAsync();
            }
            catch (Exception)
            {
                // A backend the test killed: nothing left to close.
            }
        }
    }
}
