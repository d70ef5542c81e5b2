BeforeAll {
    . (Join-Path $PSScriptRoot 'Aequor.TestHelpers.ps1')
    $null = Get-Observer
    $script:S = Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION -CoordinationSecret $TestSecret -ServiceName (New-TestServiceName zc)
    $null = Invoke-AequorQuery 'CREATE TEMP TABLE zc_items (id int); INSERT INTO zc_items VALUES (1), (2)' -Session $S
}

AfterAll {
    Disconnect-Aequor -All -Confirm:$false
}

# SELECT with no select list (SELECT FROM t WHERE ...) returns rows with no columns: psql prints "(3 rows)".
# They were dropped, so an existence check counted 0 whether or not the row was there.
Describe 'Invoke-AequorQuery: result sets with no columns' {
    It 'writes one empty PSCustomObject per row' {
        $rows = @(Invoke-AequorQuery 'SELECT FROM generate_series(1, 3)' -Session $S)
        $rows.Count | Should -Be 3
        foreach ($row in $rows) {
            $row | Should -BeOfType [pscustomobject]
            @($row.psobject.Properties).Count | Should -Be 0
        }
    }

    It 'answers an existence check: a count and an if, for a row that is there and one that is not' {
        (Invoke-AequorQuery 'SELECT FROM zc_items WHERE id = $1' 1 -Session $S).Count | Should -Be 1
        (Invoke-AequorQuery 'SELECT FROM zc_items WHERE id = $1' 3 -Session $S).Count | Should -Be 0
        $found = if (Invoke-AequorQuery 'SELECT FROM zc_items WHERE id = @id' @{ id = 2 } -Session $S) { 'yes' } else { 'no' }
        $found | Should -Be 'yes'
        $missing = if (Invoke-AequorQuery 'SELECT FROM zc_items WHERE id = @id' @{ id = 3 } -Session $S) { 'yes' } else { 'no' }
        $missing | Should -Be 'no'
    }

    It 'stops a long one at Select-Object -First, and the session goes on' {
        # generate_series in the select list streams; in FROM the server would make all the rows first.
        $first = @(Invoke-AequorQuery 'SELECT FROM (SELECT generate_series(1, 100000000)) AS g' -Session $S | Select-Object -First 1)
        $first.Count | Should -Be 1
        Invoke-AequorQuery 'SELECT 7' -As Scalar -Session $S | Should -Be 7
        (Get-Backend $S.BackendPid).state | Should -Be 'idle'
    }

    It 'still writes nothing for a statement without a result set' {
        @(Invoke-AequorQuery 'INSERT INTO zc_items VALUES (10)' -Session $S).Count | Should -Be 0
        @(Invoke-AequorQuery 'DELETE FROM zc_items WHERE id = 10; CREATE TEMP TABLE zc_other (id int)' -Session $S).Count | Should -Be 0
        @(Invoke-AequorQuery 'INSERT INTO zc_items VALUES (10)' -As DataTable -Session $S).Count | Should -Be 0
        @(Invoke-AequorQuery 'DELETE FROM zc_items WHERE id = 10; DROP TABLE zc_other' -As DataTable -Session $S).Count | Should -Be 0
    }

    It 'writes the rows of each result set in turn when some have no columns' {
        $rows = @(Invoke-AequorQuery @'
SELECT 1 AS a; SELECT FROM generate_series(1, 2); INSERT INTO zc_items VALUES (11); SELECT FROM zc_items WHERE false;
SELECT FROM zc_items WHERE id = 11; SELECT 2 AS b; DELETE FROM zc_items WHERE id = 11
'@ -Session $S)
        $rows.Count | Should -Be 5
        $rows[0].a | Should -Be 1
        @($rows[1].psobject.Properties).Count + @($rows[2].psobject.Properties).Count + @($rows[3].psobject.Properties).Count | Should -Be 0
        $rows[4].b | Should -Be 2
    }

    It '-As DataTable writes a table with no columns and a row per row, an empty one for no rows' {
        $tables = @(Invoke-AequorQuery 'SELECT FROM generate_series(1, 3)' -As DataTable -Session $S)
        $tables.Count | Should -Be 1
        $tables[0] -is [System.Data.DataTable] | Should -BeTrue
        $tables[0].Columns.Count | Should -Be 0
        $tables[0].Rows.Count | Should -Be 3

        $none = @(Invoke-AequorQuery 'SELECT FROM zc_items WHERE id = $1' 3 -As DataTable -Session $S)
        $none.Count | Should -Be 1
        $none[0].Columns.Count | Should -Be 0
        $none[0].Rows.Count | Should -Be 0
    }

    It '-As DataTable writes one table per result set, none for the statements without one' {
        $tables = @(Invoke-AequorQuery @'
INSERT INTO zc_items VALUES (12); SELECT FROM zc_items WHERE false; SELECT 1 AS a; SELECT FROM generate_series(1, 2);
DELETE FROM zc_items WHERE id = 12
'@ -As DataTable -Session $S)
        $tables.Count | Should -Be 3
        $tables | ForEach-Object { $_.Rows.Count } | Should -Be @(0, 1, 2)
        $tables | ForEach-Object { $_.Columns.Count } | Should -Be @(0, 1, 0)
        $tables[1].Rows[0].a | Should -Be 1
    }

    It '-As Scalar is $null and -As NonQuery -1, as for any SELECT' {
        $scalar = Invoke-AequorQuery 'SELECT FROM generate_series(1, 3)' -As Scalar -Session $S
        $null -eq $scalar | Should -BeTrue
        Invoke-AequorQuery 'SELECT FROM generate_series(1, 3)' -As NonQuery -Session $S | Should -Be -1
    }
}
