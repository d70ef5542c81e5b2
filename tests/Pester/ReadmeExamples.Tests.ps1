# The README's runbook, SSM and Pester examples, run as written: each block is read out of README.md at test
# time (so an edit that breaks one fails here), with only the cloud service around it stubbed -
# Get-AutomationVariable, the aws CLI, the module repository - and a real PostgreSQL behind it.
BeforeAll {
    . (Join-Path $PSScriptRoot 'Aequor.TestHelpers.ps1')
    . (Join-Path $PSScriptRoot 'Support/FreshPwsh.ps1')
    $readme = (Get-Content -Raw (Join-Path $PSScriptRoot '../../README.md')).Replace("`r`n", "`n")

    # The first fenced block of $Language after the heading line $Heading.
    function Get-ReadmeBlock([string] $Heading, [string] $Language) {
        $at = $readme.IndexOf("`n$Heading`n")
        if ($at -lt 0) { throw "README.md has no heading '$Heading'." }
        $m = [regex]::new("(?s)``````$Language`n(.*?)`n``````").Match($readme, $at)
        if (-not $m.Success) { throw "README.md has no ``````$Language block after '$Heading'." }
        $m.Groups[1].Value
    }

    # Where Import-Module / #Requires find the staged module by name, as after Install-PSResource.
    $modulesRoot = Split-Path (Split-Path (Split-Path $env:AEQUOR_MODULE_PATH))
    $secretText = 'readme-example-secret-0123456789'

    # Each example gets a schema of its own, owned by the app role, on the connection string's search path.
    function New-ExampleSchema([string] $Sql) {
        $schema = 'readme_' + [Guid]::NewGuid().ToString('N').Substring(0, 8)
        $null = Invoke-AequorQuery "CREATE SCHEMA $schema AUTHORIZATION aequor_app" -Session (Get-Observer)
        $app = Connect-Aequor "$env:AEQUOR_TEST_APP_CONNECTION;Search Path=$schema" -LeaseMode Optional -Name "setup-$schema"
        try { $null = Invoke-AequorQuery $Sql -Session $app } finally { Disconnect-Aequor -Session $app }
        $schema
    }


    # The SSM document's runCommand, as the agent runs it: the literal block, dedented, with {{ ServiceName }}
    # replaced by the parameter's default, run by bash on an instance whose aws CLI answers from
    # Parameter Store ($Environment: STUB_SECRET, STUB_DB; an empty value is a missing parameter).
    function Invoke-SsmScript([hashtable] $Environment) {
        $yaml = Get-ReadmeBlock '### In an AWS SSM document' 'yaml'
        $lines = $yaml -split "`n"
        $start = [array]::FindIndex($lines, [Predicate[string]] { param($l) $l -match '^\s*- \|\s*$' })
        if ($start -lt 0) { throw 'The SSM document has no runCommand literal block.' }
        $indent = ([regex]::Match($lines[$start + 1], '^ *')).Length
        $body = foreach ($line in $lines[($start + 1)..($lines.Count - 1)]) {
            if ($line.Trim() -and ([regex]::Match($line, '^ *')).Length -lt $indent) { break }
            if ($line.Length -ge $indent) { $line.Substring($indent) } else { '' }
        }
        $default = [regex]::Match($yaml, '(?m)^\s*ServiceName:\s*\n(?:\s+\w+:.*\n)*?\s+default:\s*(\S+)').Groups[1].Value
        if (-not $default) { throw 'The SSM document has no default ServiceName.' }
        $scriptFile = Join-Path $TestDrive "ssm-$([Guid]::NewGuid().ToString('N')).sh"
        Set-Content -Path $scriptFile -Value ($body -join "`n").Replace('{{ ServiceName }}', $default) -Encoding utf8NoBOM

        $bin = Join-Path $TestDrive 'bin'
        if (-not (Test-Path $bin)) {
            $null = New-Item -ItemType Directory $bin
            Set-Content (Join-Path $bin 'aws') -Encoding utf8NoBOM -Value @'
#!/bin/sh
[ "$1 $2" = "ssm get-parameter" ] || { echo "aws stub: unexpected command: $*" >&2; exit 2; }
case " $* " in *" --with-decryption "*) ;; *) echo "aws stub: a SecureString read without --with-decryption" >&2; exit 2 ;; esac
name=""
while [ $# -gt 0 ]; do [ "$1" = "--name" ] && name="$2"; shift; done
case "$name" in
    /orders/aequor/secret) value="$STUB_SECRET" ;;
    /orders/db/connection) value="$STUB_DB" ;;
    *) value="" ;;
