BeforeAll {
    . (Join-Path $PSScriptRoot 'Aequor.TestHelpers.ps1')
    $b = @{}
    foreach ($pair in $env:AEQUOR_TEST_APP_CONNECTION -split ';') {
        $k, $v = $pair -split '=', 2
        if ($k) { $b[$k.Trim().ToLowerInvariant()] = $v }
    }
    $script:App = $b
    $script:AppCredential = [pscredential]::new($b['username'], (ConvertTo-SecureString $b['password'] -AsPlainText -Force))
}

AfterAll {
    Disconnect-Aequor -All -Confirm:$false
}

Describe 'Connect-Aequor' {
    AfterEach {
        Disconnect-Aequor -All -Confirm:$false
    }

    It 'connects now with a connection string, outputs the session and makes it the default' {
        $service = New-TestServiceName
        $s = Connect-Aequor -ConnectionString $env:AEQUOR_TEST_APP_CONNECTION -CoordinationSecret $TestSecret -ServiceName $service
        $s | Should -BeOfType 'Aequor.PowerShell.AequorSession'
        $s.Name | Should -Be 'default'
        $s.State | Should -Be 'Connected'
        $s.ServiceName | Should -Be $service
        $s.User | Should -Be $App['username']
        $s.Database | Should -Be $App['database']
        $s.Port | Should -Be ([int]$App['port'])
        $s.BackendPid | Should -BeGreaterThan 0
        $s.InstanceId | Should -Match '^[A-Za-z0-9_-]{8}$'
        $s.IsLeased | Should -BeTrue
        $s.LeaseExpiresAt | Should -BeGreaterThan ([DateTimeOffset]::UtcNow.AddSeconds(60))
        $s.IsDefault | Should -BeTrue
        (Get-AequorSession -Default).BackendPid | Should -Be $s.BackendPid

        # The lease is really in pg_stat_activity and verifies with the secret.
        $seen = (Get-Backend $s.BackendPid).application_name
        $lease = Get-AequorLease -ApplicationName $seen -CoordinationSecret $TestSecret
        $lease.IsSignatureValid | Should -BeTrue
        $lease.ServiceName | Should -Be $service
        $lease.InstanceId | Should -Be $s.InstanceId
    }

    It 'accepts a postgres:// URI with a percent-encoded password, and postgresql://' {
        $uri = "postgres://$($App['username']):$([Uri]::EscapeDataString($App['password']))@$($App['host']):$($App['port'])/$($App['database'])?sslmode=disable&connect_timeout=5"
        $s = Connect-Aequor $uri -CoordinationSecret $TestSecret -ServiceName (New-TestServiceName)
        $s.Server | Should -Be $App['host']
        $s.Port | Should -Be ([int]$App['port'])
        $s.Database | Should -Be $App['database']
        Invoke-AequorQuery 'SELECT current_user AS u' -As Scalar | Should -Be $App['username']
        $s2 = Connect-Aequor ($uri -replace '^postgres:', 'postgresql:') -CoordinationSecret $TestSecret -Name uri2
        $s2.State | Should -Be 'Connected'
    }

    It 'connects by -Server (alias -Host), -Port, -Database and -Credential' {
        $s = Connect-Aequor -Server $App['host'] -Port $App['port'] -Database $App['database'] -Credential $AppCredential -CoordinationSecret $TestSecret
        $s.Server | Should -Be $App['host']
        $s2 = Connect-Aequor -Host $App['host'] -Port $App['port'] -Database $App['database'] -Credential $AppCredential -CoordinationSecret $TestSecret -Name viaHost
        Invoke-AequorQuery 'SELECT current_database()' -As Scalar -Session $s2 | Should -Be $App['database']
        # A port in -Server is the session's port (it connected there but reported 5432).
        $s3 = Connect-Aequor -Server "$($App['host']):$($App['port'])" -Database $App['database'] -Credential $AppCredential -LeaseMode Optional -Name viaHostPort
        ($s3.Server, $s3.Port) | Should -Be @($App['host'], [int]$App['port'])
        Invoke-AequorQuery 'SELECT 1' -As Scalar -Session $s3 | Should -Be 1
        Disconnect-Aequor -Session $s3
    }

    It 'lets -Credential override the user and password of a connection string' {
        $wrong = $env:AEQUOR_TEST_APP_CONNECTION -replace '(?i)username=[^;]*', 'Username=nobody' -replace '(?i)password=[^;]*', 'Password=nothing'
        $s = Connect-Aequor $wrong -Credential $AppCredential -CoordinationSecret $TestSecret
        $s.User | Should -Be $App['username']
        Invoke-AequorQuery 'SELECT current_user' -As Scalar | Should -Be $App['username']
    }

    It 'takes the secret and the service name from the environment' {
        $env:AEQUOR_COORDINATION_SECRET = $TestSecretText
        $env:AEQUOR_SERVICE_NAME = 'from-env-service'
        try {
            $s = Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION
            $s.ServiceName | Should -Be 'from-env-service'
            $s.IsLeased | Should -BeTrue
        } finally {
            Remove-Item Env:AEQUOR_COORDINATION_SECRET, Env:AEQUOR_SERVICE_NAME -ErrorAction Ignore
        }
    }

    It 'refuses a blank -ServiceName instead of joining the environment''s or the default service' {
        $env:AEQUOR_SERVICE_NAME = 'from-env-service'
        try {
            $err = $null
            try { $null = Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION -CoordinationSecret $TestSecret -ServiceName '   ' -Name blanksvc } catch { $err = $_ }
            $err.FullyQualifiedErrorId | Should -BeLike 'AequorInvalidParameter*'
            "$err" | Should -Match '-ServiceName is blank'
            @(Get-AequorSession).Name | Should -Not -Contain 'blanksvc'
        } finally {
            Remove-Item Env:AEQUOR_SERVICE_NAME -ErrorAction Ignore
        }
    }

    It 'falls back to sls_pg without any service name' {
        $saved = $env:AWS_LAMBDA_FUNCTION_NAME
        Remove-Item Env:AWS_LAMBDA_FUNCTION_NAME, Env:AEQUOR_SERVICE_NAME -ErrorAction Ignore
        try {
            (Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION -CoordinationSecret $TestSecret).ServiceName | Should -Be 'sls_pg'
            $env:AWS_LAMBDA_FUNCTION_NAME = 'lambda-fn'
            (Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION -CoordinationSecret $TestSecret).ServiceName | Should -Be 'lambda-fn'
        } finally {
            $env:AWS_LAMBDA_FUNCTION_NAME = $saved
        }
    }

    It 'opens a plain connection with -LeaseMode Optional and no secret' {
        Remove-Item Env:AEQUOR_COORDINATION_SECRET -ErrorAction Ignore
        $s = Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION -LeaseMode Optional
        $s.IsLeased | Should -BeFalse
        $s.LeaseExpiresAt | Should -BeNullOrEmpty
        (Get-AequorLease -ApplicationName (Get-Backend $s.BackendPid).application_name).ServiceName | Should -BeNullOrEmpty
    }

    It 'warns that a connection string''s Application Name is replaced by the lease, and keeps it without a lease' {
        $leased = Connect-Aequor "$env:AEQUOR_TEST_APP_CONNECTION;Application Name=myapp" -CoordinationSecret $TestSecret -ServiceName appname -Name leased -WarningVariable warned -WarningAction SilentlyContinue
        $warned | Should -HaveCount 1
        "$($warned[0])" | Should -BeLike "The connection string's Application Name 'myapp' is replaced by the signed lease*-ServiceName*-LeaseMode Optional*"
        (Get-Backend $leased.BackendPid).application_name | Should -Not -Be 'myapp'
        (Get-AequorLease -ApplicationName (Get-Backend $leased.BackendPid).application_name).ServiceName | Should -Be 'appname'

        # Optional with a secret is leased too; without one the connection is plain and the name is the script's.
        Remove-Item Env:AEQUOR_COORDINATION_SECRET -ErrorAction Ignore
        $plain = Connect-Aequor "$env:AEQUOR_TEST_APP_CONNECTION;Application Name=myapp" -LeaseMode Optional -Name plain -WarningVariable quiet
        $quiet | Should -BeNullOrEmpty
        (Get-Backend $plain.BackendPid).application_name | Should -Be 'myapp'
        Invoke-AequorQuery 'SELECT current_setting(''application_name'')' -Session $plain -As Scalar | Should -Be 'myapp'
        $null = Connect-Aequor "$env:AEQUOR_TEST_APP_CONNECTION;Application Name=myapp" -LeaseMode Optional -CoordinationSecret $TestSecret -Name optional -WarningVariable warned -WarningAction SilentlyContinue
        $warned | Should -HaveCount 1
    }

    It 'warns when the session it replaces had an open transaction, which closing rolled back' {
        $first = Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION -LeaseMode Optional -Name replaced-tx
        Start-AequorTransaction -Session $first
        $null = Invoke-AequorQuery 'SELECT 1' -Session $first
        $warnings = $null
        $null = Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION -LeaseMode Optional -Name replaced-tx -WarningVariable warnings -WarningAction SilentlyContinue
        "$($warnings[0])" | Should -Match "previous session named 'replaced-tx' had an open transaction"
        $warnings = $null
        $null = Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION -LeaseMode Optional -Name replaced-tx -WarningVariable warnings -WarningAction SilentlyContinue
        $warnings.Count | Should -Be 0
        Disconnect-Aequor -Name replaced-tx
    }

    It 'takes [pscredential]::Empty (a wrapper function''s default) as no credential' {
        $s = Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION -Credential ([pscredential]::Empty) -LeaseMode Optional -Name emptycred
        Invoke-AequorQuery 'SELECT 1' -As Scalar -Session $s | Should -Be 1
        Disconnect-Aequor -Session $s
    }

    It 'replaces a session of the same name and closes the old connection' {
        $first = Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION -CoordinationSecret $TestSecret -Name again
        $second = Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION -CoordinationSecret $TestSecret -Name again
        @(Get-AequorSession -Name again).Count | Should -Be 1
        $first.State | Should -Be 'Closed'
        Wait-Until { -not (Get-Backend $first.BackendPid) } | Should -BeTrue
        Get-Backend $second.BackendPid | Should -Not -BeNullOrEmpty
    }

    It 'passes every engine option through, validated by the engine' {
        $s = Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION -CoordinationSecret $TestSecret -LeaseTtlMs 5000 -NoReaper `
            -ReaperRunProbability 0.5 -ReaperCooldownMs 1000 -MinConnectionIdleTimeSec 5 -MaxIdleConnectionsToKill 3 `
            -IncludeIdleInTransaction -MinIdleInTransactionSec 10 -Retries 1 -MinBackoff 10 -MaxBackoff 20 `
            -MaxConnectRetryTimeMs 1000 -MaxQueryRetryTimeMs 1000 -CommandTimeout 7
        $s.LeaseExpiresAt | Should -BeLessThan ([DateTimeOffset]::UtcNow.AddSeconds(6))
        $err = $null
        try { Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION -CoordinationSecret $TestSecret -LeaseTtlMs 0 } catch { $err = $_ }
        $err.FullyQualifiedErrorId | Should -BeLike 'AequorInvalidParameter*'
        $err.Exception.Message | Should -Match 'LeaseTtlMs'
    }
}

Describe 'Connect-Aequor failures' {
    It 'a wrong password gives AequorConnectFailed with a readable message and no password' {
        $badPassword = 'Wr0ng-p4ssword-for-test'
        $bad = $env:AEQUOR_TEST_APP_CONNECTION -replace '(?i)password=[^;]*', "Password=$badPassword"
        $err = $null
        try { Connect-Aequor $bad -CoordinationSecret $TestSecret -MaxConnectRetryTimeMs 0 -Retries 0 } catch { $err = $_ }
        $err | Should -Not -BeNullOrEmpty
        $err.FullyQualifiedErrorId | Should -BeLike 'AequorConnectFailed*'
        $err.CategoryInfo.Category | Should -Be 'AuthenticationError'
        $err.Exception.Message | Should -Match 'password authentication failed'
        $err.Exception.SqlState | Should -Be '28P01'
        ($err | Out-String) + $err.Exception.ToString() | Should -Not -Match $badPassword
        Get-AequorSession | Should -BeNullOrEmpty
    }

    It 'a closed port says why the connect failed (connection refused), in the error and the retry warnings, naming no Npgsql type' {
        $closed = $env:AEQUOR_TEST_APP_CONNECTION -replace '(?i)port=\d+', 'Port=1'
        $err = $null
        $warnings = $null
        try { Connect-Aequor $closed -LeaseMode Optional -Name closedport -Retries 1 -MinBackoff 10 -MaxBackoff 20 -WarningVariable warnings -WarningAction SilentlyContinue } catch { $err = $_ }
        $err.FullyQualifiedErrorId | Should -BeLike 'AequorConnectFailed*'
        $err.Exception.Message | Should -Match 'refused'
        $err.Exception.Message | Should -Not -Match 'Npgsql'
        @($warnings).Count | Should -Be 1
        $warnings[0].Message | Should -Match 'refused'
        $warnings[0].Message | Should -Not -Match 'Npgsql'
    }

    It 'names the server as the connection string gives it: no "@" or "/" for a user or database it leaves to the defaults' {
        $err = $null
        try { Connect-Aequor 'Host=127.0.0.1;Port=1' -LeaseMode Optional -Name bare -Retries 0 } catch { $err = $_ }
        $err.FullyQualifiedErrorId | Should -BeLike 'AequorConnectFailed*'
        $err.Exception.Message | Should -BeLike "Could not connect session 'bare' to 127.0.0.1:1: Could not connect to 127.0.0.1:1 after 1 attempt*"
        $err = $null
        try { Connect-Aequor 'Host=127.0.0.1;Port=1;Username=u;Database=d' -LeaseMode Optional -Name full -Retries 0 } catch { $err = $_ }
        $err.Exception.Message | Should -BeLike "Could not connect session 'full' to u@127.0.0.1:1/d: Could not connect to 127.0.0.1:1/d after 1 attempt*"
    }

    It 'a server that never answers ends each attempt at the connect timeout and says so, within the retry budget, naming no Npgsql type' {
        # A listener that never accepts: the kernel completes the handshake, and the startup message gets no answer.
        $silent = [System.Net.Sockets.TcpListener]::new([System.Net.IPAddress]::Loopback, 0)
        $silent.Start()
        try {
            $cs = "Host=127.0.0.1;Port=$($silent.LocalEndpoint.Port);Database=db;Username=u;Password=p;Timeout=1"
            $err = $null
            $warnings = $null
            $clock = [System.Diagnostics.Stopwatch]::StartNew()
            try { Connect-Aequor $cs -LeaseMode Optional -Name silentserver -Retries 1 -MinBackoff 10 -MaxBackoff 20 -WarningVariable warnings -WarningAction SilentlyContinue } catch { $err = $_ }
            $clock.Stop()
            $err.FullyQualifiedErrorId | Should -BeLike 'AequorConnectFailed*'
            # Npgsql words it 'The operation has timed out' or 'Timeout during connection attempt', by where it was.
            $err.Exception.Message | Should -Match 'timed out|timeout'
            $err.Exception.Message | Should -Match '2 attempt'
            $err.Exception.Message | Should -Not -Match 'Npgsql'
            @($warnings).Count | Should -Be 1
            $warnings[0].Message | Should -Match 'timed out|timeout'
            $clock.Elapsed.TotalSeconds | Should -BeGreaterOrEqual 1.9 -Because 'each of the 2 attempts waits its 1 s'
            $clock.Elapsed.TotalSeconds | Should -BeLessThan 8
            Get-AequorSession -Name silentserver -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        } finally {
            $silent.Stop()
        }
    }

    It 'a secret under 16 bytes gives AequorSecretTooShort and is never echoed' {
        $err = $null
        try { Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION -CoordinationSecret (ConvertTo-SecureString 'short-secret' -AsPlainText -Force) } catch { $err = $_ }
        $err.FullyQualifiedErrorId | Should -BeLike 'AequorSecretTooShort*'
        $err.Exception.Message | Should -Match '16 bytes'
        $err.Exception.Message | Should -Not -Match 'short-secret'
    }

    It 'no secret with LeaseMode Required gives AequorSecretMissing' {
        Remove-Item Env:AEQUOR_COORDINATION_SECRET -ErrorAction Ignore
        $err = $null
        try { Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION } catch { $err = $_ }
        $err.FullyQualifiedErrorId | Should -BeLike 'AequorSecretMissing*'
        $err.Exception.Message | Should -Match 'LeaseMode Optional'
    }

    It 'refuses a session name holding a wildcard character, saying why, and opens no session' {
        foreach ($name in 'db[1', 'prod*', 'a?', 'x]', 'tick`') {
            $err = $null
            try { Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION -LeaseMode Optional -Name $name } catch { $err = $_ }
            $err.FullyQualifiedErrorId | Should -BeLike 'AequorInvalidParameter*' -Because "-Name '$name'"
            $err.Exception.Message | Should -Match ([regex]::Escape("The session name '$name' holds a wildcard character"))
            $err.Exception.Message | Should -Match 'read -Name as a wildcard pattern, so no command could name this session alone\. Choose a name without them\.$'
        }
        Get-AequorSession | Should -BeNullOrEmpty
    }

    It 'refuses the database password as the coordination secret' {
        $err = $null
        $samePassword = $env:AEQUOR_TEST_APP_CONNECTION -replace '(?i)password=[^;]*', "Password=$TestSecretText"
        try { Connect-Aequor $samePassword -CoordinationSecret $TestSecret } catch { $err = $_ }
        $err.FullyQualifiedErrorId | Should -BeLike 'AequorInvalidParameter*'
        $err.Exception.Message | Should -Not -Match $TestSecretText
    }

    It 'a malformed URI names the problem without echoing the password' {
        $err = $null
        try { Connect-Aequor 'postgres://u:Sup3r-secret-pw@host:notaport/db' -CoordinationSecret $TestSecret } catch { $err = $_ }
        $err.FullyQualifiedErrorId | Should -BeLike 'AequorInvalidParameter*'
        $err.Exception.Message | Should -Match 'port'
        $err.Exception.Message | Should -Not -Match 'Sup3r-secret-pw'
    }

    It 'a port out of range, no host and Multiplexing are AequorInvalidParameter naming the setting, before any connect' {
        foreach ($case in @(
                @{ Text = 'Host=h;Port=99999;Password=Sup3r-secret-pw'; Says = 'port 99999' },
                @{ Text = 'postgres://u:Sup3r-secret-pw@/db'; Says = 'names no server' },
                @{ Text = 'Host=h;Multiplexing=true'; Says = 'Multiplexing is not supported' })) {
            $err = $null
            try { Connect-Aequor $case.Text -CoordinationSecret $TestSecret -Name badcs } catch { $err = $_ }
            $err.FullyQualifiedErrorId | Should -BeLike 'AequorInvalidParameter*' -Because $case.Text
            $err.Exception.Message | Should -Match $case.Says
            $err.Exception.Message | Should -Not -Match 'Sup3r-secret-pw'
        }
    }

    It 'never shows the secret or the password in output, verbose lines, errors or ToString()' {
        $Error.Clear()
        $verbose = Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION -CoordinationSecret $TestSecret -Name secretcheck -Verbose 4>&1
        $session = $verbose | Where-Object { $_ -is [Aequor.PowerShell.AequorSession] }
        $lines = $verbose | Where-Object { $_ -is [System.Management.Automation.VerboseRecord] } | ForEach-Object Message
        $lines | Should -Not -BeNullOrEmpty
        try { Invoke-AequorQuery 'SELECT * FROM no_such_table' -Session $session -ErrorAction Stop } catch { }
        $everything = @(
            $lines
            $session | ConvertTo-Json -Depth 3
            $session.ToString()
            $session | Format-List * | Out-String
            $Error | Out-String
            (Get-AequorLease -Session $session | ConvertTo-Json -Depth 3)
        ) -join "`n"
        $everything | Should -Not -Match ([regex]::Escape($TestSecretText))
        $everything | Should -Not -Match ([regex]::Escape($AppPassword))
        Disconnect-Aequor -Session $session
    }

    It 'refuses to replace a session inside the rows of a query on it (AequorSessionBusy); a new name connects' {
        $r = Invoke-InsideRows 'Connect-Aequor $Connection -LeaseMode Optional | Out-Null; (Connect-Aequor $Connection -LeaseMode Optional -Name "fresh$($_.g)").State'
        $r.Done | Should -BeTrue
        $r.Output | Should -Be @('1', 'Connected', '2', 'Connected', 'after:7')
        $r.Errors.Count | Should -Be 2
        $r.Errors[0].FullyQualifiedErrorId | Should -BeLike 'AequorSessionBusy*'
        "$($r.Errors[0])" | Should -Match "replacing it with a new session named 'default' would close it under that query\. Give the new session another name"
    }
}

