@{
    Synopsis    = 'Reads and verifies Aequor leases from application_name strings.'
    Description = @'
Every Aequor (and pg-aequor) connection carries a signed lease in its application_name:
s=<service>;i=<instance>;e=<expiry ms>;g=<signature>. Get-AequorLease parses such strings and, with the
coordination secret, verifies their signature, with no database: use it on rows you already read
from pg_stat_activity, on log lines, or to check that two fleets share a secret.

A string that is not a lease, or whose signature does not verify, gives an object with
IsSignatureValid $false, never an error. Without -CoordinationSecret the secret is read from the
AEQUOR_COORDINATION_SECRET environment variable; without either, leases are parsed but never shown
as valid. IsExpired is judged on this machine's clock.
'@
    Parameters  = @{
        ApplicationName    = 'One or more application_name strings to read. Accepts pipeline input, also by property name application_name (rows from pg_stat_activity), and allows empty strings.'
        CoordinationSecret = 'The coordination secret the leases were signed with, at least 16 bytes in UTF-8. Defaults to the AEQUOR_COORDINATION_SECRET environment variable. The secret never appears in output or errors.'
    }
    Examples    = @(
        @{
            Title   = 'Verify one lease with the secret from the environment'
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
    Notes       = 'A lease proves only that its writer knew the coordination secret. Everyone who can read pg_stat_activity can read a lease; see about_Aequor.'
    Links       = @('about_Aequor')
}
