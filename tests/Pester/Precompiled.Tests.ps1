# The module carries two builds of the engine and Npgsql: dependencies/ (portable, net8.0, IL) and
# dependencies/net10.0-linux-x64/ (ReadyToRun for PowerShell 7.6 on Linux x64). Which one a process loads is
# decided at import; both must behave the same, and the precompiled one must actually spare the JIT.
BeforeAll {
    . (Join-Path $PSScriptRoot 'Support/FreshPwsh.ps1')
    $modulePath = $env:AEQUOR_MODULE_PATH
    $moduleDir = Split-Path $modulePath
    $portableDir = Join-Path $moduleDir 'dependencies'
    $precompiledDir = Join-Path $portableDir 'net10.0-linux-x64'
    if (-not $env:AEQUOR_TEST_APP_CONNECTION) { throw 'AEQUOR_TEST_APP_CONNECTION is not set (build.ps1 Test sets it).' }

    function Test-ReadyToRun([string] $Path) {
        $stream = [IO.File]::OpenRead($Path)
        try {
            $reader = [Reflection.PortableExecutable.PEReader]::new($stream)
            try { $reader.PEHeaders.CorHeader.ManagedNativeHeaderDirectory.Size -gt 0 } finally { $reader.Dispose() }
        } finally { $stream.Dispose() }
    }

    # One tour of the module in a fresh pwsh: which files it loaded, how many methods the JIT compiled for the
    # first connect and query, and what the commands returned. A cache folder of its own, so pwsh's startup JIT
    # profile (replayed on a background thread) from an earlier run does not add to the count.
    $tour = @'
param([string] $ModulePath)
$ErrorActionPreference = 'Stop'
Import-Module $ModulePath
$secret = ConvertTo-SecureString 'precompiled-tests-secret-0123456789' -AsPlainText -Force
$before = [System.Runtime.JitInfo]::GetCompiledMethodCount($false)
$service = 'aequor-pc-' + [guid]::NewGuid().ToString('N').Substring(0, 8)
$session = Connect-Aequor -ConnectionString $env:AEQUOR_TEST_APP_CONNECTION -ServiceName $service -CoordinationSecret $secret -NoReaper
$answer = Invoke-AequorQuery -Session $session -As Scalar 'select 41 + 1'
$compiled = [System.Runtime.JitInfo]::GetCompiledMethodCount($false) - $before
$null = Invoke-AequorQuery -Session $session 'create temp table precompiled_t (id int primary key, name text, at timestamptz)'
1..3 | ForEach-Object { [pscustomobject]@{ id = $_; name = "n$_"; at = [DateTimeOffset]::FromUnixTimeSeconds(1700000000 + $_) } } |
    Write-AequorTableData -Session $session -Table precompiled_t
$rows = @(Invoke-AequorQuery -Session $session 'select id, name, extract(epoch from at)::int8 as epoch from precompiled_t order by id' |
    ForEach-Object { "$($_.id)|$($_.name)|$($_.epoch)" })
# A second, idle session of the service with a live lease: the pass must see it and leave it.
$idle = Connect-Aequor -ConnectionString $env:AEQUOR_TEST_APP_CONNECTION -ServiceName $service -CoordinationSecret $secret -NoReaper -Name idle
$reap = Invoke-AequorReap -Session $session -MinIdleSec 0
$idleAlive = Invoke-AequorQuery -Session $idle -As Scalar 'select 1'
$lease = Get-AequorLease -ApplicationName (Invoke-AequorQuery -Session $session -As Scalar 'select current_setting(''application_name'')') -CoordinationSecret $secret
Disconnect-Aequor -All
$context = [System.Runtime.Loader.AssemblyLoadContext]::All | Where-Object Name -eq 'Aequor'
$location = @{}
foreach ($a in $context.Assemblies) { $location[$a.GetName().Name] = $a.Location }
'RESULT:' + (@{ Answer = $answer; Compiled = $compiled; Rows = $rows; ReapLocked = $reap.LockAcquired; ReapScanned = $reap.Scanned
    ReapKilled = @($reap.Killed).Count; NotExpired = $reap.Skipped['not_expired']; IdleAlive = $idleAlive
    LeaseValid = $lease.IsSignatureValid; Engine = $location['Aequor.Engine']; Npgsql = $location['Npgsql'] } | ConvertTo-Json -Compress)
'@

    function Invoke-Tour([string] $Module, [hashtable] $Environment = @{}) {
        $cache = Join-Path ([IO.Path]::GetTempPath()) "aequor-precompiled-$([guid]::NewGuid().ToString('N'))"
        New-Item -ItemType Directory $cache | Out-Null
        try {
            $Environment['XDG_CACHE_HOME'] = $cache
            $run = Invoke-FreshPwsh -Script $tour -ArgumentList @('-ModulePath', $Module) -Environment $Environment
            $run.ExitCode | Should -Be 0 -Because (Format-FreshPwsh $run)
            $run.Result
        } finally { Remove-Item -Recurse -Force $cache -ErrorAction Ignore }
    }

    $expectedRows = @('1|n1|1700000001', '2|n2|1700000002', '3|n3|1700000003')
}

