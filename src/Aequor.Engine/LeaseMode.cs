namespace Aequor.Engine;

/// <summary>Whether a coordination secret is required (pg-aequor's <c>leaseMode</c>).</summary>
public enum LeaseMode
{
    /// <summary>No secret is an error when the client is created.</summary>
    Required,

    /// <summary>Without a secret the connection is plain: no lease, reaper or heartbeat.</summary>
    Optional,
}

/// <summary>What a failed lease renewal does (pg-aequor's <c>heartbeatErrorMode</c>).</summary>
public enum HeartbeatErrorMode
{
    /// <summary>Drop the connection; the next statement reconnects with a fresh lease.</summary>
    Reconnect,

    /// <summary>Keep going on the old lease.</summary>
    Swallow,

    /// <summary>Fail the statement that needed the renewal.</summary>
    Throw,
}

/// <summary>What a failing reaper pass does (pg-aequor's <c>reaperErrorMode</c>).</summary>
public enum ReaperErrorMode
{
    Swallow,
    Throw,
}

/// <summary>Where a client is in its life.</summary>
public enum AequorClientState
{
    Disconnected,
    Connected,
    Broken,
    Disposed,
}
