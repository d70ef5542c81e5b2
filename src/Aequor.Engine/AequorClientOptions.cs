namespace Aequor.Engine;

/// <summary>
/// Every option of a client, under pg-aequor 0.1.4's names in PascalCase, with its defaults.
/// Validated once, when the client is created.
/// </summary>
public sealed class AequorClientOptions
{
    public const string ServiceNameVariable = "AWS_LAMBDA_FUNCTION_NAME";

    /// <summary>An Npgsql keyword connection string. Pooling is forced off: one client owns one physical connection.</summary>
    public required string ConnectionString { get; init; }

    public string? CoordinationSecret { get; init; }

    /// <summary>Leases signed with this secret are still recognised by the reaper, so a secret can be rotated without a maintenance window.</summary>
    public string? PreviousCoordinationSecret { get; init; }

    /// <summary>Null: the <c>AWS_LAMBDA_FUNCTION_NAME</c> variable, else <c>sls_pg</c>.</summary>
    public string? ServiceName { get; init; }

    public LeaseMode LeaseMode { get; init; } = LeaseMode.Required;

    public int LeaseTtlMs { get; init; } = 90_000;

    public int HeartbeatSoftRemainingMs { get; init; } = 30_000;

    public int HeartbeatHardWaitRemainingMs { get; init; } = 5_000;

    public int HeartbeatTimeoutMs { get; init; } = 2_000;

    public HeartbeatErrorMode HeartbeatErrorMode { get; init; } = HeartbeatErrorMode.Reconnect;

    public int Retries { get; init; } = 3;

    public int MinBackoff { get; init; } = 100;

    public int MaxBackoff { get; init; } = 2_000;

    public int MaxConnectRetryTimeMs { get; init; } = 15_000;

    public int MaxQueryRetryTimeMs { get; init; } = 15_000;

    /// <summary>Retry 40001 / 40P01 too (off by default: the caller must know the transaction can be replayed).</summary>
    public bool RetrySerializationFailures { get; init; }

    /// <summary>Seconds; 0 means no limit. Null keeps the connection string's (Npgsql's default is 30 s).</summary>
    public int? CommandTimeout { get; init; }

    /// <summary>
    /// The longest command timeout Npgsql can arm: it cancels through CancellationTokenSource.CancelAfter, which takes at
    /// most 2^32 - 2 ms. One longer fails every connect with a bare ArgumentOutOfRangeException ("Parameter 'delay'").
    /// </summary>
    public const int MaxCommandTimeoutSeconds = 4_294_967;

    public bool Reaper { get; init; } = true;

    public double ReaperRunProbability { get; init; } = 0.1;

    public int ReaperCooldownMs { get; init; } = 30_000;

    public int MinConnectionIdleTimeSec { get; init; } = 180;

    public int MaxIdleConnectionsToKill { get; init; } = 10;

    public bool IncludeIdleInTransaction { get; init; }

    public int MinIdleInTransactionSec { get; init; } = 300;

    public ReaperErrorMode ReaperErrorMode { get; init; } = ReaperErrorMode.Swallow;

    /// <summary>The service name that goes into leases: normalised, from the option, the environment or the default.</summary>
    public string ResolveServiceName()
    {
        var name = ServiceName;
        if (string.IsNullOrWhiteSpace(name))
        {
            name = Environment.GetEnvironmentVariable(ServiceNameVariable);
        }

        if (string.IsNullOrWhiteSpace(name))
        {
            name = LeaseFormat.DefaultServiceName;
        }

        return LeaseFormat.NormalizeServiceName(name);
    }

    /// <summary>Throws <see cref="AequorConfigurationException"/> naming the first option that cannot work.</summary>
    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(ConnectionString))
        {
            throw new AequorConfigurationException("The connection string is empty.");
        }

        if (string.IsNullOrEmpty(CoordinationSecret) && LeaseMode == LeaseMode.Required)
        {
            throw new AequorConfigurationException(
                "A coordination secret is required (LeaseMode Required): give one of at least 16 bytes, distinct from the database password, or choose LeaseMode Optional for a plain connection.");
        }

        Positive(LeaseTtlMs, nameof(LeaseTtlMs));
        Positive(HeartbeatTimeoutMs, nameof(HeartbeatTimeoutMs));
        NotNegative(HeartbeatSoftRemainingMs, nameof(HeartbeatSoftRemainingMs));
        NotNegative(HeartbeatHardWaitRemainingMs, nameof(HeartbeatHardWaitRemainingMs));
        if (HeartbeatHardWaitRemainingMs > HeartbeatSoftRemainingMs)
        {
            throw new AequorConfigurationException(
                $"HeartbeatHardWaitRemainingMs ({HeartbeatHardWaitRemainingMs}) is above HeartbeatSoftRemainingMs ({HeartbeatSoftRemainingMs}): a renewal is waited for only after it could have ridden along a statement.");
        }

        if (HeartbeatSoftRemainingMs >= LeaseTtlMs)
        {
            throw new AequorConfigurationException(
                $"HeartbeatSoftRemainingMs ({HeartbeatSoftRemainingMs}) is not below LeaseTtlMs ({LeaseTtlMs}): every statement would renew the lease.");
        }

        NotNegative(Retries, nameof(Retries));
        if (MinBackoff < 1)
        {
            // Each delay is drawn up to three times the previous one, starting from MinBackoff: from 0 it stays 0
            // whatever MaxBackoff is, and every retry of a 53300 storm would reconnect at once.
            throw new AequorConfigurationException(
                $"MinBackoff is {MinBackoff} ms; it must be at least 1 ms: each retry delay is drawn up to three times the previous one, so from 0 every retry would be immediate.");
        }

        if (MaxBackoff < MinBackoff)
        {
            throw new AequorConfigurationException($"MaxBackoff ({MaxBackoff} ms) is below MinBackoff ({MinBackoff} ms).");
        }

        NotNegative(MaxConnectRetryTimeMs, nameof(MaxConnectRetryTimeMs));
        NotNegative(MaxQueryRetryTimeMs, nameof(MaxQueryRetryTimeMs));
        if (CommandTimeout is < 0)
        {
            throw new AequorConfigurationException($"CommandTimeout is {CommandTimeout} s; give 0 (no limit) or more.");
        }

        if (CommandTimeout is > MaxCommandTimeoutSeconds)
        {
            throw new AequorConfigurationException($"CommandTimeout is {CommandTimeout} s; it can be at most {MaxCommandTimeoutSeconds} s (about 49 days): give 0 for no limit.");
        }

        if (ReaperRunProbability is < 0 or > 1 || double.IsNaN(ReaperRunProbability))
        {
            throw new AequorConfigurationException($"ReaperRunProbability is {ReaperRunProbability}; it must be between 0 and 1.");
        }

        NotNegative(ReaperCooldownMs, nameof(ReaperCooldownMs));
        NotNegative(MinConnectionIdleTimeSec, nameof(MinConnectionIdleTimeSec));
        NotNegative(MinIdleInTransactionSec, nameof(MinIdleInTransactionSec));
        Positive(MaxIdleConnectionsToKill, nameof(MaxIdleConnectionsToKill));
        _ = ResolveServiceName();
    }

    private static void Positive(int value, string name)
    {
        if (value <= 0)
        {
            throw new AequorConfigurationException($"{name} is {value}; it must be greater than 0.");
        }
    }

    private static void NotNegative(int value, string name)
    {
        if (value < 0)
        {
            throw new AequorConfigurationException($"{name} is {value}; it cannot be negative.");
        }
    }
}
