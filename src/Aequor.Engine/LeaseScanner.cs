using Aequor.Engine.Reaper;

namespace Aequor.Engine;

/// <summary>A lease seen in pg_stat_activity, judged on the database's clock.</summary>
public sealed record ScannedLease
{
    public required int Pid { get; init; }

    public required Lease Lease { get; init; }

    public required bool IsExpired { get; init; }

    public required bool IsSignatureValid { get; init; }

    public bool SignedWithPreviousSecret { get; init; }

    /// <summary>Null when the role may not see it (another role's backend without pg_read_all_stats).</summary>
    public string? State { get; init; }

    public double? IdleSeconds { get; init; }

    public bool IsCurrentSession { get; init; }

    public bool CanSignal { get; init; }

    /// <summary>A reaper pass with the same options would terminate it now.</summary>
    public bool IsReapable => NotReapableReason is null;

    /// <summary>Why a pass would leave it alone (a <see cref="ReapReasons"/> constant); null when reapable.</summary>
    public string? NotReapableReason { get; init; }

    public string? UserName { get; init; }

    public string? ClientAddress { get; init; }

    /// <summary>When it entered its current state; a kill re-checks it is unchanged.</summary>
    public DateTime? StateChange { get; init; }
}

/// <summary>One scan: the leases and the database clock they were judged on.</summary>
public sealed class LeaseScan
{
    internal LeaseScan(long databaseNowMs, IReadOnlyList<ScannedLease> leases, string serviceName, ReapSettings settings, IReadOnlyList<ReapCandidate> candidates)
    {
        DatabaseNowMs = databaseNowMs;
        Leases = leases;
        ServiceName = serviceName;
        Settings = settings;
        ReapCandidates = candidates;
        var byPid = leases.ToDictionary(l => l.Pid);
        Candidates = [.. candidates.Select(c => byPid[c.Pid])];
    }

    public long DatabaseNowMs { get; }

    /// <summary>Client backends of the whole server at scan time (the reaper's storm measure).</summary>
    public int? ConnectionsUsed { get; init; }

    /// <summary>Slots open to non-superusers: max_connections − superuser_reserved_connections (− reserved_connections).</summary>
    public int? ConnectionsAvailable { get; init; }

    public string ServiceName { get; }

    public IReadOnlyList<ScannedLease> Leases { get; }

    /// <summary>The reapable leases in kill order (<see cref="ReapPlanner"/>'s: oldest expiry first, then longest idle, then pid).</summary>
    public IReadOnlyList<ScannedLease> Candidates { get; }

    /// <summary>The thresholds the leases were judged with.</summary>
    internal ReapSettings Settings { get; }

    /// <summary><see cref="Candidates"/> as the kill statement takes them.</summary>
    internal IReadOnlyList<ReapCandidate> ReapCandidates { get; }

    /// <summary>Leases of our service a pass would leave alone, counted by reason.</summary>
    public IReadOnlyDictionary<string, int> CountNotReapable() =>
        Leases.Where(l => l.NotReapableReason is not null && !l.IsCurrentSession && l.Lease.ServiceName == ServiceName)
            .GroupBy(l => l.NotReapableReason!, StringComparer.Ordinal)
            .ToDictionary(g => g.Key, g => g.Count(), StringComparer.Ordinal);
}

/// <summary>
/// Reads leases from pg_stat_activity through a client (the cmdlets cannot reach its connection)
/// and judges each with <see cref="ReapPlanner"/>, the automatic pass's rules (docs/reaper.md), so
/// Get-AequorLease and a pass's result speak alike. What differs from the pass's own scan: this one
/// also lists other services' leases (-All) and the scanning session itself
/// (<see cref="ReapReasons.CurrentSession"/>), reads the client address, and keeps
/// MaxIdleConnectionsToKill as the cap even near the connection limit (the storm cap is the automatic pass's).
/// </summary>
public static class LeaseScanner
{
    /// <summary>The scanning session itself: a pass never scans its own backend.</summary>
    public const string CurrentSession = ReapReasons.CurrentSession;

