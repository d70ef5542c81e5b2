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

    private static readonly PropertyInfo? Connector = typeof(NpgsqlConnection).GetProperty("Connector", Internal);
    private static readonly PropertyInfo? Status = Connector?.PropertyType.GetProperty("TransactionStatus", Internal);

    public static ServerTransactionStatus Of(NpgsqlConnection connection)
    {
        try
        {
            if (Status is null || Connector!.GetValue(connection) is not { } connector || Status.GetValue(connector) is not { } status)
            {
                return ServerTransactionStatus.Unknown;
            }

            // The protocol's own bytes: 'I' idle, 'T' in a transaction block, 'E' in a failed one.
            return Convert.ToInt32(status, System.Globalization.CultureInfo.InvariantCulture) switch
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

        var rest = words.Skip(1).All(w => w.Equals("WORK", StringComparison.OrdinalIgnoreCase) || w.Equals("TRANSACTION", StringComparison.OrdinalIgnoreCase));
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
