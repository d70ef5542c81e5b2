<#
.SYNOPSIS
    Generates the staged module's MAML help from docs/help/<Verb-Noun>.psd1 merged with the real
    parameter metadata of the compiled cmdlets, and checks the module against its manifest.
.DESCRIPTION
    Runs in a child pwsh (build.ps1 starts it) so the build process never holds the module's
    assemblies. Fails, naming what to fix, when an exported cmdlet has no help file, a parameter has
    no description, a cmdlet has fewer than two examples, a help file describes something that does
    not exist (other than a parameter, which only warns), CmdletsToExport and the compiled cmdlets disagree, or a format view names a type the
    module does not define.
#>
param(
    [Parameter(Mandatory)] [string] $ModuleDir,
    [Parameter(Mandatory)] [string] $DocsDir
)
$ErrorActionPreference = 'Stop'
Set-StrictMode -Version 3.0

$problems = [System.Collections.Generic.List[string]]::new()
$manifestPath = Join-Path $ModuleDir 'Aequor.psd1'
$module = Import-Module $manifestPath -PassThru -DisableNameChecking
$assembly = $module.ImplementingAssembly
$helpFile = Join-Path $ModuleDir "en-US/$([IO.Path]::GetFileName($assembly.Location))-Help.xml"

# --- The manifest against the compiled cmdlets -----------------------------------------------------
$compiled = @($assembly.GetExportedTypes() |
    Where-Object { $_.IsSubclassOf([System.Management.Automation.Cmdlet]) -and -not $_.IsAbstract } |
    ForEach-Object {
        $attr = [System.Management.Automation.CmdletAttribute]::GetCustomAttribute($_, [System.Management.Automation.CmdletAttribute])
        if ($attr) { "$($attr.VerbName)-$($attr.NounName)" }
    })
$declared = @((Import-PowerShellDataFile $manifestPath).CmdletsToExport)
foreach ($name in $compiled) { if ($name -notin $declared) { $problems.Add("cmdlet $name is compiled but missing from CmdletsToExport in Aequor.psd1") } }
foreach ($name in $declared) { if ($name -notin $compiled) { $problems.Add("CmdletsToExport lists $name, which the module does not define") } }

# --- Format views show real properties -----------------------------------------------------------
# A view for a type not compiled yet only warns (views and types may arrive on parallel branches);
# a column naming a property its type lacks fails: it would show blanks forever.
foreach ($format in Get-ChildItem $ModuleDir -Filter '*.Format.ps1xml') {
    foreach ($view in ([xml](Get-Content -Raw $format.FullName)).SelectNodes('//View')) {
        $typeName = $view.SelectSingleNode('ViewSelectedBy/TypeName').InnerText.Trim()
        # 'Type#Variant' is an extra type name a cmdlet puts on some objects of Type (Get-AequorLease's offline rows).
        $type = $assembly.GetType(($typeName -split '#')[0])
        if ($null -eq $type) { Write-Warning "$($format.Name) has a view for $typeName, a type the module does not define (yet)."; continue }
        foreach ($property in $view.SelectNodes('.//PropertyName')) {
            if ($null -eq $type.GetProperty($property.InnerText.Trim())) {
                $problems.Add("$($format.Name): the $($view.Name) view shows $($property.InnerText.Trim()), which $typeName does not have")
            }
        }
    }
}

# --- Help ---------------------------------------------------------------------------------------
$common = [System.Collections.Generic.HashSet[string]]::new([string[]]@(
    [System.Management.Automation.Cmdlet]::CommonParameters + [System.Management.Automation.Cmdlet]::OptionalCommonParameters))
# WhatIf and Confirm mean the same on every cmdlet: described here unless a help file says more.
$standardDescriptions = @{
    WhatIf  = 'Shows what would happen if the cmdlet runs. The cmdlet is not run.'
    Confirm = 'Prompts you for confirmation before running the cmdlet.'
}
$allowedKeys = 'Synopsis', 'Description', 'Parameters', 'Examples', 'Notes', 'Links', 'Inputs', 'Outputs'
$aboutTopics = @(Get-ChildItem $DocsDir -Filter 'about_*.help.txt' | ForEach-Object { $_.Name -replace '\.help\.txt$' })

$maml = 'http://schemas.microsoft.com/maml/2004/10'
$cmdNs = 'http://schemas.microsoft.com/maml/dev/command/2004/10'
$devNs = 'http://schemas.microsoft.com/maml/dev/2004/10'

