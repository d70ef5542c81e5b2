<#
.SYNOPSIS
    Exporting 200,000 rows to CSV: Export-AequorTableData (one COPY … TO STDOUT) against Invoke-AequorQuery | Export-Csv.
.DESCRIPTION
    Run on demand (not a test), in a fresh process, against a throwaway database:
        dotnet pwsh -NoProfile -File bench/TableExport.ps1 -ModulePath out/Aequor/<v>/Aequor.psd1 -ConnectionString '...'
    Both write the same rows (id int, name text, born date, score numeric) of one table to a CSV file each. Prints
    seconds for each and the ratio, also as a BENCH|name|value|unit|baseline|ratio|target|met line
    (ratio = value / the Export-Csv baseline).
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory)] [string] $ModulePath,
    [string] $ConnectionString = $env:AEQUOR_TEST_APP_CONNECTION,
    [int] $Rows = 200000
)

$ErrorActionPreference = 'Stop'
Import-Module $ModulePath
$null = Connect-Aequor $ConnectionString -LeaseMode Optional -ReaperRunProbability 0
$t = "bench_export_$([Guid]::NewGuid().ToString('N').Substring(0, 8))"
$folder = Join-Path ([IO.Path]::GetTempPath()) $t
$null = New-Item -ItemType Directory $folder
$null = Invoke-AequorQuery "CREATE TABLE $t AS SELECT g AS id, 'name ' || g AS name, date '2001-02-03' + g % 1000 AS born, g / 7.0 AS score FROM generate_series(1, $Rows) g"
try {
    $copy = Measure-Command { Export-AequorTableData -Path (Join-Path $folder 'copy.csv') -Table $t }
    $objects = Measure-Command { Invoke-AequorQuery "SELECT * FROM $t" | Export-Csv -Path (Join-Path $folder 'objects.csv') }
    $ratio = $objects.TotalSeconds / $copy.TotalSeconds
    '{0:N0} rows: Export-AequorTableData {1:N2} s, Invoke-AequorQuery | Export-Csv {2:N2} s ({3:N1}x faster)' -f $Rows, $copy.TotalSeconds, $objects.TotalSeconds, $ratio
    # value / baseline, as every other bench line: below 1 is faster than objects through Export-Csv.
    'BENCH|table_export.copy_{0}|{1:F3}|s|{2:F3}|{3:F3}|-|-' -f $Rows, $copy.TotalSeconds, $objects.TotalSeconds, ($copy.TotalSeconds / $objects.TotalSeconds)
} finally {
    $null = Invoke-AequorQuery "DROP TABLE $t"
    Remove-Item -Recurse -Force $folder
    Disconnect-Aequor -All -Confirm:$false
}
