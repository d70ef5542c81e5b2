namespace Aequor.Engine;

/// <summary>
/// The fields of a lease string <c>s=…;i=…;e=…;g=…</c> as read from an <c>application_name</c>.
/// Parsing says nothing about authenticity: see <see cref="LeaseSigner.IsSignatureValid(Lease)"/>.
/// </summary>
public sealed class Lease
{
    private readonly int _signatureStart;

    private Lease(string serviceName, string instanceId, long expiresAtMs, string signature, string applicationName)
    {
        ServiceName = serviceName;
        InstanceId = instanceId;
        ExpiresAtMs = expiresAtMs;
        Signature = signature;
        ApplicationName = applicationName;
        _signatureStart = applicationName.Length - signature.Length - 3;
    }

    public string ServiceName { get; }

    public string InstanceId { get; }

    public long ExpiresAtMs { get; }

    /// <summary>The 11-character base64url signature as written (not checked by parsing).</summary>
    public string Signature { get; }

    /// <summary>The whole string as read.</summary>
    public string ApplicationName { get; }

    public DateTimeOffset ExpiresAt => InstantOf(ExpiresAtMs);

    public bool IsExpiredAt(long nowMs) => nowMs > ExpiresAtMs;

    /// <summary>
    /// The part the HMAC covers: everything before <c>;g=</c>, as written. Re-formatting the
    /// expiry would let <c>e=01700000000000</c> pass for <c>e=1700000000000</c>.
    /// </summary>
    internal string SignedPayload => ApplicationName[.._signatureStart];

    public override string ToString() => ApplicationName;

    /// <summary>
    /// An expiry as an instant. The parser takes up to 16 digits, and anyone who can connect can write
    /// <c>e=9999999999999999</c>: past year 9999 is the last instant DateTimeOffset holds, never an exception.
    /// </summary>
    public static DateTimeOffset InstantOf(long unixMs) =>
        unixMs >= DateTimeOffset.MaxValue.ToUnixTimeMilliseconds() ? DateTimeOffset.MaxValue
        : unixMs <= DateTimeOffset.MinValue.ToUnixTimeMilliseconds() ? DateTimeOffset.MinValue
        : DateTimeOffset.FromUnixTimeMilliseconds(unixMs);

    /// <summary>
    /// Reads a lease without trusting it. Never throws: anything that is not exactly the
    /// pg-aequor shape (over-long, non-ASCII, NUL, extra fields, non-decimal expiry) is not a lease.
    /// </summary>
    public static bool TryParse(string? applicationName, out Lease lease)
    {
        lease = null!;
        if (applicationName is null || applicationName.Length is < 12 or > LeaseFormat.MaxLength)
        {
            return false;
        }

        foreach (var c in applicationName)
        {
            // A lease we (or pg-aequor) wrote is printable ASCII only.
            if (c is < (char)0x21 or > (char)0x7E)
            {
                return false;
            }
        }

        var parts = applicationName.Split(';');
        if (parts.Length != 4
            || !TryField(parts[0], "s=", out var service)
            || !TryField(parts[1], "i=", out var instance)
            || !TryField(parts[2], "e=", out var expiry)
            || !TryField(parts[3], "g=", out var signature)
            || !TryParseExpiry(expiry, out var expiresAtMs))
        {
            return false;
        }

        lease = new Lease(service, instance, expiresAtMs, signature, applicationName);
        return true;
    }

    private static bool TryField(string part, string prefix, out string value)
    {
        value = string.Empty;
        if (part.Length <= prefix.Length || !part.StartsWith(prefix, StringComparison.Ordinal))
        {
            return false;
        }

        value = part[prefix.Length..];
        return true;
    }

    private static bool TryParseExpiry(string text, out long value)
    {
        value = 0;
        // Decimal digits only: no sign, no exponent, no whitespace; 16 digits is far past year 9999. No leading
        // zero either: pg-aequor writes the expiry as a JavaScript number (never zero-padded), and one number
        // must have one text, or a signed lease could be re-formatted into a different string that still verifies.
        if (text.Length > 16 || (text.Length > 1 && text[0] == '0'))
        {
            return false;
        }

        foreach (var c in text)
        {
            if (c is < '0' or > '9')
            {
                return false;
            }
        }

        return long.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out value);
    }
}
