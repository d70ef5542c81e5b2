# The staged module as users get it: manifest, layout, what Import-Module loads, Remove-Module and re-import.
BeforeAll {
    . (Join-Path $PSScriptRoot 'Support/FreshPwsh.ps1')
    $modulePath = $env:AEQUOR_MODULE_PATH
    $moduleDir = Split-Path $modulePath
    $repoRoot = Resolve-Path (Join-Path $PSScriptRoot '../..')
    $manifest = Import-PowerShellDataFile $modulePath
}

Describe 'The staged module' {
    It 'carries the version kept in Directory.Build.props and that version''s CHANGELOG section as release notes' {
        $props = [xml](Get-Content -Raw (Join-Path $repoRoot 'Directory.Build.props'))
        $version = $props.SelectSingleNode('//VersionPrefix').InnerText.Trim()
        $manifest.ModuleVersion | Should -Be $version
        Split-Path $moduleDir -Leaf | Should -Be $version
        $changelog = Get-Content -Raw (Join-Path $repoRoot 'CHANGELOG.md')
        $manifest.PrivateData.PSData.ReleaseNotes | Should -Not -BeNullOrEmpty
        $changelog.Replace("`r`n", "`n") | Should -BeLike "*## ``[$version``]*$($manifest.PrivateData.PSData.ReleaseNotes.Replace("`r`n", "`n").Substring(0, 40))*"
    }

    It 'declares an explicit export list, Core edition, PowerShell 7.4, its format file and gallery metadata' {
        $manifest.CmdletsToExport | Should -Not -BeNullOrEmpty
        $manifest.CmdletsToExport | Should -Not -Contain '*'
        $manifest.FunctionsToExport.Count | Should -Be 0
        $manifest.AliasesToExport.Count | Should -Be 0
        $manifest.CompatiblePSEditions | Should -Be @('Core')
        $manifest.PowerShellVersion | Should -Be '7.4'
        $manifest.FormatsToProcess | Should -Be @('Aequor.Format.ps1xml')
        $manifest.PrivateData.PSData.ProjectUri | Should -Match '^https://'
        $manifest.PrivateData.PSData.LicenseUri | Should -Match '^https://'
        $manifest.PrivateData.PSData.Tags | Should -Contain 'PostgreSQL'
    }

    It 'has only the cmdlet assembly at its root and the engine, Npgsql and their dependencies under dependencies/' {
        (Get-ChildItem $moduleDir -Filter *.dll).Name | Should -Be @('Aequor.PowerShell.dll')
        $deps = (Get-ChildItem (Join-Path $moduleDir 'dependencies') -Filter *.dll).Name
        $deps | Should -Contain 'Aequor.Engine.dll'
        $deps | Should -Contain 'Npgsql.dll'
        $deps | Should -Contain 'Microsoft.Extensions.Logging.Abstractions.dll'
        Join-Path $moduleDir 'en-US/Aequor.PowerShell.dll-Help.xml' | Should -Exist
        Join-Path $moduleDir 'en-US/about_Aequor.help.txt' | Should -Exist
    }

    It 'has table views whose columns are real properties of the types they format, and uses the lease view' {
        Import-Module $modulePath -Force
        $assembly = (Get-Module Aequor).ImplementingAssembly
        $format = [xml](Get-Content -Raw (Join-Path $moduleDir 'Aequor.Format.ps1xml'))
        $views = @($format.SelectNodes('//View'))
        $views.ViewSelectedBy.TypeName | Should -Contain 'Aequor.PowerShell.AequorLease'
        foreach ($view in $views) {
            $type = $assembly.GetType(($view.ViewSelectedBy.TypeName -split "#")[0])
            if ($null -eq $type) { continue } # the build warns: its type is not compiled yet
            foreach ($property in $view.SelectNodes('.//PropertyName')) {
                $type.GetProperty($property.InnerText) | Should -Not -BeNullOrEmpty -Because "the $($view.Name) view shows $($property.InnerText)"
            }
        }
        $table = Get-AequorLease -ApplicationName 's=orders;i=abcdefgh;e=1700000000000;g=xxxxxxxxxxx' | Format-Table | Out-String
        $table | Should -Match 'ExpiresAt \(UTC\)'
        $table | Should -Match '2023-11-14 22:13:20'
    }

    It 'exposes no engine or Npgsql type in any cmdlet parameter, output type or output property' {
        Import-Module $modulePath -Force
        $private = 'Aequor.Engine', 'Npgsql', 'Microsoft.Extensions.Logging.Abstractions', 'Microsoft.Extensions.DependencyInjection.Abstractions'
        foreach ($cmd in Get-Command -Module Aequor) {
            $types = @($cmd.Parameters.Values.ParameterType) + @($cmd.OutputType.Type | Where-Object { $_ })
            # A property-less output type (Write-AequorTableData's count, an Int64) adds nothing.
            $types += @($cmd.OutputType.Type | Where-Object { $_ } | ForEach-Object { $_.GetProperties().PropertyType } | Where-Object { $_ })
            foreach ($t in $types) {
                $t.Assembly.GetName().Name | Should -Not -BeIn $private -Because "$($cmd.Name) must not expose $($t.FullName)"
            }
        }
    }
}

Describe 'Loading, removal and re-import (fresh pwsh)' {
    It 'loads neither the engine nor Npgsql on Import-Module, the engine (alone) into the private context on first use' {
        $run = Invoke-FreshPwsh -ArgumentList @($modulePath) -Script @'
param($ModulePath)
$ErrorActionPreference = 'Stop'
function Get-Loaded { @([AppDomain]::CurrentDomain.GetAssemblies() | Where-Object { $_.GetName().Name -in 'Aequor.Engine', 'Npgsql', 'Microsoft.Extensions.Logging.Abstractions' } |
    ForEach-Object { "$($_.GetName().Name)@$([System.Runtime.Loader.AssemblyLoadContext]::GetLoadContext($_).Name)" }) }
# Where the engine is first loaded from, on whatever thread: seen loaded right after the import twice in many runs, cause
# unknown; the stack says who asked, should it happen again.
Add-Type -TypeDefinition @"
public static class EngineLoadWatch {
    public static string Stack;
    public static void Hook() {
        System.AppDomain.CurrentDomain.AssemblyLoad += (s, e) => {
            if (Stack == null && e.LoadedAssembly.GetName().Name == "Aequor.Engine") { Stack = "thread " + System.Environment.CurrentManagedThreadId + ": " + System.Environment.StackTrace; }
        };
    }
}
"@
[EngineLoadWatch]::Hook()
Import-Module $ModulePath
$afterImport = Get-Loaded
$stackAtImport = [EngineLoadWatch]::Stack
$null = Get-AequorLease -ApplicationName 's=a;i=b;e=1;g=c'
'RESULT:' + (@{ AfterImport = $afterImport; AfterUse = Get-Loaded; StackAtImport = $stackAtImport } | ConvertTo-Json -Compress)
'@
        $run.ExitCode | Should -Be 0 -Because (Format-FreshPwsh $run)
        @($run.Result.AfterImport) | Should -BeNullOrEmpty -Because "the engine was loaded from $($run.Result.StackAtImport)"
        @($run.Result.AfterUse) | Should -Be @('Aequor.Engine@Aequor')
    }

    It 'answers the default context for Aequor.Engine only, unhooks on Remove-Module and works again after re-import' {
        $run = Invoke-FreshPwsh -ArgumentList @($modulePath) -Script @'
param($ModulePath)
$ErrorActionPreference = 'Stop'
# Assembly.Load in the default context reaches its Resolving event, so it shows whom the module answers for.
function Test-Load([string] $Name) {
    try { $a = [System.Reflection.Assembly]::Load($Name); [System.Runtime.Loader.AssemblyLoadContext]::GetLoadContext($a).Name } catch { 'not found' }
}
Import-Module $ModulePath
$npgsqlWhileImported = Test-Load 'Npgsql'
Remove-Module Aequor
$engineAfterRemove = Test-Load 'Aequor.Engine'
Import-Module $ModulePath
$engineAfterReimport = Test-Load 'Aequor.Engine'
$lease = Get-AequorLease -ApplicationName 's=orders;i=abcdefgh;e=1700000000000;g=xxxxxxxxxxx'
Remove-Module Aequor
Import-Module $ModulePath
$again = Get-AequorLease -ApplicationName 's=orders;i=abcdefgh;e=1700000000000;g=xxxxxxxxxxx'
'RESULT:' + (@{ Npgsql = $npgsqlWhileImported; EngineAfterRemove = $engineAfterRemove; EngineAfterReimport = $engineAfterReimport
    Service = $lease.ServiceName; Again = $again.ServiceName } | ConvertTo-Json -Compress)
'@
        $run.ExitCode | Should -Be 0 -Because (Format-FreshPwsh $run)
        $run.Result.Npgsql | Should -Be 'not found' -Because 'the module answers only for its engine'
        $run.Result.EngineAfterRemove | Should -Be 'not found' -Because 'Remove-Module unhooks the resolver'
        $run.Result.EngineAfterReimport | Should -Be 'Aequor'
        $run.Result.Service | Should -Be 'orders'
        $run.Result.Again | Should -Be 'orders'
    }

    It 'keeps working in one runspace when another runspace removes the module' {
        $run = Invoke-FreshPwsh -ArgumentList @($modulePath) -Script @'
param($ModulePath)
$ErrorActionPreference = 'Stop'
$other = [powershell]::Create([runspacefactory]::CreateRunspace())
$other.Runspace.Open()
# The other runspace imports but has not used the engine yet: it still needs the resolver later.
$null = $other.AddScript("Import-Module '$ModulePath'").Invoke()
Import-Module $ModulePath
Remove-Module Aequor
$other.Commands.Clear()
$service = $other.AddScript("(Get-AequorLease 's=orders;i=abcdefgh;e=1;g=xxxxxxxxxxx').ServiceName").Invoke()
$errors = @($other.Streams.Error | ForEach-Object { "$_" })
'RESULT:' + (@{ Service = "$service"; Errors = $errors } | ConvertTo-Json -Compress)
'@
        $run.ExitCode | Should -Be 0 -Because (Format-FreshPwsh $run)
        @($run.Result.Errors) | Should -BeNullOrEmpty
        $run.Result.Service | Should -Be 'orders'
    }

    It 'runs every registered cleanup callback on Remove-Module, even after one throws, and keeps them for the next import' {
        $run = Invoke-FreshPwsh -ArgumentList @($modulePath) -Script @'
param($ModulePath)
$ErrorActionPreference = 'Stop'
Import-Module $ModulePath
# ModuleCleanup is internal (the cmdlets register with it); reach it the way a test must.
$cleanup = (Get-Module Aequor).ImplementingAssembly.GetType('Aequor.PowerShell.ModuleCleanup', $true)
$register = $cleanup.GetMethod('Register', [System.Reflection.BindingFlags]'Public, NonPublic, Static')
$global:calls = [System.Collections.Generic.List[string]]::new()
$null = $register.Invoke($null, @([Action]{ throw 'a callback that fails' }))
$handle = $register.Invoke($null, @([Action]{ $global:calls.Add('closed sessions') }))
Remove-Module Aequor
$first = @($global:calls)
Import-Module $ModulePath
Remove-Module Aequor
$second = @($global:calls)
$handle.Dispose()
Import-Module $ModulePath
Remove-Module Aequor
'RESULT:' + (@{ First = $first; Second = $second; Third = @($global:calls) } | ConvertTo-Json -Compress)
'@
        $run.ExitCode | Should -Be 0 -Because (Format-FreshPwsh $run)
        @($run.Result.First) | Should -Be @('closed sessions')
        @($run.Result.Second) | Should -Be @('closed sessions', 'closed sessions')
        @($run.Result.Third) | Should -Be @('closed sessions', 'closed sessions') -Because 'a disposed registration no longer runs'
    }

    It 'refuses to import a copy without dependencies/ with a message that says how to fix it' {
        $copy = Join-Path $TestDrive 'broken/Aequor'
        Copy-Item $moduleDir -Destination $copy -Recurse
        Remove-Item (Join-Path $copy 'dependencies') -Recurse
        $run = Invoke-FreshPwsh -ArgumentList @((Join-Path $copy 'Aequor.psd1')) -Script @'
param($ModulePath)
$err = $null
try { Import-Module $ModulePath -ErrorAction Stop } catch { $err = $_ }
'RESULT:' + (@{ Message = "$($err.Exception.Message)"; Loaded = @(Get-Module Aequor).Count } | ConvertTo-Json -Compress)
'@
        $run.ExitCode | Should -Be 0 -Because (Format-FreshPwsh $run)
        $run.Result.Message | Should -Match 'The Aequor module is incomplete: .*Aequor\.Engine\.dll is missing\. Reinstall it'
        $run.Result.Loaded | Should -Be 0
    }
}
