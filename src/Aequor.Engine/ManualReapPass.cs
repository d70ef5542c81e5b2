using System.Diagnostics;
using Aequor.Engine.Reaper;

namespace Aequor.Engine;

/// <summary>How one approved candidate of a manual pass ended.</summary>
public sealed record ReapKillOutcome(ScannedLease Lease, bool Killed, string? Reason);

/// <summary>
/// A manual reaper pass in two steps, so a caller can ask before each kill (Invoke-AequorReap
/// -Confirm): <see cref="BeginAsync"/> opens a transaction, takes the service's lock and scans,
/// <see cref="KillAsync"/> terminates the approved candidates, <see cref="DisposeAsync"/> commits.
/// It works through the client's public API (the connection is the client's), with
/// <see cref="ReaperPass"/>'s lock and rules: the transaction-scoped advisory lock on pg-aequor's keys
/// (0x50474151, hashtext(service)), which conflicts with pg-aequor's session lock and ends with the
/// transaction whatever happens; <see cref="LeaseScanner"/> selects; the kill re-checks each
/// backend at that instant.
/// </summary>
public sealed class ManualReapPass : IAsyncDisposable
{
    /// <summary>pg-aequor's advisory-lock class id (0x50474151, "PGAQ").</summary>
    public const int LockClassId = ReaperSql.LockClassId;

    /// <summary>Not approved by the caller (Invoke-AequorReap -Confirm answered no).</summary>
    public const string Declined = "declined";

    private static readonly string TryLockSql = $"SELECT pg_try_advisory_xact_lock({ReaperSql.LockClassId}, hashtext($1))";

    // Each backend dies only if, at this instant, it still has the very same application_name, is in
    // a killable state, has not changed state since the scan (ran nothing in between), and we may signal it.
    private const string KillSql = $"""
        SELECT t.pid,
               a.pid IS NOT NULL AS present,
               a.application_name IS NOT DISTINCT FROM t.app AS same_app,
               coalesce(a.state = ANY($4::text[]), false) AND a.state_change IS NOT DISTINCT FROM t.since AS still_idle,
               CASE WHEN a.application_name = t.app
                         AND a.state = ANY($4::text[])
                         AND a.state_change = t.since
                         AND {ReaperSql.CanSignal}
                    THEN pg_terminate_backend(t.pid) END AS terminated
        FROM unnest($1::int[], $2::text[], $3::timestamptz[]) AS t(pid, app, since)
        LEFT JOIN pg_stat_activity a ON a.pid = t.pid AND a.datname = current_database()
        LEFT JOIN pg_roles r ON r.oid = a.usesysid
        CROSS JOIN (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) me
        ORDER BY t.pid
        """;

    private readonly AequorClient _client;
    private readonly Stopwatch _clock;
    private bool _open;

    private ManualReapPass(AequorClient client, Stopwatch clock, LeaseScan? scan)
    {
        _client = client;
        _clock = clock;
        _open = scan is not null;
        Scan = scan;
    }

    public bool LockAcquired { get; private init; }

    /// <summary>Null when the lock was busy: nothing was scanned.</summary>
    public LeaseScan? Scan { get; }

    /// <summary>What the pass would kill, in kill order.</summary>
    public IReadOnlyList<ScannedLease> Candidates => Scan?.Candidates ?? [];

    /// <summary>Leases of our service seen by the scan (the current session excluded).</summary>
    public int Scanned => Scan?.Leases.Count(l => !l.IsCurrentSession && l.Lease.ServiceName == Scan.ServiceName) ?? 0;

    public long ElapsedMs => _clock.ElapsedMilliseconds;