    // statement_timestamp(), not now(): inside a transaction now() is the transaction's start.
    // The one-row subquery makes the clock come back even when no backend matches.
    // Inside a transaction PostgreSQL answers every later read of pg_stat_activity from its first snapshot: c clears
    // it, and g and b read after it because each takes a value of the one before (LATERAL).
    private const string ScanSql = $"""
        SELECT g.now_ms, b.pid, b.application_name, b.state, b.usename, b.client_addr, b.idle_sec, b.state_change, b.is_self, b.can_signal,
               g.used, g.available
        FROM (SELECT pg_stat_clear_snapshot()::text AS cleared OFFSET 0) c
        CROSS JOIN LATERAL
             (SELECT c.cleared, (extract(epoch FROM statement_timestamp()) * 1000)::bigint AS now_ms, statement_timestamp() AS ts,
                     {ReaperSql.UsedConnections} AS used,
                     current_setting('max_connections')::int - current_setting('superuser_reserved_connections')::int
                       - coalesce(nullif(current_setting('reserved_connections', true), '')::int, 0) AS available
              OFFSET 0) g
        LEFT JOIN LATERAL (
            SELECT a.pid, a.application_name, a.state, a.usename::text AS usename,
                   host(a.client_addr) AS client_addr,
                   extract(epoch FROM g.ts - a.state_change)::float8 AS idle_sec,
                   a.state_change,
                   a.pid = pg_backend_pid() AS is_self,
                   {ReaperSql.CanSignal} AS can_signal
            FROM pg_stat_activity a
            LEFT JOIN pg_roles r ON r.oid = a.usesysid
            CROSS JOIN (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) me
            WHERE a.datname = current_database()
              AND a.application_name LIKE 's=%'
              AND left(a.application_name, length($1)) = $1
            ORDER BY a.pid
        ) b ON true
        """;

    /// <param name="all">Every lease of the database, any service; false: only the client's own service.</param>
    /// <param name="overrides">The thresholds of the pass to judge for (null keeps the client's options); its DryRun is not read.</param>
    public static async Task<LeaseScan> ScanAsync(AequorClient client, bool all, ReapRequest? overrides, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(client);
        var options = ReaperOptions.Of(client.Options, client.ServiceName);
        var settings = ReapSettings.From(options, overrides);
        var verifier = string.IsNullOrEmpty(options.CoordinationSecret) ? null : new LeaseVerifier(options.CoordinationSecret, options.PreviousCoordinationSecret);

        var rows = new List<ScannedBackend>();
        var addresses = new List<string?>();
        long nowMs = 0;
        int? used = null;
        int? available = null;
        // A read (pg_stat_clear_snapshot touches only this backend's cache): a connection lost after it was sent is
        // a reason to send it again on a new one, never an outcome to doubt.
        var statement = new AequorStatement(ScanSql) { PositionalParameters = [all ? "s=" : settings.Prefix], Idempotent = true };
        var reader = await client.ExecuteReaderAsync(statement, cancellationToken).ConfigureAwait(false);
        await using (reader.ConfigureAwait(false))
        {
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                nowMs = Convert.ToInt64(reader.GetValue(0), System.Globalization.CultureInfo.InvariantCulture);
                used = reader.GetValue(10) as int?;
                available = reader.GetValue(11) as int?;
                if (reader.GetValue(1) is not int pid)
                {
                    continue;
                }

                rows.Add(new ScannedBackend(
                    pid,
                    reader.GetValue(2) as string ?? string.Empty,
                    reader.GetValue(3) as string,
                    reader.GetValue(4) as string,
                    reader.GetValue(7) as DateTime?,
                    reader.GetValue(6) as double?,
                    reader.GetValue(9) is true,
                    IsSelf: reader.GetValue(8) is true));
                addresses.Add(reader.GetValue(5) as string);
            }
        }

        var plan = ReapPlanner.Select(rows, nowMs, settings, verifier, nearLimit: false);
        var leases = new List<ScannedLease>();
        for (var i = 0; i < rows.Count; i++)
        {
            var row = rows[i];
            if (!Lease.TryParse(row.ApplicationName, out var lease))
            {
                continue; // not_a_lease to the planner; a listing shows leases only
            }

            var verification = verifier?.Verify(lease) ?? LeaseVerification.Invalid;
            leases.Add(new ScannedLease
            {
                Pid = row.Pid,
                Lease = lease,
                IsExpired = lease.IsExpiredAt(nowMs),
                IsSignatureValid = verification != LeaseVerification.Invalid,
                SignedWithPreviousSecret = verification == LeaseVerification.Previous,
                State = row.State,
                IdleSeconds = row.IdleSeconds,
                IsCurrentSession = row.IsSelf,
                CanSignal = row.CanSignal,
                UserName = row.UserName,
                ClientAddress = addresses[i],
                StateChange = row.StateChange,
                NotReapableReason = plan.Reasons[i],
            });
        }

        return new LeaseScan(nowMs, leases, settings.ServiceName, settings, plan.Candidates) { ConnectionsUsed = used, ConnectionsAvailable = available };
    }
}
