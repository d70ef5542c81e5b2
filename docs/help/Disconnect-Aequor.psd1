@{
    Synopsis    = 'Closes Aequor sessions: the default one, by name, from the pipeline, or all of the runspace''s.'
    Description = @'
Disconnect-Aequor closes sessions of the current runspace; their backends leave pg_stat_activity at once. Without parameters it closes the default session; afterwards the runspace has no default session until the next Connect-Aequor (cmdlets then ask for -Session rather than silently switching server).

A session closed with a transaction still open has it rolled back by the server (nothing of it is committed), and Disconnect-Aequor says so with a warning. A script that still holds the session hears it too: its next command on the session fails with AequorSessionClosed saying the transaction was rolled back, and Complete-AequorTransaction then stops the script. A statement running on it in another runspace (a session handed over with $using:) is cancelled: it fails with AequorSessionClosed, or AequorQueryOutcomeUnknown if the close came before the server confirmed the cancel, and the message says the session was closed, also when its rows were already streaming.

Removing the module (Remove-Module Aequor) or closing the runspace closes its sessions too.
'@
    Parameters  = @{
        Session = 'The sessions to close, or their exact names (piped strings too), e.g. from Get-AequorSession through the pipeline.'
        Name    = 'The names of the sessions to close; wildcards are allowed (session names never hold * ? [ ] or `). A pattern that is not valid (db[1) is an AequorInvalidParameter error for that name and closes nothing. Without -Name, -Session or -All: the default session.'
        All     = 'Close every session of the runspace.'
    }
    Examples    = @(
        @{
            Title   = 'Close the default session at the end of a runbook'
            Code    = @'
Connect-Aequor $cs -ServiceName nightly
try { Invoke-AequorQuery -File ./nightly.sql } finally { Disconnect-Aequor }
'@
            Remarks = 'Closing in finally releases the connection even when the script fails.'
        }
        @{
            Title   = 'Close sessions by name or from the pipeline'
            Code    = @'
Disconnect-Aequor -Name 'report*'
Get-AequorSession | Where-Object State -eq Broken | Disconnect-Aequor
Disconnect-Aequor -All
'@
            Remarks = 'Wildcards match names; sessions can be piped in (State Broken: the connection broke, for example inside a transaction that is now lost); -All closes the rest.'
        }
    )
    Notes       = 'Errors: AequorSessionNotFound (non-terminating, one per name: no session of that name given to -Name or -Session; the other sessions named are still closed), AequorNoSession (no default session to close), AequorInvalidParameter (an invalid wildcard pattern), AequorSessionBusy (non-terminating: the session streams the rows of a query in this very pipeline; disconnect it after the pipeline).'
    Links       = @('about_Aequor', 'Connect-Aequor', 'Get-AequorSession')
}
