# The demo build.ps1 Demo runs against its throwaway PostgreSQL (connection strings in the environment).
param([Parameter(Mandatory)] [string] $ModulePath)
$ErrorActionPreference = 'Stop'
Import-Module $ModulePath
$moduleDir = Split-Path $ModulePath
Add-Type -Path (Join-Path $moduleDir 'dependencies/Npgsql.dll')
Add-Type -Path (Join-Path $moduleDir 'dependencies/Aequor.Engine.dll')

$secret = 'demo-coordination-secret-0123456789'
$signer = [Aequor.Engine.LeaseSigner]::new($secret)
$now = [DateTimeOffset]::UtcNow.ToUnixTimeMilliseconds()

function Open-Leased([string] $ApplicationName) {
    $b = [Npgsql.NpgsqlConnectionStringBuilder]::new($env:AEQUOR_TEST_APP_CONNECTION)
    $b.ApplicationName = $ApplicationName
    $c = [Npgsql.NpgsqlConnection]::new($b.ConnectionString)
    $c.Open()
    $c
}

Write-Host "Three workers connect with signed leases in application_name; one more is a plain psql-like client."
$conns = @(
    Open-Leased $signer.Sign('orders-api', [Aequor.Engine.InstanceIds]::Generate(), $now - 60000)
    Open-Leased $signer.Sign('orders-api', [Aequor.Engine.InstanceIds]::Generate(), $now - 5000)
    Open-Leased $signer.Sign('orders-api', [Aequor.Engine.InstanceIds]::Generate(), $now + 90000)
    Open-Leased 'psql'
)

$observer = $conns[3]
$cmd = $observer.CreateCommand()
$cmd.CommandText = "SELECT pid, application_name FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() ORDER BY pid"
$reader = $cmd.ExecuteReader()
$rows = while ($reader.Read()) { [pscustomobject]@{ pid = $reader.GetInt32(0); application_name = $reader.GetString(1) } }
$reader.Dispose()

Write-Host "`nWhat pg_stat_activity shows, read back and verified with the coordination secret:"
$rows | Get-AequorLease -CoordinationSecret (ConvertTo-SecureString $secret -AsPlainText -Force) |
    Format-Table ServiceName, InstanceId, ExpiresAt, IsExpired, IsSignatureValid, ApplicationName -AutoSize | Out-Host

Write-Host "Expired and validly signed leases are what the reaper (coming next) may terminate; the plain client is never touched."
$conns | ForEach-Object Dispose
