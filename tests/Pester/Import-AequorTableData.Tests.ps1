BeforeAll {
    . (Join-Path $PSScriptRoot 'Aequor.TestHelpers.ps1')
    $script:S = Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION -CoordinationSecret $TestSecret -ServiceName (New-TestServiceName it)
    $script:Suffix = [Guid]::NewGuid().ToString('N').Substring(0, 8)
    $script:Nasty = "comma, ""double"" 'single'`nnew line`r`ncrlf tab`there back\slash \N \. ünï©ødé 🙂 {}"

    # A table with NULLs, empty strings and every kind of value an export writes, and an empty copy of it.
    function New-Source {
        $name = "it_src_$script:Suffix$(Get-Random)"
        $null = Invoke-AequorQuery "CREATE TABLE $name (id int PRIMARY KEY, name text, born date, at timestamptz, score numeric, doc jsonb, tags text[], twice int GENERATED ALWAYS AS (id * 2) STORED)" -Session $S
        $null = Invoke-AequorQuery "INSERT INTO $name (id, name, born, at, score, doc, tags) VALUES (1, NULL, NULL, NULL, NULL, NULL, NULL), (2, '', '2024-02-29', '2024-02-29 23:59:59.123456+05:30', 12.50, `$1::jsonb, ARRAY['a,b', 'q""uote', NULL, '']), (3, `$2, '1999-12-31', 'infinity', -0.001, 'null', '{}')" -Parameters '{"a": [1, "b,c"], "q": "\""}', $Nasty -Session $S
        $null = Invoke-AequorQuery "CREATE TABLE ${name}_copy (LIKE $name INCLUDING GENERATED)" -Session $S
        $name
    }

    function New-Keyed {
        $name = "it_keyed_$script:Suffix$(Get-Random)"
        $null = Invoke-AequorQuery "CREATE TABLE $name (id int PRIMARY KEY, name text)" -Session $S
        $name
    }

    function Get-Count([string] $Table) { Invoke-AequorQuery "SELECT count(*) FROM $Table" -As Scalar -Session $S }

    # The columns an export of New-Source writes that an import can fill (twice is generated).
    $script:Fillable = 'id', 'name', 'born', 'at', 'score', 'doc', 'tags'
}

AfterAll {
    Disconnect-Aequor -All -Confirm:$false
}

