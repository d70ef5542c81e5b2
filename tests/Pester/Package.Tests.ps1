# The .nupkg build.ps1 Package writes, as a user installs it: from a local file repository, into a
# folder on PSModulePath, imported by name in a fresh pwsh.
BeforeAll {
    . (Join-Path $PSScriptRoot 'Support/FreshPwsh.ps1')
    $package = $env:AEQUOR_PACKAGE_PATH
    if (-not $package -or -not (Test-Path $package)) { throw 'AEQUOR_PACKAGE_PATH must name the built .nupkg (build.ps1 Test sets it).' }
    $version = (Import-PowerShellDataFile $env:AEQUOR_MODULE_PATH).ModuleVersion
    $work = Join-Path ([IO.Path]::GetTempPath()) "aequor-package-$([guid]::NewGuid().ToString('N'))"
    $feed = New-Item -ItemType Directory -Force (Join-Path $work 'feed')
    $modules = New-Item -ItemType Directory -Force (Join-Path $work 'modules')
    Copy-Item $package -Destination $feed
    $repositoryName = "AequorTest-$([guid]::NewGuid().ToString('N').Substring(0, 8))"
    Import-Module Microsoft.PowerShell.PSResourceGet
    Register-PSResourceRepository -Name $repositoryName -Uri $feed.FullName -Trusted
}

AfterAll {
    if (Get-PSResourceRepository -Name $repositoryName -ErrorAction Ignore) { Unregister-PSResourceRepository -Name $repositoryName }
    Remove-Item -Recurse -Force $work -ErrorAction Ignore
}

Describe 'Installing the package from a local repository' {
    It 'is found with its version, description and tags' {
        $found = Find-PSResource -Name Aequor -Repository $repositoryName
        $found.Version.ToString() | Should -Be $version
        $found.Tags | Should -Contain 'PostgreSQL'
        $found.Description | Should -Match 'PostgreSQL'
    }

    It 'installs with Save-PSResource into a folder that imports by name from PSModulePath and runs' {
        Save-PSResource -Name Aequor -Repository $repositoryName -Path $modules.FullName -TrustRepository
        Join-Path $modules "Aequor/$version/dependencies/Npgsql.dll" | Should -Exist
        Join-Path $modules "Aequor/$version/dependencies/net10.0-linux-x64/Aequor.Engine.dll" | Should -Exist -Because 'the package carries the precompiled build too'
        Join-Path $modules "Aequor/$version/dependencies/net10.0-linux-x64/Npgsql.dll" | Should -Exist

        $run = Invoke-FreshPwsh -Environment @{ PSModulePath = "$($modules.FullName)$([IO.Path]::PathSeparator)$env:PSModulePath" } -Script @'
$ErrorActionPreference = 'Stop'
$available = Get-Module -ListAvailable Aequor
Import-Module Aequor
$module = Get-Module Aequor
$lease = Get-AequorLease -ApplicationName 's=orders;i=abcdefgh;e=1700000000000;g=xxxxxxxxxxx'
$help = @(Get-Command -Module Aequor | ForEach-Object {
    $h = Get-Help $_.Name -Full
    @{ Name = $_.Name; Synopsis = $h.Synopsis; Examples = @($h.examples.example).Count }
})
$about = Get-Help about_Aequor | Out-String
'RESULT:' + (@{ Base = $module.ModuleBase; Listed = @($available).Count; Service = $lease.ServiceName; Help = $help
    About = $about.Length; AboutHasReaper = $about -match 'THE REAPER' } | ConvertTo-Json -Compress -Depth 4)
'@
        $run.ExitCode | Should -Be 0 -Because (Format-FreshPwsh $run)
        $run.Result.Base | Should -BeLike "$($modules.FullName)*"
        $run.Result.Listed | Should -Be 1
        $run.Result.Service | Should -Be 'orders'
        $run.Result.AboutHasReaper | Should -BeTrue
        foreach ($h in $run.Result.Help) {
            $h.Synopsis | Should -Not -BeLike "$($h.Name) *" -Because "$($h.Name) needs its MAML help in the package"
            $h.Examples | Should -BeGreaterOrEqual 2
        }
    }

    It 'installs with Install-PSResource for the current user and imports by name from the default PSModulePath' {
        # A home of its own: the user's real module folder and repository list stay untouched.
        $home2 = New-Item -ItemType Directory -Force (Join-Path $work 'home')
        $sandbox = @{ HOME = $home2.FullName; XDG_DATA_HOME = ''; XDG_CONFIG_HOME = ''; XDG_CACHE_HOME = ''; PSModulePath = '' }
        $install = Invoke-FreshPwsh -Environment $sandbox -ArgumentList @($feed.FullName) -Script @'
param($Feed)
$ErrorActionPreference = 'Stop'
Register-PSResourceRepository -Name LocalFeed -Uri $Feed -Trusted
Install-PSResource -Name Aequor -Repository LocalFeed -Scope CurrentUser
'RESULT:' + (@{ Installed = (Get-InstalledPSResource -Name Aequor).InstalledLocation } | ConvertTo-Json -Compress)
'@
        $install.ExitCode | Should -Be 0 -Because (Format-FreshPwsh $install)
        $install.Result.Installed | Should -BeLike "$($home2.FullName)*"

        $use = Invoke-FreshPwsh -Environment $sandbox -Script @'
$ErrorActionPreference = 'Stop'
Import-Module Aequor
$lease = Get-AequorLease -ApplicationName 's=orders;i=abcdefgh;e=1700000000000;g=xxxxxxxxxxx'
'RESULT:' + (@{ Base = (Get-Module Aequor).ModuleBase; Service = $lease.ServiceName
    Synopsis = (Get-Help Get-AequorLease).Synopsis } | ConvertTo-Json -Compress)
'@
        $use.ExitCode | Should -Be 0 -Because (Format-FreshPwsh $use)
        $use.Result.Base | Should -BeLike "$($home2.FullName)*"
        $use.Result.Service | Should -Be 'orders'
        $use.Result.Synopsis | Should -Match 'lease'
    }

    It 'leaves no repository registered once the suite is done' {
        Unregister-PSResourceRepository -Name $repositoryName
        Get-PSResourceRepository -Name $repositoryName -ErrorAction Ignore | Should -BeNullOrEmpty
    }
}
