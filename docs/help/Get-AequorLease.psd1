@{
    Synopsis    = 'Shows Aequor leases: live from pg_stat_activity through a session, or offline from application_name strings.'
    Description = @'
Every Aequor (and pg-aequor) connection carries a signed lease in its application_name:
s=<service>;i=<instance>;e=<expiry ms>;g=<signature>.

With a session (the default one, or -Session), Get-AequorLease reads pg_stat_activity and returns
the leases of the session's service (-All: of every service), judged on the database's clock:
expired or not, signature valid or not, idle time, state, and IsReapable - whether a reaper pass
would terminate that backend now. Use it before Invoke-AequorReap to see what a pass would do.
A session connected without a coordination secret (-LeaseMode Optional) has no lease of its own and
can verify none: it is a non-terminating AequorNotLeased error for that session (the sessions piped
after it are still read), never an empty or unverified list.

With -ApplicationName it needs no database: it parses the strings and verifies them with the
coordination secret - rows you already read, log lines, or a check that two fleets share a secret.
A string that is not a lease, or whose signature does not verify, gives an object with
IsSignatureValid $false, never an error; a $null (a row whose application_name is null) reads as an
empty string, one such object, never as a request for the live scan. The table of offline results
shows the application_name as read and marks strings that are not leases '(not a lease)'. Without -CoordinationSecret the secret is read from the
AEQUOR_COORDINATION_SECRET environment variable; without either, leases are parsed but never shown
as valid. Offline, IsExpired is judged on this machine's clock.
'@
    Parameters  = @{
        Session                    = 'The session whose database is read, or its name (-Session reporting; an unknown name is a non-terminating AequorSessionNotFound error naming the open ones). Defaults to the runspace''s default session (the last one Connect-Aequor opened). Not from the pipeline, where strings are application_names: pipe a session object instead (-InputObject).'
        InputObject                = 'A session from the pipeline ($session | Get-AequorLease). Strings in the pipeline bind to -ApplicationName, and a piped $null reads as an empty application_name (an offline row), never as the default session.'
        All                        = 'Returns every lease of the session''s database (pg_stat_activity rows of other databases are not listed), of any service, instead of only the session''s service.'
        ApplicationName            = 'One or more application_name strings to read offline. Accepts pipeline input, also by property name application_name (rows from pg_stat_activity), and allows empty strings and $null (read as an empty string).'
        CoordinationSecret         = 'Offline: the coordination secret the leases were signed with, at least 16 bytes in UTF-8. Defaults to the AEQUOR_COORDINATION_SECRET environment variable. The secret never appears in output or errors.'
        PreviousCoordinationSecret = 'Offline: the secret before a rotation; leases signed with it also verify. Defaults to the AEQUOR_PREVIOUS_COORDINATION_SECRET environment variable.'
    }
    Examples    = @(
        @{
            Title   = 'See which backends of the service a reaper pass would terminate'
            Code    = @'
Connect-Aequor -ConnectionString $env:ORDERS_DB -ServiceName orders | Out-Null
Get-AequorLease | Where-Object IsReapable | Format-Table
'@
            Remarks = 'Lists the service''s leases whose signature verifies, whose lease has expired on the database clock and that have idled past the threshold.'
        }
        @{
            Title   = 'Verify one lease offline with the secret from the environment'
            Code    = @'
$env:AEQUOR_COORDINATION_SECRET = Get-AutomationVariable -Name 'AequorSecret'
Get-AequorLease -ApplicationName 's=orders;i=Zx9_-k2Q;e=1767225600000;g=0J5nyy2X1kQ'
'@
            Remarks = 'Parses the lease and reports its service, instance, expiry and whether the signature verifies with the secret.'
        }
        @{
            Title   = 'Check the leases a psql query returned'
            Code    = @'
$secret = Read-Host -AsSecureString -Prompt 'Coordination secret'
psql -At -c "select application_name from pg_stat_activity" | Get-AequorLease -CoordinationSecret $secret |
    Where-Object IsSignatureValid
'@
            Remarks = 'Pipes application_name values into Get-AequorLease and keeps only the leases signed with the secret.'
        }
        @{
            Title   = 'Read rows by property name'
            Code    = @'
[pscustomobject]@{ pid = 4242; application_name = 's=orders;i=Zx9_-k2Q;e=1767225600000;g=0J5nyy2X1kQ' } |
    Get-AequorLease | Format-Table ServiceName, InstanceId, ExpiresAt, IsExpired
'@
            Remarks = 'Objects with an application_name property bind to -ApplicationName through its alias.'
        }
    )
    Notes       = 'Errors (non-terminating, for that session only): AequorNotLeased (a session without a coordination secret), AequorSessionClosed, AequorSessionNotFound, AequorLeaseScanFailed. A lease proves only that its writer knew the coordination secret. Everyone who can read pg_stat_activity can read a lease; see about_Aequor.'
    Links       = @('about_Aequor')
}
