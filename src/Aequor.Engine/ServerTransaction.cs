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
    private const BindingFlags Internal = NpgsqlConnector.Members;

    // Read once per statement: compiled once, not reflected each time. -1: no connector.
    private static readonly Func<NpgsqlConnection, int>? ReadStatus = CompileReader();

    private static Func<NpgsqlConnection, int>? CompileReader()
    {
        try
        {
            var connectorProperty = NpgsqlConnector.Property;
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
