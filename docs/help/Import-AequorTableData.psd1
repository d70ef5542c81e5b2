@{
    Synopsis    = 'Loads a CSV file into a table with one COPY: streamed, NULL and empty strings read back apart.'
    Description = @'
Import-AequorTableData loads a CSV file into a table with a single COPY … FROM STDIN (FORMAT csv): the inverse of Export-AequorTableData. The file streams to the server, so millions of rows need no memory and no objects. The server reads the values as COPY does: an empty field is NULL and "" (two quotes) an empty string, so what Export-AequorTableData wrote comes back as it was: NULLs, empty strings, quotes, delimiters and line breaks inside values, arrays, jsonb, dates and timestamps. (Import-Csv | Write-AequorTableData reads both NULL and "" as an empty string.)

The file is read as UTF-8; a byte order mark is skipped, and a byte that is no UTF-8 stops the import naming its line. Lines may end in LF, CRLF or a CR alone (old Mac files), as the server reads them. A line of only \. is a value, as in any CSV: it is sent quoted, because PostgreSQL 15 would read it bare as the end of the data and drop every row after it. By default its first line names the columns (any case; a name in double quotes as the CSV writes it): each must be a column of the table, named once, and not a generated column (the server computes those, and a COPY cannot skip a field: export without them, Export-AequorTableData -Column). With a header, -Column is not needed; given, it must name the header's columns in the header's order, a check that the file is laid out as the script expects. With -NoHeader the first line is a row, and the fields fill -Column in its order, by default every column of the table that rows can fill, in the table's order. A table, a header or a -Column that does not fit is refused before anything is sent.

All rows are imported or none: COPY is one statement. A row the server refuses (a value a column cannot take, too many or too few fields, a unique or check violation) ends the import naming the line of the file where the row begins, its row number and the column, and nothing is imported. Inside Start-AequorTransaction (or a BEGIN sent as a statement) the import joins the transaction: a refused row aborts it (undo it). The import is never sent again once begun. A connection lost while the file is being sent loses nothing (the server rolls back a COPY that did not end): an AequorTableImportFailed error. Lost after the whole file and the end of the COPY were sent, whether the rows were imported is unknown: an AequorQueryOutcomeUnknown error, nothing retried, check the table (inside a transaction, AequorTransactionLost: the transaction is rolled back). Ctrl+C stops the COPY on the server, also while it waits for a lock: nothing is imported and the session goes on (a server that does not answer the cancel within the connection's Cancellation Timeout has the connection closed; the next command reconnects). The host is told in one warning line how the import ended (PowerShell shows nothing from a stopped command), unless -WarningAction or $WarningPreference silences warnings.

-Path is relative to the current location (Set-Location) and taken literally (no wildcards). A missing file is an AequorFileNotFound error; a folder, a path that is not on the file system and a bad delimiter are refused. -WhatIf reads nothing and sends nothing.
'@
    Parameters  = @{
        Path           = 'The CSV file to read: a file system path, relative to the current location, taken literally.'
        Table          = 'The table to load: table, schema.table, or with double quotes around a part that holds capitals or other characters ("My Table"); unquoted parts are folded to lower case as PostgreSQL does. A table that does not exist is a terminating AequorInvalidParameter error, nothing sent.'
        Column         = 'The columns the fields fill, by name (any case), in the file''s order. With a header (the default) it may be left out; given, it must name the header''s columns in its order, or the import is refused before anything is sent. With -NoHeader, by default every column rows can fill (generated ones are computed), in the table''s order.'
        Session        = 'The session (or its name) to import on. By default, the runspace''s default session.'
        NoHeader       = 'The first line is a row, not the column names.'
        Delimiter      = 'The character between fields: one ASCII character other than a double quote or a line break. A comma by default.'
        PassThru       = 'Writes the number of rows imported (an Int64): the server''s own count, so a row a BEFORE INSERT trigger kept out is not counted. COPY runs the table''s triggers and checks its constraints, but not its rules: a table with an ON INSERT DO INSTEAD rule gets the rows itself, where an INSERT would be redirected.'
        CommandTimeout = 'Seconds each round trip of the COPY may take, 1 to 2147483 (0, no limit, is refused: a COPY whose server stopped reading would wait for ever where nobody is there to press Ctrl+C, as in a scheduled job). By default the session''s command timeout.'
    }
    Examples    = @(
        @{
            Title   = 'Export a table and import it into another database'
            Code    = @'
Export-AequorTableData ./people.csv -Table people -Session old
Import-AequorTableData ./people.csv -Table people -Session new -PassThru
'@
            Remarks = 'One COPY each way; NULLs and empty strings come back apart. Writes the count of rows imported.'
        }
        @{
            Title   = 'A semicolon-separated file without a header'
            Code    = 'Import-AequorTableData ./paid.csv -Table orders -Column id, total -Delimiter '';'' -NoHeader'
            Remarks = 'The fields of each line fill id and total, in this order.'
        }
        @{
            Title   = 'Inside a transaction'
            Code    = @'
Start-AequorTransaction
$null = Invoke-AequorQuery 'TRUNCATE staging'
Import-AequorTableData ./staging.csv -Table staging
Complete-AequorTransaction
'@
            Remarks = 'The table is replaced, or (any row refused) left as it was.'
        }
    )
    Notes       = 'Errors (all terminating; nothing is imported): AequorNoSession, AequorSessionNotFound, AequorSessionClosed, AequorSessionBusy, AequorInvalidParameter (a table or column that does not exist, a header or -Column naming a column twice or a generated column, -Column disagreeing with the header, an empty file that should have a header, a bad delimiter, -CommandTimeout 0, a -Path that is not a file system path or is a folder), AequorFileNotFound (the file does not exist), AequorTableImportFailed (a row the server refused, naming the file''s line, with SqlState; the file could not be read or is not UTF-8; the connection was lost before the end of the COPY was sent), AequorQueryOutcomeUnknown (the connection was lost after the end of the COPY was sent), AequorTransactionLost (the same inside a transaction). -PassThru counts the rows by the line breaks outside quoted values, so a value holding a line break is one row.'
    Links       = @('about_Aequor', 'Export-AequorTableData', 'Write-AequorTableData')
}
