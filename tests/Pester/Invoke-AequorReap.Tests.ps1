BeforeAll {
    . (Join-Path $PSScriptRoot 'Aequor.TestHelpers.ps1')
    $null = Get-Observer

    # Frozen-looking workers of one service: expired and idle (the reapable ones), alive, forged,
    # and a neighbour service's expired one; then the reaping session, connected last (the default).
    function New-ReapFixture([int] $Expired = 2) {
        $null = Get-Observer
        $service = New-TestServiceName reap
        $now = Get-NowMs
        $f = [ordered]@{
            Service   = $service
            Expired   = @(1..$Expired | ForEach-Object { New-FakeWorker (New-TestLease -Service $service -ExpiresAtMs ($now - 60000 - $_ * 1000)) })
            Live      = New-FakeWorker (New-TestLease -Service $service -ExpiresAtMs ($now + 600000))
            Forged    = New-FakeWorker (New-TestLease -Service $service -ExpiresAtMs ($now - 60000) -Secret 'some-other-secret-0123456789')
            Neighbour = New-FakeWorker (New-TestLease -Service (New-TestServiceName other) -ExpiresAtMs ($now - 60000))
        }
        $f.Reaper = Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION -CoordinationSecret $TestSecret -ServiceName $service -MinConnectionIdleTimeSec 0 -ReaperRunProbability 0 -Name "reaper-$service"
        [pscustomobject]$f
    }

    # Invoke-AequorReap -Confirm in a runspace whose host answers the prompts in turn; the result and the prompts.
    function Invoke-ReapWithAnswers([string] $Service, [int[]] $Answers) {
        # Answers the prompts from a queue and records them: -Confirm without a keyboard.
        if (-not ('AequorTest.RecordingHost' -as [type])) { Add-Type -Path (Join-Path $PSScriptRoot 'Support/RecordingHost.cs') }
        $answerHost = [AequorTest.RecordingHost]::new()
        foreach ($a in $Answers) { $answerHost.Answers.Enqueue($a) }
        $ps = New-ModuleShell -PSHost $answerHost -ArgumentList $TestSecret, $Service {
            param($ModulePath, $Connection, $Secret, $Service)
            Import-Module $ModulePath
            $null = Connect-Aequor $Connection -CoordinationSecret $Secret -ServiceName $Service -MinConnectionIdleTimeSec 0 -ReaperRunProbability 0
            Invoke-AequorReap -Confirm
        }
        try {
            [pscustomobject]@{ Result = $ps.Invoke()[0]; Prompts = @($answerHost.Prompts) }
        } finally {
            $ps.Dispose()
            $ps.Runspace.Dispose()
        }
    }
}

AfterAll {
    Disconnect-Aequor -All -Confirm:$false
}

