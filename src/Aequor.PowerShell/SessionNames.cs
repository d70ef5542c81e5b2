using System.Diagnostics.CodeAnalysis;
using System.Management.Automation;
using System.Management.Automation.Language;

namespace Aequor.PowerShell;

/// <summary>
/// Session names and the -Name patterns that match them. Get-AequorSession and Disconnect-Aequor read
/// -Name as a wildcard pattern, so a name holding a pattern character could never be named alone
/// ('prod*' would match 'production' too) or at all ('db[1' is no valid pattern): such names are refused.
/// </summary>
internal static class SessionNames
{
    private static readonly char[] PatternCharacters = ['*', '?', '[', ']', '`'];

    /// <summary>Why <paramref name="name"/> cannot name a session, or null when it can.</summary>
    public static string? Problem(string name) =>
        name.Contains('\0', StringComparison.Ordinal) ? $"The session name '{Printable(name)}' holds a NUL character (U+0000): no -Name pattern could name it. Choose a name without it."
        : name.IndexOfAny(PatternCharacters) < 0 ? null
        : $"The session name '{name}' holds a wildcard character (* ? [ ] or `): Get-AequorSession and Disconnect-Aequor read -Name as a wildcard pattern, so no command could name this session alone. Choose a name without them.";

    /// <summary>A name as a message shows it: a NUL written as \0, since it would cut the message short in C-string and XML consumers.</summary>
    public static string Printable(string name) => name.Replace("\0", "\\0", StringComparison.Ordinal);

    public static bool HasPatternCharacters(string name) => name.IndexOfAny(PatternCharacters) >= 0;

    /// <summary>
    /// The case-insensitive pattern of a -Name value, or the error for that value when it is no valid
    /// pattern (WildcardPattern only finds out when first matching, with an exception of its own).
    /// </summary>
    public static bool TryPattern(string name, [NotNullWhen(true)] out WildcardPattern? pattern, [NotNullWhen(false)] out ErrorRecord? error)
    {
        if (name.Contains('\0', StringComparison.Ordinal))
        {
            // WildcardPattern matches 'a\0b' as if it were 'ab': Disconnect-Aequor -Name would close a session it does not name.
            pattern = null;
            error = Errors.Create(ErrorIds.InvalidParameter, ErrorCategory.InvalidArgument,
                $"-Name '{Printable(name)}' holds a NUL character (U+0000), which no session name holds: nothing was matched.", name);
            return false;
        }

        pattern = WildcardPattern.Get(name, WildcardOptions.IgnoreCase);
        try
        {
            _ = pattern.IsMatch(string.Empty);
            error = null;
            return true;
        }
        catch (WildcardPatternException)
        {
            pattern = null;
            error = Errors.Create(ErrorIds.InvalidParameter, ErrorCategory.InvalidArgument,
                $"-Name '{name}' is not a valid wildcard pattern (a '[' without its ']'?). Session names hold none of * ? [ ] `, so leave them out to name one session, or correct the pattern.", name);
            return false;
        }
    }

    /// <summary>How a name is typed as an argument: bare when that parses back to it, else single-quoted.</summary>
    public static string AsArgument(string name) => name.All(c => char.IsLetterOrDigit(c) || c is '_' or '-' or '.') && !name.StartsWith('-')
        ? name
        : $"'{CodeGeneration.EscapeSingleQuotedStringContent(name)}'";
}
