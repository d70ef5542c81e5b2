using System.Security.Cryptography;
using System.Text;

namespace Aequor.Engine;

/// <summary>
/// Signs and verifies leases with one coordination secret, byte-compatible with pg-aequor 0.1.4:
/// HMAC-SHA256 over <c>s=…;i=…;e=…</c>, first 8 bytes, base64url without padding.
/// </summary>
public sealed class LeaseSigner
{
    public const int MinSecretBytes = 16;

    private readonly byte[] _key;

    public LeaseSigner(string coordinationSecret)
    {
        if (string.IsNullOrEmpty(coordinationSecret))
        {
            throw new AequorConfigurationException("The coordination secret is empty; give one of at least 16 bytes (UTF-8), distinct from the database password.");
        }

        _key = Encoding.UTF8.GetBytes(coordinationSecret);
        if (_key.Length < MinSecretBytes)
        {
            var length = _key.Length;
            CryptographicOperations.ZeroMemory(_key);
            throw new AequorConfigurationException($"The coordination secret is {length} bytes long; it must be at least {MinSecretBytes} bytes (UTF-8).");
        }
    }

    /// <summary>
    /// Builds the application_name for a lease. <paramref name="serviceName"/> is normalised first
    /// (idempotent for a name that is already normalised).
    /// </summary>
    public string Sign(string serviceName, string instanceId, long expiresAtMs)
    {
        ArgumentNullException.ThrowIfNull(instanceId);
        if (instanceId.Length == 0)
        {
            throw new ArgumentException("The instance id is empty.", nameof(instanceId));
        }

        if (expiresAtMs < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(expiresAtMs), expiresAtMs, "A lease expiry is milliseconds since the Unix epoch and cannot be negative.");
        }

        var instance = LeaseFormat.Sanitize(instanceId);
        var service = LeaseFormat.NormalizeServiceName(serviceName, instance.Length);
        var payload = LeaseFormat.Payload(service, instance, expiresAtMs);
        var applicationName = payload + ";g=" + Mac(payload);
        if (Encoding.UTF8.GetByteCount(applicationName) > LeaseFormat.MaxLength)
        {
            throw new AequorConfigurationException(
                $"The lease for service '{service}' and instance '{instance}' is {applicationName.Length} bytes; Postgres keeps only {LeaseFormat.MaxLength} bytes of application_name. Use a shorter instance id.");
        }

        return applicationName;
    }

    /// <summary>True only when <paramref name="applicationName"/> is a lease signed with this secret. Never throws.</summary>
    public bool Verify(string? applicationName) =>
        Lease.TryParse(applicationName, out var lease) && IsSignatureValid(lease);

    public bool IsSignatureValid(Lease lease)
    {
        ArgumentNullException.ThrowIfNull(lease);
        if (lease.Signature.Length != LeaseFormat.SignatureLength)
        {
            return false;
        }

        var expected = Encoding.ASCII.GetBytes(Mac(lease.SignedPayload));
        var actual = Encoding.ASCII.GetBytes(lease.Signature);
        return CryptographicOperations.FixedTimeEquals(expected, actual);
    }

    private string Mac(string payload)
    {
        Span<byte> mac = stackalloc byte[32];
        HMACSHA256.HashData(_key, Encoding.UTF8.GetBytes(payload), mac);
        return LeaseFormat.Base64Url(mac[..8]);
    }

    /// <summary>Never shows the secret.</summary>
    public override string ToString() => "LeaseSigner(secret: ***)";
}
