namespace Aequor.Engine;

/// <summary>A statement that is only a COMMIT or a ROLLBACK of the transaction block (not of a savepoint or a prepared one).</summary>
internal enum TransactionControl
{
    None,
    Commit,
    Rollback,
}

internal static class TransactionControlText
{
    private static readonly System.Text.RegularExpressions.Regex CommitWord = new(@"\b(COMMIT|END)\b", System.Text.RegularExpressions.RegexOptions.IgnoreCase | System.Text.RegularExpressions.RegexOptions.CultureInvariant);

    /// <summary>COMMIT AND CHAIN: the block ends and a new one begins at once.</summary>
    public static bool Chains(string commandText) =>
        commandText.Contains("CHAIN", StringComparison.OrdinalIgnoreCase) && !commandText.Contains("NO CHAIN", StringComparison.OrdinalIgnoreCase);

    /// <summary>
    /// Whether the text could end the transaction with a commit (a COMMIT or END anywhere, a batch ending in one
    /// included). Errs towards yes (a CASE ... END): the cost of a false yes is "outcome unknown" for a lost
    /// transaction, the cost of a false no a committed transaction reported as rolled back.
    /// </summary>
    public static bool MayCommit(string commandText) => CommitWord.IsMatch(commandText);

    public static TransactionControl Of(string commandText)
    {
        var text = commandText.Trim().TrimEnd(';').Trim();
        if (text.Contains(';', StringComparison.Ordinal) || text.Contains("--", StringComparison.Ordinal) || text.Contains("/*", StringComparison.Ordinal))
        {
            return TransactionControl.None;
        }

        var words = text.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
        if (words.Length == 0 || words.Any(w => w.Equals("TO", StringComparison.OrdinalIgnoreCase) || w.Equals("PREPARED", StringComparison.OrdinalIgnoreCase)))
        {
            return TransactionControl.None;
        }

        var rest = words.Skip(1).All(w => w.ToUpperInvariant() is "WORK" or "TRANSACTION" or "AND" or "NO" or "CHAIN");
        if (!rest)
        {
            return TransactionControl.None;
        }

        return words[0].ToUpperInvariant() switch
        {
            "COMMIT" or "END" => TransactionControl.Commit,
            "ROLLBACK" or "ABORT" => TransactionControl.Rollback,
            _ => TransactionControl.None,
        };
    }
}
