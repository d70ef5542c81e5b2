<#
.SYNOPSIS
    Cold-start cost of Aequor, against a bare pwsh and against raw Npgsql loaded with Add-Type.
.DESCRIPTION
    Run on demand (not a test). Every sample is a new process, the runs of each pair are interleaved
    so machine noise hits both sides alike, and the medians are compared:

      1. pwsh -NoProfile -c 'Import-Module Aequor'   against  pwsh -NoProfile -c 1
      2. import + Connect-Aequor + Invoke-AequorQuery -As Scalar 'select 1'
         against  Add-Type Npgsql + NpgsqlConnection.Open() + ExecuteScalar('select 1'),
         both against the same database, each over the bare pwsh baseline.
         Target: the time Aequor adds over a bare pwsh is at most 1.1x what raw Npgsql adds.

    Part 2 needs a connection string (-ConnectionString or AEQUOR_TEST_APP_CONNECTION) and a module
    that exports Connect-Aequor; without either it says so and measures part 1 only.
.EXAMPLE
    dotnet pwsh ./build.ps1 Build; dotnet pwsh ./bench/ImportCost.ps1
.EXAMPLE
    dotnet pwsh ./bench/ImportCost.ps1 -Iterations 25 -ConnectionString 'Host=127.0.0.1;Username=app;Password=...;Database=postgres'
