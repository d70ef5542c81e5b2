# Input a demanding user gets wrong: each is refused before anything is sent, with an error naming the problem,
# and the connection (with an open transaction on it) goes on untouched.
BeforeAll {
    . (Join-Path $PSScriptRoot 'Aequor.TestHelpers.ps1')
    $script:S = Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION -LeaseMode Optional -Name badinput
    Invoke-AequorQuery -Session $S 'DROP TABLE IF EXISTS badinput_t; CREATE TABLE badinput_t (id int PRIMARY KEY, name text)'
    $script:Dir = Join-Path ([IO.Path]::GetTempPath()) "aequor-badinput-$([Guid]::NewGuid().ToString('N').Substring(0, 8))"
    $null = New-Item -ItemType Directory -Path $Dir

    # Runs $Bad inside a transaction that already wrote a row, and returns its error: the transaction must still be
    # open on the same backend, and its row committed by Complete-AequorTransaction.
    function Invoke-InTransaction([int] $Id, [scriptblock] $Bad) {
        $pid0 = $S.BackendPid
        Start-AequorTransaction -Session $S
        Invoke-AequorQuery -Session $S 'INSERT INTO badinput_t VALUES ($1, ''kept'')' -Parameters @(, $Id) -As NonQuery | Should -Be 1
        $err = $null
        try { & $Bad } catch { $err = $_ }
        $S.InTransaction | Should -BeTrue -Because 'bad input must not end the transaction'
        Complete-AequorTransaction -Session $S
        $S.BackendPid | Should -Be $pid0 -Because 'bad input must not cost the connection'
        Invoke-AequorQuery -Session $S 'SELECT name FROM badinput_t WHERE id = $1' -Parameters @(, $Id) -As Scalar | Should -Be 'kept'
        $err
    }
}

AfterAll {
    Invoke-AequorQuery -Session $S 'DROP TABLE IF EXISTS badinput_t'
    Disconnect-Aequor -All -Confirm:$false
    Remove-Item -LiteralPath $Dir -Recurse -Force -ErrorAction SilentlyContinue
}

Describe 'Invoke-AequorQuery with fewer positional values than placeholders' {
    It 'refuses $2 with one value before sending: the transaction and the connection go on' {
        $err = Invoke-InTransaction 1 { Invoke-AequorQuery -Session $S 'SELECT $1::int, $2::int' -Parameters 1 -ErrorAction Stop }
        $err.FullyQualifiedErrorId | Should -BeLike 'AequorInvalidParameter,*'
        $err.CategoryInfo.Category | Should -Be 'InvalidArgument'
        "$err" | Should -Match 'uses placeholders up to \$2 but -Parameters gives 1 value'
        "$err" | Should -Match 'Nothing was sent'
    }

    It 'refuses an empty -Parameters array for $1, on the same connection' {
        $pid0 = $S.BackendPid
        $err = $null
        try { Invoke-AequorQuery -Session $S 'SELECT $1' -Parameters @() -ErrorAction Stop } catch { $err = $_ }
        $err.FullyQualifiedErrorId | Should -BeLike 'AequorInvalidParameter,*'
        "$err" | Should -Match 'uses placeholders up to \$1 but -Parameters gives 0 values'
        $S.BackendPid | Should -Be $pid0
    }

    It 'still binds a $n inside a quote or a comment as nothing: only real placeholders count' {
        Invoke-AequorQuery -Session $S 'SELECT $1::int + 1 AS v, ''$2'' AS t -- $3' -Parameters 41 | ForEach-Object { $_.v, $_.t } | Should -Be @(42, '$2')
    }
}

