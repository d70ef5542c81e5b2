using System.Management.Automation;
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
    /// <summary>
    /// A read-only global variable marking which script owns the runspace's sessions. ForEach-Object
    /// -Parallel reuses runspaces and resets their variables between iterations: a missing marker
    /// means the sessions belong to an earlier iteration, which are closed, not handed over.
    /// </summary>
    public const string MarkerVariable = "AequorSessionsMarker";

    private static readonly ConditionalWeakTable<Runspace, RunspaceSessions> Table = new();

    // Remove-Module Aequor closes the removing runspace's sessions; other runspaces keep theirs.
    // Registered once, when the first session store is touched: before that there is nothing to close.
    private static readonly IDisposable Cleanup = ModuleCleanup.Register(CloseCurrentRunspace);

    /// <summary>The sessions of the runspace <paramref name="cmdlet"/> runs in, as its script may see them.</summary>
    public static RunspaceSessions For(PSCmdlet cmdlet)
    {
        ArgumentNullException.ThrowIfNull(cmdlet);
        var sessions = For(cmdlet.SessionState, cmdlet.WriteWarning);
        // A script run in a scope of its own (& ./job.ps1, a runbook) sets $WarningPreference there, and that scope is gone
        // when the runspace closes: read now, as the script sees it where it runs its Aequor commands.
        sessions.ScriptSilencesWarnings = WarningsSilenced(cmdlet.SessionState.PSVariable, "WarningPreference");
        if (sessions.HostWarning is null && cmdlet.Host?.UI is { } ui)
        {
            // Read when the warning is due: by then the runspace is closing, and its SessionStateProxy refuses.
            var variables = cmdlet.SessionState.PSVariable;
            sessions.HostWarning = message =>
            {
                if (!sessions.ScriptSilencesWarnings && !WarningsSilenced(variables, "global:WarningPreference"))
                {
                    ui.WriteWarningLine(message);
                }
            };
        }

        return sessions;
    }

    /// <summary>
    /// The calling runspace's sessions as the script whose <paramref name="state"/> is given may see them:
    /// for code that runs outside a cmdlet's body, such as <c>-Session</c>'s name transformation, which must
    /// never hand an earlier script's session over. <paramref name="warn"/> hears of transactions rolled back.
    /// </summary>
    public static RunspaceSessions For(SessionState state, Action<string> warn)
    {
        ArgumentNullException.ThrowIfNull(state);
        ArgumentNullException.ThrowIfNull(warn);
        var sessions = Current;
        var variables = state.PSVariable;
        if (IsMarkedBy(variables.GetValue("global:" + MarkerVariable), sessions))
        {
            return sessions;
        }

        if (sessions.Marker is not null && sessions.CloseAll() is { Count: > 0 } rolledBack)
        {
            warn(RolledBackWarning(rolledBack, $"an earlier script in this runspace left them open (the ${MarkerVariable} variable that marks a script's sessions was gone: ForEach-Object -Parallel resets it between iterations, and Remove-Variable * -Force removes it)"));
        }

        sessions.Marker = new Marker();
        variables.Set("global:" + MarkerVariable, sessions.Marker);
        if (variables.Get("global:" + MarkerVariable) is { } variable)
        {
            variable.Description = "Marks this runspace's Aequor sessions as this script's (ForEach-Object -Parallel resets it between iterations).";
            variable.Options = ScopedItemOptions.ReadOnly;
        }

        return sessions;
    }

    /// <summary>
    /// The calling runspace's sessions its script may see, given the value of its marker variable, changing
    /// nothing: tab completion must neither close an earlier script's sessions nor claim the runspace.
    /// </summary>
    public static IReadOnlyList<AequorSession> Peek(object? marker)
    {
        var sessions = Current;
        return IsMarkedBy(marker, sessions) ? sessions.Snapshot() : [];
    }

    private static bool IsMarkedBy(object? marker, RunspaceSessions sessions) =>
        marker is not null && ReferenceEquals(marker is PSObject wrapped ? wrapped.BaseObject : marker, sessions.Marker);

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
        if (Runspace.DefaultRunspace is { } runspace && Table.TryGetValue(runspace, out var sessions)
            && sessions.CloseAll() is { Count: > 0 } rolledBack)
        {
            HostWarning.Write(RolledBackWarning(rolledBack, "the module was removed"));
        }
    }

    /// <summary>What a user must hear when closing sessions rolled back their transactions.</summary>
    public static string RolledBackWarning(IReadOnlyList<string> names, string why) => names.Count == 1
        ? $"Session '{names[0]}' had an open transaction and was closed because {why}: the server rolled it back, and nothing of it was committed."
        : $"Sessions {string.Join(", ", names.Select(n => $"'{n}'"))} had open transactions and were closed because {why}: the server rolled them back, and nothing of them was committed.";

    /// <summary>Closes every session of every runspace of the process.</summary>
    public static void CloseAll()
    {
        foreach (var (_, sessions) in Table)
        {
            sessions.CloseAll();
        }
    }

    /// <summary>
    /// The host is written to directly (no pipeline runs in a closing runspace), so the script's $WarningPreference is
    /// honoured here, as Write-Warning would. Unreadable: the warning is written.
    /// </summary>
    private static bool WarningsSilenced(PSVariableIntrinsics variables, string name)
    {
        try
        {
            // Only the global variable is typed: a script's own $WarningPreference = 'SilentlyContinue' is a string.
            return LanguagePrimitives.TryConvertTo(variables.GetValue(name), out ActionPreference preference)
                && preference is ActionPreference.SilentlyContinue or ActionPreference.Ignore;
        }
#pragma warning disable CA1031 // A runspace too far gone to read its variables still gets the warning.
        catch (Exception)
#pragma warning restore CA1031
        {
            return false;
        }
    }

    private static void OnRunspaceStateChanged(object? sender, RunspaceStateEventArgs e)
    {
        if (sender is Runspace runspace
            && e.RunspaceStateInfo.State is RunspaceState.Closing or RunspaceState.Closed or RunspaceState.Broken
            && Table.TryGetValue(runspace, out var sessions)
            && sessions.CloseAll() is { Count: > 0 } rolledBack
            && sessions.HostWarning is { } warn)
        {
            try
            {
                warn(RolledBackWarning(rolledBack, "the runspace closed (its script ended without Complete-AequorTransaction or Undo-AequorTransaction)"));
            }
#pragma warning disable CA1031 // A host that can no longer write must not stop the runspace from closing.
            catch (Exception)
#pragma warning restore CA1031
            {
            }
        }
    }
}

