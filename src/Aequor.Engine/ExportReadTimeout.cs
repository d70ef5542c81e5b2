using Npgsql;

namespace Aequor.Engine;

/// <summary>
/// The command timeout of an export, kept by the export itself: armed while it waits for the server (the COPY's start,
/// each chunk of rows, its end), it sends the server a cancel request, which ends the COPY and leaves the connection
/// working. Npgsql's own read timeout on a COPY's rows breaks the connection instead (no cancel is sent): the export
/// was reported as a lost connection, and a transaction around it as lost. Npgsql still bounds the wait for the COPY's
/// start by the session's timeout (it sets it as the COPY begins, out of reach).
/// </summary>
internal sealed class ExportReadTimeout : IDisposable
{
    private readonly int _milliseconds;
    private readonly CancellationTokenSource? _timer;
    private readonly CancellationTokenRegistration _registration;
    private int _fired;

    public ExportReadTimeout(NpgsqlConnection connection, int seconds)
    {
        Seconds = seconds;
        _milliseconds = (int)Math.Min(seconds * 1000L, int.MaxValue);
        if (seconds > 0)
        {
            _timer = new CancellationTokenSource();
            _registration = _timer.Token.Register(() =>
            {
                Volatile.Write(ref _fired, 1);
                ServerCancel.TrySend(connection);
            });
        }
    }

    public int Seconds { get; }

    /// <summary>Whether the timeout sent the cancel: a 57014 that follows is the export's timeout, not the server's.</summary>
    public bool Fired => Volatile.Read(ref _fired) == 1;

    /// <summary>Starts counting before a wait for the server.</summary>
    public void Arm() => _timer?.CancelAfter(_milliseconds);

    /// <summary>Stops counting while the rows go to the destination: a slow disk is not the server's round trip.</summary>
    public void Disarm()
    {
        if (_timer is { IsCancellationRequested: false } timer)
        {
            timer.CancelAfter(Timeout.Infinite);
        }
    }

    public void Dispose()
    {
        _registration.Dispose();
        _timer?.Dispose();
    }
}