esac
[ -n "$value" ] || { echo "An error occurred (ParameterNotFound) when calling the GetParameter operation: $name" >&2; exit 254; }
printf '%s\n' "$value"
'@
            # pwsh as installed on the instance; it says it started, so a test can tell whether it ran.
            Set-Content (Join-Path $bin 'pwsh') -Encoding utf8NoBOM -Value "#!/bin/sh`necho 'pwsh started'`nexec dotnet '$(Join-Path $PSHOME 'pwsh.dll')' `"`$@`"`n"
            chmod +x (Join-Path $bin 'aws') (Join-Path $bin 'pwsh')
        }

        $psi = [System.Diagnostics.ProcessStartInfo]::new('bash')
        $psi.ArgumentList.Add($scriptFile)
        $psi.Environment['PATH'] = "${bin}:$env:PATH"
        $psi.Environment['PSModulePath'] = $modulesRoot
        foreach ($key in $Environment.Keys) { $psi.Environment[$key] = $Environment[$key] }
        foreach ($inherited in 'AEQUOR_COORDINATION_SECRET', 'AEQUOR_SERVICE_NAME', 'AWS_LAMBDA_FUNCTION_NAME') { $null = $psi.Environment.Remove($inherited) }
        $psi.RedirectStandardOutput = $true
        $psi.RedirectStandardError = $true
        $psi.RedirectStandardInput = $true
        $process = [System.Diagnostics.Process]::Start($psi)
        $process.StandardInput.Close()
        $stderr = $process.StandardError.ReadToEndAsync()
        $stdout = $process.StandardOutput.ReadToEndAsync()
        if (-not $process.WaitForExit(120000)) { $process.Kill($true); throw 'The SSM script did not finish within 120 s.' }
        $process.WaitForExit()
        # Without the terminal's control sequences pwsh writes when stdin is not a terminal.
        $plain = { param($text) $text -replace '\x1b\[[0-9;?]*[A-Za-z]', '' }
        [pscustomobject]@{ ExitCode = $process.ExitCode; Output = (& $plain $stdout.Result); Error = (& $plain $stderr.Result) }
    }

    # The three expired rows gone, the two live ones kept, in one DELETE made under a lease of $Service signed with the secret.
    function Assert-ExpiredRemovedBy([string] $Schema, [string] $Service) {
        (Invoke-AequorQuery "SELECT id FROM $Schema.sessions ORDER BY id" -Session (Get-Observer)).id | Should -Be @(4, 5)
        $audit = Invoke-AequorQuery "SELECT application_name, rows FROM $Schema.deleted_by" -Session (Get-Observer)
        $audit.rows | Should -Be 3
        $lease = Get-AequorLease -ApplicationName $audit.application_name -CoordinationSecret (ConvertTo-SecureString $secretText -AsPlainText -Force)
        $lease.ServiceName | Should -Be $Service
        $lease.IsSignatureValid | Should -BeTrue
    }

    # sessions as the runbook and the SSM document expect it; a trigger records who deleted, so the test
    # can check the lease the example's connection carried.
    $sessionsSql = @'
CREATE TABLE sessions (id int PRIMARY KEY, expires_at timestamptz NOT NULL);
CREATE TABLE deleted_by (application_name text, rows int);
CREATE FUNCTION note_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO deleted_by SELECT current_setting('application_name'), count(*) FROM gone;
    RETURN NULL;
END $$;
CREATE TRIGGER sessions_deleted AFTER DELETE ON sessions REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION note_delete();
INSERT INTO sessions SELECT g, now() - interval '1 hour' FROM generate_series(1, 3) g;
INSERT INTO sessions SELECT g, now() + interval '1 hour' FROM generate_series(4, 5) g;
'@
}

AfterAll {
    foreach ($row in @(Invoke-AequorQuery "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'readme\_%'" -Session (Get-Observer))) {
        $schema = $row.nspname
        $null = Invoke-AequorQuery "DROP SCHEMA $schema CASCADE" -Session (Get-Observer)
    }
    Disconnect-Aequor -All -Confirm:$false
}