Describe 'Import-AequorTableData' {
    It 'reads back what Export-AequorTableData wrote: NULL and '''' apart, quotes, delimiters, line breaks, non-ASCII, arrays, jsonb, timestamps' {
        $t = New-Source
        $file = Join-Path $TestDrive 'roundtrip.csv'
        Export-AequorTableData -Path $file -Table $t -Column $Fillable -Session $S
        $count = Import-AequorTableData -Path $file -Table "${t}_copy" -Session $S -PassThru
        $count | Should -Be 3
        $count | Should -BeOfType [long]
        Invoke-AequorQuery "SELECT count(*) FROM (SELECT * FROM $t EXCEPT SELECT * FROM ${t}_copy) d" -As Scalar -Session $S | Should -Be 0
        Invoke-AequorQuery "SELECT count(*) FROM (SELECT * FROM ${t}_copy EXCEPT SELECT * FROM $t) d" -As Scalar -Session $S | Should -Be 0
        $back = @(Invoke-AequorQuery "SELECT id, name IS NULL AS null_name, name FROM ${t}_copy ORDER BY id" -Session $S)
        $back[0].null_name | Should -BeTrue
        $back[1].null_name | Should -BeFalse -Because 'an empty string stays an empty string'
        $back[1].name | Should -BeExactly ''
        $back[2].name | Should -BeExactly $Nasty
    }

    It 'takes a byte order mark, CRLF line ends, -Delimiter, and -NoHeader with -Column or the table''s columns in order' {
        $t = New-Keyed
        $file = Join-Path $TestDrive 'bom.csv'
        [IO.File]::WriteAllText($file, "ID;Name`r`n1;""a;b""`r`n2;`r`n", [Text.UTF8Encoding]::new($true))
        Import-AequorTableData $file -Table $t -Delimiter ';' -Session $S -PassThru | Should -Be 2
        Set-Content -LiteralPath $file -Value 'x,3', 'y,4' -Encoding utf8NoBOM
        Import-AequorTableData $file -Table $t -NoHeader -Column name, id -Session $S -PassThru | Should -Be 2
        Set-Content -LiteralPath $file -Value '5,z' -Encoding utf8NoBOM
        Import-AequorTableData $file -Table $t -NoHeader -Session $S -PassThru | Should -Be 1
        Invoke-AequorQuery "SELECT string_agg(id || '=' || coalesce(name, 'NULL'), ' ' ORDER BY id) FROM $t" -As Scalar -Session $S | Should -BeExactly '1=a;b 2=NULL 3=x 4=y 5=z'
    }

    It 'imports a value of only \. on a line of its own and every row after it (PostgreSQL 15 stops there), and a file of CR line ends' {
        $t = "it_dot_$script:Suffix$(Get-Random)"
        $null = Invoke-AequorQuery "CREATE TABLE $t (n serial, name text, note text)" -Session $S
        $file = Join-Path $TestDrive 'dot.csv'
        # Export-Csv -UseQuotes AsNeeded writes a one-column row of \. bare, as any CSV writer may.
        @('a', '\.', 'b') | ForEach-Object { [pscustomobject]@{ name = $_ } } | Export-Csv -LiteralPath $file -UseQuotes AsNeeded
        (Get-Content -LiteralPath $file)[2] | Should -BeExactly '\.'
        Import-AequorTableData $file -Table $t -Session $S -PassThru | Should -Be 3
        [IO.File]::WriteAllText($file, "name,note`r""c"",""x`ry""`rd,z`r")
        Import-AequorTableData $file -Table $t -Session $S -PassThru | Should -Be 2
        Invoke-AequorQuery "SELECT string_agg(name || ':' || coalesce(note, '-'), ' ' ORDER BY n) FROM $t" -As Scalar -Session $S |
            Should -BeExactly "a:- \.:- b:- c:x`ry d:z"
    }

    It '-PassThru counts the rows the server stored: a row a BEFORE INSERT trigger kept out is not counted' {
        $t = New-Keyed
        Invoke-AequorQuery "CREATE FUNCTION ${t}_odd() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN CASE WHEN NEW.id % 2 = 1 THEN NEW END; END'; CREATE TRIGGER odd BEFORE INSERT ON $t FOR EACH ROW EXECUTE FUNCTION ${t}_odd()" -Session $S
        $file = Join-Path $TestDrive 'odd.csv'
        Set-Content -LiteralPath $file -Value 'id', 1, 2, 3, 4 -Encoding utf8NoBOM
        Import-AequorTableData $file -Table $t -Session $S -PassThru | Should -Be 2
        Get-Count $t | Should -Be 2
    }

    It 'with a header, -Column must agree with it: the same columns in its order, else refused before anything is sent' {
        $t = New-Keyed
        $file = Join-Path $TestDrive 'agree.csv'
        Set-Content -LiteralPath $file -Value 'name,id', 'a,1' -Encoding utf8NoBOM
        Import-AequorTableData $file -Table $t -Column NAME, Id -Session $S -PassThru | Should -Be 1
        $err = $null
        try { Import-AequorTableData $file -Table $t -Column id, name -Session $S } catch { $err = $_ }
        $err.FullyQualifiedErrorId | Should -Be 'AequorInvalidParameter,Aequor.PowerShell.ImportAequorTableDataCommand'
        $err.Exception.Message | Should -BeLike "*-Column (id, name) does not agree with the file's header (name, id)*Nothing was imported.*"
        Get-Count $t | Should -Be 1
    }

    It 'refuses a header naming <Case> before anything is sent, naming it; an open transaction goes on' -ForEach @(
        @{ Case = 'an unknown column'; Header = 'id,nope'; Message = "*'nope' of the file's header (field 2) is no column of the table *; its columns: id, name, born, at, score, doc, tags*" }
        @{ Case = 'a generated column'; Header = 'id,twice'; Message = "*'twice' of the file's header (field 2) is the generated column 'twice'*" }
        @{ Case = 'a column twice'; Header = 'id,name,ID'; Message = "*'ID' of the file's header (field 3) names the column 'id' a second time*" }
    ) {
        $t = New-Source
        $file = Join-Path $TestDrive 'header.csv'
        Set-Content -LiteralPath $file -Value $Header, '7,8,9' -Encoding utf8NoBOM
        Start-AequorTransaction -Session $S
        try {
            $null = Invoke-AequorQuery "INSERT INTO ${t}_copy (id) VALUES (70)" -Session $S
            $err = $null
            try { Import-AequorTableData $file -Table "${t}_copy" -Session $S } catch { $err = $_ }
            $err.FullyQualifiedErrorId | Should -Be 'AequorInvalidParameter,Aequor.PowerShell.ImportAequorTableDataCommand'
            $err.Exception.Message | Should -BeLike $Message
            $S.TransactionFailed | Should -BeFalse -Because 'nothing was sent'
            Complete-AequorTransaction -Session $S
        } finally {
            if ($S.InTransaction) { Undo-AequorTransaction -Session $S }
        }
        Get-Count "${t}_copy" | Should -Be 1
    }

    It 'names the file''s line of a row the server refuses (a line break in an earlier value counted), imports nothing, and the session goes on' {
        $t = New-Keyed
        $file = Join-Path $TestDrive 'bad.csv'
        Set-Content -LiteralPath $file -Value 'id,name', '1,a', '2,"two', 'lines"', 'zz,b', '4,c' -Encoding utf8NoBOM
        $err = $null
        try { Import-AequorTableData $file -Table $t -Session $S } catch { $err = $_ }
        $err.FullyQualifiedErrorId | Should -Be 'AequorTableImportFailed,Aequor.PowerShell.ImportAequorTableDataCommand'
        $err.Exception.SqlState | Should -Be '22P02'
        $err.Exception.Message | Should -BeLike "*Line 5 of the file (row 3) was refused: 22P02: invalid input syntax for type integer: ""zz"" (column id). Nothing was imported*"
        $err.ScriptStackTrace | Should -Not -BeLike '*ImportCsv*'

        Set-Content -LiteralPath $file -Value 'id,name', '1,a', '2,b,extra' -Encoding utf8NoBOM
        $err = $null
        try { Import-AequorTableData $file -Table $t -Session $S } catch { $err = $_ }
        $err.Exception.Message | Should -BeLike '*Line 3 of the file (row 2) was refused: 22P04: extra data after last expected column*'
        Get-Count $t | Should -Be 0
        Invoke-AequorQuery 'SELECT 7' -As Scalar -Session $S | Should -Be 7
    }

    It 'refuses a file that is not UTF-8 naming its line, and imports nothing' {
        $t = New-Keyed
        $file = Join-Path $TestDrive 'latin1.csv'
        [IO.File]::WriteAllBytes($file, [byte[]](@([Text.Encoding]::ASCII.GetBytes("id,name`n1,ok`n2,caf")) + 0xE9 + 10))
        $err = $null
        try { Import-AequorTableData $file -Table $t -Session $S } catch { $err = $_ }
        $err.FullyQualifiedErrorId | Should -Be 'AequorTableImportFailed,Aequor.PowerShell.ImportAequorTableDataCommand'
        $err.Exception.Message | Should -BeLike '*The file is not UTF-8: the byte 0xE9 on its line 3*nothing was imported*'
        Get-Count $t | Should -Be 0
    }

    It 'refuses a missing file, a folder, an unknown table and -CommandTimeout 0 before anything is sent; -WhatIf sends nothing' {
        $t = New-Keyed
        $err = $null
        try { Import-AequorTableData (Join-Path $TestDrive 'none.csv') -Table $t -Session $S } catch { $err = $_ }
        $err.FullyQualifiedErrorId | Should -Be 'AequorFileNotFound,Aequor.PowerShell.ImportAequorTableDataCommand'
        $err.Exception.Message | Should -BeLike '*none.csv*does not exist: nothing was imported.'
        $err = $null
        try { Import-AequorTableData $TestDrive -Table $t -Session $S } catch { $err = $_ }
        $err.FullyQualifiedErrorId | Should -Be 'AequorInvalidParameter,Aequor.PowerShell.ImportAequorTableDataCommand'
        $err.Exception.Message | Should -BeLike '*is a folder*'
        $file = Join-Path $TestDrive 'ok.csv'
        Set-Content -LiteralPath $file -Value 'id', '1' -Encoding utf8NoBOM
        $err = $null
        try { Import-AequorTableData $file -Table "${t}_none" -Session $S } catch { $err = $_ }
        $err.FullyQualifiedErrorId | Should -Be 'AequorInvalidParameter,Aequor.PowerShell.ImportAequorTableDataCommand'
        $err.Exception.Message | Should -BeLike "*${t}_none does not exist*Nothing was imported.*"
        $err = $null
        try { Import-AequorTableData $file -Table $t -CommandTimeout 0 -Session $S } catch { $err = $_ }
        $err.FullyQualifiedErrorId | Should -Be 'AequorInvalidParameter,Aequor.PowerShell.ImportAequorTableDataCommand'
        # Ctrl+C stops a held-up import (tested below): the refusal is for the unattended job, as Write's.
        $err.Exception.Message | Should -BeLike '*nobody is there to press Ctrl+C (a scheduled job)*Nothing was imported.'
        Import-AequorTableData $file -Table $t -Session $S -WhatIf -PassThru | Should -BeNullOrEmpty
        Get-Count $t | Should -Be 0
    }

    It 'resolves a relative -Path against the current location, and reports rows and time in the Verbose stream' {
        $t = New-Keyed
        $folder = Join-Path $TestDrive 'here'
        $null = New-Item -ItemType Directory $folder
        Set-Content -LiteralPath (Join-Path $folder 'rel.csv') -Value 'id', '1', '2' -Encoding utf8NoBOM
        Push-Location $folder
        try {
            $verbose = Import-AequorTableData ./rel.csv -Table $t -Session $S -Verbose 4>&1
        } finally { Pop-Location }
        "$verbose" | Should -BeLike "*2 rows of $folder*rel.csv imported into $t (id) in *"
        Get-Count $t | Should -Be 2
    }

    It 'joins an open transaction (<Case>): undone, nothing is left' -ForEach @(
        @{ Case = 'Start-AequorTransaction'; Begin = { Start-AequorTransaction -Session $S }; End = { Undo-AequorTransaction -Session $S } }
        @{ Case = 'BEGIN'; Begin = { $null = Invoke-AequorQuery BEGIN -Session $S }; End = { $null = Invoke-AequorQuery ROLLBACK -Session $S } }
    ) {
        $t = New-Keyed
        $file = Join-Path $TestDrive 'tx.csv'
        Set-Content -LiteralPath $file -Value 'id', '1', '2' -Encoding utf8NoBOM
        & $Begin
        Import-AequorTableData $file -Table $t -Session $S -PassThru | Should -Be 2
        Get-Count $t | Should -Be 2
        & $End
        Get-Count $t | Should -Be 0
    }

    It 'stopped (Ctrl+C) while the server waits for a lock stops the COPY at once, imports nothing, and the session goes on' {
        $t = New-Keyed
        $file = Join-Path $TestDrive 'big.csv'
        # Far more than the socket buffers hold: the client's writes block once the server stops reading.
        [IO.File]::WriteAllText($file, ((1..2000000) -join "`n") + "`n")
        $holder = Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION -CoordinationSecret $TestSecret -ServiceName (New-TestServiceName it) -Name "it-hold-$Suffix"
        if (-not ('AequorTest.RecordingHost' -as [type])) { Add-Type -Path (Join-Path $PSScriptRoot 'Support/RecordingHost.cs') }
        $recorder = [AequorTest.RecordingHost]::new()
        $ps = New-ModuleShell -PSHost $recorder {
            param($ModulePath, $Connection, $Secret, $File, $Table)
            Import-Module $ModulePath
            $null = Connect-Aequor $Connection -CoordinationSecret $Secret -ServiceName it-stop -ReaperRunProbability 0
            Import-AequorTableData $File -Table $Table -NoHeader -Column id
        } -ArgumentList $TestSecret, $file, $t
        try {
            # Row 5 waits for this uncommitted row of the same key: the server stops reading the file.
            Start-AequorTransaction -Session $holder
            $null = Invoke-AequorQuery "INSERT INTO $t VALUES (5, 'held')" -Session $holder
            $handle = $ps.BeginInvoke()
            Wait-Until {
                (Invoke-AequorQuery "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'COPY%' || `$1 || '%'" -Parameters @(, $t) -As Scalar -Session (Get-Observer)) -eq 1
            } 30000 | Should -BeTrue -Because 'the COPY waits for the lock'
            $sw = [Diagnostics.Stopwatch]::StartNew()
            $stop = $ps.BeginStop($null, $null)
            # Bounded only so that a cancel never sent fails here instead of after the session's command timeout.
            $stop.AsyncWaitHandle.WaitOne(20000) | Should -BeTrue
            $ps.EndStop($stop)
            $ps.InvocationStateInfo.State | Should -Be 'Stopped'
            # PowerShell shows nothing from a stopped command: the host is told, once, as Write-AequorTableData tells it.
            Wait-Until { $recorder.Warnings.Count -gt 0 } 5000 | Should -BeTrue
            $recorder.Warnings | Should -HaveCount 1
            $recorder.Warnings[0] | Should -BeLike "Import-AequorTableData was stopped on session 'default': The import into *$t* was cancelled*nothing was imported*"
            Undo-AequorTransaction -Session $holder
            Get-Count $t | Should -Be 0
            $ps.Commands.Clear()
            $null = $ps.AddScript('Invoke-AequorQuery "SELECT 7" -As Scalar')
            $ps.Invoke() | Should -Be 7
        } finally {
            $ps.Dispose()
            $ps.Runspace.Dispose()
            Disconnect-Aequor -Session $holder -Confirm:$false
        }
    }

    It 'loses its connection while the file is sent (terminated by another connection): <Case>' -ForEach @(
        @{ Case = 'outside a transaction: nothing imported, never sent again'; Begin = ''; End = ''; ErrorId = 'AequorTableImportFailed'; Message = '*connection was lost while sending the file*nothing was imported*not sent again*' }
        @{ Case = 'inside Start-AequorTransaction: the transaction is lost until it is undone'; Begin = 'Start-AequorTransaction'; End = 'Undo-AequorTransaction'; ErrorId = 'AequorTransactionLost'; Message = '*nothing was imported, the transaction is lost*' }
    ) {
        $t = New-Keyed
        $file = Join-Path $TestDrive "lost-$([Guid]::NewGuid().ToString('N').Substring(0, 6)).csv"
        [IO.File]::WriteAllText($file, ((1..2000000) -join "`n") + "`n")
        $holder = Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION -CoordinationSecret $TestSecret -ServiceName (New-TestServiceName it) -Name "it-lost-$([Guid]::NewGuid().ToString('N').Substring(0, 6))"
        $ps = New-ModuleShell ([scriptblock]::Create(@"
param(`$ModulePath, `$Connection, `$Secret, `$File, `$Table)
Import-Module `$ModulePath
`$null = Connect-Aequor `$Connection -CoordinationSecret `$Secret -ServiceName it-lost -ReaperRunProbability 0
$Begin
try { Import-AequorTableData `$File -Table `$Table -NoHeader -Column id } catch { `$_ }
try { 'next:' + (Invoke-AequorQuery 'SELECT 7' -As Scalar -ErrorAction Stop) } catch { `$_ }
$End
'after:' + (Invoke-AequorQuery 'SELECT 7' -As Scalar)
"@)) -ArgumentList $TestSecret, $file, $t
        try {
            Start-AequorTransaction -Session $holder
            $null = Invoke-AequorQuery "INSERT INTO $t VALUES (5, 'held')" -Session $holder
            $handle = $ps.BeginInvoke()
            $copying = "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'COPY%' || `$1 || '%'"
            Wait-Until { @(Invoke-AequorQuery $copying -Parameters @(, $t) -Session (Get-Observer)).Count -eq 1 } 30000 | Should -BeTrue -Because 'the COPY waits for the lock'
            Invoke-AequorQuery "SELECT count(pg_terminate_backend(pid)) FROM ($copying) c" -Parameters @(, $t) -As Scalar -Session (Get-Observer) | Should -Be 1
            $handle.AsyncWaitHandle.WaitOne(60000) | Should -BeTrue
            $out = @($ps.EndInvoke($handle))
            $out[0].FullyQualifiedErrorId | Should -Be "$ErrorId,Aequor.PowerShell.ImportAequorTableDataCommand"
            $out[0].Exception.Message | Should -BeLike $Message
            if ($Begin) {
                # Never a silent retry outside the transaction: the next statement fails too, until the transaction is ended.
                $out[1].FullyQualifiedErrorId | Should -BeLike 'AequorTransactionLost,*'
            } else {
                $out[1] | Should -Be 'next:7'
            }
            $out[-1] | Should -Be 'after:7'
            Undo-AequorTransaction -Session $holder
            Get-Count $t | Should -Be 0
        } finally {
            $ps.Dispose()
            Disconnect-Aequor -Session $holder -Confirm:$false
        }
    }

    It 'inside a pipeline streaming the rows of a query on the same session fails with AequorSessionBusy, importing nothing' {
        $t = New-Keyed
        $file = Join-Path $TestDrive 'busy.csv'
        Set-Content -LiteralPath $file -Value 'id', '1' -Encoding utf8NoBOM
        $run = Invoke-InsideRows "Import-AequorTableData '$file' -Table $t"
        $run.Done | Should -BeTrue
        $run.Errors[0].FullyQualifiedErrorId | Should -BeLike 'AequorSessionBusy,*'
        Get-Count $t | Should -Be 0
    }
}
