BeforeAll {
    . (Join-Path $PSScriptRoot 'Aequor.TestHelpers.ps1')
    $null = Get-Observer
    $script:S = Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION -CoordinationSecret $TestSecret -ServiceName (New-TestServiceName q)
}

AfterAll {
    Disconnect-Aequor -All -Confirm:$false
}

Describe 'Invoke-AequorQuery rows and types' {
    It 'writes one PSCustomObject per row, columns in order, with natural .NET types' {
        $row = Invoke-AequorQuery @'
SELECT 1::int AS i, 2::bigint AS b, 1.25::numeric AS n, 2.5::float8 AS f, true AS t, 'x'::text AS s,
       '2024-05-06 07:08:09+02'::timestamptz AS tz, '{"a": [1, 2]}'::jsonb AS jb, '{"k":1}'::json AS j,
       ARRAY[1, 2, 3] AS arr, ARRAY['a', NULL] AS sarr, '\xdeadbeef'::bytea AS bytes, NULL::text AS nothing,
       '9b2c3a1e-0000-4000-8000-000000000001'::uuid AS id, interval '90 seconds' AS span
'@
        $row | Should -BeOfType [pscustomobject]
        $row.psobject.Properties.Name | Should -Be @('i', 'b', 'n', 'f', 't', 's', 'tz', 'jb', 'j', 'arr', 'sarr', 'bytes', 'nothing', 'id', 'span')
        $row.i | Should -BeOfType [int]
        $row.b | Should -BeOfType [long]
        $row.n | Should -BeOfType [decimal]
        $row.n | Should -Be 1.25
        $row.f | Should -BeOfType [double]
        $row.t | Should -BeTrue
        $row.tz | Should -BeOfType [datetime]
        $row.tz.Kind | Should -Be 'Utc'
        $row.tz | Should -Be ([datetime]::new(2024, 5, 6, 5, 8, 9, [DateTimeKind]::Utc))
        $row.jb | Should -BeOfType [string]
        ($row.jb | ConvertFrom-Json).a | Should -Be @(1, 2)
        $row.j | Should -Be '{"k":1}'
        , $row.arr | Should -BeOfType [int[]]
        $row.arr | Should -Be @(1, 2, 3)
        $row.sarr[0] | Should -Be 'a'
        $row.sarr[1] | Should -BeNullOrEmpty
        , $row.bytes | Should -BeOfType [byte[]]
        $row.bytes | Should -Be @(0xde, 0xad, 0xbe, 0xef)
        $row.nothing | Should -BeNullOrEmpty
        $row.psobject.Properties['nothing'].Value -eq $null | Should -BeTrue
        $row.id | Should -BeOfType [guid]
        $row.span | Should -Be ([timespan]::FromSeconds(90))
    }

    It 'streams: Select-Object -First 2 returns at once and stops the query on the server' {
        $sw = [Diagnostics.Stopwatch]::StartNew()
        $first = Invoke-AequorQuery 'SELECT generate_series(1, 100000000) AS g' | Select-Object -First 2
        $sw.ElapsedMilliseconds | Should -BeLessThan 5000
        $first.g | Should -Be @(1, 2)
        # The session is free and the server idle again.
        Invoke-AequorQuery 'SELECT 7' -As Scalar | Should -Be 7
        (Get-Backend $S.BackendPid).state | Should -Be 'idle'
    }

    It 'reads arrays holding NULL, ranges and geometric types as the server writes them, and infinity as UTC' {
        $row = Invoke-AequorQuery @'
SELECT ARRAY[1, NULL] AS ints, int4range(1, 5) AS r, point(1, 2) AS p, '-infinity'::timestamptz AS past,
       '100000000 days'::interval AS long, tstzrange('2024-01-01 00:00+00', NULL) AS since, '(0,1)'::tid AS ctid
'@
        , $row.ints | Should -BeOfType ([Nullable[int][]])
        $row.ints[0] | Should -Be 1
        $row.ints[1] | Should -BeNullOrEmpty
        $row.r | Should -Be '[1,5)'
        $row.p | Should -Be '(1,2)'
        $row.past | Should -Be ([datetime]::MinValue)
        $row.past.Kind | Should -Be 'Utc'
        $row.long | Should -Be '100000000 days'
        $row.since | Should -Be '["2024-01-01 00:00:00+00",)'
        $row.ctid | Should -Be '(0,1)'
    }

    It 'reads date as [datetime], time as [timespan], and timetz and network types as the server writes them' {
        (Invoke-AequorQuery -As Scalar "SELECT '2024-01-02'::date") -lt (Get-Date) | Should -BeTrue
        $row = Invoke-AequorQuery @'
SELECT '2024-01-02'::date AS d, '10:11:12'::time AS t, '10:11:12+02'::timetz AS tz, '1.2.3.4/24'::inet AS i,
       '10.0.0.0/8'::cidr AS c, '08:00:2b:01:02:03'::macaddr AS m, ARRAY['2024-01-02', NULL]::date[] AS ds,
       NULL::date AS nd, 'infinity'::date AS forever
'@
        $row.d | Should -BeOfType [datetime]
        $row.d | Should -Be ([datetime]'2024-01-02')
        $row.d.Kind | Should -Be 'Unspecified'
        Get-Date $row.d -Format 'yyyy-MM-dd' | Should -Be '2024-01-02'
        $row.t | Should -Be ([timespan]'10:11:12')
        $row.tz | Should -Be '10:11:12+02'
        $row.i | Should -Be '1.2.3.4/24'
        $row.c | Should -Be '10.0.0.0/8'
        $row.m | Should -Be '08:00:2b:01:02:03'
        , $row.ds | Should -BeOfType ([Nullable[datetime][]])
        $row.ds[0] | Should -Be ([datetime]'2024-01-02')
        $row.ds[1] | Should -BeNullOrEmpty
        $row.nd | Should -BeNullOrEmpty
        $row.forever | Should -Be ([datetime]::MaxValue)

        # Beyond [datetime]: the server's text, not an error for the whole result.
        $far = Invoke-AequorQuery "SELECT '0001-01-01 BC'::date AS bc, '10000-01-01 12:00'::timestamptz AS late, '24:00'::time AS midnight, 1 AS n"
        $far.bc | Should -Be '0001-01-01 BC'
        $far.late | Should -Be '10000-01-01 12:00:00+00'
        $far.midnight | Should -Be ([timespan]::FromDays(1))
        $far.n | Should -Be 1
        Invoke-AequorQuery -As Scalar 'SELECT $1 = ''1.2.3.4''::inet' -Parameters @(, [ipaddress]'1.2.3.4') | Should -BeTrue
        Invoke-AequorQuery -As Scalar 'SELECT $1::inet = ''1.2.3.4/24''::inet' -Parameters @(, '1.2.3.4/24') | Should -BeTrue
    }

    It 'reads a void column (pg_sleep, pg_advisory_lock) as $null' {
        $row = Invoke-AequorQuery 'SELECT pg_sleep(0) AS slept, 1 AS one'
        $row.slept | Should -BeNullOrEmpty
        $row.one | Should -Be 1
    }

    It 'writes the rows of every result set, in order, and names duplicate columns apart' {
        $rows = Invoke-AequorQuery 'SELECT 1 AS x; SELECT 2 AS y, 3 AS y; SELECT 4 AS x'
        $rows.Count | Should -Be 3
        $rows[0].x | Should -Be 1
        $rows[1].y | Should -Be 2
        $rows[1].y_2 | Should -Be 3
        $rows[2].x | Should -Be 4
    }

    It 'reads an enum created after the session connected once the first read has said so: the session reloads its types' {
        $type = "q_mood_$([Guid]::NewGuid().ToString('N').Substring(0, 8))"
        try {
            $null = Invoke-AequorQuery "CREATE TYPE $type AS ENUM ('sad', 'ok')"
            $err = $null
            $null = Invoke-AequorQuery "SELECT 'ok'::$type AS mood" -ErrorVariable err -ErrorAction SilentlyContinue
            $err[0].FullyQualifiedErrorId | Should -BeLike 'AequorQueryFailed*'
            "$($err[0])" | Should -Match "Column 1 \('mood'\) is of a type created after this session loaded"
            "$($err[0])" | Should -Not -Match '-\.-'
            # The next statements read it, rows and scalar alike, on the same connection.
            $reconnects = $S.Reconnects
            (Invoke-AequorQuery "SELECT 'ok'::$type AS mood").mood | Should -Be 'ok'
            Invoke-AequorQuery "SELECT ARRAY['sad'::$type]" -As Scalar | Should -Be @('sad')
            $S.Reconnects | Should -Be $reconnects
            # The scalar path heals the same way.
            $other = "$($type)_b"
            $null = Invoke-AequorQuery "CREATE TYPE $other AS ENUM ('x')"
            $err = $null
            $null = Invoke-AequorQuery "SELECT 'x'::$other" -As Scalar -ErrorVariable err -ErrorAction SilentlyContinue
            "$($err[0])" | Should -Match 'is of a type created after this session loaded'
            Invoke-AequorQuery "SELECT 'x'::$other" -As Scalar | Should -Be 'x'
        } finally {
            $null = Invoke-AequorQuery "DROP TYPE IF EXISTS $type; DROP TYPE IF EXISTS $($type)_b"
        }
    }

    It 'renames a column whose name PowerShell reserves (PSObject, psbase ...) as it renames duplicates' {
        $row = Invoke-AequorQuery 'SELECT 1 AS "PSObject", 2 AS psbase, 3 AS "PSAdapted", 4 AS "psextended", 5 AS "PSTypeNames", 6 AS "PSObject_2"'
        $row.psobject.Properties.Name | Should -Be @('PSObject_2', 'psbase_2', 'PSAdapted_2', 'psextended_2', 'PSTypeNames_2', 'PSObject_2_2')
        $row.PSObject_2 | Should -Be 1
        $row.PSTypeNames_2 | Should -Be 5
        $row.PSObject_2_2 | Should -Be 6
        $table = Invoke-AequorQuery 'SELECT 1 AS pstypenames' -As DataTable
        $table.Columns.ColumnName | Should -Be 'pstypenames_2'
    }
}

