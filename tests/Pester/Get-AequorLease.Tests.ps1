BeforeAll {
    Import-Module $env:AEQUOR_MODULE_PATH -Force
    $vectors = Get-Content -Raw (Join-Path $PSScriptRoot '../Aequor.Engine.Tests/TestData/lease-vectors.json') | ConvertFrom-Json
}

Describe 'Get-AequorLease (offline)' {
    It 'verifies every pg-aequor reference lease with its secret' {
        foreach ($v in $vectors) {
            $secret = ConvertTo-SecureString $v.secret -AsPlainText -Force
            $lease = Get-AequorLease -ApplicationName $v.applicationName -CoordinationSecret $secret
            $lease.IsSignatureValid | Should -BeTrue
            $lease.ServiceName | Should -Be $v.normalizedService
            $lease.InstanceId | Should -Be $v.instanceId
            $lease.ExpiresAt.ToUnixTimeMilliseconds() | Should -Be $v.expiresAtMs
            $lease.IsExpired | Should -Be ($v.expiresAtMs -lt [DateTimeOffset]::UtcNow.ToUnixTimeMilliseconds())
        }
    }

    It 'takes application names from the pipeline, also by property name' {
        $secret = ConvertTo-SecureString $vectors[0].secret -AsPlainText -Force
        $fromStrings = $vectors[0].applicationName, 'psql' | Get-AequorLease -CoordinationSecret $secret
        $fromStrings.IsSignatureValid | Should -Be @($true, $false)
        $fromRows = [pscustomobject]@{ application_name = $vectors[0].applicationName } | Get-AequorLease -CoordinationSecret $secret
        $fromRows.IsSignatureValid | Should -BeTrue
    }

    It 'gives a not-valid object, never an error, for a malformed string' {
        $secret = ConvertTo-SecureString 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx' -AsPlainText -Force
        $lease = Get-AequorLease -ApplicationName "s=svc;i=x;e=abc;g=`0" -CoordinationSecret $secret -ErrorAction Stop
        $lease.IsSignatureValid | Should -BeFalse
        $lease.ServiceName | Should -BeNullOrEmpty
    }

    It 'does not validate with another secret' {
        $secret = ConvertTo-SecureString 'another-secret-of-enough-length' -AsPlainText -Force
        (Get-AequorLease -ApplicationName $vectors[1].applicationName -CoordinationSecret $secret).IsSignatureValid | Should -BeFalse
    }

    It 'refuses a secret under 16 bytes with AequorSecretTooShort and never echoes it' {
        $secret = ConvertTo-SecureString 'tiny-secret' -AsPlainText -Force
        $err = $null
        try { Get-AequorLease -ApplicationName 'x' -CoordinationSecret $secret } catch { $err = $_ }
        $err | Should -Not -BeNullOrEmpty
        $err.FullyQualifiedErrorId | Should -BeLike 'AequorSecretTooShort*'
        $err.Exception.Message | Should -Match '16 bytes'
        $err.Exception.Message | Should -Not -Match 'tiny-secret'
    }
}