#>
[CmdletBinding()]
param(
    # The module manifest to import; defaults to the staged build.
    [string] $ModulePath,

    [ValidateRange(3, 500)]
    [int] $Iterations = 21,

    [string] $ConnectionString = $env:AEQUOR_TEST_APP_CONNECTION
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version 3.0
$root = Split-Path $PSScriptRoot

if (-not $ModulePath) {
    $props = [xml](Get-Content -Raw (Join-Path $root 'Directory.Build.props'))
    $ModulePath = Join-Path $root "out/Aequor/$($props.SelectSingleNode('//VersionPrefix').InnerText.Trim())/Aequor.psd1"
}
if (-not (Test-Path $ModulePath)) { throw "No module at ${ModulePath}: run 'dotnet pwsh ./build.ps1 Build' first, or pass -ModulePath." }
$ModulePath = (Resolve-Path $ModulePath).Path
$npgsqlPath = Join-Path (Split-Path $ModulePath) 'dependencies/Npgsql.dll'
# The same pwsh as this one, started directly (not through 'dotnet pwsh', whose tool lookup would add noise).
$pwshDll = Join-Path $PSHOME 'pwsh.dll'

function Measure-Cold {
    param([string] $Command, [hashtable] $Environment = @{})
    $psi = [System.Diagnostics.ProcessStartInfo]::new('dotnet')
    foreach ($a in $pwshDll, '-NoProfile', '-NonInteractive', '-Command', $Command) { $psi.ArgumentList.Add($a) }
    foreach ($k in $Environment.Keys) { $psi.Environment[$k] = $Environment[$k] }
    $psi.RedirectStandardOutput = $true
    $psi.RedirectStandardError = $true
    $psi.UseShellExecute = $false
    $watch = [System.Diagnostics.Stopwatch]::StartNew()
    $process = [System.Diagnostics.Process]::Start($psi)
    $stderr = $process.StandardError.ReadToEndAsync()
    $null = $process.StandardOutput.ReadToEnd()
    $process.WaitForExit()
    $watch.Stop()
    if ($process.ExitCode -ne 0) { throw "A sample failed (exit $($process.ExitCode)): $($stderr.Result.Trim())" }
    $watch.Elapsed.TotalMilliseconds
}

function Get-Median([double[]] $Values) {
    $sorted = $Values | Sort-Object
    $n = $sorted.Count
    if ($n % 2) { $sorted[[int][math]::Floor($n / 2)] } else { ($sorted[$n / 2 - 1] + $sorted[$n / 2]) / 2 }
}

# Runs every case once per round, in a rotating order, and returns the median per case.
function Measure-Interleaved([System.Collections.Specialized.OrderedDictionary] $Cases, [hashtable] $Environment = @{}) {
    $samples = @{}
    foreach ($name in $Cases.Keys) { $samples[$name] = [System.Collections.Generic.List[double]]::new() }
    $names = @($Cases.Keys)
    foreach ($name in $names) { $null = Measure-Cold $Cases[$name] $Environment } # warm the disk cache once
    for ($i = 0; $i -lt $Iterations; $i++) {
        for ($j = 0; $j -lt $names.Count; $j++) {
            $name = $names[($i + $j) % $names.Count]
            $samples[$name].Add((Measure-Cold $Cases[$name] $Environment))
        }
        Write-Progress -Activity 'Cold starts' -Status "round $($i + 1) of $Iterations" -PercentComplete (100 * ($i + 1) / $Iterations)
    }
    Write-Progress -Activity 'Cold starts' -Completed
    $medians = [ordered]@{}
    foreach ($name in $names) {
        $medians[$name] = Get-Median $samples[$name]
        # The fastest run shows the intrinsic cost when neighbours load the machine; medians drift with them.
        Write-Verbose ("{0,-22} median {1,8:N0} ms  min {2,8:N0} ms" -f $name, $medians[$name], ($samples[$name] | Measure-Object -Minimum).Minimum)
        $script:Minimums[$name] = ($samples[$name] | Measure-Object -Minimum).Minimum
    }
    $medians
}
$script:Minimums = @{}

function Format-Ms([double] $Ms) { '{0,8:N0} ms' -f $Ms }

$quote = { param($s) "'" + $s.Replace("'", "''") + "'" }
Write-Host "Aequor import cost: $Iterations interleaved cold starts per case, medians ($([Environment]::ProcessorCount) cores, PowerShell $($PSVersionTable.PSVersion))"
Write-Host ''

$part1 = Measure-Interleaved ([ordered]@{
        'pwsh -c 1'            = '1'
        'Import-Module Aequor' = "Import-Module $(& $quote $ModulePath)"
        # For scale: what loading the driver alone costs a script that uses raw Npgsql.
        'Add-Type Npgsql'      = "Add-Type -Path $(& $quote $npgsqlPath)"
    })
$bare = $part1['pwsh -c 1']
$import = $part1['Import-Module Aequor']
$addType = $part1['Add-Type Npgsql']
Write-Host '1. Import'
Write-Host "   pwsh -NoProfile -c 1                  $(Format-Ms $bare)"
Write-Host "   pwsh -NoProfile -c 'Import-Module'    $(Format-Ms $import)   ratio $('{0:N2}' -f ($import / $bare))x, adds $(Format-Ms ($import - $bare))"
Write-Host "   pwsh -NoProfile -c 'Add-Type Npgsql'  $(Format-Ms $addType)   ratio $('{0:N2}' -f ($addType / $bare))x, adds $(Format-Ms ($addType - $bare))"
Write-Host "   fastest runs: $(Format-Ms $Minimums['pwsh -c 1']) / $(Format-Ms $Minimums['Import-Module Aequor']) / $(Format-Ms $Minimums['Add-Type Npgsql']) (bare / import / Add-Type)"
Write-Host ''

$manifest = Import-PowerShellDataFile $ModulePath
if (-not $ConnectionString) {
    Write-Host '2. Import + connect + first query: skipped (give -ConnectionString or set AEQUOR_TEST_APP_CONNECTION).'
    return
}
if ('Connect-Aequor' -notin $manifest.CmdletsToExport -or 'Invoke-AequorQuery' -notin $manifest.CmdletsToExport) {
    Write-Host '2. Import + connect + first query: skipped (this build does not export Connect-Aequor and Invoke-AequorQuery yet).'
    return
}

# The secret and connection string reach the children by environment, as in a runbook.
$environment = @{
    AEQUOR_BENCH_CONNECTION     = $ConnectionString
    AEQUOR_COORDINATION_SECRET  = [Convert]::ToBase64String([System.Security.Cryptography.RandomNumberGenerator]::GetBytes(24))
    AEQUOR_SERVICE_NAME         = 'aequor-bench'
}
$part2 = Measure-Interleaved -Environment $environment -Cases ([ordered]@{
        'pwsh -c 1'  = '1'
        'raw Npgsql' = @"
Add-Type -Path $(& $quote $npgsqlPath)
`$c = [Npgsql.NpgsqlConnection]::new(`$env:AEQUOR_BENCH_CONNECTION); `$c.Open()
`$cmd = `$c.CreateCommand(); `$cmd.CommandText = 'select 1'; `$null = `$cmd.ExecuteScalar(); `$c.Dispose()
"@
        'Aequor'     = @"
Import-Module $(& $quote $ModulePath)
`$null = Connect-Aequor -ConnectionString `$env:AEQUOR_BENCH_CONNECTION
`$null = Invoke-AequorQuery -As Scalar 'select 1'
Disconnect-Aequor -All
"@
    })
$bare2 = $part2['pwsh -c 1']
$raw = $part2['raw Npgsql']
$aequor = $part2['Aequor']
$ratio = ($aequor - $bare2) / [math]::Max(1, $raw - $bare2)
Write-Host '2. Import + connect + first query'
Write-Host "   pwsh -NoProfile -c 1                  $(Format-Ms $bare2)"
Write-Host "   raw Npgsql (Add-Type)                 $(Format-Ms $raw)   adds $(Format-Ms ($raw - $bare2))"
Write-Host "   Aequor                                $(Format-Ms $aequor)   adds $(Format-Ms ($aequor - $bare2))"
Write-Host "   added time, Aequor / raw Npgsql       $('{0,8:N2}' -f $ratio) x   (target <= 1.10)"
$minRatio = ($Minimums['Aequor'] - $Minimums['pwsh -c 1']) / [math]::Max(1, $Minimums['raw Npgsql'] - $Minimums['pwsh -c 1'])
Write-Host "   same on the fastest runs              $('{0,8:N2}' -f $minRatio) x"
