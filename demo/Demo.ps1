# The frozen-worker scenario, run by `build.ps1 Demo` against its throwaway PostgreSQL
# (max_connections 20, 3 reserved for superusers; connection strings in the environment).
#
#   1. A worker process opens leased sessions (lease 2 s) until every slot open to the app role is taken,
#      then freezes (SIGSTOP): its sockets stay open, its leases are never renewed.
#   2. Anyone else is refused: 53300 too many clients.
#   3. Get-AequorLease shows the frozen sessions expired and reapable; Invoke-AequorReap -WhatIf lists
#      them; Invoke-AequorReap terminates them.
#   4. A burst of new sessions all get in.
param([Parameter(Mandatory)] [string] $ModulePath)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version 3.0
Import-Module $ModulePath
if ([Console]::IsOutputRedirected) { $PSStyle.OutputRendering = 'PlainText' }

$secretText = 'demo-coordination-secret-0123456789'
$secret = ConvertTo-SecureString $secretText -AsPlainText -Force
$service = 'orders'
$app = $env:AEQUOR_TEST_APP_CONNECTION
$clock = [Diagnostics.Stopwatch]::StartNew()

function Say([string] $Text) { Write-Host ('[{0,5:0.0}s] {1}' -f $clock.Elapsed.TotalSeconds, $Text) }

function Show-Connections([string] $When) {
    $c = Invoke-AequorQuery -Session $admin @'
SELECT count(*) FILTER (WHERE backend_type = 'client backend')::int AS used,
       count(*) FILTER (WHERE backend_type = 'client backend' AND application_name LIKE 's=orders;%')::int AS leased,
       current_setting('max_connections')::int - current_setting('superuser_reserved_connections')::int AS app_slots
FROM pg_stat_activity
'@
    Say ("{0}: {1} client connections ({2} leased by service '{3}'); {4} slots for non-superusers" -f $When, $c.used, $c.leased, $service, $c.app_slots)
}

$worker = $null
try {
    # The superuser observer uses a reserved slot; the reaping session is an ordinary app-role client.
    $admin = Connect-Aequor $env:AEQUOR_TEST_CONNECTION -LeaseMode Optional -Name admin
    $reaper = Connect-Aequor $app -CoordinationSecret $secret -ServiceName $service -MinConnectionIdleTimeSec 1 -MaxIdleConnectionsToKill 50 -ReaperRunProbability 0 -Name reaper
    $free = Invoke-AequorQuery -Session $admin -As Scalar @'
SELECT (current_setting('max_connections')::int - current_setting('superuser_reserved_connections')::int
        - coalesce(nullif(current_setting('reserved_connections', true), '')::int, 0)
        -- A superuser takes an ordinary slot while one is free: count every client backend.
        - (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'))::int
'@
    Show-Connections 'Before'

    Say "A worker process opens $free leased sessions (service '$service', lease 2 s): every slot left."
    $psi = [Diagnostics.ProcessStartInfo]::new('dotnet')
    foreach ($a in @((Join-Path $PSHOME 'pwsh.dll'), '-NoProfile', '-NonInteractive', '-Command', '-')) { $psi.ArgumentList.Add($a) }
    $psi.RedirectStandardInput = $true
    $psi.RedirectStandardOutput = $true
    $psi.UseShellExecute = $false
    # The secret goes by environment, never on a command line that ps would show.
    $psi.Environment['AEQUOR_COORDINATION_SECRET'] = $secretText
    $psi.Environment['AEQUOR_SERVICE_NAME'] = $service
    $worker = [Diagnostics.Process]::Start($psi)
    $worker.StandardInput.WriteLine(@"
`$ErrorActionPreference = 'Stop'
Import-Module '$ModulePath'
`$pids = foreach (`$i in 1..$free) { (Connect-Aequor '$app' -LeaseTtlMs 2000 -NoReaper -Name "w`$i").BackendPid }
"READY `$(`$pids -join ',')"
[Console]::Out.Flush()
Start-Sleep -Seconds 600
"@)
    $worker.StandardInput.Close()
    $frozenPids = $null
    $deadline = [DateTime]::UtcNow.AddSeconds(60)
    while (-not $frozenPids) {
        $read = $worker.StandardOutput.ReadLineAsync()
        if (-not $read.Wait([Math]::Max(0, ($deadline - [DateTime]::UtcNow).TotalMilliseconds)) -or $null -eq $read.Result) {
            throw 'The worker did not report its sessions.'
        }
        if ($read.Result -match 'READY ([\d,]+)') { $frozenPids = [int[]]($Matches[1] -split ',') }
    }
    & kill -STOP $worker.Id
    Say "Worker $($worker.Id) holds backends $($frozenPids -join ', ') and is now frozen (SIGSTOP)."
    Show-Connections 'Frozen'

    Say 'A plain client tries to connect:'
    try {
        $null = Connect-Aequor $app -LeaseMode Optional -Name plain -Retries 0 -MaxConnectRetryTimeMs 0
        Say '  ...it got in (unexpected: the slots were not all taken).'
    } catch {
        Say "  refused (SQLSTATE $($_.Exception.SqlState)): $($_.Exception.Message)"
    }

    Say 'Waiting 3 s: the 2 s leases run out and the sockets stay idle...'
    Start-Sleep -Seconds 3

    Say 'Get-AequorLease through the reaping session (database clock):'
    $leases = @(Get-AequorLease -Session $reaper)
    $leases | Sort-Object Pid | Format-Table Pid, InstanceId, ExpiresAt, IsExpired, IsSignatureValid, State, IdleSeconds, IsReapable, IsCurrentSession -AutoSize |
        Out-String -Width 140 | ForEach-Object TrimEnd | Write-Host
    $reapable = @($leases | Where-Object IsReapable)
    Say "$($reapable.Count) of $($leases.Count) leases are reapable: all the frozen worker's; never the reaping session itself."

    Say 'Invoke-AequorReap -WhatIf (kills nothing):'
    $null = Invoke-AequorReap -Session $reaper -WhatIf

    Say 'Invoke-AequorReap:'
    $result = Invoke-AequorReap -Session $reaper
    Say ("  lock acquired: {0}; scanned {1}; killed {2} in {3} ms" -f $result.LockAcquired, $result.Scanned, $result.Killed.Count, $result.DurationMs)
    $stillThere = @(Invoke-AequorQuery -Session $admin 'SELECT pid FROM pg_stat_activity WHERE pid = ANY($1)' -Parameters (, [int[]]$frozenPids))
    Say "  frozen backends still in pg_stat_activity: $($stillThere.Count)"
    Show-Connections 'After the reap'

    Say "A burst of $($result.Killed.Count) new sessions:"
    $burst = foreach ($i in 1..$result.Killed.Count) {
        Connect-Aequor $app -CoordinationSecret $secret -ServiceName $service -NoReaper -Name "burst$i"
    }
    $answers = @($burst | ForEach-Object { Invoke-AequorQuery 'SELECT 1' -Session $_ -As Scalar })
    Say "  $(@($burst | Where-Object State -eq 'Connected').Count) of $($result.Killed.Count) connected, $($answers.Count) answered SELECT 1."
    Show-Connections 'After the burst'
    if ($result.Killed.Count -ne $frozenPids.Count -or $stillThere.Count -ne 0 -or $answers.Count -ne $result.Killed.Count) {
        throw 'The demo did not end as expected.'
    }
    Say 'Done.'
} finally {
    if ($worker -and -not $worker.HasExited) {
        & kill -CONT $worker.Id
        $worker.Kill($true)
        $null = $worker.WaitForExit(10000)
    }
    Disconnect-Aequor -All -Confirm:$false
}
