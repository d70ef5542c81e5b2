using System.Collections.Concurrent;

namespace Aequor.Engine.Reaper;

/// <summary>
/// Storm mode shared by the reapers of one process that work on the same server, database and service
/// (<see cref="ReaperOptions.StormScope"/>). Each client has its own schedule, so without this a client that
/// got a slot never learns that its neighbours were refused (53300), and only its 10 % roll would start the
/// pass that frees their slots. Across processes nothing is shared: there the roll, and each refused client's
/// own storm mode after it gets in, are all there is.
/// </summary>
internal sealed class StormSignal
{
    private static readonly ConcurrentDictionary<string, StormSignal> Scopes = new(StringComparer.Ordinal);
    private int _on;

    public static StormSignal For(string scope) => Scopes.GetOrAdd(scope, _ => new StormSignal());

    public bool IsOn => Volatile.Read(ref _on) != 0;

    public void Set(bool on) => Volatile.Write(ref _on, on ? 1 : 0);
}
