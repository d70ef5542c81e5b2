# The build's help generator refuses incomplete help and a manifest that disagrees with the cmdlets:
# run on a copy of the staged module with deliberately broken docs.
BeforeAll {
    . (Join-Path $PSScriptRoot 'Support/FreshPwsh.ps1')
    $generator = Join-Path $PSScriptRoot '../../build/New-AequorHelp.ps1'
    $stagedDir = Split-Path $env:AEQUOR_MODULE_PATH

    function New-ModuleCopy([string] $Name) {
        $dir = Join-Path $TestDrive "$Name/Aequor"
        Copy-Item $stagedDir -Destination $dir -Recurse
        Remove-Item (Join-Path $dir 'en-US') -Recurse
        $docs = New-Item -ItemType Directory -Force (Join-Path $TestDrive "$Name/docs/help")
        Copy-Item (Join-Path $PSScriptRoot '../../docs/about_Aequor.help.txt') -Destination (Split-Path $docs)
        @{ Module = $dir; Docs = (Split-Path $docs) }
    }

    function Invoke-Generator($Copy) {
        $script = "& '$($generator.Replace("'", "''"))' -ModuleDir '$($Copy.Module.Replace("'", "''"))' -DocsDir '$($Copy.Docs.Replace("'", "''"))'; exit `$LASTEXITCODE"
        Invoke-FreshPwsh -Script $script
    }
}

Describe 'build/New-AequorHelp.ps1' {
    It 'fails, naming the file to create, when an exported cmdlet has no help file' {
        $copy = New-ModuleCopy 'nohelp'
        $run = Invoke-Generator $copy
        $run.ExitCode | Should -Not -Be 0
        $run.Error | Should -Match 'Get-AequorLease has no help file: create docs/help/Get-AequorLease.psd1'
        Join-Path $copy.Module 'en-US/Aequor.PowerShell.dll-Help.xml' | Should -Not -Exist
    }

    It 'fails on a missing parameter description, too few examples and a manifest that disagrees with the cmdlets, and warns of a parameter that does not exist' {
        $copy = New-ModuleCopy 'broken'
        Set-Content (Join-Path $copy.Docs 'help/Get-AequorLease.psd1') -Value @'
@{
    Synopsis    = 'Reads leases.'
    Description = 'Reads leases.'
    Parameters  = @{ ApplicationName = 'Strings.'; Bogus = 'Gone.' }
    Examples    = @( @{ Title = 'One'; Code = 'Get-AequorLease x' } )
}
'@
        $manifestPath = Join-Path $copy.Module 'Aequor.psd1'
        (Get-Content -Raw $manifestPath) -replace "'Get-AequorLease'", "'Get-AequorLease', 'Get-AequorNothing'" | Set-Content $manifestPath
        $run = Invoke-Generator $copy
        $run.ExitCode | Should -Not -Be 0
        $run.Error | Should -Match 'no description for parameter -CoordinationSecret'
        $run.Error | Should -Match 'has 1 example\(s\); at least two are required'
        $run.Output | Should -Match 'describes -Bogus, which Get-AequorLease does not have \(yet\)'
        $run.Error | Should -Match 'CmdletsToExport lists Get-AequorNothing, which the module does not define'
    }
}
