namespace Aequor.Engine;

/// <summary>How urgently the lease needs renewing before the next statement.</summary>
internal enum RenewalNeed
{
    /// <summary>More than <c>HeartbeatSoftRemainingMs</c> left.</summary>
    None,

    /// <summary>Renew, but do not wait for it: it rides in the same batch as the statement.</summary>
    Soft,

    /// <summary>At most <c>HeartbeatHardWaitRemainingMs</c> left (or no lease at all): renew before the statement runs.</summary>
    Hard,
}

/// <summary>
/// The lease heartbeat, decided on the database's timeline. There is no timer: a renewal is only ever sent
/// ahead of a statement the caller makes, so nothing can fire (and throw) on a background thread, and a
/// worker that stops working stops renewing, which is the whole point of a lease.
/// </summary>
internal static class Heartbeat
{
    /// <summary>
    /// The renewal. <c>is_local = false</c> makes it last for the session, but it is still transactional:
    /// a rollback (or any error later in the same implicit transaction of a batch) reverts it. The client
    /// therefore never renews inside a transaction and judges the lease only by the application_name the
    /// server reports back (ParameterStatus), never by what it sent.
    /// </summary>
    public const string RenewSql = "SELECT set_config('application_name', $1, false), clock_timestamp()";

    /// <summary>A clock reading that also proves the connection is alive: see <see cref="AequorClient"/>.</summary>
    public const string ProbeSql = "SELECT clock_timestamp()";

    /// <summary>Clock readings are off by up to half a round trip; skew below this is left alone.</summary>
    public const int SkewToleranceMs = 1_000;

    public static RenewalNeed Assess(long? expiresAtDbMs, long databaseNowMs, AequorClientOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (expiresAtDbMs is not { } expires)
        {
            return RenewalNeed.Hard;
        }

        var remaining = expires - databaseNowMs;
        if (remaining > options.LeaseTtlMs + SkewToleranceMs)
        {
            // Longer than any lease we sign: it was signed on a client clock running ahead of the database's
            // (the startup lease, before the first clock reading). Re-sign on the database timeline, riding
            // along the next statement, so the lease does not outlive its TTL by the skew.
            return RenewalNeed.Soft;
        }

        if (remaining > options.HeartbeatSoftRemainingMs)
        {
            return RenewalNeed.None;
        }

        return remaining > options.HeartbeatHardWaitRemainingMs ? RenewalNeed.Soft : RenewalNeed.Hard;
    }
}
