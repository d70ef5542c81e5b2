BeforeAll {
    . (Join-Path $PSScriptRoot 'Aequor.TestHelpers.ps1')
    $script:S = Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION -CoordinationSecret $TestSecret -ServiceName (New-TestServiceName wt)
    $script:Suffix = [Guid]::NewGuid().ToString('N').Substring(0, 8)

    function New-People {
        $name = "wt_people_$script:Suffix$(Get-Random)"
        $null = Invoke-AequorQuery "CREATE TABLE $name (id int PRIMARY KEY, name text, born date, active boolean, score numeric, doc jsonb, tags text[], note text DEFAULT 'none')" -Session $S
        $name
    }

    function Get-Count([string] $Table) { Invoke-AequorQuery "SELECT count(*) FROM $Table" -As Scalar -Session $S }

    # A host that records the lines and warnings written to it: what a stopped command tells the console, where no stream
    # is read, and what -WhatIf says (PowerShell writes it to the host, not to a stream).
    $script:RecordingHostSource = Get-Content -Raw (Join-Path $PSScriptRoot 'Support/RecordingHost.cs')
}

AfterAll {
    Disconnect-Aequor -All -Confirm:$false
}

Describe 'Write-AequorTableData' {
    It 'loads CSV strings into int, text, date, bool, numeric, jsonb and text[] columns' {
        $t = New-People
        $csv = @'
id,name,born,active,score,doc,tags
1,Ann,1990-02-03,true,12.50,"{""a"": 1}","{x,""y z""}"
2,Bob,2001-12-31,f,-0.001,[],{}
'@
        $rows = $csv | ConvertFrom-Csv | Write-AequorTableData -Table $t -Session $S -PassThru
        $rows | Should -Be 2
        $got = @(Invoke-AequorQuery "SELECT id, name, born::text AS born, active, score::text AS score, doc::text AS doc, tags, note FROM $t ORDER BY id" -Session $S)
        $got[0].name | Should -Be 'Ann'
        $got[0].born | Should -Be '1990-02-03'
        $got[0].active | Should -BeTrue
        $got[0].score | Should -Be '12.50'
        $got[0].doc | Should -Be '{"a": 1}'
        $got[0].tags | Should -Be @('x', 'y z')
        $got[0].note | Should -Be 'none'
        $got[1].active | Should -BeFalse
        $got[1].score | Should -Be '-0.001'
    }

    It 'refuses -CommandTimeout <Seconds> naming why, with nothing sent, and loads with the longest one' -ForEach @(
        @{ Seconds = 0; Says = '-CommandTimeout 0 \(no limit\) is not offered for a load: .*nobody is there to press Ctrl\+C \(a scheduled job\)\. Give the seconds each round trip may take, 1 to 2147483' }
        @{ Seconds = 2147484; Says = "-CommandTimeout is 2147484 s; a load's can be at most 2147483 s" }
    ) {
        $t = New-People
        $err = $null
        try { [pscustomobject]@{ id = 1; name = 'x' } | Write-AequorTableData -Table $t -Session $S -CommandTimeout $Seconds -ErrorAction Stop } catch { $err = $_ }
        $err.FullyQualifiedErrorId | Should -BeLike 'AequorInvalidParameter,*'
        "$err" | Should -Match $Says
        "$err" | Should -Match 'Nothing was sent\.'
        Get-Count $t | Should -Be 0
        [pscustomobject]@{ id = 2; name = 'y' } | Write-AequorTableData -Table $t -Session $S -CommandTimeout 2147483 -PassThru | Should -Be 1
    }

    It 'round-trips nasty strings exactly, an empty string apart from NULL, and .NET values and arrays' {
        $t = New-People
        $nasty = "tab`there`nnew line`r`nback\slash \N 'single' ""double"" ünï©ødé 🙂 , {}"
        @(
            [pscustomobject]@{ id = 1; name = $nasty; tags = @('a,b', 'q"uote', 'back\', 'NULL', $null, '') }
            @{ ID = 2; Name = ''; Born = [datetime]'2020-05-06'; Active = $false; Score = 1.5e-7 }
            [pscustomobject]@{ id = 3; name = $null }
        ) | Write-AequorTableData -Table $t -Column id, name, tags, born, active, score -Session $S
        $got = @(Invoke-AequorQuery "SELECT id, name, name IS NULL AS isnull, tags, born::text AS born, active, score::float8 AS score FROM $t ORDER BY id" -Session $S)
        $got[0].name | Should -BeExactly $nasty
        $got[0].tags.Count | Should -Be 6
        $got[0].tags[0..3] | Should -Be @('a,b', 'q"uote', 'back\', 'NULL')
        $got[0].tags[4] | Should -BeNullOrEmpty
        $got[0].tags[5] | Should -BeExactly ''
        $got[1].isnull | Should -BeFalse
        $got[1].name | Should -BeExactly ''
        $got[1].born | Should -Be '2020-05-06'
        $got[1].score | Should -Be 1.5e-7
        $got[2].isnull | Should -BeTrue
    }

    It 'writes an array of more dimensions ([int[,]]) in its shape, not flattened' {
        $t = "wt_grid_$script:Suffix$(Get-Random)"
        $null = Invoke-AequorQuery "CREATE TABLE $t (id int, nums int[], words text[])" -Session $S
        $nums = New-Object 'int[,]' 2, 3
        $words = New-Object 'object[,]' 2, 1
        foreach ($i in 0..1) { foreach ($j in 0..2) { $nums[$i, $j] = 3 * $i + $j + 1 } }
        $words[0, 0] = [psobject]'a b'
        $words[1, 0] = $null
        [pscustomobject]@{ id = 1; nums = $nums; words = $words } | Write-AequorTableData -Table $t -Session $S -PassThru | Should -Be 1
        $got = Invoke-AequorQuery "SELECT nums::text AS nums, words::text AS words FROM $t" -Session $S
        $got.nums | Should -Be '{{1,2,3},{4,5,6}}'
        $got.words | Should -Be '{{"a b"},{NULL}}'
    }

    It 'writes a [char[]] as its text, as -Parameters binds it, not as an array literal of its letters' {
        $t = New-People
        [pscustomobject]@{ id = 1; name = 'Ann Lee'.ToCharArray() } | Write-AequorTableData -Table $t -Session $S
        Invoke-AequorQuery "INSERT INTO $t (id, name) VALUES (2, @name)" -Parameters @{ name = 'Ann Lee'.ToCharArray() } -Session $S | Out-Null
        @(Invoke-AequorQuery "SELECT name FROM $t ORDER BY id" -Session $S).name | Should -Be @('Ann Lee', 'Ann Lee')
    }

    It 'writes NULL for a value that holds a command''s empty output (AutomationNull), as -Parameters does, also inside an array' {
        $t = New-People
        $none = Get-ChildItem (Join-Path $TestDrive 'no-such-file*')
        @{ id = 1; name = $none; tags = @('a', $none, 'b') } | Write-AequorTableData -Table $t -Session $S -PassThru | Should -Be 1
        $got = Invoke-AequorQuery "SELECT name IS NULL AS gone, tags::text AS tags FROM $t" -Session $S
        $got.gone | Should -BeTrue
        $got.tags | Should -Be '{a,NULL,b}'
    }

    It 'writes the bytes of Get-Content -AsByteStream (an object[] of bytes) into a bytea, as -Parameters binds them' {
        $t = "wt_bytes_$script:Suffix$(Get-Random)"
        $null = Invoke-AequorQuery "CREATE TABLE $t (id int, b bytea)" -Session $S
        $file = Join-Path $TestDrive 'bytes.bin'
        [System.IO.File]::WriteAllBytes($file, [byte[]](1, 2, 255))
        $data = Get-Content $file -AsByteStream
        $data.GetType() | Should -Be ([object[]])
        [pscustomobject]@{ id = 1; b = $data } | Write-AequorTableData -Table $t -Session $S
        Invoke-AequorQuery "INSERT INTO $t VALUES (2, @b)" -Parameters @{ b = $data } -Session $S | Out-Null
        @(Invoke-AequorQuery "SELECT b::text AS b FROM $t ORDER BY id" -Session $S).b | Should -Be @('\x0102ff', '\x0102ff')
    }

    It 'refuses an array for a column of no array type (text, jsonb), naming the row and column, as INSERT would: nothing is written' {
        $t = New-People
        $err = $null
        try {
            @([pscustomobject]@{ id = 1; name = 'Ann'; tags = @('x') }, [pscustomobject]@{ id = 2; name = @('Bob', 'Rob'); tags = @('y') }) |
                Write-AequorTableData -Table $t -Session $S
        } catch { $err = $_ }
        "$err" | Should -Match "Row 2, column 'name': an array \(or list\) for a column of type text"
        "$err" | Should -Match 'Nothing was written'
        Get-Count $t | Should -Be 0
        { [pscustomobject]@{ id = 3; doc = @() } | Write-AequorTableData -Table $t -Session $S } | Should -Throw -ExpectedMessage "*column 'doc'*jsonb*"
        Get-Count $t | Should -Be 0
    }

    It 'writes a TimeSpan into a time column as the time of day, and into an interval column exactly' {
        $t = "wt_span_$Suffix$(Get-Random)"
        $null = Invoke-AequorQuery "CREATE TABLE $t (id int, at time, span interval)" -Session $S
        @(
            @{ id = 1; at = [timespan]'08:30:00'; span = [timespan]'1.02:03:04.5000010' }
            @{ id = 2; at = [timespan]::new(0, 23, 59, 59, 999); span = [timespan]::FromMinutes(-90) }
            @{ id = 3; at = [timespan]::Zero; span = [timespan]::MaxValue }
        ) | Write-AequorTableData -Table $t -Session $S -PassThru | Should -Be 3
        $got = @(Invoke-AequorQuery "SELECT at::text AS at, extract(epoch FROM span)::text AS seconds, span::text AS span FROM $t ORDER BY id" -Session $S)
        $got.at | Should -Be @('08:30:00', '23:59:59.999', '00:00:00')
        $got.seconds | Should -Be @('93784.500001', '-5400.000000', '922337203685.477580')
        # The days kept apart, as -Parameters binds a [timespan]: a day is not always 24 hours after a timestamptz.
        $got.span | Should -Be @('1 day 02:03:04.500001', '-01:30:00', '10675199 days 02:48:05.47758')
    }

    It 'writes a [bool] as -Parameters stores it: true/false into a text column, a boolean into a boolean column' {
        $t = "wt_bool_$Suffix$(Get-Random)"
        $null = Invoke-AequorQuery "CREATE TABLE $t (id int, txt text, flag boolean, flags boolean[])" -Session $S
        @{ id = 1; txt = $true; flag = $false; flags = @($true, $false) } | Write-AequorTableData -Table $t -Session $S
        $null = Invoke-AequorQuery "INSERT INTO $t VALUES (2, `$1, `$2, `$3)" -Parameters $true, $false, @($true, $false) -Session $S
        $rows = @(Invoke-AequorQuery "SELECT txt, flag, flags::text AS flags FROM $t ORDER BY id" -Session $S)
        $rows[0].txt | Should -BeExactly $rows[1].txt
        $rows[0].txt | Should -BeExactly 'true'
        $rows.flag | Should -Be @($false, $false)
        $rows.flags | Should -Be @('{t,f}', '{t,f}')
    }

    It 'refuses a local time the client''s zone carries out of the years 1 to 9999 in UTC, naming the row and column' {
        . (Join-Path $PSScriptRoot 'Support/FreshPwsh.ps1')
        $t = "wt_edge_$Suffix$(Get-Random)"
        $null = Invoke-AequorQuery "CREATE TABLE $t (id int, at timestamptz)" -Session $S
        $run = Invoke-FreshPwsh -Environment @{ TZ = 'Asia/Tokyo' } -Script @"
Import-Module '$env:AEQUOR_MODULE_PATH'
`$null = Connect-Aequor '$env:AEQUOR_TEST_APP_CONNECTION' -LeaseMode Optional
`$early = [datetime]::SpecifyKind([datetime]::new(1, 1, 1, 0, 30, 0), [DateTimeKind]::Local)
`$message = try { @{ id = 1; at = [datetime]'2024-01-01' }, @{ id = 2; at = `$early } | Write-AequorTableData -Table $t -ErrorAction Stop; 'written' } catch { `$_.Exception.Message }
'RESULT:' + (@{ Message = `$message } | ConvertTo-Json -Compress)
"@
        $run.Result.Message | Should -BeLike "*Row 2, column 'at': the local time 0001-01-01 00:30:00 (UTC+09:*) is outside the years 1 to 9999 in UTC*" -Because (Format-FreshPwsh $run)
        Get-Count $t | Should -Be 0
    }

    It 'writes 10,000 rows in one call' {
        $t = New-People
        $n = 1..10000 | ForEach-Object { [pscustomobject]@{ id = $_; name = "n$_" } } | Write-AequorTableData -Table $t -Session $S -PassThru
        $n | Should -Be 10000
        Get-Count $t | Should -Be 10000
    }

    It '-PassThru counts the rows the server stored: a row a BEFORE INSERT trigger skipped is not counted' {
        $t = New-People
        Invoke-AequorQuery "CREATE FUNCTION ${t}_odd() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN CASE WHEN NEW.id % 2 = 1 THEN NEW END; END'; CREATE TRIGGER odd BEFORE INSERT ON $t FOR EACH ROW EXECUTE FUNCTION ${t}_odd()" -Session $S | Out-Null
        $n = 1..10 | ForEach-Object { [pscustomobject]@{ id = $_; name = "n$_" } } | Write-AequorTableData -Table $t -Session $S -PassThru
        Get-Count $t | Should -Be 5
        $n | Should -Be 5
    }

    It 'writes nothing when a row in the middle is refused, names the row, and the session goes on' {
        $t = New-People
        $rows = 1..10000 | ForEach-Object { [pscustomobject]@{ id = if ($_ -eq 5001) { 'abc' } else { "$_" } } }
        $err = $null
        try { $rows | Write-AequorTableData -Table $t -Session $S } catch { $err = $_ }
        $err | Should -Not -BeNullOrEmpty
        $err.FullyQualifiedErrorId | Should -Match '^AequorTableWriteFailed'
        "$err" | Should -Match 'Row 5001'
        "$err" | Should -Match 'Nothing was written'
        Get-Count $t | Should -Be 0
        Invoke-AequorQuery 'SELECT 7' -As Scalar -Session $S | Should -Be 7
    }

    It 'writes nothing when a command upstream throws' {
        $t = New-People
        { 1..100 | ForEach-Object { if ($_ -eq 50) { throw 'boom' }; @{ id = $_ } } | Write-AequorTableData -Table $t -Session $S } | Should -Throw '*boom*'
        Get-Count $t | Should -Be 0
        Invoke-AequorQuery 'SELECT 7' -As Scalar -Session $S | Should -Be 7
    }

    It 'a query on the same session further up the pipeline is refused naming the load, and nothing is written' {
        $t = New-People
        $err = $null
        try {
            # -As Scalar has ended its call when its value goes down the pipeline: the second one meets the open COPY.
            1..3 | ForEach-Object { @{ id = (Invoke-AequorQuery "SELECT $_" -As Scalar -Session $S); name = 'n' } } | Write-AequorTableData -Table $t -Session $S
        } catch { $err = $_ }
        $err.FullyQualifiedErrorId | Should -BeLike 'AequorSessionBusy*'
        "$err" | Should -BeLike "*is loading rows into *$t* (Write-AequorTableData) in this pipeline; Invoke-AequorQuery on it inside that pipeline would wait for ever.*"
        Get-Count $t | Should -Be 0
    }

    It 'refuses a nested object and a NUL, naming the row and column, and writes nothing' {
        $t = New-People
        { @(@{ id = 1 }, @{ id = 2; name = [pscustomobject]@{ x = 1 } }) | Write-AequorTableData -Table $t -Column id, name -Session $S } | Should -Throw "*Row 2, column 'name'*"
        { @(@{ id = 1; name = "a`0b" }) | Write-AequorTableData -Table $t -Session $S } | Should -Throw '*NUL*'
        Get-Count $t | Should -Be 0
    }

    It 'joins a transaction: Undo leaves nothing' {
        $t = New-People
        Start-AequorTransaction -Session $S
        1..10 | ForEach-Object { @{ id = $_ } } | Write-AequorTableData -Table $t -Session $S
        Invoke-AequorQuery "SELECT count(*) FROM $t" -As Scalar -Session $S | Should -Be 10
        Undo-AequorTransaction -Session $S
        Get-Count $t | Should -Be 0
    }

    It '-Column picks the columns; a property that is no column is ignored and said so' {
        $t = New-People
        $verbose = @([pscustomobject]@{ ID = 1; name = 'x'; other = 'y' }, [pscustomobject]@{ id = 2 }) |
            Write-AequorTableData -Table $t -Session $S -Verbose 4>&1
        ($verbose -join "`n") | Should -Match 'ignored: other'
        @(Invoke-AequorQuery "SELECT name FROM $t ORDER BY id" -Session $S).name | Should -Be @('x', $null)
        [pscustomobject]@{ id = 3; name = 'kept out' } | Write-AequorTableData -Table $t -Column Id -Session $S
        Invoke-AequorQuery "SELECT name IS NULL FROM $t WHERE id = 3" -As Scalar -Session $S | Should -BeTrue
    }

    It 'without -Column, a later row with a column the first row lacked is refused, naming the row and the property, and nothing is written' {
        $t = New-People
        $err = $null
        try { @{ id = 1 }, @{ id = 2 }, [pscustomobject]@{ id = 3; Note = 'kept?' } | Write-AequorTableData -Table $t -Session $S } catch { $err = $_ }
        $err.FullyQualifiedErrorId | Should -Match '^AequorInvalidParameter'
        "$err" | Should -BeLike "*Row 3 has the property 'Note', a column of the table $t that the first row did not have*-Column*Nothing was written.*"
        Get-Count $t | Should -Be 0
        # A property that is no column, a property the first row had, and -Column: still written.
        @{ id = 1 }, @{ id = 2; other = 'x' }, @{ ID = 3 } | Write-AequorTableData -Table $t -Session $S -PassThru | Should -Be 3
        @{ id = 4 }, @{ id = 5; note = 'n5' } | Write-AequorTableData -Table $t -Column id, note -Session $S -PassThru | Should -Be 2
        (Invoke-AequorQuery "SELECT string_agg(id || '=' || coalesce(note, '-'), ',' ORDER BY id) FROM $t" -As Scalar -Session $S) | Should -Be '1=none,2=none,3=none,4=-,5=n5'
        Invoke-AequorQuery 'SELECT 7' -As Scalar -Session $S | Should -Be 7
    }

    It 'a property whose getter throws is named with its row, nothing is written, and the session goes on' {
        $t = New-People
        $bad = [pscustomobject]@{ id = 2 }
        $bad | Add-Member ScriptProperty name { throw 'getter boom' }
        $err = $null
        try { [pscustomobject]@{ id = 1; name = 'a' }, $bad | Write-AequorTableData -Table $t -Session $S } catch { $err = $_ }
        $err.FullyQualifiedErrorId | Should -Match '^AequorInvalidParameter'
        "$err" | Should -BeLike "*Row 2, column 'name': the property could not be read (*getter boom*). Nothing was written.*"
        Get-Count $t | Should -Be 0
        Invoke-AequorQuery 'SELECT 7' -As Scalar -Session $S | Should -Be 7
    }

    It 'skips the rows deleted from a DataTable, as they are no rows of it any more' {
        $t = New-People
        $dt = [Data.DataTable]::new()
        $null = $dt.Columns.Add('id', [int]); $null = $dt.Columns.Add('name', [string])
        1..4 | ForEach-Object { $null = $dt.Rows.Add($_, "dt$_") }
        $dt.AcceptChanges()
        $dt.Rows[0].Delete(); $dt.Rows[2].Delete()
        $dt | Write-AequorTableData -Table $t -Session $S -PassThru | Should -Be 2
        @($dt.Rows)[0, 2] | Write-AequorTableData -Table $t -Session $S -PassThru | Should -Be 0
        (Invoke-AequorQuery "SELECT string_agg(name, ',' ORDER BY id) FROM $t" -As Scalar -Session $S) | Should -Be 'dt2,dt4'
    }

    It 'an unknown -Column or table is a terminating error naming it, and nothing is written' {
        $t = New-People
        $err = $null
        try { @{ id = 1 } | Write-AequorTableData -Table $t -Column id, nosuch -Session $S } catch { $err = $_ }
        $err.FullyQualifiedErrorId | Should -Match '^AequorInvalidParameter'
        "$err" | Should -Match "'nosuch'"
        "$err" | Should -Match 'id, name, born'
        $null = Invoke-AequorQuery "ALTER TABLE $t ADD COLUMN twice int GENERATED ALWAYS AS (id * 2) STORED" -Session $S
        $err = $null
        try { @{ id = 1 } | Write-AequorTableData -Table $t -Column id, twice -Session $S } catch { $err = $_ }
        $err.FullyQualifiedErrorId | Should -Match '^AequorInvalidParameter'
        "$err" | Should -BeLike "*'twice' is no column of the table $t that rows can fill (a generated column is computed by the server)*"
        $err = $null
        try { @{ id = 1 } | Write-AequorTableData -Table "no_such_table_$Suffix" -Session $S } catch { $err = $_ }
        $err.FullyQualifiedErrorId | Should -Match '^AequorInvalidParameter'
        "$err" | Should -Match "no_such_table_$Suffix"
        Get-Count $t | Should -Be 0
        Invoke-AequorQuery 'SELECT 7' -As Scalar -Session $S | Should -Be 7
    }

    It 'with no rows still checks the table and -Column, naming what is wrong, and begins no COPY' {
        $t = New-People
        # A statement trigger notes every COPY, even one of no rows.
        $null = Invoke-AequorQuery @"
CREATE TABLE ${t}_copies (at timestamptz);
CREATE FUNCTION ${t}_note() RETURNS trigger LANGUAGE plpgsql AS `$`$ BEGIN INSERT INTO ${t}_copies VALUES (now()); RETURN NULL; END `$`$;
CREATE TRIGGER note AFTER INSERT ON $t FOR EACH STATEMENT EXECUTE FUNCTION ${t}_note();
"@ -Session $S
        $err = $null
        try { @() | Write-AequorTableData -Table "no_such_table_$Suffix" -Session $S } catch { $err = $_ }
        $err.FullyQualifiedErrorId | Should -Match '^AequorInvalidParameter'
        "$err" | Should -Match "The table no_such_table_$Suffix does not exist"
        $err = $null
        try { @() | Write-AequorTableData -Table $t -Column id, nosuch -Session $S } catch { $err = $_ }
        $err.FullyQualifiedErrorId | Should -Match '^AequorInvalidParameter'
        "$err" | Should -Match "-Column 'nosuch' is no column of the table $t"
        $err = $null
        try { @() | Write-AequorTableData -Table $t -Column id, ID -Session $S } catch { $err = $_ }
        "$err" | Should -Match "-Column names the column 'id' twice \('ID'\)"
        @() | Write-AequorTableData -Table $t -Column ID, name -Session $S -PassThru | Should -Be 0
        Invoke-AequorQuery "SELECT count(*) FROM ${t}_copies" -As Scalar -Session $S | Should -Be 0
        Get-Count $t | Should -Be 0
    }

    It 'stopped (Ctrl+C) in mid-load writes nothing, tells the host so, and the session goes on' {
        $t = New-People
        $flag = Join-Path ([IO.Path]::GetTempPath()) "wt-flag-$Suffix"
        Remove-Item $flag -ErrorAction Ignore
        if (-not ('AequorTest.RecordingHost' -as [type])) { Add-Type -TypeDefinition $RecordingHostSource }
        $recorder = [AequorTest.RecordingHost]::new()
        $ps = New-ModuleShell -PSHost $recorder {
            param($ModulePath, $Connection, $Secret, $Table, $Flag)
            Import-Module $ModulePath
            $null = Connect-Aequor $Connection -CoordinationSecret $Secret -ServiceName wt-stop -ReaperRunProbability 0
            1..100000000 | ForEach-Object { if ($_ -eq 1000) { Set-Content $Flag x }; @{ id = $_ } } | Write-AequorTableData -Table $Table
        } -ArgumentList $TestSecret, $t, $flag
        try {
            $handle = $ps.BeginInvoke()
            Wait-Until { Test-Path $flag } 30000 | Should -BeTrue
            $ps.Stop()
            # Stopped between two rows (most likely: making them is the slow part) or inside one, the same words.
            # Written as the command is disposed, which may come just after Stop() has returned.
            Wait-Until { $recorder.Warnings.Count -gt 0 } 5000 | Should -BeTrue
            $recorder.Warnings | Should -HaveCount 1
            $recorder.Warnings[0] | Should -BeLike "Write-AequorTableData was stopped on session 'default': The COPY into `"$t`" was cancelled (* rows sent)*nothing was written."
            $ps.Commands.Clear()
            $null = $ps.AddScript('Invoke-AequorQuery "SELECT 7" -As Scalar')
            $ps.Invoke() | Should -Be 7
        } finally {
            $ps.Dispose()
            $ps.Runspace.Dispose()
            Remove-Item $flag -ErrorAction Ignore
        }
        Get-Count $t | Should -Be 0
    }

    It 'stopped (Ctrl+C) between two rows, while the command before it works: nothing is written and the host is told, inside a transaction that it is aborted' {
        $t = New-People
        $flag = Join-Path ([IO.Path]::GetTempPath()) "wt-between-$Suffix"
        Remove-Item $flag -ErrorAction Ignore
        if (-not ('AequorTest.RecordingHost' -as [type])) { Add-Type -TypeDefinition $RecordingHostSource }
        $recorder = [AequorTest.RecordingHost]::new()
        $ps = New-ModuleShell -PSHost $recorder {
            param($ModulePath, $Connection, $Secret, $Table, $Flag)
            Import-Module $ModulePath
            $null = Connect-Aequor $Connection -CoordinationSecret $Secret -ServiceName wt-stop-between -ReaperRunProbability 0
            Start-AequorTransaction
            # After row 100 the row maker waits: the stop lands there, never inside Write-AequorTableData.
            1..200 | ForEach-Object { if ($_ -eq 101) { Set-Content $Flag x; Start-Sleep -Seconds 60 }; @{ id = $_ } } | Write-AequorTableData -Table $Table
        } -ArgumentList $TestSecret, $t, $flag
        try {
            $null = $ps.BeginInvoke()
            Wait-Until { Test-Path $flag } 30000 | Should -BeTrue
            $ps.Stop()
            # Written as the command is disposed, which may come just after Stop() has returned.
            Wait-Until { $recorder.Warnings.Count -gt 0 } 5000 | Should -BeTrue
            $recorder.Warnings | Should -HaveCount 1
            $recorder.Warnings[0] | Should -Be "Write-AequorTableData was stopped on session 'default': The COPY into `"$t`" was cancelled (100 rows sent), and nothing was written. The transaction it ran in is aborted: roll it back."
            $ps.Commands.Clear()
            $null = $ps.AddScript('Undo-AequorTransaction; Invoke-AequorQuery "SELECT 7" -As Scalar')
            $ps.Invoke() | Should -Be 7
        } finally {
            $ps.Dispose()
            $ps.Runspace.Dispose()
            Remove-Item $flag -ErrorAction Ignore
        }
        Get-Count $t | Should -Be 0
    }

    It 'stopped (Ctrl+C) while rows wait on a locked row: the server stops the COPY within seconds, nothing is written, the host is told, and the session goes on in its connection and transaction' {
        $t = New-People
        if (-not ('AequorTest.RecordingHost' -as [type])) { Add-Type -TypeDefinition $RecordingHostSource }
        $recorder = [AequorTest.RecordingHost]::new()
        # Another transaction's uncommitted row 1: the COPY waits for it and reads no more; the rows fill the socket
        # buffers and the next one blocks (or the stop lands between two rows, as the blocked row is let go).
        $lock = Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION -CoordinationSecret $TestSecret -ServiceName (New-TestServiceName wtl) -Name "wt-lock-$Suffix"
        Start-AequorTransaction -Session $lock
        $ps = $null
        try {
            $null = Invoke-AequorQuery "INSERT INTO $t (id) VALUES (1)" -Session $lock
            $ps = New-ModuleShell -PSHost $recorder {
                param($ModulePath, $Connection, $Secret, $Table)
                Import-Module $ModulePath
                $global:s = Connect-Aequor $Connection -CoordinationSecret $Secret -ServiceName wt-stop-lock -ReaperRunProbability 0
                $global:pid1 = $global:s.BackendPid
                Start-AequorTransaction
                $big = 'x' * 8KB
                1..1000000 | ForEach-Object { @{ id = $_; name = $big } } | Write-AequorTableData -Table $Table
            } -ArgumentList $TestSecret, $t
            $null = $ps.BeginInvoke()
            Wait-Until {
                (Invoke-AequorQuery "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'COPY %' || `$1 || '%'" -Parameters @(, $t) -As Scalar -Session $S) -gt 0
            } 30000 | Should -BeTrue
            Start-Sleep -Seconds 1
            $stop = $ps.BeginStop($null, $null)
            # Bounded only so that a COPY left to its 30 s round-trip timeout fails here: the lock is held until this test ends.
            $stop.AsyncWaitHandle.WaitOne(10000) | Should -BeTrue
            $ps.EndStop($stop)
            $ps.InvocationStateInfo.State | Should -Be 'Stopped'
            # Written as the command is disposed, which may come just after Stop() has returned.
            Wait-Until { $recorder.Warnings.Count -gt 0 } 5000 | Should -BeTrue
            $recorder.Warnings | Should -HaveCount 1
            $recorder.Warnings[0] | Should -BeLike "Write-AequorTableData was stopped on session '*': The COPY into `"$t`" was cancelled*nothing was written.*The transaction it ran in is aborted: roll it back."
            $ps.Commands.Clear()
            # Get-AequorSession shows it as 'Connected (tx failed)'.
            $null = $ps.AddScript('$global:s.TransactionFailed; Undo-AequorTransaction; Invoke-AequorQuery "SELECT 7" -As Scalar; $global:s.BackendPid -eq $global:pid1')
            $after = $ps.Invoke()
            ($ps.Streams.Error | Out-String) | Should -BeNullOrEmpty
            $after | Should -Be @($true, 7, $true)
        } finally {
            Undo-AequorTransaction -Session $lock
            Disconnect-Aequor -Session $lock -Confirm:$false
            if ($ps) { $ps.Dispose(); $ps.Runspace.Dispose() }
        }
        Get-Count $t | Should -Be 0
    }

    It '-WhatIf sends nothing, not even the table check, and says once which table would get how many rows' {
        $t = New-People
        if (-not ('AequorTest.RecordingHost' -as [type])) { Add-Type -TypeDefinition $RecordingHostSource }
        $recorder = [AequorTest.RecordingHost]::new()
        $ps = New-ModuleShell -PSHost $recorder {
            param($ModulePath, $Connection, $Secret, $Table)
            Import-Module $ModulePath
            $null = Connect-Aequor $Connection -CoordinationSecret $Secret -ServiceName wt-whatif -ReaperRunProbability 0
            1..3 | ForEach-Object { @{ id = $_; name = "n$_" } } | Write-AequorTableData -Table $Table -WhatIf -PassThru
            # A misspelt table is not looked up either: -WhatIf contacts nothing.
            @{ id = 1 } | Write-AequorTableData -Table "no_such_table_$Table" -WhatIf
            $WhatIfPreference = $true
            @() | Write-AequorTableData -Table $Table
        } -ArgumentList $TestSecret, $t
        try {
            $out = $ps.Invoke()
            ($ps.Streams.Error | Out-String) | Should -BeNullOrEmpty
            $out | Should -BeNullOrEmpty
            $said = @($recorder.Lines)
            $said | Should -HaveCount 3
            $said[0] | Should -Be "What if: Performing the operation `"Write 3 rows`" on target `"table $t on session 'default'`"."
            $said[1] | Should -Be "What if: Performing the operation `"Write 1 row`" on target `"table no_such_table_$t on session 'default'`"."
            $said[2] | Should -Be "What if: Performing the operation `"Write 0 rows`" on target `"table $t on session 'default'`"."
        } finally {
            $ps.Dispose()
            $ps.Runspace.Dispose()
        }
        Get-Count $t | Should -Be 0
    }

    It '-Confirm asks once, before the COPY; answered no, nothing is written' {
        $t = New-People
        if (-not ('AequorTest.RecordingHost' -as [type])) { Add-Type -TypeDefinition $RecordingHostSource }
        $recorder = [AequorTest.RecordingHost]::new()
        # ShouldProcess offers Yes, Yes to All, No, No to All, Suspend: 2 is No.
        $recorder.Answer = 2
        $ps = New-ModuleShell -PSHost $recorder {
            param($ModulePath, $Connection, $Secret, $Table)
            Import-Module $ModulePath
            $null = Connect-Aequor $Connection -CoordinationSecret $Secret -ServiceName wt-confirm -ReaperRunProbability 0
            1..3 | ForEach-Object { @{ id = $_ } } | Write-AequorTableData -Table $Table -Confirm -PassThru
        } -ArgumentList $TestSecret, $t
        try {
            $out = $ps.Invoke()
            ($ps.Streams.Error | Out-String) | Should -BeNullOrEmpty
            $out | Should -BeNullOrEmpty
            $recorder.Prompts | Should -HaveCount 1
            $recorder.Prompts[0] | Should -BeLike "*Write the rows piped in, in one COPY*table $t on session 'default'*"
        } finally {
            $ps.Dispose()
            $ps.Runspace.Dispose()
        }
        Get-Count $t | Should -Be 0
    }

    It 'loads a DataTable piped or given to -InputObject, and an array given to -InputObject row by row' {
        $t = New-People
        $dt = [Data.DataTable]::new()
        $null = $dt.Columns.Add('id', [int]); $null = $dt.Columns.Add('name', [string])
        1..3 | ForEach-Object { $null = $dt.Rows.Add($_, "dt$_") }
        $dt | Write-AequorTableData -Table $t -Session $S -PassThru | Should -Be 3
        $dt.Rows.Clear(); 4..5 | ForEach-Object { $null = $dt.Rows.Add($_, "dt$_") }
        Write-AequorTableData -Table $t -InputObject $dt -Session $S -PassThru | Should -Be 2
        $rows = 6..8 | ForEach-Object { [pscustomobject]@{ id = $_; name = "arr$_" } }
        Write-AequorTableData -Table $t -InputObject $rows -Session $S -PassThru | Should -Be 3
        $list = [Collections.Generic.List[hashtable]]::new(); $list.Add(@{ id = 9; name = 'list9' }); $list.Add(@{ ID = 10 })
        Write-AequorTableData -Table $t -InputObject $list -Session $S -PassThru | Should -Be 2
        Write-AequorTableData -Table $t -InputObject @{ id = 11; name = 'one' } -Session $S -PassThru | Should -Be 1
        # An XmlElement is enumerable (its child nodes) but is a row: its elements are its properties.
        ([xml]'<rows><row><id>12</id><name>xml12</name></row><row><id>13</id><name>xml13</name></row></rows>').rows.row |
            Write-AequorTableData -Table $t -Session $S -PassThru | Should -Be 2
        (Invoke-AequorQuery "SELECT string_agg(coalesce(name, '-'), ',' ORDER BY id) FROM $t" -As Scalar -Session $S) |
            Should -Be 'dt1,dt2,dt3,dt4,dt5,arr6,arr7,arr8,list9,-,one,xml12,xml13'
    }

    It '-InputObject with an array: a bad element is named by its place, and nothing is written' {
        $t = New-People
        { Write-AequorTableData -Table $t -InputObject @(@{ id = 1 }, 'text') -Session $S } | Should -Throw '*Row 2 is a System.String, not a row*'
        { Write-AequorTableData -Table $t -InputObject @(@{ id = 1 }, @{ id = 'x' }) -Session $S } | Should -Throw '*Row 2 of the input was refused*'
        Get-Count $t | Should -Be 0
    }

    It 'stopped (Ctrl+C) while the server is still finishing the COPY: the server cancels it, nothing is written, the session goes on' {
        $t = New-People
        # Each row takes the server a second: the rows, sent only when the pipeline ends, keep it busy past the end.
        $null = Invoke-AequorQuery ("CREATE FUNCTION ${t}_slow() RETURNS trigger LANGUAGE plpgsql AS `$`$ BEGIN PERFORM pg_sleep(1); RETURN NEW; END `$`$; " +
            "CREATE TRIGGER ${t}_slow BEFORE INSERT ON $t FOR EACH ROW EXECUTE FUNCTION ${t}_slow()") -Session $S
        $ps = New-ModuleShell {
            param($ModulePath, $Connection, $Secret, $Table)
            Import-Module $ModulePath
            $null = Connect-Aequor $Connection -CoordinationSecret $Secret -ServiceName wt-stop-finish -ReaperRunProbability 0
            1..40 | ForEach-Object { @{ id = $_ } } | Write-AequorTableData -Table $Table
        } -ArgumentList $TestSecret, $t
        try {
            $handle = $ps.BeginInvoke()
            Wait-Until {
                (Invoke-AequorQuery "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep' AND query LIKE 'COPY %' || `$1 || '%'" -Parameters @(, $t) -As Scalar -Session $S) -gt 0
            } 30000 | Should -BeTrue
            $stop = $ps.BeginStop($null, $null)
            # Bounded only so that a cancel never sent fails here (before the connection's 30 s command timeout)
            # instead of after the 40 rows.
            $stop.AsyncWaitHandle.WaitOne(20000) | Should -BeTrue
            $ps.EndStop($stop)
            $ps.InvocationStateInfo.State | Should -Be 'Stopped'
            # Counted once the server has let go of the COPY: rows inserted by a COPY still running are not visible yet.
            Wait-Until {
                (Invoke-AequorQuery "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE 'COPY %' || `$1 || '%'" -Parameters @(, $t) -As Scalar -Session $S) -eq 0
            } 60000 | Should -BeTrue
            Get-Count $t | Should -Be 0
            $ps.Commands.Clear()
            $null = $ps.AddScript('Invoke-AequorQuery "SELECT 7" -As Scalar')
            $ps.Invoke() | Should -Be 7
        } finally {
            $ps.Dispose()
        }
    }
}