Describe 'The README examples' {
    It 'the Azure Automation runbook removes the expired sessions and says how many, under its own service''s lease' {
        $schema = New-ExampleSchema $sessionsSql
        $runbook = Get-ReadmeBlock '### In an Azure Automation runbook' 'powershell'
        $runbook | Should -Match 'Get-AutomationVariable'
        # Azure Automation's own cmdlet, answering from the runbook's encrypted variables.
        $stub = @"
function Get-AutomationVariable([Parameter(Mandatory)] [string] `$Name) {
    `$variables = @{ OrdersAequorSecret = '$secretText'; OrdersDbConnectionString = '$env:AEQUOR_TEST_APP_CONNECTION;Search Path=$schema' }
    if (-not `$variables.ContainsKey(`$Name)) { throw "Automation variable '`$Name' not found." }
    `$variables[`$Name]
}
"@
        $runbookFile = Join-Path $TestDrive 'Remove-ExpiredSessions.ps1'
        Set-Content -Path $runbookFile -Value $runbook -Encoding utf8NoBOM
        $run = Invoke-FreshPwsh -Script "$stub`n& '$runbookFile'" -Environment @{ PSModulePath = $modulesRoot }
        $run.ExitCode | Should -Be 0 -Because (Format-FreshPwsh $run)
        $run.Error | Should -BeNullOrEmpty
        $run.Output.Trim() | Should -Be 'Removed 3 expired sessions.'
        Assert-ExpiredRemovedBy $schema 'orders-runbooks'
    }

    It 'the AWS SSM document''s script, run by bash with the parameters from Parameter Store, cleans up under the document''s service name' {
        $schema = New-ExampleSchema $sessionsSql
        $run = Invoke-SsmScript @{ STUB_SECRET = $secretText; STUB_DB = "$env:AEQUOR_TEST_APP_CONNECTION;Search Path=$schema" }
        $run.ExitCode | Should -Be 0 -Because (Format-FreshPwsh $run)
        $run.Error | Should -BeNullOrEmpty -Because (Format-FreshPwsh $run)
        Assert-ExpiredRemovedBy $schema 'orders-ssm'
    }

    It 'the AWS SSM document''s script fails the step, deleting nothing, when a parameter is missing or the database refuses' {
        $schema = New-ExampleSchema $sessionsSql
        $db = "$env:AEQUOR_TEST_APP_CONNECTION;Search Path=$schema"
        # No secret in Parameter Store: the script stops before PowerShell starts.
        $run = Invoke-SsmScript @{ STUB_SECRET = ''; STUB_DB = $db }
        $run.ExitCode | Should -Not -Be 0 -Because (Format-FreshPwsh $run)
        $run.Error | Should -Match 'ParameterNotFound'
        $run.Output | Should -Not -Match 'pwsh started'
        # A wrong password: PowerShell exits 1 with the server's refusal.
        $run = Invoke-SsmScript @{ STUB_SECRET = $secretText; STUB_DB = ($db -replace '(?i)password=[^;]*', 'Password=wrong') }
        $run.ExitCode | Should -Be 1 -Because (Format-FreshPwsh $run)
        $run.Error | Should -Match '28P01'
        (Invoke-AequorQuery "SELECT count(*) FROM $schema.sessions" -As Scalar -Session (Get-Observer)) | Should -Be 5
    }


    It 'the Pester suite passes on consistent data and fails on an orphaned order line' {
        $schema = New-ExampleSchema @'
CREATE TABLE orders (order_id int PRIMARY KEY);
CREATE TABLE order_lines (line_id int PRIMARY KEY, order_id int);
INSERT INTO orders VALUES (1), (2);
INSERT INTO order_lines VALUES (10, 1), (11, 2);
'@
        $suiteFile = Join-Path $TestDrive 'Orders.Tests.ps1'
        Set-Content -Path $suiteFile -Value (Get-ReadmeBlock '### In a Pester suite' 'powershell') -Encoding utf8NoBOM
        $runner = @"
Import-Module '$((Get-Module Pester).Path)'
`$r = Invoke-Pester -Path '$suiteFile' -PassThru -Output None
'RESULT:' + (@{ Passed = `$r.PassedCount; Failed = `$r.FailedCount } | ConvertTo-Json -Compress)
"@
        $environment = @{
            PSModulePath               = $modulesRoot
            AEQUOR_COORDINATION_SECRET = $secretText
            TEST_DB                    = "$env:AEQUOR_TEST_APP_CONNECTION;Search Path=$schema"
        }
        $run = Invoke-FreshPwsh -Script $runner -Environment $environment
        $run.Result.Passed | Should -Be 1 -Because (Format-FreshPwsh $run)
        $run.Result.Failed | Should -Be 0

        $null = Invoke-AequorQuery "INSERT INTO $schema.order_lines VALUES (12, 99)" -Session (Get-Observer)
        $run = Invoke-FreshPwsh -Script $runner -Environment $environment
        $run.Result.Passed | Should -Be 0 -Because (Format-FreshPwsh $run)
        $run.Result.Failed | Should -Be 1
    }
}
