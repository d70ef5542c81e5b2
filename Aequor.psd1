@{
    # ModuleVersion is stamped by build.ps1 from Directory.Build.props (the one place it is kept).
    ModuleVersion        = '0.0.0'
    GUID                 = '5c0b7a51-6f8e-4b8a-9a61-0d8c2f1e4a37'
    Author               = 'Aequor contributors'
    CompanyName          = 'Aequor'
    Copyright            = '(c) Aequor contributors. MIT License.'
    Description          = 'Crash-safe, coordination-aware PostgreSQL sessions for runbooks and short-lived workers: signed leases in application_name, a distributed reaper for zombie connections, heartbeats and write-safe retries. Wire-compatible with pg-aequor 0.1.4.'
    PowerShellVersion    = '7.4'
    CompatiblePSEditions = @('Core')
    RootModule           = 'Aequor.PowerShell.dll'
    CmdletsToExport      = @(
        'Connect-Aequor'
        'Disconnect-Aequor'
        'Get-AequorSession'
        'Invoke-AequorQuery'
        'Start-AequorTransaction'
        'Complete-AequorTransaction'
        'Undo-AequorTransaction'
        'Get-AequorLease'
        'Invoke-AequorReap'
        'Write-AequorTableData'
        'Export-AequorTableData'
        'Import-AequorTableData'
    )
    FunctionsToExport    = @()
    VariablesToExport    = @()
    AliasesToExport      = @()
    FormatsToProcess     = @('Aequor.Format.ps1xml')
    PrivateData          = @{
        PSData = @{
            Tags         = @('PostgreSQL', 'Postgres', 'Npgsql', 'Serverless', 'Lambda', 'Runbook', 'Connection', 'Reaper', 'Lease', 'PSEdition_Core', 'Linux', 'Windows', 'MacOS')
            ProjectUri   = 'https://github.com/aequor/aequor'
            LicenseUri   = 'https://github.com/aequor/aequor/blob/main/LICENSE'
            # Stamped by build.ps1 from this version's section of CHANGELOG.md.
            ReleaseNotes = 'See CHANGELOG.md.'
        }
    }
}