Describe 'A NUL character in a text parameter' {
    It 'is refused naming the parameter, before sending: the transaction and the connection go on' -ForEach @(
        @{ Case = 'named'; Id = 11; Bad = { Invoke-AequorQuery -Session $S 'SELECT @v::text' -Parameters @{ v = "a`0b" } -ErrorAction Stop }; Names = "Parameter 'v'" }
        @{ Case = 'positional'; Id = 12; Bad = { Invoke-AequorQuery -Session $S 'SELECT $1::text' -Parameters @(, "a`0b") -ErrorAction Stop }; Names = 'Parameter \$1' }
        @{ Case = 'array element'; Id = 13; Bad = { Invoke-AequorQuery -Session $S 'SELECT @v::text[]' -Parameters @{ v = @('x', "a`0b") } -ErrorAction Stop }; Names = "Parameter 'v'" }
        @{ Case = 'piped row'; Id = 14; Bad = { [pscustomobject]@{ v = "a`0b" } | Invoke-AequorQuery -Session $S 'SELECT @v::text' -ErrorAction Stop }; Names = "Parameter 'v'" }
    ) {
        $err = Invoke-InTransaction $Id $Bad
        $err.FullyQualifiedErrorId | Should -BeLike 'AequorInvalidParameter,*'
        "$err" | Should -Match "$Names holds a NUL character \(U\+0000\) at index 1"
        "$err" | Should -Match 'Nothing was sent'
    }
}

Describe 'Export-AequorTableData with text PostgreSQL cannot take' {
    It 'refuses a query holding a NUL before sending: no file, the transaction and the connection go on' {
        $path = Join-Path $Dir 'nul.csv'
        $err = Invoke-InTransaction 21 { Export-AequorTableData -Session $S -Path $path -Query "SELECT 'a`0b'" -ErrorAction Stop }
        $err.FullyQualifiedErrorId | Should -BeLike 'AequorInvalidParameter,*'
        "$err" | Should -Match 'The query holds a NUL character \(U\+0000\) at character 10'
        Test-Path -LiteralPath $path | Should -BeFalse
    }

    It 'refuses a query holding half a surrogate pair before sending, on the same connection' {
        $path = Join-Path $Dir 'surrogate.csv'
        $err = Invoke-InTransaction 22 { Export-AequorTableData -Session $S -Path $path -Query "SELECT '$([char]0xD800)'" -ErrorAction Stop }
        $err.FullyQualifiedErrorId | Should -BeLike 'AequorInvalidParameter,*'
        "$err" | Should -Match 'The query holds an unpaired UTF-16 surrogate \(U\+D800\) at character 9'
        Test-Path -LiteralPath $path | Should -BeFalse
    }

    It 'refuses a table name holding a NUL before sending, on the same connection' {
        $path = Join-Path $Dir 'table.csv'
        $err = Invoke-InTransaction 23 { Export-AequorTableData -Session $S -Path $path -Table "badinput_t`0" -ErrorAction Stop }
        $err.FullyQualifiedErrorId | Should -BeLike 'AequorInvalidParameter,*'
        "$err" | Should -Match 'NUL character'
        Test-Path -LiteralPath $path | Should -BeFalse
    }

    It 'refuses a -Path holding a NUL as AequorInvalidParameter naming -Path, not a bare ArgumentException' {
        $err = $null
        try { Export-AequorTableData -Session $S -Path (Join-Path $Dir "a`0b.csv") -Table badinput_t -ErrorAction Stop } catch { $err = $_ }
        $err.FullyQualifiedErrorId | Should -BeLike 'AequorInvalidParameter,*'
        $err.CategoryInfo.Category | Should -Be 'InvalidArgument'
        "$err" | Should -Match '-Path .* holds a NUL character'
        @(Get-ChildItem -LiteralPath $Dir).Count | Should -Be 0
    }
}

Describe 'Write-AequorTableData into a table name PostgreSQL cannot take' {
    It 'refuses a table name holding a NUL before sending: nothing written, the transaction and the connection go on' {
        $err = Invoke-InTransaction 31 { [pscustomobject]@{ id = 32; name = 'x' } | Write-AequorTableData -Session $S -Table "badinput_t`0" -ErrorAction Stop }
        $err.FullyQualifiedErrorId | Should -BeLike 'AequorInvalidParameter,*'
        "$err" | Should -Match 'NUL character'
        Invoke-AequorQuery -Session $S 'SELECT count(*) FROM badinput_t WHERE id = 32' -As Scalar | Should -Be 0
    }
}

