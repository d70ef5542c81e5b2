using Npgsql;

namespace Aequor.Engine;

/// <summary>
/// The offset between this machine's clock and the database's, learned from a <c>clock_timestamp()</c>
/// that rides along a round trip the client makes anyway (the connect, the first statement on a connection, a
/// statement after an idle spell, every lease renewal). Lease expiries are signed on the database's timeline so
/// a skewed client clock can neither make its own lease look expired early to the reapers nor keep it alive
/// past its time.
/// </summary>
/// <remarks>
/// A reading is only as good as its round trip: the server answers a batch only once the whole batch has run, so
/// a probe ahead of a 3-minute report comes back 3 minutes later and its midpoint is 90 s off. A reading therefore
/// replaces the one held only when its error (half its round trip) is no larger than the held one's, grown by
/// <see cref="DriftMsPerSecond"/> for each second since it was taken (on the monotonic clock: a wall clock stepped
/// back would freeze the age); the offset itself only drifts slowly. A reading whose offset cannot be reconciled
/// with the held one (their error intervals do not meet) replaces it whatever its round trip: the client's clock was
/// stepped (NTP, a VM resumed), and the held offset is now wrong by the step. The reading at connect always replaces
/// it: the new connection may be to another server (a multi-host string).
/// </remarks>
internal sealed class ServerClock
{
    /// <summary>
    /// How fast the held reading is taken to lose accuracy: 1 ms a second (1,000 ppm), above what quartz drift
    /// or NTP slewing (500 ppm at most) do, so an old reading gives way to a newer, somewhat longer one.
    /// </summary>
    public const double DriftMsPerSecond = 1;

    private readonly TimeProvider _time;
    private readonly object _gate = new();
    private long _offsetMs;

    // Under _gate: the held reading's error (half its round trip) and when it was taken (monotonic timestamp).
    private long _errorMs;
    private long _readAtTimestamp;

    public ServerClock(TimeProvider? time = null)
    {
        _time = time ?? TimeProvider.System;
    }

    public bool IsKnown { get; private set; }

    /// <summary>Database time minus client time, in milliseconds (0 until learned).</summary>
    public long OffsetMs => _offsetMs;

    public long ClientNowMs() => _time.GetUtcNow().ToUnixTimeMilliseconds();

    /// <summary>
    /// A <c>clock_timestamp()</c> column in Unix milliseconds. Read as a timestamptz rather than computed on the
    /// server as <c>(extract(epoch FROM …) * 1000)::int8</c>: on a fresh backend that numeric arithmetic's first
    /// catalogue lookups cost ~1.6 ms of every connect (connect + first statement 1.22–1.24× raw Npgsql against
    /// 1.18–1.19×, 3 interleaved pairs). Read as a DateTimeOffset, which carries its offset: the conversion does not
    /// depend on a DateTime's Kind.
    /// </summary>
    public static long ReadDatabaseMs(NpgsqlDataReader reader, int ordinal)
    {
        ArgumentNullException.ThrowIfNull(reader);
        return reader.GetFieldValue<DateTimeOffset>(ordinal).ToUnixTimeMilliseconds();
    }

    public long DatabaseNowMs() => ClientNowMs() + _offsetMs;

    /// <summary>
    /// Records one reading: the database said <paramref name="databaseMs"/> somewhere between the client
    /// sending (<paramref name="sentAtClientMs"/>) and receiving (<paramref name="receivedAtClientMs"/>);
    /// the midpoint is the best guess, off by at most half the round trip. It is kept only if that is no worse
    /// than the reading held (see the remarks), unless <paramref name="fresh"/> (a new connection). Returns
    /// whether it was kept.
    /// </summary>
    public bool Observe(long sentAtClientMs, long receivedAtClientMs, long databaseMs, bool fresh = false)
    {
        var errorMs = Math.Max(0, receivedAtClientMs - sentAtClientMs) / 2;
        var midpoint = sentAtClientMs + errorMs;
        lock (_gate)
        {
            var offsetMs = databaseMs - midpoint;
            if (IsKnown && !fresh)
            {
                var heldErrorMs = _errorMs + (_time.GetElapsedTime(_readAtTimestamp).TotalSeconds * DriftMsPerSecond);
                var reconcilable = Math.Abs(offsetMs - _offsetMs) <= errorMs + heldErrorMs;
                if (errorMs > heldErrorMs && reconcilable)
                {
                    return false;
                }
            }

            _errorMs = errorMs;
            _readAtTimestamp = _time.GetTimestamp();
            Interlocked.Exchange(ref _offsetMs, offsetMs);
            IsKnown = true;
            return true;
        }
    }
}