Describe 'Invoke-AequorQuery parameters' {
    It 'binds a hashtable to @name placeholders and an array to $1, $2' {
        Invoke-AequorQuery 'SELECT @a::int + @b::int AS s' -Parameters @{ a = 2; '@b' = 3 } | ForEach-Object s | Should -Be 5
        Invoke-AequorQuery 'SELECT $1::int * $2::int AS p' -Parameters 6, 7 | ForEach-Object p | Should -Be 42
        # By position too: -Query is 0, -Parameters is 1.
        Invoke-AequorQuery 'SELECT $1::text AS t' 'positional' | ForEach-Object t | Should -Be 'positional'
    }

    It 'keeps a hostile value a value' {
        $hostile = "'; DROP TABLE x; --"
        Invoke-AequorQuery 'SELECT $1::text AS v' -Parameters @(, $hostile) | ForEach-Object v | Should -Be $hostile
        Invoke-AequorQuery 'SELECT @v::text AS v' -Parameters @{ v = $hostile } | ForEach-Object v | Should -Be $hostile
    }

    It 'sends arrays, nulls, dates and booleans with their types' {
        $r = Invoke-AequorQuery 'SELECT $1::int[] AS a, $2::text IS NULL AS isnull, $3::timestamptz AS d, $4::bool AS flag' -Parameters @(@(1, 2, 3), $null, [datetime]::SpecifyKind([datetime]::new(2020, 1, 2, 3, 4, 5), 'Utc'), $true)
        $r.a | Should -Be @(1, 2, 3)
        $r.isnull | Should -BeTrue
        $r.d | Should -Be ([datetime]::SpecifyKind([datetime]::new(2020, 1, 2, 3, 4, 5), 'Utc'))
        $r.flag | Should -BeTrue
    }

    It 'sends a [datetimeoffset] with an offset as the instant it names, on the same connection' {
        $reconnects = $S.Reconnects
        Invoke-AequorQuery 'SELECT $1 = timestamptz ''2024-06-01 10:00:00+00''' ([datetimeoffset]'2024-06-01T12:00:00+02:00') -As Scalar | Should -BeTrue
        Invoke-AequorQuery 'SELECT $1::timestamptz[] = ARRAY[timestamptz ''2024-06-01 10:00:00+00'']' -Parameters @(, [datetimeoffset[]]@([datetimeoffset]'2024-06-01T05:00:00-05:00')) -As Scalar | Should -BeTrue
        $S.Reconnects | Should -Be $reconnects
    }

    It 'sends a local [datetime] (Get-Date) as the instant it names, whatever the client''s time zone' {
        . (Join-Path $PSScriptRoot 'Support/FreshPwsh.ps1')
        $run = Invoke-FreshPwsh -Environment @{ TZ = 'Asia/Kolkata' } -Script @"
Import-Module '$env:AEQUOR_MODULE_PATH'
`$null = Connect-Aequor '$env:AEQUOR_TEST_APP_CONNECTION' -LeaseMode Optional
`$local = [datetime]::new(2024, 6, 1, 15, 30, 0, [DateTimeKind]::Local)
`$r = Invoke-AequorQuery 'SELECT pg_typeof(`$1)::text AS t, `$1 = timestamptz ''2024-06-01 10:00:00+00'' AS same' -Parameters @(, `$local)
'RESULT:' + (@{ Offset = [TimeZoneInfo]::Local.BaseUtcOffset.TotalMinutes; Type = `$r.t; Same = `$r.same } | ConvertTo-Json -Compress)
"@
        $run.Result.Offset | Should -Be 330 -Because (Format-FreshPwsh $run)
        $run.Result.Type | Should -Be 'timestamp with time zone' -Because (Format-FreshPwsh $run)
        $run.Result.Same | Should -BeTrue
    }

    It 'sends typed, empty and all-null arrays, widens mixed numbers, and names a mix it cannot send' {
        Invoke-AequorQuery 'SELECT 1 = ANY(@ids)' -Parameters @{ ids = [int[]]@() } -As Scalar | Should -BeFalse
        Invoke-AequorQuery 'SELECT 1 = ANY(@ids)' -Parameters @{ ids = @() } -As Scalar | Should -BeFalse
        Invoke-AequorQuery 'SELECT cardinality(@ids::int[])' -Parameters @{ ids = @() } -As Scalar | Should -Be 0
        Invoke-AequorQuery 'SELECT array_length(@ids::int[], 1)' -Parameters @{ ids = @($null, $null) } -As Scalar | Should -Be 2
        Invoke-AequorQuery 'SELECT pg_typeof(@ids)::text' -Parameters @{ ids = @(1, 5000000000) } -As Scalar | Should -Be 'bigint[]'
        Invoke-AequorQuery 'SELECT 5000000000 = ANY(@ids)' -Parameters @{ ids = @(1, 5000000000) } -As Scalar | Should -BeTrue
        Invoke-AequorQuery 'SELECT pg_typeof(@ids)::text' -Parameters @{ ids = @(1, 2.5) } -As Scalar | Should -Be 'double precision[]'
        # Past 2^53 a double would round the integer: numeric keeps both exactly.
        Invoke-AequorQuery 'SELECT pg_typeof(@ids)::text' -Parameters @{ ids = @(1, 9007199254740993, 1.5) } -As Scalar | Should -Be 'numeric[]'
        Invoke-AequorQuery 'SELECT 9007199254740993 = ANY(@ids)' -Parameters @{ ids = @(1, 9007199254740993, 1.5) } -As Scalar | Should -BeTrue
        # ConvertFrom-Json reads a number past long as a BigInteger beside the Int64s: numeric[], exactly.
        $json = '{"ids": [1, 99999999999999999999]}' | ConvertFrom-Json
        Invoke-AequorQuery 'SELECT pg_typeof(@ids)::text || @ids::text' -Parameters @{ ids = $json.ids } -As Scalar | Should -Be 'numeric[]{1,99999999999999999999}'
        # ... unless a double has no exact decimal (1e-30): refused, never rounded.
        $err = $null
        try { Invoke-AequorQuery 'SELECT @ids' -Parameters @{ ids = @(9007199254740993, 1e-30) } } catch { $err = $_ }
        $err.FullyQualifiedErrorId | Should -BeLike 'AequorInvalidParameter*'
        $err = $null
        try { Invoke-AequorQuery 'SELECT @ids' -Parameters @{ ids = @(1, 'a') } } catch { $err = $_ }
        $err.FullyQualifiedErrorId | Should -BeLike 'AequorInvalidParameter*'
        "$err" | Should -Match 'mixing Int32, String'
    }

    It 'sends an array of more dimensions ([int[,]], [object[,]]) in its shape, not flattened; one with no value to type it is refused' {
        $grid = New-Object 'int[,]' 2, 3
        foreach ($i in 0..1) { foreach ($j in 0..2) { $grid[$i, $j] = 3 * $i + $j + 1 } }
        Invoke-AequorQuery 'SELECT @g::text' -Parameters @{ g = $grid } -As Scalar | Should -Be '{{1,2,3},{4,5,6}}'
        $words = New-Object 'object[,]' 2, 2
        $words[0, 0] = 'a b'; $words[0, 1] = $null; $words[1, 0] = 'c'; $words[1, 1] = 'd'
        Invoke-AequorQuery 'SELECT pg_typeof($1)::text || $1::text' -Parameters @(, $words) -As Scalar | Should -Be 'text[]{{"a b",NULL},{c,d}}'
        $err = $null
        try { Invoke-AequorQuery 'SELECT @g' -Parameters @{ g = (New-Object 'object[,]' 2, 2) } } catch { $err = $_ }
        $err.FullyQualifiedErrorId | Should -BeLike 'AequorInvalidParameter*'
        "$err" | Should -Match 'more dimensions'
    }

    It 'says how to bind an array to $1 when PowerShell spread it over $1, $2 ... (ANY($1), $1::int[])' {
        foreach ($ids in @(@(1, 2, 3), 7)) {
            foreach ($sql in 'SELECT 3 = ANY($1)', 'SELECT 3 = ANY($1::int[])') {
                $err = $null
                Invoke-AequorQuery $sql $ids -ErrorVariable err -ErrorAction SilentlyContinue
                # Three values for one placeholder are refused before sending (see the next test); one is the server's error.
                $err[0].FullyQualifiedErrorId | Should -BeLike $(if ($ids.Count -gt 1) { 'AequorInvalidParameter*' } else { 'AequorQueryFailed*' })
                "$($err[0])" | Should -Match 'to bind an array to \$1 .*-Parameters @\(, @\(\$ids\)\)' -Because "$sql with $($ids.Count) value(s)"
                Invoke-AequorQuery $sql -Parameters @(, @($ids)) -As Scalar | Should -Be ($ids -contains 3)
            }
        }
    }

    It 'refuses more positional values than the statement has placeholders, which the server would silently ignore; nothing is sent' {
        $null = Invoke-AequorQuery 'CREATE TEMP TABLE q_spread (id int); INSERT INTO q_spread VALUES (1), (2), (3)'
        $ids = Invoke-AequorQuery 'SELECT id FROM q_spread ORDER BY id' | ForEach-Object id
        $err = $null
        Invoke-AequorQuery 'DELETE FROM q_spread WHERE id = $1' $ids -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -BeLike 'AequorInvalidParameter*'
        "$($err[0])" | Should -Match 'placeholders up to \$1 but 3 positional values were given'
        Invoke-AequorQuery 'SELECT count(*) FROM q_spread' -As Scalar | Should -Be 3 -Because 'the DELETE was not sent'
        # Placeholders in quotes, comments, dollar-quoted bodies and identifiers do not count; real ones do.
        Invoke-AequorQuery 'SELECT $1::int + $2::int /* $3 */ -- $4' 1, 2 -As Scalar | Should -Be 3
        Invoke-AequorQuery 'SELECT ''$3'' || $$ $4 $$ || $1::text || $2::text' 1, 2 -As Scalar | Should -Be '$3 $4 12'
        $err = $null
        Invoke-AequorQuery 'SELECT ''$3'' || $1::text' 1, 2 -ErrorVariable err -ErrorAction SilentlyContinue
        "$($err[0])" | Should -Match 'placeholders up to \$1 but 2'
        Invoke-AequorQuery 'SELECT $2::int - $1::int' 1, 5 -As Scalar | Should -Be 4
    }

    It 'refuses an array mixing instants (Get-Date) with zoneless [datetime] values, which would shift the instants' {
        $zoneless = [datetime]'2024-01-31T00:00:00'
        $instant = [datetime]::new(2024, 6, 1, 12, 0, 0, [DateTimeKind]::Local)
        foreach ($mix in @(@($zoneless, $instant), @($instant, $zoneless), @($zoneless, [datetime]::UtcNow))) {
            $err = $null
            try { Invoke-AequorQuery 'SELECT @d::text' @{ d = $mix } } catch { $err = $_ }
            $err.FullyQualifiedErrorId | Should -BeLike 'AequorInvalidParameter*'
            "$err" | Should -Match '\[datetime\] values of different kinds'
        }

        Invoke-AequorQuery 'SELECT pg_typeof(@d)::text' @{ d = @($zoneless, $zoneless.AddDays(1)) } -As Scalar | Should -Be 'timestamp without time zone[]'
        Invoke-AequorQuery 'SELECT pg_typeof(@d)::text' @{ d = @($instant, [datetime]::UtcNow) } -As Scalar | Should -Be 'timestamp with time zone[]'
    }

    It 'a value PostgreSQL has no type for ([version], a script block) is AequorInvalidParameter, not advice to set an NpgsqlDbType; a transaction goes on' {
        Start-AequorTransaction
        try {
            $errs = $null
            Invoke-AequorQuery 'SELECT $1::text' ([version]'1.2.3') -ErrorVariable errs -ErrorAction SilentlyContinue
            Invoke-AequorQuery 'SELECT @v::text' @{ v = { 'code' } } -ErrorVariable +errs -ErrorAction SilentlyContinue
            $errs | Should -HaveCount 2
            $errs.FullyQualifiedErrorId | ForEach-Object { $_ | Should -BeLike 'AequorInvalidParameter*' }
            "$($errs[0])" | Should -Match 'value of type System\.Version has no PostgreSQL type\. Nothing was sent'
            "$errs" | Should -Not -Match 'NpgsqlDbType'
            $S.InTransaction | Should -BeTrue
            Invoke-AequorQuery 'SELECT $1::text' ([string][version]'1.2.3') -As Scalar | Should -Be '1.2.3'
        } finally {
            Undo-AequorTransaction
        }
    }

    It 'says which @name has no value when the server reads it as a column (42703)' {
        $err = $null
        Invoke-AequorQuery 'SELECT @a::int + @b::int' @{ a = 1 } -ErrorVariable err -ErrorAction SilentlyContinue
        "$($err[0])" | Should -Match 'column "b" does not exist'
        "$($err[0])" | Should -Match 'The statement uses @b, but -Parameters has no value named b'
        "$($err[0])" | Should -Not -Match 'which no @name can name'
        $err = $null
        Invoke-AequorQuery 'SELECT @a::int' 1 -ErrorVariable err -ErrorAction SilentlyContinue
        "$($err[0])" | Should -Match 'The statement uses @a, which only a hashtable binds'
        # A key with a space cannot be reached: '@a b' is @a, then b.
        $err = $null
        Invoke-AequorQuery 'SELECT @a b' @{ 'a b' = 1; 'order-id' = 2; c = 3; 'x.y' = 4 } -ErrorVariable err -ErrorAction SilentlyContinue
        "$($err[0])" | Should -Match "no value named a: .* -Parameters has 'a b', 'order-id', which no @name can name: a placeholder's name is letters, digits, _ and \. only"
        # A dotted key is one Npgsql binds: not listed.
        Invoke-AequorQuery 'SELECT @x.y::int' @{ 'x.y' = 4 } -As Scalar | Should -Be 4
        $err = $null
        Invoke-AequorQuery 'SELECT no_such_column' -ErrorVariable err -ErrorAction SilentlyContinue
        "$($err[0])" | Should -Not -Match 'The statement uses'
    }

    It 'sends unsigned integers (CIM and WMI properties are full of them) widened to a signed type that holds them' {
        Invoke-AequorQuery 'SELECT pg_typeof($1)::text || '':'' || $1::text' ([uint16]65535) -As Scalar | Should -Be 'integer:65535'
        Invoke-AequorQuery 'SELECT pg_typeof($1)::text || '':'' || $1::text' ([uint32]4294967295) -As Scalar | Should -Be 'bigint:4294967295'
        Invoke-AequorQuery 'SELECT pg_typeof(@v)::text || '':'' || @v::text' @{ v = [uint64]::MaxValue } -As Scalar | Should -Be 'numeric:18446744073709551615'
        Invoke-AequorQuery 'SELECT pg_typeof(@v)::text || '':'' || @v::text' @{ v = [uint32[]](1, 4294967295) } -As Scalar | Should -Be 'bigint[]:{1,4294967295}'
        Invoke-AequorQuery 'SELECT pg_typeof(@v)::text' @{ v = @([uint64]1, 2) } -As Scalar | Should -Be 'numeric[]'
    }

    It 'refuses a SecureString, a PSCredential or an enum with AequorInvalidParameter saying what to pass, and sends nothing' {
        $secret = ConvertTo-SecureString 'hunter2-never-in-sql' -AsPlainText -Force
        $cases = @(
            @{ Value = @(, $secret); Match = 'SecureString or PSCredential' }
            @{ Value = @{ p = [pscredential]::new('u', $secret) }; Match = 'SecureString or PSCredential' }
            @{ Value = @{ p = @($secret) }; Match = 'SecureString or PSCredential' }
            @{ Value = @(, [DayOfWeek]::Monday); Match = '\[DayOfWeek\]::Monday.*\[string\] for its name or \[int\] for its number' }
            @{ Value = @{ p = [DayOfWeek[]]@('Monday') }; Match = '\[DayOfWeek\]::Monday' }
        )
        foreach ($case in $cases) {
            $err = $null
            $queries = $S.Queries
            try { Invoke-AequorQuery 'SELECT $1::text' -Parameters $case.Value } catch { $err = $_ }
            $err.FullyQualifiedErrorId | Should -BeLike 'AequorInvalidParameter*'
            "$err" | Should -Match $case.Match
            "$err" | Should -Not -Match 'NpgsqlDbType|hunter2'
            $S.Queries | Should -Be $queries -Because 'nothing is sent'
        }

        Invoke-AequorQuery 'SELECT $1::text' ([int][DayOfWeek]::Monday) -As Scalar | Should -Be '1'
    }

    It 'binds NULL for a variable that a command filled with nothing (AutomationNull), not a PSCustomObject error' {
        # $id = Get-Something that found nothing: PowerShell stores AutomationNull, not $null, in the hashtable.
        function Get-Nothing { }
        $nothing = Get-Nothing
        Invoke-AequorQuery 'SELECT @x::int IS NULL' -Parameters @{ x = $nothing } -As Scalar | Should -BeTrue
        Invoke-AequorQuery 'SELECT $1::int IS NULL, $2::int' -Parameters $nothing, 5 | ForEach-Object { $_.'?column?' } | Should -BeTrue
        Invoke-AequorQuery 'SELECT @x::int[] AS a' -Parameters @{ x = @(1, $nothing, 3) } | ForEach-Object a | Should -Be @(1, $null, 3)
    }

    It 'says how to bind NULL when -Parameters is $null, and how to run several statements with parameters' {
        $err = $null
        Invoke-AequorQuery 'SELECT $1::text IS NULL' $null -ErrorVariable err -ErrorAction SilentlyContinue
        "$($err[0])" | Should -Match 'to bind NULL to \$1, pass -Parameters @\(\$null\)'
        Invoke-AequorQuery 'SELECT $1::text IS NULL' @($null) -As Scalar | Should -BeTrue
        $err = $null
        Invoke-AequorQuery 'SELECT $1::int AS a; SELECT $1::int AS b' 7 -ErrorVariable err -ErrorAction SilentlyContinue
        "$($err[0])" | Should -Match 'use @name parameters'
        (Invoke-AequorQuery 'SELECT @n::int AS a; SELECT @n::int AS b' @{ n = 7 }).Count | Should -Be 2
    }
}

