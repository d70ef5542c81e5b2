# End to end, as in production: a real worker process with real leased sessions freezes (SIGSTOP);
# another client of the service sees its leases expire, reaps exactly them, and nothing else.
BeforeAll {
    . (Join-Path $PSScriptRoot 'Aequor.TestHelpers.ps1')
    $null = Get-Observer

    function Start-Worker([string] $Service, [int] $Count, [int] $LeaseTtlMs) {
        $psi = [Diagnostics.ProcessStartInfo]::new('dotnet')
        foreach ($a in @((Join-Path $PSHOME 'pwsh.dll'), '-NoProfile', '-NonInteractive', '-Command', '-')) { $psi.ArgumentList.Add($a) }
        $psi.RedirectStandardInput = $true
        $psi.RedirectStandardOutput = $true
        $psi.UseShellExecute = $false
        $psi.Environment['AEQUOR_COORDINATION_SECRET'] = $TestSecretText
        $psi.Environment['AEQUOR_SERVICE_NAME'] = $Service
        $p = [Diagnostics.Process]::Start($psi)
        $p.StandardInput.WriteLine(@"
`$ErrorActionPreference = 'Stop'
Import-Module '$env:AEQUOR_MODULE_PATH'
`$pids = foreach (`$i in 1..$Count) { (Connect-Aequor '$env:AEQUOR_TEST_APP_CONNECTION' -LeaseTtlMs $LeaseTtlMs -NoReaper -Name "w`$i").BackendPid }
"READY `$(`$pids -join ',')"
[Console]::Out.Flush()
Start-Sleep -Seconds 600
"@)
        $p.StandardInput.Close()
        $deadline = [DateTime]::UtcNow.AddSeconds(60)
        while ($true) {
            $read = $p.StandardOutput.ReadLineAsync()
            if (-not $read.Wait([Math]::Max(0, ($deadline - [DateTime]::UtcNow).TotalMilliseconds)) -or $null -eq $read.Result) {
                $p.Kill($true)
                throw 'The worker did not report its sessions.'
            }
            if ($read.Result -match 'READY ([\d,]+)') {
                return [pscustomobject]@{ Process = $p; Pids = [int[]]($Matches[1] -split ',') }
            }
        }
    }
}

Describe 'A frozen worker is reaped, and only it' {
    BeforeAll {
        $script:Service = New-TestServiceName frozen
        $script:Worker = Start-Worker -Service $Service -Count 4 -LeaseTtlMs 1500
        & kill -STOP $Worker.Process.Id
        # A live neighbour of the same service with a long lease, and another service's frozen-looking worker.
        $script:Alive = Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION -CoordinationSecret $TestSecret -ServiceName $Service -Name alive
        $script:Other = New-FakeWorker (New-TestLease -Service (New-TestServiceName other) -ExpiresAtMs ((Get-NowMs) - 60000))
        $script:Reaper = Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION -CoordinationSecret $TestSecret -ServiceName $Service -MinConnectionIdleTimeSec 1 -ReaperRunProbability 0 -Name reaper
        Start-Sleep -Milliseconds 2500
    }

    AfterAll {
        if ($Worker -and -not $Worker.Process.HasExited) {
            & kill -CONT $Worker.Process.Id
            $Worker.Process.Kill($true)
            $null = $Worker.Process.WaitForExit(10000)
        }
        Disconnect-Aequor -All -Confirm:$false
    }

    It 'Get-AequorLease marks the frozen worker''s leases expired and reapable, and no other' {
        $leases = Get-AequorLease -Session $Reaper
        $reapable = @($leases | Where-Object IsReapable | ForEach-Object Pid | Sort-Object)
        $reapable | Should -Be @($Worker.Pids | Sort-Object)
        ($leases | Where-Object Pid -in $Worker.Pids).IsExpired | Should -Not -Contain $false
        ($leases | Where-Object Pid -eq $Alive.BackendPid).IsReapable | Should -BeFalse
    }

    It 'Invoke-AequorReap -WhatIf kills nothing' {
        $result = Invoke-AequorReap -Session $Reaper -WhatIf
        $result.Killed | Should -BeNullOrEmpty
        foreach ($p in $Worker.Pids) { Get-Backend $p | Should -Not -BeNullOrEmpty }
    }

    It 'Invoke-AequorReap terminates exactly the frozen backends' {
        $result = Invoke-AequorReap -Session $Reaper
        @($result.Killed.Pid | Sort-Object) | Should -Be @($Worker.Pids | Sort-Object)
        foreach ($p in $Worker.Pids) { Wait-Until { -not (Get-Backend $p) } | Should -BeTrue }
        foreach ($s in $Alive, $Other, $Reaper) { Get-Backend $s.BackendPid | Should -Not -BeNullOrEmpty }
        Invoke-AequorQuery 'SELECT 1' -Session $Alive -As Scalar | Should -Be 1
    }

    It 'a second pass finds nothing left to kill' {
        (Invoke-AequorReap -Session $Reaper).Killed | Should -BeNullOrEmpty
    }
}
