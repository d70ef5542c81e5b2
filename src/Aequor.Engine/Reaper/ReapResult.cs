namespace Aequor.Engine.Reaper;

/// <summary>What one pass saw and did. Plain .NET types only, so the cmdlets map it without Npgsql.</summary>
public sealed class ReapResult
{
    private readonly bool? _stillNearLimit;

    internal ReapResult()
    {
    }

    /// <summary>The normalised service name the pass worked for (the lock key and the lease prefix).</summary>
    public string ServiceName { get; internal init; } = string.Empty;

    /// <summary>False when another instance (Aequor or pg-aequor) of the service held the lock: no scan, no kill.</summary>
    public bool LockAcquired { get; internal init; }

    public bool DryRun { get; internal init; }

    /// <summary>Backends of this database whose application_name starts with our service's prefix.</summary>
    public int Scanned { get; internal init; }

    /// <summary>Selected for termination, oldest expiry first, then longest idle, then pid.</summary>
    public IReadOnlyList<ReapCandidate> Candidates { get; internal init; } = [];

    public IReadOnlyList<int> KilledPids { get; internal init; } = [];

    /// <summary>
    /// Of <see cref="KilledPids"/>, those whose process had exited when the pass ended, so their connection
    /// slots are free: the kill waits up to a second for them (a terminated backend holds its slot until then).
    /// </summary>
    public IReadOnlyList<int> ExitedPids { get; internal init; } = [];

    /// <summary>Expired leases of ours left alive, each with its reason (not permitted, renewed, woke up…).</summary>
    public IReadOnlyList<ReapNotKilled> NotKilled { get; internal init; } = [];

    /// <summary>Scanned backends not selected, counted by <see cref="ReapReasons"/>.</summary>
    public IReadOnlyDictionary<string, int> Skipped { get; internal init; } = new Dictionary<string, int>();

    /// <summary>Client backends of the whole server at scan time.</summary>
    public int? ConnectionsUsed { get; internal init; }

    /// <summary>Slots open to non-superusers: max_connections − superuser_reserved_connections (− reserved_connections).</summary>
    public int? ConnectionsAvailable { get; internal init; }

    /// <summary>Used ≥ NearLimitRatio of the available slots at scan time: storm mode stays on.</summary>
    public bool NearLimit { get; internal init; }

    /// <summary>
    /// Still near the limit once the slots of <see cref="ExitedPids"/> are counted free: storm mode stays on
    /// only then. Without kills, the same as <see cref="NearLimit"/>.
    /// </summary>
    public bool StillNearLimit
    {
        get => _stillNearLimit ?? NearLimit;
        internal init => _stillNearLimit = value;
    }

    /// <summary>The database's clock at scan time (ms since the Unix epoch): expiry and idle time are judged on it.</summary>
    public long? DatabaseNowMs { get; internal init; }

    public long DurationMs { get; internal init; }

    /// <summary>Network round trips the pass used: BEGIN+lock+scan, then kill+COMMIT (or COMMIT); a third only to roll back after a failure.</summary>
    public int RoundTrips { get; internal init; }

    /// <summary>Why the pass failed, when it did; with <see cref="ReaperErrorMode.Swallow"/> nothing is thrown.</summary>
    public Exception? Error { get; internal init; }

    public bool Succeeded => Error is null;

    public override string ToString() =>
        $"ReapResult(service: {ServiceName}, locked: {LockAcquired}, scanned: {Scanned}, candidates: {Candidates.Count}, killed: {KilledPids.Count} ({ExitedPids.Count} exited), not killed: {NotKilled.Count}, near limit: {NearLimit}, {DurationMs} ms, {RoundTrips} round trips{(Error is null ? string.Empty : ", error: " + Error.Message)})";
}
