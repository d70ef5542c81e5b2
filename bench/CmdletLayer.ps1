<#
.SYNOPSIS
    The cost of the cmdlet layer, in one pwsh, against raw Npgsql driven from PowerShell script.
.DESCRIPTION
    Run on demand (not a test), in a fresh process, ideally with client and server pinned to one core
    (on a 2-core machine a round trip swings 20-30 us vs 100+ us with core placement):
        taskset -c 0 dotnet pwsh -NoProfile -File bench/CmdletLayer.ps1 -ModulePath out/Aequor/<v>/Aequor.psd1
    'build.ps1 Bench' does that, with the PostgreSQL server pinned to the same core.

      1. Warm-up: the first 2,000 'Invoke-AequorQuery -As Scalar select 1' of this fresh process, against
         the first 2,000 '$cmd.ExecuteScalar()' (measured second, so pwsh itself is warmer for it).
      2. Steady state: both 2,000 times, interleaved in blocks, rotating which goes first; the median of
         per-block ratios. Target: Aequor <= 1.15x the time per call. A third contender in the same blocks,
         the raw call plus 'Write-Output' (the cheapest compiled cmdlet of the same shape), measures what
         PowerShell itself charges for a command: cmdlet.floor is its ratio to raw, cmdlet.scalar_over_floor
         Aequor's ratio to it. A fourth, cmdlet.scalar_piped: the same statements piped into one
         'Invoke-AequorQuery -As Scalar' (one command, one record per statement), as a script can send many.
      3. Streaming 'select g, g::text, now() from generate_series(1,100000) g': Invoke-AequorQuery into
         Measure-Object, against a raw NpgsqlDataReader loop that builds one [pscustomobject] per row in
         script (generic over the columns, as a script that does not know the query would) into
         Measure-Object. Rows per second, 7 interleaved rounds; the ratio is the median of per-round
         ratios; target: Aequor >= 1.3x.

    The raw side loads Npgsql.dll and its dependencies from the module's dependencies/ folder into the
    default load context with Add-Type (the module keeps its own copy in a private context). When the
    module does not export Connect-Aequor and Invoke-AequorQuery yet, only the raw side runs and the
    Aequor figures show as '-'. Every result is also printed as a machine-readable line:
        BENCH|name|value|unit|baseline|ratio|target|met
