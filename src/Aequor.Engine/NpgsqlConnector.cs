using System.Reflection;
using Npgsql;

namespace Aequor.Engine;

/// <summary>
/// Npgsql's connector behind a connection: the physical connection, which keeps what Npgsql hands out nowhere public
/// (the transaction status, the socket, the cancel request, the last command's count, the failed statement). Reached
/// by reflection in one place; Npgsql is pinned (Directory.Packages.props), and each member read has a test, so a
/// rename fails the build's tests, not a user. Each reader says what it does when a member is gone.
/// </summary>
internal static class NpgsqlConnector
{
    /// <summary>Members of any visibility, as Npgsql's internal types declare them.</summary>
    public const BindingFlags Members = BindingFlags.Instance | BindingFlags.NonPublic | BindingFlags.Public;

    /// <summary><c>NpgsqlConnection.Connector</c>; null were it gone.</summary>
    public static readonly PropertyInfo? Property = typeof(NpgsqlConnection).GetProperty("Connector", Members);

    /// <summary>The connector's type; null were it gone.</summary>
    public static Type? Type => Property?.PropertyType;

    /// <summary>The connector of <paramref name="connection"/>; null when it has none (closed, broken) or the member is gone.</summary>
    public static object? Of(NpgsqlConnection connection) => Property?.GetValue(connection);
}
