@{
    Synopsis    = 'Lists the Aequor sessions of the current runspace.'
    Description = @'
Get-AequorSession writes this runspace's sessions in connect order. Each AequorSession shows its name, server, port, database, user, service name, instance id, backend pid, lease expiry, state, whether it is the default and in a transaction, and its counters. Values are read live from the connection. Other runspaces' sessions are never listed.
'@
    Parameters  = @{
        Name    = 'The names of the sessions to list; wildcards are allowed. A name without wildcards that matches nothing is an AequorSessionNotFound error; a pattern that is not valid (db[1) is an AequorInvalidParameter error for that name, and the other names are still listed. A session matched by several names is written once, so piping the result on serves each session once.'
        Default = 'Only the default session (the one cmdlets use without -Session).'
    }
    Examples    = @(
        @{
            Title   = 'List the sessions'
            Code    = 'Get-AequorSession | Format-Table Name, Server, Database, BackendPid, LeaseExpiresAt, State, IsDefault'
            Remarks = 'One row per session of this runspace.'
        }
        @{
            Title   = 'Use a session by name'
            Code    = @'
$report = Get-AequorSession -Name report
Invoke-AequorQuery 'SELECT count(*) FROM orders' -Session $report -As Scalar
'@
            Remarks = 'Session names are case-insensitive and complete with Tab.'
        }
    )
    Notes       = 'Errors (non-terminating, one per name): AequorSessionNotFound, AequorInvalidParameter (an invalid wildcard pattern).'
    Links       = @('about_Aequor', 'Connect-Aequor', 'Disconnect-Aequor')
}
