<#
.SYNOPSIS
    Loading 10,000 rows: Write-AequorTableData (one COPY) against Invoke-AequorQuery per row (one INSERT each).
.DESCRIPTION
    Run on demand (not a test), in a fresh process, against a throwaway database:
        dotnet pwsh -NoProfile -File bench/TableData.ps1 -ModulePath out/Aequor/<v>/Aequor.psd1 -ConnectionString '...'
    Both load the same 10,000 rows (id int, name text, born date, as strings, as Import-Csv gives them) into a fresh
    table each. Prints seconds for each and the ratio, also as BENCH|name|value|unit|baseline|ratio lines.
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
foreach ($t in "bench_copy_$suffix", "bench_insert_$suffix") {
    $null = Invoke-AequorQuery "CREATE TABLE $t (id int PRIMARY KEY, name text, born date)"
}
try {
    $copy = Measure-Command { $data | Write-AequorTableData -Table "bench_copy_$suffix" }
    $insert = Measure-Command {
        $data | ForEach-Object { $null = Invoke-AequorQuery "INSERT INTO bench_insert_$suffix VALUES (@id::int, @name, @born::date)" -Parameters $_ -As NonQuery }
    }
    $ratio = $insert.TotalSeconds / $copy.TotalSeconds
    '{0:N0} rows: Write-AequorTableData {1:N2} s, Invoke-AequorQuery per row {2:N2} s ({3:N1}x faster)' -f $Rows, $copy.TotalSeconds, $insert.TotalSeconds, $ratio
    'BENCH|table_data.copy_{0}|{1:F3}|s|{2:F3}|{3:F1}' -f $Rows, $copy.TotalSeconds, $insert.TotalSeconds, $ratio
} finally {
    foreach ($t in "bench_copy_$suffix", "bench_insert_$suffix") {
        $null = Invoke-AequorQuery "DROP TABLE $t"
    }
    Disconnect-Aequor -All -Confirm:$false
}
