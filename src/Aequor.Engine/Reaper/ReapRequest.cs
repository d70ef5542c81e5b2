namespace Aequor.Engine.Reaper;

/// <summary>Per-call overrides for a manual pass (<c>Invoke-AequorReap</c>); null keeps the option.</summary>
public sealed record ReapRequest
{
    /// <summary>Scan and select under the lock, but kill nothing.</summary>
    public bool DryRun { get; init; }

    public int? MaxIdleConnectionsToKill { get; init; }

    public int? MinConnectionIdleTimeSec { get; init; }

    public bool? IncludeIdleInTransaction { get; init; }

    public int? MinIdleInTransactionSec { get; init; }
}
