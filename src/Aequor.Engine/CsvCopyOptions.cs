using System.Globalization;

namespace Aequor.Engine;

/// <summary>The CSV options of a COPY, shared by exports and imports so that one reads what the other wrote.</summary>
internal static class CsvCopyOptions
{
    /// <summary>Why <paramref name="delimiter"/> cannot separate fields, or null when it can; <paramref name="notDone"/> ends the message ("Nothing was exported.").</summary>
    public static string? DelimiterRefusal(char delimiter, string notDone) =>
        // The server takes a one-byte delimiter, and one that is a quote or a line break would make the CSV unreadable.
        delimiter is '"' or '\r' or '\n' or '\0' || delimiter > 127
            ? $"The delimiter '{delimiter}' cannot separate CSV fields: it must be one ASCII character other than a double quote or a line break (',' ';' '|' or a tab). {notDone}"
            : null;

    /// <summary>"(FORMAT csv, HEADER …, DELIMITER '…')", a quote as delimiter doubled inside the literal.</summary>
    public static string Text(bool header, char delimiter) =>
        string.Create(CultureInfo.InvariantCulture,
            $"(FORMAT csv, HEADER {(header ? "true" : "false")}, DELIMITER '{(delimiter == '\'' ? "''" : delimiter.ToString())}')");
}
