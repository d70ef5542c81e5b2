using System.Linq.Expressions;
using System.Reflection;
using Npgsql;

namespace Aequor.Engine;

/// <summary>Where the server's session is, as its last ReadyForQuery said.</summary>
internal enum ServerTransactionStatus
{
    /// <summary>Not readable (an Npgsql without the member): nothing is concluded from it.</summary>
    Unknown,
    Idle,
    InBlock,
    Failed,
}

/// <summary>
/// The transaction status PostgreSQL reports after every statement, which Npgsql keeps but does not publish. The
/// client needs it for transactions opened in SQL (<c>BEGIN</c> in a statement): without it a reconnect between
/// two calls would silently split such a transaction, its first half rolled back, its second committed.
/// Npgsql is pinned (Directory.Packages.props) and a test reads the status, so a rename fails the build's tests,
/// not a user; were the member gone, the status would read Unknown and nothing would change.
/// </summary>
internal static class ServerTransaction
{
    private const BindingFlags Internal = BindingFlags.Instance | BindingFlags.NonPublic | BindingFlags.Public;

    // Read once per statement: compiled once, not reflected each time. -1: no connector.
    private static readonly Func<NpgsqlConnection, int>? ReadStatus = CompileReader();

    private static Func<NpgsqlConnection, int>? CompileReader()
    {
        try
        {
            var connectorProperty = typeof(NpgsqlConnection).GetProperty("Connector", Internal);
            var statusProperty = connectorProperty?.PropertyType.GetProperty("TransactionStatus", Internal);
            if (connectorProperty is null || statusProperty is null)
            {
                return null;
            }

            var connection = Expression.Parameter(typeof(NpgsqlConnection), "connection");
            var connector = Expression.Variable(connectorProperty.PropertyType, "connector");
            var body = Expression.Block(
                [connector],
                Expression.Assign(connector, Expression.Property(connection, connectorProperty)),
                Expression.Condition(
                    Expression.Equal(connector, Expression.Constant(null, connectorProperty.PropertyType)),
                    Expression.Constant(-1),
                    Expression.Convert(Expression.Property(connector, statusProperty), typeof(int))));
            return Expression.Lambda<Func<NpgsqlConnection, int>>(body, connection).Compile();
        }
#pragma warning disable CA1031 // Without the member, the status is Unknown and nothing changes.
        catch (Exception)
#pragma warning restore CA1031
        {
            return null;
        }
    }

    public static ServerTransactionStatus Of(NpgsqlConnection connection)
    {
        try
        {
            if (ReadStatus is null)
            {
                return ServerTransactionStatus.Unknown;
            }

            // The protocol's own bytes: 'I' idle, 'T' in a transaction block, 'E' in a failed one.
            return ReadStatus(connection) switch
            {
                'I' => ServerTransactionStatus.Idle,
                'T' => ServerTransactionStatus.InBlock,
                'E' => ServerTransactionStatus.Failed,
                _ => ServerTransactionStatus.Unknown,
            };
        }
#pragma warning disable CA1031 // A status that cannot be read changes nothing.
        catch (Exception)
#pragma warning restore CA1031
        {
            return ServerTransactionStatus.Unknown;
        }
    }
}

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
