using System.Management.Automation;

namespace Aequor.PowerShell;

/// <summary>Closes sessions: by object (from the pipeline), by name, or all of the runspace's.</summary>
[Cmdlet(VerbsCommunications.Disconnect, "Aequor", DefaultParameterSetName = NameSet, SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Low)]
public sealed class DisconnectAequorCommand : AequorCmdlet
{
    public const string NameSet = "Name";
    public const string SessionSet = "Session";
    public const string AllSet = "All";

    /// <summary>Sessions, or their names (from the pipeline too), as every other cmdlet's -Session takes them.</summary>
    [Parameter(Mandatory = true, ParameterSetName = SessionSet, ValueFromPipeline = true)]
    [ValidateNotNull]
    [SessionTransformation(Several = true)]
    [ArgumentCompleter(typeof(SessionNameCompleter))]
    public AequorSession[] Session { get; set; } = [];

    /// <summary>Without a name: the default session.</summary>
    [Parameter(Position = 0, ParameterSetName = NameSet, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(SessionNameCompleter))]
    public string[]? Name { get; set; }

    [Parameter(Mandatory = true, ParameterSetName = AllSet)]
    public SwitchParameter All { get; set; }

    protected override void ProcessRecord()
    {
        var store = SessionStore.For(this);
        switch (ParameterSetName)
        {
            case SessionSet:
                foreach (var session in Session)
                {
                    // An unknown name is that name's error: the sessions named beside it still close.
                    if (session.NotFound is { } notFound)
                    {
                        WriteError(notFound);
                        continue;
                    }

                    Close(session);
                }

                break;
            case AllSet:
                foreach (var session in store.Snapshot())
                {
                    Close(session);
                }

                break;
            default:
                if (Name is null)
                {
                    if (store.Default is { } current)
                    {
                        Close(current);
                    }
                    else
                    {
                        WriteError(Errors.Create(ErrorIds.NoSession, ErrorCategory.ObjectNotFound,
                            "There is no default Aequor session to disconnect; name one with -Name or use -All.", null));
                    }

                    break;
                }

                foreach (var name in Name)
                {
                    if (!SessionNames.TryPattern(name, out var pattern, out var error))
                    {
                        WriteError(error);
                        continue;
                    }

                    var matched = false;
                    foreach (var session in store.Snapshot().Where(s => pattern.IsMatch(s.Name)))
                    {
                        matched = true;
                        Close(session);
                    }

                    if (!matched && !WildcardPattern.ContainsWildcardCharacters(name))
                    {
                        WriteError(Errors.Create(ErrorIds.SessionNotFound, ErrorCategory.ObjectNotFound,
                            $"There is no Aequor session named '{name}' in this runspace (Get-AequorSession lists them).", name));
                    }
                }

                break;
        }
    }

    private void Close(AequorSession session)
    {
        if (!ShouldProcess(session.ToString(), "Disconnect"))
        {
            return;
        }

        if (session.IsStreamingOnThisThread)
        {
            // Closing waits for the call that holds the session: here that is the query whose rows this pipeline
            // thread is handing on, which cannot go on meanwhile. This session's error only; the others still close.
            WriteError(SessionBusy(session,
                "Disconnect it after the pipeline, or end the query first (break, or Select-Object -First).",
                "disconnecting it inside that pipeline would wait for that query, which cannot go on meanwhile"));
            return;
        }

        // A session handed over from another runspace leaves that runspace's list too.
        session.Owner?.Remove(session);
        var openTransaction = session.InTransaction;
        session.Close();
        if (openTransaction)
        {
            // Closing the connection makes the server roll it back: a script that forgot Complete-AequorTransaction must hear of it.
            WriteWarning($"Session '{session.Name}' had an open transaction: closing it rolled the transaction back, and nothing of it was committed.");
        }

        WriteVerbose($"Closed session '{session.Name}'.");
    }
}
