using System.Collections.Concurrent;
using System.Management.Automation;

namespace Aequor.PowerShell;

/// <summary>
/// The base of every cmdlet that calls the engine: one token that <see cref="StopProcessing"/>
/// (Ctrl+C, Stop-Job, a stopped PowerShell) cancels, passed to every engine call and awaited on the
/// pipeline thread, and a queue through which engine callbacks on other threads reach the Verbose
/// and Warning streams — written here, on the pipeline thread, never from theirs.
/// </summary>
public abstract class AequorCmdlet : PSCmdlet, IDisposable
{
    private readonly CancellationTokenSource _stop = new();
    private readonly ConcurrentQueue<Action<AequorCmdlet>> _posted = new();
    // No kernel wait handle: Task.AsyncWaitHandle and an AutoResetEvent per call each cost a handle that
    // on Linux is closed by the finalizer thread at ~0.5 ms of CPU apiece (profiled: 14.7 s of finalizer CPU
    // in a 26 s loop of one-row queries). A count released by the task's continuation and by Post wakes the pump.
    private readonly SemaphoreSlim _signal = new(0);
    private readonly Action _wake;
    private bool _disposed;
    // The pipeline thread while it is inside a blocking engine call: what the engine reports on it (Npgsql raises
    // notices on the thread that reads the socket) is written at once, not when the statement ends.
    private int _blockingThread;
    private Exception? _writeFailure;

    protected AequorCmdlet() => _wake = Wake;

    /// <summary>Cancelled when the pipeline is stopped.</summary>
    protected CancellationToken StopToken => _stop.Token;

    protected override void StopProcessing()
    {
        try
        {
            _stop.Cancel();
        }
        catch (ObjectDisposedException)
        {
            // The command finished while the stop was on its way.
        }
    }

    /// <summary>From any thread: run <paramref name="write"/> on the pipeline thread at the next chance.</summary>
    internal void Post(Action<AequorCmdlet> write)
    {
        if (_disposed)
        {
            return;
        }

        _posted.Enqueue(write);
        if (Volatile.Read(ref _blockingThread) == Environment.CurrentManagedThreadId)
        {
            WriteInsideCall();
            return;
        }

        Wake();
    }