Describe 'Invoke-AequorQuery -As' {
    BeforeAll {
        $null = Invoke-AequorQuery 'CREATE TABLE IF NOT EXISTS q_as (id int PRIMARY KEY, name text)'
        $null = Invoke-AequorQuery 'TRUNCATE q_as'
    }

    It 'NonQuery gives the rows affected' {
        Invoke-AequorQuery 'INSERT INTO q_as SELECT g, ''n'' || g FROM generate_series(1, 4) g' -As NonQuery | Should -Be 4
        Invoke-AequorQuery 'UPDATE q_as SET name = name WHERE id <= 2' -As nonquery | Should -Be 2
        # Summed over the statements that report a count; -1 when none does (ADO.NET's "not applicable").
        Invoke-AequorQuery 'DELETE FROM q_as WHERE id = 4; SELECT 1; INSERT INTO q_as VALUES (4, ''n4'')' -As NonQuery | Should -Be 2
        Invoke-AequorQuery 'SELECT * FROM q_as' -As NonQuery | Should -Be -1
        Invoke-AequorQuery 'CREATE TABLE q_as_tmp (a int); DROP TABLE q_as_tmp' -As NonQuery | Should -Be -1
        Invoke-AequorQuery 'DELETE FROM q_as WHERE false' -As NonQuery | Should -Be 0
    }

    It 'Scalar gives the first column of the first row' {
        Invoke-AequorQuery 'SELECT count(*) FROM q_as' -As Scalar | Should -Be 4
        Invoke-AequorQuery 'SELECT name, id FROM q_as ORDER BY id' -As Scalar | Should -Be 'n1'
        Invoke-AequorQuery 'SELECT 1 WHERE false' -As Scalar | Should -BeNullOrEmpty
    }

    It 'DataTable gives one typed table per result set' {
        $tables = @(Invoke-AequorQuery 'SELECT id, name FROM q_as ORDER BY id; SELECT 1 AS one' -As DataTable)
        $tables.Count | Should -Be 2
        $tables[0] -is [System.Data.DataTable] | Should -BeTrue
        $tables[0].Rows.Count | Should -Be 4
        $tables[0].Columns['id'].DataType | Should -Be ([int])
        $tables[0].Rows[3]['name'] | Should -Be 'n4'
        $tables[1].Rows[0]['one'] | Should -Be 1
    }

    It 'DataTable keeps the values rows give: a timestamptz in UTC, a timestamp unspecified, a float''s -0' {
        $query = "SELECT '2024-05-06 07:08:09+02'::timestamptz AS tz, '2024-05-06 07:08:09'::timestamp AS ts, '-0'::float8 AS f, '-0'::float4 AS r, 1.5::float8 AS g"
        $row = Invoke-AequorQuery $query
        $table = Invoke-AequorQuery $query -As DataTable
        $row.tz.Kind | Should -Be 'Utc'
        $table.Rows[0]['tz'].Kind | Should -Be 'Utc'
        $table.Rows[0]['tz'] | Should -Be $row.tz
        $table.Rows[0]['tz'].ToLocalTime() | Should -Be $row.tz.ToLocalTime()
        $table.Rows[0]['ts'].Kind | Should -Be 'Unspecified'
        [double]::IsNegative($row.f) | Should -BeTrue
        [double]::IsNegative($table.Rows[0]['f']) | Should -BeTrue
        [single]::IsNegative($table.Rows[0]['r']) | Should -BeTrue
        $table.Columns['g'].DataType | Should -Be ([double])

        # With no rows, nothing says the column is UTC: a row added to it later keeps its own Kind.
        (Invoke-AequorQuery "$query WHERE false" -As DataTable).Columns['ts'].DateTimeMode | Should -Be 'UnspecifiedLocal'
    }

    It 'PSObject is the default and can be named' {
        (Invoke-AequorQuery 'SELECT 1 AS a' -As PSObject).a | Should -Be 1
    }

    It 'an unknown -As gives AequorInvalidParameter naming the choices' {
        $err = $null
        try { Invoke-AequorQuery 'SELECT 1' -As Xml } catch { $err = $_ }
        $err.FullyQualifiedErrorId | Should -BeLike 'AequorInvalidParameter*'
        $err.Exception.Message | Should -Match 'Scalar'
    }
}

