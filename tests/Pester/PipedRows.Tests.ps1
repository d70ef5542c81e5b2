# Rows piped into a statement: Import-Csv users.csv | Invoke-AequorQuery 'UPDATE users SET email = @email WHERE id = @id'.
BeforeAll {
    . (Join-Path $PSScriptRoot 'Aequor.TestHelpers.ps1')
    $null = Get-Observer
    $script:P = Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION -LeaseMode Optional -Name piped
    Invoke-AequorQuery -Session $P 'DROP TABLE IF EXISTS piped_users; CREATE TABLE piped_users (id int PRIMARY KEY, email text, n int)'

    function Get-Users { Invoke-AequorQuery -Session $P 'SELECT id, email, n FROM piped_users ORDER BY id' }
    function New-Row([int] $Id, [string] $Email = "u$Id@example.org") { [pscustomobject]@{ id = $Id; email = $Email } }
}

AfterAll {
    Invoke-AequorQuery -Session $P 'DROP TABLE IF EXISTS piped_users'
    Disconnect-Aequor -All -Confirm:$false
}

Describe 'Invoke-AequorQuery with rows piped into a statement' {
    BeforeEach {
        Invoke-AequorQuery -Session $P 'TRUNCATE piped_users'
    }

    It 'runs the statement once per row, in order, on the one session, binding each row as -Parameters does (CSV, hashtable, DataRow)' {
        $queries = $P.Queries
        $csv = 'Id,Email,Unused', '1,a@example.org,x', '2,b@example.org,y'
        $written = $csv | ConvertFrom-Csv | Invoke-AequorQuery -Session $P -As NonQuery 'INSERT INTO piped_users (id, email, n) VALUES (@id::int, @email, (SELECT count(*) FROM piped_users))'
        $written | Should -Be @(1, 1)
        $P.Queries - $queries | Should -Be 2 -Because 'one statement per row, no more'
        # n is how many rows were there before each: the rows ran in order.
        (Get-Users).n | Should -Be @(0, 1)

        @{ id = 3; email = 'c@example.org' } | Invoke-AequorQuery -Query 'INSERT INTO piped_users (id, email) VALUES (@id, @email)' -Session $P
        $table = Invoke-AequorQuery -Session $P -As DataTable "SELECT 4 AS id, 'd@example.org' AS email UNION ALL SELECT 5, NULL"
        $table | Invoke-AequorQuery 'INSERT INTO piped_users (id, email) VALUES (@id, @email)' -Session $P
        $back = Get-Users
        $back.id | Should -Be @(1, 2, 3, 4, 5)
        $back[4].email | Should -BeNullOrEmpty

        # UPDATE and DELETE per row; -As Scalar and the default rows, per row as per call.
        New-Row 1 'new@example.org' | Invoke-AequorQuery 'UPDATE piped_users SET email = @email WHERE id = @id' -Session $P
        (Get-Users)[0].email | Should -Be 'new@example.org'
        (1, 2 | ForEach-Object { @{ id = $_ } } | Invoke-AequorQuery 'SELECT email FROM piped_users WHERE id = @id' -Session $P -As Scalar) | Should -Be @('new@example.org', 'b@example.org')
        $rows = 4, 5 | ForEach-Object { @{ id = $_ } } | Invoke-AequorQuery 'DELETE FROM piped_users WHERE id = @id RETURNING id AS gone' -Session $P
        $rows.gone | Should -Be @(4, 5)
        (Get-Users).id | Should -Be @(1, 2, 3)

        # No rows, no statement.
        $queries = $P.Queries
        @() | Invoke-AequorQuery 'DELETE FROM piped_users' -Session $P
        $P.Queries | Should -Be $queries
        (Get-Users).Count | Should -Be 3
    }

    It 'keeps what the pipeline did without a statement given: text runs as SQL, a file binds -LiteralPath, a row is refused naming the new form' {
        'SELECT 41 + 1', 'SELECT 43' | Invoke-AequorQuery -Session $P -As Scalar | Should -Be @(42, 43)
        $file = Join-Path $TestDrive 'seven.sql'
        Set-Content $file 'SELECT 7'
        Get-Item $file | Invoke-AequorQuery -Session $P -As Scalar | Should -Be 7
        Get-ChildItem $TestDrive -Filter *.sql | Select-Object PSPath | Invoke-AequorQuery -Session $P -As Scalar | Should -Be 7

        # A row with no statement: an error saying how, never a prompt for -Query (the Pester host is non-interactive, where a prompt is a missing-parameter error).
        $queries = $P.Queries
        New-Row 1 | Invoke-AequorQuery -Session $P -ErrorVariable e -ErrorAction SilentlyContinue
        $e.Count | Should -Be 1
        $e[0].FullyQualifiedErrorId | Should -BeLike 'ParameterArgumentTransformationError*'
        "$($e[0])" | Should -Match "-Query takes SQL text, and this is an object \(a row\): nothing was sent\. To run a statement once per piped row, .* give the statement: \.\.\. \| Invoke-AequorQuery 'INSERT"
        $P.Queries | Should -Be $queries
    }

    It 'refuses -Parameters beside piped rows, and text or a non-row object piped beside a statement; nothing is sent and a transaction goes on' {
        Start-AequorTransaction -Session $P
        try {
            Invoke-AequorQuery -Session $P 'INSERT INTO piped_users (id) VALUES (100)'
            $queries = $P.Queries
            $err = $null
            try { New-Row 1 | Invoke-AequorQuery 'INSERT INTO piped_users (id, email) VALUES (@id, @email)' -Parameters @{ id = 2 } -Session $P } catch { $err = $_ }
            $err.FullyQualifiedErrorId | Should -BeLike 'AequorInvalidParameter*'
            "$err" | Should -BeLike '-Parameters was given, and rows are piped in*Nothing was sent.'
            $err = $null
            try { New-Row 1 | Invoke-AequorQuery 'INSERT INTO piped_users (id, email) VALUES (@id, @email)' @{ id = 2 } -Session $P } catch { $err = $_ }
            "$err" | Should -BeLike '-Parameters was given, and rows are piped in*'

            $err = $null
            try { 'DELETE FROM piped_users' | Invoke-AequorQuery 'SELECT 1' -Session $P } catch { $err = $_ }
            $err.FullyQualifiedErrorId | Should -BeLike 'AequorInvalidParameter*'
            "$err" | Should -BeLike "Row 1 of the input is a string, not a row: -Query is given*Nothing was sent for it. To run piped SQL text, leave -Query out*"
            $err = $null
            try { Get-Item $PSCommandPath | Invoke-AequorQuery 'SELECT @name' -Session $P } catch { $err = $_ }
            "$err" | Should -BeLike 'Row 1 of the input is of type FileInfo, not a row*Select-Object*'

            $P.Queries | Should -Be $queries -Because 'nothing was sent'
            $P.InTransaction | Should -BeTrue
            (Get-Users).id | Should -Be 100
        } finally {
            Undo-AequorTransaction -Session $P
        }
    }

    It 'runs a -File once per piped row; -LiteralPath takes no rows and sends nothing' {
        $file = Join-Path $TestDrive 'upsert.sql'
        Set-Content $file "INSERT INTO piped_users (id, email) VALUES (@id, @email)`nON CONFLICT (id) DO UPDATE SET email = EXCLUDED.email"
        New-Row 1 'old@example.org' | Invoke-AequorQuery -Session $P -File $file
        (New-Row 1), (New-Row 2) | Invoke-AequorQuery -Session $P -File $file -As NonQuery | Should -Be @(1, 1)
        (Get-Users).email | Should -Be @('u1@example.org', 'u2@example.org')

        $queries = $P.Queries
        New-Row 3 | Invoke-AequorQuery -Session $P -LiteralPath $file -ErrorVariable e -ErrorAction SilentlyContinue
        $e[0].FullyQualifiedErrorId | Should -BeLike 'InputObjectNotBound*'
        $P.Queries | Should -Be $queries
    }

    It 'a failing row is a non-terminating error naming its number, never its values; the rows after it run; -ErrorAction Stop stops there' {
        $rows = (New-Row 1 'first-secret@example.org'), (New-Row 1 'second-secret@example.org'), (New-Row 3 'third-secret@example.org')
        $verbose = $rows | Invoke-AequorQuery 'INSERT INTO piped_users (id, email) VALUES (@id, @email)' -Session $P -Verbose -ErrorVariable e -ErrorAction SilentlyContinue 4>&1
        $e.Count | Should -Be 1
        $e[0].FullyQualifiedErrorId | Should -BeLike 'AequorQueryFailed*'
        $e[0].Exception.SqlState | Should -Be '23505'
        "$($e[0])" | Should -BeLike "Row 2 of the input: the query on session 'piped' failed: *duplicate key*"
        (Get-Users).id | Should -Be @(1, 3)
        $said = ($verbose | ForEach-Object Message) -join "`n"
        $said | Should -Match "running 'INSERT INTO piped_users .*' for row 3\."
        "$said`n$($e[0])`n$($e[0].Exception.Message)`n$($e[0].TargetObject)" | Should -Not -Match 'secret'

        Invoke-AequorQuery -Session $P 'TRUNCATE piped_users'
        $err = $null
        try { $rows | Invoke-AequorQuery 'INSERT INTO piped_users (id, email) VALUES (@id, @email)' -Session $P -ErrorAction Stop } catch { $err = $_ }
        "$err" | Should -BeLike 'Row 2 of the input: *duplicate key*'
        (Get-Users).id | Should -Be 1 -Because 'the pipeline stopped at row 2'
    }

    It 'a row whose value cannot be sent is that row''s error, naming the property but not the value; the others run' {
        $secret = ConvertTo-SecureString 'hunter2-never-shown' -AsPlainText -Force
        $rows = @(
            (New-Row 1)
            [pscustomobject]@{ id = 2; email = [pscustomobject]@{ nested = 'x' } }
            [pscustomobject]@{ id = 3; email = $secret }
            [pscustomobject]@{ id = 4; email = [DayOfWeek]::Friday }
            @{ id = 5; email = @{ deep = 1 } }
            [pscustomobject]@{ id = 6; mail = 'typo' }
            (New-Row 7)
        )
        $rows | Invoke-AequorQuery 'INSERT INTO piped_users (id, email) VALUES (@id, @email)' -Session $P -ErrorVariable e -ErrorAction SilentlyContinue
        $e.Count | Should -Be 5
        $e[0..3].FullyQualifiedErrorId | Should -BeLike 'AequorInvalidParameter*'
        "$($e[0])" | Should -BeLike "Row 2 of the input was refused (nothing was sent for it): its property 'email' is itself an object*"
        "$($e[1])" | Should -BeLike "Row 3 of the input was refused (nothing was sent for it): its property 'email' holds a SecureString or PSCredential*"
        "$($e[2])" | Should -BeLike "Row 4 of the input was refused*its property 'email' holds a value of the enum ``[DayOfWeek``]*"
        "$($e[3])" | Should -BeLike "Row 5 of the input was refused*its property 'email' holds a nested hashtable*"
        "$($e[4])" | Should -BeLike "Row 6 of the input: the query on session 'piped' failed*The statement uses @email, but row 6 of the input has no property email (it has: id, mail).*"
        ($e | Out-String) | Should -Not -Match 'hunter2|Friday|deep|typo'
        (Get-Users).id | Should -Be @(1, 7)
    }

    It 'says that $1-style placeholders get nothing from a piped row' {
        @{ id = 5 } | Invoke-AequorQuery 'SELECT $1::int' -Session $P -ErrorVariable e -ErrorAction SilentlyContinue
        # Refused once for the statement, before any row is sent: the server's 08P01 would drop the connection.
        $e.Count | Should -Be 1
        "$($e[0])" | Should -BeLike 'The statement uses placeholders up to $1, but nothing binds them. A piped row binds @name placeholders by its property names; $1-style ones get nothing from it: write @id in the statement. Nothing was sent.'
        Invoke-AequorQuery 'SELECT 1' -Session $P -As Scalar | Should -Be 1
    }

    It 'applies -CommandTimeout to every row: the slow one times out, the others run' {
        $out = 0, 30, 0 | ForEach-Object { @{ s = $_ } } | Invoke-AequorQuery 'SELECT pg_sleep(@s::float8), @s::int AS s' -Session $P -CommandTimeout 2 -ErrorVariable e -ErrorAction SilentlyContinue
        $out.s | Should -Be @(0, 0)
        $e.Count | Should -Be 1
        "$($e[0])" | Should -BeLike 'Row 2 of the input:*'
        $e[0].CategoryInfo.Category | Should -Be 'OperationTimeout'
    }
}