Describe 'Invoke-AequorReap' {
    AfterEach {
        Disconnect-Aequor -All -Confirm:$false
    }

    It 'kills exactly what Get-AequorLease marked reapable, and no neighbour' {
        $f = New-ReapFixture -Expired 3
        $reapable = @(Get-AequorLease | Where-Object IsReapable | ForEach-Object Pid | Sort-Object)
        $reapable | Should -Be @($f.Expired.BackendPid | Sort-Object)

        $result = Invoke-AequorReap
        $result | Should -BeOfType 'Aequor.PowerShell.AequorReapResult'
        $result.LockAcquired | Should -BeTrue
        $result.ServiceName | Should -Be $f.Service
        $result.Scanned | Should -Be 5
        @($result.Killed.Pid | Sort-Object) | Should -Be $reapable
        @($result.Candidates.Pid | Sort-Object) | Should -Be $reapable
        $result.Skipped['not_expired'] | Should -Be 1
        $result.Skipped['bad_signature'] | Should -Be 1
        # The table wraps the skip reasons at 80 columns instead of cutting the last one off.
        $table = ($result | Out-String -Width 80) -replace '\s+', ' '
        $table | Should -Match 'bad_signature=1 not_expired=1'
        $result.DurationMs | Should -BeGreaterOrEqual 0
        $result.ConnectionsUsed | Should -BeGreaterThan 5
        $result.ConnectionsAvailable | Should -BeGreaterThan $result.ConnectionsUsed

        foreach ($p in $reapable) { Wait-Until { -not (Get-Backend $p) } | Should -BeTrue }
        foreach ($alive in $f.Live, $f.Forged, $f.Neighbour, $f.Reaper) {
            Get-Backend $alive.BackendPid | Should -Not -BeNullOrEmpty
        }
        Invoke-AequorQuery 'SELECT 1' -As Scalar | Should -Be 1
    }

    It '-WhatIf kills nothing and prints one line per candidate' {
        $f = New-ReapFixture -Expired 2
        $transcript = Join-Path $TestDrive 'whatif.txt'
        Start-Transcript -Path $transcript | Out-Null
        try {
            $result = Invoke-AequorReap -WhatIf
        } finally {
            Stop-Transcript | Out-Null
        }
        $result.Killed | Should -BeNullOrEmpty
        $result.Candidates.Count | Should -Be 2
        @($result.NotKilled.Reason | Select-Object -Unique) | Should -Be @('dry_run')
        foreach ($w in $f.Expired) { Get-Backend $w.BackendPid | Should -Not -BeNullOrEmpty }
        $lines = Get-Content $transcript | Where-Object { $_ -match '^What if: Terminate backend' }
        $lines.Count | Should -Be 2
        $lines[0] | Should -Match "^What if: Terminate backend \d+ \(service $($f.Service), instance [A-Za-z0-9]{8}, lease expired \d+ (s|min) ago, idle \d+ s\)$"
    }

    It '-MaxKill limits the pass, oldest expiry first; the rest count as over_limit' {
        $f = New-ReapFixture -Expired 3
        $result = Invoke-AequorReap -MaxKill 1
        $result.Killed.Count | Should -Be 1
        # Expiry now - 60 s - n s: the third is the oldest.
        $result.Killed[0].Pid | Should -Be $f.Expired[2].BackendPid
        $result.Skipped['over_limit'] | Should -Be 2
    }

    It '-MinIdleSec overrides the session''s threshold' {
        $f = New-ReapFixture -Expired 1
        $result = Invoke-AequorReap -MinIdleSec 3600
        $result.Killed | Should -BeNullOrEmpty
        $result.Skipped['too_young'] | Should -Be 1
        Get-Backend $f.Expired[0].BackendPid | Should -Not -BeNullOrEmpty
    }

    It 'leaves idle-in-transaction leases alone unless -IncludeIdleInTransaction' {
        $null = Get-Observer
        $service = New-TestServiceName reap
        $w = New-FakeWorker (New-TestLease -Service $service -ExpiresAtMs ((Get-NowMs) - 60000))
        Start-AequorTransaction -Session $w
        $null = Invoke-AequorQuery 'SELECT 1' -Session $w
        $reaper = Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION -CoordinationSecret $TestSecret -ServiceName $service -MinConnectionIdleTimeSec 0 -ReaperRunProbability 0
        (Get-Backend $w.BackendPid).state | Should -Be 'idle in transaction'
        $first = Invoke-AequorReap
        $first.Killed | Should -BeNullOrEmpty
        $first.Skipped['in_transaction'] | Should -Be 1
        $second = Invoke-AequorReap -IncludeIdleInTransaction -MinIdleInTransactionSec 0
        $second.Killed.Pid | Should -Be $w.BackendPid
    }

    It 'a busy lock gives a warning and LockAcquired $false, not an error' {
        $f = New-ReapFixture -Expired 1
        $holder = Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION -LeaseMode Optional -Name holder
        $null = Invoke-AequorQuery 'SELECT pg_advisory_lock($1, hashtext($2))' -Parameters $LockClassId, $f.Service -Session $holder
        $warnings = $null
        $result = Invoke-AequorReap -Session $f.Reaper -WarningVariable warnings -WarningAction SilentlyContinue -ErrorAction Stop
        $result.LockAcquired | Should -BeFalse
        $result.Killed | Should -BeNullOrEmpty
        $warnings.Count | Should -Be 1
        $warnings[0].Message | Should -Match 'lock'
        Get-Backend $f.Expired[0].BackendPid | Should -Not -BeNullOrEmpty

        $null = Invoke-AequorQuery 'SELECT pg_advisory_unlock($1, hashtext($2))' -Parameters $LockClassId, $f.Service -Session $holder
        (Invoke-AequorReap -Session $f.Reaper).Killed.Pid | Should -Be $f.Expired[0].BackendPid
    }

    It 'releases the lock after the pass' {
        $f = New-ReapFixture -Expired 1
        $null = Invoke-AequorReap
        $other = Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION -LeaseMode Optional -Name other
        Invoke-AequorQuery 'SELECT pg_try_advisory_lock($1, hashtext($2))' -Parameters $LockClassId, $f.Service -Session $other -As Scalar | Should -BeTrue
    }

    It 'both kinds of pass name an expired lease of the service the role may not signal in NotKilled as not_permitted' {
        $f = New-ReapFixture -Expired 1
        $super = Connect-Aequor $env:AEQUOR_TEST_CONNECTION -LeaseMode Optional -Name "super-$($f.Service)"
        $null = Invoke-AequorQuery 'SELECT set_config(''application_name'', $1, false)' -Parameters @(, (New-TestLease -Service $f.Service -ExpiresAtMs ((Get-NowMs) - 60000))) -Session $super
        $manual = Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION -CoordinationSecret $TestSecret -ServiceName $f.Service -MinConnectionIdleTimeSec 0 -NoReaper -Name "manual-$($f.Service)"
        foreach ($session in $manual, $f.Reaper) {
            $result = Invoke-AequorReap -Session $session -MinIdleSec 0 -WhatIf
            $miss = @($result.NotKilled | Where-Object Pid -eq $super.BackendPid)
            $miss | Should -HaveCount 1 -Because "the $($session.Name) pass lists it"
            $miss[0].Reason | Should -Be 'not_permitted'
            $result.Skipped['not_permitted'] | Should -Be 1
        }
        Get-Backend $super.BackendPid | Should -Not -BeNullOrEmpty
    }

    It '-Confirm asks per backend; a "no" leaves it alive as declined' {
        $f = New-ReapFixture -Expired 2
        # ShouldProcess's choices: 0 Yes, 1 Yes to All, 2 No, 3 No to All.
        $run = Invoke-ReapWithAnswers -Service $f.Service -Answers 0, 2
        $result = $run.Result
        $run.Prompts.Count | Should -Be 2
        $run.Prompts[0] | Should -Match '^Terminate backend \d+ \(service '
        $result.Candidates.Count | Should -Be 2
        $result.Killed.Count | Should -Be 1
        $result.NotKilled.Count | Should -Be 1
        $result.NotKilled[0].Reason | Should -Be 'declined'
        Get-Backend $result.NotKilled[0].Pid | Should -Not -BeNullOrEmpty
        Wait-Until { -not (Get-Backend $result.Killed[0].Pid) } | Should -BeTrue
    }

    It '-Confirm returns once the approved backends have exited, as the automatic pass does' {
        $f = New-ReapFixture -Expired 2
        $result = (Invoke-ReapWithAnswers -Service $f.Service -Answers 1).Result
        @($result.Killed.Pid | Sort-Object) | Should -Be @($f.Expired.BackendPid | Sort-Object)
        # No Wait-Until: the kill waited for the exits, so the slots are already free.
        foreach ($p in $result.Killed.Pid) { Get-Backend $p | Should -BeNullOrEmpty }
        Get-Backend $f.Live.BackendPid | Should -Not -BeNullOrEmpty
    }

    It 'a session without a secret gives AequorNotLeased, for that input only: the other piped sessions are reaped' {
        $plain = Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION -LeaseMode Optional -Name plainreap
        $err = $null
        Invoke-AequorReap -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -BeLike 'AequorNotLeased*'
        $leased = Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION -CoordinationSecret $TestSecret -ServiceName (New-TestServiceName np) -ReaperRunProbability 0 -Name leasedreap
        $err = $null
        $results = @($plain, $leased | Invoke-AequorReap -ErrorVariable err -ErrorAction SilentlyContinue)
        $err.Count | Should -Be 1
        $results.Count | Should -Be 1
        $results[0].ServiceName | Should -Be $leased.ServiceName
    }

    It 'inside the rows of a query on the same session fails at once with AequorSessionBusy' {
        foreach ($command in 'Invoke-AequorReap | Out-Null', 'Invoke-AequorReap -Session default | Out-Null') {
            $r = Invoke-InsideRows $command
            $r.Done | Should -BeTrue
            $r.Output | Should -Be @('1', '2', 'after:7')
            $r.Errors.Count | Should -Be 2
            $r.Errors[0].FullyQualifiedErrorId | Should -BeLike 'AequorSessionBusy*'
        }
    }

    It 'a $null piped in is its own AequorInvalidParameter error and runs no pass on the default session' {
        $default = Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION -CoordinationSecret $TestSecret -ServiceName (New-TestServiceName nl) -ReaperRunProbability 0 -Name nullreap
        $before = $default.ReapPasses
        $err = $null
        $results = @($null | Invoke-AequorReap -ErrorVariable err -ErrorAction SilentlyContinue)
        @($err) | Should -HaveCount 1
        $err[0].FullyQualifiedErrorId | Should -BeLike 'AequorInvalidParameter,*'
        $results | Should -HaveCount 0
        $default.ReapPasses | Should -Be $before
    }

    It 'a closed session piped in is its own AequorSessionClosed error: the sessions after it are reaped' {
        $closed = Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION -CoordinationSecret $TestSecret -ServiceName (New-TestServiceName cl) -ReaperRunProbability 0 -Name closedreap
        $leased = Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION -CoordinationSecret $TestSecret -ServiceName (New-TestServiceName cl) -ReaperRunProbability 0 -Name openreap
        Disconnect-Aequor -Session $closed
        $err = $null
        $results = @($closed, $leased | Invoke-AequorReap -ErrorVariable err -ErrorAction SilentlyContinue)
        @($err) | Should -HaveCount 1
        $err[0].FullyQualifiedErrorId | Should -BeLike 'AequorSessionClosed*'
        $results.ServiceName | Should -Be @($leased.ServiceName)
        Disconnect-Aequor -Session $leased
    }
}
