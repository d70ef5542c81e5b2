using System.Diagnostics;
using System.Globalization;
using Aequor.Engine;
using Aequor.TestServer;
using Npgsql;

namespace Aequor.Bench;

// Statement overhead of AequorClient against raw Npgsql on the same server with the same connection settings
// (one physical connection each, pooling off). Both run interleaved in one process, round by round, alternating
// which goes first, so drift in the machine's load hits both alike. Target: ratio ≤ 1.02.
//   dotnet run -c Release --project bench/Aequor.Bench [-- overhead [rounds]]
// The database: AEQUOR_TEST_CONNECTION (a superuser connection string) when set, else a throwaway local cluster.

// Many short rounds rather than a few long ones: on a shared machine the load drifts within seconds, and
// the median of per-round ratios of neighbouring measurements is what stays stable.
internal static class StatementOverheadBench
{
    public const string Target = "ratio<=1.02";

    public static async Task<int> RunAsync(int rounds)
    {
        const int SelectOnePerRound = 200;
        const int ThousandRowsPerRound = 10;
        const string ThousandRows = "SELECT g, 'row ' || g, g * 1.5 FROM generate_series(1, 1000) g";

        await using var server = await TestPostgres.StartAsync();
        Console.WriteLine($"server: {server.Source}; {Environment.ProcessorCount} cores; {rounds} rounds");

        var settings = new NpgsqlConnectionStringBuilder(server.AppConnectionString) { Pooling = false, ApplicationName = "aequor-bench-raw" };
        await using var rawSource = new NpgsqlDataSourceBuilder(settings.ConnectionString).Build();
        await using var raw = await rawSource.OpenConnectionAsync();
        await using var client = new AequorClient(new AequorClientOptions
        {
            ConnectionString = server.AppConnectionString,
            CoordinationSecret = "bench-coordination-secret-0123456789",
            ServiceName = "aequor-bench",
            Reaper = false,
        });
        await client.ConnectAsync(default);

        async Task RawSelectOne(int n)
        {
            for (var i = 0; i < n; i++)
            {
                await using var cmd = new NpgsqlCommand("SELECT 1", raw);
                _ = await cmd.ExecuteScalarAsync();
            }
        }

        var selectOne = new AequorStatement("SELECT 1");
        async Task ClientSelectOne(int n)
        {
            for (var i = 0; i < n; i++)
            {
                _ = await client.ExecuteScalarAsync(selectOne, default);
            }
        }

        async Task RawRows(int n)
        {
            for (var i = 0; i < n; i++)
            {
                await using var cmd = new NpgsqlCommand(ThousandRows, raw);
                await using var reader = await cmd.ExecuteReaderAsync();
                while (await reader.ReadAsync())
                {
                    for (var f = 0; f < reader.FieldCount; f++)
                    {
                        _ = reader.IsDBNull(f) ? null : reader.GetValue(f);
                    }
                }
            }
        }

        var rows = new AequorStatement(ThousandRows);
        async Task ClientRows(int n)
        {
            for (var i = 0; i < n; i++)
            {
                await using var reader = await client.ExecuteReaderAsync(rows, default);
                while (await reader.ReadAsync(default))
                {
                    for (var f = 0; f < reader.FieldCount; f++)
                    {
                        _ = reader.GetValue(f);
                    }
                }
            }
        }

        static async Task<double> Time(Func<int, Task> body, int n)
        {
            var sw = Stopwatch.StartNew();
            await body(n);
            return sw.Elapsed.TotalMicroseconds / n;
        }

        // Warm-up: JIT, tiered compilation, the server's caches.
        for (var w = 0; w < 20; w++)
        {
            await RawSelectOne(SelectOnePerRound);
            await ClientSelectOne(SelectOnePerRound);
            await RawRows(ThousandRowsPerRound);
            await ClientRows(ThousandRowsPerRound);
        }

        var results = new Dictionary<string, (List<double> Raw, List<double> Client)>
        {
            ["SELECT 1"] = ([], []),
            ["1,000 rows"] = ([], []),
        };

        for (var r = 0; r < rounds; r++)
        {
            var clientFirst = r % 2 == 1;
            foreach (var (name, rawBody, clientBody, n) in new[]
                     {
                         ("SELECT 1", (Func<int, Task>)RawSelectOne, (Func<int, Task>)ClientSelectOne, SelectOnePerRound),
                         ("1,000 rows", RawRows, ClientRows, ThousandRowsPerRound),
                     })
            {
                double rawUs, clientUs;
                if (clientFirst)
                {
                    clientUs = await Time(clientBody, n);
                    rawUs = await Time(rawBody, n);
                }
                else
                {
                    rawUs = await Time(rawBody, n);
                    clientUs = await Time(clientBody, n);
                }

                results[name].Raw.Add(rawUs);
                results[name].Client.Add(clientUs);
            }
        }

        Console.WriteLine();
        Console.WriteLine($"{"statement",-12} {"raw µs (median)",16} {"client µs (median)",19} {"ratio (medians)",16} {"ratio (per-round median)",25} {"ratio (best rounds)",20}");
        foreach (var (name, (rawTimes, clientTimes)) in results)
        {
            var perRound = rawTimes.Zip(clientTimes, (a, b) => b / a).ToList();
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{name,-12} {BenchMath.Median(rawTimes),16:0.0} {BenchMath.Median(clientTimes),19:0.0} {BenchMath.Median(clientTimes) / BenchMath.Median(rawTimes),16:0.000} {BenchMath.Median(perRound),25:0.000} {clientTimes.Min() / rawTimes.Min(),20:0.000}"));
        }

        Console.WriteLine();
        Console.WriteLine($"client counters: {client.Counters}");

        // Per-round median ratio: the figure the target is judged on (see above).
        foreach (var (name, key) in new[] { ("SELECT 1", "overhead.select1"), ("1,000 rows", "overhead.rows1000") })
        {
            var (rawTimes, clientTimes) = results[name];
            var ratio = BenchMath.Median(rawTimes.Zip(clientTimes, (a, b) => b / a).ToList());
            BenchLine.Write(key, BenchMath.Median(clientTimes), "us/stmt", BenchMath.Median(rawTimes), Target, ratio <= 1.02, ratio);
        }

        return 0;
    }
}
