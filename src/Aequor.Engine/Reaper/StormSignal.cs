using System.Collections.Concurrent;

namespace Aequor.Engine.Reaper;

/// <summary>
/// Storm mode shared by the reapers of one process that work on the same server, database and service
/// (<see cref="ReaperOptions.StormScope"/>). Each client has its own schedule, so without this a client that
/// got a slot never learns that its neighbours were refused (53300), and only its 10 % roll would start the
/// pass that frees their slots. Across processes nothing is shared: there each connect's own reading of the
/// database's load (<see cref="ReaperSchedule.ReportLoad"/>) starts storm mode for the client that gets in.
/// It also carries the wake-up: a pass whose killed backends have exited frees slots at that instant, and
/// the clients of the scope that sit out a 53300 retry delay should not sleep past it (up to
/// <c>MaxBackoff</c>, 2 s by default) while the burst fills the slots without them; nor retry into the
/// full server while a pass is under way, each futile attempt costing a backend fork on the server and
/// CPU in this process, which the pass needs (measured: the pass's two round trips were the critical path).
/// </summary>
internal sealed class StormSignal
{
    private static readonly ConcurrentDictionary<string, StormSignal> Scopes = new(StringComparer.Ordinal);
    private int _on;
    private long _freedCount;
    private int _passesUnderWay;
    private int _connectsUnderWay;
    private long _quietUntilTicks;
    private TaskCompletionSource _nextFreed = NewFreed();

    public static StormSignal For(string scope) => Scopes.GetOrAdd(scope, _ => new StormSignal());

    public bool IsOn => Volatile.Read(ref _on) != 0;

    /// <summary>How many times a pass of this scope has freed slots so far.</summary>
    public long FreedCount => Interlocked.Read(ref _freedCount);

    /// <summary>
    /// Completes when a pass of this scope next frees slots, or when the last pass under way ends without.
    /// Read it before <see cref="FreedCount"/> to miss none.
    /// </summary>
    public Task NextFreed => Volatile.Read(ref _nextFreed).Task;

    /// <summary>A pass of this scope has started and not yet returned.</summary>
    public bool PassUnderWay => Volatile.Read(ref _passesUnderWay) > 0;

    public void PassStarted() => Interlocked.Increment(ref _passesUnderWay);

    /// <summary>
    /// A connect attempt of this scope is under way, with the pass that may follow it: one that gets a slot in
    /// storm mode runs a pass before it returns. A cold process's connect takes seconds before it can (the data
    /// source's first catalogue load, first-use compilation, a busy server): refused neighbours that retried on
    /// their own delays meanwhile spent their retries before that pass, and failed (measured: 1 client of 30 in
    /// 3 of 15 cmdlet storms, 4 attempts in 2.9–4.0 s, the pass's connect returning at 3.9–5.1 s).
    /// </summary>
    public bool ConnectUnderWay => Volatile.Read(ref _connectsUnderWay) > 0;

    public void ConnectStarted() => Interlocked.Increment(ref _connectsUnderWay);

    /// <summary>The attempt of <see cref="ConnectStarted"/> ended, its pass with it, whatever happened.</summary>
    public void ConnectEnded()
    {
        if (Interlocked.Decrement(ref _connectsUnderWay) == 0 && !PassUnderWay)
        {
            // No neighbour left that could get in and run a pass: the waiters go back to their own retry delays.
            Interlocked.Exchange(ref _nextFreed, NewFreed()).TrySetResult();
        }
    }

    /// <summary>Starts a pass only if none of this scope is under way; false leaves everything as it was.</summary>
    public bool TryStartAlone() => Interlocked.CompareExchange(ref _passesUnderWay, 1, 0) == 0;

    /// <summary>The pass of <see cref="PassStarted"/> returned; <paramref name="freed"/>: some of its killed backends have exited.</summary>
    public void PassEnded(bool freed)
    {
        var left = Interlocked.Decrement(ref _passesUnderWay);
        if (freed)
        {
            SlotsFreed();
        }
        else if (left == 0)
        {
            // Nothing freed and no pass left that could: the waiters go back to their own retry delays.
            Interlocked.Exchange(ref _nextFreed, NewFreed()).TrySetResult();
        }
    }

    public void Set(bool on) => Volatile.Write(ref _on, on ? 1 : 0);

    /// <summary>
    /// Until when (UTC ticks) the scope's clients take no roll: a pass of the scope held the lock, and the cooldown
    /// is a minimum interval between passes, not between one client's passes. Without it every client of a
    /// process (runspaces, a burst of tasks) rolled its own probability after a neighbour had just reaped: three
    /// redundant passes of 100–190 ms in the storm bench, each before its client's first statement.
    /// </summary>
    public long QuietUntilTicks => Interlocked.Read(ref _quietUntilTicks);

    public void QuietUntil(DateTimeOffset until)
    {
        var ticks = until.UtcTicks;
        var seen = Interlocked.Read(ref _quietUntilTicks);
        while (ticks > seen)
        {
            var previous = Interlocked.CompareExchange(ref _quietUntilTicks, ticks, seen);
            if (previous == seen)
            {
                return;
            }

            seen = previous;
        }
    }

    /// <summary>A pass killed backends that have exited: wakes every client waiting on <see cref="NextFreed"/>.</summary>
    private void SlotsFreed()
    {
        // Count first, then swap: a waiter that read the old task and then the old count is woken by this call.
        Interlocked.Increment(ref _freedCount);
        Interlocked.Exchange(ref _nextFreed, NewFreed()).TrySetResult();
    }

    // Asynchronous continuations: the pass that frees the slots must not run the woken clients' connects inline.
    private static TaskCompletionSource NewFreed() => new(TaskCreationOptions.RunContinuationsAsynchronously);
}
