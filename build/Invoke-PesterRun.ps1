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
# The NUnit report is written below, not by Invoke-Pester: when Pester's own export fails (a failure message
# with a control character is not valid XML) it returns no result at all, and the run's counts would be lost.
$config.TestResult.Enabled = $false

$result = $null
try {
    $result = Invoke-Pester -Configuration $config
} catch {
    Write-Host "Invoke-Pester failed: $($_.Exception.Message)"
}
if ($null -eq $result -or $null -eq $result.PassedCount) {
    # Never 'nothing failed' when Pester could not say what ran.
    [pscustomobject]@{ Passed = 0; Failed = 1; Skipped = 0; Failures = @('Pester: the run returned no result (see the log above)') } |
        ConvertTo-Json | Set-Content -Path $ResultPath -Encoding utf8NoBOM
    exit 1
}
try {
    $result | Export-NUnitReport -Path ([IO.Path]::ChangeExtension($ResultPath, '.xml'))
} catch {
    Write-Host "The NUnit report was not written (the counts below stand): $($_.Exception.Message)"
}
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
