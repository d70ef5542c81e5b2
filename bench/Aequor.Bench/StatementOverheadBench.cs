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
// A control runs in the same rounds: raw Npgsql again, on a second connection of the same data source. Its
// ratio to the first is what identical code reads as in this run (A/A): a client ratio inside that spread is
// not an overhead the bench can see.
// A second control is raw Npgsql on a data source of its own built with the client's settings (array nullability
// per instance, a 63-character application_name): the client's connection is not one of the raw data source's, and
// in rounds this short a connection's data source and caches being the ones the previous body warmed or not reads
// as a few per cent (seen in a probe: the same reader loop on another data source 0.98–1.06 of the first). The
// client's ratio is judged against raw; this control says how much of it any other data source would show.
internal static class StatementOverheadBench
{
    public const string Target = "ratio<=1.02";

    private static double PerRound(List<double> baseline, List<double> measured) =>
        BenchMath.Median(baseline.Zip(measured, (a, b) => b / a).ToList());

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
        await using var control = await rawSource.OpenConnectionAsync();
        var ownSettings = new NpgsqlConnectionStringBuilder(settings.ConnectionString)
        {
            ArrayNullabilityMode = ArrayNullabilityMode.PerInstance,
            ApplicationName = new string('o', 63),
        };
        await using var ownSource = new NpgsqlDataSourceBuilder(ownSettings.ConnectionString).Build();
        await using var own = await ownSource.OpenConnectionAsync();
        await using var client = new AequorClient(new AequorClientOptions
        {
            ConnectionString = server.AppConnectionString,
            CoordinationSecret = "bench-coordination-secret-0123456789",
            ServiceName = "aequor-bench",
            Reaper = false,
        });
        await client.ConnectAsync(default);

        static async Task RawSelectOneOn(NpgsqlConnection connection, int n)
        {
            for (var i = 0; i < n; i++)
            {
                await using var cmd = new NpgsqlCommand("SELECT 1", connection);
                _ = await cmd.ExecuteScalarAsync();
            }
        }

        Task RawSelectOne(int n) => RawSelectOneOn(raw, n);
        Task ControlSelectOne(int n) => RawSelectOneOn(control, n);
        Task OwnSelectOne(int n) => RawSelectOneOn(own, n);

        var selectOne = new AequorStatement("SELECT 1");
        async Task ClientSelectOne(int n)
        {
            for (var i = 0; i < n; i++)
            {
                _ = await client.ExecuteScalarAsync(selectOne, default);
            }
        }

        static async Task RawRowsOn(NpgsqlConnection connection, int n)
        {
            for (var i = 0; i < n; i++)
            {
                await using var cmd = new NpgsqlCommand(ThousandRows, connection);
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

        Task RawRows(int n) => RawRowsOn(raw, n);
        Task ControlRows(int n) => RawRowsOn(control, n);
        Task OwnRows(int n) => RawRowsOn(own, n);

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
            await ControlSelectOne(SelectOnePerRound);
            await OwnSelectOne(SelectOnePerRound);
            await ClientSelectOne(SelectOnePerRound);
            await RawRows(ThousandRowsPerRound);
            await ControlRows(ThousandRowsPerRound);
            await OwnRows(ThousandRowsPerRound);
            await ClientRows(ThousandRowsPerRound);
        }

        var results = new Dictionary<string, (List<double> Raw, List<double> Control, List<double> Client, List<double> Own)>
        {
            ["SELECT 1"] = ([], [], [], []),
            ["1,000 rows"] = ([], [], [], []),
        };

        for (var r = 0; r < rounds; r++)
        {
            foreach (var (name, rawBody, controlBody, clientBody, ownBody, n) in new[]
                     {
                         ("SELECT 1", (Func<int, Task>)RawSelectOne, (Func<int, Task>)ControlSelectOne, (Func<int, Task>)ClientSelectOne, (Func<int, Task>)OwnSelectOne, SelectOnePerRound),
                         ("1,000 rows", RawRows, ControlRows, ClientRows, OwnRows, ThousandRowsPerRound),
                     })
            {
                // Each body goes first, second, third and last in turn, so none always runs on caches another warmed.
                var bodies = new[] { rawBody, controlBody, clientBody, ownBody };
                var times = new double[bodies.Length];
                for (var k = 0; k < bodies.Length; k++)
                {
                    var which = (r + k) % bodies.Length;
                    times[which] = await Time(bodies[which], n);
                }

                results[name].Raw.Add(times[0]);
                results[name].Control.Add(times[1]);
                results[name].Client.Add(times[2]);
                results[name].Own.Add(times[3]);
            }
        }

        Console.WriteLine();
        Console.WriteLine($"{"statement",-12} {"raw µs (median)",16} {"client µs (median)",19} {"ratio (per-round median)",25} {"ratio (best rounds)",20} {"control A/A (per-round median)",31} {"own data source",16}");
        foreach (var (name, (rawTimes, controlTimes, clientTimes, ownTimes)) in results)
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{name,-12} {BenchMath.Median(rawTimes),16:0.0} {BenchMath.Median(clientTimes),19:0.0} {PerRound(rawTimes, clientTimes),25:0.000} {clientTimes.Min() / rawTimes.Min(),20:0.000} {PerRound(rawTimes, controlTimes),31:0.000} {PerRound(rawTimes, ownTimes),16:0.000}"));
        }

        Console.WriteLine();
        Console.WriteLine($"client counters: {client.Counters}");

        // Per-round median ratio: the figure the target is judged on (see above); the control beside it.
        foreach (var (name, key) in new[] { ("SELECT 1", "overhead.select1"), ("1,000 rows", "overhead.rows1000") })
        {
            var (rawTimes, controlTimes, clientTimes, ownTimes) = results[name];
            var ratio = PerRound(rawTimes, clientTimes);
            BenchLine.Write(key, BenchMath.Median(clientTimes), "us/stmt", BenchMath.Median(rawTimes), Target, ratio <= 1.02, ratio);
            BenchLine.Write(key + ".control", BenchMath.Median(controlTimes), "us/stmt", BenchMath.Median(rawTimes), "raw vs raw (A/A)", null, PerRound(rawTimes, controlTimes));
            BenchLine.Write(key + ".control_own_source", BenchMath.Median(ownTimes), "us/stmt", BenchMath.Median(rawTimes), "raw, client's settings, own data source", null, PerRound(rawTimes, ownTimes));
        }

        return 0;
    }
}