BeforeDiscovery {
    $here = [System.Runtime.InteropServices.RuntimeInformation]::RuntimeIdentifier -eq 'linux-x64' -and [Environment]::Version.Major -eq 10
}

Describe 'The engine build a process loads' {
    It 'ships the engine and Npgsql twice: IL-only in dependencies/, precompiled in dependencies/net10.0-linux-x64/, same versions' {
        Join-Path $precompiledDir 'Microsoft.Extensions.Logging.Abstractions.dll' | Should -Exist
        foreach ($name in 'Aequor.Engine', 'Npgsql') {
            $portable = Join-Path $portableDir "$name.dll"
            $precompiled = Join-Path $precompiledDir "$name.dll"
            $precompiled | Should -Exist
            Test-ReadyToRun $portable | Should -BeFalse -Because "$name in dependencies/ is the portable build"
            [Reflection.AssemblyName]::GetAssemblyName($precompiled).Version |
                Should -Be ([Reflection.AssemblyName]::GetAssemblyName($portable).Version) -Because "both builds of $name come from one package version"
        }
        Test-ReadyToRun (Join-Path $precompiledDir 'Aequor.Engine.dll') | Should -BeTrue
        Test-ReadyToRun (Join-Path $precompiledDir 'Npgsql.dll') | Should -BeTrue
    }

    It 'loads the precompiled build on .NET 10 / linux-x64, whose first connect compiles under 60 % of the methods the portable build needs' -Skip:(-not $here) {
        $precompiled = Invoke-Tour $modulePath
        $portable = Invoke-Tour $modulePath @{ AEQUOR_READYTORUN = '0' }

        $precompiled.Engine | Should -Be (Join-Path $precompiledDir 'Aequor.Engine.dll')
        $precompiled.Npgsql | Should -Be (Join-Path $precompiledDir 'Npgsql.dll')
        $portable.Engine | Should -Be (Join-Path $portableDir 'Aequor.Engine.dll')
        $portable.Npgsql | Should -Be (Join-Path $portableDir 'Npgsql.dll')
        $precompiled.Compiled | Should -BeLessThan ([int]($portable.Compiled * 0.6)) -Because "the precompiled build compiled $($precompiled.Compiled) methods, the portable one $($portable.Compiled)"
    }

    It 'gives the same results from both builds: query, COPY, reaper pass, lease' {
        foreach ($result in (Invoke-Tour $modulePath), (Invoke-Tour $modulePath @{ AEQUOR_READYTORUN = 'false' })) {
            $result.Answer | Should -Be 42
            $result.Rows | Should -Be $expectedRows
            $result.ReapLocked | Should -BeTrue
            $result.ReapScanned | Should -Be 1
            $result.NotExpired | Should -Be 1
            $result.ReapKilled | Should -Be 0
            $result.IdleAlive | Should -Be 1
            $result.LeaseValid | Should -BeTrue
        }
    }

    It 'falls back to the portable build in a copy without the precompiled folder' {
        $copy = Join-Path $TestDrive 'portable-only/Aequor'
        Copy-Item $moduleDir -Destination $copy -Recurse
        Remove-Item (Join-Path $copy 'dependencies/net10.0-linux-x64') -Recurse
        $result = Invoke-Tour (Join-Path $copy 'Aequor.psd1')
        $result.Engine | Should -Be (Join-Path $copy 'dependencies/Aequor.Engine.dll')
        $result.Answer | Should -Be 42
        $result.Rows | Should -Be $expectedRows
    }
}
