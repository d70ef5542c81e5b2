namespace Aequor.Engine;

/// <summary>
/// One statement (or several separated by semicolons) with its parameters: positional (<c>$1</c>, <c>$2</c> …)
/// or named (<c>@name</c>), never both. Values are sent as parameters, never spliced into the text.
/// </summary>
public sealed partial class AequorStatement
{
    public AequorStatement(string commandText)
    {
        ArgumentNullException.ThrowIfNull(commandText);
        if (commandText.IndexOf('\0', StringComparison.Ordinal) is var nul and >= 0)
        {
            // PostgreSQL answers a NUL in SQL text with a protocol violation and drops the connection: in a transaction
            // the transaction would be lost for a typo the client can see.
            throw new ArgumentException($"The statement text holds a NUL character (U+0000) at character {nul + 1}: PostgreSQL takes none in SQL text, and sending one breaks the connection. Pass such values as parameters.", nameof(commandText));
        }

        if (CopyStreamText.Refusal(commandText) is { } copy)
        {
            throw new ArgumentException(copy, nameof(commandText));
        }

        if (IndexOfUnpairedSurrogate(commandText) is var lone and >= 0)
        {
            // Npgsql cannot encode it and fails half-way through writing the message: the connection breaks, and a
            // statement that never ran would be reported as one whose outcome is unknown.
            throw new ArgumentException($"The statement text holds an unpaired UTF-16 surrogate (U+{(int)commandText[lone]:X4}) at character {lone + 1}: it is not valid Unicode, and sending it breaks the connection. Remove or replace it.", nameof(commandText));
        }

        CommandText = commandText;
    }

    /// <summary>
    /// Where the text holds half of a surrogate pair (a string cut in the middle of an emoji), or -1: one vectorised
    /// pass, no allocation — it runs on every statement's text and every text parameter.
    /// </summary>
    public static int IndexOfUnpairedSurrogate(ReadOnlySpan<char> text)
    {
        var from = 0;
        while (true)
        {
            var found = text[from..].IndexOfAnyInRange('\uD800', '\uDFFF');
            if (found < 0)
            {
                return -1;
            }

            var i = from + found;
            if (!char.IsHighSurrogate(text[i]) || i + 1 >= text.Length || !char.IsLowSurrogate(text[i + 1]))
            {
                return i;
            }

            from = i + 2;
        }
    }

    /// <summary>
    /// The highest <c>$n</c> placeholder of <paramref name="commandText"/> outside quotes, comments and dollar-quoted
    /// bodies (0 for none), or null when the text cannot be read to its end or numbers its own parameters (PREPARE,
    /// CREATE FUNCTION or PROCEDURE): nothing is judged from it then. Fewer positional values than that is a
    /// Bind the server answers with 08P01, after which Npgsql drops the connection (an open transaction with it): a
    /// caller checks before sending.
    /// </summary>
    public static int? HighestPlaceholder(string commandText)
    {
        ArgumentNullException.ThrowIfNull(commandText);
        return DeclaresItsOwnParameters(commandText) ? null : StatementShape.HighestPlaceholder(commandText);
    }

    /// <summary>
    /// PREPARE p(int) AS SELECT $1, and a CREATE FUNCTION or PROCEDURE body (BEGIN ATOMIC … $1 … END), number
    /// parameters of their own: the statement itself takes none, whatever $n it holds.
    /// </summary>
    private static bool DeclaresItsOwnParameters(string commandText) =>
        StatementShape.SkipBlank(commandText, 0) is var start and >= 0 && OwnParameters().IsMatch(commandText, start);

    [System.Text.RegularExpressions.GeneratedRegex(@"\G(?:PREPARE|CREATE\s+(?:OR\s+REPLACE\s+)?(?:FUNCTION|PROCEDURE))\b", System.Text.RegularExpressions.RegexOptions.IgnoreCase | System.Text.RegularExpressions.RegexOptions.CultureInvariant)]
    private static partial System.Text.RegularExpressions.Regex OwnParameters();

    public string CommandText { get; }

    public IReadOnlyList<object?>? PositionalParameters { get; init; }

    public IReadOnlyDictionary<string, object?>? NamedParameters { get; init; }

    /// <summary>The caller states the statement may run twice: retried even after it was sent.</summary>
    public bool Idempotent { get; init; }

    /// <summary>Seconds; null keeps the client's.</summary>
    public int? CommandTimeout { get; init; }
}
