using System.Diagnostics;
using Aequor.Engine.Reaper;

namespace Aequor.Engine;

/// <summary>How one approved candidate of a manual pass ended.</summary>
public sealed record ReapKillOutcome(ScannedLease Lease, bool Killed, string? Reason)
{
    /// <summary>Killed and exited when the kill returned: its connection slot is free (the kill waits up to a second for it).</summary>
    public bool Exited { get; init; }
}

/// <summary>
/// A manual reaper pass in two steps, so a caller can ask before each kill (Invoke-AequorReap
/// -Confirm): <see cref="BeginAsync"/> opens a transaction, takes the service's lock and scans,
/// <see cref="KillAsync"/> terminates the approved candidates, <see cref="DisposeAsync"/> commits.
/// It works through the client's public API (the connection is the client's), with
/// <see cref="ReaperPass"/>'s lock and rules: the transaction-scoped advisory lock on pg-aequor's keys
/// (0x50474151, hashtext(service)), which conflicts with pg-aequor's session lock and ends with the
/// transaction whatever happens; <see cref="LeaseScanner"/> selects with <see cref="ReapPlanner"/>;
/// the kill is <see cref="ReaperSql.Kill"/>: it re-checks each backend at that instant and waits for
/// the killed ones to exit.
/// </summary>
public sealed class ManualReapPass : IAsyncDisposable
{
    /// <summary>pg-aequor's advisory-lock class id (0x50474151, "PGAQ").</summary>
    public const int LockClassId = ReaperSql.LockClassId;

    /// <summary>Not approved by the caller (Invoke-AequorReap -Confirm answered no).</summary>
    public const string Declined = "declined";

    private static readonly string TryLockSql = $"SELECT pg_try_advisory_xact_lock({ReaperSql.LockClassId}, hashtext($1))";

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

        var scan = Scan!;
        var wanted = approved.Select(l => l.Pid).ToHashSet();
        var chosen = scan.ReapCandidates.Where(c => wanted.Contains(c.Pid)).ToList();
        if (chosen.Count == 0)
        {
            return [];
        }

        // The automatic pass's kill: the same re-checks, then the wait for the killed to exit.
        var statement = new AequorStatement(ReaperSql.Kill)
        {
            PositionalParameters = [KillJson.Candidates(chosen), KillJson.States(scan.Settings.KillableStates)],
        };

        _ = await _client.ExecuteScalarAsync(new AequorStatement(ReaperSql.FreshActivity), cancellationToken).ConfigureAwait(false);
        var leases = scan.Candidates.ToDictionary(l => l.Pid);
        var outcomes = new List<ReapKillOutcome>();
        var reader = await _client.ExecuteReaderAsync(statement, cancellationToken).ConfigureAwait(false);
        await using (reader.ConfigureAwait(false))
        {
            Func<int, object?> column = reader.GetValue;
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                var row = KillRow.Read(column);
                outcomes.Add(new ReapKillOutcome(leases[row.Pid], Killed: row.Reason is null, row.Reason) { Exited = row.Exited });
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
