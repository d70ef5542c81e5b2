using System.Security.Cryptography;

namespace Aequor.Engine;

/// <summary>Random instance ids: 6 random bytes in base64url, 8 characters, as pg-aequor makes them.</summary>
public static class InstanceIds
{
    public const int Length = 8;

    public static string Generate()
    {
        Span<byte> bytes = stackalloc byte[6];
        RandomNumberGenerator.Fill(bytes);
        return LeaseFormat.Base64Url(bytes);
    }
}
