using System.Management.Automation;
using Aequor.Engine;

namespace Aequor.PowerShell;

/// <summary>Shared by the three transaction cmdlets: a session, and one engine call mapped to stable errors.</summary>
public abstract class AequorTransactionCmdlet : AequorCmdlet
{
    /// <summary>A session, or its name.</summary>
    [Parameter(ValueFromPipeline = true)]
    [SessionTransformation]
    [ArgumentCompleter(typeof(SessionNameCompleter))]
    public AequorSession? Session { get; set; }

    /// <summary>Writes the session, for chaining.</summary>
    [Parameter]
    public SwitchParameter PassThru { get; set; }

    /// <summary>The command commits: its failure stops the command (see <see cref="Run"/>).</summary>
    private protected virtual bool Commits => false;

    private protected override string BusyAdvice =>
        "Start, complete or undo the transaction outside that pipeline. To abandon it from inside, throw: the throw ends the query, and a catch around the pipeline can run Undo-AequorTransaction.";

    // Each session piped in is its own input: one in the wrong state (closed, no transaction, one already open)
    // is that input's error, and the sessions after it still get theirs. A call that fails stops the command:
    // under Continue the statements after a transaction that did not begin would run in autocommit, and a runbook
    // would go on as if a commit had happened that did not.
    private protected void Run(bool wantOpen, string action, string done, Func<AequorSession, CancellationToken, Task> call)
    {
        if (Commits && Session is { IsClosed: true, ClosedInTransaction: true, NotFound: null } closed)
        {
            // A commit that cannot happen, as any other: closing the session (from another runspace, say) rolled the
            // transaction back, and a script going on under Continue would report work that was never committed.
            ThrowTerminatingError(SessionClosed(closed));
        }

        if (ResolveInputSession(Session) is not { } session)
        {
            return;
        }

        // Also with -Session: notes the script's $WarningPreference for the warning if it ends with the transaction open.
        _ = SessionStore.For(this);

        if (session.InTransaction != wantOpen)
        {
            WriteError(WrongState(session, wantOpen));
            return;
        }

        using var listening = session.Listen(this);
        try
        {
            Await(call(session, StopToken));
        }
        catch (AequorTransactionStateException)
        {
            // Another runspace sharing the session began or ended a transaction between the look above and this call's
            // turn: the same error as when it had done so before, not a failure of the transaction (nothing was sent).
            WriteError(WrongState(session, wantOpen));
            return;
        }
        catch (Exception ex) when (IsEngineFailure(ex))
        {
            // A COMMIT the server answered with an error (a deferred constraint, a serialization failure) ended the
            // transaction with a rollback: said here, or the user is left to guess whether it is still open, or kept.
            var refused = Commits && ex is System.Data.Common.DbException { SqlState.Length: > 0 } && !session.InTransaction
                ? ": the server refused the COMMIT and rolled the transaction back, so nothing of it was committed"
                : string.Empty;
            ThrowTerminatingError(Errors.FromException(ex, ErrorIds.TransactionFailed, ErrorCategory.InvalidOperation,
                $"Could not {action} the transaction on session '{session.Name}'{refused}", session, session.Redactor));
        }

        WriteVerbose($"Session '{session.Name}': transaction {done}.");
        if (PassThru.IsPresent)
        {
            WriteObject(session);
        }
    }

    private static ErrorRecord WrongState(AequorSession session, bool wantOpen) => wantOpen
        ? Errors.Create(ErrorIds.NoTransaction, ErrorCategory.InvalidOperation,
            $"No transaction is open on session '{session.Name}'; Start-AequorTransaction first.", session)
        : Errors.Create(ErrorIds.TransactionOpen, ErrorCategory.InvalidOperation,
            $"A transaction is already open on session '{session.Name}'; complete or undo it first.", session);
}

/// <summary>Opens a transaction: statements until Complete- or Undo-AequorTransaction run inside it, never retried.</summary>
[Cmdlet(VerbsLifecycle.Start, "AequorTransaction")]
[OutputType(typeof(AequorSession))]
public sealed class StartAequorTransactionCommand : AequorTransactionCmdlet
{
    protected override void ProcessRecord() => Run(false, "start", "started", (s, ct) => s.Client.BeginTransactionAsync(ct));
}

/// <summary>Commits the session's transaction.</summary>
[Cmdlet(VerbsLifecycle.Complete, "AequorTransaction")]
[OutputType(typeof(AequorSession))]
public sealed class CompleteAequorTransactionCommand : AequorTransactionCmdlet
{
    private protected override bool Commits => true;

    protected override void ProcessRecord() => Run(true, "commit", "committed", (s, ct) => s.Client.CommitAsync(ct));
}

/// <summary>Rolls back the session's transaction.</summary>
[Cmdlet(VerbsCommon.Undo, "AequorTransaction")]
[OutputType(typeof(AequorSession))]
public sealed class UndoAequorTransactionCommand : AequorTransactionCmdlet
{
    protected override void ProcessRecord() => Run(true, "roll back", "rolled back", (s, ct) => s.Client.RollbackAsync(ct));
}
