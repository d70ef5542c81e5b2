using System.Globalization;
using Aequor.Engine;
using Npgsql;

namespace Aequor.Bench;

/// <summary>
/// The child process of the storm: opens N connections, each with a lease of its own that expires soon,
/// prints READY and waits on stdin. The parent then freezes it with SIGSTOP (<see cref="FrozenHolder"/>):
/// its backends stay idle on the server, like a worker paused by its platform, until the reaper takes them.
/// Settings come through the environment so no password shows in the process list.
/// </summary>
internal static class StormHolder
{
    public const string Mode = "holder";
    public const string ConnectionVariable = "AEQUOR_HOLDER_CONNECTION";
    public const string SecretVariable = "AEQUOR_HOLDER_SECRET";
    public const string ServiceVariable = "AEQUOR_HOLDER_SERVICE";
    public const string CountVariable = "AEQUOR_HOLDER_COUNT";
    public const string LeaseMsVariable = "AEQUOR_HOLDER_LEASE_MS";

    public static async Task<int> RunAsync()
    {
        var connectionString = Required(ConnectionVariable);
        var signer = new LeaseSigner(Required(SecretVariable));
        var service = Required(ServiceVariable);
        var count = int.Parse(Required(CountVariable), CultureInfo.InvariantCulture);
        var leaseMs = int.Parse(Required(LeaseMsVariable), CultureInfo.InvariantCulture);

        var held = new List<(NpgsqlDataSource Source, NpgsqlConnection Connection)>();
        var gate = new SemaphoreSlim(8);
        var opened = await Task.WhenAll(Enumerable.Range(0, count).Select(async _ =>
        {
            await gate.WaitAsync();
            try
            {
                var expiry = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() + leaseMs;
                var builder = new NpgsqlConnectionStringBuilder(connectionString)
                {
                    Pooling = false,
                    ApplicationName = signer.Sign(service, InstanceIds.Generate(), expiry),
                };
                var source = NpgsqlDataSource.Create(builder);
                return (source, await source.OpenConnectionAsync());
            }
            finally
            {
                gate.Release();
            }
        }));
        held.AddRange(opened);
        Console.WriteLine("READY");
        await Console.Out.FlushAsync();

        // Frozen here by the parent; EOF (the parent is gone) or any line ends it.
        _ = await Console.In.ReadLineAsync();
        foreach (var (source, connection) in held)
        {
            await connection.DisposeAsync();
            await source.DisposeAsync();
        }

        return 0;
    }

    private static string Required(string name) =>
        Environment.GetEnvironmentVariable(name) is { Length: > 0 } value
            ? value
            : throw new InvalidOperationException($"The holder needs {name} in its environment.");
}
