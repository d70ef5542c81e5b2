namespace Aequor.Engine.Reaper;

/// <summary>
/// When a client runs an automatic pass after connecting: with probability
/// <see cref="ReaperOptions.ReaperRunProbability"/>, outside a cooldown of
/// <see cref="ReaperOptions.ReaperCooldownMs"/> plus up to 20 % random jitter; after a busy lock the
/// interval grows ×1.5 up to 10 minutes and resets after a pass that held the lock.
/// Storm mode — the database near its connection limit — skips probability and cooldown (a pass
/// still needs the lock) until a pass measures the database below the limit again.
/// With <see cref="ReaperOptions.StormScope"/> storm mode is the state shared by the process's reapers of that
/// scope (<see cref="StormSignal"/>): a 53300 any of them saw turns it on for all, a pass any of them ran that
/// measured the database below the limit turns it off for all (the clients refused earlier need no pass of
/// their own once a neighbour found the slots free). A pass whose killed backends have exited counts their slots
/// free (<see cref="ReapResult.StillNearLimit"/>); the clients of the scope that wait out a 53300 retry delay
/// wait for the passes under way and are woken when one frees slots (<see cref="WaitForRetryAsync"/>). Pure logic on an injected clock and random source; thread-safe.
/// </summary>
public sealed class ReaperSchedule
{
    /// <summary>The jitter added to each wait is up to this share of the interval, so a fleet that connected together spreads out.</summary>
    public const double JitterShare = 0.2;

    private const double BackoffFactor = 1.5;

    /// <summary>
    /// The least a busy lock backs off to. Without it a cooldown of 0 or 1 ms never grew (0 × 1.5 = 0, and 1 × 1.5
    /// truncates to 1): every connect of the fleet went on scanning while another instance held the lock.
    /// </summary>
    private const long BusyLockFloorMs = 1_000;

    private readonly object _gate = new();
    private readonly TimeProvider _time;
    private readonly Random _random;
    private readonly double _probability;
    private readonly long _cooldownMs;
    private readonly StormSignal? _shared;

    // The wake-up of the refused clients: the shared signal, or one of this schedule's own without a scope.
    private readonly StormSignal _freed;
    private long _intervalMs;
    private DateTimeOffset _notBefore = DateTimeOffset.MinValue;
    private bool _storm;
    private long _passesStarted;
    private long _stormPasses;

    public ReaperSchedule(ReaperOptions options, TimeProvider? timeProvider = null, Random? random = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        _time = timeProvider ?? TimeProvider.System;
        _random = random ?? new Random();
        _probability = options.ReaperRunProbability;
        _cooldownMs = options.ReaperCooldownMs;
        _intervalMs = _cooldownMs;
        _shared = options.StormScope is { } scope ? StormSignal.For(scope) : null;
        _freed = _shared ?? new StormSignal();
    }

    public bool InStormMode
    {
        get
        {
            lock (_gate)
            {
                return _shared?.IsOn ?? _storm;
            }
        }
    }

    /// <summary>The current wait between passes before jitter: the cooldown, or more after busy locks.</summary>
    public TimeSpan Interval
    {
        get
        {
            lock (_gate)
            {
                return TimeSpan.FromMilliseconds(_intervalMs);
            }
        }
    }

    /// <summary>Before this instant no pass runs outside storm mode.</summary>
    public DateTimeOffset NextEligibleAt
    {
        get
        {
            lock (_gate)
            {
                return _notBefore;
            }
        }
    }

    /// <summary>Automatic passes this schedule let start.</summary>
    public long PassesStarted => Interlocked.Read(ref _passesStarted);

    /// <summary>Of those, the ones started because of storm mode.</summary>
    public long StormPasses => Interlocked.Read(ref _stormPasses);

    /// <summary>
    /// How many passes of this scope have freed slots so far. A client reads it before a connect attempt and
    /// gives it to <see cref="WaitForRetryAsync"/> if that attempt is refused.
    /// </summary>
    public long SlotsFreedCount => _freed.FreedCount;

    /// <summary>
    /// The retry delay after a 53300, cut short when a pass of this scope frees slots: at once if one did since
    /// <paramref name="freedCountBeforeAttempt"/> was read, else when the next one does or after
    /// <paramref name="delay"/>. While a pass is under way, or a neighbour's connect that may get in and run one
    /// (<see cref="ConnectStarting"/>), the wait may run up to <paramref name="longest"/> instead: the server stays
    /// full until a pass frees slots, so an attempt before then is refused for sure and spends a retry. When the
    /// last of them ends without freeing any, the client goes back to its own delay: the jitter still spreads the
    /// retries of a crowd refused by a server full of live clients. The retry is still taken from the caller's
    /// budget; only the sleep changes.
    /// </summary>
    public async Task WaitForRetryAsync(TimeSpan delay, long freedCountBeforeAttempt, TimeSpan longest, CancellationToken cancellationToken)
    {
        var start = _time.GetTimestamp();
        var stretched = longest > delay ? longest : delay;
        while (true)
        {
            var next = _freed.NextFreed;
            if (_freed.FreedCount != freedCountBeforeAttempt)
            {
                return;
            }

            var left = (_freed.PassUnderWay || _freed.ConnectUnderWay ? stretched : delay) - _time.GetElapsedTime(start);
            if (left <= TimeSpan.Zero)
            {
                return;
            }

            using var sleep = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            var timer = Task.Delay(left, _time, sleep.Token);
            await Task.WhenAny(timer, next).ConfigureAwait(false);
            await sleep.CancelAsync().ConfigureAwait(false);
            cancellationToken.ThrowIfCancellationRequested();
        }
    }

