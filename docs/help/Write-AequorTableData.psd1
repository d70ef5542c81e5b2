@{
    Synopsis    = 'Loads the rows piped in into a table with one COPY: all of them or none.'
    Description = @'
Write-AequorTableData writes every row of its pipeline into one table with a single COPY table (columns) FROM STDIN, instead of one INSERT round trip per row. The COPY begins at the first row, each row is sent as it arrives (nothing is buffered, so a million-row CSV needs no memory for it) and it ends with the pipeline. When no row comes, no COPY is begun (one of no rows would still fire the table's statement triggers), but the table and -Column are checked all the same: a misspelt name fails the run that has it, not the first one that brings rows.

A row is an object with properties (Import-Csv, ConvertFrom-Json, Select-Object, rows of Invoke-AequorQuery), a hashtable or dictionary, or a DataRow. A DataTable gives each of its rows (not those deleted from it), and an array or list given to -InputObject (not piped) each of its elements, as the pipeline would. Properties match the table's columns by name, in any case. Without -Column the columns are the table's columns the first row has; a later row without one of them writes NULL there, and a later row with a column the first row lacked is a terminating AequorInvalidParameter error naming the row and the property, nothing written (its value would otherwise be lost: name the columns with -Column when rows differ); properties that are no column are ignored (named once in the Verbose stream).

Values are sent as text and the server reads each by its column's type, so the strings of Import-Csv load into int, date, boolean, numeric or jsonb columns. Numbers, dates and times are written in the invariant culture (a DateTime with Kind Utc or Local with its offset, Unspecified without; to the microsecond PostgreSQL keeps, a 7th digit cut as for -Parameters of Invoke-AequorQuery; [datetime]::MaxValue and MinValue, and those of [datetimeoffset], as infinity and -infinity, which read back as them; a TimeSpan as hours:minutes:seconds, after its days for a day or more, as -Parameters binds it: an interval keeps the days apart (a day added to a timestamptz is not always 24 hours), and a time column reads one under a day as the time of day), booleans as true/false (a text column stores them as INSERT does), a [char[]] as its text (as -Parameters binds it), a [uri] as the text it was made from (not unescaped), byte arrays as bytea (also an [object[]] holding only bytes, as Get-Content -AsByteStream gives, as -Parameters binds it), arrays as PostgreSQL arrays (an array of arrays, or an [int[,]] of more dimensions, in its shape); $null is NULL and an empty string stays an empty string (Import-Csv gives an empty string for an empty field, so a NULL written to CSV by Export-AequorTableData comes back as an empty string into a text column, and a date or number column refuses it, naming the row: load such a file with Import-AequorTableData, which reads NULL and "" back apart). Tabs, newlines, backslashes and quotes in text arrive exactly. A NUL character (PostgreSQL text cannot hold one), a nested object (put JSON text instead: ConvertTo-Json -Compress), or an array for a column of no array type (a text or jsonb column: its literal {"a","b"} would be stored, where INSERT refuses it; join it (-join ', ') or pass JSON text) is refused naming the row and column.

COPY is one statement: when any row fails (a value the column's type refuses, a constraint), when the command is stopped (Ctrl+C), when a command before or after it in the pipeline throws, or when the connection is lost before the end, nothing is written and the session stays usable; the error names the input row the server refused. Inside Start-AequorTransaction the COPY joins the transaction (a failure aborts it, as any failed statement does). It is never retried. A connection lost before the last rows and the end of the COPY have left is an AequorTableWriteFailed error, nothing written; lost once the end was sent, before the server's answer came, it is an AequorQueryOutcomeUnknown error (the rows may or may not have been written: check the table).

Ctrl+C stops a load within a second or two even when the server is holding it up: the COPY waiting for a table another session has locked (LOCK TABLE), rows waiting on a row another transaction holds or on a slow trigger (the server then reads no more, and sending the next row blocks), or the server still inserting the rows at the end. The server is sent a cancel request: it stops the COPY and throws away the rows still coming, nothing is written, and the session goes on in the same connection. A server that has not stopped within the connection string's Cancellation Timeout (2000 ms unless set) has the connection closed instead, which also ends the COPY, nothing written: the next command opens a new connection. Since PowerShell shows nothing from a stopped command, the host is told what happened in one warning (unless warnings are silenced), e.g. WARNING: Write-AequorTableData was stopped on session 'default': The COPY into "people" was cancelled (1200 rows sent): the server stopped it, and nothing was written. Inside a transaction the warning adds that the transaction is aborted (roll it back: Undo-AequorTransaction; Get-AequorSession shows "Connected (tx failed)"), or lost when the connection was closed.

-WhatIf sends nothing to the server, neither the rows nor the check of the table and -Column: the rows are read and counted, and one line says what would be done, e.g. What if: Performing the operation "Write 3 rows" on target "table people on session 'default'". -Confirm (ConfirmImpact Medium, so no prompt by default) asks once, at the first row, before the COPY begins; answered no, the rows are read and nothing is written.
'@
    Parameters  = @{
        Table          = 'The table: table, schema.table, or with double quotes around a part that holds capitals or other characters ("My Table", app."Order"). Unquoted parts are folded to lower case as PostgreSQL does in a UTF-8 database: A-Z only (ÜBER names "Über"). A table that does not exist is a terminating AequorInvalidParameter error, and nothing is written.'
        InputObject    = 'A row, usually from the pipeline: an object with properties, a hashtable or dictionary, or a DataRow. A DataTable gives each of its rows; an array or list given here (-InputObject $rows) gives each of its elements, as piping it would. $null is skipped.'
        Column         = 'The columns to fill, by name (any case), in any order; the other columns get their defaults, and the rows'' other properties are ignored. Without it, the columns are those of the first row. A name that is no column of the table, or a generated one (the server computes it), is a terminating AequorInvalidParameter error listing the columns rows can fill.'
        Session        = 'The session (or its name) to write on. By default, the runspace''s default session.'
        PassThru       = 'Writes the number of rows written (an Int64) when the COPY has ended: the server''s own count, as INSERT''s, so a row a BEFORE INSERT trigger skipped (returned NULL) is not counted. COPY runs the table''s triggers and checks its constraints, but not its rules: a table with an ON INSERT DO INSTEAD rule gets the rows itself, where an INSERT would be redirected.'
        CommandTimeout = 'Seconds each round trip of the COPY may take, 1 to 2147483. By default the session''s command timeout. 0 (no limit) is refused: a COPY whose server stopped reading the rows (a lock, a slow trigger) would then wait for ever where nobody is there to press Ctrl+C (a scheduled job).'
    }
    Examples    = @(
        @{
            Title   = 'Load a CSV file'
            Code    = 'Import-Csv ./people.csv | Write-AequorTableData -Table people -PassThru'
            Remarks = 'One COPY for all rows; writes the count. The CSV''s strings go into int and date columns as the server reads them.'
        }
        @{
            Title   = 'Choose the columns'
            Code    = 'Get-Content ./events.json | ConvertFrom-Json | Write-AequorTableData -Table app.events -Column name, at'
            Remarks = 'Only name and at are filled; the other columns get their defaults.'
        }
        @{
            Title   = 'Inside a transaction'
            Code    = @'
Start-AequorTransaction
try {
    Invoke-AequorQuery 'DELETE FROM staging' -As NonQuery | Out-Null
    Import-Csv ./staging.csv | Write-AequorTableData -Table staging
    Complete-AequorTransaction
} catch {
    Undo-AequorTransaction
    throw
}
'@
            Remarks = 'The delete and the load commit together or not at all.'
        }
        @{
            Title   = 'See what a load would do'
            Code    = 'Import-Csv ./people.csv | Write-AequorTableData -Table people -WhatIf'
            Remarks = 'Writes one line naming the table, the session and the number of rows; nothing is sent to the server.'
        }
    )
    Notes       = 'Errors (all terminating, nothing written): AequorNoSession, AequorSessionNotFound, AequorSessionClosed, AequorSessionBusy (run inside a pipeline that streams the rows of a query on the same session: use a second session or collect the rows first), AequorInvalidParameter (a table or -Column that does not exist, a table name that cannot be parsed, a value with no text form), AequorTableWriteFailed (the server refused a row, naming it, with SqlState; the connection was lost before the end), AequorQueryOutcomeUnknown (the connection was lost after the end of the COPY was sent), AequorTransactionLost.'
    Links       = @('about_Aequor', 'Invoke-AequorQuery', 'Start-AequorTransaction')
}
