@{
    Synopsis    = 'Opens a transaction on an Aequor session.'
    Description = @'
Start-AequorTransaction begins a transaction on the session (the default one, or -Session). Every Invoke-AequorQuery on that session runs inside it until Complete-AequorTransaction commits it or Undo-AequorTransaction rolls it back. Nothing is retried inside a transaction: if the connection is lost, the server has rolled it back and statements fail with AequorTransactionLost until the transaction is undone.

A second Start-AequorTransaction on the same session is an AequorTransactionOpen error, also when two runspaces sharing the session start one at the same moment: one begins the transaction, the other gets that error. A transaction still open when its session closes is rolled back by the server, with a warning: Disconnect-Aequor, Remove-Module, a Connect-Aequor that replaces the session by name, and a script that ends without Complete-AequorTransaction or Undo-AequorTransaction (the runspace's host writes it as the runspace closes, unless $WarningPreference silences warnings: the global one, or the script's own as it stood where the script last ran an Aequor command). The exception is ForEach-Object -Parallel: a transaction left open by an iteration after which no iteration runs an Aequor command in the same runspace (the last of each runspace, every one with -UseNewRunspace) is rolled back with no warning, since that runspace closes once the iteration's pipeline has ended (no command can write to its streams) and its host writes nowhere; end each transaction inside its iteration (see about_Aequor).
'@
    Parameters  = @{
        Session  = 'The session or its name (-Session reporting), also from the pipeline. Default: the runspace''s default session. A $null from the pipeline (a variable that holds no session) is that input''s AequorInvalidParameter error, never the default session; -Session $null is the default session.'
        PassThru = 'Write the session to the pipeline.'
    }
    Examples    = @(
        @{
            Title   = 'Commit on success, roll back on failure'
            Code    = @'
Start-AequorTransaction
try {
    Invoke-AequorQuery 'UPDATE accounts SET balance = balance - $1 WHERE id = $2' 100, 'a' -ErrorAction Stop
    Invoke-AequorQuery 'UPDATE accounts SET balance = balance + $1 WHERE id = $2' 100, 'b' -ErrorAction Stop
    Complete-AequorTransaction -ErrorAction Stop
} catch {
    Undo-AequorTransaction
    throw
}
'@
            Remarks = '-ErrorAction Stop turns a failing statement (or commit) into an exception, so the catch block rolls back.'
        }
        @{
            Title   = 'A transaction on a named session'
            Code    = @'
$s = Get-AequorSession -Name primary
$s | Start-AequorTransaction
Invoke-AequorQuery 'INSERT INTO audit(event) VALUES ($1)' 'rotated' -Session $s
$s | Complete-AequorTransaction
'@
            Remarks = 'The session comes from the pipeline.'
        }
    )
    Notes       = 'Errors: AequorSessionClosed, AequorSessionNotFound (a -Session name that is not open) and AequorTransactionOpen are that session''s error (non-terminating: each session piped in or given is one input, and the sessions after it are still served). Terminating: AequorNoSession (no session given and no default), AequorSessionBusy (run inside a pipeline that streams the rows of a query on the same session), and the begin''s failure, which the script must not go on from as if a transaction were open: AequorTransactionFailed (the server refused it), AequorConnectFailed (no connection could be made for it) or AequorSessionStateLost (the connection was replaced since a statement took a session advisory lock or a role with SET ROLE / SET SESSION AUTHORIZATION, which ended with the old backend: nothing was opened; run it again once the lock or the role is taken again).'
    Links       = @('about_Aequor', 'Complete-AequorTransaction', 'Undo-AequorTransaction', 'Invoke-AequorQuery')
}
