using System.Management.Automation.Runspaces;
using System.Runtime.CompilerServices;

namespace Aequor.PowerShell;

/// <summary>
/// Sessions per runspace, not per process: parallel runspaces, ForEach-Object -Parallel and Pester
/// runs never see each other's. A runspace's sessions close when it closes, and when the module is
/// removed from it; <see cref="CloseAll"/> closes every runspace's.
/// </summary>
internal static class SessionStore
{
    private static readonly ConditionalWeakTable<Runspace, RunspaceSessions> Table = new();

    /// <summary>The calling pipeline thread's runspace's sessions.</summary>
    public static RunspaceSessions Current =>
        For(Runspace.DefaultRunspace ?? throw new InvalidOperationException("Aequor cmdlets run inside a PowerShell runspace."));

    public static RunspaceSessions For(Runspace runspace)
    {
        ArgumentNullException.ThrowIfNull(runspace);
        return Table.GetValue(runspace, static r =>
        {
            r.StateChanged += OnRunspaceStateChanged;
            return new RunspaceSessions();
        });
    }

    /// <summary>Closes the sessions of the calling thread's runspace (Remove-Module runs there).</summary>
    public static void CloseCurrentRunspace()
    {
        if (Runspace.DefaultRunspace is { } runspace && Table.TryGetValue(runspace, out var sessions))
        {
            sessions.CloseAll();
        }
    }

    /// <summary>Closes every session of every runspace of the process.</summary>
    public static void CloseAll()
    {
        foreach (var (_, sessions) in Table)
        {
            sessions.CloseAll();
        }
    }

    private static void OnRunspaceStateChanged(object? sender, RunspaceStateEventArgs e)
    {
        if (sender is Runspace runspace
            && e.RunspaceStateInfo.State is RunspaceState.Closing or RunspaceState.Closed or RunspaceState.Broken
            && Table.TryGetValue(runspace, out var sessions))
        {
            sessions.CloseAll();
        }
    }
}

/// <summary>One runspace's sessions by name (case-insensitive, in connect order) and its default.</summary>
internal sealed class RunspaceSessions
{
    private readonly object _gate = new();
    private readonly List<AequorSession> _sessions = [];

    public AequorSession? Default { get; private set; }

    public IReadOnlyList<AequorSession> Snapshot()
    {
        lock (_gate)
        {
            return [.. _sessions];
        }
    }

    public AequorSession? Find(string name)
    {
        lock (_gate)
        {
            return _sessions.Find(s => string.Equals(s.Name, name, StringComparison.OrdinalIgnoreCase));
        }
    }

    /// <summary>Adds a session as the default; returns the one it replaces under the same name, for the caller to close.</summary>
    public AequorSession? Add(AequorSession session)
    {
        lock (_gate)
        {
            var old = _sessions.Find(s => string.Equals(s.Name, session.Name, StringComparison.OrdinalIgnoreCase));
            if (old is not null)
            {
                _sessions.Remove(old);
                old.Owner = null;
            }

            _sessions.Add(session);
            session.Owner = this;
            Default = session;
            return old;
        }
    }

    public bool Remove(AequorSession session)
    {
        lock (_gate)
        {
            if (!_sessions.Remove(session))
            {
                return false;
            }

            if (Default == session)
            {
                // No silent switch to another server: without a default, cmdlets ask for -Session.
                Default = null;
            }

            return true;
        }
    }

    public void CloseAll()
    {
        AequorSession[] closing;
        lock (_gate)
        {
            closing = [.. _sessions];
            _sessions.Clear();
            Default = null;
        }

        foreach (var session in closing)
        {
            session.Close();
        }
    }
}
