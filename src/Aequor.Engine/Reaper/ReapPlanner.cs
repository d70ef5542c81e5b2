namespace Aequor.Engine.Reaper;

/// <summary>
/// Decides, from the scanned rows and the database's clock, which backends are ours to kill.
/// Pure: no I/O, so every rule is unit-testable.
/// </summary>
internal static class ReapPlanner
{
    /// <param name="Reasons">Each row's reason, in the order of the rows given; null for a candidate
    /// (one past the cap says <see cref="ReapReasons.OverLimit"/>). What a lease listing shows per lease.</param>
    internal sealed record Plan(
        IReadOnlyList<ReapCandidate> Candidates,
        IReadOnlyList<ReapNotKilled> NotPermitted,
        IReadOnlyDictionary<string, int> Skipped,
        IReadOnlyList<string?> Reasons);

    /// <param name="verifier">Null when no secret is held: no lease verifies (a listing on a session without one).</param>
    /// <param name="nearLimit">The scan measured the database near its connection limit: the cap is
    /// <see cref="ReapSettings.NearLimitMaxKills"/> (never below <see cref="ReapSettings.MaxKills"/>).</param>
    public static Plan Select(IEnumerable<ScannedBackend> rows, long databaseNowMs, ReapSettings settings, LeaseVerifier? verifier, bool nearLimit = false)
    {
        ArgumentNullException.ThrowIfNull(rows);
        ArgumentNullException.ThrowIfNull(settings);
        var skipped = new Dictionary<string, int>(StringComparer.Ordinal);
        var notPermitted = new List<ReapNotKilled>();
        var reasons = new List<string?>();
        var eligible = new List<(int Index, ReapCandidate Candidate)>();

        foreach (var row in rows)
        {
            var reason = Judge(row, databaseNowMs, settings, verifier, out var candidate);
            reasons.Add(reason);
            if (reason is null)
            {
                eligible.Add((reasons.Count - 1, candidate!));
                continue;
            }

            Count(skipped, reason);
            if (reason == ReapReasons.NotPermitted)
            {
                notPermitted.Add(new ReapNotKilled(row.Pid, reason, row.ApplicationName, row.UserName));
            }
        }

        // Oldest expiry first, then the longest idle, then the lowest pid. One comparison rather than a LINQ
        // OrderBy/ThenBy chain: the pass's first run in a process compiles it on the storm's critical path.
        var ordered = eligible;
        ordered.Sort(static (a, b) =>
        {
            var byExpiry = a.Candidate.ExpiresAtMs.CompareTo(b.Candidate.ExpiresAtMs);
            if (byExpiry != 0)
            {
                return byExpiry;
            }

            var byIdle = b.Candidate.IdleSeconds.CompareTo(a.Candidate.IdleSeconds);
            return byIdle != 0 ? byIdle : a.Candidate.Pid.CompareTo(b.Candidate.Pid);
        });
        var cap = nearLimit ? Math.Max(settings.MaxKills, settings.NearLimitMaxKills) : settings.MaxKills;
        if (ordered.Count > cap)
        {
            skipped[ReapReasons.OverLimit] = ordered.Count - cap;
            foreach (var (index, _) in ordered.Skip(cap))
            {
                reasons[index] = ReapReasons.OverLimit;
            }

            ordered.RemoveRange(cap, ordered.Count - cap);
        }

        return new Plan([.. ordered.Select(e => e.Candidate)], notPermitted, skipped, reasons);
    }

    /// <summary>Null when the row is a candidate; else the reason it is left alone.</summary>
    private static string? Judge(ScannedBackend row, long nowMs, ReapSettings settings, LeaseVerifier? verifier, out ReapCandidate? candidate)
    {
        candidate = null;
        if (!Lease.TryParse(row.ApplicationName, out var lease))
        {
            return ReapReasons.NotALease;
        }

        if (!string.Equals(lease.ServiceName, settings.ServiceName, StringComparison.Ordinal))
        {
            return ReapReasons.NotOurs;
        }

        var verification = verifier?.Verify(lease) ?? LeaseVerification.Invalid;
        if (verification == LeaseVerification.Invalid)
        {
            return ReapReasons.BadSignature;
        }

        if (!lease.IsExpiredAt(nowMs))
        {
            return ReapReasons.NotExpired;
        }

        if (row.IsSelf)
        {
            return ReapReasons.CurrentSession;
        }

        // An expired lease of ours we may not kill is worth reporting by pid, whatever its state.
        if (!row.CanSignal)
        {
            return ReapReasons.NotPermitted;
        }

        if (row.State is null || row.IdleSeconds is null || row.StateChange is null)
        {
            return ReapReasons.StateHidden;
        }

        int threshold;
        switch (row.State)
        {
            case ReapSettings.Idle:
                threshold = settings.MinIdleSec;
                break;
            case ReapSettings.IdleInTransaction or ReapSettings.IdleInTransactionAborted:
                if (!settings.IncludeIdleInTransaction)
                {
                    return ReapReasons.InTransaction;
                }

                threshold = settings.MinIdleInTransactionSec;
                break;
            default:
                return ReapReasons.NotIdle;
        }

        if (row.IdleSeconds.Value < threshold)
        {
            return ReapReasons.TooYoung;
        }

        candidate = new ReapCandidate(
            row.Pid,
            lease.ServiceName,
            lease.InstanceId,
            lease.ExpiresAtMs,
            row.IdleSeconds.Value,
            row.State,
            row.ApplicationName,
            row.UserName,
            verification == LeaseVerification.Previous)
        {
            StateChange = row.StateChange.Value,
        };
        return null;
    }

    internal static void Count(Dictionary<string, int> counts, string reason) =>
        counts[reason] = counts.TryGetValue(reason, out var n) ? n + 1 : 1;
}
