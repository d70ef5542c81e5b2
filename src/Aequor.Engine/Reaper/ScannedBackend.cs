namespace Aequor.Engine.Reaper;

/// <summary>One row of the scan: a backend of this database carrying our service's prefix.</summary>
/// <param name="State">Null when this role may not see the backend's state (another role's, without pg_read_all_stats).</param>
/// <param name="IdleSeconds">now() − state_change on the database clock; null with the state hidden.</param>
/// <param name="CanSignal">Whether pg_terminate_backend would be allowed for this role (it raises 42501 otherwise).</param>
/// <param name="IsSelf">The scanning session's own backend: only a listing scan (<see cref="LeaseScanner"/>) has it; the pass's scan leaves it out in SQL.</param>
internal sealed record ScannedBackend(
    int Pid,
    string ApplicationName,
    string? State,
    string? UserName,
    DateTime? StateChange,
    double? IdleSeconds,
    bool CanSignal,
    bool IsSelf = false);
