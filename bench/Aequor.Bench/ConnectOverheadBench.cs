using System.Diagnostics;
using System.Globalization;
using Aequor.Engine;
using Aequor.TestServer;
using Npgsql;

namespace Aequor.Bench;

// What a short-lived worker pays per invocation: a new connection and its first statement. AequorClient (every
// option at its default, reaper on) against raw Npgsql, both with one data source for the process, as each
// reuses its type catalogue (raw: one NpgsqlDataSource, Pooling=false; Aequor: its shared data source), each
// call = connect + a primary-key lookup in a 1,000-row table + close. Interleaved rounds alternating which goes
// first; the ratio is the median of per-round ratios. No target: the figure says what Aequor's connect costs
// (its lease, the database clock, the catalogue's fingerprint and the database's load in one more round trip,
// whose catalogue lookups a fresh backend pays for — docs/benchmarks.notes.md).
//   dotnet run -c Release --project bench/Aequor.Bench -- connect [rounds]
internal static class ConnectOverheadBench
{
    private const int PerRound = 10;

    public static async Task<int> RunAsync(int rounds)
    {
        await using var server = await TestPostgres.StartAsync();
        Console.WriteLine($"server: {server.Source}; {Environment.ProcessorCount} cores; {rounds} rounds of {PerRound} connects each side");

        var settings = new NpgsqlConnectionStringBuilder(server.AppConnectionString) { Pooling = false, ApplicationName = "aequor-bench-raw" };
        await using var rawSource = new NpgsqlDataSourceBuilder(settings.ConnectionString).Build();
        var options = new AequorClientOptions
        {
            ConnectionString = server.AppConnectionString,
            CoordinationSecret = "bench-coordination-secret-0123456789",
            ServiceName = "aequor-bench-connect",
        };
        const string Lookup = "SELECT name FROM bench_items WHERE id = 42";
        await using (var setup = await rawSource.OpenConnectionAsync())
        {
            await using var create = new NpgsqlCommand(
                "CREATE TABLE IF NOT EXISTS bench_items (id int PRIMARY KEY, name text NOT NULL); INSERT INTO bench_items SELECT g, 'item ' || g FROM generate_series(1, 1000) g ON CONFLICT DO NOTHING",
                setup);
            await create.ExecuteNonQueryAsync();
        }

        var lookup = new AequorStatement(Lookup);

        async Task Raw()
        {
            await using var connection = await rawSource.OpenConnectionAsync();
            await using var cmd = new NpgsqlCommand(Lookup, connection);
            _ = await cmd.ExecuteScalarAsync();
        }

        async Task Client()
        {
            await using var client = new AequorClient(options);
            _ = await client.ExecuteScalarAsync(lookup, default);
        }

        static async Task<double> Time(Func<Task> body)
        {
            var sw = Stopwatch.StartNew();
            for (var i = 0; i < PerRound; i++)
            {
                await body();
            }

            return sw.Elapsed.TotalMilliseconds / PerRound;
        }

        // Warm-up: JIT, tiered compilation, the type catalogues.
        for (var w = 0; w < 3; w++)
        {
            await Time(Raw);
            await Time(Client);
        }

        var raw = new List<double>();
        var aequor = new List<double>();
        for (var r = 0; r < rounds; r++)
        {
            if (r % 2 == 1)
            {
                aequor.Add(await Time(Client));
                raw.Add(await Time(Raw));
            }
            else
            {
                raw.Add(await Time(Raw));
                aequor.Add(await Time(Client));
            }
        }

        var perRound = raw.Zip(aequor, (a, b) => b / a).ToList();
        var ratio = BenchMath.Median(perRound);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"connect + lookup: raw {BenchMath.Median(raw):0.00} ms, Aequor {BenchMath.Median(aequor):0.00} ms (medians); per-round ratio median {ratio:0.000}, range {perRound.Min():0.000}–{perRound.Max():0.000}"));
        BenchLine.Write("connect.first_statement", BenchMath.Median(aequor), "ms/connect", BenchMath.Median(raw), "-", null, ratio);
        return 0;
    }
}
