namespace Aequor.PowerShell;

/// <summary>A lease as PowerShell shows it: plain values, no engine or Npgsql types.</summary>
public sealed class AequorLease
{
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

    public override string ToString() => ApplicationName ?? string.Empty;
}