/// <summary>One runspace's sessions by name (case-insensitive, in connect order) and its default.</summary>
internal sealed class RunspaceSessions
{
    private readonly object _gate = new();
    private readonly List<AequorSession> _sessions = [];

    /// <summary>The object in the runspace's marker variable while these sessions are its script's.</summary>
    public object? Marker { get; set; }

    public AequorSession? Default { get; private set; }

    /// <summary>
    /// The runspace's host, for what must be said when the runspace closes: no pipeline runs then, and without it a
    /// script that ended with a transaction open would lose the transaction without a word.
    /// </summary>
    public Action<string>? HostWarning { get; set; }

    /// <summary>$WarningPreference silenced warnings where the runspace's script last ran an Aequor command that asked for its sessions.</summary>
    public bool ScriptSilencesWarnings
    {
        get => Volatile.Read(ref _scriptSilencesWarnings);
        set => Volatile.Write(ref _scriptSilencesWarnings, value);
    }

    private bool _scriptSilencesWarnings;

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

    /// <summary>Closes every session; returns the names of those whose open transaction that rolled back.</summary>
    public IReadOnlyList<string> CloseAll()
    {
        AequorSession[] closing;
        lock (_gate)
        {
            closing = [.. _sessions];
            _sessions.Clear();
            Default = null;
        }

        var rolledBack = new List<string>();
        foreach (var session in closing)
        {
            if (session.InTransaction)
            {
                rolledBack.Add(session.Name);
            }

            session.Close();
        }

        return rolledBack;
    }
}

/// <summary>The marker's value: opaque, and says what it is when someone looks.</summary>
internal sealed class Marker
{
    public override string ToString() => "Aequor sessions of this runspace";
}