Describe 'Invoke-AequorQuery -File, errors and timeouts' {
    It 'runs a SQL file' {
        $file = Join-Path $TestDrive 'q.sql'
        Set-Content $file "SELECT 'from file' AS origin, `$1::int AS n"
        $r = Invoke-AequorQuery -File $file -Parameters 5
        $r.origin | Should -Be 'from file'
        $r.n | Should -Be 5
    }

    It 'names the line and column of a failing statement in the whole text and in a -File script, as psql does' {
        Invoke-AequorQuery "SELECT 1;`nSELECT 1/0;`nSELECT 3" -ErrorVariable e -ErrorAction SilentlyContinue | Out-Null
        $e[0].Exception.Message | Should -Match ([regex]::Escape("22012: division by zero$([Environment]::NewLine)in statement 2 of 3, at line 2$([Environment]::NewLine)LINE 2: SELECT 1/0"))
        $e[0].Exception.Statement | Should -Be 2

        Invoke-AequorQuery "SELECT 'é', @value,`n  'x'::int" -Parameters @{ value = 1 } -ErrorVariable e -ErrorAction SilentlyContinue | Out-Null
        $e[0].Exception.Message | Should -Match 'at line 2, column 3'
        $e[0].Exception.Message | Should -Not -Match 'POSITION'
        $e[0].Exception.Message | Should -Match ([regex]::Escape("LINE 2:   'x'::int$([Environment]::NewLine)          ^"))

        $file = Join-Path $TestDrive 'broken.sql'
        $lines = @('-- setup; nothing here') + (1..38 | ForEach-Object { "SELECT $_;" }) + @('SELECT 1 1;')
        Set-Content $file $lines
        Invoke-AequorQuery -File $file -ErrorVariable e -ErrorAction SilentlyContinue | Out-Null
        $e[0].Exception.Message | Should -Match ([regex]::Escape("42601: syntax error at or near ""1""$([Environment]::NewLine)in statement 39 of 39, at line 40, column 10 of file '$file'"))
        ($e[0].Exception.Line, $e[0].Exception.Column) | Should -Be @(40, 10)
    }

    It 'shows where a statement failed on one line, since PowerShell''s view joins a script''s error lines, with the word at the column' {
        Invoke-AequorQuery "SELECT 1;`nSELECT *`n  FROM nosuch_table" -ErrorVariable e -ErrorAction SilentlyContinue | Out-Null
        $e[0].ErrorDetails.Message | Should -BeLike "*failed: 42P01: relation ""nosuch_table"" does not exist, in statement 2 of 2, at line 3, column 8, near ""nosuch_table"""
        # The exception keeps psql's layout, for logs and Get-Error.
        $e[0].Exception.Message | Should -Match ([regex]::Escape("LINE 3:   FROM nosuch_table$([Environment]::NewLine)$(' ' * 15)^"))
        # As the default view shows it from a script: wrapped at the window's width, each line behind a "|".
        $shown = ($e[0] | Out-String) -replace '\s*\r?\n\s*\|\s*', ' '
        $shown | Should -Match 'at line 3, column 8, near "nosuch_table"'
        $shown | Should -Not -Match ' {6,}\^'

        Invoke-AequorQuery "SELECT 'é', @value,`n  'x'::int" -Parameters @{ value = 1 } -ErrorVariable e -ErrorAction SilentlyContinue | Out-Null
        $e[0].ErrorDetails.Message | Should -BeLike '*at line 2, column 3, near "''x''"'

        # The server's own "at or near" is not said twice.
        Invoke-AequorQuery 'SELECT 1 1' -ErrorVariable e -ErrorAction SilentlyContinue | Out-Null
        $e[0].ErrorDetails.Message | Should -BeLike '*syntax error at or near "1", at line 1, column 10'

        Invoke-AequorQuery 'SELECT nosuch_fn(1)' -ErrorVariable e -ErrorAction SilentlyContinue | Out-Null
        $e[0].ErrorDetails.Message | Should -BeLike '*does not exist, at line 1, column 8, near "nosuch_fn" HINT: No function matches * explicit type casts.'
        "$($e[0])" | Should -BeExactly $e[0].ErrorDetails.Message

        Invoke-AequorQuery 'SELECT @a::int + @b' -Parameters @{ a = 1 } -ErrorVariable e -ErrorAction SilentlyContinue | Out-Null
        $e[0].ErrorDetails.Message | Should -BeLike '*near "@b"*The statement uses @b, but -Parameters has no value named b*'
    }

    It 'runs SQL files piped from Get-ChildItem, in order, and refuses a stray argument beside -File' {
        $dir = Join-Path $TestDrive 'migrations'
        $null = New-Item -ItemType Directory $dir
        Set-Content (Join-Path $dir '001.sql') "SELECT 1 AS step"
        Set-Content (Join-Path $dir '002.sql') "SELECT 2 AS step"
        (Get-ChildItem $dir -Filter *.sql | Sort-Object Name | Invoke-AequorQuery).step | Should -Be @(1, 2)
        $err = $null
        try { Invoke-AequorQuery 'SELECT 1' -File (Join-Path $dir '001.sql') } catch { $err = $_ }
        $err.FullyQualifiedErrorId | Should -BeLike 'PositionalParameterNotFound*'
    }

    It 'a missing -File gives a non-terminating AequorFileNotFound' {
        $errs = $null
        Invoke-AequorQuery -File (Join-Path $TestDrive 'missing.sql') -ErrorVariable errs -ErrorAction SilentlyContinue
        $errs.Count | Should -Be 1
        $errs[0].FullyQualifiedErrorId | Should -BeLike 'AequorFileNotFound*'
        $errs[0].Exception.Message | Should -Match 'missing.sql'
    }

    It 'a missing file among piped ones is that input''s AequorFileNotFound; the files after it still run' {
        $dir = Join-Path $TestDrive 'gap'
        $null = New-Item -ItemType Directory $dir
        Set-Content (Join-Path $dir '01.sql') "SELECT 1 AS step"
        Set-Content (Join-Path $dir '03.sql') "SELECT 3 AS step"
        $errs = $null
        $out = '01.sql', '02.sql', '03.sql' | ForEach-Object { [pscustomobject]@{ FullName = Join-Path $dir $_ } } |
            Invoke-AequorQuery -ErrorVariable errs -ErrorAction SilentlyContinue
        $out.step | Should -Be @(1, 3)
        $errs.Count | Should -Be 1
        $errs[0].FullyQualifiedErrorId | Should -BeLike 'AequorFileNotFound*'
        $errs[0].Exception.Message | Should -Match '02\.sql'
    }

    It 'refuses a NUL in the query text or a file before sending it: the connection and an open transaction are kept' {
        $s = $S
        $t = "nul_$(Get-Random)"
        try {
            $null = Invoke-AequorQuery "CREATE TABLE $t (id int)" -Session $s
            $pid0 = $s.BackendPid
            $reconnects = $s.Reconnects
            Start-AequorTransaction -Session $s
            $null = Invoke-AequorQuery "INSERT INTO $t VALUES (1)" -Session $s
            $utf16 = Join-Path $TestDrive 'utf16-no-bom.sql'
            [IO.File]::WriteAllBytes($utf16, [Text.Encoding]::Unicode.GetBytes("INSERT INTO $t VALUES (2)"))
            $errs = $null
            $out = @("SELECT 1 AS a`0", "SELECT 2 AS b") | Invoke-AequorQuery -Session $s -ErrorVariable errs -ErrorAction SilentlyContinue
            $null = Invoke-AequorQuery -File $utf16 -Session $s -ErrorVariable +errs -ErrorAction SilentlyContinue
            $out.b | Should -Be 2 -Because 'the next piped query still runs'
            $errs | Should -HaveCount 2
            $errs.FullyQualifiedErrorId | ForEach-Object { $_ | Should -BeLike 'AequorInvalidParameter*' }
            "$($errs[0])" | Should -Match 'NUL character'
            "$($errs[0])" | Should -Match 'nothing was sent.*\[byte\[\]\] in -Parameters to a bytea' -Because 'text parameters cannot hold a NUL either'
            "$($errs[1])" | Should -Match 'UTF-16 without a byte order mark'
            $s.InTransaction | Should -BeTrue
            $s.BackendPid | Should -Be $pid0
            $s.Reconnects | Should -Be $reconnects
            Complete-AequorTransaction -Session $s
            Invoke-AequorQuery "SELECT count(*) FROM $t" -As Scalar -Session $s | Should -Be 1
        } finally {
            if ($s.InTransaction) { Undo-AequorTransaction -Session $s }
            $null = Invoke-AequorQuery "DROP TABLE IF EXISTS $t" -Session $s
        }
    }

    It 'refuses an unpaired surrogate in the query text (an emoji cut in half) before sending it: an open transaction is kept' {
        $cut = "caf😀".Substring(0, 4)
        $reconnects = $S.Reconnects
        Start-AequorTransaction
        try {
            $null = Invoke-AequorQuery 'SELECT 1'
            $errs = $null
            $null = Invoke-AequorQuery "SELECT '$cut' AS v" -ErrorVariable errs -ErrorAction SilentlyContinue
            $errs | Should -HaveCount 1
            $errs[0].FullyQualifiedErrorId | Should -BeLike 'AequorInvalidParameter*'
            "$($errs[0])" | Should -Match 'unpaired UTF-16 surrogate \(U\+D83D\) at character 12'
            $S.InTransaction | Should -BeTrue
            $S.Reconnects | Should -Be $reconnects
            (Invoke-AequorQuery "SELECT 'caf😀' AS v").v | Should -Be 'caf😀'
        } finally {
            Undo-AequorTransaction
        }
    }

    It 'refuses an unpaired surrogate in a parameter value (named, positional, in an array) before sending it: the backend and an open transaction are kept' {
        $pid0 = $S.BackendPid
        $reconnects = $S.Reconnects
        Start-AequorTransaction
        try {
            $null = Invoke-AequorQuery 'SELECT 1'
            $errs = $null
            $null = Invoke-AequorQuery 'SELECT @p AS v' -Parameters @{ p = "a`u{D800}b" } -ErrorVariable errs -ErrorAction SilentlyContinue
            $null = Invoke-AequorQuery 'SELECT $1 AS v, $2 AS w' -Parameters 'ok', "`u{DE00}" -ErrorVariable +errs -ErrorAction SilentlyContinue
            $null = Invoke-AequorQuery 'SELECT @tags AS v' -Parameters @{ tags = @('ok', "caf😀".Substring(0, 4)) } -ErrorVariable +errs -ErrorAction SilentlyContinue
            $errs | Should -HaveCount 3
            $errs.FullyQualifiedErrorId | ForEach-Object { $_ | Should -BeLike 'AequorInvalidParameter,*' }
            "$($errs[0])" | Should -Match ([regex]::Escape("Parameter 'p' holds an unpaired UTF-16 surrogate (U+D800) at index 1: PostgreSQL text is UTF-8 and cannot store it. Nothing was sent."))
            "$($errs[1])" | Should -Match ([regex]::Escape('Parameter $2 holds an unpaired UTF-16 surrogate (U+DE00) at index 0:'))
            "$($errs[2])" | Should -Match ([regex]::Escape("Parameter 'tags' holds an unpaired UTF-16 surrogate (U+D83D) at index 3 of its element [1]:"))
            $S.InTransaction | Should -BeTrue
            (Invoke-AequorQuery 'SELECT pg_backend_pid() AS p, @v AS v' -Parameters @{ v = 'caf😀' }) | ForEach-Object {
                $_.p | Should -Be $pid0
                $_.v | Should -Be 'caf😀'
            }
            $S.Reconnects | Should -Be $reconnects
        } finally {
            Undo-AequorTransaction
        }
    }

    It 'refuses COPY FROM STDIN or TO STDOUT before sending it: the connection, its temp table and an open transaction are kept' {
        # Sent, Npgsql broke the connection on the server's CopyInResponse: "outcome unknown", a reconnect, the
        # transaction and the session's temp table lost, though nothing had been copied.
        $s = $S
        $pid0 = $s.BackendPid
        $reconnects = $s.Reconnects
        Start-AequorTransaction -Session $s
        try {
            $null = Invoke-AequorQuery 'CREATE TEMP TABLE copy_target (a int); INSERT INTO copy_target VALUES (1)' -Session $s
            $errs = $null
            $out = @('COPY copy_target FROM STDIN', 'COPY (SELECT a FROM copy_target) TO STDOUT', 'SELECT count(*) AS n FROM copy_target') |
                Invoke-AequorQuery -Session $s -ErrorVariable errs -ErrorAction SilentlyContinue
            $errs | Should -HaveCount 2
            $errs.FullyQualifiedErrorId | ForEach-Object { $_ | Should -BeLike 'AequorInvalidParameter*' }
            "$($errs[0])" | Should -Match 'COPY … FROM STDIN needs PostgreSQL''s COPY protocol.*Nothing was sent'
            "$($errs[1])" | Should -Match 'COPY … TO STDOUT'
            $out.n | Should -Be 1
            $s.InTransaction | Should -BeTrue
            $s.BackendPid | Should -Be $pid0
            $s.Reconnects | Should -Be $reconnects
        } finally {
            if ($s.InTransaction) { Undo-AequorTransaction -Session $s }
        }
    }

    It 'refuses a SQL file that is not UTF-8 (Windows-1252) instead of writing U+FFFD for its accents; UTF-8 and UTF-16 with a BOM read right' {
        $ansi = Join-Path $TestDrive 'ansi.sql'
        [IO.File]::WriteAllBytes($ansi, [byte[]](@([Text.Encoding]::ASCII.GetBytes("SELECT 'caf") + 0xE9 + [Text.Encoding]::ASCII.GetBytes("' AS v"))))
        $errs = $null
        $out = Invoke-AequorQuery -File $ansi -ErrorVariable errs -ErrorAction SilentlyContinue
        $out | Should -BeNullOrEmpty
        $errs | Should -HaveCount 1
        $errs[0].FullyQualifiedErrorId | Should -BeLike 'AequorInvalidParameter*'
        "$($errs[0])" | Should -Match 'not valid UTF-8 \(byte 0xE9\).*nothing was sent'
        $bom = Join-Path $TestDrive 'bom.sql'
        [IO.File]::WriteAllText($bom, "SELECT 'café' AS v", [Text.UTF8Encoding]::new($true))
        (Invoke-AequorQuery -File $bom).v | Should -Be 'café'
        $utf16 = Join-Path $TestDrive 'utf16.sql'
        [IO.File]::WriteAllText($utf16, "SELECT 'café' AS v", [Text.Encoding]::Unicode)
        (Get-Item $utf16 | Invoke-AequorQuery).v | Should -Be 'café'
    }

    It 'an empty SQL file is a warning that nothing was run, never an error' {
        $empty = Join-Path $TestDrive 'empty.sql'
        $blank = Join-Path $TestDrive 'blank.sql'
        [IO.File]::WriteAllBytes($empty, [byte[]]@())
        Set-Content $blank "   `n"
        $errs = $null
        $warnings = $null
        $out = Get-Item $empty, $blank | Invoke-AequorQuery -ErrorVariable errs -WarningVariable warnings -WarningAction SilentlyContinue
        $out | Should -BeNullOrEmpty
        $errs | Should -HaveCount 0
        $warnings | Should -HaveCount 2
        "$($warnings[0])" | Should -Match "empty\.sql' is empty: nothing was run"
    }

    It 'takes a piped file''s name literally: [x]04.sql runs, not x04.sql beside it; so do -LiteralPath and -File' {
        $dir = Join-Path $TestDrive 'brackets'
        $null = New-Item -ItemType Directory $dir
        Set-Content -LiteralPath (Join-Path $dir '[x]04.sql') -Value 'SELECT 42'
        Set-Content -LiteralPath (Join-Path $dir 'x04.sql') -Value 'SELECT 99'
        Get-ChildItem -LiteralPath (Join-Path $dir '[x]04.sql') | Invoke-AequorQuery -As Scalar | Should -Be 42
        Get-Item -LiteralPath (Join-Path $dir '[x]04.sql') | Select-Object PSPath | Invoke-AequorQuery -As Scalar | Should -Be 42
        Invoke-AequorQuery -LiteralPath (Join-Path $dir '[x]04.sql') -As Scalar | Should -Be 42
        Invoke-AequorQuery -File (Join-Path $dir '[x]04.sql') -As Scalar | Should -Be 42
    }

    It 'refuses a wildcard -File with AequorInvalidParameter naming the pattern and how many files it matches; none runs' {
        $dir = Join-Path $TestDrive 'glob'
        $null = New-Item -ItemType Directory $dir
        $table = 'glob_' + [Guid]::NewGuid().ToString('N').Substring(0, 8)
        $null = Invoke-AequorQuery "CREATE TABLE $table (n int)" -Session $S
        1..3 | ForEach-Object { Set-Content (Join-Path $dir "0$_.sql") "INSERT INTO $table VALUES ($_)" }
        $err = $null
        try { Invoke-AequorQuery -File (Join-Path $dir '0*.sql') -Session $S -As NonQuery } catch { $err = $_ }
        $err.FullyQualifiedErrorId | Should -BeLike 'AequorInvalidParameter*'
        $err.Exception.Message | Should -BeLike "*-File '*0``*.sql' names no file; as a wildcard it matches 3 file(s)*Get-ChildItem*| Invoke-AequorQuery*"
        Invoke-AequorQuery "SELECT count(*) FROM $table" -Session $S -As Scalar | Should -Be 0
        $null = Invoke-AequorQuery "DROP TABLE $table" -Session $S
    }

    It 'a failing statement is a non-terminating AequorQueryFailed with its SQLSTATE' {
        $errs = $null
        $out = Invoke-AequorQuery 'SELECT * FROM no_such_table_here' -ErrorVariable errs -ErrorAction SilentlyContinue
        $out | Should -BeNullOrEmpty
        $errs.Count | Should -Be 1
        $errs[0].FullyQualifiedErrorId | Should -BeLike 'AequorQueryFailed*'
        $errs[0].Exception.SqlState | Should -Be '42P01'
        $errs[0].Exception.Message | Should -Match 'no_such_table_here'
        # The session goes on.
        Invoke-AequorQuery 'SELECT 1' -As Scalar | Should -Be 1
    }

    It 'shows the server''s HINT, as psql does' {
        $err = $null
        Invoke-AequorQuery 'SELECT jsonb_typeof($1)' 'x' -ErrorVariable err -ErrorAction SilentlyContinue
        "$($err[0])" | Should -Match '42883'
        "$($err[0])" | Should -Match 'HINT: No function matches the given name and argument types'
    }

    It 'reads the catalogues whole: privileges (aclitem[]), oid aliases and expressions as the server''s text, as psql shows them' {
        $databases = @(Invoke-AequorQuery 'SELECT * FROM pg_database ORDER BY datname')
        $databases.Count | Should -BeGreaterOrEqual 3
        $template0 = $databases | Where-Object datname -eq 'template0'
        $template0.datacl | Should -BeOfType [string]
        $template0.datacl | Should -Be (Invoke-AequorQuery -As Scalar "SELECT datacl::text FROM pg_database WHERE datname = 'template0'")
        $template0.datallowconn | Should -BeFalse
        Invoke-AequorQuery -As Scalar "SELECT 'pg_class'::regclass" | Should -Be 'pg_class'
        (Invoke-AequorQuery "SELECT oid::regclass AS rel, relkind FROM pg_class WHERE relname = 'pg_proc'").rel | Should -Be 'pg_proc'
        @(Invoke-AequorQuery 'SELECT * FROM pg_proc LIMIT 5').Count | Should -Be 5
    }

    It 'says how to read a column PostgreSQL cannot send in binary when the text holds several statements (aclitem[]: relacl), and the session goes on' {
        $err = $null
        $out = Invoke-AequorQuery 'SELECT relname, relacl FROM pg_class WHERE relacl IS NOT NULL LIMIT 1; SELECT 1' -ErrorVariable err -ErrorAction SilentlyContinue
        $out | Should -BeNullOrEmpty
        $err.Count | Should -Be 1
        $err[0].Exception.SqlState | Should -Be '42883'
        "$($err[0])" | Should -Match 'A column of type aclitem \(or an array of it.*cast it to text in the query \(relacl::text\), or name the columns you need instead of \*'
        $row = Invoke-AequorQuery 'SELECT relname, relacl::text AS acl FROM pg_class WHERE relacl IS NOT NULL LIMIT 1; SELECT 2 AS two'
        $row[0].acl | Should -BeOfType [string]
        $row[0].acl | Should -Match '^\{.*=.*/.*\}$'
        $row[1].two | Should -Be 2
    }

    It 'too few -Parameters is refused before sending (the server''s 08P01 would cost the connection), and the session goes on' {
        $errs = $null
        Invoke-AequorQuery 'SELECT $1::int, $2::int' -Parameters 1 -ErrorVariable errs -ErrorAction SilentlyContinue
        $errs.Count | Should -Be 1
        $errs[0].FullyQualifiedErrorId | Should -BeLike 'AequorInvalidParameter*'
        $errs[0].Exception.Message | Should -Match 'placeholders up to \$2 but -Parameters gives 1 value'
        Invoke-AequorQuery 'SELECT 1' -As Scalar | Should -Be 1
    }

    It 'queries from the pipeline each run, and an error stops none of the others' {
        $out = 'SELECT 1 AS v', 'SELECT broken', 'SELECT 3 AS v' | Invoke-AequorQuery -ErrorAction SilentlyContinue
        $out.v | Should -Be @(1, 3)
    }

    It '-CommandTimeout cancels a statement that runs too long' {
        $err = $null
        $sw = [Diagnostics.Stopwatch]::StartNew()
        try { Invoke-AequorQuery 'SELECT pg_sleep(10)' -CommandTimeout 1 -ErrorAction Stop } catch { $err = $_ }
        $sw.ElapsedMilliseconds | Should -BeLessThan 8000
        $err.FullyQualifiedErrorId | Should -BeLike 'AequorQueryFailed*'
        $err.CategoryInfo.Category | Should -Be 'OperationTimeout'
        $err.Exception.Message | Should -Match 'ran past its command timeout \(1 s\) and the server cancelled it: it did not take effect'
        Invoke-AequorQuery 'SELECT 2' -As Scalar | Should -Be 2
    }

    It '-Session takes a session''s name; an unknown name fails naming the open ones; the names complete' {
        $ps = New-ModuleShell {
            param($ModulePath, $Connection, $Secret)
            Import-Module $ModulePath
            $first = Connect-Aequor $Connection -CoordinationSecret $Secret -ServiceName names -Name first
            $second = Connect-Aequor $Connection -CoordinationSecret $Secret -ServiceName names -Name second
            [pscustomobject]@{
                FirstPid     = $first.BackendPid
                ByName       = Invoke-AequorQuery -Session FIRST 'SELECT pg_backend_pid()' -As Scalar
                Default      = Invoke-AequorQuery 'SELECT pg_backend_pid()' -As Scalar
                SecondPid    = $second.BackendPid
                Unknown      = $(try { Invoke-AequorQuery -Session third 'SELECT 1' -ErrorAction Stop; 'no error' } catch { $_.Exception.Message })
                # Terminating without -ErrorAction Stop: the statement has no session to run on.
                UnknownId    = $(try { Invoke-AequorQuery -Session third 'SELECT 1'; 'no error' } catch { '{0} {1}' -f $_.FullyQualifiedErrorId, $_.CategoryInfo.Category })
                InTx         = & { 'first' | Start-AequorTransaction; $first.InTransaction; Undo-AequorTransaction -Session first }
                Completions  = (TabExpansion2 -inputScript ($line = 'Invoke-AequorQuery -Session s') -cursorColumn $line.Length).CompletionMatches.CompletionText -join ','
            }
        } $TestSecret
        try {
            $r = $ps.Invoke()[0]
            $ps.Streams.Error | Should -BeNullOrEmpty
            $r.ByName | Should -Be $r.FirstPid
            $r.Default | Should -Be $r.SecondPid
            $r.Unknown | Should -Match "no Aequor session named 'third'. Open in this runspace: 'first', 'second'"
            $r.UnknownId | Should -Be 'AequorSessionNotFound,Aequor.PowerShell.InvokeAequorQueryCommand ObjectNotFound'
            $r.InTx | Should -BeTrue
            $r.Completions | Should -Be 'second'
        } finally { $ps.Dispose() }
    }

    It 'no session gives AequorNoSession' {
        $ps = New-ModuleShell { param($ModulePath) Import-Module $ModulePath; try { Invoke-AequorQuery 'SELECT 1' } catch { $_.FullyQualifiedErrorId; $_.Exception.Message } }
        try {
            $out = $ps.Invoke()
            $out[0] | Should -BeLike 'AequorNoSession*'
            $out[1] | Should -Match 'Connect-Aequor'
        } finally { $ps.Dispose() }
    }

    It 'a closed session gives AequorSessionClosed' {
        $gone = Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION -LeaseMode Optional -Name gone
        Disconnect-Aequor -Session $gone
        $err = $null
        try { Invoke-AequorQuery 'SELECT 1' -Session $gone } catch { $err = $_ }
        $err.FullyQualifiedErrorId | Should -BeLike 'AequorSessionClosed*'
    }
}

