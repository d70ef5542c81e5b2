using System.Text;

namespace Aequor.PowerShell;

/// <summary>
/// The text of a SQL file: UTF-8 unless a byte order mark says otherwise, and refused when it is not. A lenient
/// decoder turns each byte of a legacy code page (Windows-1252 'é', what Set-Content writes in Windows PowerShell
/// 5.1) into U+FFFD, and the statement then writes that replacement character into the database without a word;
/// psql refuses such a file instead.
/// </summary>
internal static class SqlFileText
{
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>The text, or null with <paramref name="badByte"/> the first byte that is not UTF-8.</summary>
    public static string? Read(string path, out byte? badByte)
    {
        badByte = null;
        using var reader = new StreamReader(path, StrictUtf8, detectEncodingFromByteOrderMarks: true);
        try
        {
            return reader.ReadToEnd();
        }
        catch (DecoderFallbackException ex)
        {
            badByte = ex.BytesUnknown is { Length: > 0 } bytes ? bytes[0] : null;
            return null;
        }
    }
}
