BeforeAll {
    . (Join-Path $PSScriptRoot 'Aequor.TestHelpers.ps1')
    $null = Get-Observer
}

AfterAll {
    Disconnect-Aequor -All -Confirm:$false
}

Describe 'Get-AequorSession' {
    BeforeAll {
        $script:a = Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION -LeaseMode Optional -Name alpha
        $script:b = Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION -LeaseMode Optional -Name beta
    }

    It 'lists the runspace''s sessions in connect order, the last one the default' {
        $all = Get-AequorSession
        $all.Name | Should -Contain 'alpha'
        $all.Name | Should -Contain 'beta'
        [array]::IndexOf([string[]]$all.Name, 'alpha') | Should -BeLessThan ([array]::IndexOf([string[]]$all.Name, 'beta'))
        (Get-AequorSession -Default).Name | Should -Be 'beta'
        (Get-AequorSession -Name beta).IsDefault | Should -BeTrue
        (Get-AequorSession -Name alpha).IsDefault | Should -BeFalse
    }

    It 'finds by name, case-insensitively and with wildcards' {
        (Get-AequorSession -Name ALPHA).BackendPid | Should -Be $a.BackendPid
        (Get-AequorSession 'al*').Name | Should -Be 'alpha'
        @(Get-AequorSession -Name 'nomatch*').Count | Should -Be 0
    }

    It 'shows a session''s state with its open transaction in an 80-column table' {
        $s = Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION -LeaseMode Optional -Name tx-view
        Start-AequorTransaction -Session $s
        $null = Invoke-AequorQuery 'SELECT 1' -Session $s
        $table = Get-AequorSession -Name tx-view | Out-String -Width 80
        $table | Should -Match 'Connected \(tx\)'
        @($table -split "`r?`n") | ForEach-Object { $_.Length | Should -BeLessOrEqual 80 }
        Undo-AequorTransaction -Session $s
        Disconnect-Aequor -Session $s
    }

    It 'takes sessions from the pipeline by their name' {
        $s = Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION -LeaseMode Optional -Name piped-session
        ($s | Get-AequorSession).Name | Should -Be 'piped-session'
        ('piped-session' | Get-AequorSession).Name | Should -Be 'piped-session'
        Disconnect-Aequor -Session $s
    }

    It 'lists a session once however many names match it, so a pipe into Complete-AequorTransaction commits each once, without errors' {
        @(Get-AequorSession -Name 'al*', 'alpha', 'ALPHA', 'beta').Name | Should -Be @('alpha', 'beta')
        @('alpha', 'a*' | Get-AequorSession).Name | Should -Be @('alpha')
        Start-AequorTransaction -Session $a
        Start-AequorTransaction -Session $b
        $errs = $null
        Get-AequorSession -Name 'al*', 'b*', 'alpha', 'beta' | Complete-AequorTransaction -ErrorVariable errs -ErrorAction SilentlyContinue
        @($errs) | Should -HaveCount 0
        $a.InTransaction | Should -BeFalse
        $b.InTransaction | Should -BeFalse
    }

    It 'a name that is not there gives AequorSessionNotFound' {
        $errs = $null
        Get-AequorSession -Name nosuch -ErrorVariable errs -ErrorAction SilentlyContinue
        $errs[0].FullyQualifiedErrorId | Should -BeLike 'AequorSessionNotFound*'
    }

    It 'an invalid -Name pattern is that name''s AequorInvalidParameter error; the other names are still listed' {
        $errs = $null
        $found = Get-AequorSession -Name 'al[', beta -ErrorVariable errs -ErrorAction SilentlyContinue
        @($errs) | Should -HaveCount 1
        $errs[0].FullyQualifiedErrorId | Should -BeLike 'AequorInvalidParameter*'
        "$($errs[0])" | Should -Match ([regex]::Escape("-Name 'al[' is not a valid wildcard pattern"))
        @($found).Name | Should -Be @('beta')
        $errs = $null
        Get-AequorSession -Name 'be[' -Default -ErrorVariable errs -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        $errs[0].FullyQualifiedErrorId | Should -BeLike 'AequorInvalidParameter*'
    }

    It '-Session expands no wildcards and says so; completion takes a broken pattern and quotes what it offers' {
        $err = $null
        try { Start-AequorTransaction -Session 'al*' -ErrorAction Stop } catch { $err = $_ }
        "$err" | Should -Match "-Session takes one session's exact name and expands no wildcards"
        $err.FullyQualifiedErrorId | Should -BeLike 'AequorSessionNotFound,*'
        $err.CategoryInfo.Category | Should -Be 'ObjectNotFound'
        $a.InTransaction | Should -BeFalse
        (TabExpansion2 -inputScript 'Get-AequorSession -Name al[' -cursorColumn 'Get-AequorSession -Name al['.Length).CompletionMatches | Should -BeNullOrEmpty
        $odd = Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION -LeaseMode Optional -Name "x'ray"
        try {
            $text = (TabExpansion2 -inputScript 'Get-AequorSession -Name x' -cursorColumn 'Get-AequorSession -Name x'.Length).CompletionMatches.CompletionText
            $text | Should -Be @("'x''ray'")
            (Invoke-Expression "Get-AequorSession -Name $text").BackendPid | Should -Be $odd.BackendPid
        } finally {
            Disconnect-Aequor -Session $odd
        }
    }

    It 'completes -Name from the runspace''s sessions' {
        $completions = TabExpansion2 -inputScript 'Get-AequorSession -Name al' -cursorColumn 'Get-AequorSession -Name al'.Length
        $completions.CompletionMatches.CompletionText | Should -Contain 'alpha'
    }
}