Describe 'Connect-Aequor -HeartbeatErrorMode' {
    AfterAll {
        Disconnect-Aequor -All -Confirm:$false
    }

    It 'Throw: a renewal stuck on a frozen backend fails the statement unsent with AequorHeartbeatFailed; the next one reconnects' {
        # Every statement after the first 100 ms must wait for its renewal (1.9 s of a 2 s lease), which gets 300 ms.
        $s = Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION -CoordinationSecret $TestSecret -ServiceName (New-TestServiceName hb) -NoReaper `
            -LeaseTtlMs 2000 -HeartbeatSoftRemainingMs 1950 -HeartbeatHardWaitRemainingMs 1900 -HeartbeatTimeoutMs 300 -HeartbeatErrorMode Throw -Name hbthrow
        $frozen = $s.BackendPid
        & kill -0 $frozen 2>$null
        if ($LASTEXITCODE -ne 0) {
            Set-ItResult -Skipped -Because 'the test database''s backends are not on this machine or not ours to signal'
            return
        }
        Start-Sleep -Milliseconds 300
        & kill -STOP $frozen
        try {
            $e = $null
            Invoke-AequorQuery 'SELECT 2' -Session hbthrow -ErrorVariable e -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        } finally {
            & kill -CONT $frozen
        }
        $e.Count | Should -Be 1
        $e[0].FullyQualifiedErrorId | Should -BeLike 'AequorHeartbeatFailed*'
        $e[0].CategoryInfo.Category | Should -Be 'ResourceUnavailable'
        "$e" | Should -Match 'HeartbeatTimeoutMs \(300 ms\).*statement was not sent'
        $after = Invoke-AequorQuery 'SELECT pg_backend_pid()' -Session hbthrow -As Scalar
        $after | Should -Not -Be $frozen
        (Get-AequorSession hbthrow).BackendPid | Should -Be $after
    }
}
