namespace Aequor.PowerShell;

/// <summary>Replaces a session's password and coordination secrets with *** in any text bound for the user.</summary>
internal sealed class Redactor
{
    public static readonly Redactor None = new([]);

    private readonly string[] _secrets;

    public Redactor(IEnumerable<string?> secrets)
    {
        // Longest first, so a secret containing another is replaced whole. Very short strings (a
        // one-character password) would turn every message into asterisks: they cannot be told apart.
        _secrets = secrets.Where(s => !string.IsNullOrEmpty(s) && s.Length >= 3)
            .Select(s => s!)
            .Distinct(StringComparer.Ordinal)
            .OrderByDescending(s => s.Length)
            .ToArray();
    }

    public string Redact(string? text)
    {
        if (string.IsNullOrEmpty(text))
        {
            return string.Empty;
        }

        foreach (var secret in _secrets)
        {
            text = text.Replace(secret, "***", StringComparison.Ordinal);
        }

        return text;
    }
}