Describe 'Invoke-AequorQuery with $n placeholders and values that bind only @name ones' {
    It 'refuses <Case> before sending: the transaction and the connection go on' -ForEach @(
        @{ Case = 'a hashtable'; Id = 41; Bad = { Invoke-AequorQuery -Session $S 'SELECT $1::int' -Parameters @{ a = 5 } -ErrorAction Stop }; Says = 'A hashtable given as -Parameters binds @name placeholders by its keys' }
        @{ Case = 'an explicit $null'; Id = 42; Bad = { Invoke-AequorQuery -Session $S 'SELECT $1::int' -Parameters $null -ErrorAction Stop }; Says = '-Parameters was \$null, which passes no parameters' }
        @{ Case = 'an object'; Id = 43; Bad = { Invoke-AequorQuery -Session $S 'SELECT $1::int' -Parameters ([pscustomobject]@{ a = 5 }) -ErrorAction Stop }; Says = 'An object given as -Parameters binds @name placeholders' }
        @{ Case = 'piped rows'; Id = 44; Bad = { [pscustomobject]@{ a = 5 }, [pscustomobject]@{ a = 6 } | Invoke-AequorQuery -Session $S 'SELECT $1::int' -ErrorAction Stop }; Says = 'A piped row binds @name placeholders' }
    ) {
        $err = Invoke-InTransaction $Id $Bad
        $err.FullyQualifiedErrorId | Should -BeLike 'AequorInvalidParameter,*'
        "$err" | Should -Match 'uses placeholders up to \$1, but nothing binds them'
        "$err" | Should -Match $Says
        "$err" | Should -Match 'Nothing was sent'
    }

    It 'still sends the $n that PREPARE or a CREATE FUNCTION body numbers itself, whatever -Parameters gives' {
        Invoke-AequorQuery -Session $S '/* own */ PREPARE badinput_q(int, int) AS SELECT $1 + $2' -Parameters @() -As NonQuery
        Invoke-AequorQuery -Session $S 'EXECUTE badinput_q(40, 2)' -As Scalar | Should -Be 42
        Invoke-AequorQuery -Session $S 'DEALLOCATE badinput_q' -As NonQuery
        Invoke-AequorQuery -Session $S 'create or replace function pg_temp.badinput_f(int) RETURNS int LANGUAGE sql RETURN $1 + 1' -Parameters @{} -As NonQuery
        Invoke-AequorQuery -Session $S 'SELECT pg_temp.badinput_f(41)' -As Scalar | Should -Be 42
    }

    It 'still sends a $n without -Parameters as written (PREPARE has no parameters of its own)' {
        Invoke-AequorQuery -Session $S 'PREPARE badinput_p(int) AS SELECT $1 + 1' -As NonQuery
        Invoke-AequorQuery -Session $S 'EXECUTE badinput_p(41)' -As Scalar | Should -Be 42
        Invoke-AequorQuery -Session $S 'DEALLOCATE badinput_p' -As NonQuery
    }
}

Describe 'A column named twice in -Column' {
    It 'is refused by Write-AequorTableData before the COPY: nothing written, the transaction and the connection go on' {
        $err = Invoke-InTransaction 51 { [pscustomobject]@{ id = 52; name = 'x' } | Write-AequorTableData -Session $S -Table badinput_t -Column id, name, ID -ErrorAction Stop }
        $err.FullyQualifiedErrorId | Should -BeLike 'AequorInvalidParameter,*'
        "$err" | Should -Match "-Column names the column 'id' twice \('ID'\)"
        Invoke-AequorQuery -Session $S 'SELECT count(*) FROM badinput_t WHERE id = 52' -As Scalar | Should -Be 0
    }

    It 'is refused by Export-AequorTableData before the COPY: no file, the transaction and the connection go on' {
        $path = Join-Path $Dir 'twice.csv'
        $err = Invoke-InTransaction 53 { Export-AequorTableData -Session $S -Path $path -Table badinput_t -Column id, id -ErrorAction Stop }
        $err.FullyQualifiedErrorId | Should -BeLike 'AequorInvalidParameter,*'
        "$err" | Should -Match "The column 'id' is chosen twice"
        Test-Path -LiteralPath $path | Should -BeFalse
    }
}

