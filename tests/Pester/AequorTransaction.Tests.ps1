BeforeAll {
    . (Join-Path $PSScriptRoot 'Aequor.TestHelpers.ps1')
    $script:S = Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION -CoordinationSecret $TestSecret -ServiceName (New-TestServiceName tx)
    $null = Invoke-AequorQuery 'CREATE TABLE IF NOT EXISTS tx_rows (id int PRIMARY KEY)'
    $null = Invoke-AequorQuery 'TRUNCATE tx_rows'
}

AfterAll {
    Disconnect-Aequor -All -Confirm:$false
}

Describe 'Start-, Complete- and Undo-AequorTransaction' {
    It 'Complete-AequorTransaction commits what ran inside' {
        Start-AequorTransaction
        $S.InTransaction | Should -BeTrue
        $null = Invoke-AequorQuery 'INSERT INTO tx_rows VALUES (1), (2)'
        Complete-AequorTransaction
        $S.InTransaction | Should -BeFalse
        Invoke-AequorQuery 'SELECT count(*) FROM tx_rows WHERE id IN (1, 2)' -As Scalar | Should -Be 2
    }

    It 'Undo-AequorTransaction rolls it back' {
        Start-AequorTransaction -Session $S
        $null = Invoke-AequorQuery 'INSERT INTO tx_rows VALUES (10)'
        Invoke-AequorQuery 'SELECT count(*) FROM tx_rows WHERE id = 10' -As Scalar | Should -Be 1
        Undo-AequorTransaction -Session $S
        Invoke-AequorQuery 'SELECT count(*) FROM tx_rows WHERE id = 10' -As Scalar | Should -Be 0
    }

    It 'takes the session from the pipeline and passes it on with -PassThru' {
        $out = $S | Start-AequorTransaction -PassThru
        $out.Name | Should -Be $S.Name
        $S | Undo-AequorTransaction
        $S.InTransaction | Should -BeFalse
    }

    It 'a second Start gives AequorTransactionOpen; Complete or Undo without one gives AequorNoTransaction' {
        Start-AequorTransaction
        $errs = $null
        Start-AequorTransaction -ErrorVariable errs -ErrorAction SilentlyContinue
        $errs[0].FullyQualifiedErrorId | Should -BeLike 'AequorTransactionOpen*'
        Undo-AequorTransaction
        $errs = $null
        Complete-AequorTransaction -ErrorVariable errs -ErrorAction SilentlyContinue
        $errs[0].FullyQualifiedErrorId | Should -BeLike 'AequorNoTransaction*'
        $errs = $null
        Undo-AequorTransaction -ErrorVariable errs -ErrorAction SilentlyContinue
        $errs[0].FullyQualifiedErrorId | Should -BeLike 'AequorNoTransaction*'
    }

    It 'an error inside leaves the transaction to undo, and nothing of it is kept' {
        Start-AequorTransaction
        $null = Invoke-AequorQuery 'INSERT INTO tx_rows VALUES (20)'
        Invoke-AequorQuery 'INSERT INTO tx_rows VALUES (20)' -ErrorAction SilentlyContinue
        Undo-AequorTransaction
        Invoke-AequorQuery 'SELECT count(*) FROM tx_rows WHERE id = 20' -As Scalar | Should -Be 0
    }

    It 'a transaction an error aborted, or whose connection was lost, shows as failed on the session and in its view until it is ended' {
        $view = { param($Session) $Session | Format-Table | Out-String -Width 200 }
        Start-AequorTransaction
        $S.TransactionFailed | Should -BeFalse
        & $view $S | Should -Match 'Connected \(tx\)'
        Invoke-AequorQuery 'SELECT 1/0' -ErrorAction SilentlyContinue
        $S.InTransaction | Should -BeTrue
        $S.TransactionFailed | Should -BeTrue
        & $view $S | Should -Match 'Connected \(tx failed\)'
        Undo-AequorTransaction
        $S.TransactionFailed | Should -BeFalse
        & $view $S | Should -Not -Match '\(tx'

        # A BEGIN sent as SQL, aborted the same way.
        $null = Invoke-AequorQuery 'BEGIN'
        $S.TransactionFailed | Should -BeFalse
        Invoke-AequorQuery 'SELECT 1/0' -ErrorAction SilentlyContinue
        $S.TransactionFailed | Should -BeTrue
        $null = Invoke-AequorQuery 'ROLLBACK'
        $S.InTransaction | Should -BeFalse
        $S.TransactionFailed | Should -BeFalse

        # The backend terminated inside the transaction (by itself: an observer session would become the default).
        Start-AequorTransaction
        $null = Invoke-AequorQuery 'INSERT INTO tx_rows VALUES (40)'
        $errs = $null
        Invoke-AequorQuery 'SELECT pg_terminate_backend(pg_backend_pid())' -ErrorVariable errs -ErrorAction SilentlyContinue
        "$errs" | Should -Match 'inside a transaction'
        $S.InTransaction | Should -BeTrue
        $S.TransactionFailed | Should -BeTrue
        Undo-AequorTransaction
        $S.TransactionFailed | Should -BeFalse
        Invoke-AequorQuery 'SELECT count(*) FROM tx_rows WHERE id = 40' -As Scalar | Should -Be 0
    }

    It 'Complete after an error inside fails with AequorTransactionFailed, never "committed", and nothing is kept' {
        Start-AequorTransaction
        $null = Invoke-AequorQuery 'INSERT INTO tx_rows VALUES (30)'
        Invoke-AequorQuery 'INSERT INTO tx_rows VALUES (30)' -ErrorAction SilentlyContinue
        Invoke-AequorQuery 'INSERT INTO tx_rows VALUES (31)' -ErrorAction SilentlyContinue
        $err = $null
        $verbose = $null
        try { Complete-AequorTransaction -Verbose -ErrorAction Stop 4>&1 | Tee-Object -Variable verbose | Out-Null } catch { $err = $_ }
        $err.FullyQualifiedErrorId | Should -BeLike 'AequorTransactionFailed*'
        "$err" | Should -Match 'Nothing was committed: a statement failed inside the transaction \(23505'
        "$verbose" | Should -Not -Match 'committed'
        $S.InTransaction | Should -BeFalse
        Invoke-AequorQuery 'SELECT count(*) FROM tx_rows WHERE id IN (30, 31)' -As Scalar | Should -Be 0
        Invoke-AequorQuery 'SELECT 1' -As Scalar | Should -Be 1
    }

    It 'Select-Object -First on rows inside a transaction keeps the transaction: the commit keeps the writes before it' {
        # Enough rows that the statement is still running when Select-Object -First has its row.
        $big = 'SELECT g FROM generate_series(1, 3000000) g'
        Start-AequorTransaction
        $null = Invoke-AequorQuery 'INSERT INTO tx_rows VALUES (35)'
        (Invoke-AequorQuery $big | Select-Object -First 1).g | Should -Be 1
        $null = Invoke-AequorQuery 'INSERT INTO tx_rows VALUES (36)'
        Complete-AequorTransaction
        Invoke-AequorQuery 'SELECT count(*) FROM tx_rows WHERE id IN (35, 36)' -As Scalar | Should -Be 2

        # The same in a transaction opened in SQL.
        $null = Invoke-AequorQuery 'BEGIN'
        $null = Invoke-AequorQuery 'INSERT INTO tx_rows VALUES (37)'
        (Invoke-AequorQuery $big | Select-Object -First 2).g | Should -Be @(1, 2)
        $null = Invoke-AequorQuery 'COMMIT'
        Invoke-AequorQuery 'SELECT count(*) FROM tx_rows WHERE id = 37' -As Scalar | Should -Be 1

        # Outside a transaction the statement is still cancelled on the server at once.
        $sw = [Diagnostics.Stopwatch]::StartNew()
        (Invoke-AequorQuery 'SELECT generate_series(1, 100000000) AS g' | Select-Object -First 1).g | Should -Be 1
        $sw.ElapsedMilliseconds | Should -BeLessThan 5000
    }

    It 'a BEGIN sent in SQL makes the session one in a transaction: InTransaction, no Start on top, a warning at Disconnect' {
        $sql = Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION -LeaseMode Optional -Name sqlbegin
        $null = Invoke-AequorQuery 'BEGIN' -Session $sql
        $null = Invoke-AequorQuery 'INSERT INTO tx_rows VALUES (40)' -Session $sql
        $sql.InTransaction | Should -BeTrue
        $errs = $null
        Start-AequorTransaction -Session $sql -ErrorVariable errs -ErrorAction SilentlyContinue
        $errs[0].FullyQualifiedErrorId | Should -BeLike 'AequorTransactionOpen*'
        $warnings = $null
        Disconnect-Aequor -Session $sql -WarningVariable warnings -WarningAction SilentlyContinue
        "$($warnings[0])" | Should -Match 'had an open transaction'
        Invoke-AequorQuery 'SELECT count(*) FROM tx_rows WHERE id = 40' -As Scalar -Session $S | Should -Be 0
    }

    It 'Start-, Complete- and Undo-AequorTransaction inside the rows of a query on the same session fail at once with AequorSessionBusy' {
        foreach ($case in @{ Command = 'Start-AequorTransaction'; Setup = '' }, @{ Command = 'Complete-AequorTransaction'; Setup = 'Start-AequorTransaction' },
            @{ Command = 'Undo-AequorTransaction'; Setup = 'Start-AequorTransaction' }) {
            $r = Invoke-InsideRows $case.Command -Setup $case.Setup
            $r.Done | Should -BeTrue -Because "$($case.Command) must not wait for ever for the reader its own pipeline holds"
            $r.Output | Should -Be @('1', '2', 'after:7')
            $r.Errors.Count | Should -Be 2
            $r.Errors[0].FullyQualifiedErrorId | Should -BeLike 'AequorSessionBusy*'
            "$($r.Errors[0])" | Should -Match "$($case.Command) on it inside that pipeline would wait for ever\. .*To abandon it from inside, throw"
        }
    }
}

