<#
.SYNOPSIS
    The zombie storm's burst as PowerShell users meet it: 30 runspaces of one pwsh process, each
    Connect-Aequor + Invoke-AequorQuery, started at once. Driven by `Aequor.Bench storm --pwsh-dll …
    --module …` (StormBench.cs), which owns the cluster and the frozen leases; not run on its own.
.DESCRIPTION
    Protocol on stdout/stdin: prints READY once every runspace has imported the module and waits on the
    start signal; reads one line (GO) from stdin; then each runspace connects and runs `select 1`, keeps its
    session until the whole burst is done, and the script prints one line per connect that ran a reaper pass
    (locked or not; the engine runs it right after the connect, before the statement), then one per runspace:
        PASS|<ms after GO that connect returned>|<passes it ran>
        RESULT|served|<ms after GO>|<53300 retries>
        RESULT|failed|<ms after GO>|<53300 retries>|<error id>|<message>
    Without a frozen holder (the bench's no-storm control) the same burst measures a fresh pwsh's first
    connects alone.
    The coordination secret comes from AEQUOR_COORDINATION_SECRET. Bounded: 40 s for the burst, 30 s to
    read READY's GO; every runspace is stopped and the pool closed whatever happened.
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory)] [string] $ModulePath,
    [Parameter(Mandatory)] [string] $ConnectionString,
    [Parameter(Mandatory)] [string] $ServiceName,
    [int] $Burst = 30,
    [int] $MinConnectionIdleTimeSec = 1
)
$ErrorActionPreference = 'Stop'

$iss = [System.Management.Automation.Runspaces.InitialSessionState]::CreateDefault2()
$iss.ImportPSModule($ModulePath)
# Every runspace opened (and the module imported in each) before the burst: a runbook worker's import is not
# part of what the storm measures, its first connect is.
$pool = [runspacefactory]::CreateRunspacePool($Burst, $Burst, $iss, $Host)
$pool.Open()

$go = [System.Threading.ManualResetEventSlim]::new($false)
$release = [System.Threading.ManualResetEventSlim]::new($false)
$clock = [System.Diagnostics.Stopwatch]::new()
$results = [System.Collections.Concurrent.ConcurrentQueue[object]]::new()
$passes = [System.Collections.Concurrent.ConcurrentQueue[object]]::new()

$worker = {
    param($Go, $Release, $Clock, $Results, $Passes, $ConnectionString, $ServiceName, $MinIdle)
    $null = $Go.Wait(60000)
    $warnings = 0
    $session = $null
    try {
        $session = Connect-Aequor -ConnectionString $ConnectionString -ServiceName $ServiceName -Name burst `
            -MinConnectionIdleTimeSec $MinIdle -WarningVariable +connectWarnings -WarningAction SilentlyContinue -ErrorAction Stop
        $connectedMs = $Clock.ElapsedMilliseconds
        $null = Invoke-AequorQuery -Session $session -As Scalar 'select 1' -ErrorAction Stop
        $ms = $Clock.ElapsedMilliseconds
        $warnings = @($connectWarnings | Where-Object { "$_" -match '53300|too many clients' }).Count
        $line = "RESULT|served|$ms|$warnings"
    } catch {
        $ms = $Clock.ElapsedMilliseconds
        $warnings = @($connectWarnings | Where-Object { "$_" -match '53300|too many clients' }).Count
        $message = ("$($_.Exception.Message)" -replace '[|\r\n]+', ' ')
        $line = "RESULT|failed|$ms|$warnings|$($_.FullyQualifiedErrorId)|$message"
    }
    # From the session's counter, after the clock: -Verbose piped through ForEach-Object would also give each pass's
    # kills and duration, but the no-storm burst took ~250 ms more with it (medians of 6 runs each, load 9-13).
    # Queued before the RESULT: the passes are printed once every RESULT is in.
    if ($session -and $session.ReapPasses -gt 0) {
        $Passes.Enqueue("PASS|$connectedMs|$($session.ReapPasses)")
    }
    $Results.Enqueue($line)
    # A worker keeps its slot until the burst is over.
    $null = $Release.Wait(60000)
    Disconnect-Aequor -All -ErrorAction SilentlyContinue
}

$instances = foreach ($i in 1..$Burst) {
    $ps = [powershell]::Create()
    $ps.RunspacePool = $pool
    $null = $ps.AddScript($worker).AddArgument($go).AddArgument($release).AddArgument($clock).AddArgument($results).AddArgument($passes).
        AddArgument($ConnectionString).AddArgument($ServiceName).AddArgument($MinConnectionIdleTimeSec)
    [pscustomobject]@{ PowerShell = $ps; Handle = $ps.BeginInvoke() }
}

try {
    [Console]::Out.WriteLine('READY')
    [Console]::Out.Flush()
    $line = [Console]::In.ReadLineAsync()
    if (-not $line.Wait(30000) -or $line.Result -ne 'GO') {
        throw "No GO on stdin within 30 s (read '$($line.Result)')."
    }

    $clock.Start()
    $go.Set()
    $deadline = [DateTime]::UtcNow.AddSeconds(40)
    while ($results.Count -lt $Burst -and [DateTime]::UtcNow -lt $deadline) {
        Start-Sleep -Milliseconds 5
    }

    $doneMs = $clock.ElapsedMilliseconds
    # The passes first: the reader stops at the last RESULT line.
    foreach ($p in $passes) { [Console]::Out.WriteLine($p) }
    foreach ($r in $results) { [Console]::Out.WriteLine($r) }
    for ($i = $results.Count; $i -lt $Burst; $i++) {
        [Console]::Out.WriteLine("RESULT|failed|$doneMs|0|unfinished|no result within 40 s")
    }
} finally {
    $go.Set()
    $release.Set()
    foreach ($x in $instances) {
        if (-not $x.Handle.AsyncWaitHandle.WaitOne(15000)) { $x.PowerShell.Stop() }
        $x.PowerShell.Dispose()
    }
    $pool.Close()
    $pool.Dispose()
}
