@{
    Synopsis    = 'Runs SQL on an Aequor session and streams the rows as objects.'
    Description = @'
Invoke-AequorQuery runs a statement (or several separated by semicolons) on the session given by -Session, or on the runspace's default session. Values in -Parameters are always sent as parameters, never spliced into the text: a hashtable binds @name placeholders, an array binds $1, $2 ... in order.

By default each row is written as a PSCustomObject as soon as it arrives (the result is never buffered), with the columns in order; Select-Object -First stops the statement on the server — except inside a transaction, where a cancelled statement would abort the transaction: there the rest of the rows is read and dropped (use LIMIT for a large result), so the transaction goes on. Ctrl+C cancels it in a transaction too. Several statements give the rows of each result set in turn. DBNull becomes $null; values keep natural .NET types: integers, decimal for numeric, double, bool, string, DateTime for timestamp, DateTime in UTC for timestamptz, DateOnly for date, TimeOnly for time, TimeSpan for interval, Guid for uuid, string for json and jsonb, arrays for arrays (of nullables, such as int?[], when one holds a NULL), byte[] for bytea. infinity and -infinity are DateTime's MaxValue and MinValue (in UTC for timestamptz), DateOnly's for date. An interval with months or beyond TimeSpan (about 10.7 million days) comes as the server's text, as does a numeric beyond decimal. A date or time .NET cannot hold (after 9999, before year 1, 24:00:00) is an error naming the column: cast it to text in the query (col::text). Ranges and multiranges of integers, numerics and dates, geometric types, tsvector and pg_lsn have no plain .NET equivalent and come as the server's text for them (what ::text gives, with the default DateStyle and extra_float_digits); an array of them as an array of such strings. Other types without a reading here (timestamp ranges, regclass, composite types) are an error naming the column: cast them to text in the query (col::text). A type created after the session connected (CREATE TYPE in a migration run on it) is unknown to it at first: the first statement that reads it fails saying so, and the session reloads the types before its next statement, which reads it (an enum as its label).

-As Scalar writes the first column of the first row, -As NonQuery the number of rows affected, -As DataTable one System.Data.DataTable per result set.

COPY ... FROM STDIN and COPY ... TO STDOUT need PostgreSQL''s COPY protocol, which a statement cannot use: such text is refused before anything is sent (AequorInvalidParameter), and the session and an open transaction are kept. Load rows with INSERT and parameters, read them with the query itself; COPY to or from a file on the database server is a plain statement and runs.

Ctrl+C (or stopping the pipeline) cancels the statement on the server at once. Retries, reconnects and heartbeats are reported on the Verbose stream; a retry also writes a warning. What the server raises while the statement runs is shown as psql shows it: a WARNING (RAISE WARNING, "there is no transaction in progress") as a warning, a NOTICE or INFO (RAISE NOTICE in a migration) on the Verbose stream. Nothing is retried inside a transaction, and a statement that may have reached the server is retried only with -Idempotent.

A failing statement is a non-terminating AequorQueryFailed error carrying the SQLSTATE ($_.Exception.SqlState); with several queries from the pipeline the others still run. What a command downstream throws while it handles the rows (throw in ForEach-Object, -ErrorAction Stop, break) is that command's error and passes unchanged: it ends the pipeline, the statement is cancelled on the server and the session stays usable, so a try/catch around the pipeline catches it and can undo a transaction.

The rows are written while the statement still holds its session, so the commands downstream of them cannot use that same session: Invoke-AequorQuery, Start-, Complete- or Undo-AequorTransaction, Get-AequorLease, Invoke-AequorReap and Disconnect-Aequor on it there fail at once with AequorSessionBusy (they would otherwise wait for ever), as does Connect-Aequor replacing it. Collect the rows first (-As DataTable, which reads every table before writing one, or $rows = Invoke-AequorQuery ...), or use a second session. Another runspace that shares the session is not refused: it waits until the statement is done.
'@
    Parameters  = @{
        Query          = 'The SQL text. Also taken from the pipeline: each string is run in turn.'
        File           = 'One file whose content is the SQL to run, its path taken as written: wildcards are not expanded (-File ''[x]01.sql'' is the file of that name). A path that names no file but matches files as a wildcard (-File ./migrations/*.sql) is a terminating AequorInvalidParameter error saying how many files it matches, and nothing runs: to run several files, pipe them (see -LiteralPath). A missing file is a non-terminating AequorFileNotFound error. The file is read as UTF-8 unless a byte order mark says otherwise; one that is not valid UTF-8 (a legacy code page such as Windows-1252) is a non-terminating AequorInvalidParameter error and nothing of it is sent. With -File, -Parameters must be named.'
        LiteralPath    = 'A file whose content is the SQL to run, exactly as named (no wildcards). Taken from the pipeline by FullName or PSPath: Get-ChildItem ./migrations/*.sql | Sort-Object Name | Invoke-AequorQuery runs each file in turn. A missing file is a non-terminating AequorFileNotFound error for that input, and the next files still run, as with Get-Content. Aliases: FullName, PSPath, LP. -Parameters must be named.'
        Parameters     = 'The values for the placeholders: a hashtable for @name placeholders (@{ id = 5 }), an array for $1, $2 ... (5, ''x''). A single value binds $1; $null means no parameters (bind NULL to $1 with @($null)). More values than the statement has placeholders (an array of ids given for ... = $1, which PowerShell spreads over $1, $2 ...) are refused, for that input, with AequorInvalidParameter and nothing sent: the server would silently use the first one only. To bind an array to $1, wrap it: @(, @($ids)). PowerShell arrays inside are sent as typed arrays (int[], text[] ...): numbers of several types widen (1, 5000000000 is a bigint[]), an empty or all-$null array is typed by the server from its use (ANY(@ids), @ids::int[]), other mixes are an AequorInvalidParameter error. A local [datetime] (Get-Date) and a [datetimeoffset] with any offset are sent as the instant they name (timestamptz); a [datetime] of kind Unspecified is a timestamp without time zone (an array mixing the two is an AequorInvalidParameter error). Unsigned integers (CIM and WMI properties) widen, as PostgreSQL has none: [uint16] is an integer, [uint32] a bigint, [uint64] a numeric. A SecureString or PSCredential is refused (AequorInvalidParameter), never decrypted into SQL; so is an enum value: pass [string] for its name or [int] for its number. A value of another type PostgreSQL has no mapping for ([version], a script block) is that input''s AequorInvalidParameter error, and nothing is sent; so is text (a string, or one inside an array) holding an unpaired UTF-16 surrogate, half of an emoji cut in its middle, which PostgreSQL''s UTF-8 text cannot store: the error names the parameter and the index. Several statements in one call need @name parameters: $1-style ones cannot be shared across statements.'
        Session        = 'The session to run on, or its name (-Session reporting; an unknown name is a terminating AequorSessionNotFound error naming the open ones). Default: the runspace''s default session; without one the error is AequorNoSession.'
        As             = 'The output: PSObject (default; one object per row), Scalar (the first column of the first row), NonQuery (rows affected) or DataTable (one table per result set). Another value is an AequorInvalidParameter error.'
        CommandTimeout = 'Seconds the statement may run before the server cancels it; 0 waits forever. Default: the session''s.'
        Idempotent     = 'States that the statement may safely run twice, so it may be retried even after it reached the server when the connection drops. Without it such a failure is an AequorQueryOutcomeUnknown error.'
    }
    Examples    = @(
        @{
            Title   = 'Rows with named and positional parameters'
            Code    = @'
Invoke-AequorQuery 'SELECT id, status, created_at FROM orders WHERE customer = @customer AND status = ANY(@states)' -Parameters @{ customer = 'c-42'; states = 'open', 'held' }
Invoke-AequorQuery 'SELECT * FROM orders WHERE id = $1' 1234
'@
            Remarks = 'Values are parameters: a value like ''; DROP TABLE x; -- stays a value.'
        }
        @{
            Title   = 'Scalar, NonQuery and DataTable'
            Code    = @'
$open = Invoke-AequorQuery 'SELECT count(*) FROM orders WHERE status = $1' 'open' -As Scalar
$moved = Invoke-AequorQuery 'UPDATE orders SET status = ''archived'' WHERE created_at < now() - interval ''1 year''' -As NonQuery
$table = Invoke-AequorQuery 'SELECT * FROM orders LIMIT 100' -As DataTable
'@
            Remarks = 'NonQuery writes the number of rows affected.'
        }
        @{
            Title   = 'Stream a large result, and a SQL file'
            Code    = @'
Invoke-AequorQuery 'SELECT * FROM events ORDER BY id' | ForEach-Object { $_.payload | Out-File -Append events.jsonl }
Invoke-AequorQuery -File ./migrations/042.sql -CommandTimeout 600
'@
            Remarks = 'Rows are written as they arrive, so memory stays flat whatever the size of the result.'
        }
    )
    Notes       = 'Errors: AequorNoSession, AequorSessionNotFound, AequorSessionClosed, AequorSessionBusy, AequorInvalidParameter, AequorFileNotFound (non-terminating), AequorQueryFailed (non-terminating, with SqlState; category OperationTimeout when -CommandTimeout ran out — the statement was cancelled and did not take effect), AequorQueryOutcomeUnknown, AequorTransactionLost, AequorHeartbeatFailed (the session was connected with -HeartbeatErrorMode Throw and its lease renewal failed or timed out; the statement was not sent), AequorSessionStateLost (non-terminating: the connection was replaced since a statement that took a session advisory lock or a role (SET ROLE, SET SESSION AUTHORIZATION), which ended with the old backend; the statement was not sent — it would have run without the lock or as the login role — and the next one runs). A reconnect that lost other session state (temporary tables, prepared statements, LISTEN channels, SET values, cursors WITH HOLD) writes a warning naming it. In a leased session a statement that sets application_name (which holds the lease) is AequorInvalidParameter and is not sent; after RESET ALL or DISCARD ALL a fresh lease is put back. See about_Aequor, TRANSACTIONS AND SESSION STATE.'
    Links       = @('about_Aequor', 'Connect-Aequor', 'Start-AequorTransaction')
}
