using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using Aequor.Engine;
using Aequor.TestServer;
using Npgsql;

namespace Aequor.Bench;

/// <summary>
/// The zombie storm. A cluster of its own with max_connections 60 (57 slots for the app role); a child process
/// opens 50 leased connections with a 500 ms lease and is frozen with SIGSTOP; once the leases expired and the
/// backends idled past MinConnectionIdleTimeSec (1 s here, instead of the default 180 s, to keep the run short),
/// 30 new clients start at once, each its own AequorClient (its own physical connection; concurrent tasks in
/// this one process, not 30 processes), each one call = connect + SELECT 1, and keep their connection until
/// the whole burst is over (a worker does not give its slot back after one statement). Baseline: the same storm,
/// fresh, with plain Npgsql clients (Pooling=false, no retry). Target: 30/30 served within 2 s, no error except
/// retried 53300s. Every other AequorClient option is at its default (ReaperRunProbability 0.1, Retries 3,
/// MinBackoff 100, MaxBackoff 2000, MaxIdleConnectionsToKill 10). With --pwsh-dll/--module/--script, the burst
/// again through the cmdlets (StormBench.Cmdlets.cs), in a storm and in a no-storm control.
/// </summary>
internal static partial class StormBench
{
    private const int MaxConnections = 60;
    private const int Frozen = 50;
    private const int Burst = 30;
    private const int HolderLeaseMs = 500;
    private const int MinIdleSec = 1;
    private const int TargetMs = 2_000;
    private const string Service = "storm";
    private const string Secret = "storm-bench-coordination-secret-0123";

    /// <summary>From the freeze to the burst: the leases expired on the database clock and the backends idled past the threshold, with a margin.</summary>
    private static readonly TimeSpan Settle = TimeSpan.FromMilliseconds(Math.Max(HolderLeaseMs, MinIdleSec * 1000) + 700);

    private enum Side
    {
        Npgsql,
        Aequor,
        Cmdlets,

        /// <summary>The cmdlets' burst with no storm (no holder): the control for what a fresh pwsh costs.</summary>
        NoStorm,
    }

