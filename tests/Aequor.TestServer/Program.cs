using System.Runtime.InteropServices;
using Aequor.TestServer;

// Starts the test database for a whole run (xunit, Pester, the demo), prints its connection
// strings, and removes it when told to stop, when stdin closes (the parent died) or on a signal.
var maxConnections = 100;
for (var i = 0; i < args.Length; i++)
{
    if (args[i] == "--max-connections" && i + 1 < args.Length && int.TryParse(args[++i], out var m))
    {
        maxConnections = m;
    }
}

TestPostgres server;
try
{
    server = await TestPostgres.StartAsync(maxConnections);
}
catch (TestServerException ex)
{
    await Console.Error.WriteLineAsync(ex.Message);
    return 2;
}

var stop = new TaskCompletionSource();
using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, ctx => { ctx.Cancel = true; stop.TrySetResult(); });
using var intr = PosixSignalRegistration.Create(PosixSignal.SIGINT, ctx => { ctx.Cancel = true; stop.TrySetResult(); });
using var hup = PosixSignalRegistration.Create(PosixSignal.SIGHUP, ctx => { ctx.Cancel = true; stop.TrySetResult(); });

Console.WriteLine($"{TestPostgres.ConnectionVariable}={server.AdminConnectionString}");
Console.WriteLine($"{TestPostgres.AppConnectionVariable}={server.AppConnectionString}");
Console.WriteLine($"AEQUOR_TEST_SOURCE={server.Source}");
if (server.Cluster is not null)
{
    Console.WriteLine($"AEQUOR_TEST_PGDATA={server.Cluster.DataDir}");
}

Console.WriteLine("READY");
await Console.Out.FlushAsync();

_ = Task.Run(async () =>
{
    // EOF (null) means the parent is gone: clean up rather than leave a server behind.
    while (await Console.In.ReadLineAsync() is { } line)
    {
        if (line.Trim() == "stop")
        {
            break;
        }
    }

    stop.TrySetResult();
});

await stop.Task;
await server.DisposeAsync();
Console.WriteLine("STOPPED");
return 0;