Describe 'The error of a refused commit' {
    It 'keeps the server''s facts on the AequorException, and holds no Npgsql or engine type' {
        $t = "tx_deferred_$(Get-Random)"
        $null = Invoke-AequorQuery "CREATE TABLE $t (id int CONSTRAINT ${t}_uq UNIQUE DEFERRABLE INITIALLY DEFERRED)" -Session $S
        try {
            Start-AequorTransaction -Session $S
            $null = Invoke-AequorQuery "INSERT INTO $t VALUES (1), (1)" -Session $S
            $err = $null
            try { Complete-AequorTransaction -Session $S } catch { $err = $_ }
            $err.FullyQualifiedErrorId | Should -BeLike 'AequorTransactionFailed*'
            $e = $err.Exception
            $e | Should -BeOfType 'Aequor.PowerShell.AequorException'
            $e.Message | Should -Match 'duplicate key value violates unique constraint'
            "$err" | Should -BeLike "Could not commit the transaction on session '$($S.Name)': the server refused the COMMIT and rolled the transaction back, so nothing of it was committed: 23505: duplicate key*" -Because 'the user must not have to guess whether the transaction is still open, or kept'
            $e.SqlState | Should -Be '23505'
            $e.ConstraintName | Should -Be "${t}_uq"
            $e.TableName | Should -Be $t
            $e.Detail | Should -BeNullOrEmpty -Because 'Npgsql withholds the DETAIL without Include Error Detail, and its advice is no fact of the server''s'
            "$err" | Should -Match 'Include Error Detail' -Because 'the message still says how to see it'
            # A user's own Npgsql could never match the module's private one, and $Error would keep it alive.
            for ($i = $e.InnerException; $i; $i = $i.InnerException) {
                $i.GetType().Assembly.GetName().Name | Should -Not -BeIn @('Npgsql', 'Aequor.Engine')
            }
            $S.InTransaction | Should -BeFalse
        } finally {
            $null = Invoke-AequorQuery "DROP TABLE IF EXISTS $t" -Session $S
        }
    }
}

