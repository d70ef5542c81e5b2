# Aequor's Npgsql lives in a private load context: another module's Npgsql, loaded before or after,
# keeps working and so does ours. Each order runs in a fresh pwsh, as two modules would meet in a user's session.
BeforeDiscovery {
    $orders = @(
        @{ Order = 'OtherFirst'; Because = 'another module loaded an older Npgsql before Aequor was imported' }
        @{ Order = 'AequorFirst'; Because = 'another module loads an older Npgsql after Aequor is in use' }
    )
}

BeforeAll {
    . (Join-Path $PSScriptRoot 'Support/FreshPwsh.ps1')
    $compatDir = $env:AEQUOR_COMPAT_NPGSQL_DIR
    if (-not $compatDir -or -not (Test-Path (Join-Path $compatDir 'Npgsql.dll'))) {
        throw 'AEQUOR_COMPAT_NPGSQL_DIR must name a folder with Npgsql 8 and its dependencies (build.ps1 Test sets it).'
    }
    if (-not $env:AEQUOR_TEST_APP_CONNECTION) { throw 'AEQUOR_TEST_APP_CONNECTION is not set (build.ps1 Test sets it).' }
    $vector = (Get-Content -Raw (Join-Path $PSScriptRoot '../Aequor.Engine.Tests/TestData/lease-vectors.json') | ConvertFrom-Json)[0]

    $child = @'
param([string] $Order, [string] $ModulePath, [string] $CompatDir, [string] $LeaseText, [string] $Secret)
$ErrorActionPreference = 'Stop'
$connectionString = $env:AEQUOR_TEST_APP_CONNECTION

function Get-ContextName([System.Reflection.Assembly] $Assembly) {
    [System.Runtime.Loader.AssemblyLoadContext]::GetLoadContext($Assembly).Name
}

# What another module does: Add-Type its own Npgsql and query with it.
function Use-OtherNpgsql {
    Add-Type -Path (Join-Path $CompatDir 'Npgsql.dll')
    $connection = [Npgsql.NpgsqlConnection]::new($connectionString)
    try {
        $connection.Open()
        $command = $connection.CreateCommand()
        $command.CommandText = "select 'other ' || 40 + 2"
        $value = $command.ExecuteScalar()
    } finally { $connection.Dispose() }
    $assembly = [Npgsql.NpgsqlConnection].Assembly
    @{ Version = $assembly.GetName().Version.ToString(); Context = Get-ContextName $assembly; Value = $value }
}

# Aequor in use: a session and a query through the cmdlets, so the engine loads its Npgsql itself.
# (A build without Connect-Aequor yet loads and queries that Npgsql through the engine's load context.)
function Use-Aequor {
    Import-Module $ModulePath
    $secure = ConvertTo-SecureString $Secret -AsPlainText -Force
    $lease = Get-AequorLease -ApplicationName $LeaseText -CoordinationSecret $secure
    if (Get-Command Connect-Aequor -Module Aequor -ErrorAction Ignore) {
        $null = Connect-Aequor -ConnectionString $connectionString -CoordinationSecret $secure -ServiceName 'aequor-isolation' -NoReaper
        try { $value = Invoke-AequorQuery -As Scalar "select 'aequor ' || 40 + 2" } finally { Disconnect-Aequor -All }
    }
    $engine = [AppDomain]::CurrentDomain.GetAssemblies() | Where-Object { $_.GetName().Name -eq 'Aequor.Engine' }
    $context = [System.Runtime.Loader.AssemblyLoadContext]::GetLoadContext($engine)
    $npgsql = $context.Assemblies | Where-Object { $_.GetName().Name -eq 'Npgsql' }
    if (-not $npgsql) {
        $npgsql = $context.LoadFromAssemblyName([System.Reflection.AssemblyName]::new('Npgsql'))
        $connection = [Activator]::CreateInstance($npgsql.GetType('Npgsql.NpgsqlConnection', $true), [object[]]@($connectionString))
        try {
            $connection.Open()
            $command = $connection.CreateCommand()
            $command.CommandText = "select 'aequor ' || 40 + 2"
            $value = $command.ExecuteScalar()
        } finally { $connection.Dispose() }
    }
    @{ Version = $npgsql.GetName().Version.ToString(); Context = Get-ContextName $npgsql; EngineContext = Get-ContextName $engine
       Value = $value; LeaseValid = $lease.IsSignatureValid }
}

if ($Order -eq 'OtherFirst') { $other = Use-OtherNpgsql; $aequor = Use-Aequor }
else { $aequor = Use-Aequor; $other = Use-OtherNpgsql }
# Both still work after the other arrived.
$again = Use-OtherNpgsql

$loaded = [AppDomain]::CurrentDomain.GetAssemblies() | Where-Object { $_.GetName().Name -eq 'Npgsql' } |
    ForEach-Object { "$($_.GetName().Version)@$(Get-ContextName $_)" }
# What the private context holds, and which of those the runtime also ships at the same or a newer version
# (those must be shared with the host, e.g. System.Diagnostics.DiagnosticSource, not duplicated).
$platform = @{}
foreach ($path in ([AppContext]::GetData('TRUSTED_PLATFORM_ASSEMBLIES') -split [IO.Path]::PathSeparator)) {
    $platform[[IO.Path]::GetFileNameWithoutExtension($path)] = $path
}
$private = [System.Runtime.Loader.AssemblyLoadContext]::All | Where-Object Name -eq 'Aequor'
$held = @($private.Assemblies | ForEach-Object { $_.GetName().Name } | Sort-Object)
$duplicated = @($private.Assemblies | Where-Object {
    $p = $platform[$_.GetName().Name]
    $p -and [Reflection.AssemblyName]::GetAssemblyName($p).Version -ge $_.GetName().Version } | ForEach-Object { $_.GetName().Name })
'RESULT:' + (@{ Other = $other; Aequor = $aequor; OtherAgain = $again.Value; Loaded = @($loaded); Held = $held; Duplicated = $duplicated } |
    ConvertTo-Json -Compress -Depth 4)
'@
}

