using Npgsql;

namespace Aequor.Engine;

/// <summary>
/// One call at a time (the gate), and a dispose that other threads' calls survive: a shared session is closed by
/// Disconnect-Aequor, a runspace closing or the module's removal while another runspace runs a query on it.
/// </summary>
public sealed partial class AequorClient
{
    private readonly SemaphoreSlim _gate = new(1, 1);

    // Cancelled by DisposeAsync; every call's token is linked to it, so a waiter, a retry delay or a connect in
    // progress ends at once, and a running statement gets the server's cancel. Never disposed: a call that is
    // still ending reads its token.
    private readonly CancellationTokenSource _disposing = new();
    private volatile bool _disposed;
    private int _disposeStarted;

    /// <summary>The token of one call (the caller's and the client's dispose) and the link to undo afterwards.</summary>
    private readonly struct CallScope(CancellationTokenSource? linked, CancellationToken token) : IDisposable
    {
        public CancellationToken Token { get; } = token;

        public void Dispose() => linked?.Dispose();
    }

    /// <summary>
    /// Takes the gate for one call. A free gate is taken without a task on the synchronous path; a busy one is
    /// waited for (another thread's call) until the caller cancels or the client is disposed.
    /// </summary>
    private ValueTask<CallScope> EnterAsync(bool synchronous, CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var linked = cancellationToken.CanBeCanceled ? CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _disposing.Token) : null;
        var token = linked?.Token ?? _disposing.Token;

        // The usual case of the synchronous path without a state machine: every call of a cmdlet passes here.
        if (synchronous && !token.IsCancellationRequested && _gate.Wait(0, CancellationToken.None))
        {
            return new(Entered(linked, token));
        }

        return WaitForGateAsync(linked, token, cancellationToken);
    }

    private async ValueTask<CallScope> WaitForGateAsync(CancellationTokenSource? linked, CancellationToken token, CancellationToken cancellationToken)
    {
        try
        {
            await _gate.WaitAsync(token).ConfigureAwait(false);
        }
        catch (OperationCanceledException ex) when (DisposedDuring(cancellationToken))
        {
            linked?.Dispose();
            throw ClientDisposed(ex);
        }
        catch
        {
            linked?.Dispose();
            throw;
        }

        return Entered(linked, token);
    }

    /// <summary>The gate is held: a dispose that came meanwhile still ends the call here.</summary>
    private CallScope Entered(CancellationTokenSource? linked, CancellationToken token)
    {
        if (_disposed)
        {
            ReleaseGate();
            linked?.Dispose();
            throw ClientDisposed(null);
        }

        return new CallScope(linked, token);
    }

    /// <summary>The call's token was cancelled by the dispose, not by its caller.</summary>
    private bool DisposedDuring(CancellationToken callerToken) => _disposed && !callerToken.IsCancellationRequested;

    private static ObjectDisposedException ClientDisposed(Exception? inner) =>
        new("The Aequor client was disposed (its session closed) while this call was waiting or running.", inner);

    private void ReleaseGate()
    {
        if (_disposed)
        {
            // The call that held the gate closes the connection itself: DisposeAsync never touches a connection
            // a call is using (Npgsql connections are not thread-safe), unless that call outlives its bound.
            CloseOnDispose();
        }

        _gate.Release();
    }

    /// <summary>
    /// Stops the client: calls waiting for the gate get <see cref="ObjectDisposedException"/> at once; the call that
    /// holds it is cancelled (a running statement gets the server's cancel) and waited for, up to Npgsql's
    /// CancellationTimeout and a second; then the connection is closed. Nothing is run or connected afterwards.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposeStarted, 1) != 0)
        {
            return;
        }

        _disposed = true;

        // Npgsql's cancellation callback sends a cancel request and may block on a stalled network: off this thread.
        _ = Task.Run(() =>
        {
            try
            {
                _disposing.Cancel();
            }
#pragma warning disable CA1031 // A cancel request that fails leaves the statement to end by itself.
            catch (Exception)
#pragma warning restore CA1031
            {
            }
        }, CancellationToken.None);

        // Npgsql waits CancellationTimeout (2 s by default; 0 waits for ever, -1 not at all) for the server's answer
        // to a cancel before it breaks the connection itself; the second covers a statement that ends meanwhile.
        var bound = TimeSpan.FromMilliseconds(Math.Max(0, _baseBuilder.CancellationTimeout) + 1_000);

        // Once taken, the gate is kept: any later call finds the client disposed.
        var idle = await _gate.WaitAsync(bound).ConfigureAwait(false);
        var transaction = Interlocked.Exchange(ref _transaction, null);
        var connection = Interlocked.Exchange(ref _connection, null);
        if (idle)
        {
            await CloseQuietlyAsync(transaction, connection).ConfigureAwait(false);
        }
        else
        {
            // A call still holds the connection past the bound (a reader its caller keeps open, or a network that
            // swallows the replies and the cancel): Npgsql's close waits for that call's read, which only Npgsql's
            // own timeouts end, so the close goes on without the dispose waiting for it.
            _ = Task.Run(() => CloseQuietlyAsync(transaction, connection), CancellationToken.None);
        }
    }

    private static async Task CloseQuietlyAsync(NpgsqlTransaction? transaction, NpgsqlConnection? connection)
    {
        if (transaction is not null)
        {
            await DisposeQuietlyAsync(transaction).ConfigureAwait(false);
        }

        if (connection is not null)
        {
            await DisposeQuietlyAsync(connection).ConfigureAwait(false);
        }
    }

    private void CloseOnDispose()
    {
        var transaction = Interlocked.Exchange(ref _transaction, null);
        var connection = Interlocked.Exchange(ref _connection, null);
        try
        {
            transaction?.Dispose();
            connection?.Dispose();
        }
#pragma warning disable CA1031 // Closing what may already be broken must not replace the call's own outcome.
        catch (Exception)
#pragma warning restore CA1031
        {
        }
    }
}
