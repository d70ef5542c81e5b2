using Aequor.Engine.Reaper;
using Aequor.TestServer;
using Npgsql;
using Xunit.Abstractions;

namespace Aequor.Engine.Tests.Reaper;

/// <summary>
/// What a pass sends, read from the server's own statement log on a cluster of its own: BEGIN rides
/// with the lock+scan, the snapshot refresh and the kill (which waits for the exits) ride with the COMMIT,
/// and nothing follows.
/// </summary>
public sealed class ReaperWireTests(ITestOutputHelper output)
{
    [Fact]
    public async Task A_pass_sends_begin_scan_then_kill_commit_and_nothing_else()
    {
        await using var server = await TestPostgres.StartLocalAsync(30);
        await using var kit = new ReaperKit(server.AdminConnectionString, server.AppConnectionString);
        await using (var admin = await kit.OpenObserverAsync())
        {
            await ReaperKit.ScalarAsync(admin, "ALTER SYSTEM SET log_statement = 'all'");
            await ReaperKit.ScalarAsync(admin, "SELECT pg_reload_conf()");
        }

        await Task.Delay(300);
        var zombies = new List<NpgsqlConnection>();
        for (var i = 0; i < 10; i++)
        {
            zombies.Add(await kit.ZombieAsync());
        }

        const string reaperName = "wire-reaper";
        var reaper = await kit.OpenAsync(reaperName);
        var result = await ReaperPass.RunAsync(reaper, kit.Options());
        Assert.Equal(10, result.KilledPids.Count);
        await kit.AssertExitedAsync(result);
        Assert.Equal(2, result.RoundTrips);
        await ReaperKit.ScalarAsync(reaper, "SELECT 'end-of-pass'");

        // Simple-protocol statements log as "statement: …", extended-protocol ones as "execute <name>: …".
        var logged = new System.Text.RegularExpressions.Regex(@" (?:statement|execute [^:]*): (.*)$");
        var statements = server.Cluster!.ReadLog()
            .Split('\n')
            .Where(l => l.Contains(" " + reaperName + " ", StringComparison.Ordinal))
            .Select(l => logged.Match(l))
            .Where(m => m.Success)
            .Select(m => m.Groups[1].Value.Trim().TrimEnd(';'))
            .SkipWhile(s => !s.StartsWith("BEGIN", StringComparison.Ordinal)) // Npgsql's own start-up queries come first
            .ToList();
        output.WriteLine(string.Join(Environment.NewLine, statements));

        Assert.Equal("BEGIN TRANSACTION ISOLATION LEVEL READ COMMITTED", statements[0]);
        Assert.StartsWith("SELECT g.locked", statements[1], StringComparison.Ordinal);
        Assert.Equal(ReaperSql.FreshActivity, statements[2]);
        // The kill and the wait for the killed backends to exit are one statement (ReaperSql.Kill).
        Assert.StartsWith("WITH t AS (", statements[3], StringComparison.Ordinal);
        Assert.Equal("COMMIT", statements[4]);
        Assert.Equal("SELECT 'end-of-pass'", statements[5]);
        Assert.Equal(6, statements.Count);

        // Pass durations on this machine, for the record.
        var durations = new List<long>();
        for (var round = 0; round < 10; round++)
        {
            for (var i = 0; i < 10; i++)
            {
                await kit.ZombieAsync();
            }

            var r = await ReaperPass.RunAsync(reaper, kit.Options());
            Assert.Equal(10, r.KilledPids.Count);
            durations.Add(r.DurationMs);
        }

        for (var i = 0; i < 10; i++)
        {
            durations.Add((await ReaperPass.RunAsync(reaper, kit.Options())).DurationMs);
        }

        output.WriteLine($"pass with 10 kills: median {Median(durations.Take(10))} ms, max {durations.Take(10).Max()} ms; empty pass: median {Median(durations.Skip(10))} ms");
    }

    private static long Median(IEnumerable<long> values)
    {
        var sorted = values.Order().ToArray();
        return sorted[sorted.Length / 2];
    }
}
