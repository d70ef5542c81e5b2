using System.Globalization;
using Aequor.Engine;

namespace Aequor.PowerShell;

/// <summary>Where a session is in its life.</summary>
public enum AequorSessionState
{
    /// <summary>Not connected now: the next statement connects (with a fresh lease).</summary>
    Disconnected,
    Connected,

    /// <summary>The connection broke; the next statement reconnects.</summary>
    Broken,

    /// <summary>Disconnect-Aequor (or the runspace, or Remove-Module) closed it.</summary>
    Closed,
}

/// <summary>
/// A named connection of one runspace, as Connect-Aequor returns it. Its values are read live from
/// the connection; it holds no password or secret a user could read.
/// </summary>
public sealed class AequorSession
{
    private readonly AequorClient _client;
    private long _queries;
    private int _closed;
    private AequorCmdlet? _listener;

    internal AequorSession(string name, AequorClient client, Redactor redactor)
    {
        Name = name;
        _client = client;
        Redactor = redactor;
        ConnectedAt = DateTimeOffset.UtcNow;
    }

    public string Name { get; }

    public string? Server => _client.Host;

    public int Port => _client.Port;

    public string? Database => _client.Database;

    public string? User => _client.UserName;

    public string ServiceName => _client.ServiceName;

    public string InstanceId => _client.InstanceId;

    public int? BackendPid => _client.BackendPid;

    public DateTimeOffset? LeaseExpiresAt => _client.IsLeased ? _client.LeaseExpiresAt : null;

    public bool IsLeased => _client.IsLeased;

    public AequorSessionState State => IsClosed ? AequorSessionState.Closed : _client.State switch
    {
        AequorClientState.Connected => AequorSessionState.Connected,
        AequorClientState.Broken => AequorSessionState.Broken,
        AequorClientState.Disposed => AequorSessionState.Closed,
        _ => AequorSessionState.Disconnected,
    };

    public bool InTransaction => !IsClosed && _client.InTransaction;

    /// <summary>The runspace's default: what cmdlets use without -Session.</summary>
    public bool IsDefault => Owner?.Default == this;

    public DateTimeOffset ConnectedAt { get; }

    /// <summary>Statements run through Invoke-AequorQuery.</summary>
    public long Queries => Interlocked.Read(ref _queries);

    /// <summary>Physical connections opened after the first one (a broken socket, a heartbeat's reconnect).</summary>
    public long Reconnects => Math.Max(0, _client.Generation - 1);

    internal AequorClient Client => _client;

    internal Redactor Redactor { get; }

    internal RunspaceSessions? Owner { get; set; }

    internal bool IsClosed => Volatile.Read(ref _closed) != 0;

    internal void CountQuery() => Interlocked.Increment(ref _queries);

    /// <summary>
    /// While the returned scope lives, what the engine reports for this session (retries, reconnects,
    /// heartbeats — raised on its own threads) goes to <paramref name="cmdlet"/>'s Verbose and
    /// Warning streams, written on its pipeline thread. Outside any command it is dropped.
    /// </summary>
    internal IDisposable Listen(AequorCmdlet cmdlet)
    {
        var previous = Interlocked.Exchange(ref _listener, cmdlet);
        return new ListenScope(this, cmdlet, previous);
    }

    /// <summary>From any thread.</summary>
    internal void Report(string verbose, string? warning = null)
    {
        var listener = Volatile.Read(ref _listener);
        if (listener is null)
        {
            return;
        }

        listener.PostVerbose(Redactor.Redact($"Session '{Name}': {verbose}"));
        if (warning is not null)
        {
            listener.PostWarning(Redactor.Redact($"Session '{Name}': {warning}"));
        }
    }

    /// <summary>Closes the connection once; never throws (a dead socket is already closed).</summary>
    internal void Close()
    {
        if (Interlocked.Exchange(ref _closed, 1) != 0)
        {
            return;
        }

        try
        {
            // Called from runspace events and module removal too, where nothing may hang or throw.
            _ = Task.Run(async () => await _client.DisposeAsync().ConfigureAwait(false)).Wait(TimeSpan.FromSeconds(5));
        }
#pragma warning disable CA1031 // Closing is best effort: the server ends a backend whose socket closes.
        catch (Exception)
#pragma warning restore CA1031
        {
        }
    }

    private sealed class ListenScope(AequorSession session, AequorCmdlet cmdlet, AequorCmdlet? previous) : IDisposable
    {
        public void Dispose() => Interlocked.CompareExchange(ref session._listener, previous, cmdlet);
    }

    /// <summary>No password, no secret: name, user and endpoint only.</summary>
    public override string ToString() =>
        string.Create(CultureInfo.InvariantCulture, $"{Name} ({User}@{Server}:{Port}/{Database}, {State})");
}