Describe 'Export-AequorTableData -Path that is blank' {
    It 'is refused naming -Path, and no file named by blanks is made' {
        Push-Location -LiteralPath $Dir
        try {
            $err = $null
            try { Export-AequorTableData -Session $S -Path '   ' -Table badinput_t -ErrorAction Stop } catch { $err = $_ }
            $err.FullyQualifiedErrorId | Should -BeLike 'AequorInvalidParameter,*'
            "$err" | Should -Match "-Path '   ' is blank"
            @(Get-ChildItem -LiteralPath $Dir -Force).Count | Should -Be 0
        } finally { Pop-Location }
    }
}

Describe 'Connect-Aequor with a NUL in a setting' {
    It 'refuses <Case> as AequorInvalidParameter naming the setting, never the value, not a bare ArgumentException' -ForEach @(
        @{ Case = '-Database'; Connect = { Connect-Aequor -Server 127.0.0.1 -Database "db`0x" -LeaseMode Optional -Name badnul -ErrorAction Stop }; Names = 'database name' }
        @{ Case = '-Server'; Connect = { Connect-Aequor -Server "127.0.0.1`0x" -LeaseMode Optional -Name badnul -ErrorAction Stop }; Names = 'server name' }
        @{ Case = 'a -Credential user name'; Connect = { Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION -Credential ([pscredential]::new("u`0x", (ConvertTo-SecureString 'hunter2-badnul' -AsPlainText -Force))) -LeaseMode Optional -Name badnul -ErrorAction Stop }; Names = 'user name' }
    ) {
        $err = $null
        try { & $Connect } catch { $err = $_ }
        $err.FullyQualifiedErrorId | Should -BeLike 'AequorInvalidParameter,*'
        $err.CategoryInfo.Category | Should -Be 'InvalidArgument'
        "$err" | Should -Match "The $Names holds a NUL character"
        "$err" | Should -Not -Match 'hunter2'
        Get-AequorSession -Name badnul -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
    }
}

