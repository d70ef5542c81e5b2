namespace Aequor.PowerShell;

/// <summary>A lease as PowerShell shows it: plain values, no engine or Npgsql types.</summary>
public sealed class AequorLease
{
    /// <summary>The type name Get-AequorLease gives rows read offline, to select their table view.</summary>
    public const string OfflineTypeName = "Aequor.PowerShell.AequorLease#Offline";

    public int? Pid { get; init; }

    public string? ServiceName { get; init; }

    public string? InstanceId { get; init; }

    public DateTimeOffset? ExpiresAt { get; init; }

    public bool? IsExpired { get; init; }

    public bool IsSignatureValid { get; init; }

    public string? State { get; init; }

    public double? IdleSeconds { get; init; }

    public bool IsCurrentSession { get; init; }

    public bool IsReapable { get; init; }

    public string? UserName { get; init; }

    public string? ClientAddress { get; init; }

    public string? ApplicationName { get; init; }

    /// <summary>Why a reaper pass would leave it alone (e.g. not_expired, too_young, not_ours); empty when reapable or offline.</summary>
    public string? NotReapableReason { get; init; }

    public override string ToString() => ApplicationName ?? string.Empty;

    internal static AequorLease From(Aequor.Engine.ScannedLease scanned) => new()
    {
        Pid = scanned.Pid,
        ServiceName = scanned.Lease.ServiceName,
        InstanceId = scanned.Lease.InstanceId,
        ExpiresAt = scanned.Lease.ExpiresAt,
        IsExpired = scanned.IsExpired,
        IsSignatureValid = scanned.IsSignatureValid,
        State = scanned.State,
        IdleSeconds = scanned.IdleSeconds is { } idle ? Math.Max(0, Math.Round(idle, 1)) : null,
        IsCurrentSession = scanned.IsCurrentSession,
        IsReapable = scanned.IsReapable,
        NotReapableReason = scanned.NotReapableReason,
        UserName = scanned.UserName,
        ClientAddress = scanned.ClientAddress,
        ApplicationName = scanned.Lease.ApplicationName,
    };
}
