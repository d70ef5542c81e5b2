using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using Aequor.Engine;
using Npgsql;

namespace Aequor.Soak;

/// <summary>
/// The bounded soak: K worker processes live and die under random fates while reapers run;
/// beside them a same-named service with another secret and plain clients, idle and active.
/// Afterwards every promise is checked against the database itself.
/// </summary>
public sealed class SoakRun
{
    private readonly SoakOptions _o;
    private readonly ConcurrentDictionary<int, WorkerProcess> _workers = new();
    private readonly ConcurrentQueue<string> _lines = new();
    private readonly SoakReport _report = new();
    private int _nextWorker;

    public SoakRun(SoakOptions options) => _o = options;

    public static async Task<SoakReport> RunAsync(SoakOptions options, CancellationToken ct = default) =>
        await new SoakRun(options).RunAsync(ct);

    private async Task<SoakReport> RunAsync(CancellationToken ct)
    {
        var sw = Stopwatch.StartNew();
        var rng = new Random(_o.Seed);
        await ExecAsync(_o.AppConnectionString, """
            DROP TABLE IF EXISTS soak_writes;
            CREATE TABLE soak_writes (id bigserial PRIMARY KEY, worker int NOT NULL, seq int NOT NULL, pid int NOT NULL, at timestamptz NOT NULL DEFAULT now());
            CREATE INDEX ON soak_writes (worker, seq);
            """);

        var neighbours = await OpenNeighboursAsync();
        using var stopActive = new CancellationTokenSource();
        var neighbourErrors = 0;
        var activeLoops = neighbours.Where(n => n.Active).Select(n => Task.Run(async () =>
        {
            while (!stopActive.IsCancellationRequested)
            {
                try
                {
                    await using var cmd = new NpgsqlCommand("SELECT pg_sleep(0.2)", n.Connection);
                    await cmd.ExecuteNonQueryAsync();
                    await Task.Delay(150);
                }
                catch (Exception)
                {
                    Interlocked.Increment(ref neighbourErrors);
                    return;
                }
            }
        })).ToList();

        try
        {
            for (var i = 0; i < _o.Workers; i++)
            {
                StartWorker();
            }

            var stopped = new ConcurrentDictionary<int, DateTime>();
            var deadline = DateTime.UtcNow + _o.Duration;
            while (DateTime.UtcNow < deadline && !ct.IsCancellationRequested)
            {
                await Task.Delay(rng.Next(1_000, 2_500), ct);
                foreach (var (pid, until) in stopped)
                {
                    if (DateTime.UtcNow >= until && stopped.TryRemove(pid, out _))
                    {
                        Signals.Send(pid, Signals.SigCont);
                        WorkerOf(pid)?.Continued(DateTime.UtcNow);
                    }
                }

                var live = _workers.Values.Where(w => !w.Process.HasExited && !stopped.ContainsKey(w.Process.Id)).ToList();
                if (live.Count == 0)
                {
                    continue;
                }

                var victim = live[rng.Next(live.Count)];
                var fate = rng.NextDouble();
                if (fate < 0.25)
                {
                    victim.Killed = true;
                    Signals.Send(victim.Process.Id, Signals.SigKill);
                    _report.SigKills++;
                    StartWorker();
                }
                else if (fate < 0.85)
                {
                    Signals.Send(victim.Process.Id, Signals.SigStop);
                    victim.Stopped(DateTime.UtcNow);
                    stopped[victim.Process.Id] = DateTime.UtcNow.AddMilliseconds(rng.Next(_o.LeaseTtlMs + (_o.MinIdleSec * 1000) + 500, 9_000));
                    _report.SigStops++;
                }
            }

            foreach (var pid in stopped.Keys)
            {
                Signals.Send(pid, Signals.SigCont);
                WorkerOf(pid)?.Continued(DateTime.UtcNow);
            }
        }
        finally
        {
            await StopWorkersAsync();
            await stopActive.CancelAsync();
            await Task.WhenAll(activeLoops);
        }

        await VerifyAsync(neighbours, neighbourErrors);
        foreach (var n in neighbours)
        {
            await n.Connection.DisposeAsync();
        }

        _report.Elapsed = sw.Elapsed;
        return _report;
    }