function Get-ShortTypeName([type] $Type) {
    if ($Type.IsArray) { return (Get-ShortTypeName $Type.GetElementType()) + '[]' }
    if ($Type.IsGenericType -and $Type.GetGenericTypeDefinition() -eq [Nullable`1]) { return Get-ShortTypeName $Type.GetGenericArguments()[0] }
    $Type.Name
}

function Get-ValidValues($Parameter) {
    $set = $Parameter.Attributes | Where-Object { $_ -is [System.Management.Automation.ValidateSetAttribute] } | Select-Object -First 1
    if ($set) { return @($set.ValidValues) }
    $t = $Parameter.ParameterType
    if ($t.IsArray) { $t = $t.GetElementType() }
    $inner = [Nullable]::GetUnderlyingType($t)
    if ($inner) { $t = $inner }
    if ($t.IsEnum) { return [enum]::GetNames($t) }
    @()
}

function Get-PipelineText([bool] $ByValue, [bool] $ByName) {
    $kinds = @(if ($ByName) { 'ByPropertyName' }; if ($ByValue) { 'ByValue' })
    if ($kinds) { "True ($($kinds -join ', '))" } else { 'False' }
}

function Add-Para([System.Xml.XmlWriter] $W, [string] $Text) {
    # One <maml:para> per paragraph: Get-Help keeps blank-line-separated paragraphs apart.
    $paras = @(([string]$Text).Trim() -split '\r?\n\s*\r?\n' | Where-Object { $_.Trim() })
    if (-not $paras) { $paras = @('') }
    foreach ($p in $paras) { $W.WriteElementString('maml', 'para', $maml, (($p -split '\r?\n' | ForEach-Object Trim) -join ' ')) }
}

function Write-Parameter {
    param([System.Xml.XmlWriter] $W, $Parameter, [string] $Description, [bool] $Required, [string] $Position,
        [string] $Pipeline, [bool] $InSyntax)
    $isSwitch = $Parameter.ParameterType -eq [System.Management.Automation.SwitchParameter]
    $W.WriteStartElement('command', 'parameter', $cmdNs)
    $W.WriteAttributeString('required', $Required.ToString().ToLowerInvariant())
    $W.WriteAttributeString('variableLength', $Parameter.ParameterType.IsArray.ToString().ToLowerInvariant())
    $W.WriteAttributeString('globbing', 'false')
    $W.WriteAttributeString('pipelineInput', $Pipeline)
    $W.WriteAttributeString('position', $Position)
    $W.WriteAttributeString('aliases', $(if ($Parameter.Aliases.Count) { $Parameter.Aliases -join ', ' } else { 'none' }))
    $W.WriteElementString('maml', 'name', $maml, $Parameter.Name)
    $W.WriteStartElement('maml', 'description', $maml); Add-Para $W $Description; $W.WriteEndElement()
    $values = @(Get-ValidValues $Parameter)
    if ($InSyntax -and $values) {
        $W.WriteStartElement('command', 'parameterValueGroup', $cmdNs)
        foreach ($v in $values) {
            $W.WriteStartElement('command', 'parameterValue', $cmdNs)
            $W.WriteAttributeString('required', 'false'); $W.WriteAttributeString('variableLength', 'false')
            $W.WriteString($v); $W.WriteEndElement()
        }
        $W.WriteEndElement()
    } elseif (-not ($InSyntax -and $isSwitch)) {
        $W.WriteStartElement('command', 'parameterValue', $cmdNs)
        $W.WriteAttributeString('required', (-not $isSwitch).ToString().ToLowerInvariant())
        $W.WriteAttributeString('variableLength', $Parameter.ParameterType.IsArray.ToString().ToLowerInvariant())
        $W.WriteString((Get-ShortTypeName $Parameter.ParameterType)); $W.WriteEndElement()
    }
    $W.WriteStartElement('dev', 'type', $devNs)
    $W.WriteElementString('maml', 'name', $maml, $Parameter.ParameterType.FullName)
    $W.WriteElementString('maml', 'uri', $maml, '')
    $W.WriteEndElement()
    $W.WriteElementString('dev', 'defaultValue', $devNs, $(if ($isSwitch) { 'False' } else { 'None' }))
    $W.WriteEndElement()
}

$settings = [System.Xml.XmlWriterSettings]::new()
$settings.Indent = $true
$settings.Encoding = [System.Text.UTF8Encoding]::new($false)
New-Item -ItemType Directory -Force (Split-Path $helpFile) | Out-Null
$writer = [System.Xml.XmlWriter]::Create($helpFile, $settings)
$writer.WriteStartDocument()
$writer.WriteStartElement('helpItems', 'http://msh')
$writer.WriteAttributeString('schema', 'maml')

foreach ($cmd in Get-Command -Module $module.Name -CommandType Cmdlet | Sort-Object Name) {
    $source = Join-Path $DocsDir "help/$($cmd.Name).psd1"
    if (-not (Test-Path $source)) { $problems.Add("$($cmd.Name) has no help file: create docs/help/$($cmd.Name).psd1"); continue }
    try { $doc = Import-PowerShellDataFile $source } catch { $problems.Add("docs/help/$($cmd.Name).psd1 does not parse: $($_.Exception.Message)"); continue }
    $where = "docs/help/$($cmd.Name).psd1"
    foreach ($key in $doc.Keys) { if ($key -notin $allowedKeys) { $problems.Add("$where has an unknown key '$key' (allowed: $($allowedKeys -join ', '))") } }
    foreach ($key in 'Synopsis', 'Description') { if (-not $doc[$key] -or -not ([string]$doc[$key]).Trim()) { $problems.Add("$where lacks $key") } }
    $described = if ($doc['Parameters'] -is [hashtable]) { $doc['Parameters'] } else { @{} }
    $own = @($cmd.Parameters.Values | Where-Object { -not $common.Contains($_.Name) -or $standardDescriptions[$_.Name] } | Sort-Object { $_.Name })
    foreach ($p in $own) {
        if (-not $described[$p.Name] -and -not $standardDescriptions[$p.Name]) { $problems.Add("$where has no description for parameter -$($p.Name)") }
    }
    # A warning, not a failure: help for a parameter may land before the parameter itself (parallel branches).
    foreach ($name in $described.Keys) { if ($name -notin $own.Name) { Write-Warning "$where describes -$name, which $($cmd.Name) does not have (yet): it is left out of the help." } }
    $examples = @($doc['Examples'] | Where-Object { $_ })
    if ($examples.Count -lt 2) { $problems.Add("$where has $($examples.Count) example(s); at least two are required") }
    foreach ($ex in $examples) {
        if ($ex -isnot [hashtable] -or -not $ex['Title'] -or -not $ex['Code']) { $problems.Add("$where has an example without Title or Code") }
    }
    foreach ($link in @($doc['Links'] | Where-Object { $_ })) {
        if ($link -notmatch '^https?://' -and $link -notin $aboutTopics -and -not (Get-Command $link -Module $module.Name -ErrorAction Ignore)) {
            $problems.Add("$where links to '$link', which is neither a URL, an about topic in docs/ nor an Aequor cmdlet")
        }
    }
    if ($problems.Count) { continue }

    $w = $writer
    $w.WriteStartElement('command', 'command', $cmdNs)
    $w.WriteAttributeString('xmlns', 'maml', $null, $maml)
    $w.WriteAttributeString('xmlns', 'dev', $null, $devNs)
    $w.WriteStartElement('command', 'details', $cmdNs)
    $w.WriteElementString('command', 'name', $cmdNs, $cmd.Name)
    $w.WriteElementString('command', 'verb', $cmdNs, $cmd.Verb)
    $w.WriteElementString('command', 'noun', $cmdNs, $cmd.Noun)
    $w.WriteStartElement('maml', 'description', $maml); Add-Para $w $doc.Synopsis; $w.WriteEndElement()
    $w.WriteEndElement()
    $w.WriteStartElement('maml', 'description', $maml); Add-Para $w $doc.Description; $w.WriteEndElement()

    $describe = { param($p) if ($described[$p.Name]) { $described[$p.Name] } else { $standardDescriptions[$p.Name] } }
    $w.WriteStartElement('command', 'syntax', $cmdNs)
    foreach ($set in $cmd.ParameterSets) {
        $w.WriteStartElement('command', 'syntaxItem', $cmdNs)
        $w.WriteElementString('maml', 'name', $maml, $cmd.Name)
        $inSet = @($set.Parameters | Where-Object { -not $common.Contains($_.Name) -or $standardDescriptions[$_.Name] } |
            Sort-Object @{ Expression = { if ($_.Position -ge 0) { $_.Position } else { [int]::MaxValue } } }, @{ Expression = { -not $_.IsMandatory } })
        foreach ($sp in $inSet) {
            $pos = if ($sp.Position -ge 0) { [string]$sp.Position } else { 'named' }
            Write-Parameter $w $cmd.Parameters[$sp.Name] (& $describe $sp) $sp.IsMandatory $pos (Get-PipelineText $sp.ValueFromPipeline $sp.ValueFromPipelineByPropertyName) $true
        }
        $w.WriteEndElement()
    }
    $w.WriteEndElement()

    $w.WriteStartElement('command', 'parameters', $cmdNs)
    foreach ($p in $own) {
        $sets = @($p.ParameterSets.Values)
        $positions = @($sets | Where-Object { $_.Position -ge 0 } | ForEach-Object Position | Sort-Object -Unique)
        $pos = if ($positions.Count) { [string]$positions[0] } else { 'named' }
        $required = @($sets | Where-Object { -not $_.IsMandatory }).Count -eq 0
        $byValue = [bool]($sets | Where-Object ValueFromPipeline)
        $byName = [bool]($sets | Where-Object ValueFromPipelineByPropertyName)
        Write-Parameter $w $p (& $describe $p) $required $pos (Get-PipelineText $byValue $byName) $false
    }
    $w.WriteEndElement()

    $inputTypes = @($own | Where-Object { $_.ParameterSets.Values | Where-Object { $_.ValueFromPipeline -or $_.ValueFromPipelineByPropertyName } } |
        ForEach-Object { $_.ParameterType.FullName } | Sort-Object -Unique)
    $w.WriteStartElement('command', 'inputTypes', $cmdNs)
    foreach ($t in $(if ($inputTypes) { $inputTypes } else { @('None') })) {
        $w.WriteStartElement('command', 'inputType', $cmdNs)
        $w.WriteStartElement('dev', 'type', $devNs); $w.WriteElementString('maml', 'name', $maml, $t); $w.WriteEndElement()
        $w.WriteStartElement('maml', 'description', $maml); Add-Para $w ([string]$doc['Inputs']); $w.WriteEndElement()
        $w.WriteEndElement()
    }
    $w.WriteEndElement()
    $outputTypes = @($cmd.OutputType | ForEach-Object Name | Sort-Object -Unique)
    $w.WriteStartElement('command', 'returnValues', $cmdNs)
    foreach ($t in $(if ($outputTypes) { $outputTypes } else { @('None') })) {
        $w.WriteStartElement('command', 'returnValue', $cmdNs)
        $w.WriteStartElement('dev', 'type', $devNs); $w.WriteElementString('maml', 'name', $maml, $t); $w.WriteEndElement()
        $w.WriteStartElement('maml', 'description', $maml); Add-Para $w ([string]$doc['Outputs']); $w.WriteEndElement()
        $w.WriteEndElement()
    }
    $w.WriteEndElement()

    if ($doc['Notes']) {
        $w.WriteStartElement('maml', 'alertSet', $maml); $w.WriteStartElement('maml', 'alert', $maml)
        Add-Para $w $doc.Notes
        $w.WriteEndElement(); $w.WriteEndElement()
    }

    $w.WriteStartElement('command', 'examples', $cmdNs)
    $n = 0
    foreach ($ex in $examples) {
        $n++
        $w.WriteStartElement('command', 'example', $cmdNs)
        $w.WriteElementString('maml', 'title', $maml, "-------------------------- Example ${n}: $($ex.Title) --------------------------")
        $w.WriteElementString('dev', 'code', $devNs, ([string]$ex.Code).Trim())
        $w.WriteStartElement('dev', 'remarks', $devNs); Add-Para $w ([string]$ex['Remarks']); $w.WriteEndElement()
        $w.WriteEndElement()
    }
    $w.WriteEndElement()

    $w.WriteStartElement('command', 'relatedLinks', $cmdNs)
    foreach ($link in @($doc['Links'] | Where-Object { $_ })) {
        $w.WriteStartElement('maml', 'navigationLink', $maml)
        if ($link -match '^https?://') {
            $w.WriteElementString('maml', 'linkText', $maml, 'Online version:')
            $w.WriteElementString('maml', 'uri', $maml, $link)
        } else {
            $w.WriteElementString('maml', 'linkText', $maml, $link)
            $w.WriteElementString('maml', 'uri', $maml, '')
        }
        $w.WriteEndElement()
    }
    $w.WriteEndElement()
    $w.WriteEndElement() # command:command
}
$writer.WriteEndElement()
$writer.WriteEndDocument()
$writer.Dispose()

foreach ($about in Get-ChildItem $DocsDir -Filter 'about_*.help.txt') {
    Copy-Item $about.FullName -Destination (Split-Path $helpFile)
}
if (-not $aboutTopics) { $problems.Add('docs/ has no about_*.help.txt topic') }

if ($problems.Count) {
    Remove-Item $helpFile -ErrorAction Ignore
    [Console]::Error.WriteLine(($problems | ForEach-Object { "  - $_" }) -join [Environment]::NewLine)
    exit 1
}
Write-Host "    help: $(@($module.ExportedCmdlets.Keys).Count) cmdlet(s), about topics: $($aboutTopics -join ', ')"
