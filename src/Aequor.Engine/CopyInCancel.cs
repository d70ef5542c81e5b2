using Npgsql;

namespace Aequor.Engine;

/// <summary>
/// The token of a COPY … FROM STDIN while the client sends its data. A write the server does not read (it waits for a
/// lock, a row's uniqueness, a slow trigger) blocks the client: only a cancel request to the server ends it, so one
/// is sent then. Otherwise the loop that sends sees the token between writes and ends the COPY with a CopyFail, which
/// leaves the connection clean: a cancel request is not sent then, for after one the server leaves the COPY at once
/// and a CopyFail would wait for an answer that never comes (<see cref="Sent"/>: the COPY is ended with its end instead).
/// </summary>
internal sealed class CopyInCancel : IDisposable
{
    private const int Idle = 0;
    private const int Writing = 1;
    private const int CancelSent = 2;

    private readonly NpgsqlConnection _connection;
    private readonly CancellationToken _token;
    private readonly CancellationTokenRegistration _registration;
    private int _state;

    public CopyInCancel(NpgsqlConnection connection, CancellationToken token)
    {
        _connection = connection;
        _token = token;
        _registration = token.CanBeCanceled ? token.UnsafeRegister(static self => ((CopyInCancel)self!).OnCancel(), this) : default;
    }

    /// <summary>A cancel request went to the server during a write.</summary>
    public bool Sent => Volatile.Read(ref _state) == CancelSent;

    /// <summary>Before a write: false when the token is cancelled (do not write).</summary>
    public bool BeginWrite()
    {
        if (Interlocked.CompareExchange(ref _state, Writing, Idle) != Idle)
        {
            return false;
        }

        // The token's flag is set before its callbacks run: either this sees it, or OnCancel sees Writing.
        if (_token.IsCancellationRequested)
        {
            Interlocked.CompareExchange(ref _state, Idle, Writing);
            return false;
        }

        return true;
    }

    public void EndWrite() => Interlocked.CompareExchange(ref _state, Idle, Writing);

    private void OnCancel()
    {
        if (Interlocked.CompareExchange(ref _state, CancelSent, Writing) == Writing)
        {
            ServerCancel.TrySend(_connection);
        }
    }

    /// <summary>Waits for a cancel being sent: none may reach the server after the call returned.</summary>
    public void Dispose() => _registration.Dispose();
}