    /// <summary>
    /// Writes what is queued from inside the engine's read loop. Nothing may be thrown back into it (that would break
    /// the connection): a write that throws (-WarningAction Stop, a stopped pipeline) is kept, the statement is
    /// cancelled on the server, and <see cref="Blocking"/> throws it once the engine has returned.
    /// </summary>
    private void WriteInsideCall()
    {
        if (_writeFailure is not null)
        {
            return;
        }

        try
        {
            DrainPosted();
        }
#pragma warning disable CA1031 // Not swallowed: rethrown by Blocking after the engine call.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            _writeFailure = ex;
            try
            {
                _stop.Cancel();
            }
            catch (ObjectDisposedException)
            {
            }
        }
    }

    private void Wake()
    {
        try
        {
            _signal.Release();
        }
        catch (ObjectDisposedException)
        {
            // The command ended first: nobody is waiting any more.
        }
    }

    /// <summary>
    /// Tells the host how a stopped command (Ctrl+C) left things: PowerShell takes no output from a stopped command, so
    /// what the engine did (nothing written, the connection kept or closed, a transaction aborted) goes to the host as a
    /// warning line, unless -WarningAction or $WarningPreference silences warnings.
    /// </summary>
    protected void WarnHostStopped(AequorSession session, string what)
    {
        ArgumentNullException.ThrowIfNull(session);
        var preference = MyInvocation.BoundParameters.TryGetValue("WarningAction", out var action) ? action : GetVariableValue("WarningPreference");
        if (preference is ActionPreference.SilentlyContinue or ActionPreference.Ignore)
        {
            return;
        }

        try
        {
            Host.UI.WriteWarningLine(session.Redactor.Redact($"{MyInvocation.MyCommand.Name} was stopped on session '{session.Name}': {what}"));
        }
#pragma warning disable CA1031 // A host that cannot write must not turn the stop into another error.
        catch (Exception)
#pragma warning restore CA1031
        {
        }
    }

    internal void PostVerbose(string message) => Post(c => c.WriteVerbose(message));

    internal void PostWarning(string message) => Post(c => c.WriteWarning(message));

    /// <summary>Waits for an engine call on the pipeline thread, writing what it posts meanwhile.</summary>
    protected T Await<T>(Task<T> task)
    {
        ArgumentNullException.ThrowIfNull(task);
        if (!task.IsCompleted)
        {
            Pump(task);
        }

        DrainPosted();
        try
        {
            return task.GetAwaiter().GetResult();
        }
        catch (OperationCanceledException) when (_stop.IsCancellationRequested)
        {
            throw new PipelineStoppedException();
        }
    }

    /// <summary>
    /// Runs a blocking engine call on the pipeline thread. What the engine reports on this thread meanwhile (server
    /// notices, retries, reconnects) is written as it comes; what other threads post, with it or once the call
    /// returns. A stop cancels the call on the server.
    /// </summary>
    /// <param name="abandon">
    /// Called with the call's result when writing what it posted throws (-WarningAction Stop on a server WARNING, a
    /// stopped pipeline, a command downstream of a merged stream): the result is never returned, so whatever it holds
    /// must be let go here. A reader holds the session's one-call gate: left open, the next command waited for ever.
    /// </param>
    protected T Blocking<TArg, T>(Func<TArg, CancellationToken, T> call, TArg argument, Action<T>? abandon = null)
    {
        ArgumentNullException.ThrowIfNull(call);
        T result;
        Volatile.Write(ref _blockingThread, Environment.CurrentManagedThreadId);
        try
        {
            result = call(argument, StopToken);
        }
        catch (Exception) when (_writeFailure is not null)
        {
            Volatile.Write(ref _blockingThread, 0);
            throw TakeWriteFailure();
        }
        catch (OperationCanceledException) when (_stop.IsCancellationRequested)
        {
            Volatile.Write(ref _blockingThread, 0);
            DrainPosted();
            throw new PipelineStoppedException();
        }
        catch
        {
            Volatile.Write(ref _blockingThread, 0);
            DrainPosted();
            throw;
        }

        Volatile.Write(ref _blockingThread, 0);
        if (_writeFailure is not null)
        {
            // The cancel came too late: the statement finished, but the command stops all the same.
            abandon?.Invoke(result);
            throw TakeWriteFailure();
        }

        try
        {
            DrainPosted();
        }
        catch
        {
            abandon?.Invoke(result);
            throw;
        }

        return result;
    }

    private Exception TakeWriteFailure()
    {
        var failure = _writeFailure!;
        _writeFailure = null;
        System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(failure).Throw();
        return failure;
    }

    protected void Await(Task task)
    {
        ArgumentNullException.ThrowIfNull(task);
        _ = Await(AsObjectTask(task));
    }

    private static async Task<object?> AsObjectTask(Task task)
    {
        await task.ConfigureAwait(false);
        return null;
    }

    private void Pump(Task task)
    {
        task.ConfigureAwait(false).GetAwaiter().UnsafeOnCompleted(_wake);
        while (!task.IsCompleted)
        {
            // A count left by an earlier call's posts only costs one more look at the task.
            _signal.Wait();
            DrainPosted();
        }
    }

    protected void DrainPosted()
    {
        while (_posted.TryDequeue(out var write))
        {
            write(this);
        }
    }

    /// <summary>The session given, else the runspace's default; a terminating AequorNoSession when there is none.</summary>
    internal AequorSession ResolveSession(AequorSession? given)
    {
        if (given?.NotFound is { } notFound)
        {
            ThrowTerminatingError(notFound);
        }

        var session = given ?? DefaultSession();
        if (session.IsClosed)
        {
            ThrowTerminatingError(SessionClosed(session));
        }

        ThrowIfStreamingHere(session);
        return session;
    }

    /// <summary>
    /// For a session that is one pipeline input among others: the session given, else the default. A closed
    /// one (AequorSessionClosed) or an unknown name (AequorSessionNotFound) is that input's error (non-terminating, null returned) so the sessions after it
    /// are still served; only no session at all (none given, no default) stops the command.
    /// </summary>
    internal AequorSession? ResolveInputSession(AequorSession? given)
    {
        if (PipedNullSession.Is(this, given))
        {
            WriteError(PipedNullSession.Error());
            return null;
        }

        if (given?.NotFound is { } notFound)
        {
            WriteError(notFound);
            return null;
        }

        var session = given ?? DefaultSession();
        if (session.IsClosed)
        {
            WriteError(SessionClosed(session));
            return null;
        }

        ThrowIfStreamingHere(session);
        return session;
    }

    private AequorSession DefaultSession()
    {
        var store = SessionStore.For(this);
        if (store.Default is null)
        {
            var open = store.Snapshot().Count;
            var hint = open == 0
                ? "Run Connect-Aequor first."
                : $"This runspace has {open} open session(s) but none is the default: pass -Session (Get-AequorSession lists them).";
            ThrowTerminatingError(Errors.Create(ErrorIds.NoSession, ErrorCategory.ConnectionError, $"There is no Aequor session. {hint}", null));
        }

        return store.Default!;
    }

    private protected static ErrorRecord SessionClosed(AequorSession session) =>
        Errors.Create(ErrorIds.SessionClosed, ErrorCategory.ResourceUnavailable, session.ClosedInTransaction
            ? $"The session '{session.Name}' is closed, and the transaction that was open on it when it closed was rolled back by the server: nothing of it was committed. Connect again with Connect-Aequor and run the transaction again."
            : $"The session '{session.Name}' is closed; connect again with Connect-Aequor.", session);

    /// <summary>
    /// A terminating AequorSessionBusy when this command runs downstream of Invoke-AequorQuery's rows on the same
    /// session (… | ForEach-Object { Invoke-AequorQuery … }): its call would wait for ever for the reader that
    /// this pipeline thread holds. Another runspace sharing the session is not refused: it waits its turn.
    /// </summary>
    internal void ThrowIfStreamingHere(AequorSession session)
    {
        if (session.IsStreamingOnThisThread)
        {
            ThrowTerminatingError(SessionBusy(session, BusyAdvice));
        }
    }

    /// <summary>What AequorSessionBusy tells this command's user to do instead.</summary>
    private protected virtual string BusyAdvice => CollectRowsAdvice;

    private const string CollectRowsAdvice =
        "Collect the rows first (-As DataTable, or assign them to a variable), or use a second session (Connect-Aequor -Name …).";

    /// <param name="consequence">What the command would do; by default that it would wait for ever.</param>
    private protected ErrorRecord SessionBusy(AequorSession session, string advice = CollectRowsAdvice, string? consequence = null) =>
        Errors.Create(ErrorIds.SessionBusy, ErrorCategory.ResourceBusy,
            $"Session '{session.Name}' is {session.BusyWith} in this pipeline; " +
            $"{consequence ?? $"{MyInvocation.MyCommand.Name} on it inside that pipeline would wait for ever"}. {advice}",
            session);

    /// <summary>
    /// Whether an exception is an engine call's failure, for the command to report as its own error. Not so what
    /// PowerShell throws through the command: a stopped pipeline, Select-Object -First, -ErrorAction Stop or
    /// -WarningAction Stop on what the command wrote, a host that cannot prompt. Those must pass unchanged.
    /// </summary>
    internal static bool IsEngineFailure(Exception ex) =>
        ex is not (PipelineStoppedException or PipelineClosedException or ActionPreferenceStopException or System.Management.Automation.Host.HostException)
        && ex.GetType().Name != "StopUpstreamCommandsException";

    /// <summary>A parameter PowerShell accepted but that cannot work: terminating AequorInvalidParameter.</summary>
    internal void ThrowInvalidParameter(string message, object? target = null) =>
        ThrowTerminatingError(Errors.Create(ErrorIds.InvalidParameter, ErrorCategory.InvalidArgument, message, target));

    public void Dispose()
    {
        Dispose(true);
        GC.SuppressFinalize(this);
    }

    protected virtual void Dispose(bool disposing)
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        if (disposing)
        {
            _stop.Dispose();
            _signal.Dispose();
        }
    }
}