.NOTES
    Pinned to one core, .NET sees one CPU, and on one CPU it waits ten times longer before compiling hot code
    again optimised (tiered compilation's call-counting delay, 100 ms, times TC_DelaySingleProcMultiplier, 10).
    Each new method run meanwhile restarts the wait, and a loop of PowerShell commands keeps running new ones: here
    'Invoke-AequorQuery' stayed at 220-390 us per call for 100,000 calls (~35 s) before it reached its optimised
    130-140 us, and the 2,000 calls measured after 2,000 of warm-up ran mostly unoptimised code, PowerShell's more
    than the raw call's. 'build.ps1 Bench' therefore starts this pinned pwsh with
    DOTNET_TC_DelaySingleProcMultiplier=1 (the tiering of the 2-core machine it runs on: pinning is there to make
    round trips comparable, not to model a one-CPU host) and the script warms every contender up until a round
    compiles next to nothing (-SettleSeconds). It runs the script a second time at the runtime's defaults, with no
    settling, for the control rows <RowPrefix>.*: what a one-CPU pwsh that has run a few thousand commands sees.
.EXAMPLE
    taskset -c 0 dotnet pwsh -NoProfile -File bench/CmdletLayer.ps1 -ModulePath out/Aequor/0.1.0/Aequor.psd1
#>
[CmdletBinding()]
param(
    # The module manifest to import; defaults to the staged build.
    [string] $ModulePath,

    [string] $ConnectionString = $env:AEQUOR_TEST_APP_CONNECTION,

    [ValidateRange(100, 100000)]
    [int] $Calls = 2000,

    [ValidateRange(2, 200)]
    [int] $Blocks = 20,

    [ValidateRange(1000, 10000000)]
    [int] $Rows = 100000,

    [ValidateRange(1, 20)]
    [int] $StreamRounds = 7,

    # Before the steady state: rounds of every contender until the JIT has settled (see .NOTES), at most this long;
    # 0 measures straight after the first calls, with whatever tier the code has reached by then.
    [ValidateRange(0, 600)]
    [int] $SettleSeconds = 90,

    # The steady-state rows only (no first-calls or streaming rows), named with this prefix instead of 'cmdlet':
    # build.ps1 Bench runs the script a second time this way for the control rows of a pwsh left at the runtime's
    # defaults on one CPU.
    [string] $RowPrefix = 'cmdlet',

    [switch] $ScalarOnly
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version 3.0
$root = Split-Path $PSScriptRoot

if (-not $ConnectionString) { throw 'Give -ConnectionString or set AEQUOR_TEST_APP_CONNECTION (a non-superuser connection string).' }
if (-not $ModulePath) {
    $props = [xml](Get-Content -Raw (Join-Path $root 'Directory.Build.props'))
    $ModulePath = Join-Path $root "out/Aequor/$($props.SelectSingleNode('//VersionPrefix').InnerText.Trim())/Aequor.psd1"
}
if (-not (Test-Path $ModulePath)) { throw "No module at ${ModulePath}: run 'dotnet pwsh ./build.ps1 Build' first, or pass -ModulePath." }
$ModulePath = (Resolve-Path $ModulePath).Path
$moduleDir = Split-Path $ModulePath

function Write-BenchLine {
    param([string] $Name, $Value, [string] $Unit, $Baseline, [string] $Target, $Met, $Ratio)
    $fmt = {
        param($v)
        if ($null -eq $v -or ($v -is [double] -and ([double]::IsNaN($v) -or [double]::IsInfinity($v)))) { return '-' }
        if ([math]::Abs([double]$v) -ge 100) { return ([double]$v).ToString('0', [cultureinfo]::InvariantCulture) }
        ([double]$v).ToString('0.###', [cultureinfo]::InvariantCulture)
    }
    if ($null -eq $Ratio -and $null -ne $Value -and $null -ne $Baseline -and $Baseline -ne 0) { $Ratio = [double]$Value / [double]$Baseline }
    $metText = if ($null -eq $Met) { '-' } elseif ($Met) { 'yes' } else { 'no' }
    Write-Output ('BENCH|{0}|{1}|{2}|{3}|{4}|{5}|{6}' -f $Name, (& $fmt $Value), $Unit, (& $fmt $Baseline), (& $fmt $Ratio), $Target, $metText)
}

function Get-Median([double[]] $Values) {
    $sorted = @($Values | Sort-Object)
    $n = $sorted.Count
    if ($n % 2) { $sorted[[int][math]::Floor($n / 2)] } else { ($sorted[$n / 2 - 1] + $sorted[$n / 2]) / 2 }
}

# Pinning: what this process may run on, and what the caller says about the server.
$affinity = [System.Diagnostics.Process]::GetCurrentProcess().ProcessorAffinity.ToInt64()
$cores = @(0..63 | Where-Object { $affinity -band (1L -shl $_) })
$serverPinning = if ($env:AEQUOR_BENCH_SERVER_CORES) { "server pinned to core(s) $($env:AEQUOR_BENCH_SERVER_CORES)" } else { 'server not pinned (or unknown)' }
# .NET reports only the cores it may use; the machine's own count comes from /proc/cpuinfo.
$machineCores = @(Get-Content /proc/cpuinfo -ErrorAction SilentlyContinue | Where-Object { $_ -match '^processor\s*:' }).Count
if ($machineCores -lt 1) { $machineCores = [Environment]::ProcessorCount }
$clientPinning = if ($cores.Count -lt $machineCores) { "client pinned to core(s) $($cores -join ',') of $machineCores" } else { "client not pinned ($machineCores cores; start under 'taskset -c 0' to pin)" }
Write-Host "cmdlet layer: $clientPinning; $serverPinning; PowerShell $($PSVersionTable.PSVersion)"
Write-Output "BENCH-INFO|cmdlet-pinning|$clientPinning; $serverPinning"

# Raw side: Npgsql and its dependencies, from the module's dependencies/ folder, into the default context.
$depDir = Join-Path $moduleDir 'dependencies'
if (-not (Test-Path (Join-Path $depDir 'Npgsql.dll'))) { $depDir = $moduleDir }
if (-not (Test-Path (Join-Path $depDir 'Npgsql.dll'))) { throw "No Npgsql.dll in $moduleDir/dependencies or $moduleDir." }
$loaded = [AppDomain]::CurrentDomain.GetAssemblies() | ForEach-Object { $_.GetName().Name }
foreach ($dll in Get-ChildItem $depDir -Filter *.dll | Sort-Object { $_.Name -eq 'Npgsql.dll' }) {
    # Only the driver and what it needs; the module's own assemblies stay out of the default context.
    if ($dll.BaseName -like 'Aequor*' -or $dll.BaseName -in $loaded) { continue }
    try { Add-Type -Path $dll.FullName } catch { Write-Verbose "Add-Type $($dll.Name): $($_.Exception.Message)" }
}

$raw = [Npgsql.NpgsqlConnection]::new($ConnectionString)
$raw.Open()
$rawCmd = $raw.CreateCommand()
$rawCmd.CommandText = 'select 1'
$streamSql = "select g, g::text, now() from generate_series(1,$Rows) g"

$manifest = Import-PowerShellDataFile $ModulePath
$haveCmdlets = 'Connect-Aequor' -in $manifest.CmdletsToExport -and 'Invoke-AequorQuery' -in $manifest.CmdletsToExport
if ($haveCmdlets) {
    Import-Module $ModulePath
    $secret = ConvertTo-SecureString 'cmdlet-layer-bench-secret-0123456789' -AsPlainText -Force
    $null = Connect-Aequor -ConnectionString $ConnectionString -CoordinationSecret $secret -ServiceName bench
} else {
    Write-Host 'This module does not export Connect-Aequor and Invoke-AequorQuery yet: the raw Npgsql side only.'
    Write-Output 'BENCH-INFO|cmdlet-layer|raw side only: the staged module has no Connect-Aequor/Invoke-AequorQuery'
}

function Measure-AequorScalar([int] $N) {
    $w = [System.Diagnostics.Stopwatch]::StartNew()
    for ($i = 0; $i -lt $N; $i++) { $null = Invoke-AequorQuery -As Scalar 'select 1' }
    $w.Elapsed.TotalMilliseconds
}

# PowerShell's own price of a command: the raw call plus the cheapest compiled cmdlet of the same shape (one
# positional string in, one object out). No cmdlet can go below it; it says how much of the ratio is ours.
function Measure-FloorScalar([int] $N) {
    $w = [System.Diagnostics.Stopwatch]::StartNew()
    for ($i = 0; $i -lt $N; $i++) { $null = Write-Output 'select 1'; $null = $rawCmd.ExecuteScalar() }
    $w.Elapsed.TotalMilliseconds
}

# The same statements piped into one Invoke-AequorQuery: PowerShell binds the pipeline parameter per record instead of
# starting a command per call — what a script sending many statements can do instead of a loop.
function Measure-AequorPiped([int] $N) {
    $queries = [string[]]::new($N)
    [array]::Fill($queries, 'select 1')
    $w = [System.Diagnostics.Stopwatch]::StartNew()
    $null = $queries | Invoke-AequorQuery -As Scalar
    $w.Elapsed.TotalMilliseconds
}

function Measure-RawScalar([int] $N) {
    $w = [System.Diagnostics.Stopwatch]::StartNew()
    for ($i = 0; $i -lt $N; $i++) { $null = $rawCmd.ExecuteScalar() }
    $w.Elapsed.TotalMilliseconds
}

# 1. Warm-up: the very first calls of this process.
$coldAequor = if ($haveCmdlets) { Measure-AequorScalar $Calls } else { $null }
$coldRaw = Measure-RawScalar $Calls
Write-Host ('1. first {0} calls: Aequor {1} ms, raw {2:N0} ms' -f $Calls, $(if ($null -ne $coldAequor) { '{0:N0}' -f $coldAequor } else { '-' }), $coldRaw)

# Until the JIT has settled: rounds of every contender, stopping after three rounds in a row that compiled at most two
# methods (what is left is the odd method a round runs for the first time), or at -SettleSeconds.
$tiering = if ($env:DOTNET_TC_DelaySingleProcMultiplier) { "DOTNET_TC_DelaySingleProcMultiplier=$($env:DOTNET_TC_DelaySingleProcMultiplier)" } else { 'runtime defaults' }
$settleText = 'none (measured straight after the first calls)'
if ($SettleSeconds -gt 0) {
    $settleClock = [System.Diagnostics.Stopwatch]::StartNew()
    $quietRounds = 0
    $settleCalls = 0
    $perRound = 500
    while ($quietRounds -lt 3 -and $settleClock.Elapsed.TotalSeconds -lt $SettleSeconds) {
        $compiledBefore = [System.Runtime.JitInfo]::GetCompiledMethodCount($false)
        $null = Measure-RawScalar $perRound
        $null = Measure-FloorScalar $perRound
        if ($haveCmdlets) { $null = Measure-AequorScalar $perRound; $null = Measure-AequorPiped $perRound }
        $settleCalls += $perRound
        $quietRounds = if ([System.Runtime.JitInfo]::GetCompiledMethodCount($false) - $compiledBefore -le 2) { $quietRounds + 1 } else { 0 }
    }
    $settleText = '{0:N0} calls per contender in {1:N0} s, {2}' -f $settleCalls, $settleClock.Elapsed.TotalSeconds,
        $(if ($quietRounds -ge 3) { 'settled (3 rounds compiling at most 2 methods each)' } else { "not settled within $SettleSeconds s" })
}
Write-Host "   JIT: $tiering; settling: $settleText"
Write-Output "BENCH-INFO|$RowPrefix-tiering|$tiering; settling before the steady state: $settleText"

# 2. Steady state, interleaved in blocks.
$perBlock = [math]::Max(1, [int]($Calls / $Blocks))
$aequorUs = [System.Collections.Generic.List[double]]::new()
$rawUs = [System.Collections.Generic.List[double]]::new()
$floorUs = [System.Collections.Generic.List[double]]::new()
$pipedUs = [System.Collections.Generic.List[double]]::new()
for ($b = 0; $b -lt $Blocks; $b++) {
    # Rotate which goes first, so none always runs on a cache the others warmed.
    $order = @('raw', 'floor', 'aequor', 'piped')
    $order = @($order[($b % 4)..3]) + @(if ($b % 4) { $order[0..(($b % 4) - 1)] })
    foreach ($which in $order) {
        switch ($which) {
            'raw' { $rawUs.Add((Measure-RawScalar $perBlock) * 1000 / $perBlock) }
            'floor' { $floorUs.Add((Measure-FloorScalar $perBlock) * 1000 / $perBlock) }
            'aequor' { if ($haveCmdlets) { $aequorUs.Add((Measure-AequorScalar $perBlock) * 1000 / $perBlock) } }
            'piped' { if ($haveCmdlets) { $pipedUs.Add((Measure-AequorPiped $perBlock) * 1000 / $perBlock) } }
        }
    }
}
$rawMedian = Get-Median $rawUs
$floorMedian = Get-Median $floorUs
$floorRatio = Get-Median @(for ($i = 0; $i -lt $Blocks; $i++) { $floorUs[$i] / $rawUs[$i] })
$aequorMedian = if ($haveCmdlets) { Get-Median $aequorUs } else { $null }
$scalarRatio = if ($haveCmdlets) { Get-Median @(for ($i = 0; $i -lt $Blocks; $i++) { $aequorUs[$i] / $rawUs[$i] }) } else { $null }
$pipedMedian = if ($haveCmdlets) { Get-Median $pipedUs } else { $null }
$pipedRatio = if ($haveCmdlets) { Get-Median @(for ($i = 0; $i -lt $Blocks; $i++) { $pipedUs[$i] / $rawUs[$i] }) } else { $null }
$overFloor = if ($haveCmdlets) { Get-Median @(for ($i = 0; $i -lt $Blocks; $i++) { $aequorUs[$i] / $floorUs[$i] }) } else { $null }
Write-Host ('2. per call, {0} blocks of {1}: Aequor {2} us, raw {3:N1} us, ratio {4}; raw + Write-Output {5:N1} us ({6:N3}x raw), Aequor / that {7}' -f $Blocks, $perBlock,
    $(if ($null -ne $aequorMedian) { '{0:N1}' -f $aequorMedian } else { '-' }), $rawMedian, $(if ($null -ne $scalarRatio) { '{0:N3}' -f $scalarRatio } else { '-' }),
    $floorMedian, $floorRatio, $(if ($null -ne $overFloor) { '{0:N3}' -f $overFloor } else { '-' }))
Write-Host ('   piped into one Invoke-AequorQuery: {0} us per statement, ratio to raw {1}' -f $(if ($null -ne $pipedMedian) { '{0:N1}' -f $pipedMedian } else { '-' }), $(if ($null -ne $pipedRatio) { '{0:N3}' -f $pipedRatio } else { '-' }))

if ($ScalarOnly) {
    if ($haveCmdlets) { Disconnect-Aequor -All -Confirm:$false }
    $rawCmd.Dispose()
    $raw.Dispose()
    Write-BenchLine "$RowPrefix.scalar" $aequorMedian 'us/call' $rawMedian '-' $null $scalarRatio
    Write-BenchLine "$RowPrefix.floor" $floorMedian 'us/call' $rawMedian 'raw+Write-Output' $null $floorRatio
    Write-BenchLine "$RowPrefix.scalar_over_floor" $aequorMedian 'us/call' $floorMedian '-' $null $overFloor
    return
}

# 3. Streaming rows into Measure-Object.
function Measure-AequorStream {
    $w = [System.Diagnostics.Stopwatch]::StartNew()
    $n = (Invoke-AequorQuery $streamSql | Measure-Object).Count
    if ($n -ne $Rows) { throw "Invoke-AequorQuery streamed $n rows, expected $Rows." }
    $Rows / $w.Elapsed.TotalSeconds
}

function Measure-RawStream {
    $w = [System.Diagnostics.Stopwatch]::StartNew()
    $cmd = $raw.CreateCommand()
    $cmd.CommandText = $streamSql
    $reader = $cmd.ExecuteReader()
    try {
        $n = (& {
                $fields = $reader.FieldCount
                $names = @(for ($f = 0; $f -lt $fields; $f++) { $reader.GetName($f) })
                while ($reader.Read()) {
                    $row = [ordered]@{}
                    for ($f = 0; $f -lt $fields; $f++) {
                        $row[$names[$f]] = if ($reader.IsDBNull($f)) { $null } else { $reader.GetValue($f) }
                    }
                    [pscustomobject]$row
                }
            } | Measure-Object).Count
    } finally {
        $reader.Dispose()
        $cmd.Dispose()
    }
    if ($n -ne $Rows) { throw "The raw loop read $n rows, expected $Rows." }
    $Rows / $w.Elapsed.TotalSeconds
}

$aequorRps = [System.Collections.Generic.List[double]]::new()
$rawRps = [System.Collections.Generic.List[double]]::new()
for ($r = 0; $r -lt $StreamRounds; $r++) {
    if ($haveCmdlets -and $r % 2) {
        $aequorRps.Add((Measure-AequorStream)); $rawRps.Add((Measure-RawStream))
    } else {
        $rawRps.Add((Measure-RawStream)); if ($haveCmdlets) { $aequorRps.Add((Measure-AequorStream)) }
    }
}
$rawRowsPerSec = Get-Median $rawRps
$aequorRowsPerSec = if ($haveCmdlets) { Get-Median $aequorRps } else { $null }
# The median of per-round ratios, as for the scalar calls: neighbouring measurements share the machine's load, which on
# a shared VM swings either side's rate by 2x from one round to the next.
$streamRatio = if ($haveCmdlets) { Get-Median @(for ($i = 0; $i -lt $StreamRounds; $i++) { $aequorRps[$i] / $rawRps[$i] }) } else { $null }
Write-Host ('3. streaming {0:N0} rows, median of {1}: Aequor {2} rows/s, raw script loop {3:N0} rows/s, per-round ratio {4}' -f $Rows, $StreamRounds,
    $(if ($null -ne $aequorRowsPerSec) { '{0:N0}' -f $aequorRowsPerSec } else { '-' }), $rawRowsPerSec, $(if ($null -ne $streamRatio) { '{0:N3}' -f $streamRatio } else { '-' }))

if ($haveCmdlets) { Disconnect-Aequor -All -Confirm:$false }
$rawCmd.Dispose()
$raw.Dispose()

Write-BenchLine "$RowPrefix.first2000" $coldAequor 'ms' $coldRaw '-' $null
Write-BenchLine "$RowPrefix.scalar" $aequorMedian 'us/call' $rawMedian 'ratio<=1.15' $(if ($null -ne $scalarRatio) { $scalarRatio -le 1.15 }) $scalarRatio
Write-BenchLine "$RowPrefix.floor" $floorMedian 'us/call' $rawMedian 'raw+Write-Output' $null $floorRatio
Write-BenchLine "$RowPrefix.scalar_over_floor" $aequorMedian 'us/call' $floorMedian '-' $null $overFloor
Write-BenchLine "$RowPrefix.scalar_piped" $pipedMedian 'us/stmt' $rawMedian '-' $null $pipedRatio
Write-BenchLine "$RowPrefix.stream" $aequorRowsPerSec 'rows/s' $rawRowsPerSec 'ratio>=1.3' $(if ($null -ne $streamRatio) { $streamRatio -ge 1.3 }) $streamRatio