Describe 'Connect-Aequor with a NUL in the password' {
    BeforeAll {
        # Built char by char, so no conversion on the way can have dropped the NUL.
        $script:NulPassword = [securestring]::new()
        foreach ($c in "hunter2`0nul".ToCharArray()) { $NulPassword.AppendChar($c) }
    }

    BeforeEach {
        # A server that never answers, one per case: a connect that got as far as the network is left pending here.
        $script:Listener = [System.Net.Sockets.TcpListener]::new([System.Net.IPAddress]::Loopback, 0)
        $Listener.Start()
        $script:ListenerPort = $Listener.LocalEndpoint.Port
        $script:ListenerCs = "Host=127.0.0.1;Port=$ListenerPort;Database=db;Username=u;Timeout=2"
    }

    AfterEach {
        $Listener.Stop()
    }

    Context 'given in a -Credential' {
        It 'is refused <Case> naming the password, never echoing it, with nothing sent' -ForEach @(
            @{ Case = 'with -ConnectionString (ConvertTo-SecureString)'; Connect = { Connect-Aequor $ListenerCs -Credential ([pscredential]::new('u', (ConvertTo-SecureString "hunter2`0nul" -AsPlainText -Force))) -LeaseMode Optional -Name badnulpw -Retries 0 -ErrorAction Stop } }
            @{ Case = 'with -ConnectionString (AppendChar)'; Connect = { Connect-Aequor $ListenerCs -Credential ([pscredential]::new('u', $NulPassword)) -LeaseMode Optional -Name badnulpw -Retries 0 -ErrorAction Stop } }
            @{ Case = 'with -Server'; Connect = { Connect-Aequor -Server 127.0.0.1 -Port $ListenerPort -Database db -Credential ([pscredential]::new('u', $NulPassword)) -LeaseMode Optional -Name badnulpw -Retries 0 -ErrorAction Stop } }
        ) {
            $err = $null
            try { & $Connect } catch { $err = $_ }
            $err.FullyQualifiedErrorId | Should -BeLike 'AequorInvalidParameter,*'
            $err.CategoryInfo.Category | Should -Be 'InvalidArgument'
            "$err" | Should -Match 'The password holds a NUL character \(U\+0000\)'
            ($err | Out-String) + $err.Exception.ToString() | Should -Not -Match 'hunter2'
            $Listener.Pending() | Should -BeFalse -Because 'nothing may reach the server'
            Get-AequorSession -Name badnulpw -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        }
    }

    Context 'in the connection string' {
        It 'is refused <Case> naming the password, never echoing it, with nothing sent' -ForEach @(
            @{ Case = 'as Password='; Cs = { "$ListenerCs;Password=hunter2`0nul" }; Names = 'password in the connection string' }
            @{ Case = 'as a quoted Password='; Cs = { "$ListenerCs;Password=`"hunter2`0nul`"" }; Names = 'password in the connection string' }
            @{ Case = 'in a postgres:// URI'; Cs = { "postgres://u:hunter2%00nul@127.0.0.1:$ListenerPort/db?connect_timeout=2" }; Names = 'password' }
        ) {
            $err = $null
            try { Connect-Aequor (& $Cs) -LeaseMode Optional -Name badnulpw -Retries 0 -ErrorAction Stop } catch { $err = $_ }
            $err.FullyQualifiedErrorId | Should -BeLike 'AequorInvalidParameter,*'
            "$err" | Should -Match "The $Names holds a NUL character \(U\+0000\)"
            ($err | Out-String) + $err.Exception.ToString() | Should -Not -Match 'hunter2'
            $Listener.Pending() | Should -BeFalse -Because 'nothing may reach the server'
            Get-AequorSession -Name badnulpw -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        }
    }

    Context 'and a -CoordinationSecret holding a NUL' {
        It 'signs with the whole secret, not the part before the NUL, and Get-AequorLease judges with the whole secret too' {
            $text = "abc`0defghijklmnopqrstu"
            $secret = ConvertTo-SecureString $text -AsPlainText -Force
            $service = New-TestServiceName 'nulsecret'
            $s = Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION -CoordinationSecret $secret -ServiceName $service -NoReaper -Name badnulsecret -ErrorAction Stop
            try {
                $app = Invoke-AequorQuery -Session $s "SELECT current_setting('application_name')" -As Scalar
                $fields = @{}
                foreach ($pair in $app.Split(';')) { $k, $v = $pair.Split('=', 2); $fields[$k] = $v }
                New-TestLease -Service $fields.s -ExpiresAtMs $fields.e -Instance $fields.i -Secret $text | Should -Be $app
                (Get-AequorLease -ApplicationName $app -CoordinationSecret $secret -ErrorAction Stop).IsSignatureValid | Should -BeTrue
            } finally {
                Disconnect-Aequor -Session $s
            }
        }
    }
}

Describe 'A session -CommandTimeout past what Npgsql can arm' {
    It 'is refused by Connect-Aequor <Case> as AequorInvalidParameter naming the limit, not a connect failure with a bare ArgumentOutOfRangeException' -ForEach @(
        @{ Case = '-CommandTimeout'; Connect = { Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION -LeaseMode Optional -Name badtimeout -CommandTimeout 4294968 -ErrorAction Stop }; Says = 'CommandTimeout is 4294968 s; it can be at most 4294967 s' }
        @{ Case = 'in the connection string'; Connect = { Connect-Aequor "$($env:AEQUOR_TEST_APP_CONNECTION);Command Timeout=2147483647" -LeaseMode Optional -Name badtimeout -ErrorAction Stop }; Says = 'Command Timeout is 2147483647 s; it can be at most 4294967 s' }
    ) {
        $err = $null
        try { & $Connect } catch { $err = $_ }
        $err.FullyQualifiedErrorId | Should -BeLike 'AequorInvalidParameter,*'
        "$err" | Should -Match $Says
        "$err" | Should -Not -Match 'ArgumentOutOfRange'
        Get-AequorSession -Name badtimeout -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
    }

    It 'still connects with the longest one' {
        $s = Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION -LeaseMode Optional -Name longtimeout -CommandTimeout 4294967
        Invoke-AequorQuery -Session $s 'SELECT 1' -As Scalar | Should -Be 1
        Disconnect-Aequor -Session $s
    }
}

