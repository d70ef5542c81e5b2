namespace Aequor.Engine.Reaper;

/// <summary>Why a scanned backend was not selected, or a selected one not killed. Stable strings for scripts.</summary>
public static class ReapReasons
{
    /// <summary>Has our service prefix but is not a well-formed lease.</summary>
    public const string NotALease = "not_a_lease";

    /// <summary>A lease of another service.</summary>
    public const string NotOurs = "not_ours";

    /// <summary>Signed with neither the current nor the previous secret (or tampered with).</summary>
    public const string BadSignature = "bad_signature";

    public const string NotExpired = "not_expired";

    /// <summary>Idle (or idle in transaction) for less than its threshold.</summary>
    public const string TooYoung = "too_young";

    /// <summary>Running a statement (active, fastpath…).</summary>
    public const string NotIdle = "not_idle";

    /// <summary>Idle in a transaction while <c>IncludeIdleInTransaction</c> is off.</summary>
    public const string InTransaction = "in_transaction";

    /// <summary>The scanning session itself, listed by Get-AequorLease: a pass never kills its own backend.</summary>
    public const string CurrentSession = "current_session";

    /// <summary>A backend this role may not signal: a superuser's, or another role's without pg_signal_backend.</summary>
    public const string NotPermitted = "not_permitted";

    /// <summary>Its state is hidden from this role (grant pg_read_all_stats to judge it).</summary>
    public const string StateHidden = "state_hidden";

    /// <summary>A valid candidate left for a later pass by <c>MaxIdleConnectionsToKill</c>.</summary>
    public const string OverLimit = "over_limit";

    /// <summary>Kill-time re-check: its application_name changed (the lease was renewed).</summary>
    public const string Renewed = "renewed";

    /// <summary>Kill-time re-check: it ran a statement since the scan.</summary>
    public const string WokeUp = "woke_up";

    /// <summary>Kill-time re-check: it had already gone.</summary>
    public const string Gone = "gone";

    /// <summary><c>pg_terminate_backend</c> returned false.</summary>
    public const string TerminateFailed = "terminate_failed";

    /// <summary>A dry run: selected, deliberately not killed.</summary>
    public const string DryRun = "dry_run";
}
