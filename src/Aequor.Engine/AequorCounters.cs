namespace Aequor.Engine;

/// <summary>Running totals for one client; safe to read from any thread.</summary>
public sealed class AequorCounters
{
    private long _connects;
    private long _reconnects;
    private long _retries;
    private long _heartbeats;
    private long _heartbeatFailures;
    private long _reapPasses;
    private long _backendsKilled;
    private long _clientDeaths;
    private long _handlerFailures;

    /// <summary>Physical connections opened.</summary>
    public long Connects => Interlocked.Read(ref _connects);

    /// <summary>Connections opened to replace an earlier one.</summary>
    public long Reconnects => Interlocked.Read(ref _reconnects);

    /// <summary>Retries of connects and statements.</summary>
    public long Retries => Interlocked.Read(ref _retries);

    /// <summary>Lease renewals the server confirmed.</summary>
    public long Heartbeats => Interlocked.Read(ref _heartbeats);

    public long HeartbeatFailures => Interlocked.Read(ref _heartbeatFailures);

    public long ReapPasses => Interlocked.Read(ref _reapPasses);

    public long BackendsKilled => Interlocked.Read(ref _backendsKilled);

    /// <summary>Connections found dead.</summary>
    public long ClientDeaths => Interlocked.Read(ref _clientDeaths);

    /// <summary>Exceptions thrown by event handlers (contained).</summary>
    public long HandlerFailures => Interlocked.Read(ref _handlerFailures);

    internal void Connected(bool reconnect)
    {
        Interlocked.Increment(ref _connects);
        if (reconnect)
        {
            Interlocked.Increment(ref _reconnects);
        }
    }

    internal void Retried() => Interlocked.Increment(ref _retries);

    internal void HeartbeatSucceeded() => Interlocked.Increment(ref _heartbeats);

    internal void HeartbeatFailed() => Interlocked.Increment(ref _heartbeatFailures);

    internal void Reaped(int killed)
    {
        Interlocked.Increment(ref _reapPasses);
        Interlocked.Add(ref _backendsKilled, killed);
    }

    internal void ClientDied() => Interlocked.Increment(ref _clientDeaths);

    internal void HandlerFailed() => Interlocked.Increment(ref _handlerFailures);

    public override string ToString() =>
        $"connects {Connects}, reconnects {Reconnects}, retries {Retries}, heartbeats {Heartbeats}, reap passes {ReapPasses}, backends killed {BackendsKilled}";
}
