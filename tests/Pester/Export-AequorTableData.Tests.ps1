BeforeAll {
    . (Join-Path $PSScriptRoot 'Aequor.TestHelpers.ps1')
    $script:S = Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION -CoordinationSecret $TestSecret -ServiceName (New-TestServiceName et)
    $script:Suffix = [Guid]::NewGuid().ToString('N').Substring(0, 8)
    $script:Nasty = "comma, ""double"" 'single'`nnew line`r`ncrlf tab`there back\slash \N ünï©ødé 🙂 {}"

    function New-People {
        $name = "et_people_$script:Suffix$(Get-Random)"
        $null = Invoke-AequorQuery "CREATE TABLE $name (id int PRIMARY KEY, name text, born date, score numeric, doc jsonb, tags text[])" -Session $S
        @(
            [pscustomobject]@{ id = 1; name = 'Ann'; born = '1990-02-03'; score = '12.50'; doc = '{"a": [1, "b,c"]}'; tags = @('x', 'y z') }
            [pscustomobject]@{ id = 2; name = $script:Nasty; born = $null; score = $null; doc = $null; tags = @('a,b', 'q"uote', $null, '') }
            [pscustomobject]@{ id = 3; name = ''; born = '1999-12-31'; score = '-0.001'; doc = 'null'; tags = @() }
        ) | Write-AequorTableData -Table $name -Session $S
        $name
    }

    # A function that leaves a trace when a query calling it runs: proof that nothing was sent.
    $script:Probe = "et_probe_$script:Suffix"
    $null = Invoke-AequorQuery ("CREATE TABLE ${Probe}_log (at timestamptz DEFAULT now()); " +
        "CREATE FUNCTION $Probe() RETURNS int LANGUAGE sql AS 'INSERT INTO ${Probe}_log DEFAULT VALUES RETURNING 1'") -Session $S
    function Get-ProbeCalls { Invoke-AequorQuery "SELECT count(*) FROM ${Probe}_log" -As Scalar -Session $S }

    # What a failed export must leave: the old file as it was and no temporary file beside it.
    function Assert-Untouched([string] $File, [string] $Content) {
        Get-Content -LiteralPath $File -Raw | Should -BeExactly $Content
        @(Get-ChildItem -LiteralPath (Split-Path $File) -Force -Filter '*.tmp') | Should -BeNullOrEmpty
    }
}

AfterAll {
    Disconnect-Aequor -All -Confirm:$false
}

