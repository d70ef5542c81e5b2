using System.Diagnostics;
using Aequor.Engine;

namespace Aequor.Soak;

/// <summary>
/// One worker process: connect → a keyed insert → a fate of its own (clean end, idle past the lease),
/// until its stdin closes. The orchestrator adds the fates a process cannot choose: SIGKILL, SIGSTOP.
/// Every line it prints is a record the orchestrator parses.
/// </summary>
internal static class SoakWorker
{
    public static async Task<int> RunAsync(string[] args)
    {
        var conn = args[1];
        var secret = args[2];
        var service = args[3];
        var worker = int.Parse(args[4], System.Globalization.CultureInfo.InvariantCulture);
        var ttl = int.Parse(args[5], System.Globalization.CultureInfo.InvariantCulture);
        var minIdle = int.Parse(args[6], System.Globalization.CultureInfo.InvariantCulture);
        var unhandled = 0;
        AppDomain.CurrentDomain.UnhandledException += (_, e) =>
        {
            Interlocked.Increment(ref unhandled);
            Console.WriteLine($"UNHANDLED {e.ExceptionObject.GetType().Name}");
        };
        TaskScheduler.UnobservedTaskException += (_, e) =>
        {
            Interlocked.Increment(ref unhandled);
            Console.WriteLine($"UNOBSERVED {e.Exception.InnerException?.GetType().Name}");
        };

        var stop = new CancellationTokenSource();
        _ = Task.Run(async () =>
        {
            while (await Console.In.ReadLineAsync() is not null)
            {
            }

            await stop.CancelAsync();
        });

        var rng = new Random(worker * 7919 + Environment.ProcessId);
        var seq = 0;
        while (!stop.IsCancellationRequested)
        {
            var client = new AequorClient(new AequorClientOptions
            {
                ConnectionString = conn,
                CoordinationSecret = secret,
                ServiceName = service,
                LeaseTtlMs = ttl,
                HeartbeatSoftRemainingMs = ttl / 3,
                HeartbeatHardWaitRemainingMs = ttl / 10,
                ReaperRunProbability = 1.0,
                ReaperCooldownMs = 500,
                MinConnectionIdleTimeSec = minIdle,
                MaxIdleConnectionsToKill = 10,
                MaxConnectRetryTimeMs = 10_000,
                MaxQueryRetryTimeMs = 10_000,
            });
            var timeline = new Timeline();
            var printed = new HashSet<Aequor.Engine.Reaper.ReapResult>(ReferenceEqualityComparer.Instance);
            client.OnReconnect += (_, e) => timeline.Add($"connect-start(retries={e.Retries},delayMs={e.Delay.TotalMilliseconds:0}{(e.Error is null ? string.Empty : ",after=" + StateOf(e.Error))})");
            client.OnConnect += (_, e) => timeline.Add($"connected(pid={e.BackendPid})");
            client.OnClientDead += (_, e) => timeline.Add($"dead(pid={e.BackendPid},{e.Source}{(e.Error is null ? string.Empty : "," + StateOf(e.Error))})");
            client.OnQueryRetry += (_, e) => timeline.Add("statement-retry");
            client.OnReap += (_, e) =>
            {
                timeline.Add($"reaper-pass(locked={e.Locked},killed={e.Killed})");
                // Printed as the pass ends: a worker killed or frozen later still leaves its decisions behind.
                if (client.LastReap is { } reap)
                {
                    lock (printed)
                    {
                        if (printed.Add(reap))
                        {
                            PrintKills(worker, reap);
                        }
                    }
                }
            };
            await using (client)
            {
                // A worker's life on one client: a few statements with pauses, some past the lease.
                var statements = rng.Next(1, 4);
                for (var i = 0; i < statements && !stop.IsCancellationRequested; i++)
                {
                    seq++;
                    var leaseValid = client.LeaseExpiresAt is not { } exp || exp > DateTimeOffset.UtcNow;
                    var sw = Stopwatch.StartNew();
                    // A fresh client's first statement connects first: its connect starts with the call.
                    timeline.Start(client.BackendPid is null
                        ? $"call-start(instance={client.InstanceId}),connect-start(first)"
                        : $"call-start(instance={client.InstanceId},pid={client.BackendPid},leaseExpiresAtMs={client.LeaseExpiresAt?.ToUnixTimeMilliseconds()})");
                    try
                    {
                        await client.ExecuteNonQueryAsync(
                            new AequorStatement("INSERT INTO soak_writes(worker, seq, pid) VALUES ($1, $2, pg_backend_pid())")
                            {
                                PositionalParameters = [worker, seq],
                            },
                            CancellationToken.None);
                        Console.WriteLine($"ACK {worker} {seq} {client.BackendPid}");
                    }
                    catch (AequorOutcomeUnknownException)
                    {
                        Console.WriteLine($"UNKNOWN {worker} {seq}");
                    }
                    catch (Exception ex)
                    {
                        var state = (ex as AequorClientException)?.SqlState ?? (ex as Npgsql.PostgresException)?.SqlState ?? "-";
                        // A live worker (lease valid when the statement began) must never be cut off by a reaper.
                        var killedWhileLive = leaseValid && state is "57P01";
                        // The engine raises nothing as the statement leaves: it goes out after the last connected / reaper-pass.
                        timeline.Add($"error({state})");
                        Console.WriteLine($"TIMELINE {worker} {seq} {timeline}");
                        Console.WriteLine($"ERROR {worker} {seq} {ex.GetType().Name} {state} live={killedWhileLive} {sw.ElapsedMilliseconds}ms {ex.Message.Replace('\n', ' ')}");
                        if (ex is not AequorClientException)
                        {
                            Console.WriteLine("STACK " + ex.ToString().Replace('\n', '|'));
                        }
                    }

                    // Fate within the process: short pause, or idle past the lease (a frozen-looking worker).
                    var idlePastLease = rng.NextDouble() < 0.25;
                    var pause = idlePastLease ? ttl + (minIdle * 1000) + rng.Next(500, 1500) : rng.Next(50, 400);
                    try
                    {
                        await Task.Delay(pause, stop.Token);
                    }
                    catch (OperationCanceledException)
                    {
                    }
                }
            }
        }

        GC.Collect();
        GC.WaitForPendingFinalizers();
        Console.WriteLine($"DONE {worker} unhandled={unhandled}");
        return unhandled == 0 ? 0 : 3;
    }

