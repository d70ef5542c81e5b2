using System.Globalization;
using Aequor.Engine;

namespace Aequor.PowerShell;

/// <summary>Where a session is in its life.</summary>
public enum AequorSessionState
{
    /// <summary>Not connected now: the next statement connects (with a fresh lease).</summary>
    Disconnected,
    Connected,

    /// <summary>The connection broke: the next statement reconnects, or, when it broke inside a transaction, every statement fails until the transaction is ended.</summary>
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
    private int _closedInTransaction;
    private int _streamingThread;
    private AequorCmdlet? _listener;

    internal AequorSession(string name, AequorClient client, Redactor redactor)
    {
        Name = name;
        _client = client;
        Redactor = redactor;
        ConnectedAt = DateTimeOffset.UtcNow;
        Subscribe(client);
    }

    // Raised on the engine's threads: each handler only posts text to the listening cmdlet, and the
    // engine contains whatever a handler throws.
    private void Subscribe(AequorClient client)
    {
        client.OnQueryRetry += (_, e) => Report(
            Invariant($"retry {e.Retries} in {e.Delay.TotalMilliseconds:0} ms after: {FailureText.Describe(e.Error)}"),
            Invariant($"retrying a statement (retry {e.Retries}) after: {FailureText.Describe(e.Error)}"));
        client.OnReconnect += (_, e) =>
        {
            if (e.Retries == 0)
            {
                Report("the connection was lost; reconnecting with a fresh lease.");
            }
            else
            {
                Report(
                    Invariant($"connect attempt {e.Retries} failed; retrying in {e.Delay.TotalMilliseconds:0} ms: {Cause(e.Error)}"),
                    Invariant($"retrying the connect (retry {e.Retries}) after: {Cause(e.Error)}"));
            }
        };
        // What psql prints: a server WARNING as a warning, the rest (NOTICE, INFO, …) on Verbose.
        client.OnNotice += (_, e) =>
        {
            var text = e.MessageText + (e.Detail is null ? string.Empty : " DETAIL: " + e.Detail) + (e.Hint is null ? string.Empty : " HINT: " + e.Hint);
            if (e.Severity == "WARNING")
            {
                Report(null, Invariant($"server WARNING: {text}"));
            }
            else
            {
                Report(Invariant($"server {e.Severity}: {text}"));
            }
        };
        // Visible by default: the statement ran on a connection without what the script had put in its session.
        client.OnSessionStateLost += (_, e) => Report(null, Invariant(
            $"the connection was replaced (its backend ended between statements) and what its session held is gone: {SessionStateNames.Describe(e.Lost)}. The statement ran on the new connection without them."));
        client.OnConnect += (_, e) => Report(Invariant($"connected to backend pid {e.BackendPid} (connection {e.Generation}{(e.IsReconnect ? ", a reconnect" : string.Empty)})."));
        client.OnHeartbeat += (_, e) => Report(Invariant($"lease renewed until {e.LeaseExpiresAt:O}."));
        client.OnHeartbeatFail += (_, e) => Report(Invariant($"lease renewal failed ({e.Mode}): {FailureText.Describe(e.Error)}"));
        client.OnClientDead += (_, e) => Report(Invariant($"connection found dead ({e.Source}){(e.Error is null ? string.Empty : ": " + FailureText.Describe(e.Error))}"));
        client.OnReap += (_, e) => Report(e.Locked
            ? Invariant($"reaper pass terminated {e.Killed} backend(s) in {e.Duration.TotalMilliseconds:0} ms.")
            : "reaper pass skipped: another client of the service holds the lock.");
    }

    private static string Invariant(FormattableString text) => FormattableString.Invariant(text);

    private static string Cause(Exception? error) => error is null ? "an unknown failure" : FailureText.Describe(error);

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

    /// <summary>
    /// The open transaction can no longer commit: a statement failed in it (the server aborted it) or its connection
    /// was lost. Undo-AequorTransaction (or ROLLBACK) ends it; Complete-AequorTransaction rolls back and says so.
    /// </summary>
    public bool TransactionFailed => !IsClosed && (_client.TransactionAborted || _client.TransactionLost);