Describe 'The DETAIL of a server error' {
    It 'is the server''s with Include Error Detail=true, and null without it' {
        $t = "detail_$(Get-Random)"
        $plain = Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION -LeaseMode Optional -Name "detail-plain"
        $detailed = Connect-Aequor "$env:AEQUOR_TEST_APP_CONNECTION;Include Error Detail=true" -LeaseMode Optional -Name "detail-on"
        try {
            $null = Invoke-AequorQuery "CREATE TABLE $t (id int PRIMARY KEY); INSERT INTO $t VALUES (7)" -Session $plain
            foreach ($case in @{ Session = $plain; Detail = $null }, @{ Session = $detailed; Detail = 'Key (id)=(7) already exists.' }) {
                $errs = $null
                $null = Invoke-AequorQuery "INSERT INTO $t VALUES (7)" -Session $case.Session -ErrorVariable errs -ErrorAction SilentlyContinue
                $errs[0].Exception.SqlState | Should -Be '23505'
                $errs[0].Exception.ConstraintName | Should -Be "${t}_pkey"
                $errs[0].Exception.Detail | Should -Be $case.Detail
            }
        } finally {
            $null = Invoke-AequorQuery "DROP TABLE IF EXISTS $t" -Session $plain
            Disconnect-Aequor -Session $plain, $detailed
        }
    }
}

