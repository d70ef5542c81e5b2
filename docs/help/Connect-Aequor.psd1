@{
    Synopsis    = 'Opens a leased PostgreSQL session now and makes it the default session of this runspace.'
    Description = @'
Connect-Aequor connects at once (errors surface here, after the retry policy) and returns an AequorSession, which becomes the runspace's default session: Invoke-AequorQuery, Get-AequorLease, Invoke-AequorReap and the transaction cmdlets use it when -Session is omitted.

The connection carries a signed lease in its application_name, in the wire format of the npm package pg-aequor 0.1.4: the service name, a random instance id, an expiry and an HMAC made with the coordination secret. Clients of the same service that share the secret (Node or PowerShell) recognise each other's leases, and a reaper pass terminates only expired, idle, validly signed leases of its own service.

Sessions live per runspace: parallel runspaces, ForEach-Object -Parallel and Pester runs never see each other's. Closing the runspace, Disconnect-Aequor or Remove-Module Aequor closes them. A second Connect-Aequor with the same -Name closes and replaces the first.

The engine options keep pg-aequor's names in PascalCase. The password and the secrets never appear in the session object, in errors or in verbose output.
'@
    Parameters  = @{
        ConnectionString             = 'An Npgsql keyword connection string (Host=...;Username=...) or a libpq URI (postgres://user:password@host:5432/db?sslmode=require, or postgresql://). Pooling is always off: one session owns one physical connection. -Credential, when given, replaces the user and password in it. An Application Name in it (Application Name=myapp, or ?application_name=) is replaced by the signed lease when the session is leased, with a warning: identify the service with -ServiceName instead; a plain connection (-LeaseMode Optional without a secret) keeps it.'
        Server                       = 'The server host name or address (alias -Host). Several hosts may be given comma-separated, as Npgsql accepts them.'
        Port                         = 'The server port. Default: 5432.'
        Database                     = 'The database. Default: the one named like the user, as PostgreSQL does.'
        Credential                   = 'The database user and password. With -ConnectionString it overrides the user and password the string carries.'
        CoordinationSecret           = 'The secret leases are signed with: at least 16 bytes (UTF-8), the same for every client of the service, distinct from the database password. Default: the AEQUOR_COORDINATION_SECRET environment variable.'
        PreviousCoordinationSecret   = 'The secret before a rotation: leases signed with it still count as valid, so workers holding the old secret keep being recognised (and reaped) until they are gone. Default: the AEQUOR_PREVIOUS_COORDINATION_SECRET environment variable.'
        ServiceName                  = 'The service name written into leases; a reaper pass only ever terminates leases of its own service. Default: AEQUOR_SERVICE_NAME, then AWS_LAMBDA_FUNCTION_NAME, then sls_pg. Names with characters outside [A-Za-z0-9:_-] or too long are normalised as pg-aequor does.'
        LeaseMode                    = 'Required (default): a coordination secret is mandatory. Optional: without a secret the connection is plain, with no lease, reaper or heartbeat.'
        Name                         = 'The session name, unique in the runspace (case-insensitive). It may not hold the wildcard characters * ? [ ] or ` (Get-AequorSession and Disconnect-Aequor read -Name as a pattern), nor a NUL character: such a name is an AequorInvalidParameter error. Default: default.'
        LeaseTtlMs                   = 'How long a lease lasts, in milliseconds. Default: 90000.'
        HeartbeatSoftRemainingMs     = 'When less than this is left on the lease, the next statement renews it on the way. Default: 30000, or a third of -LeaseTtlMs when that is shorter than 90 s.'
        HeartbeatHardWaitRemainingMs = 'When less than this is left, a statement waits for the renewal before it runs. Default: 5000, or an eighteenth of -LeaseTtlMs when that is shorter than 90 s.'
        HeartbeatTimeoutMs           = 'How long a renewal may take. Default: 2000.'
        HeartbeatErrorMode           = 'What a failed renewal does: Reconnect (default: drop the connection; the next statement reconnects with a fresh lease), Swallow (go on with the old lease) or Throw (the statement is not sent and fails with AequorHeartbeatFailed; run it again to get a fresh connection). A renewal that finds the connection dead is not a failed renewal: in every mode the statement, not yet sent, goes to a fresh connection.'
        NoReaper                     = 'Never run a reaper pass after connecting (Invoke-AequorReap still works).'
        ReaperRunProbability         = 'The chance, between 0 and 1, that a connect outside the cooldown runs a reaper pass. Default: 0.1.'
        ReaperCooldownMs             = 'The least time between two reaper passes of this session. Default: 30000.'
        MinConnectionIdleTimeSec     = 'A reaper pass leaves alone an expired lease idle for less than this many seconds. Default: 180.'
        MaxIdleConnectionsToKill     = 'The most backends one reaper pass terminates, oldest expiry first. Default: 10 (100 in a pass that finds the database near its connection limit).'
        IncludeIdleInTransaction     = 'Also reap expired leases that sit idle in a transaction (a frozen worker holding row locks). Off by default, as in pg-aequor.'
        MinIdleInTransactionSec      = 'With -IncludeIdleInTransaction: how long such a backend must have been idle. Default: 300.'
        Retries                      = 'How many times a failed connect or a safely retryable statement is tried again. Default: 3.'
        MinBackoff                   = 'The smallest wait between retries, in milliseconds (decorrelated jitter). Default: 100.'
        MaxBackoff                   = 'The largest wait between retries, in milliseconds. Default: 2000.'
        MaxConnectRetryTimeMs        = 'The total time a connect may spend retrying. Default: 15000.'
        MaxQueryRetryTimeMs          = 'The total time a statement may spend retrying. Default: 15000.'
        RetrySerializationFailures   = 'Also retry serialization failures and deadlocks (40001, 40P01); only when the statement can safely run again.'
        CommandTimeout               = 'The default statement timeout in seconds for this session; 0 waits forever. At most 4294967 (about 49 days, the longest Npgsql can arm; the connection string''s Command Timeout too): a longer one is an AequorInvalidParameter error. Default: the connection string''s (Npgsql: 30).'
    }
    Examples    = @(
        @{
            Title   = 'Connect with a URI and a secret from the environment'
            Code    = @'
$env:AEQUOR_COORDINATION_SECRET = Get-Secret -Name AequorSecret -AsPlainText
Connect-Aequor 'postgres://app@db.internal:5432/orders?sslmode=require' -Credential (Get-Credential app) -ServiceName orders-runbook
Invoke-AequorQuery 'SELECT count(*) FROM orders' -As Scalar
'@
            Remarks = 'The session becomes the default; the credential overrides the user in the URI and supplies the password.'
        }
        @{
            Title   = 'Two named sessions with parameters and a short lease'
            Code    = @'
$secret = Read-Host -AsSecureString 'Coordination secret'
$primary = Connect-Aequor -Server db1 -Database orders -Credential $cred -CoordinationSecret $secret -Name primary
$report = Connect-Aequor -Server db2 -Database orders -Credential $cred -CoordinationSecret $secret -Name report -LeaseTtlMs 30000 -NoReaper
Invoke-AequorQuery 'SELECT now()' -Session $primary
Get-AequorSession
'@
            Remarks = 'The last session connected (report) is the default; pass -Session to use another.'
        }
        @{
            Title   = 'A plain connection without a lease'
            Code    = 'Connect-Aequor $env:PG_CONNECTION -LeaseMode Optional'
            Remarks = 'Without a secret and with -LeaseMode Optional the session has no lease: no reaper, no heartbeat.'
        }
    )
    Notes       = 'Errors: AequorSecretMissing, AequorSecretTooShort, AequorInvalidParameter (an option that cannot work, a malformed connection string), AequorConnectFailed (with the SQLSTATE in $_.Exception.SqlState, e.g. 28P01 or 53300).'
    Links       = @('about_Aequor', 'Disconnect-Aequor', 'Get-AequorSession', 'Invoke-AequorQuery')
}
