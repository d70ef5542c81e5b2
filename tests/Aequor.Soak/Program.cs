using System.Globalization;
using Aequor.Soak;
using Aequor.TestServer;

// `worker …`: one worker process (started by the soak itself).
// `[seconds]`: the soak, against AEQUOR_TEST_CONNECTION or a throwaway cluster; exit 1 when a promise broke.
if (args.Length > 0 && args[0] == "worker")
{
    return await SoakWorker.RunAsync(args);
}

var seconds = args.Length > 0 ? int.Parse(args[0], CultureInfo.InvariantCulture) : 150;
if (seconds is < 5 or > 180)
{
    Console.Error.WriteLine("The soak runs 5 to 180 seconds.");
    return 2;
}

await using var server = await TestPostgres.StartAsync();
var report = await SoakRun.RunAsync(new SoakOptions
{
    AdminConnectionString = server.AdminConnectionString,
    AppConnectionString = server.AppConnectionString,
    Duration = TimeSpan.FromSeconds(seconds),
});
Console.WriteLine(report);
return report.Problems.Count == 0 ? 0 : 1;
