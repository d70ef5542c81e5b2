@{
    Synopsis    = 'Rolls back the transaction open on an Aequor session.'
    Description = @'
Undo-AequorTransaction rolls back the transaction that Start-AequorTransaction opened on the session (the default one, or -Session): nothing done inside it is kept. Without an open transaction it is an AequorNoTransaction error, also when another runspace sharing the session ended it while this command waited for its turn. After a lost connection (AequorTransactionLost) it ends the transaction so the session can be used again.
'@
    Parameters  = @{
        Session  = 'The session or its name (-Session reporting), also from the pipeline. Default: the runspace''s default session. A $null from the pipeline (a variable that holds no session) is that input''s AequorInvalidParameter error, never the default session; -Session $null is the default session.'
        PassThru = 'Write the session to the pipeline.'
    }
    Examples    = @(
        @{
            Title   = 'Try a change and throw it away'
            Code    = @'
Start-AequorTransaction
Invoke-AequorQuery 'DELETE FROM orders WHERE status = $1' 'test' -As NonQuery
Undo-AequorTransaction
'@
            Remarks = 'The rows are back after the rollback.'
        }
        @{
            Title   = 'Roll back in a catch block'
            Code    = @'
Start-AequorTransaction
try { Invoke-AequorQuery -File ./change.sql -ErrorAction Stop; Complete-AequorTransaction -ErrorAction Stop }
catch { Undo-AequorTransaction; throw }
'@
            Remarks = 'A failure leaves nothing half done.'
        }
    )
    Notes       = 'Errors: AequorSessionClosed, AequorSessionNotFound (a -Session name that is not open) and AequorNoTransaction are that session''s error (non-terminating: each session piped in or given is one input, and the sessions after it are still served). Terminating: AequorNoSession (no session given and no default), AequorSessionBusy (run inside a pipeline that streams the rows of a query on the same session), and AequorTransactionFailed (the server did not let the transaction roll back: the script must not go on as if it had). A rollback after a lost connection succeeds: the server already rolled the transaction back.'
    Links       = @('about_Aequor', 'Start-AequorTransaction', 'Complete-AequorTransaction')
}