Describe 'Dependency isolation: <Order>' -ForEach $orders {
    BeforeAll {
        $run = Invoke-FreshPwsh -Script $child -ArgumentList @('-Order', $Order, '-ModulePath', $env:AEQUOR_MODULE_PATH,
            '-CompatDir', $compatDir, '-LeaseText', $vector.applicationName, '-Secret', $vector.secret)
        $result = $run.Result
    }

    It 'both Npgsql versions query the database when <Because>' {
        $run.ExitCode | Should -Be 0 -Because (Format-FreshPwsh $run)
        $result.Other.Value | Should -Be 'other 42'
        $result.OtherAgain | Should -Be 'other 42'
        $result.Aequor.Value | Should -Be 'aequor 42'
        $result.Aequor.LeaseValid | Should -BeTrue
    }

    It "keeps Aequor's Npgsql 10 and its engine in the private 'Aequor' load context, the other in the default one" {
        $result.Aequor.Version | Should -BeLike '10.*'
        $result.Aequor.Context | Should -Be 'Aequor'
        $result.Aequor.EngineContext | Should -Be 'Aequor'
        $result.Other.Version | Should -Be '8.0.9.0'
        $result.Other.Context | Should -Be 'Default'
        ($result.Loaded | Sort-Object) | Should -Be @("$($result.Aequor.Version)@Aequor", '8.0.9.0@Default')
    }

    It 'holds the engine and the third-party assemblies in the private context and shares what the runtime already ships' {
        $result.Held | Should -Contain 'Aequor.Engine'
        $result.Held | Should -Contain 'Npgsql'
        $result.Held | Should -Contain 'Microsoft.Extensions.Logging.Abstractions'
        @($result.Duplicated) | Should -BeNullOrEmpty -Because 'an assembly the runtime ships at the same or a newer version comes from the default context'
    }
}
