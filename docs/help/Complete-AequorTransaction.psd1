@{
    Synopsis    = 'Commits the transaction open on an Aequor session.'
    Description = @'
Complete-AequorTransaction commits the transaction that Start-AequorTransaction opened on the session (the default one, or -Session). Without an open transaction it is an AequorNoTransaction error, also when another runspace sharing the session ended it while this command waited for its turn. Without an open transaction on one of several sessions piped in, that session gets the (non-terminating) error and the others are still committed. If a commit fails (the connection was lost, a deferred constraint failed) it is a terminating AequorTransactionFailed error, whatever -ErrorAction says: the transaction is over and nothing of it was committed, the sessions piped in after it are not committed, and a catch block around the command runs.

After a statement inside the transaction failed (a unique violation, a command timeout), PostgreSQL has aborted the transaction: its COMMIT would quietly roll back. Complete-AequorTransaction then rolls it back and fails with AequorTransactionFailed, "Nothing was committed", naming the first error. To keep the rest of a transaction after an error, run SAVEPOINT before the risky statement and ROLLBACK TO SAVEPOINT after its failure.
'@
    Parameters  = @{
        Session  = 'The session or its name (-Session reporting), also from the pipeline. Default: the runspace''s default session. A $null from the pipeline (a variable that holds no session) is that input''s AequorInvalidParameter error, never the default session; -Session $null is the default session.'
        PassThru = 'Write the session to the pipeline.'
    }
    Examples    = @(
        @{
            Title   = 'Commit two inserts together'
            Code    = @'
Start-AequorTransaction
Invoke-AequorQuery 'INSERT INTO orders(id) VALUES ($1)' 1
Invoke-AequorQuery 'INSERT INTO order_lines(order_id, sku) VALUES ($1, $2)' 1, 'sku-9'
Complete-AequorTransaction
'@
            Remarks = 'Both rows become visible to others at the commit.'
        }
        @{
            Title   = 'Commit on a session from the pipeline'
            Code    = 'Get-AequorSession -Name primary | Complete-AequorTransaction -PassThru'
            Remarks = '-PassThru writes the session after the commit.'
        }
    )
    Notes       = 'Errors: AequorSessionClosed, AequorSessionNotFound (a -Session name that is not open) and AequorNoTransaction are that session''s error (non-terminating: each session piped in or given is one input, and the sessions after it are still served). Terminating: AequorSessionClosed for a session that was closed with its transaction open (Disconnect-Aequor in another runspace holding it, a Connect-Aequor that replaced it by name): the server rolled that transaction back, and the message says nothing of it was committed; AequorNoSession (no session given and no default), AequorSessionBusy (run inside a pipeline that streams the rows of a query on the same session), and the transaction''s failure, which the script must not go on from as if it had committed: AequorTransactionFailed (the server did not let it commit), AequorTransactionLost (the connection was lost inside the transaction, the server''s idle_in_transaction_session_timeout included: the server rolled it back and nothing was committed; the message quotes the server''s reason when it gave one) or AequorQueryOutcomeUnknown (the connection was lost during the COMMIT itself: it may or may not have committed).'
    Links       = @('about_Aequor', 'Start-AequorTransaction', 'Undo-AequorTransaction')
}