Describe 'Sessions per runspace' {
    It 'two runspaces do not share sessions' {
        $mine = Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION -LeaseMode Optional -Name mine
        $ps = New-ModuleShell {
            param($ModulePath, $Connection)
            Import-Module $ModulePath
            $before = @(Get-AequorSession).Count
            $s = Connect-Aequor $Connection -LeaseMode Optional -Name theirs
            [pscustomobject]@{ Before = $before; Names = @(Get-AequorSession).Name; Pid = $s.BackendPid }
        }
        try {
            $theirs = $ps.Invoke()[0]
            $theirs.Before | Should -Be 0
            $theirs.Names | Should -Be @('theirs')
            (Get-AequorSession).Name | Should -Not -Contain 'theirs'
            (Get-AequorSession -Default).Name | Should -Be 'mine'
        } finally {
            $ps.Dispose()
        }
        # Closing the runspace closed its session.
        Wait-Until { -not (Get-Backend $theirs.Pid) } | Should -BeTrue
        Get-Backend $mine.BackendPid | Should -Not -BeNullOrEmpty
    }

    It 'ForEach-Object -Parallel runspaces see none of ours and leave no connection behind' {
        $null = Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION -LeaseMode Optional -Name outer
        $results = 1..3 | ForEach-Object -Parallel {
            Import-Module $env:AEQUOR_MODULE_PATH
            $seen = @(Get-AequorSession).Count
            $s = Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION -LeaseMode Optional -Name "par$_"
            [pscustomobject]@{ Seen = $seen; Pid = $s.BackendPid; Value = Invoke-AequorQuery 'SELECT $1::int' -Parameters $_ -As Scalar }
        } -ThrottleLimit 3
        $results.Seen | Should -Be @(0, 0, 0)
        ($results.Value | Sort-Object) | Should -Be @(1, 2, 3)
        (Get-AequorSession).Name | Should -Not -Contain 'par1'
        foreach ($p in $results.Pid) { Wait-Until { -not (Get-Backend $p) } | Should -BeTrue }
    }

    It 'a runspace ForEach-Object -Parallel reuses starts each iteration with no session, the earlier ones closed' {
        $results = 1..3 | ForEach-Object -Parallel {
            Import-Module $env:AEQUOR_MODULE_PATH
            $seen = @(Get-AequorSession).Count
            $s = Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION -LeaseMode Optional -Name "reused$_"
            [pscustomobject]@{ Seen = $seen; Pid = $s.BackendPid; Runspace = [runspace]::DefaultRunspace.Id }
        } -ThrottleLimit 1
        @($results.Runspace | Select-Object -Unique).Count | Should -Be 1 -Because 'ThrottleLimit 1 reuses one runspace'
        $results.Seen | Should -Be @(0, 0, 0)
        foreach ($p in $results.Pid) { Wait-Until { -not (Get-Backend $p) } | Should -BeTrue }
    }

    It 'a reused runspace warns that an earlier iteration''s open transaction was rolled back, and nothing of it is committed' {
        $table = "reuse_tx_$(Get-Random)"
        $null = Invoke-AequorQuery "CREATE TABLE $table (id int); GRANT ALL ON $table TO PUBLIC" -Session (Get-Observer)
        try {
            $results = 1..2 | ForEach-Object -Parallel {
                Import-Module $env:AEQUOR_MODULE_PATH
                $warnings = @(Get-AequorSession -WarningVariable w 3>$null; $w)
                $null = Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION -LeaseMode Optional -Name "iteration$_"
                if ($_ -eq 1) {
                    Start-AequorTransaction
                    Invoke-AequorQuery "INSERT INTO $using:table VALUES (1)"
                }
                [pscustomobject]@{ Warnings = @($warnings | ForEach-Object { "$_" }); Runspace = [runspace]::DefaultRunspace.Id }
            } -ThrottleLimit 1
            @($results.Runspace | Select-Object -Unique).Count | Should -Be 1 -Because 'ThrottleLimit 1 reuses one runspace'
            $results[0].Warnings.Count | Should -Be 0
            $results[1].Warnings | Should -HaveCount 1
            $results[1].Warnings[0] | Should -BeLike "Session 'iteration1' had an open transaction and was closed because an earlier script*rolled it back*"
            Invoke-AequorQuery "SELECT count(*) FROM $table" -As Scalar -Session (Get-Observer) | Should -Be 0
        } finally {
            $null = Invoke-AequorQuery "DROP TABLE IF EXISTS $table" -Session (Get-Observer)
        }
    }

    It 'a reused runspace''s -Session by name and name completion never reach an earlier iteration''s session' {
        $results = 1..2 | ForEach-Object -Parallel {
            Import-Module $env:AEQUOR_MODULE_PATH
            $r = [ordered]@{ Runspace = [runspace]::DefaultRunspace.Id }
            if ($_ -eq 1) {
                $r.Pid = (Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION -LeaseMode Optional -Name shared).BackendPid
                Start-AequorTransaction -Session shared
            } else {
                # Completion first: it must change nothing, and offer nothing of iteration 1.
                $r.Completion = @((TabExpansion2 -inputScript 'Get-AequorSession -Name sha' -cursorColumn 'Get-AequorSession -Name sha'.Length).CompletionMatches.CompletionText)
                $r.Bound = try { Undo-AequorTransaction -Session shared -ErrorAction Stop; 'bound' } catch { "$_" }
                $r.Seen = @(Get-AequorSession).Count
            }
            [pscustomobject]$r
        } -ThrottleLimit 1 3>&1
        $warnings = @($results | Where-Object { $_ -is [System.Management.Automation.WarningRecord] } | ForEach-Object { "$_" })
        $results = @($results | Where-Object { $_ -isnot [System.Management.Automation.WarningRecord] })
        @($results.Runspace | Select-Object -Unique).Count | Should -Be 1 -Because 'ThrottleLimit 1 reuses one runspace'
        $results[1].Completion | Should -BeNullOrEmpty
        $results[1].Bound | Should -Match "no Aequor session named 'shared'"
        $results[1].Seen | Should -Be 0
        # Closing it during the binding rolled back its transaction: the script hears of it, as from a cmdlet.
        $warnings | Should -HaveCount 1
        $warnings[0] | Should -BeLike "Session 'shared' had an open transaction and was closed because an earlier script*"
        Wait-Until { -not (Get-Backend $results[0].Pid) } | Should -BeTrue
    }

    It 'Remove-Module warns of each session whose open transaction it rolled back, SQL BEGIN blocks too' {
        $table = "remove_tx_$(Get-Random)"
        $null = Invoke-AequorQuery "CREATE TABLE $table (id int); GRANT ALL ON $table TO PUBLIC" -Session (Get-Observer)
        $ps = New-ModuleShell {
            param($ModulePath, $Connection, $Table)
            Import-Module $ModulePath
            $null = Connect-Aequor $Connection -LeaseMode Optional -Name managed
            $null = Connect-Aequor $Connection -LeaseMode Optional -Name sqlblock
            $null = Connect-Aequor $Connection -LeaseMode Optional -Name idle
            Start-AequorTransaction -Session managed
            Invoke-AequorQuery "INSERT INTO $Table VALUES (1)" -Session managed
            Invoke-AequorQuery 'BEGIN' -Session sqlblock
            Invoke-AequorQuery "INSERT INTO $Table VALUES (2)" -Session sqlblock
            Remove-Module Aequor
        } $table
        try {
            $null = $ps.Invoke()
            $ps.Streams.Error | Should -HaveCount 0
            @($ps.Streams.Warning) | Should -HaveCount 1
            "$($ps.Streams.Warning[0])" | Should -Be "Sessions 'managed', 'sqlblock' had open transactions and were closed because the module was removed: the server rolled them back, and nothing of them was committed."
            Invoke-AequorQuery "SELECT count(*) FROM $table" -As Scalar -Session (Get-Observer) | Should -Be 0
        } finally {
            $ps.Dispose()
            $null = Invoke-AequorQuery "DROP TABLE IF EXISTS $table" -Session (Get-Observer)
        }
    }

    It 'a script that ends with a transaction open warns that it was rolled back (unless $WarningPreference silences it, global or the script''s own); one that completed it says nothing' {
        . (Join-Path $PSScriptRoot 'Support/FreshPwsh.ps1')
        $table = "script_end_tx_$(Get-Random)"
        $null = Invoke-AequorQuery "CREATE TABLE $table (id int); GRANT ALL ON $table TO PUBLIC" -Session (Get-Observer)
        $script = @'
param($ModulePath, $Connection, $Table, $Complete, $Silence)
if ($Silence -eq 'yes') { $global:WarningPreference = 'SilentlyContinue' }
Import-Module $ModulePath
$null = Connect-Aequor $Connection -LeaseMode Optional -Name forgotten
Start-AequorTransaction
$null = Invoke-AequorQuery "INSERT INTO $Table VALUES (1)"
if ($Complete -eq 'yes') { Complete-AequorTransaction }
'script ended'
'@
        try {
            $open = Invoke-FreshPwsh -Script $script -ArgumentList $env:AEQUOR_MODULE_PATH, $env:AEQUOR_TEST_APP_CONNECTION, $table, 'no', 'no'
            $open.ExitCode | Should -Be 0 -Because (Format-FreshPwsh $open)
            $said = "$($open.Output)$($open.Error)"
            $said | Should -Match 'script ended' -Because (Format-FreshPwsh $open)
            $said | Should -Match ([regex]::Escape("Session 'forgotten' had an open transaction and was closed because the runspace closed (its script ended without Complete-AequorTransaction or Undo-AequorTransaction): the server rolled it back, and nothing of it was committed.")) -Because (Format-FreshPwsh $open)
            Invoke-AequorQuery "SELECT count(*) FROM $table" -As Scalar -Session (Get-Observer) | Should -Be 0

            # Written to the host (no pipeline runs in a closing runspace), yet a global $WarningPreference still silences it.
            $quiet = Invoke-FreshPwsh -Script $script -ArgumentList $env:AEQUOR_MODULE_PATH, $env:AEQUOR_TEST_APP_CONNECTION, $table, 'no', 'yes'
            $quiet.ExitCode | Should -Be 0 -Because (Format-FreshPwsh $quiet)
            "$($quiet.Output)$($quiet.Error)" | Should -Match 'script ended' -Because (Format-FreshPwsh $quiet)
            "$($quiet.Output)$($quiet.Error)" | Should -Not -Match 'open transaction' -Because (Format-FreshPwsh $quiet)
            Invoke-AequorQuery "SELECT count(*) FROM $table" -As Scalar -Session (Get-Observer) | Should -Be 0

            # A script run in a scope of its own (& ./job.ps1, pwsh -Command, a runbook; pwsh -File runs it in the global
            # scope): its own $WarningPreference, gone with its scope by the time the runspace closes, silences it too.
            $child = @'
param($ModulePath, $Connection, $Table)
& {
    $WarningPreference = 'SilentlyContinue'
    Import-Module $ModulePath
    $null = Connect-Aequor $Connection -LeaseMode Optional -Name forgotten
    Start-AequorTransaction
    $null = Invoke-AequorQuery "INSERT INTO $Table VALUES (1)"
    "script ended, global WarningPreference $global:WarningPreference"
}
'@
            $scoped = Invoke-FreshPwsh -Script $child -ArgumentList $env:AEQUOR_MODULE_PATH, $env:AEQUOR_TEST_APP_CONNECTION, $table
            $scoped.ExitCode | Should -Be 0 -Because (Format-FreshPwsh $scoped)
            "$($scoped.Output)$($scoped.Error)" | Should -Match 'script ended, global WarningPreference Continue' -Because (Format-FreshPwsh $scoped)
            "$($scoped.Output)$($scoped.Error)" | Should -Not -Match 'open transaction' -Because (Format-FreshPwsh $scoped)

            $done = Invoke-FreshPwsh -Script $script -ArgumentList $env:AEQUOR_MODULE_PATH, $env:AEQUOR_TEST_APP_CONNECTION, $table, 'yes', 'no'
            $done.ExitCode | Should -Be 0 -Because (Format-FreshPwsh $done)
            "$($done.Output)$($done.Error)" | Should -Not -Match 'open transaction' -Because (Format-FreshPwsh $done)
            Invoke-AequorQuery "SELECT count(*) FROM $table" -As Scalar -Session (Get-Observer) | Should -Be 1
        } finally {
            $null = Invoke-AequorQuery "DROP TABLE IF EXISTS $table" -Session (Get-Observer)
        }
    }

    It 'Remove-Module closes the runspace''s sessions' {
        $ps = New-ModuleShell {
            param($ModulePath, $Connection)
            Import-Module $ModulePath
            $s = Connect-Aequor $Connection -LeaseMode Optional -Name removed
            Remove-Module Aequor
            $s.BackendPid
            $s.State
        }
        try {
            $out = $ps.Invoke()
            $out[1] | Should -Be 'Closed'
            $ps.Streams.Warning | Should -HaveCount 0 -Because 'no transaction was open'
            Wait-Until { -not (Get-Backend $out[0]) } | Should -BeTrue
        } finally {
            $ps.Dispose()
        }
    }
}
