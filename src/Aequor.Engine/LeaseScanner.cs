using Aequor.Engine.Reaper;

namespace Aequor.Engine;

/// <summary>What to scan and, for the reapable verdict, the thresholds of a pass (null keeps the client's option).</summary>
public sealed record LeaseScanRequest
{
    /// <summary>Every lease of the database, any service; false: only the client's own service.</summary>
    public bool All { get; init; }

    public int? MaxIdleConnectionsToKill { get; init; }

    public int? MinConnectionIdleTimeSec { get; init; }

    public bool? IncludeIdleInTransaction { get; init; }

    public int? MinIdleInTransactionSec { get; init; }
}

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

    /// <summary>Why a pass would leave it alone (a <see cref="ReapReasons"/> constant, or <see cref="LeaseScanner.CurrentSession"/>); null when reapable.</summary>
    public string? NotReapableReason { get; init; }

    public string? UserName { get; init; }

    public string? ClientAddress { get; init; }

    /// <summary>When it entered its current state; a kill re-checks it is unchanged.</summary>
    public DateTime? StateChange { get; init; }
}

/// <summary>One scan: the leases and the database clock they were judged on.</summary>
public sealed class LeaseScan
{
    internal LeaseScan(long databaseNowMs, IReadOnlyList<ScannedLease> leases, string serviceName)
    {
        DatabaseNowMs = databaseNowMs;
        Leases = leases;
        ServiceName = serviceName;
    }

    public long DatabaseNowMs { get; }

    /// <summary>Client backends of the whole server at scan time (the reaper's storm measure).</summary>
    public int? ConnectionsUsed { get; init; }

    /// <summary>Slots open to non-superusers: max_connections − superuser_reserved_connections (− reserved_connections).</summary>
    public int? ConnectionsAvailable { get; init; }

    public string ServiceName { get; }

    public IReadOnlyList<ScannedLease> Leases { get; }

    /// <summary>Leases of our service a pass would leave alone, counted by reason.</summary>
    public IReadOnlyDictionary<string, int> CountNotReapable() =>
        Leases.Where(l => l.NotReapableReason is not null && !l.IsCurrentSession && l.Lease.ServiceName == ServiceName)
            .GroupBy(l => l.NotReapableReason!, StringComparer.Ordinal)
            .ToDictionary(g => g.Key, g => g.Count(), StringComparer.Ordinal);
}

/// <summary>
/// Reads leases from pg_stat_activity through a client (the cmdlets cannot reach its connection)
/// and decides, with the rules of <see cref="ReaperPass"/> (docs/reaper.md), which ones a pass would
/// terminate now: our service, signed with the current or previous secret, expired on the
/// database's clock, signalable, idle (or idle in transaction when allowed) for at least the
/// threshold, oldest expiry first up to MaxIdleConnectionsToKill. The reasons are
/// <see cref="ReapReasons"/>'s, so Get-AequorLease and a pass's result speak alike.
/// </summary>
public static class LeaseScanner
{
    /// <summary>The scanning session itself: a pass never scans its own backend.</summary>
    public const string CurrentSession = "current_session";

    internal const string Idle = "idle";
    internal const string IdleInTransaction = "idle in transaction";
    internal const string IdleInTransactionAborted = "idle in transaction (aborted)";

    // Whether this role may pg_terminate_backend the backend, mirroring the server's own check:
    // a superuser's backend needs a superuser; otherwise membership in its role or pg_signal_backend.
    internal const string CanSignalSql = """
        (r.oid IS NOT NULL
         AND (NOT r.rolsuper OR me.rolsuper)
         AND (me.rolsuper OR pg_has_role(r.oid, 'USAGE') OR pg_has_role('pg_signal_backend'::name, 'USAGE')))
        """;

    // statement_timestamp(), not now(): inside a transaction now() is the transaction's start.
    // The one-row subquery makes the clock come back even when no backend matches.
    private const string ScanSql = $"""
        SELECT g.now_ms, b.pid, b.application_name, b.state, b.usename, b.client_addr, b.idle_sec, b.state_change, b.is_self, b.can_signal,
               g.used, g.available
        FROM (SELECT (extract(epoch FROM statement_timestamp()) * 1000)::bigint AS now_ms, statement_timestamp() AS ts,
                     (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')::int AS used,
                     current_setting('max_connections')::int - current_setting('superuser_reserved_connections')::int
                       - coalesce(nullif(current_setting('reserved_connections', true), '')::int, 0) AS available
              OFFSET 0) g
        LEFT JOIN LATERAL (
            SELECT a.pid, a.application_name, a.state, a.usename::text AS usename,
                   host(a.client_addr) AS client_addr,
                   extract(epoch FROM g.ts - a.state_change)::float8 AS idle_sec,
                   a.state_change,
                   a.pid = pg_backend_pid() AS is_self,
                   {CanSignalSql} AS can_signal
            FROM pg_stat_activity a
            LEFT JOIN pg_roles r ON r.oid = a.usesysid
            CROSS JOIN (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) me
            WHERE a.datname = current_database()
              AND a.application_name LIKE 's=%'
              AND left(a.application_name, length($1)) = $1
            ORDER BY a.pid
        ) b ON true
        """;

