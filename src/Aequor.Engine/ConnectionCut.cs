using System.Net.Sockets;
using System.Reflection;
using Npgsql;

namespace Aequor.Engine;

/// <summary>
/// Cuts a connection from another thread while one of its calls is blocked on the socket: NpgsqlConnection.Close is
/// not safe beside a running call and would itself wait on the server. Shutting the socket down fails the blocked
/// send or read at once; Npgsql then breaks the connection as for a network failure, and the server rolls back what
/// it ran. Npgsql keeps its socket to its connector, reached by reflection as <see cref="ServerCancel"/> does (Npgsql
/// is pinned, a test cuts a COPY this way); were it gone, nothing is cut and the call ends at its timeout, as before.
/// </summary>
internal static class ConnectionCut
{
    private static readonly FieldInfo? SocketField = NpgsqlConnector.Type?.GetField("_socket", NpgsqlConnector.Members);

    /// <summary>Whether the socket was shut down. Never throws.</summary>
    public static bool TryCut(NpgsqlConnection connection)
    {
        try
        {
            if (NpgsqlConnector.Of(connection) is not { } connector || SocketField?.GetValue(connector) is not Socket socket)
            {
                return false;
            }

            socket.Shutdown(SocketShutdown.Both);
            return true;
        }
#pragma warning disable CA1031 // A socket already closed is cut; anything else leaves the call to its timeout.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            return ex is ObjectDisposedException or SocketException;
        }
    }
}
