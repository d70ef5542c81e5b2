BeforeAll {
    . (Join-Path $PSScriptRoot 'Aequor.TestHelpers.ps1')
    $null = Get-Observer
    $script:S = Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION -LeaseMode Optional -Name rows
    Invoke-AequorQuery -Session $S 'CREATE TEMP TABLE people (name text PRIMARY KEY, email text, age int)'
}

AfterAll {
    Disconnect-Aequor -All -Confirm:$false
}

Describe 'Invoke-AequorQuery -Parameters with a row (Import-Csv, ConvertFrom-Json, a row read back)' {
    BeforeEach {
        Invoke-AequorQuery -Session $S 'TRUNCATE people'
    }

    It 'binds each @name from the property of that name, ignoring case and the columns the statement does not use' {
        $csv = 'Name,Email,Age,Notes', 'ann,a@example.org,31,first', 'bob,b@example.org,42,'
        $rows = $csv | ConvertFrom-Csv
        $written = $rows | ForEach-Object { Invoke-AequorQuery -Session $S -As NonQuery 'INSERT INTO people VALUES (@name, @email, @age::int)' -Parameters $_ }
        $written | Should -Be @(1, 1)
        $back = Invoke-AequorQuery -Session $S 'SELECT name, email, age FROM people ORDER BY name'
        $back.name | Should -Be @('ann', 'bob')
        $back.email | Should -Be @('a@example.org', 'b@example.org')
        $back.age | Should -Be @(31, 42)
    }

    It 'binds a ConvertFrom-Json object, its numbers as numbers; a nested object it does not use is left alone, one it uses is refused naming it' {
        $j = '{"name":"cy","email":null,"age":7,"address":{"city":"Oslo"}}' | ConvertFrom-Json
        Invoke-AequorQuery -Session $S -As NonQuery 'INSERT INTO people VALUES (@name, @email, @age)' -Parameters $j | Should -Be 1
        $r = Invoke-AequorQuery -Session $S 'SELECT * FROM people'
        ($r.name, $r.email, $r.age) | Should -Be @('cy', $null, 7)

        $err = $null
        try { Invoke-AequorQuery -Session $S 'SELECT @address::text' -Parameters $j } catch { $err = $_ }
        $err.FullyQualifiedErrorId | Should -BeLike 'AequorInvalidParameter*'
        "$err" | Should -Match "property 'address' is itself an object .*ConvertTo-Json"
        Invoke-AequorQuery -Session $S -As Scalar 'SELECT 1' | Should -Be 1
    }

    It 'copies rows read from one statement into another by their column names' {
        $source = Invoke-AequorQuery -Session $S "SELECT 'dee' AS name, 'd@example.org' AS email, 55 AS age UNION ALL SELECT 'eve', NULL, NULL"
        $source | ForEach-Object { $null = Invoke-AequorQuery -Session $S 'INSERT INTO people (name, email, age) VALUES (@name, @email, @age)' -Parameters $_ }
        $back = Invoke-AequorQuery -Session $S 'SELECT name, email, age FROM people ORDER BY name'
        $back.name | Should -Be @('dee', 'eve')
        $back[0].age | Should -Be 55
        $back[1].email | Should -BeNullOrEmpty
        $back[1].age | Should -BeNullOrEmpty
    }

    It 'names the property a placeholder has no value from, and what the row has' {
        $row = [pscustomobject]@{ name = 'fay'; email = 'f@example.org' }
        Invoke-AequorQuery -Session $S 'INSERT INTO people VALUES (@name, @emial)' -Parameters $row -ErrorVariable e -ErrorAction SilentlyContinue
        "$($e[0])" | Should -Match 'The statement uses @emial, but the object given as -Parameters has no property emial \(it has: name, email\)'
        Invoke-AequorQuery -Session $S -As Scalar 'SELECT count(*) FROM people' | Should -Be 0
    }

    It 'says that $1-style placeholders get nothing from a row' {
        $row = [pscustomobject]@{ id = 5 }
        Invoke-AequorQuery -Session $S 'SELECT $1::int' -Parameters $row -ErrorVariable e -ErrorAction SilentlyContinue
        "$($e[0])" | Should -Match 'binds @name placeholders by its property names; \$1-style ones get nothing'
    }
}
