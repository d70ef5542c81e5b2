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

    // Plain reflection, not a compiled delegate: it runs once per cancelled load, never on a hot path.
    private static readonly PropertyInfo? ConnectorProperty = typeof(NpgsqlConnection).GetProperty("Connector", Internal);

    private static readonly MethodInfo? Perform = ConnectorProperty?.PropertyType.GetMethod("PerformPostgresCancellation", Internal, Type.EmptyTypes);

    /// <summary>Whether the request went out (not whether the server cancelled anything). Never throws.</summary>
    public static bool TrySend(NpgsqlConnection connection)
    {
        try
        {
            return ConnectorProperty?.GetValue(connection) is { } connector && Perform?.Invoke(connector, null) is true;
        }
#pragma warning disable CA1031 // A cancel that cannot be sent leaves the COPY to end by itself.
        catch (Exception)
#pragma warning restore CA1031
        {
            return false;
        }
    }
}