# Each session piped in is one input: its wrong state or failed call is its error, and the sessions after it still get theirs.
Describe 'Transaction cmdlets over several piped sessions' {
    BeforeEach {
        $script:pa = Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION -LeaseMode Optional -Name pipe-a
        $script:pb = Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION -LeaseMode Optional -Name pipe-b
        $script:pc = Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION -LeaseMode Optional -Name pipe-c
        $script:Rows = { param($id) Invoke-AequorQuery 'SELECT count(*) FROM tx_rows WHERE id = $1' -Parameters @(, $id) -As Scalar -Session $S }
    }

    AfterEach {
        Disconnect-Aequor -Session $pa, $pb, $pc -WarningAction SilentlyContinue
    }

    It 'Undo over a, b, c where b has no transaction: one AequorNoTransaction for b, and c is still rolled back' {
        Start-AequorTransaction -Session $pa
        Start-AequorTransaction -Session $pc
        $null = Invoke-AequorQuery 'INSERT INTO tx_rows VALUES (50)' -Session $pc
        $errs = $null
        Get-AequorSession -Name 'pipe-*' | Undo-AequorTransaction -ErrorVariable errs -ErrorAction SilentlyContinue
        @($errs) | Should -HaveCount 1
        $errs[0].FullyQualifiedErrorId | Should -BeLike 'AequorNoTransaction*'
        $errs[0].TargetObject.Name | Should -Be 'pipe-b'
        $pa.InTransaction | Should -BeFalse
        $pc.InTransaction | Should -BeFalse
        & $Rows 50 | Should -Be 0
    }

    It 'Complete over b, c: b''s missing transaction is its error, and c is committed' {
        Start-AequorTransaction -Session $pc
        $null = Invoke-AequorQuery 'INSERT INTO tx_rows VALUES (51)' -Session $pc
        $errs = $null
        $out = $pb, $pc | Complete-AequorTransaction -PassThru -ErrorVariable errs -ErrorAction SilentlyContinue
        @($errs) | Should -HaveCount 1
        $errs[0].FullyQualifiedErrorId | Should -BeLike 'AequorNoTransaction*'
        $errs[0].TargetObject.Name | Should -Be 'pipe-b'
        @($out).Name | Should -Be @('pipe-c') -Because 'only the committed session is passed on'
        $pc.InTransaction | Should -BeFalse
        & $Rows 51 | Should -Be 1
        $null = Invoke-AequorQuery 'DELETE FROM tx_rows WHERE id = 51' -Session $S
    }

    It 'a commit that fails stops the command even under SilentlyContinue: nothing after it runs as if it had committed' {
        Start-AequorTransaction -Session $pa
        $null = Invoke-AequorQuery 'SELECT 1/0' -Session $pa -ErrorAction SilentlyContinue
        Start-AequorTransaction -Session $pc
        $null = Invoke-AequorQuery 'INSERT INTO tx_rows VALUES (52)' -Session $pc
        $caught = $null
        $after = $false
        try {
            $pa, $pc | Complete-AequorTransaction -ErrorAction SilentlyContinue
            $after = $true
        } catch { $caught = $_ }
        $after | Should -BeFalse
        $caught.FullyQualifiedErrorId | Should -BeLike 'AequorTransactionFailed*'
        "$caught" | Should -Match "Could not commit the transaction on session 'pipe-a'.*Nothing was committed"
        $pc.InTransaction | Should -BeTrue -Because 'the command stopped before it'
        Undo-AequorTransaction -Session $pc
        & $Rows 52 | Should -Be 0
    }

    It 'Start over a, b, c where a already has one: one AequorTransactionOpen for a, and b and c are started' {
        Start-AequorTransaction -Session $pa
        $errs = $null
        $pa, $pb, $pc | Start-AequorTransaction -ErrorVariable errs -ErrorAction SilentlyContinue
        @($errs) | Should -HaveCount 1
        $errs[0].FullyQualifiedErrorId | Should -BeLike 'AequorTransactionOpen*'
        $errs[0].TargetObject.Name | Should -Be 'pipe-a'
        $pb.InTransaction | Should -BeTrue
        $pc.InTransaction | Should -BeTrue
        $pa, $pb, $pc | Undo-AequorTransaction
    }

    It 'a $null piped in (a variable that holds no session) is its own AequorInvalidParameter error, never the default session; the sessions beside it are still served' {
        # pipe-c, connected last, is the default: a $null must not start, commit or roll back anything on it.
        $missing = @{}['no-such-key']
        $errs = $null
        $missing | Start-AequorTransaction -ErrorVariable errs -ErrorAction SilentlyContinue
        @($errs) | Should -HaveCount 1
        $errs[0].FullyQualifiedErrorId | Should -BeLike 'AequorInvalidParameter,*'
        "$($errs[0])" | Should -Match 'A \$null came through the pipeline where a session was expected'
        $pc.InTransaction | Should -BeFalse

        $errs = $null
        $pa, $null, $pb | Start-AequorTransaction -ErrorVariable errs -ErrorAction SilentlyContinue
        @($errs) | Should -HaveCount 1
        $pa.InTransaction, $pb.InTransaction, $pc.InTransaction | Should -Be @($true, $true, $false)

        Start-AequorTransaction -Session $pc
        $errs = $null
        $null | Complete-AequorTransaction -ErrorVariable errs -ErrorAction SilentlyContinue
        $null | Undo-AequorTransaction -ErrorVariable +errs -ErrorAction SilentlyContinue
        @($errs) | Should -HaveCount 2
        $pc.InTransaction | Should -BeTrue -Because 'neither $null reached the default session'

        # -Session $null, given, is the default session, as for every command: only the pipeline's $null is refused.
        Undo-AequorTransaction -Session $null
        $pc.InTransaction | Should -BeFalse
        $pa, $pb | Undo-AequorTransaction
    }

    It 'a closed session piped in is its own AequorSessionClosed error; the next session is still served' {
        Start-AequorTransaction -Session $pc
        Disconnect-Aequor -Session $pb
        $errs = $null
        $pb, $pc | Undo-AequorTransaction -ErrorVariable errs -ErrorAction SilentlyContinue
        @($errs) | Should -HaveCount 1
        $errs[0].FullyQualifiedErrorId | Should -BeLike 'AequorSessionClosed*'
        $pc.InTransaction | Should -BeFalse
    }

    It 'a session closed elsewhere with its transaction open: Complete stops the command saying nothing was committed; Undo and a query say so too' {
        $t = Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION -LeaseMode Optional -Name closed-elsewhere
        $idle = Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION -LeaseMode Optional -Name closed-idle
        Start-AequorTransaction -Session $t
        $null = Invoke-AequorQuery 'INSERT INTO tx_rows VALUES (53)' -Session $t
        # Another runspace holding the session object closes it: its warning goes there, not to this script.
        $module = $env:AEQUOR_MODULE_PATH
        1 | ForEach-Object -Parallel { Import-Module $using:module; Disconnect-Aequor -Session $using:t, $using:idle -WarningAction SilentlyContinue }
        $t.State | Should -Be 'Closed'
        & $Rows 53 | Should -Be 0

        $caught = $null
        $after = $false
        try {
            Complete-AequorTransaction -Session $t -ErrorAction SilentlyContinue
            $after = $true
        } catch { $caught = $_ }
        $after | Should -BeFalse -Because 'a commit that cannot happen stops the script, as a failed COMMIT does'
        $caught.FullyQualifiedErrorId | Should -BeLike 'AequorSessionClosed*'
        "$caught" | Should -Be "The session 'closed-elsewhere' is closed, and the transaction that was open on it when it closed was rolled back by the server: nothing of it was committed. Connect again with Connect-Aequor and run the transaction again."

        $errs = $null
        Undo-AequorTransaction -Session $t -ErrorVariable errs -ErrorAction SilentlyContinue
        "$($errs[0])" | Should -BeLike '*rolled back by the server: nothing of it was committed*'
        { Invoke-AequorQuery 'SELECT 1' -Session $t -ErrorAction Stop } | Should -Throw '*rolled back by the server: nothing of it was committed*'

        # Closed with no transaction open: nothing was lost, and Complete stays that session's own error.
        $errs = $null
        Complete-AequorTransaction -Session $idle -ErrorVariable errs -ErrorAction SilentlyContinue
        "$($errs[0])" | Should -Be "The session 'closed-idle' is closed; connect again with Connect-Aequor."
    }

    It 'with no session at all the command stops: a terminating AequorNoSession' {
        $ps = New-ModuleShell { param($ModulePath) Import-Module $ModulePath; try { Undo-AequorTransaction; 'went on' } catch { $_.FullyQualifiedErrorId } }
        try {
            $out = $ps.Invoke()
            @($out) | Should -HaveCount 1
            "$($out[0])" | Should -BeLike 'AequorNoSession*'
        } finally {
            $ps.Dispose()
        }
    }
}

