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
        $err = $null
        try { Start-AequorTransaction } catch { $err = $_ }
        $err.FullyQualifiedErrorId | Should -BeLike 'AequorTransactionOpen*'
        Undo-AequorTransaction
        $err = $null
        try { Complete-AequorTransaction } catch { $err = $_ }
        $err.FullyQualifiedErrorId | Should -BeLike 'AequorNoTransaction*'
        $err = $null
        try { Undo-AequorTransaction } catch { $err = $_ }
        $err.FullyQualifiedErrorId | Should -BeLike 'AequorNoTransaction*'
    }

    It 'an error inside leaves the transaction to undo, and nothing of it is kept' {
        Start-AequorTransaction
        $null = Invoke-AequorQuery 'INSERT INTO tx_rows VALUES (20)'
        Invoke-AequorQuery 'INSERT INTO tx_rows VALUES (20)' -ErrorAction SilentlyContinue
        Undo-AequorTransaction
        Invoke-AequorQuery 'SELECT count(*) FROM tx_rows WHERE id = 20' -As Scalar | Should -Be 0
    }

    It 'Complete after an error inside fails with AequorTransactionFailed, never "committed", and nothing is kept' {
        Start-AequorTransaction
        $null = Invoke-AequorQuery 'INSERT INTO tx_rows VALUES (30)'
        Invoke-AequorQuery 'INSERT INTO tx_rows VALUES (30)' -ErrorAction SilentlyContinue
        Invoke-AequorQuery 'INSERT INTO tx_rows VALUES (31)' -ErrorAction SilentlyContinue
        $err = $null
        $verbose = $null
        try { Complete-AequorTransaction -Verbose 4>&1 | Tee-Object -Variable verbose | Out-Null } catch { $err = $_ }
        $err.FullyQualifiedErrorId | Should -BeLike 'AequorTransactionFailed*'
        "$err" | Should -Match 'Nothing was committed: a statement failed inside the transaction \(23505'
        "$verbose" | Should -Not -Match 'committed'
        $S.InTransaction | Should -BeFalse
        Invoke-AequorQuery 'SELECT count(*) FROM tx_rows WHERE id IN (30, 31)' -As Scalar | Should -Be 0
        Invoke-AequorQuery 'SELECT 1' -As Scalar | Should -Be 1
    }

    It 'a BEGIN sent in SQL makes the session one in a transaction: InTransaction, no Start on top, a warning at Disconnect' {
        $sql = Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION -LeaseMode Optional -Name sqlbegin
        $null = Invoke-AequorQuery 'BEGIN' -Session $sql
        $null = Invoke-AequorQuery 'INSERT INTO tx_rows VALUES (40)' -Session $sql
        $sql.InTransaction | Should -BeTrue
        $err = $null
        try { Start-AequorTransaction -Session $sql } catch { $err = $_ }
        $err.FullyQualifiedErrorId | Should -BeLike 'AequorTransactionOpen*'
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
