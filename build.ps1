<#
.SYNOPSIS
    Builds, tests and demonstrates Aequor.
.DESCRIPTION
    Tasks:
      Build    stage the module into out/Aequor/<version>/ (fails when an expected file is missing)
      Package  Build, then out/Aequor.<version>.nupkg, installable with Install-PSResource
      Test     Package, then xunit (engine) and Pester (cmdlets, module, package) against one real PostgreSQL;
               ends with 'N passed, N failed'
      Demo     the frozen-worker scenario against a throwaway local PostgreSQL
      Bench    Release build, then every benchmark (statement overhead, storm, reaper scaling, connect, and when
               present bench/ImportCost.ps1 and bench/CmdletLayer.ps1 against the staged module); prints
               one table of ratios, each against a baseline measured in the same run, and rewrites
               docs/benchmarks.md with it and the machine. On demand only: several minutes.
      Clean    remove out/ and every bin/ and obj/
    The database: AEQUOR_TEST_CONNECTION when set, else Testcontainers when Docker answers,
    else a throwaway initdb cluster on 127.0.0.1 (removed at the end, even on failure or Ctrl+C).
.EXAMPLE
    dotnet tool restore && dotnet pwsh ./build.ps1 Test
#>
[CmdletBinding()]
param(
    [Parameter(Position = 0)]
    [ValidateSet('Build', 'Test', 'Demo', 'Package', 'Bench', 'Soak', 'Clean')]
    [string] $Task = 'Build',

    [ValidateSet('Debug', 'Release')]
    [string] $Configuration = 'Release',

    # Runs only the Pester files whose name matches (e.g. 'Connect'); the xunit part is skipped when -SkipEngineTests is given.
    [string] $PesterFilter,

    [switch] $SkipEngineTests,

    [switch] $SkipPester
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version 3.0

$Root = $PSScriptRoot
$OutDir = Join-Path $Root 'out'
$ResultsDir = Join-Path $OutDir 'test-results'
$env:DOTNET_CLI_TELEMETRY_OPTOUT = '1'
$env:DOTNET_NOLOGO = '1'
$env:DOTNET_SKIP_FIRST_TIME_EXPERIENCE = '1'

# A fresh pwsh of the same version as this one (the local dotnet tool), for Pester and the demo.
$PwshDll = Join-Path $PSHOME 'pwsh.dll'

function Write-Step([string] $Text) {
    Write-Host "==> $Text" -ForegroundColor Cyan
}

function Invoke-Native {
    param([string] $File, [string[]] $Arguments, [string] $What)
    # Native output goes to the host, never into a function's return value.
    & $File @Arguments | Out-Host
    if ($LASTEXITCODE -ne 0) {
        throw "$What failed (exit code $LASTEXITCODE)."
    }
}

function Get-AequorVersion {
    $props = [xml](Get-Content -Raw (Join-Path $Root 'Directory.Build.props'))
    $node = $props.SelectSingleNode('//VersionPrefix')
    if ($null -eq $node -or -not $node.InnerText) { throw 'Directory.Build.props has no VersionPrefix.' }
    $node.InnerText.Trim()
}

function Get-StagedModuleDir {
    Join-Path $OutDir "Aequor/$(Get-AequorVersion)"
}

# Release notes for the manifest: the CHANGELOG.md section of this version, so the two never disagree.
function Get-ReleaseNotes([string] $Version) {
    $changelog = Join-Path $Root 'CHANGELOG.md'
    if (-not (Test-Path $changelog)) { throw 'CHANGELOG.md is missing.' }
    $text = Get-Content -Raw $changelog
    $pattern = "(?ms)^## \[?$([regex]::Escape($Version))\]?[^\r\n]*\r?\n(.*?)(?=^## |\z)"
    $match = [regex]::Match($text, $pattern)
    if (-not $match.Success -or -not $match.Groups[1].Value.Trim()) { throw "CHANGELOG.md has no section '## [$Version]': add one before building." }
    $match.Groups[1].Value.Trim()
}

# Every library deps.json says the cmdlets need at run time: all must be staged (native assets are
# not handled by the load context, so they fail the build rather than the user's first connect).
function Get-ExpectedDependencies([string] $Publish) {
    $deps = Get-Content -Raw (Join-Path $Publish 'Aequor.PowerShell.deps.json') | ConvertFrom-Json -AsHashtable
    foreach ($target in $deps.targets.Values) {
        foreach ($library in $target.GetEnumerator()) {
            foreach ($kind in 'native', 'runtimeTargets') {
                if ($library.Value[$kind]) { throw "$($library.Key) brings $kind assets, which the module's load context does not stage." }
            }
            if ($library.Value['runtime']) {
                foreach ($file in $library.Value.runtime.Keys) { [IO.Path]::GetFileName($file) }
            }
        }
    }
}

# The folder under dependencies/ with the ReadyToRun build (DependencyFolder.Precompiled in the module's code).
$PrecompiledFolder = 'net10.0-linux-x64'

# True when the assembly carries precompiled code (a ReadyToRun header), not IL alone.
function Test-ReadyToRun([string] $Path) {
    $stream = [IO.File]::OpenRead($Path)
    try {
        $reader = [Reflection.PortableExecutable.PEReader]::new($stream)
        try { $reader.PEHeaders.CorHeader.ManagedNativeHeaderDirectory.Size -gt 0 } finally { $reader.Dispose() }
    } finally { $stream.Dispose() }
}

# One Aequor.Format.ps1xml from src/Aequor.PowerShell/Formats/*.Format.ps1xml: adding a view is adding a file.
function Merge-FormatFiles([string] $Destination) {
    $merged = [xml]'<?xml version="1.0" encoding="utf-8"?><Configuration><ViewDefinitions/></Configuration>'
    $views = $merged.SelectSingleNode('/Configuration/ViewDefinitions')
    $sources = @(Get-ChildItem (Join-Path $Root 'src/Aequor.PowerShell/Formats') -Filter '*.Format.ps1xml' | Sort-Object Name)
    if (-not $sources) { throw 'src/Aequor.PowerShell/Formats has no *.Format.ps1xml.' }
    foreach ($source in $sources) {
        $doc = [xml](Get-Content -Raw $source.FullName)
        foreach ($view in $doc.SelectNodes('/Configuration/ViewDefinitions/View')) {
            [void]$views.AppendChild($merged.ImportNode($view, $true))
        }
    }
    $merged.Save($Destination)
}

function Invoke-Build {
    $version = Get-AequorVersion
    $stage = Get-StagedModuleDir
    $publish = Join-Path $OutDir "publish/Aequor.PowerShell"
    Write-Step "Build Aequor $version ($Configuration)"
    if (Test-Path $publish) { Remove-Item -Recurse -Force $publish }
    Invoke-Native dotnet @('publish', (Join-Path $Root 'src/Aequor.PowerShell/Aequor.PowerShell.csproj'),
        '-c', $Configuration, '-o', $publish, '--nologo', '-v', 'q') 'dotnet publish'
    # The same engine and Npgsql precompiled for PowerShell 7.6 (.NET 10) on Linux x64: its first connect compiles
    # about half the methods (src/Aequor.PowerShell/Loading/DependencyFolder.cs picks the folder at import).
    $precompiled = Join-Path $OutDir "publish/Aequor.Engine-$PrecompiledFolder"
    if (Test-Path $precompiled) { Remove-Item -Recurse -Force $precompiled }
    Invoke-Native dotnet @('publish', (Join-Path $Root 'src/Aequor.Engine/Aequor.Engine.csproj'),
        '-c', $Configuration, '-f', 'net10.0', '-r', 'linux-x64', '--self-contained', 'false', '-p:PublishReadyToRun=true',
        '-o', $precompiled, '--nologo', '-v', 'q') 'dotnet publish (ReadyToRun, net10.0 linux-x64)'

    if (Test-Path (Join-Path $OutDir 'Aequor')) { Remove-Item -Recurse -Force (Join-Path $OutDir 'Aequor') }
    $dependencies = Join-Path $stage 'dependencies'
    New-Item -ItemType Directory -Force $dependencies | Out-Null

    # Stamp the one version and this version's release notes into the manifest.
    $notes = (Get-ReleaseNotes $version) -replace "'", "''"
    $manifest = Get-Content -Raw (Join-Path $Root 'Aequor.psd1')
    $manifest = $manifest -replace "ModuleVersion\s*=\s*'[^']*'", "ModuleVersion        = '$version'"
    $manifest = $manifest -replace "ReleaseNotes(\s*)=\s*'[^']*'", { "ReleaseNotes$($_.Groups[1].Value)= '$notes'" }
    Set-Content -Path (Join-Path $stage 'Aequor.psd1') -Value $manifest -Encoding utf8NoBOM

    # The cmdlet assembly at the root; the engine and every third-party assembly under dependencies/,
    # where only the module's private load context looks (src/Aequor.PowerShell/Loading).
    Copy-Item (Join-Path $publish 'Aequor.PowerShell.dll') -Destination $stage
    Get-ChildItem $publish -Filter *.dll | Where-Object Name -notin 'Aequor.PowerShell.dll', 'System.Management.Automation.dll' |
        Copy-Item -Destination $dependencies
    $precompiledStage = Join-Path $dependencies $PrecompiledFolder
    New-Item -ItemType Directory -Force $precompiledStage | Out-Null
    Get-ChildItem $precompiled -Filter *.dll | Copy-Item -Destination $precompiledStage
    Merge-FormatFiles (Join-Path $stage 'Aequor.Format.ps1xml')

    Write-Step 'Generate help and check the module against its manifest (child pwsh)'
    Invoke-Native dotnet @($PwshDll, '-NoProfile', '-NonInteractive', '-File', (Join-Path $Root 'build/New-AequorHelp.ps1'),
        '-ModuleDir', $stage, '-DocsDir', (Join-Path $Root 'docs')) 'Help generation (fix what is listed above)'

    $expected = @('Aequor.psd1', 'Aequor.PowerShell.dll', 'Aequor.Format.ps1xml',
        'en-US/Aequor.PowerShell.dll-Help.xml', 'en-US/about_Aequor.help.txt', 'dependencies/Aequor.Engine.dll', 'dependencies/Npgsql.dll') +
        @(Get-ExpectedDependencies $publish | Where-Object { $_ -ne 'Aequor.PowerShell.dll' } | ForEach-Object { "dependencies/$_" })
    $missing = $expected | Select-Object -Unique | Where-Object { -not (Test-Path (Join-Path $stage $_)) }
    if ($missing) { throw "The staged module lacks: $($missing -join ', ')" }
    $stray = Get-ChildItem $stage -Filter *.dll | Where-Object Name -ne 'Aequor.PowerShell.dll'
    if ($stray) { throw "Only Aequor.PowerShell.dll belongs at the module root; found $($stray.Name -join ', ')." }
    $notPrecompiled = 'Aequor.Engine.dll', 'Npgsql.dll' | Where-Object { -not (Test-ReadyToRun (Join-Path $precompiledStage $_)) }
    if ($notPrecompiled) { throw "dependencies/$PrecompiledFolder holds IL-only $($notPrecompiled -join ', '): the ReadyToRun publish did not precompile them." }
    Test-ModuleManifest -Path (Join-Path $stage 'Aequor.psd1') -ErrorAction Stop | Out-Null
    Write-Host "    staged $stage"
}

function Invoke-Package {
    Invoke-Build
    $version = Get-AequorVersion
    $nupkg = Join-Path $OutDir "Aequor.$version.nupkg"
    Write-Step "Package $nupkg"
    if (Test-Path $nupkg) { Remove-Item $nupkg }
    # Compress-PSResource (PSResourceGet) builds the same .nupkg Publish-PSResource would push, with no repository.
    Import-Module Microsoft.PowerShell.PSResourceGet -ErrorAction Stop
    Compress-PSResource -Path (Get-StagedModuleDir) -DestinationPath $OutDir
    if (-not (Test-Path $nupkg)) { throw "Compress-PSResource did not produce $nupkg." }
    Write-Host "    $nupkg"
}

function Get-NuGetPackagesDir {
    $packages = $env:NUGET_PACKAGES
    if (-not $packages) {
        $line = (& dotnet nuget locals global-packages --list) | Select-Object -First 1
        $packages = ($line -replace '^global-packages:\s*', '').Trim()
    }
    $packages
}

function Get-PesterModulePath {
    Write-Step 'Restore Pester 5.7.1 (and the test-only Npgsql 8) from NuGet'
    Invoke-Native dotnet @('restore', (Join-Path $Root 'build/Pester.Restore.csproj'), '--nologo', '-v', 'q') 'Restoring Pester'
    $path = Join-Path (Get-NuGetPackagesDir) 'pester/5.7.1/tools/Pester.psd1'
    if (-not (Test-Path $path)) { throw "Pester was restored but $path is missing." }
    $path
}

# Another Npgsql, as a different module would bring it: one folder with its dependencies beside it
# (Add-Type -Path resolves them from there). The isolation tests load it next to Aequor's.
function Get-CompatNpgsqlDir {
    $packages = Get-NuGetPackagesDir
    $dir = Join-Path $OutDir 'test-compat/npgsql-8.0.9'
    New-Item -ItemType Directory -Force $dir | Out-Null
    foreach ($file in 'npgsql/8.0.9/lib/net8.0/Npgsql.dll',
        'microsoft.extensions.logging.abstractions/8.0.0/lib/net8.0/Microsoft.Extensions.Logging.Abstractions.dll',
        'microsoft.extensions.dependencyinjection.abstractions/8.0.0/lib/net8.0/Microsoft.Extensions.DependencyInjection.Abstractions.dll') {
        $source = Join-Path $packages $file
        if (-not (Test-Path $source)) { throw "$source is missing: restore build/Pester.Restore.csproj." }
        Copy-Item $source -Destination $dir
    }
    $dir
}

# Starts the test database (see tests/Aequor.TestServer) and sets its connection strings in the
# environment, so xunit, Pester and the demo share it. Returns the process to stop.
function Start-TestDatabase {
    param([int] $MaxConnections = 100)
    Write-Step 'Start PostgreSQL for the run'
    Invoke-Native dotnet @('build', (Join-Path $Root 'tests/Aequor.TestServer/Aequor.TestServer.csproj'),
        '-c', $Configuration, '--nologo', '-v', 'q') 'Building the test-server harness'
    $dll = Join-Path $Root "tests/Aequor.TestServer/bin/$Configuration/net10.0/Aequor.TestServer.dll"
    $psi = [System.Diagnostics.ProcessStartInfo]::new('dotnet')
    $psi.ArgumentList.Add($dll)
    $psi.ArgumentList.Add('--max-connections')
    $psi.ArgumentList.Add([string]$MaxConnections)
    $psi.RedirectStandardInput = $true
    $psi.RedirectStandardOutput = $true
    $psi.RedirectStandardError = $true
    $psi.UseShellExecute = $false
    $proc = [System.Diagnostics.Process]::Start($psi)
    $stderr = $proc.StandardError.ReadToEndAsync()
    $deadline = [DateTime]::UtcNow.AddMinutes(3)
    while ($true) {
        $task = $proc.StandardOutput.ReadLineAsync()
        if (-not $task.Wait([TimeSpan]::FromMinutes(3)) -or [DateTime]::UtcNow -gt $deadline) {
            $proc.Kill($true)
            throw 'PostgreSQL did not start within 3 minutes.'
        }
        $line = $task.Result
        if ($null -eq $line) {
            $proc.WaitForExit()
            $message = $stderr.Result.Trim()
            if (-not $message) { $message = "the test-server harness exited with code $($proc.ExitCode)" }
            throw $message
        }
        if ($line -eq 'READY') { break }
        if ($line -match '^(AEQUOR_[A-Z_]+)=(.*)$') {
            [Environment]::SetEnvironmentVariable($Matches[1], $Matches[2])
        }
    }
    Write-Host "    $($env:AEQUOR_TEST_SOURCE)"
    $proc
}

function Stop-TestDatabase([System.Diagnostics.Process] $Process) {
    if ($null -eq $Process -or $Process.HasExited) { return }
    try {
        $Process.StandardInput.WriteLine('stop')
        $Process.StandardInput.Close()
        if (-not $Process.WaitForExit(60000)) { $Process.Kill($true) }
    } catch {
        $Process.Kill($true)
    }
}

function Get-TrxCounts([string] $Path) {
    if (-not (Test-Path $Path)) { return $null }
    $trx = [xml](Get-Content -Raw $Path)
    $ns = @{ t = 'http://microsoft.com/schemas/VisualStudio/TeamTest/2010' }
    $counters = (Select-Xml -Xml $trx -XPath '//t:ResultSummary/t:Counters' -Namespace $ns).Node
    $methods = @{}
    foreach ($test in (Select-Xml -Xml $trx -XPath '//t:TestDefinitions/t:UnitTest' -Namespace $ns)) {
        $methods[$test.Node.id] = "$($test.Node.TestMethod.className).$($test.Node.TestMethod.name)"
    }
    $failed = @(Select-Xml -Xml $trx -XPath "//t:UnitTestResult[@outcome!='Passed' and @outcome!='NotExecuted']" -Namespace $ns |
        ForEach-Object {
            $message = $_.Node.Output.ErrorInfo.Message
            $first = if ($message) { ($message -split "`n")[0].Trim() } else { $_.Node.outcome }
            [pscustomobject]@{ Name = $_.Node.testName; Method = $methods[$_.Node.GetAttribute('testId')]; Line = "$($_.Node.testName): $first" }
        })
    [pscustomobject]@{
        Passed = [int]$counters.passed
        Failed = [int]$counters.failed + [int]$counters.error + [int]$counters.timeout + [int]$counters.aborted
        Skipped = [int]$counters.notExecuted
        Failures = @($failed | ForEach-Object Line)
        FailedTests = $failed
        Passes = @(Select-Xml -Xml $trx -XPath "//t:UnitTestResult[@outcome='Passed']" -Namespace $ns | ForEach-Object { $_.Node.testName })
        Flaky = @()
    }
}

function Invoke-EngineTestRun([string] $TrxName, [string] $Filter) {
    $trxPath = Join-Path $ResultsDir $TrxName
    if (Test-Path $trxPath) { Remove-Item $trxPath }
    $testArgs = @('test', (Join-Path $Root 'tests/Aequor.Engine.Tests/Aequor.Engine.Tests.csproj'), '-c', $Configuration, '--nologo',
        '--logger', "trx;LogFileName=$TrxName", '--logger', 'console;verbosity=normal', '--results-directory', $ResultsDir)
    if ($Filter) { $testArgs += @('--no-build', '--filter', $Filter) }
    & dotnet @testArgs | Out-Host
    [pscustomobject]@{ Exit = $LASTEXITCODE; Counts = Get-TrxCounts $trxPath }
}

# Tests a rerun may clear: a handful at most; more failures than that is a broken change, not a timing.
$FlakyRerunLimit = 3

function Invoke-EngineTests {
    Write-Step 'xunit: engine'
    $run = Invoke-EngineTestRun 'engine.trx'
    $exit = $run.Exit
    $counts = $run.Counts
    if ($null -eq $counts) {
        Write-Warning "xunit produced no results (exit code $exit): counted as one failure."
        return [pscustomobject]@{ Passed = 0; Failed = 1; Skipped = 0; Failures = @('xunit: no results') }
    }
    if ($exit -ne 0 -and $counts.Failed -eq 0) {
        Write-Warning "dotnet test exited with $exit but reported no failed test: counted as one failure."
        $counts.Failed = 1
        $counts.Failures = @("xunit: exit code $exit with no failed test")
        return $counts
    }
    $failedTests = @($counts.FailedTests)
    if ($counts.Failed -gt 0 -and $failedTests.Count -eq $counts.Failed -and $failedTests.Count -le $FlakyRerunLimit -and -not ($failedTests | Where-Object { -not $_.Method })) {
        # One more run of just these: a test that passes on it is counted passed but named as flaky above the
        # last line, so a timing problem is reported without sinking the run; one that fails again is a failure.
        Write-Step "xunit: rerun of $($failedTests.Count) failed test(s)"
        $filter = (@($failedTests.Method | Sort-Object -Unique) | ForEach-Object { "FullyQualifiedName=$_" }) -join '|'
        $rerun = Invoke-EngineTestRun 'engine-rerun.trx' $filter
        $passedAgain = if ($rerun.Counts) { @($rerun.Counts.Passes) } else { @() }
        $flaky = @($failedTests | Where-Object { $_.Name -in $passedAgain })
        $counts.Passed += $flaky.Count
        $counts.Failed -= $flaky.Count
        $counts.Failures = @($failedTests | Where-Object { $_.Name -notin $passedAgain } | ForEach-Object Line)
        $counts.Flaky = @($flaky | ForEach-Object Line)
    }
    $counts
}

function Invoke-PesterTests([string] $PesterPath) {
    Write-Step 'Pester: cmdlets (fresh pwsh -NoProfile, staged module)'
    $resultJson = Join-Path $ResultsDir 'pester.json'
    if (Test-Path $resultJson) { Remove-Item $resultJson }
    $runner = Join-Path $Root 'build/Invoke-PesterRun.ps1'
    $runnerArgs = @($PwshDll, '-NoProfile', '-NonInteractive', '-File', $runner,
        '-PesterPath', $PesterPath,
        '-ModulePath', (Join-Path (Get-StagedModuleDir) 'Aequor.psd1'),
        '-TestPath', (Join-Path $Root 'tests/Pester'),
        '-ResultPath', $resultJson)
    if ($PesterFilter) { $runnerArgs += @('-Filter', $PesterFilter) }
    # What the packaging and isolation tests use besides the staged module.
    $env:AEQUOR_PACKAGE_PATH = Join-Path $OutDir "Aequor.$(Get-AequorVersion).nupkg"
    $env:AEQUOR_COMPAT_NPGSQL_DIR = Get-CompatNpgsqlDir
    & dotnet @runnerArgs | Out-Host
    $exit = $LASTEXITCODE
    if (-not (Test-Path $resultJson)) {
        Write-Warning "Pester produced no results (exit code $exit): counted as one failure."
        return [pscustomobject]@{ Passed = 0; Failed = 1; Skipped = 0; Failures = @('Pester: no results') }
    }
    Get-Content -Raw $resultJson | ConvertFrom-Json
}

function Invoke-Test {
    Invoke-Package
    $pester = if (-not $SkipPester) { Get-PesterModulePath }
    Write-Step 'Build the engine tests'
    Invoke-Native dotnet @('build', (Join-Path $Root 'tests/Aequor.Engine.Tests/Aequor.Engine.Tests.csproj'),
        '-c', $Configuration, '--nologo', '-v', 'q') 'Building the engine tests'
    New-Item -ItemType Directory -Force $ResultsDir | Out-Null

    $db = $null
    $results = @()
    try {
        $db = Start-TestDatabase
        if (-not $SkipEngineTests) { $results += Invoke-EngineTests }
        if (-not $SkipPester) { $results += Invoke-PesterTests $pester }
    } finally {
        Stop-TestDatabase $db
    }

    $passed = ($results | Measure-Object -Property Passed -Sum).Sum
    $failed = ($results | Measure-Object -Property Failed -Sum).Sum
    $skipped = ($results | Measure-Object -Property Skipped -Sum).Sum
    Write-Host ''
    $flaky = @($results | ForEach-Object { if ($_.PSObject.Properties['Flaky']) { $_.Flaky } } | Where-Object { $_ })
    if ($flaky) {
        Write-Host 'Flaky (failed, then passed on a rerun of the failed tests alone):'
        $flaky | ForEach-Object { Write-Host "  $_" }
    }
    $failures = @($results | ForEach-Object { $_.Failures } | Where-Object { $_ })
    if ($failures) {
        Write-Host 'Failed:'
        $failures | ForEach-Object { Write-Host "  $_" }
    }
    if ($skipped) {
        Write-Host "$passed passed, $failed failed, $skipped skipped"
    } else {
        Write-Host "$passed passed, $failed failed"
    }
    if ($failed -gt 0 -or $passed -eq 0) { exit 1 }
}

function Invoke-Demo {
    Invoke-Build
    $db = $null
    try {
        $db = Start-TestDatabase -MaxConnections 20
        Write-Step 'Demo'
        & dotnet $PwshDll -NoProfile -NonInteractive -File (Join-Path $Root 'demo/Demo.ps1') -ModulePath (Join-Path (Get-StagedModuleDir) 'Aequor.psd1')
        if ($LASTEXITCODE -ne 0) { throw "The demo failed (exit code $LASTEXITCODE)." }
    } finally {
        Stop-TestDatabase $db
    }
}

# Every bench prints machine-readable lines, collected here into one table:
#   BENCH|name|value|unit|baseline|ratio|target|met      (ratio = value / baseline, same run)
#   BENCH-INFO|key|value                                 (facts about the run: server version, pinning)
# A bench that is missing or fails becomes a row saying so; the table is always printed.
function Invoke-Bench {
    $script:Configuration = 'Release'
    Invoke-Build
    Write-Step 'Build the benchmarks (Release)'
    Invoke-Native dotnet @('build', (Join-Path $Root 'bench/Aequor.Bench/Aequor.Bench.csproj'), '-c', 'Release', '--nologo', '-v', 'q') 'Building bench/Aequor.Bench'
    $benchDll = Join-Path $Root 'bench/Aequor.Bench/bin/Release/net10.0/Aequor.Bench.dll'
    $taskset = Get-Command taskset -CommandType Application -ErrorAction SilentlyContinue | Select-Object -First 1
    $rows = [System.Collections.Generic.List[object]]::new()
    $info = [ordered]@{}
    $loadBefore = (Get-Content /proc/loadavg -ErrorAction SilentlyContinue) -replace '^(\S+ \S+ \S+).*', '$1'

    # Runs one bench as a child process, echoes its output, keeps its BENCH lines.
    function Invoke-BenchStep([string] $Label, [string] $File, [string[]] $Arguments) {
        Write-Step "Bench: $Label"
        $found = 0
        $failure = $null
        try {
            & $File @Arguments 2>&1 | ForEach-Object {
                $line = "$_"
                Write-Host "    $line"
                $parts = $line.Split('|')
                if ($parts[0] -eq 'BENCH' -and $parts.Count -ge 8) {
                    $found++
                    $rows.Add([pscustomobject]@{ Bench = $parts[1]; Value = $parts[2]; Unit = $parts[3]; Baseline = $parts[4]; Ratio = $parts[5]; Target = $parts[6]; Met = $parts[7] })
                } elseif ($parts[0] -eq 'BENCH-INFO' -and $parts.Count -ge 3) {
                    $info[$parts[1]] = $parts[2]
                } elseif ($Label -eq 'import cost' -and $line -match "Import-Module'\s+([\d,.]+) ms\s+ratio ([\d.]+)x") {
                    # ImportCost.ps1 prints no BENCH line (yet): read its two figures from the text.
                    $found++
                    $rows.Add([pscustomobject]@{ Bench = 'import.cold'; Value = ($Matches[1] -replace ',', ''); Unit = 'ms'; Baseline = 'pwsh -c 1'; Ratio = $Matches[2]; Target = '-'; Met = '-' })
                } elseif ($Label -eq 'import cost' -and $line -match 'added time, Aequor / raw Npgsql\s+([\d.]+) x') {
                    $found++
                    $rows.Add([pscustomobject]@{ Bench = 'import.first_query'; Value = '-'; Unit = 'added ms'; Baseline = 'raw Npgsql'; Ratio = $Matches[1]; Target = 'ratio<=1.1'; Met = $(if ([double]$Matches[1] -le 1.1) { 'yes' } else { 'no' }) })
                }
            }
            if ($LASTEXITCODE -ne 0) { $failure = "failed (exit code $LASTEXITCODE)" }
        } catch {
            $failure = "failed: $($_.Exception.Message)"
        }
        if ($failure) {
            $rows.Add([pscustomobject]@{ Bench = $Label; Value = $failure; Unit = ''; Baseline = ''; Ratio = ''; Target = ''; Met = 'no' })
        } elseif ($found -eq 0) {
            $rows.Add([pscustomobject]@{ Bench = $Label; Value = 'ran, printed no BENCH line'; Unit = ''; Baseline = ''; Ratio = ''; Target = ''; Met = '-' })
        }
    }

    $psd1 = Join-Path (Get-StagedModuleDir) 'Aequor.psd1'
    Invoke-BenchStep 'statement overhead' 'dotnet' @($benchDll, 'overhead', '150')
    # The storm twice over: the engine's burst of tasks, then 30 runspaces of the staged module (cmdlets), and those
    # again with no storm (the control row storm.cmdlets.no_storm: what the fresh pwsh costs alone).
    Invoke-BenchStep 'storm' 'dotnet' @($benchDll, 'storm', '--pwsh-dll', $PwshDll, '--module', $psd1, '--script', (Join-Path $Root 'bench/StormRunspaces.ps1'))
    Invoke-BenchStep 'reaper scaling' 'dotnet' @($benchDll, 'reaper', '5')
    Invoke-BenchStep 'connect' 'dotnet' @($benchDll, 'connect', '15')

    $scripts = @(
        @{ Label = 'import cost'; Path = (Join-Path $Root 'bench/ImportCost.ps1'); Pin = $false },
        # Pinned, .NET sees one CPU and delays tier-up tenfold (bench/CmdletLayer.ps1, .NOTES): the measured run gets
        # the tiering of this machine's cores; the control run, the runtime's defaults and no settling.
        @{ Label = 'cmdlet layer'; Path = (Join-Path $Root 'bench/CmdletLayer.ps1'); Pin = $true; Tiering = '1' },
        @{ Label = 'cmdlet layer, one-CPU defaults'; Path = (Join-Path $Root 'bench/CmdletLayer.ps1'); Pin = $true
            Arguments = @('-ScalarOnly', '-SettleSeconds', '0', '-RowPrefix', 'cmdlet.one_cpu_default') },
        @{ Label = 'table load'; Path = (Join-Path $Root 'bench/TableData.ps1'); Pin = $false },
        @{ Label = 'table export'; Path = (Join-Path $Root 'bench/TableExport.ps1'); Pin = $false })
    if ($scripts | Where-Object { Test-Path $_.Path }) {
        $db = $null
        try {
            $db = Start-TestDatabase
            foreach ($s in $scripts) {
                if (-not (Test-Path $s.Path)) {
                    $rows.Add([pscustomobject]@{ Bench = $s.Label; Value = "missing ($(Split-Path -Leaf $s.Path) not on this branch)"; Unit = ''; Baseline = ''; Ratio = ''; Target = ''; Met = '-' })
                    continue
                }
                $file = 'dotnet'
                $arguments = @($PwshDll, '-NoProfile', '-NonInteractive', '-File', $s.Path, '-ModulePath', $psd1) + @($s['Arguments'] | Where-Object { $_ })
                $env:AEQUOR_BENCH_SERVER_CORES = $null
                $env:DOTNET_TC_DelaySingleProcMultiplier = $s['Tiering']
                if ($s.Pin -and $taskset) {
                    # Client and server on core 0: backends are forked by the postmaster and inherit its affinity.
                    $pidFile = if ($env:AEQUOR_TEST_PGDATA) { Join-Path $env:AEQUOR_TEST_PGDATA 'postmaster.pid' }
                    if ($pidFile -and (Test-Path $pidFile)) {
                        $postmaster = (Get-Content $pidFile -TotalCount 1).Trim()
                        & $taskset.Source -a -c -p 0 $postmaster | Out-Null
                        if ($LASTEXITCODE -eq 0) { $env:AEQUOR_BENCH_SERVER_CORES = '0' }
                    }
                    $arguments = @('-c', '0', 'dotnet') + $arguments
                    $file = $taskset.Source
                }
                try {
                    Invoke-BenchStep $s.Label $file $arguments
                } finally {
                    $env:DOTNET_TC_DelaySingleProcMultiplier = $null
                }
            }
        } catch {
            $rows.Add([pscustomobject]@{ Bench = 'pwsh benches'; Value = "failed: $($_.Exception.Message)"; Unit = ''; Baseline = ''; Ratio = ''; Target = ''; Met = 'no' })
        } finally {
            $env:AEQUOR_BENCH_SERVER_CORES = $null
            Stop-TestDatabase $db
        }
    } else {
        $rows.Add([pscustomobject]@{ Bench = 'import cost, cmdlet layer'; Value = 'missing (no bench/*.ps1 on this branch)'; Unit = ''; Baseline = ''; Ratio = ''; Target = ''; Met = '-' })
    }

    # The machine.
    $cpu = (Select-String -Path /proc/cpuinfo -Pattern '^model name\s*:\s*(.*)$' -ErrorAction SilentlyContinue | Select-Object -First 1)
    $memKb = (Select-String -Path /proc/meminfo -Pattern '^MemTotal:\s*(\d+)' -ErrorAction SilentlyContinue | Select-Object -First 1)
    $machine = [ordered]@{
        'date (UTC)'   = [DateTime]::UtcNow.ToString('yyyy-MM-dd HH:mm')
        'nproc'        = [Environment]::ProcessorCount
        'memory'       = if ($memKb) { '{0:N1} GiB' -f ([double]$memKb.Matches[0].Groups[1].Value / 1MB) } else { 'unknown' }
        'CPU'          = if ($cpu) { $cpu.Matches[0].Groups[1].Value.Trim() } else { 'unknown' }
        'PostgreSQL'   = if ($info['postgres']) { $info['postgres'] } else { 'unknown' }
        'load average' = "$loadBefore (1/5/15 min, before the run)"
        '.NET'         = [Environment]::Version.ToString()
    }
    if ($info['cmdlet-pinning']) { $machine['pinning (cmdlet layer)'] = $info['cmdlet-pinning'] }
    if ($info['cmdlet-tiering']) { $machine['JIT (cmdlet layer)'] = $info['cmdlet-tiering'] }
    if ($info['cmdlet.one_cpu_default-tiering']) { $machine['JIT (cmdlet.one_cpu_default)'] = $info['cmdlet.one_cpu_default-tiering'] }

    $table = $rows | Select-Object Bench, Value, Unit, Baseline, Ratio, Target, Met
    Write-Host ''
    $table | Format-Table -AutoSize | Out-String -Width 200 | Write-Host
    $machine.GetEnumerator() | ForEach-Object { Write-Host ("{0,-24} {1}" -f $_.Key, $_.Value) }

    $md = [System.Text.StringBuilder]::new()
    $null = $md.AppendLine('# Benchmarks').AppendLine()
    $null = $md.AppendLine('Written by `dotnet pwsh ./build.ps1 Bench`; do not edit by hand. Each ratio is value / baseline, both')
    $null = $md.AppendLine('measured in the same run (what each bench compares: `bench/Aequor.Bench/*.cs`, `bench/*.ps1`).').AppendLine()
    $null = $md.AppendLine('| bench | value | unit | baseline | ratio | target | met |').AppendLine('| --- | --- | --- | --- | --- | --- | --- |')
    foreach ($r in $table) { $null = $md.AppendLine("| $($r.Bench) | $($r.Value) | $($r.Unit) | $($r.Baseline) | $($r.Ratio) | $($r.Target) | $($r.Met) |") }
    $null = $md.AppendLine().AppendLine('## Machine').AppendLine()
    foreach ($k in $machine.Keys) { $null = $md.AppendLine("- $k`: $($machine[$k])") }
    $notes = Join-Path $Root 'docs/benchmarks.notes.md'
    if (Test-Path $notes) { $null = $md.AppendLine().Append((Get-Content -Raw $notes)) }
    Set-Content -Path (Join-Path $Root 'docs/benchmarks.md') -Value $md.ToString().TrimEnd() -Encoding utf8NoBOM
    Write-Host "    wrote docs/benchmarks.md"
}

function Invoke-Soak {
    Write-Step 'Soak (150 s)'
    Invoke-Native dotnet @('build', (Join-Path $Root 'tests/Aequor.Soak/Aequor.Soak.csproj'), '-c', $Configuration, '--nologo', '-v', 'q') 'Building the soak'
    & dotnet (Join-Path $Root "tests/Aequor.Soak/bin/$Configuration/net10.0/Aequor.Soak.dll") 150 | Out-Host
    if ($LASTEXITCODE -ne 0) { throw "The soak found a broken promise (exit code $LASTEXITCODE)." }
}

function Invoke-Clean {
    Write-Step 'Clean'
    if (Test-Path $OutDir) { Remove-Item -Recurse -Force $OutDir }
    Get-ChildItem $Root -Recurse -Directory -Include bin, obj -ErrorAction SilentlyContinue |
        Where-Object { $_.FullName -notmatch '[\\/]\.git[\\/]' } |
        Remove-Item -Recurse -Force -ErrorAction SilentlyContinue
}

try {
    switch ($Task) {
        'Build' { Invoke-Build }
        'Package' { Invoke-Package }
        'Test' { Invoke-Test }
        'Demo' { Invoke-Demo }
        'Bench' { Invoke-Bench }
        'Soak' { Invoke-Soak }
        'Clean' { Invoke-Clean }
    }
} catch {
    # One readable line, never a stack trace: the message says what to fix.
    Write-Host "build.ps1 ${Task}: $($_.Exception.Message)" -ForegroundColor Red
    exit 1
}