Describe 'Ctrl+C during Complete-AequorTransaction' {
    It 'stops the commit on the server: nothing is kept, and the session goes on in the same connection' {
        # A deferred constraint trigger makes the COMMIT itself take 3 s: the stop lands inside it.
        $table = 'tx_slow_' + [guid]::NewGuid().ToString('N').Substring(0, 8)
        $null = Invoke-AequorQuery -Session $S @"
CREATE TABLE $table (id int PRIMARY KEY);
CREATE FUNCTION ${table}_wait() RETURNS trigger LANGUAGE plpgsql AS `$`$ BEGIN PERFORM pg_sleep(3); RETURN NULL; END `$`$;
CREATE CONSTRAINT TRIGGER ${table}_slow AFTER INSERT ON $table DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ${table}_wait();
"@
        $ps = New-ModuleShell {
            param($ModulePath, $Connection, $Table)
            Import-Module $ModulePath
            $global:session = Connect-Aequor $Connection -LeaseMode Optional
            Start-AequorTransaction
            $null = Invoke-AequorQuery "INSERT INTO $Table VALUES (1)"
            $global:pid1 = $global:session.BackendPid
            Complete-AequorTransaction
            'completed'
        } $table
        try {
            $handle = $ps.BeginInvoke()
            # The COMMIT is running once the backend waits in pg_sleep.
            Wait-Until { (Invoke-AequorQuery -Session $S -As Scalar "SELECT count(*) FROM pg_stat_activity WHERE query = 'COMMIT' AND wait_event = 'PgSleep'") -gt 0 } -TimeoutMs 15000 | Should -BeTrue
            $stop = [Diagnostics.Stopwatch]::StartNew()
            $ps.Stop()
            $stop.Elapsed.TotalSeconds | Should -BeLessThan 2.5 -Because 'the stop cancels the COMMIT on the server instead of waiting out its 3 s'
            $ps.InvocationStateInfo.State | Should -Be 'Stopped'
            $handle.IsCompleted | Should -BeTrue
            Invoke-AequorQuery -Session $S -As Scalar "SELECT count(*) FROM $table" | Should -Be 0 -Because 'a cancelled COMMIT rolls the transaction back'

            $ps.Commands.Clear()
            $null = $ps.AddScript({ $global:session.State; $global:session.InTransaction; Invoke-AequorQuery 'SELECT 7' -As Scalar; $global:session.BackendPid -eq $global:pid1; $global:session.Reconnects })
            $after = @($ps.Invoke() | ForEach-Object { "$_" })
            $after | Should -Be @('Connected', 'False', '7', 'True', '0')
        } finally {
            $ps.Dispose()
            $null = Invoke-AequorQuery -Session $S "DROP TABLE IF EXISTS $table; DROP FUNCTION IF EXISTS ${table}_wait()"
        }
    }
}

