namespace Aequor.Engine.Reaper;

/// <summary>A backend a pass selected for termination: our own, validly signed, expired, idle long enough.</summary>
public sealed record ReapCandidate(
    int Pid,
    string ServiceName,
    string InstanceId,
    long ExpiresAtMs,
    double IdleSeconds,
    string State,
    string ApplicationName,
    string? UserName,
    bool SignedWithPreviousSecret)
{
    public DateTimeOffset ExpiresAt => Lease.InstantOf(ExpiresAtMs);

    /// <summary>When it entered its current state, as the database saw it; the kill re-checks it is unchanged.</summary>
    internal DateTime StateChange { get; init; }
}
