using System.Linq.Expressions;
using System.Reflection;
using Npgsql;

namespace Aequor.Engine;

/// <summary>
/// The server's cancel request for whatever a connection is running, sent through a connection of its own. A statement
/// gets it from <c>NpgsqlCommand.Cancel</c>; a COPY that is finishing (the server still inserting the rows: a slow
/// trigger, a big index) has no command, and <c>NpgsqlCopyTextWriter.Cancel</c> only works before its end is sent.
/// Npgsql keeps the request to its connector, so it is reached by reflection, as <see cref="ServerTransaction"/> is:
/// Npgsql is pinned, and a test cancels a finishing COPY, so a rename fails the build's tests, not a user; were the
/// member gone, no cancel would be sent and the COPY would end by itself, as before.
/// </summary>
internal static class ServerCancel
{
    private const BindingFlags Internal = BindingFlags.Instance | BindingFlags.NonPublic | BindingFlags.Public;

    private static readonly Func<NpgsqlConnection, bool>? Send = CompileSender();

    private static Func<NpgsqlConnection, bool>? CompileSender()
    {
        try
        {
            var connectorProperty = typeof(NpgsqlConnection).GetProperty("Connector", Internal);
            var perform = connectorProperty?.PropertyType.GetMethod("PerformPostgresCancellation", Internal, Type.EmptyTypes);
            if (connectorProperty is null || perform is null || perform.ReturnType != typeof(bool))
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
                    Expression.Constant(false),
                    Expression.Call(connector, perform)));
            return Expression.Lambda<Func<NpgsqlConnection, bool>>(body, connection).Compile();
        }
#pragma warning disable CA1031 // Without the member, no cancel is sent and nothing else changes.
        catch (Exception)
#pragma warning restore CA1031
        {
            return null;
        }
    }

    /// <summary>Whether the request went out (not whether the server cancelled anything). Never throws.</summary>
    public static bool TrySend(NpgsqlConnection connection)
    {
        try
        {
            return Send is not null && Send(connection);
        }
#pragma warning disable CA1031 // A cancel that cannot be sent leaves the COPY to end by itself.
        catch (Exception)
#pragma warning restore CA1031
        {
            return false;
        }
    }
}