    public static async Task<LeaseScan> ScanAsync(AequorClient client, LeaseScanRequest? request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(client);
        request ??= new LeaseScanRequest();
        var options = client.Options;
        var service = client.ServiceName;
        var rules = Rules.From(options, request);
        var verifier = string.IsNullOrEmpty(options.CoordinationSecret) ? null : new LeaseVerifier(options.CoordinationSecret, options.PreviousCoordinationSecret);

        var rows = new List<Row>();
        long nowMs = 0;
        int? used = null;
        int? available = null;
        var statement = new AequorStatement(ScanSql) { PositionalParameters = [request.All ? "s=" : "s=" + service + ";"] };
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

                rows.Add(new Row(
                    pid,
                    reader.GetValue(2) as string ?? string.Empty,
                    reader.GetValue(3) as string,
                    reader.GetValue(4) as string,
                    reader.GetValue(5) as string,
                    reader.GetValue(6) as double?,
                    reader.GetValue(7) as DateTime?,
                    reader.GetValue(8) is true,
                    reader.GetValue(9) is true));
            }
        }

        var leases = new List<ScannedLease>();
        foreach (var row in rows)
        {
            if (!Lease.TryParse(row.ApplicationName, out var lease))
            {
                continue;
            }

            var verification = verifier?.Verify(lease) ?? LeaseVerification.Invalid;
            var scanned = new ScannedLease
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
                ClientAddress = row.ClientAddress,
                StateChange = row.StateChange,
            };
            leases.Add(scanned with { NotReapableReason = Judge(scanned, service, rules) });
        }

        ApplyLimit(leases, rules.MaxKills);
        return new LeaseScan(nowMs, leases, service) { ConnectionsUsed = used, ConnectionsAvailable = available };
    }

    private static string? Judge(ScannedLease l, string service, Rules rules)
    {
        if (!string.Equals(l.Lease.ServiceName, service, StringComparison.Ordinal))
        {
            return ReapReasons.NotOurs;
        }

        if (!l.IsSignatureValid)
        {
            return ReapReasons.BadSignature;
        }

        if (!l.IsExpired)
        {
            return ReapReasons.NotExpired;
        }

        if (l.IsCurrentSession)
        {
            return CurrentSession;
        }

        if (!l.CanSignal)
        {
            return ReapReasons.NotPermitted;
        }

        if (l.State is null || l.IdleSeconds is null || l.StateChange is null)
        {
            return ReapReasons.StateHidden;
        }

        int threshold;
        switch (l.State)
        {
            case Idle:
                threshold = rules.MinIdleSec;
                break;
            case IdleInTransaction or IdleInTransactionAborted:
                if (!rules.IncludeIdleInTransaction)
                {
                    return ReapReasons.InTransaction;
                }

                threshold = rules.MinIdleInTransactionSec;
                break;
            default:
                return ReapReasons.NotIdle;
        }

        return l.IdleSeconds.Value < threshold ? ReapReasons.TooYoung : null;
    }

    // A pass kills at most MaxKills, oldest expiry first, then longest idle, then pid: the rest wait.
    private static void ApplyLimit(List<ScannedLease> leases, int maxKills)
    {
        var keep = leases.Where(l => l.IsReapable)
            .OrderBy(l => l.Lease.ExpiresAtMs)
            .ThenByDescending(l => l.IdleSeconds)
            .ThenBy(l => l.Pid)
            .Skip(maxKills)
            .Select(l => l.Pid)
            .ToHashSet();
        for (var i = 0; i < leases.Count; i++)
        {
            if (keep.Contains(leases[i].Pid))
            {
                leases[i] = leases[i] with { NotReapableReason = ReapReasons.OverLimit };
            }
        }
    }

    private sealed record Row(
        int Pid,
        string ApplicationName,
        string? State,
        string? UserName,
        string? ClientAddress,
        double? IdleSeconds,
        DateTime? StateChange,
        bool IsSelf,
        bool CanSignal);

    private sealed record Rules(int MaxKills, int MinIdleSec, bool IncludeIdleInTransaction, int MinIdleInTransactionSec)
    {
        public static Rules From(AequorClientOptions options, LeaseScanRequest request)
        {
            var rules = new Rules(
                request.MaxIdleConnectionsToKill ?? options.MaxIdleConnectionsToKill,
                request.MinConnectionIdleTimeSec ?? options.MinConnectionIdleTimeSec,
                request.IncludeIdleInTransaction ?? options.IncludeIdleInTransaction,
                request.MinIdleInTransactionSec ?? options.MinIdleInTransactionSec);
            if (rules.MaxKills < 1 || rules.MinIdleSec < 0 || rules.MinIdleInTransactionSec < 0)
            {
                throw new AequorConfigurationException("A pass needs at least one kill allowed and idle thresholds of 0 seconds or more.");
            }

            return rules;
        }
    }
}