Describe 'Export-AequorTableData' {
    It 'exports int, text, date, numeric, jsonb, text[] and NULL so that Import-Csv reads the values back, NULL apart from an empty string' {
        $t = New-People
        $file = Join-Path $TestDrive 'people.csv'
        Export-AequorTableData -Path $file -Table $t -Session $S -PassThru | Should -Be 3
        $back = @(Import-Csv -LiteralPath $file)
        $expected = @(Invoke-AequorQuery "SELECT id::text, coalesce(name, '') AS name, coalesce(born::text, '') AS born, coalesce(score::text, '') AS score, coalesce(doc::text, '') AS doc, coalesce(tags::text, '') AS tags FROM $t ORDER BY id" -Session $S)
        $back.Count | Should -Be 3
        for ($i = 0; $i -lt 3; $i++) {
            foreach ($p in 'id', 'name', 'born', 'score', 'doc', 'tags') {
                $back[$i].$p | Should -BeExactly $expected[$i].$p -Because "row $($i + 1), column $p"
            }
        }
        $back[1].name | Should -BeExactly $Nasty
        $back[1].tags | Should -BeExactly '{"a,b","q\"uote",NULL,""}'
        # NULL is an empty field, an empty string two quotes: COPY FROM (and Write-AequorTableData) tell them apart.
        $lines = (Get-Content -LiteralPath $file -Raw) -split "`n"
        $lines[0] | Should -BeExactly 'id,name,born,score,doc,tags'
        $lines[-2] | Should -BeExactly '3,"",1999-12-31,-0.001,null,{}'
        (Get-Content -LiteralPath $file -Raw) | Should -BeLike '*,,,,"{""a,b"",""q\""uote"",NULL,""""}"*'
        [IO.File]::ReadAllBytes($file)[0] | Should -Be ([byte][char]'i') -Because 'UTF-8 without a byte order mark'
    }

    It 'round-trips through Write-AequorTableData into a copy of the table, EXCEPT finding no difference' {
        $t = New-People
        $copy = "${t}_copy"
        $null = Invoke-AequorQuery "CREATE TABLE $copy (LIKE $t)" -Session $S
        $file = Join-Path $TestDrive 'roundtrip.csv'
        # NULL only where Import-Csv's empty string is NULL again: text columns keep '' apart from NULL, so compare those via -Query.
        Export-AequorTableData -Path $file -Query "SELECT id, name, born, score, doc, tags FROM $t WHERE id <> 2" -Session $S | Should -BeNullOrEmpty
        Import-Csv -LiteralPath $file | Write-AequorTableData -Table $copy -Session $S -PassThru | Should -Be 2
        Invoke-AequorQuery "SELECT count(*) FROM (SELECT * FROM $t WHERE id <> 2 EXCEPT SELECT * FROM $copy) d" -As Scalar -Session $S | Should -Be 0
        Invoke-AequorQuery "SELECT count(*) FROM (SELECT * FROM $copy EXCEPT SELECT * FROM $t) d" -As Scalar -Session $S | Should -Be 0
    }

    It 'exports a query, chosen columns in their order, without a header and with another delimiter' {
        $t = New-People
        $file = Join-Path $TestDrive 'cols.csv'
        Export-AequorTableData -Path $file -Table $t -Column SCORE, id -Delimiter ';' -Session $S
        (Get-Content -LiteralPath $file) | Should -Be @('score;id', '12.50;1', ';2', '-0.001;3')
        Export-AequorTableData -Path $file -Query "SELECT id, born FROM $t WHERE born IS NOT NULL ORDER BY id;" -NoHeader -Session $S -PassThru | Should -Be 2
        (Get-Content -LiteralPath $file) | Should -Be @('1,1990-02-03', '3,1999-12-31')
    }

    It 'replaces an existing file, and with -NoClobber refuses before anything is sent' {
        $file = Join-Path $TestDrive 'clobber.csv'
        Set-Content -LiteralPath $file -Value 'old' -NoNewline
        Export-AequorTableData -Path $file -Query 'SELECT 1 AS one' -Session $S
        Get-Content -LiteralPath $file -Raw | Should -BeExactly "one`n1`n"
        Set-Content -LiteralPath $file -Value 'old' -NoNewline
        $calls = Get-ProbeCalls
        { Export-AequorTableData -Path $file -Query "SELECT $Probe()" -NoClobber -Session $S } |
            Should -Throw -ErrorId 'AequorFileExists,Aequor.PowerShell.ExportAequorTableDataCommand'
        Assert-Untouched $file 'old'
        Get-ProbeCalls | Should -Be $calls
        Export-AequorTableData -Path (Join-Path $TestDrive 'fresh.csv') -Query "SELECT $Probe() AS p" -NoClobber -Session $S -PassThru | Should -Be 1
        Get-ProbeCalls | Should -Be ($calls + 1)
    }

    It 'keeps the permissions of the file it replaces (0600 stays 0600, 0664 stays 0664)' -Skip:$IsWindows {
        foreach ($mode in [IO.UnixFileMode[]]@('UserRead, UserWrite', 'UserRead, UserWrite, GroupRead, GroupWrite, OtherRead')) {
            $path = Join-Path $TestDrive "mode-$([int]$mode).csv"
            Set-Content -LiteralPath $path -Value 'old'
            [IO.File]::SetUnixFileMode($path, $mode)
            Export-AequorTableData -Query 'SELECT 1 AS one' -Path $path -Session $S
            [IO.File]::GetUnixFileMode($path) | Should -Be $mode
            Get-Content -LiteralPath $path | Should -Be @('one', '1')
        }
    }

    It 'keeps the owner and group of the file it replaces, run as root (a rename would leave root''s)' -Skip:(-not $IsLinux -or (id -u) -ne '0') {
        $path = Join-Path $TestDrive 'owned.csv'
        Set-Content -LiteralPath $path -Value 'old'
        [IO.File]::SetUnixFileMode($path, 'UserRead, UserWrite, GroupRead')
        chown 65534:65534 $path
        Export-AequorTableData -Query 'SELECT 1 AS one' -Path $path -Session $S
        $stat = (Get-Item -LiteralPath $path).UnixStat
        "$($stat.UserId):$($stat.GroupId)" | Should -Be '65534:65534'
        [IO.File]::GetUnixFileMode($path) | Should -Be ([IO.UnixFileMode]'UserRead, UserWrite, GroupRead')
        Get-Content -LiteralPath $path | Should -Be @('one', '1')
    }

    It 'writes through a file with more than one hard link: every link shows the rows, and the links stay' -Skip:$IsWindows {
        $folder = Join-Path $TestDrive 'hard'
        $null = New-Item -ItemType Directory $folder
        $path = Join-Path $folder 'data.csv'
        Set-Content -LiteralPath $path -Value 'old'
        $link = Join-Path $folder 'other-name.csv'
        $null = New-Item -ItemType HardLink -Path $link -Target $path
        Export-AequorTableData -Query 'SELECT 1 AS one' -Path $path -Session $S -PassThru | Should -Be 1
        Get-Content -LiteralPath $link -Raw | Should -BeExactly "one`n1`n"
        Get-Content -LiteralPath $path -Raw | Should -BeExactly "one`n1`n"
        (Get-Item -LiteralPath $path).UnixStat.HardlinkCount | Should -Be 2
        @(Get-ChildItem -LiteralPath $folder -Force -Filter '*.tmp') | Should -BeNullOrEmpty
        # A shorter export leaves nothing of the longer content before it.
        Export-AequorTableData -Query 'SELECT 2 AS t' -Path $link -Session $S
        Get-Content -LiteralPath $path -Raw | Should -BeExactly "t`n2`n"
    }

    It 'writes through a symbolic link: the file it points to is replaced, its mode kept, and the link stays a link' -Skip:$IsWindows {
        $folder = Join-Path $TestDrive 'links'
        $real = Join-Path $folder 'real'
        $null = New-Item -ItemType Directory $real
        $target = Join-Path $real 'data.csv'
        Set-Content -LiteralPath $target -Value 'old'
        [IO.File]::SetUnixFileMode($target, 'UserRead, UserWrite')
        $link = Join-Path $folder 'link.csv'
        # Relative, as ln -s writes them; and a link to that link.
        $null = New-Item -ItemType SymbolicLink -Path $link -Target 'real/data.csv'
        $chain = Join-Path $folder 'chain.csv'
        $null = New-Item -ItemType SymbolicLink -Path $chain -Target $link
        Export-AequorTableData -Path $chain -Query 'SELECT 1 AS one' -Session $S -PassThru | Should -Be 1
        Export-AequorTableData -Path $link -Query 'SELECT 2 AS two' -Session $S -PassThru | Should -Be 1
        (Get-Item -LiteralPath $link).LinkType | Should -Be 'SymbolicLink'
        (Get-Item -LiteralPath $chain).LinkType | Should -Be 'SymbolicLink'
        Get-Content -LiteralPath $target -Raw | Should -BeExactly "two`n2`n"
        [IO.File]::GetUnixFileMode($target) | Should -Be ([IO.UnixFileMode]'UserRead, UserWrite')
        @(Get-ChildItem -LiteralPath $folder, $real -Force -Filter '*.tmp') | Should -BeNullOrEmpty
        { Export-AequorTableData -Path $link -Query 'SELECT 3 AS three' -NoClobber -Session $S } |
            Should -Throw -ErrorId 'AequorFileExists,Aequor.PowerShell.ExportAequorTableDataCommand'
        Get-Content -LiteralPath $target -Raw | Should -BeExactly "two`n2`n"
    }

    It 'refuses a destination that is no regular file (a named pipe) before anything is sent, and leaves it as it was' -Skip:(-not $IsLinux) {
        $fifo = Join-Path $TestDrive 'pipe.csv'
        & mkfifo $fifo
        $LASTEXITCODE | Should -Be 0
        $calls = Get-ProbeCalls
        { Export-AequorTableData -Path $fifo -Query "SELECT $Probe()" -Session $S } |
            Should -Throw -ErrorId 'AequorInvalidParameter,Aequor.PowerShell.ExportAequorTableDataCommand' -ExpectedMessage '*is a named pipe (FIFO), not a regular file*Nothing was exported*'
        Get-ProbeCalls | Should -Be $calls
        & stat -c %F $fifo | Should -Be 'fifo'
        @(Get-ChildItem -LiteralPath $TestDrive -Force -Filter '*.tmp') | Should -BeNullOrEmpty
    }

    It 'exports the generated columns of a table too, by default and when -Column names one' {
        $t = "et_gen_$Suffix$(Get-Random)"
        $null = Invoke-AequorQuery "CREATE TABLE $t (id int, qty int, total int GENERATED ALWAYS AS (qty * 10) STORED); INSERT INTO $t (id, qty) VALUES (1, 2), (2, NULL)" -Session $S
        $file = Join-Path $TestDrive 'generated.csv'
        Export-AequorTableData -Path $file -Table $t -Session $S -PassThru | Should -Be 2
        Get-Content -LiteralPath $file | Should -Be @('id,qty,total', '1,2,20', '2,,')
        Export-AequorTableData -Path $file -Table $t -Column TOTAL, id -Session $S -PassThru | Should -Be 2
        Get-Content -LiteralPath $file | Should -Be @('total,id', '20,1', ',2')
    }

    It 'exports a view and a partitioned table given as -Table, as their rows' {
        $t = New-People
        $view = "${t}_v"
        $parted = "${t}_p"
        $null = Invoke-AequorQuery "CREATE VIEW $view AS SELECT id, name FROM $t WHERE id < 3" -Session $S
        $null = Invoke-AequorQuery "CREATE TABLE $parted (id int, name text) PARTITION BY RANGE (id); CREATE TABLE ${parted}_1 PARTITION OF $parted FOR VALUES FROM (0) TO (10); INSERT INTO $parted VALUES (1, 'one'), (2, 'two')" -Session $S
        $file = Join-Path $TestDrive 'view.csv'
        Export-AequorTableData -Path $file -Table $view -Column id -Session $S -PassThru | Should -Be 2
        Get-Content -LiteralPath $file | Should -Be @('id', '1', '2')
        Export-AequorTableData -Path $file -Table $parted -Session $S -PassThru | Should -Be 2
        (Import-Csv -LiteralPath $file | Sort-Object id | ForEach-Object { "$($_.id)=$($_.name)" }) | Should -Be @('1=one', '2=two')
    }

    It 'exports the rows of a table''s inheritance children too, as SELECT shows them, with and without -Column' {
        $t = "et_parent_$Suffix$(Get-Random)"
        $null = Invoke-AequorQuery "CREATE TABLE $t (id int, name text); CREATE TABLE ${t}_2024 () INHERITS ($t); INSERT INTO $t VALUES (1, 'own'); INSERT INTO ${t}_2024 VALUES (2, 'child'), (3, 'child')" -Session $S
        $file = Join-Path $TestDrive 'parent.csv'
        Export-AequorTableData -Path $file -Table $t -Session $S -PassThru | Should -Be 3
        (Import-Csv -LiteralPath $file | Sort-Object id | ForEach-Object { "$($_.id)=$($_.name)" }) | Should -Be @('1=own', '2=child', '3=child')
        Export-AequorTableData -Path $file -Table $t -Column id -Session $S -PassThru | Should -Be 3
    }

    It 'leaves an existing file intact and the session usable when the table, a column or the query fails' {
        $t = New-People
        $file = Join-Path $TestDrive 'kept.csv'
        Set-Content -LiteralPath $file -Value 'precious' -NoNewline
        { Export-AequorTableData -Path $file -Table "no_such_$Suffix" -Session $S } |
            Should -Throw -ErrorId 'AequorInvalidParameter,Aequor.PowerShell.ExportAequorTableDataCommand' -ExpectedMessage "*no_such_$Suffix*"
        { Export-AequorTableData -Path $file -Table $t -Column id, nope -Session $S } |
            Should -Throw -ExpectedMessage "*'nope' is no column*born*"
        # Rows flow, then the server fails at row 5000: what was written so far is thrown away.
        $err = $null
        try { Export-AequorTableData -Path $file -Query 'SELECT g, 1 / (g - 5000) AS x FROM generate_series(1, 10000) g' -Session $S } catch { $err = $_ }
        $err.FullyQualifiedErrorId | Should -Be 'AequorTableExportFailed,Aequor.PowerShell.ExportAequorTableDataCommand'
        $err.Exception.SqlState | Should -Be '22012'
        $err.Exception.Message | Should -BeLike "*Nothing was written to $file; it is unchanged*"
        Assert-Untouched $file 'precious'
        { Export-AequorTableData -Path $file -Query 'SELECT $1' -Session $S } | Should -Throw -ExpectedMessage '*placeholder $1*'
        { Export-AequorTableData -Path $file -Query 'SELECT 1; SELECT 2' -Session $S } | Should -Throw -ExpectedMessage '*more than one statement*'
        Assert-Untouched $file 'precious'
        Invoke-AequorQuery 'SELECT 7' -As Scalar -Session $S | Should -Be 7
    }

    It 'refuses a missing folder before anything is sent, and -WhatIf sends nothing and writes no file' {
        $calls = Get-ProbeCalls
        $missing = Join-Path $TestDrive "no-such-folder/x.csv"
        { Export-AequorTableData -Path $missing -Query "SELECT $Probe()" -Session $S } |
            Should -Throw -ErrorId 'AequorFileNotFound,Aequor.PowerShell.ExportAequorTableDataCommand' -ExpectedMessage '*does not exist*'
        $whatIf = Join-Path $TestDrive 'whatif.csv'
        Export-AequorTableData -Path $whatIf -Query "SELECT $Probe()" -Session $S -WhatIf
        Test-Path -LiteralPath $whatIf | Should -BeFalse
        Get-ProbeCalls | Should -Be $calls
    }

    It 'resolves a relative -Path against the current location, and a PowerShell drive path' {
        $folder = Join-Path $TestDrive 'relative'
        $null = New-Item -ItemType Directory $folder
        Push-Location $folder
        try {
            Export-AequorTableData -Path './rel.csv' -Query 'SELECT 1 AS one' -Session $S
            Export-AequorTableData -Path 'TestDrive:/relative/drive.csv' -Query 'SELECT 2 AS two' -Session $S
        } finally { Pop-Location }
        Get-Content -LiteralPath (Join-Path $folder 'rel.csv') -Raw | Should -BeExactly "one`n1`n"
        Get-Content -LiteralPath (Join-Path $folder 'drive.csv') -Raw | Should -BeExactly "two`n2`n"
    }

    It 'joins an open transaction and sees its uncommitted rows' {
        $t = New-People
        $file = Join-Path $TestDrive 'tx.csv'
        Start-AequorTransaction -Session $S
        try {
            $null = Invoke-AequorQuery "INSERT INTO $t (id, name) VALUES (4, 'uncommitted')" -Session $S
            Export-AequorTableData -Path $file -Table $t -Column name -Session $S -PassThru | Should -Be 4
        } finally { Undo-AequorTransaction -Session $S }
        (Get-Content -LiteralPath $file)[-1] | Should -Be 'uncommitted'
        Export-AequorTableData -Path $file -Table $t -Session $S -PassThru | Should -Be 3
    }

    It 'stopped mid-export (Ctrl+C) cancels the rows on the server, leaves the existing file intact and the session usable' {
        $folder = Join-Path $TestDrive 'stop'
        $null = New-Item -ItemType Directory $folder
        $file = Join-Path $folder 'big.csv'
        Set-Content -LiteralPath $file -Value 'before' -NoNewline
        $marker = "et_stop_$Suffix"
        $ps = New-ModuleShell {
            param($ModulePath, $Connection, $Secret, $File, $Marker)
            Import-Module $ModulePath
            $null = Connect-Aequor $Connection -CoordinationSecret $Secret -ServiceName et-stop -ReaperRunProbability 0
            Export-AequorTableData -Path $File -Query "SELECT g, repeat('x', 500) AS pad, '$Marker' AS m, pg_sleep(0.0005) FROM generate_series(1, 1000000) g"
        } -ArgumentList $TestSecret, $file, $marker
        try {
            $handle = $ps.BeginInvoke()
            # Rows have reached the temporary file: the export is well under way.
            Wait-Until { @(Get-ChildItem -LiteralPath $folder -Force -Filter '*.tmp' | Where-Object Length -gt 0).Count -gt 0 } 30000 | Should -BeTrue
            $stop = $ps.BeginStop($null, $null)
            # Bounded only so that a cancel never sent fails here instead of after the million rows.
            $stop.AsyncWaitHandle.WaitOne(20000) | Should -BeTrue
            $ps.EndStop($stop)
            $ps.InvocationStateInfo.State | Should -Be 'Stopped'
            Wait-Until {
                (Invoke-AequorQuery "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%' || `$1 || '%' AND pid <> pg_backend_pid()" -Parameters @(, $marker) -As Scalar -Session $S) -eq 0
            } 10000 | Should -BeTrue -Because 'the server stopped the COPY'
            Assert-Untouched $file 'before'
            $ps.Commands.Clear()
            $null = $ps.AddScript('Invoke-AequorQuery "SELECT 7" -As Scalar')
            $ps.Invoke() | Should -Be 7
        } finally {
            $ps.Dispose()
        }
    }

    It 'past -CommandTimeout, or cut by the server''s statement_timeout, fails naming the timeout, leaves no file and the session usable' {
        $file = Join-Path $TestDrive 'timeout.csv'
        Set-Content -LiteralPath $file -Value 'precious' -NoNewline
        $pid0 = $S.BackendPid
        $err = $null
        try { Export-AequorTableData -Path $file -Query 'SELECT g, pg_sleep(0.01) FROM generate_series(1, 1000) g' -CommandTimeout 1 -Session $S } catch { $err = $_ }
        $err.FullyQualifiedErrorId | Should -Be 'AequorTableExportFailed,Aequor.PowerShell.ExportAequorTableDataCommand'
        $err.CategoryInfo.Category | Should -Be 'OperationTimeout'
        $err.Exception.Message | Should -BeLike '*command timeout of 1 s*'
        Assert-Untouched $file 'precious'
        Invoke-AequorQuery 'SELECT 7' -As Scalar -Session $S | Should -Be 7
        $S.BackendPid | Should -Be $pid0 -Because 'a timeout cancels the COPY; it does not break the connection'

        $cut = Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION -CoordinationSecret $TestSecret -ServiceName (New-TestServiceName et) -Name "et-cut-$Suffix"
        try {
            $null = Invoke-AequorQuery "SET statement_timeout = '300ms'" -Session $cut
            $err = $null
            try { Export-AequorTableData -Path $file -Query 'SELECT g, pg_sleep(0.01) FROM generate_series(1, 1000) g' -Session $cut } catch { $err = $_ }
            $err.FullyQualifiedErrorId | Should -Be 'AequorTableExportFailed,Aequor.PowerShell.ExportAequorTableDataCommand'
            $err.Exception.SqlState | Should -Be '57014'
            $err.Exception.Message | Should -BeLike '*statement timeout*'
            Assert-Untouched $file 'precious'
            Invoke-AequorQuery 'SELECT 7' -As Scalar -Session $cut | Should -Be 7
        } finally { Disconnect-Aequor -Session $cut -Confirm:$false }
    }

    It 'loses its connection mid-export (terminated by another connection): <Case>' -ForEach @(
        @{ Case = 'outside a transaction: a clear error, never sent again'; Begin = ''; End = ''; ErrorId = 'AequorTableExportFailed'; Message = '*connection was lost during the export*not sent again*' }
        @{ Case = 'inside Start-AequorTransaction: the transaction is lost until it is undone'; Begin = 'Start-AequorTransaction'; End = 'Undo-AequorTransaction'; ErrorId = 'AequorTransactionLost'; Message = '*transaction is lost*' }
        @{ Case = 'inside BEGIN: the transaction is lost until ROLLBACK'; Begin = '$null = Invoke-AequorQuery BEGIN'; End = '$null = Invoke-AequorQuery ROLLBACK'; ErrorId = 'AequorTransactionLost'; Message = '*transaction is lost*' }
    ) {
        $folder = Join-Path $TestDrive "lost-$([Guid]::NewGuid().ToString('N').Substring(0, 6))"
        $null = New-Item -ItemType Directory $folder
        $file = Join-Path $folder 'lost.csv'
        Set-Content -LiteralPath $file -Value 'before' -NoNewline
        $marker = "et_lost_$([Guid]::NewGuid().ToString('N').Substring(0, 8))"
        $sequence = "${marker}_calls"
        $null = Invoke-AequorQuery "CREATE SEQUENCE $sequence" -Session $S
        $ps = New-ModuleShell ([scriptblock]::Create(@"
param(`$ModulePath, `$Connection, `$Secret, `$File)
Import-Module `$ModulePath
`$null = Connect-Aequor `$Connection -CoordinationSecret `$Secret -ServiceName et-lost -ReaperRunProbability 0
$Begin
try {
    Export-AequorTableData -Path `$File -Query "SELECT g, repeat('x', 500) AS pad, '$marker' AS m, pg_sleep(0.0005) FROM generate_series(1, 1000000) g, (SELECT nextval('$sequence')) AS n"
} catch { `$_ }
try { 'next:' + (Invoke-AequorQuery 'SELECT 7' -As Scalar -ErrorAction Stop) } catch { `$_ }
$End
'after:' + (Invoke-AequorQuery 'SELECT 7' -As Scalar)
"@)) -ArgumentList $TestSecret, $file
        try {
            $handle = $ps.BeginInvoke()
            Wait-Until { @(Get-ChildItem -LiteralPath $folder -Force -Filter '*.tmp' | Where-Object Length -gt 0).Count -gt 0 } 30000 | Should -BeTrue -Because 'rows are flowing'
            Invoke-AequorQuery "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%' || `$1 || '%' AND pid <> pg_backend_pid()" -Parameters @(, $marker) -As Scalar -Session (Get-Observer) | Should -Be 1
            $handle.AsyncWaitHandle.WaitOne(60000) | Should -BeTrue
            $out = @($ps.EndInvoke($handle))
            $out[0].FullyQualifiedErrorId | Should -Be "$ErrorId,Aequor.PowerShell.ExportAequorTableDataCommand"
            $out[0].Exception.Message | Should -BeLike $Message
            if ($Begin) {
                # Never a silent retry outside the transaction: the next statement fails too, until the transaction is ended.
                $out[1].FullyQualifiedErrorId | Should -BeLike 'AequorTransactionLost,*'
            } else {
                $out[1] | Should -Be 'next:7'
            }
            $out[-1] | Should -Be 'after:7'
            Assert-Untouched $file 'before'
            Invoke-AequorQuery "SELECT last_value FROM $sequence" -As Scalar -Session $S | Should -Be 1 -Because 'the query was sent once'
        } finally {
            $ps.Dispose()
        }
    }

    It 'on a full disk names the file and the cause, stops the COPY at once and leaves no file, also when the last bytes fail' -Skip:(-not $IsLinux) {
        # A file size limit (ulimit -f, in KiB) makes writes fail as a full disk does, without mounting anything; the
        # process must ignore SIGXFSZ to see the error, and W^X off keeps the runtime's own mappings under the limit.
        $folder = Join-Path $TestDrive 'full'
        $null = New-Item -ItemType Directory $folder
        $script = Join-Path $TestDrive 'full.ps1'
        Set-Content -LiteralPath $script -Value @'
param($ModulePath, $Connection, $Secret, $Folder)
Import-Module $ModulePath
$s = ConvertTo-SecureString $Secret -AsPlainText -Force
$null = Connect-Aequor $Connection -CoordinationSecret $s -ServiceName et-full -ReaperRunProbability 0
$pid0 = (Get-AequorSession).BackendPid
$results = foreach ($case in @(
        # 50 million rows: had the COPY not been cancelled, closing it would read them all.
        @{ Name = 'midway'; Query = "SELECT g, repeat('x', 100) FROM generate_series(1, 50000000) g" }
        # 2,070,000 bytes: 31 full 64 KiB writes fit under the 2,048,000-byte limit, the last, partial one at the end does not.
        @{ Name = 'last'; Query = "SELECT repeat('x', 99) FROM generate_series(1, 20700)" })) {
    $file = Join-Path $Folder "$($case.Name).csv"
    Set-Content -LiteralPath $file -Value 'precious' -NoNewline
    $err = $null
    try { Export-AequorTableData -Path $file -Query $case.Query -NoHeader } catch { $err = $_ }
    [pscustomobject]@{
        Name = $case.Name
        ErrorId = $err.FullyQualifiedErrorId
        Category = "$($err.CategoryInfo.Category)"
        Message = $err.Exception.Message
        Content = Get-Content -LiteralPath $file -Raw
        Temporary = @(Get-ChildItem -LiteralPath $Folder -Force -Filter '*.tmp').Count
        Next = Invoke-AequorQuery 'SELECT 7' -As Scalar
        SameBackend = (Get-AequorSession).BackendPid -eq $pid0
    }
}
$results | ConvertTo-Json -Compress
'@
        $pwsh = [Environment]::ProcessPath
        $arguments = @(if ([IO.Path]::GetFileNameWithoutExtension($pwsh) -eq 'dotnet') { Join-Path $PSHOME 'pwsh.dll' }) +
            @('-NoProfile', '-NonInteractive', '-File', $script, $env:AEQUOR_MODULE_PATH, $env:AEQUOR_TEST_APP_CONNECTION, $TestSecretText, $folder)
        $env:DOTNET_EnableWriteXorExecute = '0'
        try {
            $json = & sh -c 'trap "" XFSZ; ulimit -f 2000; exec "$0" "$@"' $pwsh @arguments 2>&1
        } finally { Remove-Item Env:DOTNET_EnableWriteXorExecute }
        $LASTEXITCODE | Should -Be 0 -Because "$json"
        $results = @("$json" | ConvertFrom-Json)
        $results.Count | Should -Be 2
        foreach ($r in $results) {
            $r.ErrorId | Should -Be 'AequorTableExportFailed,Aequor.PowerShell.ExportAequorTableDataCommand' -Because $r.Name
            $r.Category | Should -Be 'WriteError' -Because $r.Name
            $r.Message | Should -BeLike "*$(Join-Path $folder "$($r.Name).csv")*could not be written (*too large*)*unchanged*" -Because $r.Name
            $r.Content | Should -BeExactly 'precious' -Because $r.Name
            $r.Temporary | Should -Be 0 -Because $r.Name
            $r.Next | Should -Be 7 -Because $r.Name
            $r.SameBackend | Should -BeTrue -Because "$($r.Name): the COPY was cancelled, the connection kept"
        }
    }

    It 'counts rows (-PassThru) by line breaks outside quotes: newlines, quotes, delimiters, NULL and empty strings, a header with a line break' {
        $t = "et_count_$Suffix"
        $null = Invoke-AequorQuery "CREATE TABLE $t (id int, ""two`nlines"" text, b text)" -Session $S
        $null = Invoke-AequorQuery (@"
INSERT INTO $t VALUES
 (1, E'a\nb', 'plain'), (2, E'quote "" and \r\n crlf', ''), (3, NULL, 'x;y,z'), (4, '', NULL),
 (5, E'\n', '"'), (6, '""', E'"\n"'), (7, 'end', E'\\.')
"@) -Session $S
        foreach ($delimiter in ',', ';') {
            $file = Join-Path $TestDrive "count$([int][char]$delimiter).csv"
            $rows = Export-AequorTableData -Path $file -Table $t -Delimiter $delimiter -Session $S -PassThru
            $rows | Should -Be (Invoke-AequorQuery "SELECT count(*) FROM $t" -As Scalar -Session $S)
            $back = @(Import-Csv -LiteralPath $file -Delimiter $delimiter)
            $back.Count | Should -Be $rows
            # Import-Csv reads NULL and '' both as '' (the documented rule); every other value comes back as it was.
            $expected = @(Invoke-AequorQuery "SELECT id::text AS id, coalesce(""two`nlines"", '') AS two, coalesce(b, '') AS b FROM $t ORDER BY id" -Session $S)
            for ($i = 0; $i -lt $expected.Count; $i++) {
                $back[$i].id | Should -BeExactly $expected[$i].id
                $back[$i]."two`nlines" | Should -BeExactly $expected[$i].two -Because "row $($i + 1)"
                $back[$i].b | Should -BeExactly $expected[$i].b -Because "row $($i + 1)"
            }
        }
        Export-AequorTableData -Path (Join-Path $TestDrive 'none.csv') -Query "SELECT * FROM $t WHERE false" -Session $S -PassThru | Should -Be 0
    }

    It 'inside a pipeline streaming the rows of a query on the same session fails with AequorSessionBusy, writing no file' {
        $file = Join-Path $TestDrive 'busy.csv'
        $r = Invoke-InsideRows "Export-AequorTableData -Path '$file' -Query 'SELECT 1'"
        $r.Done | Should -BeTrue -Because 'it must not wait for ever for the reader its own pipeline holds'
        $r.Output | Should -Be @('1', '2', 'after:7')
        $r.Errors[0].FullyQualifiedErrorId | Should -BeLike 'AequorSessionBusy*'
        Test-Path -LiteralPath $file | Should -BeFalse
    }

    It 'reports rows, bytes and time in the Verbose stream' {
        $file = Join-Path $TestDrive 'verbose.csv'
        $verbose = Export-AequorTableData -Path $file -Query 'SELECT g FROM generate_series(1, 3) g' -Session $S -Verbose 4>&1
        "$verbose" | Should -Match '3 rows \(8 bytes\) of the query exported to .*verbose\.csv in [\d.]+ s'
    }
}
