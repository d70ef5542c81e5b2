using System.Net.Sockets;
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
    private const BindingFlags Internal = NpgsqlConnector.Members;

    // Plain reflection, not a compiled delegate: it runs once per cancelled load, never on a hot path.
    private static readonly MethodInfo? Perform = NpgsqlConnector.Type?.GetMethod("PerformPostgresCancellation", Internal, Type.EmptyTypes);

    private static readonly PropertyInfo? Performed = NpgsqlConnector.Type?.GetProperty("PostgresCancellationPerformed", Internal);

    private static readonly ConstructorInfo? SenderConstructor = NpgsqlConnector.Type?.GetConstructor(Internal, [NpgsqlConnector.Type]);

    private static readonly MethodInfo? SendRequest = NpgsqlConnector.Type?.GetMethod("DoCancelRequest", Internal, [typeof(int), typeof(int)]);

    private static readonly PropertyInfo? ProcessId = NpgsqlConnector.Type?.GetProperty("BackendProcessId", Internal);

    private static readonly FieldInfo? SecretKey = NpgsqlConnector.Type?.GetField("_backendSecretKey", Internal);

    /// <summary>Whether the request went out (not whether the server cancelled anything). Never throws.</summary>
    public static bool TrySend(NpgsqlConnection connection)
    {
        try
        {
            return NpgsqlConnector.Of(connection) is { } connector && Perform?.Invoke(connector, null) is true;
        }
#pragma warning disable CA1031 // A cancel that cannot be sent leaves the COPY to end by itself.
        catch (Exception)
#pragma warning restore CA1031
        {
            return false;
        }
    }

    /// <summary>
    /// The cancel request as Npgsql's own sends it (a connector of its own, the same host, port and encryption), but
    /// not noted on the connection's connector. Noted, it makes Npgsql read the server's 57014 as its own timeout,
    /// and a COPY ended with CopyFail then stays open on Npgsql's side, refusing every later statement; and the
    /// connector's cancel lock stays held while the request connects, which holds up cutting the connection (the
    /// break takes that lock) for as long as a connect may take. Here the COPY's end reads the server's error, as
    /// it expects, and the connection goes on. Were Npgsql's members gone: <see cref="TrySend"/>, then
    /// <see cref="Forget"/>. Whether the request went out; never throws.
    /// </summary>
    public static bool TrySendAside(NpgsqlConnection connection)
    {
        try
        {
            if (NpgsqlConnector.Of(connection) is not { } connector)
            {
                return false;
            }

            if (SenderConstructor is null || SendRequest is null || ProcessId is null || SecretKey is null)
            {
                return TrySend(connection) && Forget(connection);
            }

            if (ProcessId.GetValue(connector) is not int pid || pid == 0 || SecretKey.GetValue(connector) is not int key)
            {
                return false;
            }

            try
            {
                SendRequest.Invoke(SenderConstructor.Invoke([connector]), [pid, key]);
            }
            catch (TargetInvocationException ex) when (ex.InnerException?.InnerException is SocketException { SocketErrorCode: SocketError.ConnectionReset })
            {
                // The server closing the request's connection at once, as Npgsql also counts as sent.
            }

            return true;
        }
#pragma warning disable CA1031 // A cancel that cannot be sent: the caller cuts the connection instead.
        catch (Exception)
#pragma warning restore CA1031
        {
            return false;
        }
    }

    /// <summary>
    /// Unnotes a cancel request <see cref="TrySend"/> sent (see <see cref="TrySendAside"/>); Npgsql's next call does
    /// the same. Never throws; false when Npgsql's member was not found.
    /// </summary>
    public static bool Forget(NpgsqlConnection connection)
    {
        try
        {
            if (NpgsqlConnector.Of(connection) is not { } connector || Performed is null)
            {
                return false;
            }

            Performed.SetValue(connector, false);
            return true;
        }
#pragma warning disable CA1031 // Not forgotten: the COPY's end fails, and the connection is dropped instead.
        catch (Exception)
#pragma warning restore CA1031
        {
            return false;
        }
    }
}
