namespace Aequor.Engine;

/// <summary>
/// One statement (or several separated by semicolons) with its parameters: positional (<c>$1</c>, <c>$2</c> …)
/// or named (<c>@name</c>), never both. Values are sent as parameters, never spliced into the text.
/// </summary>
public sealed class AequorStatement
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

        CommandText = commandText;
    }

    public string CommandText { get; }

    public IReadOnlyList<object?>? PositionalParameters { get; init; }

    public IReadOnlyDictionary<string, object?>? NamedParameters { get; init; }

    /// <summary>The caller states the statement may run twice: retried even after it was sent.</summary>
    public bool Idempotent { get; init; }

    /// <summary>Seconds; null keeps the client's.</summary>
    public int? CommandTimeout { get; init; }
}