    private static string StateOf(Exception ex) =>
        (ex as AequorClientException)?.SqlState ?? (ex as Npgsql.PostgresException)?.SqlState ?? (ex.InnerException is { } inner ? StateOf(inner) : ex.GetType().Name);

    /// <summary>
    /// One line per backend a pass killed, with what the pass judged it on: the lease (and its expiry), the database
    /// clock of the pass, the backend's state and when it entered it (now − idle), and the worker whose client ran it.
    /// </summary>
    private static void PrintKills(int worker, Aequor.Engine.Reaper.ReapResult reap)
    {
        var nowMs = reap.DatabaseNowMs ?? 0;
        foreach (var c in reap.Candidates.Where(c => reap.KilledPids.Contains(c.Pid)))
        {
            var stateChangeMs = nowMs - (long)(c.IdleSeconds * 1000);
            Console.WriteLine($"KILLED {c.Pid} {c.ApplicationName} expiredMsAgo={nowMs - c.ExpiresAtMs} idle={c.IdleSeconds:0.0} state={c.State.Replace(' ', '_')} passNowMs={nowMs} expiresAtMs={c.ExpiresAtMs} stateChangeMs={stateChangeMs} by={worker}");
        }
    }

    /// <summary>What happened to one statement's call, each entry stamped with the client's clock (Unix ms).</summary>
    private sealed class Timeline
    {
        private readonly Lock _gate = new();
        private readonly List<string> _entries = [];

        public void Start(string first)
        {
            lock (_gate)
            {
                _entries.Clear();
            }

            Add(first);
        }

        public void Add(string entry)
        {
            var at = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
            lock (_gate)
            {
                // The orchestrator splits a line on spaces.
                _entries.Add($"{at}:{entry.Replace(' ', '_')}");
            }
        }

        public override string ToString()
        {
            lock (_gate)
            {
                return string.Join(' ', _entries);
            }
        }
    }
}