Describe 'Invoke-AequorQuery and the commands downstream of its rows' {
    BeforeAll {
        # The default session here, as in a script.
        $script:D = Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION -LeaseMode Optional -Name downstream
    }

    It 'a throw downstream passes unchanged to the catch, stops the rows there, and the session goes on' {
        $ErrorActionPreference = 'Continue'
        $seen = [Collections.Generic.List[int]]::new()
        $caught = $null
        $after = $false
        try {
            Invoke-AequorQuery 'SELECT g FROM generate_series(1, 100000) g' | ForEach-Object { $seen.Add($_.g); if ($_.g -eq 2) { throw 'x' } }
            $after = $true
        } catch { $caught = $_ }
        $after | Should -BeFalse -Because 'the throw ends the statement, as any throw does'
        "$caught" | Should -Be 'x'
        $caught.FullyQualifiedErrorId | Should -Not -BeLike 'AequorQueryFailed*'
        @($seen) | Should -Be @(1, 2)
        # Each row once, none lost: the reader was closed and the session is free.
        (Invoke-AequorQuery 'SELECT g FROM generate_series(1, 5) g').g | Should -Be @(1, 2, 3, 4, 5)
        foreach ($as in 'Scalar', 'NonQuery', 'DataTable') {
            $caught = $null
            try { Invoke-AequorQuery 'SELECT 1' -As $as | ForEach-Object { throw "after $as" } } catch { $caught = $_ }
            "$caught" | Should -Be "after $as"
        }
        Invoke-AequorQuery 'SELECT 2' -As Scalar | Should -Be 2
    }

    It 'a throw downstream inside a transaction reaches the catch, which rolls it back (under the default ErrorActionPreference)' {
        $ErrorActionPreference = 'Continue'
        $table = 'acct_' + [Guid]::NewGuid().ToString('N').Substring(0, 8)
        $null = Invoke-AequorQuery "CREATE TABLE $table (id int, balance int); INSERT INTO $table VALUES (1, 100), (2, -5)"
        $outcome = $null
        $caught = $null
        Start-AequorTransaction
        try {
            $null = Invoke-AequorQuery "UPDATE $table SET balance = balance - 10" -As NonQuery
            Invoke-AequorQuery "SELECT id, balance FROM $table ORDER BY id" | ForEach-Object {
                if ($_.balance -lt 0) { throw "account $($_.id) overdrawn" }
            }
            Complete-AequorTransaction
            $outcome = 'committed'
        } catch {
            $caught = "$_"
            Undo-AequorTransaction
            $outcome = 'rolled back'
        }
        $outcome | Should -Be 'rolled back'
        $caught | Should -Be 'account 2 overdrawn'
        (Invoke-AequorQuery "SELECT balance FROM $table ORDER BY id" -Session (Get-Observer)).balance | Should -Be @(100, -5)
        $null = Invoke-AequorQuery "DROP TABLE $table"
    }

    It 'a query on the same session inside the rows fails at once with AequorSessionBusy; the rows go on, and other sessions work there' {
        $r = Invoke-InsideRows 'Invoke-AequorQuery "SELECT $($_.g) * 10" -As Scalar'
        $r.Done | Should -BeTrue -Because 'it must not wait for ever for the reader its own pipeline holds'
        $r.Output | Should -Be @('1', '2', 'after:7')
        $r.Errors.Count | Should -Be 2
        $r.Errors[0].FullyQualifiedErrorId | Should -BeLike 'AequorSessionBusy*'
        "$($r.Errors[0])" | Should -BeLike "Session 'default' is streaming the rows of another query in this pipeline; Invoke-AequorQuery on it inside that pipeline would wait for ever. Collect the rows first (-As DataTable, or assign them to a variable), or use a second session (Connect-Aequor -Name *)."

        # So is a query further down the same pipeline; the advice works: a second session, or -As DataTable.
        # Connect-Aequor makes the last session the default: a new 'default' after 'second'.
        $r = Invoke-InsideRows -Setup '$null = Connect-Aequor $Connection -LeaseMode Optional -Name second; $null = Connect-Aequor $Connection -LeaseMode Optional' `
            -Inner 'Invoke-AequorQuery "SELECT $($_.g) * 100" -As Scalar -Session second; Invoke-AequorQuery "SELECT 1" -As DataTable -Session second | ForEach-Object { $_.Rows.Count }'
        $r.Errors | Should -BeNullOrEmpty
        $r.Output | Should -Be @('1', '100', '1', '2', '200', '1', 'after:7')
        $sql = Join-Path $TestDrive 'busy.sql'
        Set-Content $sql 'SELECT 5'
        $r = Invoke-InsideRows -Inner '' -Setup (
            "Invoke-AequorQuery `"SELECT '$sql' AS FullName`" | Invoke-AequorQuery -As Scalar`n" +
            'Invoke-AequorQuery "SELECT g FROM generate_series(1, 3) g" -As DataTable | ForEach-Object { $_.Rows | ForEach-Object { Invoke-AequorQuery "SELECT $($_.g) * 10" -As Scalar } }')
        $r.Done | Should -BeTrue
        $r.Errors.Count | Should -Be 1
        $r.Errors[0].FullyQualifiedErrorId | Should -BeLike 'AequorSessionBusy*'
        $r.Output | Should -Be @('10', '20', '30', '1', '2', 'after:7')
    }

    It 'another runspace sharing the session is not refused: it waits until the rows are read' {
        $other = New-ModuleShell { param($ModulePath, $Connection, $Session) Import-Module $ModulePath; Invoke-AequorQuery 'SELECT 42' -Session $Session -As Scalar } $D
        try {
            $script:waited = $null
            $rows = Invoke-AequorQuery 'SELECT g FROM generate_series(1, 3) g' | ForEach-Object {
                if ($_.g -eq 1) {
                    $script:handle = $other.BeginInvoke()
                    Start-Sleep -Milliseconds 700
                    $script:waited = -not $script:handle.IsCompleted
                }
                $_.g
            }
            $rows | Should -Be @(1, 2, 3)
            $script:handle.AsyncWaitHandle.WaitOne(10000) | Should -BeTrue
            $other.EndInvoke($script:handle) | Should -Be 42
            $other.Streams.Error | Should -BeNullOrEmpty
            $script:waited | Should -BeTrue -Because 'the other runspace queues behind the open reader'
        } finally { $other.Dispose() }
    }
}

Describe 'Invoke-AequorQuery Ctrl+C' {
    It 'stopping the pipeline cancels pg_sleep(30) on the server: its backend is idle within 5 s' {
        $marker = "ctrlc_$([Guid]::NewGuid().ToString('N').Substring(0, 8))"
        $ps = New-ModuleShell {
            param($ModulePath, $Connection, $Marker)
            Import-Module $ModulePath
            $null = Connect-Aequor $Connection -LeaseMode Optional
            Invoke-AequorQuery "SELECT pg_sleep(30) AS $Marker"
        } $marker
        try {
            $async = $ps.BeginInvoke()
            $script:busy = $null
            Wait-Until {
                $script:busy = Invoke-AequorQuery 'SELECT pid FROM pg_stat_activity WHERE query LIKE $1 AND state = ''active'' AND pid <> pg_backend_pid()' -Parameters @(, "%$marker%") -Session (Get-Observer)
                $null -ne $script:busy
            } | Should -BeTrue
            $sw = [Diagnostics.Stopwatch]::StartNew()
            $ps.Stop()
            Wait-Until { (Get-Backend $script:busy.pid).state -eq 'idle' } -TimeoutMs 5000 | Should -BeTrue
            $sw.ElapsedMilliseconds | Should -BeLessThan 5000
            $ps.InvocationStateInfo.State | Should -Be 'Stopped'
        } finally {
            $ps.Dispose()
        }
    }

    It 'inside a transaction too, while the rows stream to a slow command: the rest is not read first' {
        $marker = "ctrlc_tx_$([Guid]::NewGuid().ToString('N').Substring(0, 8))"
        $ps = New-ModuleShell {
            param($ModulePath, $Connection, $Marker)
            Import-Module $ModulePath
            $null = Connect-Aequor $Connection -LeaseMode Optional
            Start-AequorTransaction
            # 100 s of rows if read to the end.
            Invoke-AequorQuery "SELECT g AS $Marker, pg_sleep(0.001) FROM generate_series(1, 100000) g" | ForEach-Object { Start-Sleep -Milliseconds 20 }
        } $marker
        try {
            $async = $ps.BeginInvoke()
            $script:busy = $null
            Wait-Until {
                $script:busy = Invoke-AequorQuery 'SELECT pid FROM pg_stat_activity WHERE query LIKE $1 AND state = ''active'' AND pid <> pg_backend_pid()' -Parameters @(, "%$marker%") -Session (Get-Observer)
                $null -ne $script:busy
            } | Should -BeTrue
            Start-Sleep -Milliseconds 300
            $sw = [Diagnostics.Stopwatch]::StartNew()
            $ps.Stop()
            Wait-Until { (Get-Backend $script:busy.pid).state -ne 'active' } -TimeoutMs 5000 | Should -BeTrue
            $sw.ElapsedMilliseconds | Should -BeLessThan 5000
            $ps.InvocationStateInfo.State | Should -Be 'Stopped'
        } finally {
            $ps.Dispose()
        }
    }
}

Describe 'Invoke-AequorQuery stopped by a server WARNING' {
    It '-WarningAction Stop on a WARNING raised before the first row stops the command and leaves the session usable' {
        # The reader already held the session when the warning's write threw: it was never closed, and the next
        # command on the session waited for it for ever.
        $ps = New-ModuleShell {
            param($ModulePath, $Connection)
            Import-Module $ModulePath
            $null = Connect-Aequor $Connection -LeaseMode Optional
            try {
                Invoke-AequorQuery 'DO $$ BEGIN RAISE WARNING ''careful''; END $$; SELECT 1 AS a' -WarningAction Stop
                'not stopped'
            } catch {
                'stopped:' + $_.FullyQualifiedErrorId
            }
            'after:' + (Invoke-AequorQuery 'SELECT 7' -As Scalar)
            'state:' + (Get-AequorSession).State
        }
        try {
            $handle = $ps.BeginInvoke()
            $done = $handle.AsyncWaitHandle.WaitOne(20000)
            if (-not $done) { $ps.Stop() }
            $done | Should -BeTrue -Because 'the next query must not wait for the abandoned reader'
            $out = @($ps.EndInvoke($handle) | ForEach-Object { "$_" })
            $out[0] | Should -BeLike 'stopped:ActionPreferenceStop*'
            $out | Should -Contain 'after:7'
            $out | Should -Contain 'state:Connected'
        } finally {
            $ps.Dispose()
        }
    }
}

Describe 'Invoke-AequorQuery: what the engine does shows on Verbose and Warning' {
    BeforeAll {
        $null = Get-Observer
    }

    It 'a dead connection is found, reconnected with a fresh lease, and said so on Verbose' {
        $s = Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION -CoordinationSecret $TestSecret -ServiceName (New-TestServiceName v) -ReaperRunProbability 0 -Name verbose1
        $old = $s.BackendPid
        $null = Invoke-AequorQuery 'SELECT pg_terminate_backend($1)' $old -Session (Get-Observer)
        Wait-Until { -not (Get-Backend $old) } | Should -BeTrue
        $out = Invoke-AequorQuery 'SELECT 1 AS one' -Session $s -Verbose 4>&1
        $verbose = @($out | Where-Object { $_ -is [System.Management.Automation.VerboseRecord] }).Message
        ($out | Where-Object { $_ -isnot [System.Management.Automation.VerboseRecord] }).one | Should -Be 1
        $verbose -match 'connection found dead' | Should -Not -BeNullOrEmpty
        $verbose -match 'reconnecting with a fresh lease' | Should -Not -BeNullOrEmpty
        $s.BackendPid | Should -Not -Be $old
        $s.Reconnects | Should -Be 1
    }

    It 'a retried idempotent statement writes a warning' {
        $s = Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION -CoordinationSecret $TestSecret -ServiceName (New-TestServiceName v) -ReaperRunProbability 0 -Name verbose2
        $warnings = $null
        # Right after use the client trusts the socket (no probe): the statement meets the dead backend and is retried.
        $null = Invoke-AequorQuery 'SELECT 1' -Session $s
        $null = Invoke-AequorQuery 'SELECT pg_terminate_backend($1)' $s.BackendPid -Session (Get-Observer)
        Start-Sleep -Milliseconds 200
        $r = Invoke-AequorQuery 'SELECT 2 AS two' -Session $s -Idempotent -WarningVariable warnings -WarningAction SilentlyContinue
        $r.two | Should -Be 2
        @($warnings).Count | Should -BeGreaterOrEqual 1
        $warnings[0].Message | Should -Match 'retrying a statement'
        $s.Retries | Should -BeGreaterOrEqual 1
    }

    It 'a server WARNING is a warning, a NOTICE is said on Verbose' {
        $warnings = $null
        $verbose = Invoke-AequorQuery "DO `$`$ BEGIN RAISE NOTICE 'migrated % rows', 42; RAISE WARNING 'index missing' USING HINT = 'create it'; END `$`$" -Verbose -WarningVariable warnings -WarningAction SilentlyContinue 4>&1
        $warnings.Count | Should -Be 1
        "$($warnings[0])" | Should -Match "server WARNING: index missing HINT: create it"
        ($verbose | ForEach-Object { "$_" }) -join "`n" | Should -Match "server NOTICE: migrated 42 rows"
        # Once, as a warning: not again on Verbose.
        ($verbose | ForEach-Object { "$_" }) -join "`n" | Should -Not -Match "server WARNING"
    }

    It 'a renewed lease is said on Verbose' {
        $s = Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION -CoordinationSecret $TestSecret -ServiceName (New-TestServiceName v) -ReaperRunProbability 0 -LeaseTtlMs 3000 -Name verbose3
        $before = $s.LeaseExpiresAt
        Start-Sleep -Milliseconds 2200
        $verbose = @(Invoke-AequorQuery 'SELECT 1' -Session $s -Verbose 4>&1 | Where-Object { $_ -is [System.Management.Automation.VerboseRecord] }).Message
        $verbose -match 'lease renewed until' | Should -Not -BeNullOrEmpty
        $s.LeaseExpiresAt | Should -BeGreaterThan $before
        $s.Heartbeats | Should -BeGreaterOrEqual 1
    }

    It 'a renewal that rides along with a row query is said on Verbose too (said when its reader closes)' {
        $s = Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION -CoordinationSecret $TestSecret -ServiceName (New-TestServiceName v) -ReaperRunProbability 0 -LeaseTtlMs 3000 -HeartbeatSoftRemainingMs 2900 -HeartbeatHardWaitRemainingMs 100 -Name verbose4
        Start-Sleep -Milliseconds 400
        foreach ($as in 'PSObject', 'DataTable') {
            $heartbeats = $s.Heartbeats
            Start-Sleep -Milliseconds 200
            $verbose = @(Invoke-AequorQuery 'SELECT 1 AS one' -As $as -Session $s -Verbose 4>&1 | Where-Object { $_ -is [System.Management.Automation.VerboseRecord] }).Message
            $s.Heartbeats | Should -Be ($heartbeats + 1) -Because "-As $as renews"
            $verbose -match 'lease renewed until' | Should -Not -BeNullOrEmpty -Because "-As $as"
        }
    }

    It 'connect retries are warnings, then AequorConnectFailed' {
        $nowhere = $env:AEQUOR_TEST_APP_CONNECTION -replace '(?i)port=\d+', 'Port=1'
        $warnings = $null
        $err = $null
        try { Connect-Aequor $nowhere -LeaseMode Optional -Name nowhere -Retries 2 -MinBackoff 10 -MaxBackoff 20 -WarningVariable warnings -WarningAction SilentlyContinue } catch { $err = $_ }
        $err.FullyQualifiedErrorId | Should -BeLike 'AequorConnectFailed*'
        @($warnings).Count | Should -Be 2
        $warnings[0].Message | Should -Match 'retrying the connect'
    }

    It 'a write cut off after it was sent is AequorQueryOutcomeUnknown, not retried' {
        $s = Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION -LeaseMode Optional -Name outcome
        $null = Invoke-AequorQuery 'CREATE TABLE IF NOT EXISTS q_outcome (v int)' -Session $s
        $killer = Start-ThreadJob -ArgumentList $env:AEQUOR_MODULE_PATH, $env:AEQUOR_TEST_CONNECTION, $s.BackendPid {
            param($ModulePath, $Connection, $BackendPid)
            Import-Module $ModulePath
            $o = Connect-Aequor $Connection -LeaseMode Optional -Name killer
            Start-Sleep -Milliseconds 700
            $null = Invoke-AequorQuery 'SELECT pg_terminate_backend($1)' $BackendPid -Session $o
        }
        $err = $null
        try { Invoke-AequorQuery 'INSERT INTO q_outcome SELECT 1 FROM pg_sleep(3)' -Session $s -ErrorAction Stop } catch { $err = $_ }
        $null = $killer | Wait-Job | Receive-Job
        $err.FullyQualifiedErrorId | Should -BeLike 'AequorQueryOutcomeUnknown*'
        $err.Exception.Message | Should -Match 'outcome is unknown'
    }
}