Describe 'Transaction cmdlets racing on one session from two runspaces' {
    BeforeAll {
        # Runs $Command on $Session here and in another runspace at once, while a third runspace holds the session in a
        # 2 s statement: both look at the session before either gets its turn, as two scripts racing do. Returns what
        # each ended with: 'done', or the FullyQualifiedErrorId of its error (terminating or not).
        function script:Invoke-Race([object] $Session, [string] $Command) {
            $run = "param(`$Session) try { $Command -Session `$Session -ErrorVariable e -ErrorAction SilentlyContinue; if (`$e) { `$e[0].FullyQualifiedErrorId } else { 'done' } } catch { `$_.FullyQualifiedErrorId }"
            $shells = foreach ($i in 1, 2) {
                $ps = [powershell]::Create()
                $null = $ps.AddScript('param($m) Import-Module $m').AddArgument($env:AEQUOR_MODULE_PATH).Invoke()
                $ps.Commands.Clear()
                $ps
            }
            $holder, $rival = $shells
            try {
                $null = $holder.AddScript('param($Session) Invoke-AequorQuery -Session $Session -As NonQuery "SELECT pg_sleep(2)"').AddArgument($Session)
                $held = $holder.BeginInvoke()
                Wait-Until { (Get-Backend $Session.BackendPid).query -like '*pg_sleep*' } | Should -BeTrue
                $null = $rival.AddScript($run).AddArgument($Session)
                $rivalRun = $rival.BeginInvoke()
                $mine = & ([scriptblock]::Create($run)) $Session
                $rivalRun.AsyncWaitHandle.WaitOne(20000) | Should -BeTrue
                $null = $held.AsyncWaitHandle.WaitOne(20000)
                @("$mine") + @($rival.EndInvoke($rivalRun) | ForEach-Object { "$_" })
            } finally {
                $holder.Dispose()
                $rival.Dispose()
            }
        }
        $script:R = Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION -LeaseMode Optional -Name racing
    }

    It 'two Starts: one begins the transaction, the other gets AequorTransactionOpen as a second Start does' {
        $outcomes = Invoke-Race $R 'Start-AequorTransaction'
        $outcomes | Should -HaveCount 2
        @($outcomes | Where-Object { $_ -eq 'done' }) | Should -HaveCount 1
        @($outcomes | Where-Object { $_ -ne 'done' }) | Should -BeLike 'AequorTransactionOpen*'
        $R.InTransaction | Should -BeTrue
    }

    It 'two Undos: one rolls back, the other gets AequorNoTransaction as an Undo without one does' {
        $R.InTransaction | Should -BeTrue
        $outcomes = Invoke-Race $R 'Undo-AequorTransaction'
        @($outcomes | Where-Object { $_ -eq 'done' }) | Should -HaveCount 1
        @($outcomes | Where-Object { $_ -ne 'done' }) | Should -BeLike 'AequorNoTransaction*'
        $R.InTransaction | Should -BeFalse
    }
}