    /// <param name="request">The pass's thresholds (null keeps the client's options); its DryRun is not read: the caller kills only what it approves.</param>
    public static async Task<ManualReapPass> BeginAsync(AequorClient client, ReapRequest? request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(client);
        if (!client.IsLeased)
        {
            throw new AequorConfigurationException("This session has no coordination secret: a reaper pass can recognise no lease. Connect with -CoordinationSecret.");
        }

        if (client.InTransaction)
        {
            // A session lock taken inside a transaction that then aborts is what leaves pg-aequor's lock stuck.
            throw new InvalidOperationException("A transaction is open on this session; complete or undo it before a reaper pass.");
        }

        var clock = Stopwatch.StartNew();
        await client.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var locked = await client.ExecuteScalarAsync(
                new AequorStatement(TryLockSql) { PositionalParameters = [client.ServiceName] }, cancellationToken).ConfigureAwait(false) is true;
            if (!locked)
            {
                await EndAsync(client, commit: false).ConfigureAwait(false);
                return new ManualReapPass(client, clock, scan: null) { LockAcquired = false };
            }

            var scan = await LeaseScanner.ScanAsync(client, all: false, request, cancellationToken).ConfigureAwait(false);
            return new ManualReapPass(client, clock, scan) { LockAcquired = true };
        }
        catch
        {
            await EndAsync(client, commit: false).ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Terminates the approved candidates (a subset of <see cref="Candidates"/>), each re-checked at the instant of the kill.</summary>
    public async Task<IReadOnlyList<ReapKillOutcome>> KillAsync(IEnumerable<ScannedLease> approved, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(approved);
        if (!_open)
        {
            throw new InvalidOperationException("The pass does not hold the reaper lock.");
        }

        var allowed = Candidates.ToDictionary(l => l.Pid);
        var chosen = approved.Where(l => allowed.ContainsKey(l.Pid)).Select(l => allowed[l.Pid]).ToList();
        if (chosen.Count == 0)
        {
            return [];
        }

        var states = Scan!.Settings.KillableStates;
        var statement = new AequorStatement(KillSql)
        {
            PositionalParameters =
            [
                chosen.Select(l => l.Pid).ToArray(),
                chosen.Select(l => l.Lease.ApplicationName).ToArray(),
                chosen.Select(l => DateTime.SpecifyKind(l.StateChange!.Value, DateTimeKind.Utc)).ToArray(),
                states,
            ],
        };

        _ = await _client.ExecuteScalarAsync(new AequorStatement(ReaperSql.FreshActivity), cancellationToken).ConfigureAwait(false);
        var outcomes = new List<ReapKillOutcome>();
        var reader = await _client.ExecuteReaderAsync(statement, cancellationToken).ConfigureAwait(false);
        await using (reader.ConfigureAwait(false))
        {
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                var lease = allowed[(int)reader.GetValue(0)!];
                if (reader.GetValue(4) is true)
                {
                    outcomes.Add(new ReapKillOutcome(lease, Killed: true, Reason: null));
                    continue;
                }

                var reason = reader.GetValue(1) is not true ? ReapReasons.Gone
                    : reader.GetValue(2) is not true ? ReapReasons.Renewed
                    : reader.GetValue(3) is not true ? ReapReasons.WokeUp
                    : ReapReasons.TerminateFailed;
                outcomes.Add(new ReapKillOutcome(lease, Killed: false, reason));
            }
        }

        return outcomes;
    }

    /// <summary>Commits, which releases the lock; never throws (a lost connection ended the transaction and its lock already).</summary>
    public async ValueTask DisposeAsync()
    {
        if (!_open)
        {
            return;
        }

        _open = false;
        await EndAsync(_client, commit: true).ConfigureAwait(false);
    }

    private static async Task EndAsync(AequorClient client, bool commit)
    {
        if (!client.InTransaction)
        {
            return;
        }

        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            if (commit)
            {
                await client.CommitAsync(timeout.Token).ConfigureAwait(false);
            }
            else
            {
                await client.RollbackAsync(timeout.Token).ConfigureAwait(false);
            }
        }
#pragma warning disable CA1031 // The server ends a dead session's transaction, and its lock, by itself.
        catch (Exception)
#pragma warning restore CA1031
        {
            if (commit && client.InTransaction)
            {
                await EndAsync(client, commit: false).ConfigureAwait(false);
            }
        }
    }
}
