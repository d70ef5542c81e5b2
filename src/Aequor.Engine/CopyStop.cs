using Npgsql;

namespace Aequor.Engine;

/// <summary>
/// A cancelled token's end of a COPY held up on the server: waiting to begin on a locked table, a row being sent to a
/// server that reads no more (a row lock, a slow trigger), the end waiting for the server to insert. Nothing in Npgsql
/// stops a blocked COPY but its round-trip timeout, which then breaks the connection. So the server is sent a cancel
/// request: it ends the COPY with 57014 and, per the protocol, reads and drops the rows still coming, which frees a
/// blocked send, and the connection goes on. A server that has not let go within the connection's Cancellation Timeout
/// (Npgsql's own bound for a cancel's answer; -1 none, 0 for ever) has the connection cut: it is ours, and a server
/// rolls back a COPY whose client is gone. Armed around each wait only, so that no cancel is sent once the COPY ended.
/// </summary>
internal sealed class CopyStop
{
    private readonly NpgsqlConnection _connection;
    private readonly int _cancellationTimeout;
    private readonly int _connectTimeout;
    private readonly object _gate = new();
    private CancellationTokenRegistration _registration;
    private Timer? _cutter;
    private Task? _sending;
    private bool _armed;

    // Only the thread that arms and disarms reads it: a wait with a token that cannot be cancelled costs nothing.
    private bool _registered;

    public CopyStop(NpgsqlConnection connection)
    {
        _connection = connection;
        var settings = new NpgsqlConnectionStringBuilder(connection.ConnectionString);
        _cancellationTimeout = settings.CancellationTimeout;
        _connectTimeout = settings.Timeout;
    }

    /// <summary>The token was cancelled during the last armed wait: a cancel request went (or was tried).</summary>
    public bool Requested { get; private set; }

    /// <summary>The connection was cut: the server did not let go in time, or the cancel could not be sent.</summary>
    public bool Cut { get; private set; }

    /// <summary>Milliseconds the server is given to answer a cancel before the connection is cut.</summary>
    public int CancellationTimeout => _cancellationTimeout;

    public void Arm(CancellationToken cancellationToken)
    {
        if (!cancellationToken.CanBeCanceled)
        {
            // Nothing can stop this wait, and the last one's Stop has ended (Disarm waited for it).
            Requested = false;
            return;
        }

        lock (_gate)
        {
            _armed = true;
            Requested = false;
        }

        _registered = true;
        _registration = cancellationToken.UnsafeRegister(static state => ((CopyStop)state!).Stop(), this);
    }

    /// <summary>
    /// After the wait: returns once no cancel request can reach the server any more (one still on its way could stop
    /// the next statement instead).
    /// </summary>
    public void Disarm()
    {
        if (!_registered)
        {
            return;
        }

        _registered = false;
        lock (_gate)
        {
            _armed = false;
        }

        // Waits for a Stop running on the cancelling thread; none starts after.
        _registration.Dispose();
        _registration = default;
        Task? sending;
        lock (_gate)
        {
            _cutter?.Dispose();
            _cutter = null;
            sending = _sending;
            _sending = null;
        }

        if (sending is not null && !Cut && !sending.Wait(TimeSpan.FromSeconds(Math.Max(_connectTimeout, 1) + 1)))
        {
            // A cancel request that may still land would hit what runs next on this connection.
            Cut = ConnectionCut.TryCut(_connection);
        }
    }

    // On the cancelling thread (Ctrl+C's): quick, the request itself is sent from the pool, as a connect may take seconds.
    private void Stop()
    {
        lock (_gate)
        {
            if (!_armed || Requested || Cut)
            {
                return;
            }

            Requested = true;
            if (_cancellationTimeout < 0)
            {
                Cut = ConnectionCut.TryCut(_connection);
                return;
            }

            if (_cancellationTimeout > 0)
            {
                _cutter = new Timer(static state => ((CopyStop)state!).CutIfWaiting(), this, _cancellationTimeout, Timeout.Infinite);
            }

            _sending = Task.Run(() =>
            {
                if (!ServerCancel.TrySendAside(_connection))
                {
                    CutIfWaiting();
                }
            });
        }
    }

    private void CutIfWaiting()
    {
        lock (_gate)
        {
            if (_armed && !Cut)
            {
                Cut = ConnectionCut.TryCut(_connection);
            }
        }
    }
}