    public static async Task<int> RunAsync(string[] args)
    {
        var cmdlets = CmdletSideFrom(args);
        using var cts = new CancellationTokenSource();
        using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => { c.Cancel = true; cts.Cancel(); });
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; cts.Cancel(); });
        var ct = cts.Token;

        await using var server = await TestPostgres.StartLocalAsync(MaxConnections, ct);
        var version = await ScalarAsync(server.AdminConnectionString, "SHOW server_version", ct);
        Console.WriteLine($"storm: PostgreSQL {version}, max_connections {MaxConnections}, {Frozen} frozen leases (SIGSTOP, lease {HolderLeaseMs} ms, MinConnectionIdleTimeSec {MinIdleSec}), burst of {Burst} clients as concurrent tasks in one process");
        BenchLine.Info("postgres", version);

        var raw = await RunStormAsync(server, Side.Npgsql, ct);
        var aequor = await RunStormAsync(server, Side.Aequor, ct);
        var shells = cmdlets is null ? null : await RunCmdletStormAsync(server, cmdlets, ct);
        var control = cmdlets is null ? null : await RunCmdletControlAsync(server, cmdlets, ct);

        Console.WriteLine();
        Console.WriteLine($"{"side",-8} {"served",7} {"all served ms",14} {"last done ms",13} {"53300 retried",14} {"final errors",-28} {"passes (locked)",16} {"killed",7} {"frozen left",12}");
        foreach (var r in new[] { raw, aequor, shells, control }.OfType<StormResult>())
        {
            // The cmdlet sides' passes run in the child pwsh: it tells how many, not which took the lock nor what they killed.
            var cmdletSide = r.Side is Side.Cmdlets or Side.NoStorm;
            var passes = cmdletSide ? $"{r.PassConnects.Sum(p => p.Count)} (-)" : $"{r.Passes} ({r.LockedPasses})";
            var killed = cmdletSide ? "-" : r.Killed.ToString(CultureInfo.InvariantCulture);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{r.Label,-8} {r.Served,4}/{Burst} {(r.AllServedMs?.ToString(CultureInfo.InvariantCulture) ?? "-"),14} {r.LastDoneMs,13} {r.Retried53300,14} {r.FinalErrorsText,-28} {passes,16} {killed,7} {r.FrozenLeft,12}"));
        }

        WriteTimeline("Aequor", aequor);

        BenchLine.Write("storm.served", aequor.Served, "clients/30", raw.Served, "value>=30", aequor.Served == Burst);
        // The baseline never serves everyone: its time is until each plain client was served or refused
        // (what a connect costs on this machine now, the floor under any storm figure).
        BenchLine.Write("storm.all_served", aequor.AllServedMs, "ms", raw.LastDoneMs, "value<=2000", aequor.AllServedMs is <= TargetMs);
        BenchLine.Write("storm.final_errors", aequor.FinalErrors.Values.Sum(), "errors", raw.FinalErrors.Values.Sum(), "value==0", aequor.FinalErrors.Count == 0);
        BenchLine.Write("storm.retried_53300", aequor.Retried53300, "retries", null, "-", null);
        BenchLine.Write("storm.reaper_kills", aequor.Killed, "backends", null, $"passes={aequor.Passes}", null);
        if (shells is not null && control is not null)
        {
            WriteTimeline("Cmdlets", shells);
            WriteTimeline("No-storm", control);
            BenchLine.Write("storm.cmdlets.served", shells.Served, "clients/30", raw.Served, "value>=30", shells.Served == Burst);
            // Baseline: the engine's burst of tasks in this run; the ratio is what 30 runspaces of cmdlets add to it.
            BenchLine.Write("storm.cmdlets.all_served", shells.AllServedMs, "ms", aequor.AllServedMs, "value<=2000", shells.AllServedMs is <= TargetMs);
            // The split of all_served, both over it: the control's ratio is the share a fresh pwsh's 30 first connects
            // take with no storm at all, storm_cost's the share the storm adds (the two ratios sum to 1).
            BenchLine.Write("storm.cmdlets.no_storm", control.AllServedMs, "ms", shells.AllServedMs, "control: fresh pwsh, no storm", null);
            BenchLine.Write("storm.cmdlets.storm_cost", shells.AllServedMs - control.AllServedMs, "ms", shells.AllServedMs, "all_served - no_storm", null);
            BenchLine.Write("storm.cmdlets.final_errors", shells.FinalErrors.Values.Sum(), "errors", raw.FinalErrors.Values.Sum(), "value==0", shells.FinalErrors.IsEmpty);
            BenchLine.Write("storm.cmdlets.retried_53300", shells.Retried53300, "retries", null, "-", null);
        }

        return 0;
    }

    /// <summary>When the passes ran and each client was served, then why any failed.</summary>
    private static void WriteTimeline(string side, StormResult result)
    {
        Console.WriteLine();
        if (result.Side is Side.Cmdlets or Side.NoStorm)
        {
            Console.WriteLine($"{side}: connects that ran a reaper pass returned at (ms after the burst began, passes): "
                + (result.PassConnects.IsEmpty ? "none" : string.Join("; ", result.PassConnects.OrderBy(p => p.ConnectReturnedMs).Select(p => $"{p.ConnectReturnedMs} ({p.Count})"))));
        }
        else
        {
            Console.WriteLine($"{side} passes (ms after the burst began: locked, killed, duration):");
            Console.WriteLine("  " + string.Join("; ", result.PassLog.OrderBy(p => p.AtMs).Select(p => $"{p.AtMs}: {(p.Locked ? "locked" : "busy")}, {p.Killed}, {p.DurationMs} ms{(p.Error is null ? string.Empty : " error " + p.Error)}")));
        }

        Console.WriteLine($"{side} served at (ms): " + string.Join(' ', result.ServedAtMs.Order()));
        foreach (var message in result.FailureMessages.Order(StringComparer.Ordinal))
        {
            Console.WriteLine($"{side} failed at {message}");
        }
    }

    private sealed record PassRecord(long AtMs, bool Locked, int Killed, long DurationMs, string? Error);

    private sealed class StormResult(Side side)
    {
        public Side Side { get; } = side;

        public string Label => Side == Side.NoStorm ? "no-storm" : Side.ToString();

        public ConcurrentBag<long> ServedAtMs { get; } = [];

        public ConcurrentDictionary<string, int> FinalErrors { get; } = new();

        public ConcurrentBag<PassRecord> PassLog { get; } = [];

        /// <summary>The cmdlet sides' passes: the connects that ran one, from the child pwsh.</summary>
        public ConcurrentBag<StormRunspaceBurst.Pass> PassConnects { get; } = [];

        /// <summary>Why each Aequor or cmdlet client failed, to read beside the counts (the plain clients' 53300s are expected).</summary>
        public ConcurrentBag<string> FailureMessages { get; } = [];

        public int Retried53300;

        public long LastDoneMs { get; set; }

        public int FrozenLeft { get; set; }

        public int Served => ServedAtMs.Count;

        public long? AllServedMs => Served == Burst ? ServedAtMs.Max() : null;

        public int Passes => PassLog.Count;

        public int LockedPasses => PassLog.Count(p => p.Locked);

        public int Killed => PassLog.Sum(p => p.Killed);

        public string FinalErrorsText => FinalErrors.IsEmpty ? "none" : string.Join(", ", FinalErrors.OrderBy(e => e.Key).Select(e => $"{e.Key} ×{e.Value}"));
    }

    private static async Task<StormResult> RunStormAsync(TestPostgres server, Side side, CancellationToken ct)
    {
        await WaitForNoClientsAsync(server.AdminConnectionString, ct);
        var result = new StormResult(side);
        await using (var holder = await FrozenHolder.StartAsync(server.AppConnectionString, Secret, Service, Frozen, HolderLeaseMs, ct))
        {
            await holder.FreezeAsync();

            await Task.Delay(Settle, ct);
            var frozen = await CountFrozenAsync(server.AdminConnectionString, ct);
            if (frozen != Frozen)
            {
                throw new InvalidOperationException($"Expected {Frozen} frozen backends before the burst, found {frozen}.");
            }

            await BurstAsync(server, side, result, ct);
            result.FrozenLeft = await CountFrozenAsync(server.AdminConnectionString, ct);
        }

        return result;
    }

    private static async Task BurstAsync(TestPostgres server, Side side, StormResult result, CancellationToken ct)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(ct);
        deadline.CancelAfter(TimeSpan.FromSeconds(40));
        var start = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var clock = new Stopwatch();
        var ready = new CountdownEvent(Burst);
        var rawSettings = new NpgsqlConnectionStringBuilder(server.AppConnectionString) { Pooling = false, ApplicationName = "storm-raw" }.ConnectionString;

        var clients = Enumerable.Range(0, Burst).Select(i => Task.Run(async () =>
        {
            if (side == Side.Aequor)
            {
                await using var client = new AequorClient(new AequorClientOptions
                {
                    ConnectionString = server.AppConnectionString,
                    CoordinationSecret = Secret,
                    ServiceName = Service,
                    MinConnectionIdleTimeSec = MinIdleSec,
                });
                client.OnReconnect += (_, e) =>
                {
                    if (SqlState(e.Error) == PostgresErrorCodes.TooManyConnections)
                    {
                        Interlocked.Increment(ref result.Retried53300);
                    }
                };
                client.OnReap += (_, e) => result.PassLog.Add(new PassRecord(clock.ElapsedMilliseconds - (long)e.Duration.TotalMilliseconds, e.Locked, e.Killed, (long)e.Duration.TotalMilliseconds, e.Error?.Message));
                ready.Signal();
                await start.Task;
                try
                {
                    _ = await client.ExecuteScalarAsync(new AequorStatement("SELECT 1"), deadline.Token);
                    result.ServedAtMs.Add(clock.ElapsedMilliseconds);
                }
                catch (Exception ex)
                {
                    result.FinalErrors.AddOrUpdate(Kind(ex), 1, (_, n) => n + 1);
                    result.FailureMessages.Add($"{clock.ElapsedMilliseconds} ms: {ex.Message}");
                }

                await release.Task;
            }
            else
            {
                await using var connection = new NpgsqlConnection(rawSettings);
                ready.Signal();
                await start.Task;
                try
                {
                    await connection.OpenAsync(deadline.Token);
                    await using var cmd = new NpgsqlCommand("SELECT 1", connection);
                    _ = await cmd.ExecuteScalarAsync(deadline.Token);
                    result.ServedAtMs.Add(clock.ElapsedMilliseconds);
                }
                catch (Exception ex)
                {
                    result.FinalErrors.AddOrUpdate(Kind(ex), 1, (_, n) => n + 1);
                }

                await release.Task;
            }

        }, ct)).ToList();

        // Every client is built and waiting: then all start at once.
        ready.Wait(ct);
        clock.Start();
        start.SetResult();

        // Wait until every client served or failed, then let them all go.
        while (result.Served + result.FinalErrors.Values.Sum() < Burst && !deadline.IsCancellationRequested)
        {
            await Task.Delay(5, CancellationToken.None);
        }

        result.LastDoneMs = clock.ElapsedMilliseconds;
        if (result.Served + result.FinalErrors.Values.Sum() < Burst)
        {
            result.FinalErrors.AddOrUpdate("unfinished", Burst - result.Served - result.FinalErrors.Values.Sum(), (_, n) => n);
        }

        release.SetResult();
        await Task.WhenAll(clients).WaitAsync(TimeSpan.FromSeconds(30), CancellationToken.None);
    }

    private static string? SqlState(Exception? ex)
    {
        for (var e = ex; e is not null; e = e.InnerException)
        {
            if (e is PostgresException pg)
            {
                return pg.SqlState;
            }
        }

        return null;
    }

    private static string Kind(Exception ex) =>
        SqlState(ex) is { } state ? state : ex.GetType().Name;

    private static async Task<int> CountFrozenAsync(string admin, CancellationToken ct) =>
        Convert.ToInt32(await ScalarAsync(admin, $"SELECT count(*) FROM pg_stat_activity WHERE left(application_name, {Service.Length + 3}) = 's={Service};'", ct), CultureInfo.InvariantCulture);

    private static async Task<int> CountClientsAsync(string admin, CancellationToken ct) =>
        Convert.ToInt32(await ScalarAsync(admin, "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()", ct), CultureInfo.InvariantCulture);

    /// <summary>The storms start from the same state: no client backend but the one asking.</summary>
    private static async Task WaitForNoClientsAsync(string admin, CancellationToken ct)
    {
        for (var i = 0; i < 300; i++)
        {
            if (await CountClientsAsync(admin, ct) == 0)
            {
                return;
            }

            await Task.Delay(100, ct);
        }

        throw new InvalidOperationException("Client backends of the previous storm are still there after 30 s.");
    }

    private static async Task<string> ScalarAsync(string connectionString, string sql, CancellationToken ct)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync(ct);
        await using var cmd = new NpgsqlCommand(sql, connection);
        return Convert.ToString(await cmd.ExecuteScalarAsync(ct), CultureInfo.InvariantCulture) ?? string.Empty;
    }
}