    /// <summary>A connect attempt of this client begins, with the pass it may run; end it with <see cref="ConnectEnded"/>.</summary>
    public void ConnectStarting() => _freed.ConnectStarted();

    /// <summary>The attempt of <see cref="ConnectStarting"/> ended (connected, refused or failed), its pass with it.</summary>
    public void ConnectEnded() => _freed.ConnectEnded();

    /// <summary>
    /// Whether a pass is due after a successful connect. True means run a pass now; the cooldown is then
    /// reserved at once, so concurrent connects of the same client do not all start one. The client's reaper
    /// asks <see cref="TryStartAfterConnect"/>, which also keeps to one pass of the scope at a time.
    /// </summary>
    public bool ShouldRunAfterConnect()
    {
        if (!Roll(out var storm))
        {
            return false;
        }

        Count(storm);
        return true;
    }

    /// <summary>
    /// <see cref="ShouldRunAfterConnect"/>, and the pass starts (<see cref="PassStarting"/>) only if no other pass of
    /// the scope is under way in this process: that one finds the lock free and reaps, or it is busy and a second
    /// pass would find it busy too; either way its result serves this client (storm mode, the wake-up). Without
    /// this, in a burst every client that got a slot ran its own pass in storm mode, each a cold backend
    /// planning the scan over pg_stat_activity (50–100 ms of server CPU each, measured) beside the one pass
    /// that held the lock, and each delayed its own first statement by it. Atomic across the scope's schedules.
    /// </summary>
    internal bool TryStartAfterConnect()
    {
        if (!Roll(out var storm) || !_freed.TryStartAlone())
        {
            return false;
        }

        Count(storm);
        return true;
    }

    /// <summary>A connect failed with 53300 (too many clients), or something else showed the database near its limit.</summary>
    public void ReportNearLimit() => ReportLoad(nearLimit: true);

    /// <summary>
    /// A connect measured the database's load (<see cref="ConnectSql"/>): near the limit turns storm mode on, as a
    /// 53300 would; below it turns it off, as a pass that measured it below would — it is the latest measure.
    /// </summary>
    public void ReportLoad(bool nearLimit)
    {
        lock (_gate)
        {
            _storm = nearLimit;
            _shared?.Set(nearLimit);
        }
    }

    /// <summary>Feeds a finished pass (automatic or manual) back: backoff, reset, storm mode on or off.</summary>
    public void RecordPass(ReapResult result)
    {
        ArgumentNullException.ThrowIfNull(result);
        lock (_gate)
        {
            if (result.LockAcquired)
            {
                _intervalMs = _cooldownMs;
                _shared?.QuietUntil(_time.GetUtcNow() + TimeSpan.FromMilliseconds(_cooldownMs));
            }
            else if (result.DatabaseNowMs is not null)
            {
                // The scan ran and found the lock busy: another instance is reaping, back off.
                _intervalMs = Math.Min(Math.Max((long)(_intervalMs * BackoffFactor), BusyLockFloorMs), Math.Max(_cooldownMs, ReaperOptions.MaxBackoffMs));
            }

            Reserve(_time.GetUtcNow());
            if (result.ConnectionsUsed is not null)
            {
                _storm = result.StillNearLimit;
                _shared?.Set(result.StillNearLimit);
            }
        }
    }

    /// <summary>A pass of this schedule starts: refused clients of the scope wait for it.</summary>
    internal void PassStarting() => _freed.PassStarted();

    /// <summary>That pass returned; <paramref name="freed"/>: some killed backends have exited. Wakes the waiting clients.</summary>
    internal void PassFinished(bool freed) => _freed.PassEnded(freed);

    /// <summary>The decision itself: storm mode, or cooldown and probability; reserves the cooldown when it says run.</summary>
    private bool Roll(out bool storm)
    {
        lock (_gate)
        {
            var now = _time.GetUtcNow();
            storm = _shared?.IsOn ?? _storm;
            if (storm)
            {
                Reserve(now);
                return true;
            }

            if (now < _notBefore || _probability <= 0 || (_shared is not null && now.UtcTicks < _shared.QuietUntilTicks))
            {
                return false;
            }

            if (_probability < 1 && _random.NextDouble() >= _probability)
            {
                return false;
            }

            Reserve(now);
            return true;
        }
    }

    private void Count(bool storm)
    {
        Interlocked.Increment(ref _passesStarted);
        if (storm)
        {
            Interlocked.Increment(ref _stormPasses);
        }
    }

    private void Reserve(DateTimeOffset now) =>
        _notBefore = now + TimeSpan.FromMilliseconds(_intervalMs + (_random.NextDouble() * JitterShare * _intervalMs));
}
