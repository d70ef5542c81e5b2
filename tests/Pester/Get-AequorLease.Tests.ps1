BeforeAll {
    . (Join-Path $PSScriptRoot 'Aequor.TestHelpers.ps1')
    $vectors = Get-Content -Raw (Join-Path $PSScriptRoot '../Aequor.Engine.Tests/TestData/lease-vectors.json') | ConvertFrom-Json
}

Describe 'Get-AequorLease (offline)' {
    It 'verifies every pg-aequor reference lease with its secret' {
        foreach ($v in $vectors) {
            $secret = ConvertTo-SecureString $v.secret -AsPlainText -Force
            $lease = Get-AequorLease -ApplicationName $v.applicationName -CoordinationSecret $secret
            $lease.IsSignatureValid | Should -BeTrue
            $lease.ServiceName | Should -Be $v.normalizedService
            $lease.InstanceId | Should -Be $v.instanceId
            $lease.ExpiresAt.ToUnixTimeMilliseconds() | Should -Be $v.expiresAtMs
            $lease.IsExpired | Should -Be ($v.expiresAtMs -lt [DateTimeOffset]::UtcNow.ToUnixTimeMilliseconds())
        }
    }

    It 'takes application names from the pipeline, also by property name' {
        $secret = ConvertTo-SecureString $vectors[0].secret -AsPlainText -Force
        $fromStrings = $vectors[0].applicationName, 'psql' | Get-AequorLease -CoordinationSecret $secret
        $fromStrings.IsSignatureValid | Should -Be @($true, $false)
        $fromRows = [pscustomobject]@{ application_name = $vectors[0].applicationName } | Get-AequorLease -CoordinationSecret $secret
        $fromRows.IsSignatureValid | Should -BeTrue
    }

    It 'gives a not-valid object, never an error, for a malformed string' {
        $secret = ConvertTo-SecureString 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx' -AsPlainText -Force
        $lease = Get-AequorLease -ApplicationName "s=svc;i=x;e=abc;g=`0" -CoordinationSecret $secret -ErrorAction Stop
        $lease.IsSignatureValid | Should -BeFalse
        $lease.ServiceName | Should -BeNullOrEmpty
    }

    It 'does not validate with another secret' {
        $secret = ConvertTo-SecureString 'another-secret-of-enough-length' -AsPlainText -Force
        (Get-AequorLease -ApplicationName $vectors[1].applicationName -CoordinationSecret $secret).IsSignatureValid | Should -BeFalse
    }

    It 'reads the secret from AEQUOR_COORDINATION_SECRET for piped strings and rows too' {
        $saved = $env:AEQUOR_COORDINATION_SECRET
        try {
            $env:AEQUOR_COORDINATION_SECRET = $vectors[0].secret
            $app = $vectors[0].applicationName
            (Get-AequorLease -ApplicationName $app).IsSignatureValid | Should -BeTrue
            ($app | Get-AequorLease).IsSignatureValid | Should -BeTrue
            ([pscustomobject]@{ application_name = $app } | Get-AequorLease).IsSignatureValid | Should -BeTrue
        }
        finally {
            $env:AEQUOR_COORDINATION_SECRET = $saved
        }
    }

    It 'reads a piped $null as an empty application_name, one not-a-lease row, never a live scan' {
        # A default session exists, so a fall back to the live scan would show up as extra rows.
        $me = Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION -CoordinationSecret $TestSecret -ServiceName (New-TestServiceName null) -ReaperRunProbability 0
        try {
            $rows = @(@($vectors[0].applicationName, $null, '') | Get-AequorLease)
            $rows.Count | Should -Be 3
            $rows.ApplicationName | Should -Be @($vectors[0].applicationName, '', '')
            $rows | Where-Object Pid | Should -BeNullOrEmpty
            $rows[1].IsSignatureValid | Should -BeFalse
            $rows[1].ServiceName | Should -BeNullOrEmpty
            @($null | Get-AequorLease).Count | Should -Be 1
            (@($null | Get-AequorLease)[0]).Pid | Should -BeNullOrEmpty
            @([pscustomobject]@{ application_name = $null } | Get-AequorLease).ApplicationName | Should -Be ''
        }
        finally {
            Disconnect-Aequor -Session $me -Confirm:$false
        }
    }

    It 'shows in the table what was read, marking strings that are not leases, in 80 columns' {
        $lines = @('', 'garbage', 's=orders;i=abcdefgh;e=1700000000000;g=xxxxxxxxxxx' | Get-AequorLease |
                Format-Table | Out-String -Width 80 -Stream | Where-Object { $_.Trim() })
        $lines[0] | Should -Match 'ApplicationName'
        $lines[2] | Should -Match '^\(not a lease\)'
        $lines[3] | Should -Match '^\(not a lease\).*garbage\s*$'
        $lines[4] | Should -Match '^orders\s+abcdefgh\s+2023-11-14 22:13:20\s+True\s+False\s+s=orders;i=abcdefgh'
        $lines | ForEach-Object { $_.TrimEnd().Length | Should -BeLessOrEqual 80 }
    }

    It 'formats offline rows with a view whose columns are real properties' {
        $offline = @(([xml](Get-Content -Raw (Join-Path (Split-Path $env:AEQUOR_MODULE_PATH) 'Aequor.Format.ps1xml'))).SelectNodes('//View') |
                Where-Object { $_.ViewSelectedBy.TypeName -eq 'Aequor.PowerShell.AequorLease#Offline' })
        $offline.Count | Should -Be 1
        foreach ($property in $offline[0].SelectNodes('.//PropertyName')) {
            [Aequor.PowerShell.AequorLease].GetProperty($property.InnerText) | Should -Not -BeNullOrEmpty -Because "the offline view shows $($property.InnerText)"
        }
    }

    It 'refuses a secret under 16 bytes with AequorSecretTooShort and never echoes it' {
        $secret = ConvertTo-SecureString 'tiny-secret' -AsPlainText -Force
        $err = $null
        try { Get-AequorLease -ApplicationName 'x' -CoordinationSecret $secret } catch { $err = $_ }
        $err | Should -Not -BeNullOrEmpty
        $err.FullyQualifiedErrorId | Should -BeLike 'AequorSecretTooShort*'
        $err.Exception.Message | Should -Match '16 bytes'
        $err.Exception.Message | Should -Not -Match 'tiny-secret'
    }
}