    private sealed record Neighbour(string Kind, NpgsqlConnection Connection, int Pid, bool Active);

    private async Task<List<Neighbour>> OpenNeighboursAsync()
    {
        // Same service name, another secret, a lease long expired: the most tempting backend there is.
        var foreign = new LeaseSigner(_o.NeighbourSecret);
        var expired = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() - 60_000;
        var list = new List<Neighbour>();
        foreach (var (kind, app, active) in new[]
        {
            ("other-secret idle", foreign.Sign(_o.Service, InstanceIds.Generate(), expired), false),
            ("other-secret active", foreign.Sign(_o.Service, InstanceIds.Generate(), expired), true),
            ("plain idle", "psql", false),
            ("plain active", "reporting", true),
        })
        {
            var b = new NpgsqlConnectionStringBuilder(_o.AppConnectionString) { Pooling = false, ApplicationName = app };
            var c = new NpgsqlConnection(b.ConnectionString);
            await c.OpenAsync();
            list.Add(new Neighbour(kind, c, c.ProcessID, active));
        }

        return list;
    }

    private void StartWorker()
    {
        var id = Interlocked.Increment(ref _nextWorker);
        var psi = new ProcessStartInfo("dotnet")
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in new[]
        {
            typeof(SoakRun).Assembly.Location, "worker", _o.AppConnectionString, _o.Secret, _o.Service,
            id.ToString(CultureInfo.InvariantCulture), _o.LeaseTtlMs.ToString(CultureInfo.InvariantCulture), _o.MinIdleSec.ToString(CultureInfo.InvariantCulture),
        })
        {
            psi.ArgumentList.Add(a);
        }

