using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace Aequor.Engine;

/// <summary>The byte-level rules of pg-aequor 0.1.4's lease string, kept in one place.</summary>
public static class LeaseFormat
{
    /// <summary>Postgres truncates <c>application_name</c> (NAMEDATALEN − 1) to 63 bytes.</summary>
    public const int MaxLength = 63;

    /// <summary>Characters of the 8-byte truncated HMAC in base64url without padding.</summary>
    public const int SignatureLength = 11;

    /// <summary>
    /// "s=" + ";i=" + ";e=" + 13 expiry digits + ";g=": the fixed overhead pg-aequor budgets for.
    /// </summary>
    private const int FixedOverhead = 24;

    private const int HashSuffixLength = 8;

    public const string DefaultServiceName = "sls_pg";

    internal static string Payload(string service, string instance, long expiresAtMs) =>
        "s=" + service + ";i=" + instance + ";e=" + expiresAtMs.ToString(CultureInfo.InvariantCulture);

    /// <summary>Replaces every UTF-16 code unit outside <c>[A-Za-z0-9:_-]</c> with <c>_</c>, as JavaScript's replace does.</summary>
    public static string Sanitize(string token)
    {
        ArgumentNullException.ThrowIfNull(token);
        return string.Create(token.Length, token, static (span, source) =>
        {
            for (var i = 0; i < source.Length; i++)
            {
                var c = source[i];
                span[i] = IsTokenChar(c) ? c : '_';
            }
        });
    }

    internal static bool IsTokenChar(char c) =>
        c is (>= 'A' and <= 'Z') or (>= 'a' and <= 'z') or (>= '0' and <= '9') or ':' or '_' or '-';

    /// <summary>The longest service name that still leaves room for the rest of the lease.</summary>
    public static int MaxServiceLength(int instanceLength) =>
        Math.Max(1, MaxLength - (FixedOverhead + instanceLength + SignatureLength));

    /// <summary>
    /// pg-aequor's service-name normalisation: a name that sanitising changed, or that is too long,
    /// becomes a prefix plus the first 8 hex digits of SHA-1 of the original, so distinct long
    /// names stay distinct and every lease fits in 63 bytes.
    /// </summary>
    public static string NormalizeServiceName(string serviceName, int instanceLength = InstanceIds.Length)
    {
        ArgumentNullException.ThrowIfNull(serviceName);
        if (serviceName.Length == 0)
        {
            throw new ArgumentException("The service name is empty; give a name such as 'orders-api'.", nameof(serviceName));
        }

        var max = MaxServiceLength(instanceLength);
        var sanitized = Sanitize(serviceName);
        if (sanitized == serviceName && sanitized.Length <= max)
        {
            return sanitized;
        }

        var hash = Convert.ToHexString(SHA1.HashData(Encoding.UTF8.GetBytes(serviceName)))[..HashSuffixLength].ToLowerInvariant();
        if (max <= HashSuffixLength)
        {
            return hash[..max];
        }

        var keep = Math.Min(sanitized.Length, max - HashSuffixLength - 1);
        return sanitized[..keep] + "-" + hash;
    }

    /// <summary>Base64url without padding (RFC 4648 §5), as Node's <c>toString('base64url')</c> writes it.</summary>
    internal static string Base64Url(ReadOnlySpan<byte> bytes) =>
        Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');
}
