<#
.SYNOPSIS
    Loading 10,000 rows: Write-AequorTableData (one COPY) against Invoke-AequorQuery per row (one INSERT each).
.DESCRIPTION
    Run on demand (not a test), in a fresh process, against a throwaway database:
        dotnet pwsh -NoProfile -File bench/TableData.ps1 -ModulePath out/Aequor/<v>/Aequor.psd1 -ConnectionString '...'
    Both load the same 10,000 rows (id int, name text, born date, as strings, as Import-Csv gives them) into a fresh
    table each, and the same rows piped into one Invoke-AequorQuery. Prints seconds for each, also as
    BENCH|name|value|unit|baseline|ratio|target|met lines (ratio = value / the command-per-row baseline).
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory)] [string] $ModulePath,
    [string] $ConnectionString = $env:AEQUOR_TEST_APP_CONNECTION,
    [int] $Rows = 10000
)

Import-Module $ModulePath
$null = Connect-Aequor $ConnectionString -LeaseMode Optional -ReaperRunProbability 0
$data = 1..$Rows | ForEach-Object { [pscustomobject]@{ id = "$_"; name = "name $_"; born = '2001-02-03' } }
$suffix = [Guid]::NewGuid().ToString('N').Substring(0, 8)
foreach ($t in "bench_copy_$suffix", "bench_insert_$suffix", "bench_piped_$suffix") {
    $null = Invoke-AequorQuery "CREATE TABLE $t (id int PRIMARY KEY, name text, born date)"
}
try {
    $copy = Measure-Command { $data | Write-AequorTableData -Table "bench_copy_$suffix" }
    $insert = Measure-Command {
        $data | ForEach-Object { $null = Invoke-AequorQuery "INSERT INTO bench_insert_$suffix VALUES (@id::int, @name, @born::date)" -Parameters $_ -As NonQuery }
    }
    # The rows piped into one Invoke-AequorQuery: a statement per row, without a command per row.
    $piped = Measure-Command {
        $data | Invoke-AequorQuery "INSERT INTO bench_piped_$suffix VALUES (@id::int, @name, @born::date)" -As NonQuery | Out-Null
    }
    '{0:N0} rows: Write-AequorTableData {1:N2} s, rows piped into Invoke-AequorQuery {2:N2} s, Invoke-AequorQuery per row {3:N2} s ({4:N1}x and {5:N1}x faster than per row)' -f $Rows,
        $copy.TotalSeconds, $piped.TotalSeconds, $insert.TotalSeconds, ($insert.TotalSeconds / $copy.TotalSeconds), ($insert.TotalSeconds / $piped.TotalSeconds)
    # value / baseline, as every other bench line: below 1 is faster than a command per row.
    'BENCH|table_data.copy_{0}|{1:F3}|s|{2:F3}|{3:F3}|-|-' -f $Rows, $copy.TotalSeconds, $insert.TotalSeconds, ($copy.TotalSeconds / $insert.TotalSeconds)
    'BENCH|table_data.piped_{0}|{1:F3}|s|{2:F3}|{3:F3}|-|-' -f $Rows, $piped.TotalSeconds, $insert.TotalSeconds, ($piped.TotalSeconds / $insert.TotalSeconds)
} finally {
    foreach ($t in "bench_copy_$suffix", "bench_insert_$suffix", "bench_piped_$suffix") {
        $null = Invoke-AequorQuery "DROP TABLE $t"
    }
    Disconnect-Aequor -All -Confirm:$false
}
