using System.Globalization;

namespace Aequor.PowerShell;

/// <summary>A candidate a pass selected but did not kill, and why (declined, renewed, woke_up, gone, terminate_failed).</summary>
public sealed class AequorReapMiss
{
    public int Pid { get; init; }

    public string Reason { get; init; } = string.Empty;

    public string? ApplicationName { get; init; }

    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{Pid}: {Reason}");
}

/// <summary>What one Invoke-AequorReap pass saw and did.</summary>
public sealed class AequorReapResult
{
    public string ServiceName { get; init; } = string.Empty;

    /// <summary>False when another client of the service (Aequor or pg-aequor) held the reaper lock: nothing scanned or killed.</summary>
    public bool LockAcquired { get; init; }

    /// <summary>Leases of the service the pass looked at (the reaping session itself excluded).</summary>
    public int Scanned { get; init; }

    /// <summary>What the pass selected for termination, oldest expiry first.</summary>
    public AequorLease[] Candidates { get; init; } = [];

    public AequorLease[] Killed { get; init; } = [];

    /// <summary>Candidates left alive (declined at the prompt or -WhatIf, or changed since the scan), and expired leases of the service this role may not signal.</summary>
    public AequorReapMiss[] NotKilled { get; init; } = [];

    /// <summary>Scanned leases not selected, counted by reason (not_expired, too_young, bad_signature, over_limit …).</summary>
    public IReadOnlyDictionary<string, int> Skipped { get; init; } = new Dictionary<string, int>();

    /// <summary>Client backends of the whole server when the pass scanned.</summary>
    public int? ConnectionsUsed { get; init; }

    /// <summary>Connection slots open to non-superusers (max_connections − superuser_reserved_connections − reserved_connections).</summary>
    public int? ConnectionsAvailable { get; init; }

    public long DurationMs { get; init; }

    public override string ToString() => string.Create(CultureInfo.InvariantCulture,
        $"{ServiceName}: {(LockAcquired ? $"scanned {Scanned}, {Candidates.Length} candidate(s), killed {Killed.Length}" : "lock busy")} in {DurationMs} ms");
}
