# Runs a script in a fresh pwsh -NoProfile (the same PowerShell as the test run) and returns what a
# new session saw: its exit code, its streams, and the object it printed as one 'RESULT:<json>' line.
# Module loading, assembly load contexts and PSModulePath can only be judged in a process of their own.
function Invoke-FreshPwsh {
    param(
        [Parameter(Mandatory)] [string] $Script,
        [string[]] $ArgumentList = @(),
        [hashtable] $Environment = @{},
        [int] $TimeoutSec = 120
    )
    $file = Join-Path ([IO.Path]::GetTempPath()) "aequor-test-$([guid]::NewGuid().ToString('N')).ps1"
    Set-Content -Path $file -Value $Script -Encoding utf8NoBOM
    try {
        $psi = [System.Diagnostics.ProcessStartInfo]::new('dotnet')
        foreach ($a in @((Join-Path $PSHOME 'pwsh.dll'), '-NoProfile', '-NonInteractive', '-File', $file) + $ArgumentList) {
            $psi.ArgumentList.Add($a)
        }
        foreach ($key in $Environment.Keys) { $psi.Environment[$key] = $Environment[$key] }
        $psi.RedirectStandardOutput = $true
        $psi.RedirectStandardError = $true
        $psi.UseShellExecute = $false
        $process = [System.Diagnostics.Process]::Start($psi)
        $stderr = $process.StandardError.ReadToEndAsync()
        $stdout = $process.StandardOutput.ReadToEndAsync()
        if (-not $process.WaitForExit($TimeoutSec * 1000)) {
            $process.Kill($true)
            throw "The fresh pwsh did not finish within $TimeoutSec s."
        }
        $process.WaitForExit()
        $lines = @($stdout.Result -split '\r?\n')
        $json = $lines | Where-Object { $_.StartsWith('RESULT:') } | Select-Object -Last 1
        [pscustomobject]@{
            ExitCode = $process.ExitCode
            Output   = $stdout.Result
            Error    = $stderr.Result
            Result   = if ($json) { $json.Substring(7) | ConvertFrom-Json } else { $null }
        }
    } finally {
        Remove-Item $file -ErrorAction Ignore
    }
}

# For messages: everything the child said, so a failing assertion explains itself.
function Format-FreshPwsh($Run) {
    "exit $($Run.ExitCode)`nstdout:`n$($Run.Output)`nstderr:`n$($Run.Error)"
}
