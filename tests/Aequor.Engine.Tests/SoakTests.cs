using Aequor.Soak;
using Xunit.Abstractions;

namespace Aequor.Engine.Tests;

/// <summary>
/// A short soak in every test run (the full one is `build.ps1 Soak`, ≤ 3 min): worker processes
/// SIGKILLed, SIGSTOPped and idling past their lease while reapers run beside a same-named service
/// with another secret and plain clients. Every promise is checked against the database.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class SoakTests(PostgresFixture db, ITestOutputHelper output)
{
    [Fact]
    public async Task Forty_seconds_of_dying_workers_break_no_promise()
    {
        var report = await SoakRun.RunAsync(new SoakOptions
        {
            AdminConnectionString = db.AdminConnectionString,
            AppConnectionString = db.AppConnectionString,
            Duration = TimeSpan.FromSeconds(40),
            Workers = 5,
            Seed = 20261127,
        });
        output.WriteLine(report.ToString());

        Assert.Empty(report.Problems);
        Assert.True(report.SigKills + report.SigStops > 0, "no fate was applied");
        Assert.True(report.ReaperKills > 0, "no zombie was reaped: the soak proved nothing about the reaper");
        Assert.Equal(0, report.DuplicateKeys);
        Assert.Equal(0, report.NeighbourTerminations);
    }
}