    /// <summary>The runspace's default: what cmdlets use without -Session.</summary>
    public bool IsDefault => Owner?.Default == this;

    public DateTimeOffset ConnectedAt { get; }

    /// <summary>Statements run through Invoke-AequorQuery.</summary>
    public long Queries => Interlocked.Read(ref _queries);

    /// <summary>Connections opened to replace an earlier one (a broken socket, a failed renewal).</summary>
    public long Reconnects => _client.Counters.Reconnects;

    /// <summary>Retries of connects and statements.</summary>
    public long Retries => _client.Counters.Retries;

    /// <summary>Lease renewals the server confirmed.</summary>
    public long Heartbeats => _client.Counters.Heartbeats;

    /// <summary>Reaper passes run on this session: after a connect, as the schedule decides, and by Invoke-AequorReap (-WhatIf ones included).</summary>
    public long ReapPasses => _client.Counters.ReapPasses;

    internal AequorClient Client => _client;

    internal Redactor Redactor { get; }

    internal RunspaceSessions? Owner { get; set; }

    /// <summary>Set on the stand-in that -Session binds for a name that is not open: the error each cmdlet reports.</summary>
    internal System.Management.Automation.ErrorRecord? NotFound { get; init; }

    internal bool IsClosed => Volatile.Read(ref _closed) != 0;

    /// <summary>
    /// A transaction was open when the session closed (Disconnect-Aequor from another runspace, a Connect-Aequor that
    /// replaced it by name, Remove-Module): the server rolled it back. The script that opened it may hear of the close only
    /// when it next uses the session, and must then hear that nothing was committed.
    /// </summary>
    internal bool ClosedInTransaction => Volatile.Read(ref _closedInTransaction) != 0;

    internal void CountQuery() => Interlocked.Increment(ref _queries);

    /// <summary>
    /// Whether this thread holds the session's open reader: a pipeline thread inside the WriteObject of
    /// Invoke-AequorQuery's rows, running the commands downstream of it. Any call on the session from there
    /// would wait for the one-call-at-a-time gate that this very thread holds, for ever. Another thread
    /// (another runspace sharing the session) is not refused: it waits its turn, which comes.
    /// </summary>
    internal bool IsStreamingOnThisThread => Volatile.Read(ref _streamingThread) == Environment.CurrentManagedThreadId;

    /// <summary>From when the reader holds the gate until just before it is disposed (which releases the gate).</summary>
    internal void BeginStreaming(string busyWith = StreamingRows)
    {
        BusyWith = busyWith;
        Volatile.Write(ref _streamingThread, Environment.CurrentManagedThreadId);
    }

    /// <summary>What holds the session on this pipeline thread, for AequorSessionBusy: rows being read, or a COPY.</summary>
    internal string BusyWith { get; private set; } = StreamingRows;

    private const string StreamingRows = "streaming the rows of another query";

    internal void EndStreaming() => Interlocked.CompareExchange(ref _streamingThread, 0, Environment.CurrentManagedThreadId);

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
    internal void Report(string? verbose, string? warning = null)
    {
        var listener = Volatile.Read(ref _listener);
        if (listener is null)
        {
            return;
        }

        if (verbose is not null)
        {
            listener.PostVerbose(Redactor.Redact($"Session '{Name}': {verbose}"));
        }

        if (warning is not null)
        {
            listener.PostWarning(Redactor.Redact($"Session '{Name}': {warning}"));
        }
    }

    /// <summary>Closes the connection once; never throws (a dead socket is already closed).</summary>
    internal void Close()
    {
        var openTransaction = _client.InTransaction;
        if (Interlocked.Exchange(ref _closed, 1) != 0)
        {
            return;
        }

        if (openTransaction)
        {
            Volatile.Write(ref _closedInTransaction, 1);
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
