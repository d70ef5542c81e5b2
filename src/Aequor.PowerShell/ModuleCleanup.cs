namespace Aequor.PowerShell;

/// <summary>
/// Work to do when the module is removed (Remove-Module Aequor, Import-Module -Force): e.g. close
/// the removing runspace's sessions. Callbacks run on the thread of the runspace that removes the
/// module (Runspace.DefaultRunspace is that runspace), in registration order, and stay registered
/// until the returned handle is disposed, so one registration made in a static constructor serves
/// every later import. A throwing callback is contained: the others still run and removal completes.
/// </summary>
internal static class ModuleCleanup
{
    private static readonly object Gate = new();
    private static readonly List<Action> Callbacks = [];

    public static IDisposable Register(Action callback)
    {
        ArgumentNullException.ThrowIfNull(callback);
        lock (Gate)
        {
            Callbacks.Add(callback);
        }

        return new Registration(callback);
    }

    /// <summary>Runs every callback; returns the failures (never throws) so removal always completes.</summary>
    internal static IReadOnlyList<Exception> RunAll()
    {
        Action[] snapshot;
        lock (Gate)
        {
            snapshot = [.. Callbacks];
        }

        var failures = new List<Exception>();
        foreach (var callback in snapshot)
        {
            try
            {
                callback();
            }
#pragma warning disable CA1031 // One failing cleanup must not leave the other sessions open or the resolver hooked.
            catch (Exception ex)
#pragma warning restore CA1031
            {
                failures.Add(ex);
            }
        }

        return failures;
    }

    private sealed class Registration(Action callback) : IDisposable
    {
        private Action? _callback = callback;

        public void Dispose()
        {
            var callback = Interlocked.Exchange(ref _callback, null);
            if (callback is null)
            {
                return;
            }

            lock (Gate)
            {
                Callbacks.Remove(callback);
            }
        }
    }
}
