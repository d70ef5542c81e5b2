# The benchmarks run on demand (build.ps1 Bench), never in CI: this keeps bench/CmdletLayer.ps1 working between two
# runs. Tiny counts, the test server; the figures themselves are not judged here (benchmarks are not timed tests).
BeforeAll {
    . (Join-Path $PSScriptRoot 'Support/FreshPwsh.ps1')
    if (-not $env:AEQUOR_TEST_APP_CONNECTION) { throw 'AEQUOR_TEST_APP_CONNECTION is not set (build.ps1 Test sets it).' }
    $bench = (Resolve-Path (Join-Path $PSScriptRoot '../../bench/CmdletLayer.ps1')).Path

    # One run of the bench in a fresh pwsh: its BENCH rows by name, and its BENCH-INFO facts by key.
    function Invoke-CmdletBench([string[]] $Arguments, [hashtable] $Environment = @{}) {
        $run = Invoke-FreshPwsh -Script "& '$bench' -ModulePath '$env:AEQUOR_MODULE_PATH' @args" -ArgumentList $Arguments -Environment $Environment -TimeoutSec 180
        $rows = @{}
        $info = @{}
        foreach ($line in $run.Output -split '\r?\n') {
            $parts = $line.Split('|')
            if ($parts[0] -eq 'BENCH' -and $parts.Count -ge 8) { $rows[$parts[1]] = [pscustomobject]@{ Value = $parts[2]; Ratio = $parts[5]; Target = $parts[6]; Met = $parts[7] } }
            if ($parts[0] -eq 'BENCH-INFO' -and $parts.Count -ge 3) { $info[$parts[1]] = $parts[2] }
        }
        [pscustomobject]@{ Run = $run; Rows = $rows; Info = $info }
    }
}

Describe 'bench/CmdletLayer.ps1' {
    It 'settles the JIT before its steady state, says how, and prints every cmdlet row with a figure' {
        $b = Invoke-CmdletBench @('-Calls', '100', '-Blocks', '2', '-Rows', '1000', '-StreamRounds', '1', '-SettleSeconds', '1') @{ DOTNET_TC_DelaySingleProcMultiplier = '1' }
        $b.Run.ExitCode | Should -Be 0 -Because (Format-FreshPwsh $b.Run)
        @($b.Rows.Keys | Sort-Object) | Should -Be @('cmdlet.first2000', 'cmdlet.floor', 'cmdlet.scalar', 'cmdlet.scalar_over_floor', 'cmdlet.scalar_piped', 'cmdlet.stream')
        foreach ($name in $b.Rows.Keys) {
            $b.Rows[$name].Value | Should -Match '^\d+(\.\d+)?$' -Because "$name has a figure"
            $b.Rows[$name].Ratio | Should -Match '^\d+(\.\d+)?$' -Because "$name has a ratio"
        }
        $b.Rows['cmdlet.scalar'].Target | Should -Be 'ratio<=1.15'
        # One round at least (500 calls of each contender) before the 1 s bound stops it.
        $b.Info['cmdlet-tiering'] | Should -Match '^DOTNET_TC_DelaySingleProcMultiplier=1; settling before the steady state: [\d,]+ calls per contender in \d+ s, (settled|not settled within 1 s)'
        $b.Info['cmdlet-tiering'] | Should -Not -Match ': 0 calls'
    }

    It 'with -ScalarOnly prints only the steady-state rows, under -RowPrefix, with no target and no settling' {
        $b = Invoke-CmdletBench @('-Calls', '100', '-Blocks', '2', '-ScalarOnly', '-SettleSeconds', '0', '-RowPrefix', 'cmdlet.one_cpu_default')
        $b.Run.ExitCode | Should -Be 0 -Because (Format-FreshPwsh $b.Run)
        @($b.Rows.Keys | Sort-Object) | Should -Be @('cmdlet.one_cpu_default.floor', 'cmdlet.one_cpu_default.scalar', 'cmdlet.one_cpu_default.scalar_over_floor')
        $b.Rows['cmdlet.one_cpu_default.scalar'].Ratio | Should -Match '^\d+(\.\d+)?$'
        $b.Rows['cmdlet.one_cpu_default.scalar'].Target | Should -Be '-'
        $b.Info['cmdlet.one_cpu_default-tiering'] | Should -Be 'runtime defaults; settling before the steady state: none (measured straight after the first calls)'
    }
}