Describe 'Invoke-AequorQuery with rows piped inside a transaction' {
    BeforeEach {
        Invoke-AequorQuery -Session $P 'TRUNCATE piped_users'
    }

    It 'joins every row to the transaction: Complete-AequorTransaction keeps them all, Undo-AequorTransaction none' {
        Start-AequorTransaction -Session $P
        1..3 | ForEach-Object { New-Row $_ } | Invoke-AequorQuery 'INSERT INTO piped_users (id, email) VALUES (@id, @email)' -Session $P
        Undo-AequorTransaction -Session $P
        (Get-Users) | Should -BeNullOrEmpty

        Start-AequorTransaction -Session $P
        1..3 | ForEach-Object { New-Row $_ } | Invoke-AequorQuery 'INSERT INTO piped_users (id, email) VALUES (@id, @email)' -Session $P
        Complete-AequorTransaction -Session $P
        (Get-Users).id | Should -Be @(1, 2, 3)
    }

    It 'stops sending at the first failing row, which aborted the transaction, and says how many were not sent; undone, nothing is written' {
        Start-AequorTransaction -Session $P
        try {
            $queries = $P.Queries
            (New-Row 1), (New-Row 1), (New-Row 3), (New-Row 4) |
                Invoke-AequorQuery 'INSERT INTO piped_users (id, email) VALUES (@id, @email)' -Session $P -ErrorVariable e -ErrorAction SilentlyContinue
            $e.Count | Should -Be 2
            "$($e[0])" | Should -BeLike "Row 2 of the input: the query on session 'piped' failed: *duplicate key*"
            $e[1].FullyQualifiedErrorId | Should -BeLike 'AequorQueryFailed*'
            "$($e[1])" | Should -BeLike "Rows 3 to 4 of the input (2) were not sent: row 2 failed inside the transaction on session 'piped'*Undo-AequorTransaction*"
            $P.Queries - $queries | Should -Be 2 -Because 'rows 3 and 4 would only get 25P02'
        } finally {
            Undo-AequorTransaction -Session $P
        }

        (Get-Users) | Should -BeNullOrEmpty
        New-Row 9 | Invoke-AequorQuery 'INSERT INTO piped_users (id, email) VALUES (@id, @email)' -Session $P
        (Get-Users).id | Should -Be 9
    }

    It 'a row refused before it is sent does not stop the rows after it: the transaction was not aborted' {
        Start-AequorTransaction -Session $P
        (New-Row 1), [pscustomobject]@{ id = 2; email = [pscustomobject]@{ x = 1 } }, (New-Row 3) |
            Invoke-AequorQuery 'INSERT INTO piped_users (id, email) VALUES (@id, @email)' -Session $P -ErrorVariable e -ErrorAction SilentlyContinue
        $e.Count | Should -Be 1
        Complete-AequorTransaction -Session $P
        (Get-Users).id | Should -Be @(1, 3)
    }
}

