@{
    Synopsis    = 'Writes a table or a query to a CSV file with one COPY: streamed, the server formats the values.'
    Description = @'
Export-AequorTableData writes the rows of a table (-Table, optionally some of its -Column) or of a query (-Query) to a CSV file with a single COPY … TO STDOUT (FORMAT csv). The server formats and quotes every value and the rows stream straight into the file, so millions of rows need no memory and no objects: it is the mirror of Write-AequorTableData, and much faster than Invoke-AequorQuery … | Export-Csv.

The file is UTF-8 without a byte order mark, with a first line of column names unless -NoHeader, fields separated by -Delimiter (a comma by default). Values are written as PostgreSQL prints them (dates as 2024-02-29, numeric in full, booleans as t/f, arrays as {a,b}, jsonb as its text); NULL is an empty field and an empty string is "" (two quotes), so Import-AequorTableData (one COPY … FROM, as psql's \copy) reads them back apart: Export-AequorTableData then Import-AequorTableData is the round trip. Import-Csv reads both as an empty string: through Import-Csv | Write-AequorTableData a NULL comes back as an empty string into a text column, and a date or number column refuses it, naming the row.

-Path is relative to the current location (Set-Location), not to the process's directory. The rows go to a temporary file in the destination's folder, moved over the destination only when the COPY has ended: when the export fails (a table or column that does not exist, an error in the query), is stopped (Ctrl+C sends the server a cancel request: the rows stop at once) or loses its connection, the temporary file is deleted and an existing file is left as it was. An existing file is replaced, as Export-Csv does, unless -NoClobber; the new file keeps the replaced one's permissions and, where the system allows (run as root, or a group of the user's), its owner and group. A file with more than one hard link is written through instead, once the COPY has ended, so that every name of it shows the rows: that last copy is not atomic, and a failure during it (a full disk) says the file may hold a part of the rows only. A symbolic link is written through, as Export-Csv does: the file at its end is replaced (keeping its permissions) and the link stays; a destination that is no regular file (a device such as /dev/null, a named pipe, a socket), which the move would replace, is refused. A missing folder, -NoClobber on an existing file, an unknown table or column and a query that cannot be exported are refused before anything is sent; -WhatIf sends nothing and writes no file.

-Query takes one SELECT, VALUES, WITH or TABLE statement. It cannot hold placeholders ($1, @name): a COPY binds no values, so write the value into the query. A query with a second statement after a ';', or that is itself a COPY, is refused.

A connection found dead before the export begins is replaced, as for any statement. Once the rows flow a lost connection is an AequorTableExportFailed error, the file unchanged, and the export is not sent again (a query may call functions that write; Invoke-AequorQuery does not send a statement again either once its rows were read). Inside Start-AequorTransaction (or a BEGIN sent as a statement) the export joins the transaction and sees its uncommitted rows; a connection lost during it is an AequorTransactionLost error, and every statement after it fails the same way, never run outside the transaction, until Undo-AequorTransaction (or ROLLBACK). The session stays usable after every failure.

-CommandTimeout counts the seconds the export waits for the server (for the first rows, each next chunk, the end), not the time spent writing the file. Past it the server is told to cancel the COPY: an AequorTableExportFailed error with the category OperationTimeout that names the timeout, the file unchanged, the connection kept (inside a transaction, the transaction is aborted: undo it). The server's own statement_timeout ends the export the same way, as its error 57014. Until the server sends its first rows, the wait is also bounded by the session's command timeout (Connect-Aequor -CommandTimeout): a query slow to start needs a session connected with a longer one.

When the file cannot be written (a full disk, an I/O error), the COPY is cancelled on the server at once and the error (AequorTableExportFailed, category WriteError) names the file and the cause; the temporary file is deleted and an existing file is left as it was.
'@
    Parameters  = @{
        Path           = 'The CSV file to write: a file system path, relative to the current location. Its folder must exist. A symbolic link is followed: the file it points to is replaced. A device, named pipe or socket is refused.'
        Table          = 'The table (or view) to export: table, schema.table, or with double quotes around a part that holds capitals or other characters ("My Table"); unquoted parts are folded to lower case as PostgreSQL does in a UTF-8 database, A-Z only. Its rows are those SELECT * FROM it shows: a partitioned table''s partitions and an inheritance parent''s children included. A table that does not exist is a terminating AequorInvalidParameter error, nothing sent, no file written.'
        Column         = 'The table''s columns to export, by name (any case), in this order. By default every column, generated ones too (as SELECT * shows them). A name that is no column of the table is a terminating AequorInvalidParameter error listing its columns.'
        Query          = 'One SELECT, VALUES, WITH or TABLE statement, without placeholders and without a second statement; its column names make the header.'
        Session        = 'The session (or its name) to export on. By default, the runspace''s default session.'
        NoHeader       = 'Writes no first line with the column names.'
        NoClobber      = 'Refuses to replace an existing file: a terminating AequorFileExists error, nothing sent.'
        Delimiter      = 'The character between fields: one ASCII character other than a double quote or a line break. A comma by default.'
        PassThru       = 'Writes the number of rows exported (an Int64, the header line not counted) once the file is in place.'
        CommandTimeout = 'Seconds the export may wait for the server at a time (its first rows, each next chunk, its end); 0 waits forever. By default the session''s command timeout. Past it the COPY is cancelled on the server: a terminating AequorTableExportFailed error of category OperationTimeout, the file unchanged, the session kept.'
    }
    Examples    = @(
        @{
            Title   = 'Export a table'
            Code    = 'Export-AequorTableData -Path ./people.csv -Table people -PassThru'
            Remarks = 'One COPY for all rows; writes the count. Import-AequorTableData ./people.csv -Table people reads it back into a table, NULLs and empty strings apart.'
        }
        @{
            Title   = 'Export a query, semicolon-separated, without a header'
            Code    = 'Export-AequorTableData ./paid.csv -Query "SELECT id, total FROM orders WHERE paid_at >= date ''2024-01-01''" -Delimiter '';'' -NoHeader'
            Remarks = 'The value is written into the query: a COPY cannot bind placeholders.'
        }
        @{
            Title   = 'Some columns, never replacing a file'
            Code    = 'Export-AequorTableData -Path ./emails.csv -Table app.customers -Column id, email -NoClobber'
            Remarks = 'Fails with AequorFileExists, sending nothing, when ./emails.csv exists.'
        }
    )
    Notes       = 'Errors (all terminating; the destination is left as it was): AequorNoSession, AequorSessionNotFound, AequorSessionClosed, AequorSessionBusy, AequorInvalidParameter (a table or -Column that does not exist, a query that cannot be exported, a bad delimiter, a -Path that is not a file system path, is a folder, a link that cannot be followed, or no regular file such as a device or named pipe), AequorFileNotFound (the folder of -Path does not exist), AequorFileExists (-NoClobber on an existing file), AequorTableExportFailed (the server''s error, with SqlState, 57014 for its statement_timeout; -CommandTimeout passed, category OperationTimeout; the connection was lost during the export; the file could not be written, category WriteError), AequorTransactionLost (the connection was lost during an export inside a transaction). After each the destination is unchanged, no temporary file is left, and the session runs the next statement; -PassThru counts the rows by the line breaks outside quoted values, so a value holding a line break is one row.'
    Links       = @('about_Aequor', 'Import-AequorTableData', 'Write-AequorTableData', 'Invoke-AequorQuery')
}
