BeforeAll {
    . (Join-Path $PSScriptRoot 'Aequor.TestHelpers.ps1')
    $null = Get-Observer
    $script:S = Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION -LeaseMode Optional -Name rows
    # Not a temp table: the $1 case below ends in a protocol error (08P01) after which the server drops the connection.
    Invoke-AequorQuery -Session $S 'DROP TABLE IF EXISTS people; CREATE TABLE people (name text PRIMARY KEY, email text, age int)'
}

AfterAll {
    Invoke-AequorQuery -Session $S 'DROP TABLE IF EXISTS people'
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

    It 'binds a DataRow by its column names (SqlServer''s Invoke-Sqlcmd, -As DataTable), DBNull as NULL' {
        # What Invoke-Sqlcmd writes: one DataRow per row.
        $table = [System.Data.DataTable]::new()
        $null = $table.Columns.Add('Name', [string])
        $null = $table.Columns.Add('Age', [int])
        $null = $table.Columns.Add('Email', [string])
        $null = $table.Rows.Add('kim', 28, [DBNull]::Value)
        foreach ($row in $table.Rows) {
            Invoke-AequorQuery -Session $S -As NonQuery 'INSERT INTO people VALUES (@name, @email, @age)' -Parameters $row | Should -Be 1
        }
        $r = Invoke-AequorQuery -Session $S "SELECT * FROM people WHERE name = 'kim'"
        $r.age | Should -Be 28
        $r.email | Should -BeNullOrEmpty

        $read = Invoke-AequorQuery -Session $S -As DataTable "SELECT 'lee' AS name, 'l@example.org' AS email, 3 AS age"
        Invoke-AequorQuery -Session $S -As NonQuery 'INSERT INTO people VALUES (@name, @email, @age)' -Parameters $read.Rows[0] | Should -Be 1
        Invoke-AequorQuery -Session $S -As Scalar "SELECT email FROM people WHERE name = 'lee'" | Should -Be 'l@example.org'

        Invoke-AequorQuery -Session $S 'SELECT @nick' -Parameters $table.Rows[0] -ErrorVariable e -ErrorAction SilentlyContinue
        "$($e[0])" | Should -Match 'has no property nick \(it has: Name, Age, Email\)'
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
    It 'refuses a row or a hashtable piped (or given) as the query, before anything is sent: an open transaction goes on' {
        Start-AequorTransaction -Session $S
        try {
            Invoke-AequorQuery -Session $S "INSERT INTO people VALUES ('gus', NULL, 1)"
            $rows = 'name,email', 'hal,h@example.org' | ConvertFrom-Csv
            $rows | Invoke-AequorQuery -Session $S -ErrorVariable e -ErrorAction SilentlyContinue
            $e.Count | Should -Be 1
            "$($e[0])" | Should -Match '-Query takes SQL text, and this is an object \(a row\): nothing was sent\. .* give the statement: \.\.\. \| Invoke-AequorQuery ''INSERT'
            @{ name = 'x' } | Invoke-AequorQuery -Session $S -ErrorVariable e -ErrorAction SilentlyContinue
            "$($e[0])" | Should -Match 'this is a Hashtable: nothing was sent'
            { Invoke-AequorQuery -Session $S -Query ([pscustomobject]@{ a = 1 }) } | Should -Throw '*-Query takes SQL text*'
            $S.InTransaction | Should -BeTrue
            Invoke-AequorQuery -Session $S -As Scalar 'SELECT count(*) FROM people' | Should -Be 1
        } finally {
            Undo-AequorTransaction -Session $S
        }

        # Text still comes from the pipeline, and a file by its path.
        'SELECT 41 + 1' | Invoke-AequorQuery -Session $S -As Scalar | Should -Be 42
        $file = Join-Path $TestDrive 'one.sql'
        Set-Content $file 'SELECT 7 AS seven'
        (Get-Item $file | Invoke-AequorQuery -Session $S).seven | Should -Be 7
    }
}

Describe 'Invoke-AequorQuery given a SQL file line by line (Get-Content without -Raw)' {
    It 'refuses the lines, naming the file and -File, so that a DELETE never runs without the WHERE on its next line' {
        Invoke-AequorQuery -Session $S "TRUNCATE people; INSERT INTO people VALUES ('ida', NULL, 1), ('jon', NULL, 2)"
        $file = Join-Path $TestDrive 'fix.sql'
        Set-Content $file "DELETE FROM people`nWHERE name = 'ida';"
        Get-Content $file | Invoke-AequorQuery -Session $S -ErrorVariable e -ErrorAction SilentlyContinue
        $e.Count | Should -Be 2
        "$($e[0])" | Should -BeLike "*-Query got line 1 of '$file' from Get-Content, which sends a file line by line*Nothing was sent. Run the file whole: -File '$file'*"
        "$($e[1])" | Should -BeLike "*-Query got line 2 of*"
        Invoke-AequorQuery -Session $S -As Scalar 'SELECT count(*) FROM people' | Should -Be 2

        # Whole, the same file does what it says.
        Get-Content -Raw $file | Invoke-AequorQuery -Session $S
        (Invoke-AequorQuery -Session $S 'SELECT name FROM people').name | Should -Be 'jon'
    }

    It 'runs a file of one line, with or without -Raw' {
        $file = Join-Path $TestDrive 'one-line.sql'
        Set-Content $file 'SELECT 5 AS five'
        (Get-Content $file | Invoke-AequorQuery -Session $S).five | Should -Be 5
        (Get-Content -Raw $file | Invoke-AequorQuery -Session $S).five | Should -Be 5
    }
}
