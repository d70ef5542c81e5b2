# Runs the Pester suite in this fresh pwsh and writes its counts for build.ps1.
param(
    [Parameter(Mandatory)] [string] $PesterPath,
    [Parameter(Mandatory)] [string] $ModulePath,
    [Parameter(Mandatory)] [string] $TestPath,
    [Parameter(Mandatory)] [string] $ResultPath,
    [string] $Filter
)
$ErrorActionPreference = 'Stop'
Import-Module $PesterPath -MinimumVersion 5.7.1 -Force

# Test files import the staged module from here, never an installed one.
$env:AEQUOR_MODULE_PATH = $ModulePath

$config = New-PesterConfiguration
$config.Run.Path = if ($Filter) { @(Get-ChildItem $TestPath -Recurse -Filter '*.Tests.ps1' | Where-Object Name -match $Filter | ForEach-Object FullName) } else { $TestPath }
$config.Run.PassThru = $true
$config.Run.Exit = $false
$config.Output.Verbosity = 'Detailed'
if ([Console]::IsOutputRedirected -or $env:CI) { $config.Output.RenderMode = 'Plaintext' }
$config.TestResult.Enabled = $true
$config.TestResult.OutputFormat = 'NUnitXml'
$config.TestResult.OutputPath = [IO.Path]::ChangeExtension($ResultPath, '.xml')

$result = Invoke-Pester -Configuration $config
# Named again just above CI's last line: a log tail must say what failed.
$firstLine = {
    param($r)
    $line = ("$($r.ErrorRecord | Select-Object -First 1)" -split "`n")[0]
    if ($line) { $line } else { 'see its block' }
}
$failures = @(
    foreach ($t in $result.Failed) { "$($t.ExpandedPath): $(& $firstLine $t)" }
    foreach ($b in $result.FailedBlocks) { "$($b.ExpandedPath) (block): $(& $firstLine $b)" }
    foreach ($c in $result.FailedContainers) { "$($c.Item) (file): $(& $firstLine $c)" }
)
[pscustomobject]@{
    Passed  = $result.PassedCount
    # A file that fails to load, or a failing BeforeAll, fails every test in it: count it.
    Failed  = $result.FailedCount + $result.FailedBlocksCount + $result.FailedContainersCount
    Skipped = $result.SkippedCount
    Failures = $failures
} | ConvertTo-Json | Set-Content -Path $ResultPath -Encoding utf8NoBOM