        var p = Process.Start(psi)!;
        var w = new WorkerProcess(id, p);
        p.OutputDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                _lines.Enqueue(FrozenDuring(w, e.Data));
            }
        };
        p.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                _lines.Enqueue("STDERR " + e.Data);
            }
        };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        _workers[id] = w;
        _report.WorkersStarted++;
    }

    private async Task StopWorkersAsync()
    {
        foreach (var w in _workers.Values.Where(w => !w.Process.HasExited))
        {
            Signals.Send(w.Process.Id, Signals.SigCont);
            try
            {
                w.Process.StandardInput.Close();
            }
            catch (IOException)
            {
            }
        }

        using var grace = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        foreach (var w in _workers.Values)
        {
            try
            {
                await w.Process.WaitForExitAsync(grace.Token);
            }
            catch (OperationCanceledException)
            {
                w.Process.Kill(entireProcessTree: true);
                if (!w.Killed)
                {
                    _report.Problems.Add($"worker {w.Id} did not stop within 20 s of being asked");
                }
            }

            if (!w.Killed && w.Process.HasExited && w.Process.ExitCode != 0)
            {
                _report.WorkersExitedBadly++;
            }
        }
    }

    private async Task VerifyAsync(List<Neighbour> neighbours, int neighbourErrors)
    {
        var acked = new HashSet<(int, int)>();
        var killedPids = new List<(int Pid, string App, long ExpiredMsAgo)>();
        var kills = new List<string[]>();
        var timelines = new Dictionary<(string Worker, string Seq), string[]>();
        var cutOff = new List<string[]>();
        foreach (var line in _lines)
        {
            var f = line.Split(' ');
            switch (f[0])
            {
                case "ACK":
                    acked.Add((int.Parse(f[1], CultureInfo.InvariantCulture), int.Parse(f[2], CultureInfo.InvariantCulture)));
                    break;
                case "UNKNOWN":
                    _report.UnknownOutcomes++;
                    break;
                case "ERROR":
                    var kind = $"{f[3]} {f[4]}";
                    if (_report.ErrorSamples.Count < 5)
                    {
                        _report.ErrorSamples.Add(string.Join(' ', f.Skip(3)));
                    }

                    _report.ErrorsByKind[kind] = _report.ErrorsByKind.GetValueOrDefault(kind) + 1;
                    if (f[3] is not ("AequorOutcomeUnknownException" or "AequorConnectFailedException"))
                    {
                        _report.Problems.Add("a worker saw an unexpected error: " + string.Join(' ', f.Skip(3)));
                    }

                    if (f[5] == "live=True")
                    {
                        _report.KilledWhileLive++;
                        cutOff.Add(f);
                    }
                    else if (f[5] == "live=frozen")
                    {
                        _report.KilledWhileFrozen++;
                        cutOff.Add(f);
                    }

                    break;
                case "KILLED":
                    killedPids.Add((int.Parse(f[1], CultureInfo.InvariantCulture), f[2], long.Parse(f[3]["expiredMsAgo=".Length..], CultureInfo.InvariantCulture)));
                    kills.Add(f);
                    break;
                case "TIMELINE":
                    timelines[(f[1], f[2])] = f[3..];
                    break;
                case "STACK":
                    _report.ErrorSamples.Add(line);
                    break;
                case "UNHANDLED" or "UNOBSERVED":
                    _report.UnhandledInWorkers++;
                    break;
                case "STDERR":
                    _report.Problems.Add("worker wrote to stderr: " + line[7..Math.Min(line.Length, 200)]);
                    break;
            }
        }

        foreach (var f in cutOff)
        {
            var worker = _workers.GetValueOrDefault(int.Parse(f[1], CultureInfo.InvariantCulture));
            _report.CutOffs.Add(SoakCutOff.Describe(f, timelines.GetValueOrDefault((f[1], f[2])), kills, worker is null ? null : worker.DescribeFrozen));
        }

        _report.AckedInserts = acked.Count;
        _report.ReaperKills = killedPids.Count;
        var signer = new LeaseSigner(_o.Secret);
        var neighbourPids = neighbours.Select(n => n.Pid).ToHashSet();
        _report.NeighbourTerminations = killedPids.Count(k => neighbourPids.Contains(k.Pid));
        foreach (var k in killedPids.Where(k => !signer.Verify(k.App) || k.ExpiredMsAgo <= 0))
        {
            _report.Problems.Add($"pid {k.Pid} was killed without an expired lease of ours ({k.App}, expired {k.ExpiredMsAgo} ms ago)");
        }

        await using var admin = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(_o.AdminConnectionString) { Pooling = false }.ConnectionString);
        await admin.OpenAsync();
        _report.RowsWritten = (int)(long)(await Scalar(admin, "SELECT count(*) FROM soak_writes"))!;
        _report.DuplicateKeys = (int)(long)(await Scalar(admin, "SELECT count(*) FROM (SELECT 1 FROM soak_writes GROUP BY worker, seq HAVING count(*) > 1) d"))!;
        var present = new HashSet<(int, int)>();
        await using (var cmd = new NpgsqlCommand("SELECT worker, seq FROM soak_writes", admin))
        await using (var r = await cmd.ExecuteReaderAsync())
        {
            while (await r.ReadAsync())
            {
                present.Add((r.GetInt32(0), r.GetInt32(1)));
            }
        }

        _report.AckedMissing = acked.Count(a => !present.Contains(a));

        // The neighbours are the same backends as at the start, and still answer.
        foreach (var n in neighbours)
        {
            var alive = (long)(await Scalar(admin, $"SELECT count(*) FROM pg_stat_activity WHERE pid = {n.Pid}"))! == 1;
            if (!alive)
            {
                _report.NeighbourTerminations++;
                _report.Problems.Add($"the {n.Kind} backend {n.Pid} is gone");
                continue;
            }

            try
            {
                await using var cmd = new NpgsqlCommand("SELECT 1", n.Connection);
                await cmd.ExecuteScalarAsync();
            }
            catch (Exception ex)
            {
                _report.Problems.Add($"the {n.Kind} connection fails afterwards: {ex.Message}");
            }
        }

        _report.NeighbourErrors = neighbourErrors;

        // Workers are gone (stopped or killed): the kernel closed their sockets, so no backend of ours may remain.
        var leftover = 0L;
        for (var i = 0; i < 50; i++)
        {
            leftover = (long)(await Scalar(admin, $"SELECT count(*) FROM pg_stat_activity WHERE left(application_name, {_o.Service.Length + 3}) = 's={_o.Service};' AND pid <> ALL(ARRAY[{string.Join(',', neighbourPids)}])"))!;
            if (leftover == 0)
            {
                break;
            }

            await Task.Delay(100);
        }

        _report.LeftoverBackends = (int)leftover;

        Check(_report.DuplicateKeys == 0, "a key was written twice");
        Check(_report.AckedMissing == 0, "an acknowledged insert is missing");
        Check(_report.KilledWhileLive == 0, "a live worker was terminated");
        Check(_report.NeighbourTerminations == 0, "a neighbour or plain client was terminated");
        Check(_report.NeighbourErrors == 0, "an active neighbour saw an error");
        Check(_report.UnhandledInWorkers == 0, "a worker had an unhandled exception");
        Check(_report.WorkersExitedBadly == 0, "a worker exited with an error");
        Check(_report.LeftoverBackends == 0, "backends of the service remained after every worker ended");
        Check(_report.AckedInserts > 0, "no insert was acknowledged: the soak did no work");
    }

    private void Check(bool ok, string problem)
    {
        if (!ok)
        {
            _report.Problems.Add(problem);
        }
    }

    private static async Task ExecAsync(string cs, string sql)
    {
        await using var c = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(cs) { Pooling = false }.ConnectionString);
        await c.OpenAsync();
        await using var cmd = new NpgsqlCommand(sql, c);
        await cmd.ExecuteNonQueryAsync();
    }

    private static async Task<object?> Scalar(NpgsqlConnection c, string sql)
    {
        await using var cmd = new NpgsqlCommand(sql, c);
        return await cmd.ExecuteScalarAsync();
    }

    private WorkerProcess? WorkerOf(int pid) => _workers.Values.FirstOrDefault(w => w.Process.Id == pid);

    /// <summary>
    /// A worker counts its statement live when its lease was valid as it began (a fresh client's first statement has
    /// none yet), but only the harness knows it froze the worker meanwhile: a statement that spanned a SIGSTOP is a
    /// frozen worker's, which the reapers may end by design. Marked so here, as its line arrives (a 2 s margin for
    /// the line's own delay), and counted apart.
    /// </summary>
    private static string FrozenDuring(WorkerProcess worker, string line)
    {
        var f = line.Split(' ');
        if (f.Length > 6 && f[0] == "ERROR" && f[5] == "live=True" && f[6].EndsWith("ms", StringComparison.Ordinal)
            && long.TryParse(f[6][..^2], NumberStyles.None, CultureInfo.InvariantCulture, out var elapsedMs))
        {
            var now = DateTime.UtcNow;
            if (worker.WasFrozenWithin(now.AddMilliseconds(-elapsedMs - 2_000), now))
            {
                f[5] = "live=frozen";
                return string.Join(' ', f);
            }
        }

        return line;
    }

    private sealed class WorkerProcess(int id, Process process)
    {
        private readonly Lock _gate = new();
        private readonly List<(DateTime From, DateTime To)> _frozen = [];
        private DateTime? _stoppedAt;

        public int Id { get; } = id;

        public Process Process { get; } = process;

        public bool Killed { get; set; }

        public void Stopped(DateTime at)
        {
            lock (_gate)
            {
                _stoppedAt = at;
            }
        }

        public void Continued(DateTime at)
        {
            lock (_gate)
            {
                if (_stoppedAt is { } from)
                {
                    _frozen.Add((from, at));
                    _stoppedAt = null;
                }
            }
        }

        /// <summary>The SIGSTOP windows overlapping [from, to], each as relative times.</summary>
        public string DescribeFrozen(DateTime from, DateTime to, Func<long, string> relative)
        {
            static long Ms(DateTime t) => new DateTimeOffset(DateTime.SpecifyKind(t, DateTimeKind.Utc)).ToUnixTimeMilliseconds();
            lock (_gate)
            {
                var windows = _frozen.Where(x => x.From <= to && x.To >= from).Select(x => $"{relative(Ms(x.From))} to {relative(Ms(x.To))}").ToList();
                if (_stoppedAt is { } since && since <= to)
                {
                    windows.Add($"{relative(Ms(since))} (still stopped)");
                }

                return windows.Count == 0 ? "none" : string.Join(", ", windows);
            }
        }

        public bool WasFrozenWithin(DateTime from, DateTime to)
        {
            lock (_gate)
            {
                return (_stoppedAt is { } since && since <= to) || _frozen.Any(x => x.From <= to && x.To >= from);
            }
        }
    }
}