Describe 'Get-AequorLease (session)' {
    BeforeAll {
        $script:Service = New-TestServiceName lease
        $now = Get-NowMs
        $script:Expired = New-FakeWorker (New-TestLease -Service $Service -ExpiresAtMs ($now - 60000))
        $script:Live = New-FakeWorker (New-TestLease -Service $Service -ExpiresAtMs ($now + 600000))
        $script:Forged = New-FakeWorker (New-TestLease -Service $Service -ExpiresAtMs ($now - 60000) -Secret 'some-other-secret-0123456789')
        $script:Neighbour = New-FakeWorker (New-TestLease -Service (New-TestServiceName other) -ExpiresAtMs ($now - 60000))
        $script:Plain = New-FakeWorker 'psql'
        $script:Me = Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION -CoordinationSecret $TestSecret -ServiceName $Service -MinConnectionIdleTimeSec 0 -ReaperRunProbability 0
    }

    AfterAll {
        Disconnect-Aequor -All -Confirm:$false
    }

    It 'lists the leases of the session''s service with the database''s verdicts' {
        $leases = Get-AequorLease
        $leases | Should -BeOfType 'Aequor.PowerShell.AequorLease'
        ($leases.Pid | Sort-Object) | Should -Be (@($Expired.BackendPid, $Live.BackendPid, $Forged.BackendPid, $Me.BackendPid) | Sort-Object)

        $e = $leases | Where-Object Pid -eq $Expired.BackendPid
        $e.ServiceName | Should -Be $Service
        $e.IsExpired | Should -BeTrue
        $e.IsSignatureValid | Should -BeTrue
        $e.State | Should -Be 'idle'
        $e.IdleSeconds | Should -BeGreaterOrEqual 0
        $e.UserName | Should -Not -BeNullOrEmpty
        $e.ExpiresAt | Should -BeOfType [DateTimeOffset]
        $e.ExpiresAt.Offset | Should -Be ([TimeSpan]::Zero)
        $e.IsReapable | Should -BeTrue
        $e.IsCurrentSession | Should -BeFalse

        $l = $leases | Where-Object Pid -eq $Live.BackendPid
        $l.IsExpired | Should -BeFalse
        $l.IsReapable | Should -BeFalse
        $l.NotReapableReason | Should -Be 'not_expired'

        $f = $leases | Where-Object Pid -eq $Forged.BackendPid
        $f.IsSignatureValid | Should -BeFalse
        $f.IsReapable | Should -BeFalse
        $f.NotReapableReason | Should -Be 'bad_signature'

        $m = $leases | Where-Object Pid -eq $Me.BackendPid
        $m.IsCurrentSession | Should -BeTrue
        $m.IsReapable | Should -BeFalse
        $m.State | Should -Be 'active'
    }

    It 'shows each lease''s verdict and its state in an 80-column table' {
        $lines = @((Get-AequorLease | Sort-Object Pid | Out-String -Width 80) -split "`r?`n" | Where-Object { $_.Trim() })
        $lines | ForEach-Object { $_.Length | Should -BeLessOrEqual 80 }
        $lines[0] | Should -Match 'Lease\s+Idle\(s\)\s+State'
        ($lines | Where-Object { $_ -match "^\s*$($Expired.BackendPid) " }) | Should -Match 'REAPABLE\s+\d+\s+idle'
        ($lines | Where-Object { $_ -match "^\s*$($Live.BackendPid) " }) | Should -Match 'live\s+\d+\s+idle'
        ($lines | Where-Object { $_ -match "^\s*$($Forged.BackendPid) " }) | Should -Match 'bad sig'
        ($lines | Where-Object { $_ -match "^\s*$($Me.BackendPid) " }) | Should -Match 'active'
    }

    It '-All lists every lease of any service, and never a plain application_name' {
        $all = Get-AequorLease -All -Session $Me
        $all.Pid | Should -Contain $Neighbour.BackendPid
        $all.Pid | Should -Not -Contain $Plain.BackendPid
        $n = $all | Where-Object Pid -eq $Neighbour.BackendPid
        $n.IsSignatureValid | Should -BeTrue
        $n.IsExpired | Should -BeTrue
        $n.IsReapable | Should -BeFalse
        $n.NotReapableReason | Should -Be 'not_ours'
    }

    It 'lists a lease whose expiry is past year 9999 (anyone can write one) as a row, never an error, live and offline' {
        $far = "s=$Service;i=farfuture;e=9999999999999999;g=AAAAAAAAAAA"
        $offline = Get-AequorLease -ApplicationName $far, 's=x;i=y;e=1;g=AAAAAAAAAAA' -CoordinationSecret $TestSecret -ErrorAction Stop
        $offline | Should -HaveCount 2
        $offline[0].ExpiresAt | Should -Be ([datetimeoffset]::MaxValue)
        $offline[0].IsSignatureValid | Should -BeFalse
        $worker = New-FakeWorker $far
        try {
            $mine = Get-AequorLease -Session $Me -ErrorAction Stop
            ($mine | Where-Object Pid -eq $worker.BackendPid).IsSignatureValid | Should -BeFalse
            $mine.Pid | Should -Contain $Expired.BackendPid -Because 'the other rows are still listed'
            (Get-AequorLease -All -Session $Me -ErrorAction Stop).Pid | Should -Contain $worker.BackendPid
            (Invoke-AequorReap -Session $Me -WhatIf -ErrorAction Stop) | Should -Not -BeNullOrEmpty
        } finally {
            Disconnect-Aequor -Session $worker
        }
    }

    It 'idle time below MinConnectionIdleTimeSec is not reapable' {
        $strict = Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION -CoordinationSecret $TestSecret -ServiceName $Service -MinConnectionIdleTimeSec 3600 -ReaperRunProbability 0 -Name strict
        $e = Get-AequorLease -Session $strict | Where-Object Pid -eq $Expired.BackendPid
        $e.IsExpired | Should -BeTrue
        $e.IsReapable | Should -BeFalse
        $e.NotReapableReason | Should -Be 'too_young'
        Disconnect-Aequor -Session $strict
    }

    It 'takes the session from the pipeline' {
        ($Me | Get-AequorLease).Pid | Should -Contain $Expired.BackendPid
    }

    It '-Session takes a session''s name and completes session names' {
        $named = Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION -CoordinationSecret $TestSecret -ServiceName $Service -ReaperRunProbability 0 -Name 'lease named'
        try {
            (Get-AequorLease -Session 'lease named').Pid | Should -Contain $Expired.BackendPid
            $errs = $null
            Get-AequorLease -Session no-such-session -ErrorVariable errs -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
            $errs[0].FullyQualifiedErrorId | Should -BeLike 'AequorSessionNotFound,*'
            $errs[0].Exception.Message | Should -Match "no Aequor session named 'no-such-session'"
            $completion = TabExpansion2 -inputScript 'Get-AequorLease -Session lease' -cursorColumn 'Get-AequorLease -Session lease'.Length
            $completion.CompletionMatches.CompletionText | Should -Be @("'lease named'")
        }
        finally {
            Disconnect-Aequor -Session $named -Confirm:$false
        }
    }

    It 'binds piped strings and rows to -ApplicationName even when one is a session''s name' {
        $named = Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION -CoordinationSecret $TestSecret -ServiceName $Service -ReaperRunProbability 0 -Name psql
        try {
            $rows = @('psql', $Me.Name, [pscustomobject]@{ application_name = 'psql' } | Get-AequorLease)
            $rows.ApplicationName | Should -Be @('psql', $Me.Name, 'psql')
            $rows | Where-Object Pid | Should -BeNullOrEmpty
            (@($Me, $named) | Get-AequorLease).Pid | Should -Contain $Expired.BackendPid
        }
        finally {
            Disconnect-Aequor -Session $named -Confirm:$false
        }
    }

    It 'inside the rows of a query on the same session fails at once with AequorSessionBusy' {
        $r = Invoke-InsideRows 'Get-AequorLease | Out-Null'
        $r.Done | Should -BeTrue
        $r.Output | Should -Be @('1', '2', 'after:7')
        $r.Errors.Count | Should -Be 2
        $r.Errors[0].FullyQualifiedErrorId | Should -BeLike 'AequorSessionBusy*'
        "$($r.Errors[0])" | Should -Match 'Get-AequorLease on it inside that pipeline would wait for ever'
    }

    It 'a closed session piped in is its own AequorSessionClosed error: the sessions after it are still scanned' {
        $closed = Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION -CoordinationSecret $TestSecret -ServiceName $Service -ReaperRunProbability 0 -Name closedlease
        Disconnect-Aequor -Session $closed
        $err = $null
        $leases = @($closed, $Me | Get-AequorLease -ErrorVariable err -ErrorAction SilentlyContinue)
        @($err) | Should -HaveCount 1
        $err[0].FullyQualifiedErrorId | Should -BeLike 'AequorSessionClosed*'
        $leases.Pid | Should -Contain $Expired.BackendPid
    }

    It 'a session without a coordination secret is its own AequorNotLeased error, never an empty or unverified listing: the sessions after it are still scanned' {
        $plain = Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION -LeaseMode Optional -ServiceName $Service -ReaperRunProbability 0 -Name unleased
        try {
            $plain.IsLeased | Should -BeFalse
            $err = $null
            $leases = @($plain, $Me | Get-AequorLease -ErrorVariable err -ErrorAction SilentlyContinue)
            @($err) | Should -HaveCount 1
            $err[0].FullyQualifiedErrorId | Should -BeLike 'AequorNotLeased,*'
            $err[0].TargetObject.Name | Should -Be 'unleased'
            "$($err[0])" | Should -Match "Session 'unleased' has no lease"
            $leases | Should -HaveCount @(Get-AequorLease -Session $Me).Count -Because 'only $Me''s scan is listed'

            $err = $null
            Get-AequorLease -Session unleased -All -ErrorVariable err -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
            $err[0].FullyQualifiedErrorId | Should -BeLike 'AequorNotLeased,*'
            { Get-AequorLease -Session $plain -ErrorAction Stop } | Should -Throw "Session 'unleased' has no lease*"
        }
        finally {
            Disconnect-Aequor -Session $plain
        }
    }

    It 'reads through a session whose backend was terminated: the scan, a read, is sent again on a new connection, never AequorQueryOutcomeUnknown' {
        $victim = Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION -CoordinationSecret $TestSecret -ServiceName $Service -ReaperRunProbability 0 -Name terminated
        try {
            $old = $victim.BackendPid
            $observer = Get-Observer
            # Within 500 ms of the session's last statement no probe goes first (a probe would find the socket dead and
            # reconnect before sending): the scan itself meets the terminated backend.
            $null = Invoke-AequorQuery 'SELECT 1' -Session $victim
            $null = Invoke-AequorQuery 'SELECT pg_terminate_backend($1)' -Parameters $old -Session $observer
            $wait = [Diagnostics.Stopwatch]::StartNew()
            while ((Get-Backend $old) -and $wait.ElapsedMilliseconds -lt 5000) { Start-Sleep -Milliseconds 5 }
            Get-Backend $old | Should -BeNullOrEmpty
            $err = $null
            $leases = @(Get-AequorLease -Session $victim -ErrorVariable err -ErrorAction SilentlyContinue)
            @($err | ForEach-Object { "$_" }) | Should -BeNullOrEmpty
            $victim.BackendPid | Should -Not -Be $old
            $leases.Pid | Should -Contain $victim.BackendPid
            $leases.Pid | Should -Contain $Expired.BackendPid
        }
        finally {
            Disconnect-Aequor -Session $victim
        }
    }
}