Describe 'Invoke-AequorQuery writes server messages and engine messages while the statement runs' {
    BeforeAll {
        $null = Get-Observer
        # When each message matching $Pattern reached the pipeline, and when the command returned.
        function Measure-Arrival([scriptblock] $Command, [string] $Pattern) {
            $script:arrived = $null
            & $Command 4>&1 3>&1 | ForEach-Object {
                if ($null -eq $script:arrived -and ($_ -is [System.Management.Automation.InformationalRecord]) -and $_.Message -match $Pattern) {
                    $script:arrived = [DateTime]::UtcNow
                }
            }
            [pscustomobject]@{ Arrived = $script:arrived; Returned = [DateTime]::UtcNow }
        }
    }

    It 'a NOTICE raised before pg_sleep(1.5) is written before the statement ends (-As <As>, <Stream>)' -TestCases @(
        @{ As = 'PSObject'; Stream = 'NOTICE'; InTransaction = $false }
        @{ As = 'Scalar'; Stream = 'NOTICE'; InTransaction = $false }
        @{ As = 'NonQuery'; Stream = 'NOTICE'; InTransaction = $false }
        @{ As = 'DataTable'; Stream = 'NOTICE'; InTransaction = $false }
        @{ As = 'PSObject'; Stream = 'WARNING'; InTransaction = $false }
        @{ As = 'Scalar'; Stream = 'NOTICE'; InTransaction = $true }
    ) {
        param($As, $Stream, $InTransaction)
        $s = Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION -LeaseMode Optional -Name "early_$As$Stream$InTransaction"
        try {
            if ($InTransaction) { Start-AequorTransaction -Session $s }
            $sql = "DO `$`$ BEGIN RAISE $Stream 'early one'; PERFORM pg_sleep(1.5); RAISE $Stream 'late one'; END `$`$"
            $m = Measure-Arrival { Invoke-AequorQuery $sql -As $As -Session $s -Verbose } "server $($Stream): early one"
            if ($InTransaction) { Complete-AequorTransaction -Session $s }
            $m.Arrived | Should -Not -BeNullOrEmpty
            ($m.Returned - $m.Arrived).TotalMilliseconds | Should -BeGreaterThan 1000 -Because 'the first notice was raised 1.5 s before the statement ended'
        } finally {
            Disconnect-Aequor -Session $s -Confirm:$false
        }
    }

    It 'a reconnect or retry is said before the statement it serves ends' {
        $s = Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION -LeaseMode Optional -Name early_reconnect
        try {
            $old = $s.BackendPid
            $null = Invoke-AequorQuery 'SELECT pg_terminate_backend($1)' $old -Session (Get-Observer)
            Wait-Until { -not (Get-Backend $old) } | Should -BeTrue
            $m = Measure-Arrival { Invoke-AequorQuery 'SELECT pg_sleep(1.5)' -As NonQuery -Idempotent -Session $s -Verbose } 'reconnecting|retrying'
            $m.Arrived | Should -Not -BeNullOrEmpty
            ($m.Returned - $m.Arrived).TotalMilliseconds | Should -BeGreaterThan 1000
        } finally {
            Disconnect-Aequor -Session $s -Confirm:$false
        }
    }

    It 'a stopped pipeline (Ctrl+C) still shows the notices raised before the stop (-As <As>)' -TestCases @(
        @{ As = 'PSObject' }
        @{ As = 'NonQuery' }
    ) {
        param($As)
        $ps = New-ModuleShell {
            param($ModulePath, $Connection, $As)
            Import-Module $ModulePath
            $null = Connect-Aequor $Connection -LeaseMode Optional
            Invoke-AequorQuery "DO `$`$ BEGIN RAISE NOTICE 'before the stop'; PERFORM pg_sleep(30); END `$`$" -As $As -Verbose
        } $As
        try {
            $null = $ps.BeginInvoke()
            $seen = Wait-Until { @($ps.Streams.Verbose | Where-Object Message -Match 'server NOTICE: before the stop').Count -gt 0 } -TimeoutMs 20000
            $ps.Stop()
            $seen | Should -BeTrue -Because 'the notice is written while pg_sleep(30) runs'
            $ps.InvocationStateInfo.State | Should -Be 'Stopped'
            @($ps.Streams.Verbose | Where-Object Message -Match 'server NOTICE: before the stop').Count | Should -Be 1
        } finally {
            $ps.Dispose()
        }
    }

    It 'a statement timeout still shows the notices raised before it' {
        $s = Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION -LeaseMode Optional -Name early_timeout
        try {
            $out = Invoke-AequorQuery "DO `$`$ BEGIN RAISE NOTICE 'before the timeout'; PERFORM pg_sleep(30); END `$`$" -As NonQuery -CommandTimeout 1 -Session $s -Verbose -ErrorAction SilentlyContinue -ErrorVariable errs 4>&1
            $errs | Should -Not -BeNullOrEmpty
            @($out | Where-Object { $_ -is [System.Management.Automation.VerboseRecord] -and $_.Message -match 'server NOTICE: before the timeout' }).Count | Should -Be 1
        } finally {
            Disconnect-Aequor -Session $s -Confirm:$false
        }
    }

    It '-WarningAction Stop on a WARNING stops a long statement at once and keeps the connection (-As <As>)' -TestCases @(
        @{ As = 'PSObject' }
        @{ As = 'Scalar' }
    ) {
        param($As)
        $ps = New-ModuleShell {
            param($ModulePath, $Connection, $As)
            Import-Module $ModulePath
            $s = Connect-Aequor $Connection -LeaseMode Optional
            $null = Invoke-AequorQuery 'SELECT 1'
            $pid1 = $s.BackendPid
            try {
                Invoke-AequorQuery "DO `$`$ BEGIN RAISE WARNING 'careful'; PERFORM pg_sleep(30); END `$`$; SELECT 1 AS a" -As $As -WarningAction Stop
                'not stopped'
            } catch {
                'stopped:' + $_.FullyQualifiedErrorId
            }
            'after:' + (Invoke-AequorQuery 'SELECT 7' -As Scalar)
            'samepid:' + ($s.BackendPid -eq $pid1)
            'reconnects:' + $s.Reconnects
            'state:' + $s.State
        } $As
        try {
            $handle = $ps.BeginInvoke()
            $done = $handle.AsyncWaitHandle.WaitOne(20000)
            if (-not $done) { $ps.Stop() }
            $done | Should -BeTrue -Because 'the warning stops the command while pg_sleep(30) runs'
            $out = @($ps.EndInvoke($handle) | ForEach-Object { "$_" })
            $out[0] | Should -BeLike 'stopped:ActionPreferenceStop*'
            $out | Should -Contain 'after:7'
            $out | Should -Contain 'samepid:True'
            $out | Should -Contain 'reconnects:0'
            $out | Should -Contain 'state:Connected'
        } finally {
            $ps.Dispose()
        }
    }
}
