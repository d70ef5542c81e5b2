BeforeAll {
    . (Join-Path $PSScriptRoot 'Aequor.TestHelpers.ps1')
    $null = Get-Observer
}

AfterAll {
    Disconnect-Aequor -All -Confirm:$false
}

Describe 'Disconnect-Aequor' {
    It 'closes the default session when given nothing; its backend leaves pg_stat_activity' {
        $s = Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION -LeaseMode Optional -Name d1
        Disconnect-Aequor
        $s.State | Should -Be 'Closed'
        Get-AequorSession -Name d1 -ErrorAction Ignore | Should -BeNullOrEmpty
        Wait-Until { -not (Get-Backend $s.BackendPid) } | Should -BeTrue
        Get-AequorSession -Default | Should -BeNullOrEmpty
    }

    It 'closes by name and by session from the pipeline' {
        $x = Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION -LeaseMode Optional -Name byname
        $y = Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION -LeaseMode Optional -Name bypipe
        Disconnect-Aequor -Name byname
        $x.State | Should -Be 'Closed'
        $y.State | Should -Be 'Connected'
        Get-AequorSession -Name bypipe | Disconnect-Aequor
        $y.State | Should -Be 'Closed'
    }

    It '-Session takes names, as every other cmdlet''s does, and so does the pipeline' {
        $one = Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION -LeaseMode Optional -Name dn-one
        $two = Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION -LeaseMode Optional -Name dn-two
        $three = Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION -LeaseMode Optional -Name dn-three
        Disconnect-Aequor -Session dn-one
        $one.State | Should -Be 'Closed'
        'dn-two' | Disconnect-Aequor
        $two.State | Should -Be 'Closed'
        $three.State | Should -Not -Be 'Closed'
        Disconnect-Aequor -Session $three, 'dn-three'
        $three.State | Should -Be 'Closed'
    }

    It 'an unknown name among several is that name''s AequorSessionNotFound error: the others still close' {
        $one = Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION -LeaseMode Optional -Name dn-known
        $two = Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION -LeaseMode Optional -Name dn-piped
        $errs = $null
        Disconnect-Aequor -Session dn-known, no-such-one -ErrorVariable errs -ErrorAction SilentlyContinue
        $one.State | Should -Be 'Closed'
        $errs | Should -HaveCount 1
        $errs[0].FullyQualifiedErrorId | Should -Be 'AequorSessionNotFound,Aequor.PowerShell.DisconnectAequorCommand'
        $errs[0].CategoryInfo.Category | Should -Be 'ObjectNotFound'
        "$($errs[0])" | Should -Match "There is no Aequor session named 'no-such-one'. Open in this runspace: .*'dn-piped'"
        $errs = $null
        'no-such-two', 'dn-piped' | Disconnect-Aequor -ErrorVariable errs -ErrorAction SilentlyContinue
        $two.State | Should -Be 'Closed'
        $errs | Should -HaveCount 1
        $errs[0].FullyQualifiedErrorId | Should -BeLike 'AequorSessionNotFound,*'
        "$($errs[0])" | Should -Match "no Aequor session named 'no-such-two'"
    }

    It 'warns that an open transaction was rolled back, and nothing of it is committed' {
        $s = Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION -LeaseMode Optional -Name opentx
        $table = 'disc_' + [Guid]::NewGuid().ToString('N').Substring(0, 8)
        $null = Invoke-AequorQuery "CREATE TABLE $table (id int)" -Session $s
        Start-AequorTransaction -Session $s
        $null = Invoke-AequorQuery "INSERT INTO $table VALUES (1)" -Session $s
        $warnings = $null
        Disconnect-Aequor -Session $s -WarningVariable warnings -WarningAction SilentlyContinue
        $warnings.Count | Should -Be 1
        "$($warnings[0])" | Should -Match "Session 'opentx' had an open transaction: closing it rolled the transaction back"
        Invoke-AequorQuery "SELECT count(*) FROM $table" -As Scalar -Session (Get-Observer) | Should -Be 0

        $quiet = Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION -LeaseMode Optional -Name notx
        Disconnect-Aequor -Session $quiet -WarningVariable warnings -WarningAction SilentlyContinue
        $warnings.Count | Should -Be 0
        $null = Invoke-AequorQuery "DROP TABLE $table" -Session (Get-Observer)
    }

    It '-All closes every session of the runspace' {
        $sessions = 1..3 | ForEach-Object { Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION -LeaseMode Optional -Name "all$_" }
        Disconnect-Aequor -All
        $sessions.State | Should -Be @('Closed', 'Closed', 'Closed')
        Get-AequorSession | Should -BeNullOrEmpty
    }

    It '-WhatIf closes nothing' {
        $s = Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION -LeaseMode Optional -Name whatif
        Disconnect-Aequor -Name whatif -WhatIf
        $s.State | Should -Be 'Connected'
        Disconnect-Aequor -Session $s
    }

    It 'an invalid -Name pattern is that name''s AequorInvalidParameter error and closes nothing; the other names are still closed' {
        $keep = Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION -LeaseMode Optional -Name keep1
        $close = Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION -LeaseMode Optional -Name close1
        $errs = $null
        Disconnect-Aequor -Name 'keep[', close1 -ErrorVariable errs -ErrorAction SilentlyContinue
        @($errs) | Should -HaveCount 1
        $errs[0].FullyQualifiedErrorId | Should -BeLike 'AequorInvalidParameter*'
        "$($errs[0])" | Should -Match ([regex]::Escape("-Name 'keep[' is not a valid wildcard pattern"))
        $close.State | Should -Be 'Closed'
        $keep.State | Should -Be 'Connected'
        Disconnect-Aequor -Session $keep
    }

    It 'a missing name gives AequorSessionNotFound, and no default gives AequorNoSession' {
        Disconnect-Aequor -All
        $errs = $null
        Disconnect-Aequor -Name ghost -ErrorVariable errs -ErrorAction SilentlyContinue
        $errs[0].FullyQualifiedErrorId | Should -BeLike 'AequorSessionNotFound*'
        $errs = $null
        Disconnect-Aequor -ErrorVariable errs -ErrorAction SilentlyContinue
        $errs[0].FullyQualifiedErrorId | Should -BeLike 'AequorNoSession*'
    }

    It 'inside the rows of a query on the session, refuses to close it (non-terminating AequorSessionBusy) and closes the others' {
        $r = Invoke-InsideRows -Setup '$null = Connect-Aequor $Connection -LeaseMode Optional -Name other; $null = Connect-Aequor $Connection -LeaseMode Optional' `
            -Inner 'Disconnect-Aequor -All; (Get-AequorSession).Name -join ","'
        $r.Done | Should -BeTrue -Because 'closing must not wait for the query its own pipeline is in'
        $r.Output | Should -Be @('1', 'default', '2', 'default', 'after:7')
        $r.Errors.Count | Should -Be 2
        $r.Errors[0].FullyQualifiedErrorId | Should -BeLike 'AequorSessionBusy*'
        "$($r.Errors[0])" | Should -Match 'disconnecting it inside that pipeline would wait for that query.*Disconnect it after the pipeline'
        $r.ElapsedMs | Should -BeLessThan 10000
    }

    It 'closing a session from another runspace while its rows stream there ends that query with an error saying the session was closed' {
        $shared = Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION -LeaseMode Optional -Name streamed
        $ps = [powershell]::Create()
        $rows = [System.Management.Automation.PSDataCollection[psobject]]::new()
        try {
            $null = $ps.AddScript({
                param($ModulePath, $Session)
                Import-Module $ModulePath
                try {
                    Invoke-AequorQuery -Session $Session 'SELECT g, repeat(''x'', 20000) AS pad, pg_sleep(0.3) FROM generate_series(1, 40) g' -ErrorAction Stop | ForEach-Object g
                } catch { "caught: $($_.FullyQualifiedErrorId): $_" }
            }).AddArgument($env:AEQUOR_MODULE_PATH).AddArgument($shared)
            $handle = $ps.BeginInvoke([System.Management.Automation.PSDataCollection[psobject]]::new(), $rows)
            Wait-Until { $rows.Count -ge 1 } -TimeoutMs 20000 | Should -BeTrue
            Disconnect-Aequor -Session $shared
            $handle.AsyncWaitHandle.WaitOne(20000) | Should -BeTrue
            $last = "$($rows[$rows.Count - 1])"
            # Cancelled by the server (AequorSessionClosed), or closed under the read before it answered (outcome unknown, as
            # for any statement the close cut short): either way the error says the session was closed.
            $last | Should -Match '^caught: (AequorSessionClosed|AequorQueryOutcomeUnknown),'
            $last | Should -Match 'disposed \(its session closed\) while the statement was running'
        } finally {
            $ps.Dispose()
        }
    }
}
