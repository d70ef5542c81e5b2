using System.Runtime.InteropServices;
using System.Security;

namespace Aequor.PowerShell;

/// <summary>
/// The plain text of a <see cref="SecureString"/>, every character of it. <c>NetworkCredential.Password</c> (behind
/// <c>PSCredential.GetNetworkCredential()</c> and <c>ConvertFrom-SecureString -AsPlainText</c>) reads it as a C string
/// and stops at the first NUL: a -Credential password "pa`0ss" came out as "pa", and that other password was sent to
/// the server, while a secret was cut short into another secret (or refused as too short).
/// </summary>
internal static class SecureStrings
{
    public static string? Reveal(SecureString? value)
    {
        if (value is null)
        {
            return null;
        }

        var text = Marshal.SecureStringToGlobalAllocUnicode(value);
        try
        {
            return Marshal.PtrToStringUni(text, value.Length);
        }
        finally
        {
            Marshal.ZeroFreeGlobalAllocUnicode(text);
        }
    }
}
