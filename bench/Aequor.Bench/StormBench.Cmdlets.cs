using Aequor.TestServer;

namespace Aequor.Bench;

/// <summary>
/// The storm's cmdlet side: the burst made by 30 runspaces of one fresh pwsh (bench/StormRunspaces.ps1, driven by
/// <see cref="StormRunspaceBurst"/>), once in the storm and once, as a control, with no storm at all.
/// </summary>
internal static partial class StormBench
{
    /// <summary>Where the cmdlet side's pwsh, staged module and script are (build.ps1 Bench passes them); null skips that side.</summary>
    private sealed record CmdletSide(string PwshDll, string Module, string Script);

    private static CmdletSide? CmdletSideFrom(string[] args)
    {
        string? Value(string name)
        {
            var i = Array.IndexOf(args, name);
            return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
        }

        var (pwsh, module, script) = (Value("--pwsh-dll"), Value("--module"), Value("--script"));
        if (pwsh is null || module is null || script is null)
        {
            Console.WriteLine("storm: no --pwsh-dll/--module/--script: the burst through the cmdlets (30 runspaces) is skipped");
            return null;
        }

        foreach (var path in new[] { pwsh, module, script })
        {
            if (!File.Exists(path))
            {
                throw new FileNotFoundException($"storm: {path} does not exist.", path);
            }
        }

        return new CmdletSide(pwsh, module, script);
    }

    /// <summary>
    /// The same storm, fresh, with the burst made by 30 runspaces of one pwsh (bench/StormRunspaces.ps1), each
    /// Connect-Aequor + Invoke-AequorQuery -As Scalar 'select 1'. The pwsh is started and its runspaces have imported
    /// the module before the holder is frozen, so the clock covers the connects, not the imports.
    /// </summary>
    private static async Task<StormResult> RunCmdletStormAsync(TestPostgres server, CmdletSide side, CancellationToken ct)
    {
        await WaitForNoClientsAsync(server.AdminConnectionString, ct);
        var result = new StormResult(Side.Cmdlets);
        await using (var holder = await FrozenHolder.StartAsync(server.AppConnectionString, Secret, Service, Frozen, HolderLeaseMs, ct))
        {
            var burst = await StormRunspaceBurst.StartAsync(side.PwshDll, side.Module, side.Script, server.AppConnectionString, Service, Secret, Burst, MinIdleSec, ct);
            try
            {
                await holder.FreezeAsync();
                await Task.Delay(Settle, ct);
                var frozen = await CountFrozenAsync(server.AdminConnectionString, ct);
                if (frozen != Frozen)
                {
                    throw new InvalidOperationException($"Expected {Frozen} frozen backends before the burst, found {frozen}.");
                }

                Collect(result, burst, await burst.GoAsync(Burst, ct));
            }
            finally
            {
                // The runspaces disconnect and pwsh exits: only the holder's backends are left to count.
                await EndAsync(burst);
            }

            result.FrozenLeft = await CountFrozenAsync(server.AdminConnectionString, ct);
        }

        return result;
    }

    /// <summary>
    /// The control: the same script, module and cluster, a fresh pwsh again, no holder. The storm's backends (the
    /// killed holder's, the first pwsh's) are gone first, so the burst finds every one of the 57 app slots free and no
    /// lease to reap: its time is what 30 runspaces' first connects cost in a fresh process, the part of the storm's
    /// figure that is not the storm.
    /// </summary>
    private static async Task<StormResult> RunCmdletControlAsync(TestPostgres server, CmdletSide side, CancellationToken ct)
    {
        await WaitForNoClientsAsync(server.AdminConnectionString, ct);
        var result = new StormResult(Side.NoStorm);
        var burst = await StormRunspaceBurst.StartAsync(side.PwshDll, side.Module, side.Script, server.AppConnectionString, Service, Secret, Burst, MinIdleSec, ct);
        try
        {
            // As long idle after READY as the storm's pwsh was while its holder froze: background JIT gets the same time.
            await Task.Delay(Settle, ct);
            var clients = await CountClientsAsync(server.AdminConnectionString, ct);
            if (clients != 0)
            {
                throw new InvalidOperationException($"Expected no client backend before the no-storm burst, found {clients}.");
            }

            Collect(result, burst, await burst.GoAsync(Burst, ct));
        }
        finally
        {
            await EndAsync(burst);
        }

        return result;
    }

    private static void Collect(StormResult result, StormRunspaceBurst burst, List<StormRunspaceBurst.Result> results)
    {
        foreach (var r in results)
        {
            result.Retried53300 += r.Retried53300;
            result.LastDoneMs = Math.Max(result.LastDoneMs, r.Ms);
            if (r.Served)
            {
                result.ServedAtMs.Add(r.Ms);
            }
            else
            {
                result.FinalErrors.AddOrUpdate(r.ErrorId ?? "unknown", 1, (_, n) => n + 1);
                result.FailureMessages.Add($"{r.Ms} ms: {r.Message}");
            }
        }

        foreach (var p in burst.Passes)
        {
            result.PassConnects.Add(p);
        }

        if (results.Count < Burst)
        {
            result.FinalErrors.AddOrUpdate("unfinished", Burst - results.Count, (_, n) => n + Burst - results.Count);
        }
    }

    private static async Task EndAsync(StormRunspaceBurst burst)
    {
        await burst.DisposeAsync();
        foreach (var line in burst.OtherLines)
        {
            Console.WriteLine("  pwsh: " + line);
        }
    }
}