Describe 'A session name or -Name pattern holding a NUL' {
    It 'is refused by Connect-Aequor -Name, without the raw NUL in the message' {
        $err = $null
        try { Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION -LeaseMode Optional -Name "bad`0name" -ErrorAction Stop } catch { $err = $_ }
        $err.FullyQualifiedErrorId | Should -BeLike 'AequorInvalidParameter,*'
        "$err" | Should -Match "The session name 'bad\\0name' holds a NUL character"
        "$err".Contains([char]0) | Should -BeFalse
    }

    It 'matches no session in Get-AequorSession and Disconnect-Aequor -Name: the session ''badinput'' stays open' {
        $err = $null
        $found = Get-AequorSession -Name "badin`0put" -ErrorVariable err -ErrorAction SilentlyContinue
        $found | Should -BeNullOrEmpty
        $err[0].FullyQualifiedErrorId | Should -BeLike 'AequorInvalidParameter,*'
        Disconnect-Aequor -Name "badin`0put" -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -BeLike 'AequorInvalidParameter,*'
        "$($err[0])" | Should -Match 'holds a NUL character \(U\+0000\), which no session name holds'
        $S.State | Should -Not -Be 'Closed'
        Invoke-AequorQuery -Session $S 'SELECT 1' -As Scalar | Should -Be 1
    }
}

Describe 'Several sessions given to a -Session that takes one' {
    BeforeAll {
        $script:Other = Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION -LeaseMode Optional -Name badinput2
    }

    AfterAll {
        Disconnect-Aequor -Session $Other
    }

    It 'is refused by <Case> naming -Session and the count, not "Specified method is not supported"' -ForEach @(
        @{ Case = 'Invoke-AequorQuery'; Run = { Invoke-AequorQuery -Session $S, $Other 'SELECT 1' -ErrorAction Stop } }
        @{ Case = 'Get-AequorLease'; Run = { Get-AequorLease -Session $S, $Other -ErrorAction Stop } }
        @{ Case = 'Start-AequorTransaction'; Run = { Start-AequorTransaction -Session $S, $Other -ErrorAction Stop } }
        @{ Case = 'Invoke-AequorQuery, an empty array'; Run = { Invoke-AequorQuery -Session @() 'SELECT 1' -ErrorAction Stop } }
    ) {
        $err = $null
        try { & $Run } catch { $err = $_ }
        $err | Should -Not -BeNullOrEmpty
        $err.FullyQualifiedErrorId | Should -BeLike 'ParameterArgumentTransformationError,*'
        "$err" | Should -Match "-Session takes one session, and $(if ($Case -like '*empty*') { 0 } else { 2 }) were given"
        "$err" | Should -Not -Match 'Specified method is not supported'
        $S.InTransaction | Should -BeFalse
    }

    It 'takes a one-element array, or a one-element array holding a name, as that session' {
        Invoke-AequorQuery -Session @($S) 'SELECT 41 + 1' -As Scalar | Should -Be 42
        Invoke-AequorQuery -Session @('badinput2') 'SELECT pg_backend_pid()' -As Scalar | Should -Be $Other.BackendPid
    }

    It 'still lets Disconnect-Aequor take several' {
        $x = Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION -LeaseMode Optional -Name badinput3
        $y = Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION -LeaseMode Optional -Name badinput4
        Disconnect-Aequor -Session $x, $y
        $x.State | Should -Be 'Closed'
        $y.State | Should -Be 'Closed'
    }
}

Describe 'An [xml] document or element as a parameter value' {
    It 'is sent as its markup (<Case>), not unrolled into arrays no PostgreSQL type takes' -ForEach @(
        @{ Case = 'a document'; Value = { [xml]'<order id="7"><item>tea</item></order>' }; Expected = '<order id="7"><item>tea</item></order>' }
        @{ Case = 'an element'; Value = { ([xml]'<order id="7"><item>tea</item></order>').order.SelectSingleNode('item') }; Expected = '<item>tea</item>' }
    ) {
        $value = & $Value
        Invoke-AequorQuery -Session $S 'SELECT $1::xml::text' -Parameters @(, $value) -As Scalar | Should -Be $Expected
        Invoke-AequorQuery -Session $S 'SELECT @doc::xml::text' -Parameters @{ doc = $value } -As Scalar | Should -Be $Expected
    }
}

