# Dot-sourced by the Pester files (not a test file itself): the module, a secret, and fixtures that
# build leases byte for byte as pg-aequor 0.1.4 does, so tests need no engine type.
Import-Module $env:AEQUOR_MODULE_PATH -Force

$script:TestSecretText = 'pester-coordination-secret-0123456789'
$script:TestSecret = ConvertTo-SecureString $script:TestSecretText -AsPlainText -Force
$script:AppPassword = ([regex]::Match($env:AEQUOR_TEST_APP_CONNECTION, '(?i)password=([^;]*)')).Groups[1].Value
$script:LockClassId = 1346847057

function New-TestServiceName([string] $Prefix = 'pt') {
    "$Prefix-$([Guid]::NewGuid().ToString('N').Substring(0, 8))"
}

# A lease string signed with $Secret: HMAC-SHA256 over s=…;i=…;e=…, first 8 bytes, base64url.
function New-TestLease {
    param([string] $Service, [long] $ExpiresAtMs, [string] $Secret = $script:TestSecretText, [string] $Instance)
    if (-not $Instance) { $Instance = [Guid]::NewGuid().ToString('N').Substring(0, 8) }
    $payload = "s=$Service;i=$Instance;e=$ExpiresAtMs"
    $hmac = [System.Security.Cryptography.HMACSHA256]::new([Text.Encoding]::UTF8.GetBytes($Secret))
    try {
        $mac = [byte[]]($hmac.ComputeHash([Text.Encoding]::UTF8.GetBytes($payload))[0..7])
    } finally { $hmac.Dispose() }
    "$payload;g=" + [Convert]::ToBase64String($mac).TrimEnd('=').Replace('+', '-').Replace('/', '_')
}

# Sessions that judge leases connect with -ReaperRunProbability 0: a pass run by chance at connect
# would reap the fixtures before the test looks. Invoke-AequorReap ignores the probability.
function Get-NowMs { [DateTimeOffset]::UtcNow.ToUnixTimeMilliseconds() }

# A plain (unleased) session of the app role whose application_name is set to $ApplicationName:
# a stand-in for another worker, frozen or alive, that no heartbeat will ever touch.
# Connect-Aequor makes every new session the default: tests that rely on the default connect it last.
function New-FakeWorker {
    param([string] $ApplicationName, [string] $Name = "fake-$([Guid]::NewGuid().ToString('N').Substring(0, 6))")
    $s = Connect-Aequor $env:AEQUOR_TEST_APP_CONNECTION -LeaseMode Optional -Name $Name
    $null = Invoke-AequorQuery 'SELECT set_config(''application_name'', $1, false)' -Parameters @(, $ApplicationName) -Session $s
    $s
}

# A superuser session for looking at pg_stat_activity; always passed by -Session.
function Get-Observer {
    if (-not $script:Observer -or $script:Observer.State -eq 'Closed') {
        $script:Observer = Connect-Aequor $env:AEQUOR_TEST_CONNECTION -LeaseMode Optional -Name "observer-$([Guid]::NewGuid().ToString('N').Substring(0, 6))"
    }
    $script:Observer
}

# What the superuser sees of a backend; $null once it is gone.
function Get-Backend([int] $BackendPid) {
    Invoke-AequorQuery 'SELECT pid, state, application_name, query FROM pg_stat_activity WHERE pid = $1' -Parameters @(, $BackendPid) -Session (Get-Observer)
}

function Wait-Until([scriptblock] $Condition, [int] $TimeoutMs = 10000) {
    $sw = [Diagnostics.Stopwatch]::StartNew()
    while ($sw.ElapsedMilliseconds -lt $TimeoutMs) {
        if (& $Condition) { return $true }
        Start-Sleep -Milliseconds 100
    }
    $false
}

# A PowerShell of its own (to stop with Stop(), or to run until it ends) whose script takes the staged module's path, the
# app role's connection string, then $ArgumentList: param($ModulePath, $Connection, ...). It imports nothing itself:
# what the script does before Import-Module (or without it) is part of what some tests check.
# Disposing it closes its runspace, and with it the runspace's sessions. With -PSHost the runspace is opened on that
# host (to answer prompts) and is not the PowerShell's own: dispose $ps.Runspace as well.
function New-ModuleShell([scriptblock] $Script, [object[]] $ArgumentList = @(), [System.Management.Automation.Host.PSHost] $PSHost) {
    $ps = [powershell]::Create()
    if ($PSHost) {
        $ps.Runspace = [runspacefactory]::CreateRunspace($PSHost)
        $ps.Runspace.Open()
    }
    $null = $ps.AddScript($Script).AddArgument($env:AEQUOR_MODULE_PATH).AddArgument($env:AEQUOR_TEST_APP_CONNECTION)
    foreach ($argument in $ArgumentList) { $null = $ps.AddArgument($argument) }
    $ps
}

# Runs $Inner as the ForEach-Object body over two rows of a query on the default session, in a runspace of its own
# (connected leased, $Setup run first), then one more query on that session. What it wrote, its errors, and
# whether it ended within $TimeoutMs: a call that waits for the reader its own pipeline holds never ends.
function Invoke-InsideRows {
    param([string] $Inner, [string] $Setup = '', [int] $TimeoutMs = 20000)
    $ps = New-ModuleShell ([scriptblock]::Create(@"
param(`$ModulePath, `$Connection, `$Secret, `$Service)
Import-Module `$ModulePath
`$null = Connect-Aequor `$Connection -CoordinationSecret `$Secret -ServiceName `$Service -ReaperRunProbability 0
$Setup
Invoke-AequorQuery 'SELECT g FROM generate_series(1, 2) g' | ForEach-Object { `$_.g; $Inner }
'after:' + (Invoke-AequorQuery 'SELECT 7' -As Scalar)
"@)) $script:TestSecret, (New-TestServiceName rows)
    try {
        $sw = [Diagnostics.Stopwatch]::StartNew()
        $handle = $ps.BeginInvoke()
        $done = $handle.AsyncWaitHandle.WaitOne($TimeoutMs)
        if (-not $done) { $ps.Stop() }
        [pscustomobject]@{
            Done      = $done
            ElapsedMs = $sw.ElapsedMilliseconds
            Output    = @(if ($done) { $ps.EndInvoke($handle) | ForEach-Object { "$_" } })
            Errors    = @($ps.Streams.Error)
        }
    } finally {
        $ps.Dispose()
    }
}
