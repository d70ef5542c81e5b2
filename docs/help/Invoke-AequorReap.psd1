@{
    Synopsis    = 'Runs one reaper pass now: terminates zombie connections of the session''s service.'
    Description = @'
Invoke-AequorReap runs one reaper pass on the session at once, ignoring the reaper's probability and cooldown but never its lock: it takes the service's advisory lock (the same key as pg-aequor, so Node and PowerShell clients of a service never reap together), reads pg_stat_activity and terminates the backends whose lease is of the session's service, validly signed with the current or previous secret, expired on the database's clock, and idle for at least MinConnectionIdleTimeSec (or idle in a transaction, when allowed) — oldest expiry first, at most MaxIdleConnectionsToKill (-MaxKill when given; 100 when the pass finds the database near its connection limit). Each backend is checked again at the instant of the kill: one that renewed its lease or ran a statement since the scan is left alive. Get-AequorLease marks exactly these leases IsReapable.

Every termination goes through ShouldProcess with ConfirmImpact Medium, so runbooks never prompt by default: -WhatIf prints one line per candidate, e.g. "Terminate backend 1234 (service orders, instance Zx9_-k2Q, lease expired 4 min ago, idle 260 s)", and kills nothing (the engine's dry run); -Confirm asks for each backend. Without a prompt the pass is the engine's own, the one the client runs after a connect (two round trips); with -Confirm, or on a session connected with -NoReaper, the cmdlet scans, asks and kills the approved backends under the same lock and rules, with the same kill, which waits for them to exit.

The output is one AequorReapResult: LockAcquired, Scanned, Candidates and Killed (as lease objects), NotKilled (with reasons: dry_run under -WhatIf, declined, renewed, woke_up, gone, and not_permitted for an expired lease of the service this role may not signal), Skipped (counts by reason: not_expired, too_young, bad_signature, in_transaction, over_limit ...) and DurationMs. When another client holds the lock the pass writes a warning and LockAcquired is $false; that is not an error.

Backends of the session's own role need no grant. For other roles' backends the session's role needs pg_signal_backend and pg_read_all_stats (without it their state is hidden and they are skipped as state_hidden); superusers' backends are never touched by a non-superuser.
'@
    Parameters  = @{
        Session                 = 'The session to reap with (its service, secrets and thresholds), or its name, also from the pipeline. Default: the runspace''s default session. A session without a coordination secret is an AequorNotLeased error. A $null from the pipeline (a variable that holds no session) is that input''s AequorInvalidParameter error, never the default session; -Session $null is the default session.'
        MaxKill                 = 'The most backends this pass terminates (overrides MaxIdleConnectionsToKill).'
        MinIdleSec              = 'The least idle time, in seconds, of a backend this pass terminates (overrides MinConnectionIdleTimeSec).'
        IncludeIdleInTransaction = 'Also terminate expired leases idle in a transaction for this pass; -IncludeIdleInTransaction:$false turns it off when the session has it on.'
        MinIdleInTransactionSec = 'With -IncludeIdleInTransaction: the least time idle in the transaction, in seconds (overrides MinIdleInTransactionSec).'
    }
    Examples    = @(
        @{
            Title   = 'See what a pass would do, then do it'
            Code    = @'
Connect-Aequor $cs -ServiceName orders -CoordinationSecret $secret
Get-AequorLease | Where-Object IsReapable | Format-Table Pid, InstanceId, ExpiresAt, IdleSeconds
Invoke-AequorReap -WhatIf
Invoke-AequorReap
'@
            Remarks = '-WhatIf lists the backends and kills nothing; the same backends are killed by the pass that follows, unless they woke up meanwhile.'
        }
        @{
            Title   = 'An emergency pass during a connection storm'
            Code    = @'
$r = Invoke-AequorReap -MinIdleSec 30 -MaxKill 50 -IncludeIdleInTransaction -MinIdleInTransactionSec 60
"Killed $($r.Killed.Count) of $($r.Scanned) scanned in $($r.DurationMs) ms"
$r.Skipped
'@
            Remarks = 'The overrides apply to this pass only.'
        }
        @{
            Title   = 'Ask before each termination'
            Code    = 'Invoke-AequorReap -Confirm'
            Remarks = 'Declined backends are listed in NotKilled with the reason declined.'
        }
    )
    Notes       = 'Errors: AequorNoSession, AequorSessionClosed, AequorSessionNotFound (a -Session name that is not open) and AequorNotLeased (for that session only: the other piped sessions are still reaped), AequorReapFailed (e.g. a transaction is open on the session), AequorSessionBusy (terminating: run inside a pipeline that streams the rows of a query on the same session). A busy lock is a warning, not an error.'
    Links       = @('about_Aequor', 'Get-AequorLease', 'Connect-Aequor')
}
