# End to end: the backend of a session is terminated between two statements (as a reaper, an administrator, an
# idle timeout or a restart would), the next statement reconnects transparently, and what the script had put in
# its session is not lost without a word. And RESET ALL / DISCARD ALL never leave the session without its lease.
BeforeAll {
    . (Join-Path $PSScriptRoot 'Aequor.TestHelpers.ps1')
    $null = Get-Observer

    function New-StateSession([string] $Name) {
        Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION -CoordinationSecret $TestSecret -ServiceName (New-TestServiceName st) -ReaperRunProbability 0 -Name $Name
    }

    function Stop-Backend($Session) {
        $old = $Session.BackendPid
        $null = Invoke-AequorQuery 'SELECT pg_terminate_backend($1)' $old -Session (Get-Observer)
        Wait-Until { -not (Get-Backend $old) } | Should -BeTrue
        # Quiet long enough for the client to send a probe with the next statement, which finds the backend gone.
        Start-Sleep -Milliseconds 700
        $old
    }
}

AfterAll {
    Disconnect-Aequor -All -Confirm:$false
}

Describe 'A reconnect that loses session state says so' {
    It 'a statement after a reconnect that lost a session advisory lock is AequorSessionStateLost and not run; the next one runs' {
        $s = New-StateSession lock1
        $table = "st_lock_$([Guid]::NewGuid().ToString('N').Substring(0, 8))"
        $null = Invoke-AequorQuery "CREATE TABLE $table (v int)" -Session $s
        $null = Invoke-AequorQuery 'SELECT pg_advisory_lock(4242, 1)' -Session $s
        $old = Stop-Backend $s

        $err = $null
        Invoke-AequorQuery "INSERT INTO $table VALUES (1)" -Session $s -ErrorVariable err -ErrorAction SilentlyContinue
        @($err).Count | Should -Be 1
        $err[0].FullyQualifiedErrorId | Should -BeLike 'AequorSessionStateLost*'
        $err[0].CategoryInfo.Category | Should -Be 'ConnectionError'
        $err[0].Exception.Message | Should -Match 'advisory lock'
        $err[0].Exception.Message | Should -Match 'The statement was not run'
        Invoke-AequorQuery "SELECT count(*) FROM $table" -As Scalar -Session (Get-Observer) | Should -Be 0

        Invoke-AequorQuery "INSERT INTO $table VALUES (2)" -Session $s -As NonQuery | Should -Be 1
        Invoke-AequorQuery "SELECT count(*) FROM $table" -As Scalar -Session (Get-Observer) | Should -Be 1
        $s.BackendPid | Should -Not -Be $old
        $s.Reconnects | Should -Be 1
    }

    It 'Start-AequorTransaction after a reconnect that lost a session advisory lock fails the same way and opens nothing' {
        $s = New-StateSession lock2
        $null = Invoke-AequorQuery 'SELECT pg_try_advisory_lock(4242, 2)' -Session $s
        $null = Stop-Backend $s
        $err = $null
        try { Start-AequorTransaction -Session $s } catch { $err = $_ }
        $err.FullyQualifiedErrorId | Should -BeLike 'AequorSessionStateLost*'
        $s.InTransaction | Should -BeFalse
    }

    It 'a lock released with pg_advisory_unlock is not missed: the statement after the reconnect runs without a word' {
        $s = New-StateSession lock3
        $null = Invoke-AequorQuery 'SELECT pg_advisory_lock(4242, 3)' -Session $s
        $null = Invoke-AequorQuery 'SELECT pg_advisory_unlock(4242, 3)' -Session $s
        $null = Stop-Backend $s
        $warnings = $null
        Invoke-AequorQuery 'SELECT 1' -As Scalar -Session $s -WarningVariable warnings -ErrorAction Stop | Should -Be 1
        @($warnings).Count | Should -Be 0
    }

    It 'temporary tables and settings lost by a reconnect are a warning naming them, and the statement runs' {
        $s = New-StateSession temp1
        $null = Invoke-AequorQuery 'CREATE TEMP TABLE scratch (v int)' -Session $s
        $null = Invoke-AequorQuery 'SET statement_timeout = 12345' -Session $s
        $null = Stop-Backend $s

        # Visible by default: the warning reaches the host without -Verbose or a preference changed.
        $out = Invoke-AequorQuery "SELECT current_setting('statement_timeout') AS t" -Session $s 3>&1
        $warnings = @($out | Where-Object { $_ -is [System.Management.Automation.WarningRecord] })
        $rows = @($out | Where-Object { $_ -isnot [System.Management.Automation.WarningRecord] })
        $warnings.Count | Should -Be 1
        $warnings[0].Message | Should -Match "Session 'temp1'"
        $warnings[0].Message | Should -Match 'temporary tables'
        $warnings[0].Message | Should -Match 'session settings'
        $rows[0].t | Should -Not -Be '12345ms'

        # Said once.
        $again = @(Invoke-AequorQuery 'SELECT 1 AS one' -Session $s 3>&1)
        @($again | Where-Object { $_ -is [System.Management.Automation.WarningRecord] }).Count | Should -Be 0
    }

    It 'DISCARD ALL forgets what it discarded: no warning after a reconnect' {
        $s = New-StateSession temp2
        $null = Invoke-AequorQuery 'CREATE TEMP TABLE scratch (v int)' -Session $s
        $null = Invoke-AequorQuery 'DISCARD ALL' -Session $s
        $null = Stop-Backend $s
        $out = @(Invoke-AequorQuery 'SELECT 1 AS one' -Session $s 3>&1)
        @($out | Where-Object { $_ -is [System.Management.Automation.WarningRecord] }).Count | Should -Be 0
    }
}

Describe 'RESET ALL, DISCARD ALL and application_name keep the session''s lease' {
    It 'after <Reset> the backend shows this session''s lease, valid and not expired' -ForEach @(
        @{ Reset = 'RESET ALL' }
        @{ Reset = 'DISCARD ALL' }
        @{ Reset = 'RESET application_name' }
    ) {
        # A short lease: by the time of the reset, the connection's startup lease (the one RESET returns to) has expired.
        $s = Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION -CoordinationSecret $TestSecret -ServiceName (New-TestServiceName st) -ReaperRunProbability 0 -LeaseTtlMs 3000 -Name reset1
        Start-Sleep -Milliseconds 3300
        $null = Invoke-AequorQuery 'SELECT 1' -Session $s
        $null = Invoke-AequorQuery $Reset -Session $s

        $lease = Get-AequorLease -ApplicationName (Get-Backend $s.BackendPid).application_name -CoordinationSecret $TestSecret
        $lease.IsSignatureValid | Should -BeTrue
        $lease.InstanceId | Should -Be $s.InstanceId
        $lease.ExpiresAt | Should -BeGreaterThan ([DateTimeOffset]::UtcNow.AddMilliseconds(500))
        $mine = Get-AequorLease -Session $s | Where-Object Pid -eq $s.BackendPid
        $mine.IsExpired | Should -BeFalse
    }

    It 'SET application_name in a leased session is AequorInvalidParameter, and nothing is sent' {
        $s = New-StateSession name1
        $before = (Get-Backend $s.BackendPid).application_name
        $err = $null
        Invoke-AequorQuery "SET application_name = 'nightly-job'" -Session $s -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -BeLike 'AequorInvalidParameter*'
        $err[0].Exception.Message | Should -Match 'application_name'
        $err[0].Exception.Message | Should -Match 'Nothing was sent'
        (Get-Backend $s.BackendPid).application_name | Should -Be $before
    }
}