Describe 'Invoke-AequorQuery with rows piped in: the connection lost while row 3 runs' {
    BeforeAll {
        # Each row's statement takes the next number of piped_sends once it is past the gate: a row sent again, or an
        # earlier row re-run, takes another. Row 3 waits at the gate on an advisory lock the killer holds, and the
        # killer terminates the backend waiting there (once), then lets go.
        Invoke-AequorQuery -Session $P @'
DROP SEQUENCE IF EXISTS piped_sends;
CREATE SEQUENCE piped_sends;
CREATE OR REPLACE FUNCTION piped_gate(id int, gate int) RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
    IF id = gate THEN PERFORM pg_advisory_xact_lock(7370, 3); END IF;
    RETURN nextval('piped_sends');
END $$;
'@
        $script:Insert = 'INSERT INTO piped_users (id, email, n) VALUES (@id, @email, piped_gate(@id, 3)) ON CONFLICT (id) DO NOTHING'

        # A thread job holding the advisory lock (7370, 3) on a superuser session of its own: it terminates the first
        # backend it blocks, waits until that backend is gone, then lets go. Returns once the lock is held.
        function Start-RowKiller {
            $job = Start-ThreadJob -ArgumentList $env:AEQUOR_MODULE_PATH, $env:AEQUOR_TEST_CONNECTION {
                param($ModulePath, $Connection)
                Import-Module $ModulePath
                $o = Connect-Aequor $Connection -LeaseMode Optional -Name "killer-$([Guid]::NewGuid().ToString('N').Substring(0, 6))"
                try {
                    $null = Invoke-AequorQuery 'SELECT pg_advisory_lock(7370, 3)' -Session $o
                    'locked'
                    $sw = [Diagnostics.Stopwatch]::StartNew()
                    $victim = $null
                    while (-not $victim -and $sw.ElapsedMilliseconds -lt 20000) {
                        Start-Sleep -Milliseconds 50
                        $victim = Invoke-AequorQuery 'SELECT pid FROM pg_stat_activity WHERE pg_backend_pid() = ANY(pg_blocking_pids(pid)) LIMIT 1' -Session $o -As Scalar
                    }
                    if ($victim) {
                        $null = Invoke-AequorQuery 'SELECT pg_terminate_backend($1)' @(, $victim) -Session $o
                        while ((Invoke-AequorQuery 'SELECT count(*) FROM pg_stat_activity WHERE pid = $1' @(, $victim) -Session $o -As Scalar) -gt 0 -and $sw.ElapsedMilliseconds -lt 30000) {
                            Start-Sleep -Milliseconds 20
                        }
                        "killed $victim"
                    }
                } finally {
                    Disconnect-Aequor -Session $o -Confirm:$false
                }
            }
            $locked = Wait-Until { @(Receive-Job $job -Keep) -contains 'locked' } -TimeoutMs 20000
            $locked | Should -BeTrue -Because 'the killer holds the gate before the rows are piped'
            $job
        }

        function Get-Sends { Invoke-AequorQuery -Session $P -As Scalar 'SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM piped_sends' }
        function New-Rows { 1..5 | ForEach-Object { New-Row $_ "secret-$_@example.org" } }
    }

    BeforeEach {
        Invoke-AequorQuery -Session $P 'TRUNCATE piped_users; SELECT setval(''piped_sends'', 1, false)'
        $script:S = Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION -LeaseMode Optional -Name "lost-$([Guid]::NewGuid().ToString('N').Substring(0, 6))"
    }

    AfterEach {
        Disconnect-Aequor -Session $S -Confirm:$false
        Get-Job | Remove-Job -Force
    }

    It 'with -Idempotent, row 3 is sent again on a fresh connection: every row lands once, no earlier row runs again, no error' {
        $killer = Start-RowKiller
        $old = $S.BackendPid
        New-Rows | Invoke-AequorQuery $Insert -Session $S -Idempotent -ErrorVariable e -WarningVariable w -WarningAction SilentlyContinue
        $killed = $killer | Wait-Job -Timeout 30 | Receive-Job
        $killed | Should -Contain "killed $old" -Because 'row 3 was cut off on the first connection'
        $e.Count | Should -Be 0
        @($w | Where-Object Message -Match 'retrying a statement').Count | Should -Be 1
        $S.BackendPid | Should -Not -Be $old
        $rows = Invoke-AequorQuery -Session $P 'SELECT id, count(*) AS c, min(n) AS n FROM piped_users GROUP BY id ORDER BY id'
        $rows.id | Should -Be @(1, 2, 3, 4, 5)
        $rows.c | Should -Be @(1, 1, 1, 1, 1)
        # Past the gate once each: row 3's first send died waiting at it, its second took number 3.
        $rows.n | Should -Be @(1, 2, 3, 4, 5)
        Get-Sends | Should -Be 5 -Because 'rows 1 and 2 were not run again, nor row 3 twice past the gate'
    }

    It 'without -Idempotent, row 3 is an outcome-unknown error naming the row, not its values; rows 4 and 5 run on a fresh connection' {
        $killer = Start-RowKiller
        $old = $S.BackendPid
        New-Rows | Invoke-AequorQuery $Insert -Session $S -As NonQuery -ErrorVariable e -ErrorAction SilentlyContinue | Should -Be @(1, 1, 1, 1)
        $killed = $killer | Wait-Job -Timeout 30 | Receive-Job
        $killed | Should -Contain "killed $old"
        $e.Count | Should -Be 1
        $e[0].FullyQualifiedErrorId | Should -BeLike 'AequorQueryOutcomeUnknown*'
        "$($e[0])" | Should -BeLike "Row 3 of the input: the query on session '$($S.Name)' failed*outcome is unknown*"
        "$($e[0])`n$($e[0].Exception.Message)`n$($e[0].TargetObject)`n$($e[0].ErrorDetails)" | Should -Not -Match 'secret'
        $S.BackendPid | Should -Not -Be $old
        $rows = Invoke-AequorQuery -Session $P 'SELECT id, n FROM piped_users ORDER BY id'
        $rows.id | Should -Be @(1, 2, 4, 5)
        $rows.n | Should -Be @(1, 2, 3, 4) -Because 'row 3 never got past the gate, and rows 1 and 2 were not run again'
        Get-Sends | Should -Be 4
    }

    It 'without -Idempotent and with -ErrorAction Stop, the run stops at row 3' {
        $killer = Start-RowKiller
        $err = $null
        try { New-Rows | Invoke-AequorQuery $Insert -Session $S -ErrorAction Stop } catch { $err = $_ }
        $null = $killer | Wait-Job -Timeout 30
        $err.FullyQualifiedErrorId | Should -BeLike 'AequorQueryOutcomeUnknown*'
        "$err" | Should -BeLike 'Row 3 of the input: *outcome is unknown*'
        (Get-Users).id | Should -Be @(1, 2)
        Get-Sends | Should -Be 2
    }

    It 'inside a transaction (<How>), the lost connection at row 3 stops the run with the transaction-lost error: no later row is sent, nothing is committed' -TestCases @(
        @{ How = 'Start-AequorTransaction'; Begin = { Start-AequorTransaction -Session $S }; End = { Undo-AequorTransaction -Session $S } }
        @{ How = 'BEGIN in SQL'; Begin = { Invoke-AequorQuery 'BEGIN' -Session $S }; End = { Invoke-AequorQuery 'ROLLBACK' -Session $S } }
    ) {
        param($How, $Begin, $End)
        $killer = Start-RowKiller
        . $Begin
        New-Rows | Invoke-AequorQuery $Insert -Session $S -Idempotent -ErrorVariable e -ErrorAction SilentlyContinue -WarningVariable w -WarningAction SilentlyContinue
        $null = $killer | Wait-Job -Timeout 30
        $e.Count | Should -Be 2
        $e[0].FullyQualifiedErrorId | Should -BeLike 'AequorTransactionLost*'
        "$($e[0])" | Should -BeLike "Row 3 of the input: the query on session '$($S.Name)' failed*the transaction is lost (the server rolled it back) and nothing was retried*"
        $e[1].FullyQualifiedErrorId | Should -BeLike 'AequorTransactionLost*'
        "$($e[1])" | Should -BeLike "Rows 4 to 5 of the input (2) were not sent: the connection was lost at row 3 inside the transaction on session '$($S.Name)'*nothing of it was committed*"
        "$($e[1])" | Should -Not -Match 'Fix that row'
        ($e | Out-String) | Should -Not -Match 'secret'
        @($w | Where-Object Message -Match 'retrying a statement').Count | Should -Be 0 -Because 'nothing is resent inside a transaction, -Idempotent or not'
        Get-Sends | Should -Be 2 -Because 'rows 4 and 5 were not sent'
        $S.InTransaction | Should -BeTrue -Because 'the lost transaction is ended by its owner, never by a fresh connection in autocommit'
        . $End
        $S.InTransaction | Should -BeFalse
        (Get-Users) | Should -BeNullOrEmpty -Because 'nothing was committed'
        Get-Sends | Should -Be 2
    }
}
