using System.Globalization;
using System.Management.Automation;
using Aequor.Engine;
using Aequor.Engine.Reaper;

namespace Aequor.PowerShell;

/// <summary>
/// Runs one reaper pass now on a session: ignores probability and cooldown, never the lock. Each
/// termination goes through ShouldProcess (-WhatIf lists them, -Confirm asks per backend);
/// ConfirmImpact Medium, so runbooks do not prompt by default.
/// </summary>
[Cmdlet(VerbsLifecycle.Invoke, "AequorReap", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
[OutputType(typeof(AequorReapResult))]
public sealed class InvokeAequorReapCommand : AequorCmdlet
{
    /// <summary>A session, or its name.</summary>
    [Parameter(ValueFromPipeline = true)]
    [SessionTransformation]
    [ArgumentCompleter(typeof(SessionNameCompleter))]
    public AequorSession? Session { get; set; }

    /// <summary>Overrides MaxIdleConnectionsToKill for this pass.</summary>
    [Parameter]
    [ValidateRange(1, int.MaxValue)]
    public int? MaxKill { get; set; }

    /// <summary>Overrides MinConnectionIdleTimeSec for this pass.</summary>
    [Parameter]
    [ValidateRange(0, int.MaxValue)]
    public int? MinIdleSec { get; set; }

    /// <summary>Overrides IncludeIdleInTransaction for this pass (-IncludeIdleInTransaction:$false turns it off).</summary>
    [Parameter]
    public SwitchParameter IncludeIdleInTransaction { get; set; }

    /// <summary>Overrides MinIdleInTransactionSec for this pass.</summary>
    [Parameter]
    [ValidateRange(0, int.MaxValue)]
    public int? MinIdleInTransactionSec { get; set; }

    protected override void ProcessRecord()
    {
        if (ResolveInputSession(Session) is not { } session)
        {
            return;
        }

        if (!session.IsLeased)
        {
            // This input's error, not the pipeline's: the other sessions piped in are still reaped.
            WriteError(Errors.Create(ErrorIds.NotLeased, ErrorCategory.InvalidOperation,
                $"Session '{session.Name}' has no coordination secret, so it can recognise no lease: connect with -CoordinationSecret to reap.", session));
            return;
        }

        var request = new ReapRequest
        {
            MaxIdleConnectionsToKill = MaxKill,
            MinConnectionIdleTimeSec = MinIdleSec,
            IncludeIdleInTransaction = MyInvocation.BoundParameters.ContainsKey(nameof(IncludeIdleInTransaction)) ? IncludeIdleInTransaction.IsPresent : null,
            MinIdleInTransactionSec = MinIdleInTransactionSec,
        };

        using var listening = session.Listen(this);
        var whatIf = IsWhatIf();
        if (!WillPrompt() && session.Client.Options.Reaper)
        {
            // Nothing to ask: the engine's own pass (ReaperPass through the client, two round trips).
            RunEnginePass(session, request, whatIf);
            return;
        }

        // -Confirm asks before each kill, which a single-shot pass cannot: scan, ask, kill the approved.
        // Also a session connected with -NoReaper, whose client runs no reaper.
        ManualReapPass pass;
        try
        {
            pass = Await(ManualReapPass.BeginAsync(session.Client, request, StopToken));
        }
        catch (Exception ex) when (ex is not PipelineStoppedException)
        {
            WriteError(Errors.FromException(ex, ErrorIds.ReapFailed, ErrorCategory.InvalidOperation,
                $"The reaper pass on session '{session.Name}' failed", session, session.Redactor));
            return;
        }

        AequorReapResult result;
        try
        {
            result = Run(session, pass);
        }
        catch (Exception ex) when (ex is not PipelineStoppedException)
        {
            WriteError(Errors.FromException(ex, ErrorIds.ReapFailed, ErrorCategory.InvalidOperation,
                $"The reaper pass on session '{session.Name}' failed", session, session.Redactor));
            return;
        }
        finally
        {
            Await(pass.DisposeAsync().AsTask());
        }

        WriteObject(result);
    }

    private void RunEnginePass(AequorSession session, ReapRequest request, bool whatIf)
    {
        ReapResult pass;
        try
        {
            pass = Await(session.Client.ReapNowAsync(request with { DryRun = whatIf }, StopToken));
        }
        catch (Exception ex) when (ex is not PipelineStoppedException)
        {
            WriteError(Errors.FromException(ex, ErrorIds.ReapFailed, ErrorCategory.InvalidOperation,
                $"The reaper pass on session '{session.Name}' failed", session, session.Redactor));
            return;
        }

        if (pass.Error is { } error)
        {
            WriteError(Errors.FromException(error, ErrorIds.ReapFailed, ErrorCategory.InvalidOperation,
                $"The reaper pass on session '{session.Name}' failed", session, session.Redactor));
        }

        if (!pass.LockAcquired && pass.Error is null)
        {
            WriteWarning($"Another client of service '{session.ServiceName}' holds the reaper lock: this pass scanned and killed nothing.");
        }

        var nowMs = pass.DatabaseNowMs ?? DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        foreach (var candidate in pass.Candidates)
        {
            // Under -WhatIf this prints the line and returns false; otherwise it is true without a prompt.
            var description = Describe(candidate.Pid, candidate.ServiceName, candidate.InstanceId, nowMs - candidate.ExpiresAtMs, candidate.IdleSeconds, candidate.State);
            _ = ShouldProcess(description, $"{description}?", "Terminate backend");
        }

        var killedPids = pass.KilledPids.ToHashSet();
        var candidates = pass.Candidates.Select(c => ToLease(c, nowMs)).ToArray();
        var killed = candidates.Where(c => killedPids.Contains(c.Pid!.Value)).ToArray();
        foreach (var lease in killed)
        {
            WriteVerbose($"Terminated backend {lease.Pid} (instance {lease.InstanceId}).");
        }

        WriteObject(new AequorReapResult
        {
            ServiceName = pass.ServiceName,
            LockAcquired = pass.LockAcquired,
            Scanned = pass.Scanned,
            Candidates = candidates,
            Killed = killed,
            NotKilled = [.. pass.NotKilled.Select(n => new AequorReapMiss { Pid = n.Pid, Reason = n.Reason, ApplicationName = n.ApplicationName }).OrderBy(m => m.Pid)],
            Skipped = pass.Skipped,
            ConnectionsUsed = pass.ConnectionsUsed,
            ConnectionsAvailable = pass.ConnectionsAvailable,
            DurationMs = pass.DurationMs,
        });
    }

    private static AequorLease ToLease(ReapCandidate c, long nowMs) => new()
    {
        Pid = c.Pid,
        ServiceName = c.ServiceName,
        InstanceId = c.InstanceId,
        ExpiresAt = c.ExpiresAt,
        IsExpired = nowMs > c.ExpiresAtMs,
        IsSignatureValid = true,
        State = c.State,
        IdleSeconds = Math.Max(0, Math.Round(c.IdleSeconds, 1)),
        IsReapable = true,
        UserName = c.UserName,
        ApplicationName = c.ApplicationName,
    };

    private bool IsWhatIf() => MyInvocation.BoundParameters.TryGetValue("WhatIf", out var w)
        ? LanguagePrimitives.IsTrue(w)
        : LanguagePrimitives.IsTrue(GetVariableValue("WhatIfPreference", false));

    /// <summary>Whether ShouldProcess would ask: -Confirm, or $ConfirmPreference at or below this cmdlet's Medium impact.</summary>
    private bool WillPrompt()
    {
        if (MyInvocation.BoundParameters.TryGetValue("Confirm", out var confirm))
        {
            return LanguagePrimitives.IsTrue(confirm);
        }

        return GetVariableValue("ConfirmPreference", ConfirmImpact.High) is var preference
            && LanguagePrimitives.TryConvertTo<ConfirmImpact>(preference, out var level)
            && level != ConfirmImpact.None
            && level <= ConfirmImpact.Medium;
    }

    private AequorReapResult Run(AequorSession session, ManualReapPass pass)
    {
        if (!pass.LockAcquired)
        {
            WriteWarning($"Another client of service '{session.ServiceName}' holds the reaper lock: this pass scanned and killed nothing.");
            return new AequorReapResult { ServiceName = session.ServiceName, LockAcquired = false, DurationMs = pass.ElapsedMs };
        }

        var scan = pass.Scan!;
        var candidates = pass.Candidates;
        var approved = new List<ScannedLease>();
        var misses = new List<AequorReapMiss>();
        var whatIf = IsWhatIf();
        foreach (var candidate in candidates)
        {
            var description = Describe(candidate, scan.DatabaseNowMs);
            if (ShouldProcess(description, $"{description}?", "Terminate backend"))
            {
                approved.Add(candidate);
            }
            else
            {
                // -WhatIf is the reaper's dry run; otherwise the user said no at the prompt.
                var reason = whatIf ? ReapReasons.DryRun : ManualReapPass.Declined;
                misses.Add(new AequorReapMiss { Pid = candidate.Pid, Reason = reason, ApplicationName = candidate.Lease.ApplicationName });
            }
        }

        // As the engine's pass reports them: an expired lease of the service this role may not signal is worth
        // naming by pid (it is also counted in Skipped).
        misses.AddRange(scan.Leases
            .Where(l => l.NotReapableReason == ReapReasons.NotPermitted && l.Lease.ServiceName == scan.ServiceName)
            .Select(l => new AequorReapMiss { Pid = l.Pid, Reason = ReapReasons.NotPermitted, ApplicationName = l.Lease.ApplicationName }));

        var outcomes = approved.Count == 0 ? [] : Await(pass.KillAsync(approved, StopToken));
        foreach (var outcome in outcomes.Where(o => !o.Killed))
        {
            misses.Add(new AequorReapMiss { Pid = outcome.Lease.Pid, Reason = outcome.Reason ?? ReapReasons.TerminateFailed, ApplicationName = outcome.Lease.Lease.ApplicationName });
        }

        var killed = outcomes.Where(o => o.Killed).Select(o => AequorLease.From(o.Lease)).ToArray();
        foreach (var lease in killed)
        {
            WriteVerbose($"Terminated backend {lease.Pid} (instance {lease.InstanceId}).");
        }

        return new AequorReapResult
        {
            ServiceName = scan.ServiceName,
            LockAcquired = true,
            Scanned = pass.Scanned,
            Candidates = candidates.Select(AequorLease.From).ToArray(),
            Killed = killed,
            NotKilled = [.. misses.OrderBy(m => m.Pid)],
            Skipped = scan.CountNotReapable(),
            ConnectionsUsed = scan.ConnectionsUsed,
            ConnectionsAvailable = scan.ConnectionsAvailable,
            DurationMs = pass.ElapsedMs,
        };
    }

    internal static string Describe(ScannedLease lease, long databaseNowMs) =>
        Describe(lease.Pid, lease.Lease.ServiceName, lease.Lease.InstanceId, databaseNowMs - lease.Lease.ExpiresAtMs, lease.IdleSeconds ?? 0, lease.State);

    /// <summary>e.g. "Terminate backend 1234 (service orders, instance Zx9_-k2Q, lease expired 4 min ago, idle 260 s)".</summary>
    internal static string Describe(int pid, string service, string instance, long expiredForMs, double idleSeconds, string? state) => string.Create(CultureInfo.InvariantCulture,
        $"Terminate backend {pid} (service {service}, instance {instance}, lease expired {Ago(expiredForMs)}, idle {Math.Floor(idleSeconds)} s{(state == "idle" ? string.Empty : ", " + state)})");

    private static string Ago(long ms)
    {
        var seconds = Math.Max(0, ms / 1000);
        return seconds switch
        {
            < 120 => string.Create(CultureInfo.InvariantCulture, $"{seconds} s ago"),
            < 7200 => string.Create(CultureInfo.InvariantCulture, $"{seconds / 60} min ago"),
            _ => string.Create(CultureInfo.InvariantCulture, $"{seconds / 3600} h ago"),
        };
    }
}
