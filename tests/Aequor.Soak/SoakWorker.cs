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
        Aequor.Engine.Reaper.ReapResult? lastReap = null;
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
            await using (client)
            {
                // A worker's life on one client: a few statements with pauses, some past the lease.
                var statements = rng.Next(1, 4);
                for (var i = 0; i < statements && !stop.IsCancellationRequested; i++)
                {
                    seq++;
                    var leaseValid = client.LeaseExpiresAt is not { } exp || exp > DateTimeOffset.UtcNow;
                    var sw = Stopwatch.StartNew();
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
                        Console.WriteLine($"ERROR {worker} {seq} {ex.GetType().Name} {state} live={killedWhileLive} {sw.ElapsedMilliseconds}ms {ex.Message.Replace('\n', ' ')}");
                        if (ex is not AequorClientException)
                        {
                            Console.WriteLine("STACK " + ex.ToString().Replace('\n', '|'));
                        }
                    }

                    if (client.LastReap is { } reap && !ReferenceEquals(reap, lastReap))
                    {
                        lastReap = reap;
                        foreach (var c in reap.Candidates.Where(c => reap.KilledPids.Contains(c.Pid)))
                        {
                            var ageMs = (reap.DatabaseNowMs ?? 0) - c.ExpiresAtMs;
                            Console.WriteLine($"KILLED {c.Pid} {c.ApplicationName} expiredMsAgo={ageMs} idle={c.IdleSeconds:0.0} state={c.State.Replace(' ', '_')}");
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
}
