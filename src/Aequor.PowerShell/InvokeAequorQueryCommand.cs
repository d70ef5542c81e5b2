using System.Collections;
using System.Data;
using System.Management.Automation;
using Aequor.Engine;

namespace Aequor.PowerShell;

/// <summary>
/// Runs SQL on a session. Rows are written as they arrive (one PSCustomObject each, columns in
/// order), never buffered; values are always sent as parameters, never spliced into the text.
/// </summary>
[Cmdlet(VerbsLifecycle.Invoke, "AequorQuery", DefaultParameterSetName = QuerySet)]
// Also an int (-As NonQuery) or any value (-As Scalar): left out here, since neither has properties to show.
[OutputType(typeof(PSObject), typeof(DataTable))]
public sealed partial class InvokeAequorQueryCommand : AequorCmdlet
{
    public const string QuerySet = "Query";
    public const string FileSet = "File";
    public const string LiteralPathSet = "LiteralPath";
    public const string RowsSet = "QueryPerRow";
    public const string AsRows = "PSObject";
    public const string AsScalar = "Scalar";
    public const string AsNonQuery = "NonQuery";
    public const string AsDataTable = "DataTable";

    internal static readonly string[] OutputKinds = [AsRows, AsScalar, AsNonQuery, AsDataTable];

    private AequorSession _session = null!;
    private string _as = AsRows;
    private IReadOnlyList<object?>? _positional;
    private IReadOnlyDictionary<string, object?>? _named;
    private object? _row;

    [Parameter(Mandatory = true, Position = 0, ParameterSetName = QuerySet, ValueFromPipeline = true)]
    [Parameter(Mandatory = true, Position = 0, ParameterSetName = RowsSet)]
    [QueryText]
    [ValidateNotNullOrEmpty]
    public string Query { get; set; } = string.Empty;

    /// <summary>One SQL file, its path taken as written: no wildcards (a pattern is refused, naming what it matches).</summary>
    [Parameter(Mandatory = true, ParameterSetName = FileSet)]
    [ValidateNotNullOrEmpty]
    public string File { get; set; } = string.Empty;

    /// <summary>A SQL file, exactly as named; from the pipeline by FullName or PSPath (Get-ChildItem ./migrations/*.sql | Invoke-AequorQuery).</summary>
    [Parameter(Mandatory = true, ParameterSetName = LiteralPathSet, ValueFromPipelineByPropertyName = true)]
    [Alias("FullName", "PSPath", "LP")]
    [ValidateNotNullOrEmpty]
    public string LiteralPath { get; set; } = string.Empty;

    /// <summary>A hashtable for <c>@name</c> placeholders, an array for <c>$1</c>, <c>$2</c> ….</summary>
    /// <remarks>Positional only after a query: with a file a stray argument is refused instead of taken for parameters.</remarks>
    [Parameter(Position = 1, ParameterSetName = QuerySet)]
    [Parameter(Position = 1, ParameterSetName = RowsSet)]
    [Parameter(ParameterSetName = FileSet)]
    [Parameter(ParameterSetName = LiteralPathSet)]
    [AllowNull]
    public object? Parameters { get; set; }

    /// <summary>
    /// A row (PSCustomObject, hashtable, DataRow) piped in while the statement is given: it runs once per row, the
    /// row's properties bound to its @name placeholders as -Parameters binds a row.
    /// </summary>
    [Parameter(Mandatory = true, ParameterSetName = RowsSet, ValueFromPipeline = true)]
    [Parameter(ParameterSetName = FileSet, ValueFromPipeline = true)]
    public object? InputObject { get; set; }

    /// <summary>A session, or its name.</summary>
    [Parameter]
    [SessionTransformation]
    [ArgumentCompleter(typeof(SessionNameCompleter))]
    public AequorSession? Session { get; set; }

    /// <summary>PSObject (default), Scalar, NonQuery or DataTable.</summary>
    [Parameter]
    [ArgumentCompleter(typeof(QueryOutputCompleter))]
    public string As { get; set; } = AsRows;

    /// <summary>Seconds; 0 waits forever.</summary>
    [Parameter]
    [ValidateRange(0, int.MaxValue)]
    public int? CommandTimeout { get; set; }

    /// <summary>The statement may run twice: it is retried even after it reached the server.</summary>
    [Parameter]
    public SwitchParameter Idempotent { get; set; }

    protected override void BeginProcessing()
    {
        var kind = OutputKinds.FirstOrDefault(k => string.Equals(k, As, StringComparison.OrdinalIgnoreCase));
        if (kind is null)
        {
            ThrowInvalidParameter($"-As '{As}' is not an output kind; use one of: {string.Join(", ", OutputKinds)}.", As);
        }

        _as = kind!;
        _row = QueryParameters.RowOf(Parameters);
        try
        {
            (_positional, _named) = QueryParameters.From(Parameters);
        }
        catch (ParameterValueException ex)
        {
            ThrowInvalidParameter(ex.Message);
        }

        _session = ResolveSession(Session);
    }

    protected override void ProcessRecord()
    {
        if (IsPerRow)
        {
            ProcessRow();
            return;
        }

        var fromFile = ParameterSetName is FileSet or LiteralPathSet;
        var source = ParameterSetName == LiteralPathSet ? LiteralPath : File;
        var text = fromFile ? ReadFile(source, ParameterSetName == FileSet) : Query;
        _sourceFile = fromFile ? source : null;
        if (text is null || !IsSendable(text, fromFile ? source : null))
        {
            return;
        }

        // Again per record: a command further down this pipeline (… | Invoke-AequorQuery) is in mid-call here.
        ThrowIfStreamingHere(_session);
        if (_row is not null)
        {
            try
            {
                _named = QueryParameters.FromRow(_row, text);
            }
            catch (ParameterValueException ex)
            {
                ThrowInvalidParameter(ex.Message);
            }
        }

        Run(text);
    }

    /// <summary>One statement with the parameters in hand; its failure is this input's non-terminating error.</summary>
    private void Run(string text)
    {
        var statement = new AequorStatement(text)
        {
            PositionalParameters = _positional,
            NamedParameters = _named,
            CommandTimeout = CommandTimeout,
            Idempotent = Idempotent.IsPresent,
        };

        var client = _session.Client;
        _session.CountQuery();
        WriteVerbose(_session.Redactor.Redact($"Session '{_session.Name}': running {Describe(text)}{(_rowNumber > 0 ? $" for row {_rowNumber}" : string.Empty)}."));
        using var listening = _session.Listen(this);

        // Only the engine's calls are in a try: WriteObject runs the commands downstream on this thread, and what
        // they throw (a throw, -ErrorAction Stop, a stopped pipeline) is theirs, to pass on unchanged, never
        // a failed query. The engine's synchronous methods: the round trip on this thread, no thread-pool hop.
        switch (_as)
        {
            case AsScalar:
                if (TryRun(client.ExecuteScalar, statement, text, out var scalar))
                {
                    WriteObject(scalar);
                }

                break;
            case AsNonQuery:
                if (TryRun(client.ExecuteNonQuery, statement, text, out var affected))
                {
                    WriteObject(affected);
                }

                break;
            case AsDataTable:
                if (TryRun(client.ExecuteReader, statement, text, out var tableReader))
                {
                    WriteTables(tableReader, text);
                }

                break;
            default:
                if (TryRun(client.ExecuteReader, statement, text, out var rowReader))
                {
                    WriteRows(rowReader, text);
                }

                break;
        }
    }

    /// <summary>One engine call; its failure is this input's non-terminating AequorQueryFailed.</summary>
    private bool TryRun<T>(Func<AequorStatement, CancellationToken, T> call, AequorStatement statement, string text, out T result)
    {
        try
        {
            result = Blocking(call, statement, abandoned =>
            {
                if (abandoned is AequorReader reader)
                {
                    Close(reader, completed: false);
                }
            });
        }
        catch (Exception ex) when (IsEngineFailure(ex))
        {
            WriteQueryFailed(ex, text);
            result = default!;
            return false;
        }

        if (result is AequorReader)
        {
            _session.BeginStreaming();
        }

        return true;
    }

    // The file a failing statement came from: its error names the line in it.
    private string? _sourceFile;

    private void WriteQueryFailed(Exception ex, string text)
    {
        var what = $"The query on session '{_session.Name}' failed";
        if (_rowNumber > 0)
        {
            what = $"Row {_rowNumber} of the input: the query on session '{_session.Name}' failed";
            NoteRowFailure(ex);
        }

        WriteError(Errors.FromException(ex, ErrorIds.QueryFailed, ErrorCategory.InvalidOperation,
            what, _session.Redactor.Redact(text), _session.Redactor, Advice(ex) ?? MissingNameAdvice(ex, text), _sourceFile));
    }

    /// <summary>Why the given values bind no $n placeholder, and what to write instead; null without -Parameters or rows.</summary>
    private string? NothingBindsDollarPlaceholders() =>
        IsPerRow ? "A piped row binds @name placeholders by its property names; $1-style ones get nothing from it: write @id in the statement."
        : _row is not null ? "An object given as -Parameters binds @name placeholders by its property names; $1-style ones get nothing from it: write @id in the statement, or pass the values in order ($row.id, $row.name)."
        : _named is not null ? "A hashtable given as -Parameters binds @name placeholders by its keys; $1-style ones get nothing from it: write @id in the statement, or pass the values in order as an array (-Parameters 5, 'x')."
        : MyInvocation.BoundParameters.ContainsKey(nameof(Parameters)) ? "-Parameters was $null, which passes no parameters: to bind NULL to $1, pass -Parameters @($null)."
        : null;

    /// <summary>What to do about the two parameter mistakes whose server error does not say it.</summary>
    private string? Advice(Exception ex)
    {
        var serverText = Aequor.Engine.ServerErrors.MessageTextOf(ex) ?? string.Empty;
        if (_positional is null && _named is null && MyInvocation.BoundParameters.ContainsKey(nameof(Parameters))
            && serverText.Contains("bind message supplies 0 parameters", StringComparison.Ordinal))
        {
            return "-Parameters was $null, which passes no parameters: to bind NULL to $1, pass -Parameters @($null).";
        }

        if ((_row is not null || _rowNumber > 0) && serverText.Contains("bind message supplies 0 parameters", StringComparison.Ordinal))
        {
            return _rowNumber > 0
                ? "A piped row binds @name placeholders by its property names; $1-style ones get nothing from it: write @id in the statement."
                : "An object given as -Parameters binds @name placeholders by its property names; $1-style ones get nothing from it: write @id in the statement, or pass the values in order ($row.id, $row.name).";
        }

        if (_positional is not null && (IsArrayExpected(serverText) || (ex is Aequor.Engine.AequorConfigurationException && ex.Message.Contains("positional values", StringComparison.Ordinal))))
        {
            // PowerShell unrolls: -Parameters $ids binds each id to its own placeholder, and a single id is no array at all.
            return $"-Parameters gave {_positional.Count} value(s), one per placeholder ($1, $2 ...): to bind an array to $1 (= ANY($1)), wrap it: -Parameters @(, @($ids)); or name it: ANY(@ids) with -Parameters @{{ ids = $ids }}.";
        }

        if (_positional is not null && serverText.Contains("cannot insert multiple commands into a prepared statement", StringComparison.Ordinal))
        {
            return "Several statements cannot share $1-style parameters in one call: use @name parameters with a hashtable (each statement is then sent on its own), or one call per statement.";
        }

        // Npgsql asks for every column in binary; a type without a binary form fails the statement, and the server's
        // text names neither the column nor the way out. SELECT * FROM pg_class (relacl) or pg_database (datacl) meet it.
        const string NoBinary = "no binary output function available for type ";
        if (serverText.StartsWith(NoBinary, StringComparison.Ordinal))
        {
            var type = serverText[NoBinary.Length..].Trim();
            return $"A column of type {type} (or an array of it, such as the catalogues' privilege columns relacl, datacl, nspacl, proacl, attacl) cannot be sent in binary, the form every column is read in: cast it to text in the query (relacl::text), or name the columns you need instead of *.";
        }

        return null;
    }

    /// <summary>
    /// An @name with no value is left in the text, where PostgreSQL reads it as the operator @ on a column: its
    /// 42703 'column "x" does not exist' does not say the hashtable lacks x.
    /// </summary>
    private string? MissingNameAdvice(Exception ex, string text)
    {
        var serverText = Aequor.Engine.ServerErrors.MessageTextOf(ex) ?? string.Empty;
        var missing = System.Text.RegularExpressions.Regex.Match(serverText, "^column \"(.+)\" does not exist$");
        if (!missing.Success)
        {
            return null;
        }

        var name = missing.Groups[1].Value;
        if (_named?.ContainsKey(name) == true
            || !System.Text.RegularExpressions.Regex.IsMatch(text, $"(?<![\\w@])@{System.Text.RegularExpressions.Regex.Escape(name)}(?!\\w)", System.Text.RegularExpressions.RegexOptions.IgnoreCase))
        {
            return null;
        }

        if (_rowNumber > 0)
        {
            return $"The statement uses @{name}, but row {_rowNumber} of the input has no property {name} (it has: {RowNames()}).";
        }

        if (_row is not null)
        {
            return $"The statement uses @{name}, but the object given as -Parameters has no property {name} (it has: {QueryParameters.PropertyNames(_row)}).";
        }

        return _named is not null
            ? $"The statement uses @{name}, but -Parameters has no value named {name}: add it to the hashtable (@{{ {name} = ... }}).{UnreachableKeys(_named, name)}"
            : $"The statement uses @{name}, which only a hashtable binds: -Parameters @{{ {name} = ... }}.";
    }

    /// <summary>
    /// The hashtable's keys that no @name can reach (Npgsql reads a placeholder's name as letters, digits, _ and .; a $
    /// was seen to bind too): '@a b' reads as @a then b, so @{ 'a b' = 1 } left @a unbound with nothing to say why.
    /// Such keys stay allowed, unused, as the columns of an Import-Csv row with spaces in their names are.
    /// </summary>
    private static string UnreachableKeys(IReadOnlyDictionary<string, object?> named, string name)
    {
        var keys = named.Keys
            .Where(k => k.Length > 0 && !k.All(c => char.IsLetterOrDigit(c) || c is '_' or '.' or '$'))
            .OrderBy(k => k.StartsWith(name, StringComparison.OrdinalIgnoreCase) ? 0 : 1)
            .ThenBy(k => k, StringComparer.Ordinal)
            .Take(3)
            .Select(k => $"'{k}'")
            .ToList();
        return keys.Count == 0
            ? string.Empty
            : $" -Parameters has {string.Join(", ", keys)}, which no @name can name: a placeholder's name is letters, digits, _ and . only, so rename the key (and the @name).";
    }

    /// <summary>The server's words for a scalar where an array belongs: ANY($1) (42809), $1::int[] (42846).</summary>
    private static bool IsArrayExpected(string serverText) =>
        serverText.Contains("requires array on right side", StringComparison.Ordinal)
        || System.Text.RegularExpressions.Regex.IsMatch(serverText, @"^cannot cast type (.+) to \1\[\]$");

    /// <summary>
    /// The SQL of one file, its path taken literally; null (a non-terminating AequorFileNotFound written) when there is
    /// no such file, so the next piped file still runs, as with Get-Content. -File refuses a wildcard that names no
    /// file but matches some: running one of them, or all in glob order, would surprise.
    /// </summary>
    /// <summary>
    /// Whether the text can go to the server; otherwise that input's error (or, for an empty file, a warning) is
    /// written. A NUL in SQL text makes PostgreSQL drop the connection (a transaction with it), and so does a COPY to or
    /// from the client, through Npgsql: both refused here.
    /// </summary>
    private bool IsSendable(string text, string? file)
    {
        if (text.Contains('\0', StringComparison.Ordinal))
        {
            var where = file is null
                ? "The query text holds a NUL character (U+0000): PostgreSQL takes none in SQL text, and sending one would break the connection (and lose an open transaction); nothing was sent. Text columns cannot store one either: remove it (-replace \"`0\", ''), or send binary data as a [byte[]] in -Parameters to a bytea."
                : $"The SQL file '{file}' holds a NUL character (U+0000): it is probably UTF-16 without a byte order mark, or not text. Save it as UTF-8; nothing was sent.";
            WriteError(Errors.Create(ErrorIds.InvalidParameter, ErrorCategory.InvalidData, where, file ?? (object)text));
            return false;
        }

        if (CopyStreamText.Refusal(text) is { } copy)
        {
            var what = file is null ? copy : $"The SQL file '{file}': {copy}";
            WriteError(Errors.Create(ErrorIds.InvalidParameter, ErrorCategory.InvalidOperation, what, file ?? (object)text));
            return false;
        }

        if (AequorStatement.IndexOfUnpairedSurrogate(text) is var lone and >= 0)
        {
            WriteError(Errors.Create(ErrorIds.InvalidParameter, ErrorCategory.InvalidData,
                $"The query text holds an unpaired UTF-16 surrogate (U+{(int)text[lone]:X4}) at character {lone + 1}, half of a character such as an emoji (a string cut in its middle?): it is not valid Unicode, and sending it would break the connection (and lose an open transaction). Nothing was sent: remove or replace it (-Parameters refuses it too: PostgreSQL text is UTF-8 and cannot store it).",
                file ?? (object)text));
            return false;
        }

        if (_positional is { } values && AequorStatement.HighestPlaceholder(text) is { } highest && highest > values.Count)
        {
            // PostgreSQL refuses such a Bind with 08P01, after which Npgsql drops the connection: an open transaction
            // (or a SET) would be lost over a count the client can see.
            WriteError(Errors.Create(ErrorIds.InvalidParameter, ErrorCategory.InvalidArgument,
                $"The statement uses placeholders up to ${highest} but -Parameters gives {values.Count} {(values.Count == 1 ? "value" : "values")}. Nothing was sent: give one value per placeholder, in order ($1 is the first).",
                file ?? (object)text));
            return false;
        }

        if (_positional is null && NothingBindsDollarPlaceholders() is { } advice && AequorStatement.HighestPlaceholder(text) is { } dollar and > 0)
        {
            // Sent, its Bind would carry fewer values than the $n need: the same 08P01 and dropped connection. Without
            // -Parameters at all it goes as written: PREPARE p AS SELECT $1 has no parameters of its own.
            WriteError(Errors.Create(ErrorIds.InvalidParameter, ErrorCategory.InvalidArgument,
                $"The statement uses placeholders up to ${dollar}, but nothing binds them. {advice} Nothing was sent.",
                file ?? (object)text));
            return false;
        }

        if (file is not null && string.IsNullOrWhiteSpace(text))
        {
            // A placeholder in a migrations folder: nothing to run, and worth a word rather than an error.
            WriteWarning($"The SQL file '{file}' is empty: nothing was run.");
            return false;
        }

        return true;
    }

    private string? ReadFile(string given, bool refuseWildcard)
    {
        string path;
        ProviderInfo provider;
        try
        {
            path = SessionState.Path.GetUnresolvedProviderPathFromPSPath(given, out provider, out _);
        }
        catch (Exception ex) when (ex is SessionStateException or NotSupportedException or ArgumentException)
        {
            WriteError(Errors.Create(ErrorIds.FileNotFound, ErrorCategory.ObjectNotFound, $"The SQL file '{given}' does not exist: {ex.Message}", given, ex));
            return null;
        }

        if (provider.Name != "FileSystem")
        {
            WriteError(Errors.Create(ErrorIds.FileNotFound, ErrorCategory.InvalidArgument, $"'{given}' is not a file-system path: give the path of a SQL file.", given));
            return null;
        }

        if (System.IO.File.Exists(path))
        {
            if (SqlFileText.Read(path, out var badByte) is { } text)
            {
                return text;
            }

            var which = badByte is { } b ? $" (byte 0x{b:X2})" : string.Empty;
            WriteError(Errors.Create(ErrorIds.InvalidParameter, ErrorCategory.InvalidData,
                $"The SQL file '{given}' is not valid UTF-8{which}: it was probably saved in a legacy code page such as Windows-1252 (Set-Content and Out-File in Windows PowerShell 5.1 do that). Save it as UTF-8; nothing was sent.",
                given));
            return null;
        }

        if (refuseWildcard && WildcardPattern.ContainsWildcardCharacters(given) && Matches(given) is var matches and > 0)
        {
            ThrowInvalidParameter(
                $"-File '{given}' names no file; as a wildcard it matches {matches} file(s), but -File runs one file and expands no wildcards. " +
                $"To run each in turn, pipe them: Get-ChildItem '{given}' | Sort-Object Name | Invoke-AequorQuery.", given);
        }

        var what = System.IO.Directory.Exists(path) ? "is a directory, not a SQL file" : "does not exist";
        WriteError(Errors.Create(ErrorIds.FileNotFound, ErrorCategory.ObjectNotFound, $"The SQL file '{given}' {what}.", given));
        return null;
    }

    private int Matches(string pattern)
    {
        try
        {
            return GetResolvedProviderPathFromPSPath(pattern, out _).Count(System.IO.File.Exists);
        }
        catch (Exception ex) when (ex is SessionStateException or NotSupportedException or ArgumentException)
        {
            return 0;
        }
    }

    private void WriteRows(AequorReader reader, string text)
    {
        Exception? failure = null;
        var affected = -1;
        var completed = false;
        var readToEnd = false;
        try
        {
            using var rows = Rows(reader).GetEnumerator();
            while (Next(rows, ref failure))
            {
                WriteObject(rows.Current);
            }

            completed = failure is null;
            affected = completed ? reader.RecordsAffected : -1;
        }
        catch (Exception ex) when (IsEnoughRows(ex) && _session.InTransaction)
        {
            // Select-Object -First has its rows, which is no failure: inside a transaction a cancel would abort
            // it (57014), and the next commit would roll back the writes before it. The rest is read instead.
            readToEnd = true;
            throw;
        }
        finally
        {
            Close(reader, completed, readToEnd);
        }

        if (failure is not null)
        {
            WriteQueryFailed(failure, text);
        }
        else if (affected >= 0)
        {
            WriteVerbose($"{affected} row(s) affected.");
        }
    }

    /// <summary>The engine's next item: false at the end, or on the engine's failure, kept in <paramref name="failure"/>.</summary>
    private static bool Next<T>(IEnumerator<T> items, ref Exception? failure)
    {
        try
        {
            return items.MoveNext();
        }
        catch (Exception ex) when (IsEngineFailure(ex))
        {
            failure = ex;
            return false;
        }
    }

    /// <summary>
    /// The rows of every result set, read as they are asked for. A row of no columns (SELECT FROM t WHERE ...) is an
    /// empty object, so counting the rows or testing them with if answers an existence check; statements without a
    /// result set (INSERT) have no rows to read.
    /// </summary>
    private IEnumerable<PSObject> Rows(AequorReader reader)
    {
        do
        {
            var names = ColumnNames(reader);
            while (Await(reader.ReadAsync(StopToken)))
            {
                var row = new PSObject();
                for (var i = 0; i < names.Length; i++)
                {
                    row.Properties.Add(new PSNoteProperty(names[i], ValueOf(reader, i)));
                }

                yield return row;
            }
        }
        while (Await(reader.NextResultAsync(StopToken)));
    }

    /// <summary>
    /// Every table is read before the first is written: the reader is closed by then, so the commands downstream
    /// may use the session (the advice of AequorSessionBusy). The tables read before a failure are still written.
    /// </summary>
    private void WriteTables(AequorReader reader, string text)
    {
        var tables = new List<DataTable>();
        Exception? failure = null;
        var completed = false;
        try
        {
            ReadTables(reader, tables);
            completed = true;
        }
        catch (Exception ex) when (IsEngineFailure(ex))
        {
            failure = ex;
        }
        finally
        {
            Close(reader, completed);
        }

        foreach (var table in tables)
        {
            WriteObject(table, enumerateCollection: false);
        }

        if (failure is not null)
        {
            WriteQueryFailed(failure, text);
        }
    }

    /// <summary>A table per result set, one of no columns (SELECT FROM t) too, with a row per row; none for an INSERT.</summary>
    private void ReadTables(AequorReader reader, List<DataTable> tables)
    {
        do
        {
            if (!reader.HasResultSet)
            {
                continue;
            }

            var names = ColumnNames(reader);
            var fieldTypes = Enumerable.Range(0, names.Length).Select(reader.GetFieldType).ToArray();
            var rows = new List<object[]>();
            while (Await(reader.ReadAsync(StopToken)))
            {
                var values = new object[names.Length];
                for (var i = 0; i < values.Length; i++)
                {
                    values[i] = ValueOf(reader, i) ?? DBNull.Value;
                }

                rows.Add(values);
            }

            tables.Add(ToTable(names, fieldTypes, rows));
        }
        while (Await(reader.NextResultAsync(StopToken)));
    }

    /// <summary>
    /// A column is typed when all its values share one type (the engine gives text for types with no
    /// plain .NET equivalent, or a numeric beyond decimal's range) and the typed column keeps them; otherwise it holds objects.
    /// </summary>
    private static DataTable ToTable(string[] names, Type[] fieldTypes, List<object[]> rows)
    {
        var table = new DataTable { Locale = System.Globalization.CultureInfo.InvariantCulture };
        for (var i = 0; i < names.Length; i++)
        {
            var types = rows.Select(r => r[i]).Where(v => v is not DBNull).Select(v => v.GetType()).Distinct().Take(2).ToList();
            var type = types.Count == 1 ? types[0]
                : types.Count == 0 && fieldTypes[i].Assembly == typeof(object).Assembly ? fieldTypes[i]
                : typeof(object);
            if ((type == typeof(double) || type == typeof(float)) && rows.Any(r => r[i] is double d && d == 0 && double.IsNegative(d) || r[i] is float f && f == 0 && float.IsNegative(f)))
            {
                // A typed column hands back its boxed default for any value equal to it: -0 came back as 0.
                type = typeof(object);
            }

            var column = table.Columns.Add(names[i], type);
            if (type == typeof(DateTime) && rows.Any(r => r[i] is DateTime) && rows.All(r => r[i] is not DateTime time || time.Kind == DateTimeKind.Utc))
            {
                // A column's default mode (UnspecifiedLocal) strips a timestamptz's Kind Utc, which the rows keep.
                column.DateTimeMode = DataSetDateTime.Utc;
            }
        }

        table.BeginLoadData();
        foreach (var row in rows)
        {
            table.Rows.Add(row);
        }

        table.EndLoadData();
        return table;
    }

    /// <summary>
    /// Ends a reader. A reader left half-read (Ctrl+C, Select-Object -First) would be drained to the
    /// last row on dispose; reading once with a cancelled token makes Npgsql send the server a
    /// cancel request instead, so the query stops there.
    /// </summary>
    private void Close(AequorReader reader, bool completed, bool readToEnd = false)
    {
        // Before the dispose releases the gate: another runspace's reader may take it at once and mark itself.
        _session.EndStreaming();
        if (!completed && !(readToEnd && ReadRest(reader)))
        {
            using var cancelled = new CancellationTokenSource();
            cancelled.Cancel();
            try
            {
                for (var i = 0; i < 1_000_000 && reader.ReadAsync(cancelled.Token).GetAwaiter().GetResult(); i++)
                {
                }
            }
#pragma warning disable CA1031 // Expected: the cancellation, or the server's 57014.
            catch (Exception)
#pragma warning restore CA1031
            {
            }
        }

        try
        {
            reader.DisposeAsync().AsTask().GetAwaiter().GetResult();
        }
        catch (Exception ex) when (!completed && ex is not OutOfMemoryException)
        {
            // The statement was abandoned; its error is not news.
        }
        finally
        {
            // The end of a statement is posted when its reader closes (a renewal that rode along with it).
            DrainPosted();
        }
    }

    /// <summary>
    /// Whether a command downstream stopped the pipeline because it has all the rows it wants (Select-Object -First,
    /// which PowerShell 7.6 surfaces here as a stopped pipeline): not Ctrl+C or Stop-Job, which cancel the token first.
    /// A stop that cancels it a moment later still cancels the reading of the rest (<see cref="ReadRest"/>).
    /// </summary>
    private bool IsEnoughRows(Exception ex) =>
        (ex is PipelineStoppedException || ex.GetType().Name == "StopUpstreamCommandsException") && !StopToken.IsCancellationRequested;

    /// <summary>
    /// Reads the rest of every result set, leaving the statement to finish; false when it could not (Ctrl+C, a
    /// failure: the engine has noted it), and the caller then cancels what is left.
    /// </summary>
    private bool ReadRest(AequorReader reader)
    {
        try
        {
            do
            {
                while (reader.ReadAsync(StopToken).GetAwaiter().GetResult())
                {
                }
            }
            while (reader.NextResultAsync(StopToken).GetAwaiter().GetResult());

            return true;
        }
#pragma warning disable CA1031 // Its failure is the transaction's now: the commit reports it.
        catch (Exception)
#pragma warning restore CA1031
        {
            return false;
        }
    }

    // AequorReader.GetValue throws NullReferenceException on a void column (SELECT pg_sleep(1),
    // pg_advisory_lock(…)): Npgsql reads void as null, not DBNull. Until the engine maps it, void is $null here.
    private static object? ValueOf(AequorReader reader, int ordinal)
    {
        try
        {
            return reader.GetValue(ordinal);
        }
        catch (NullReferenceException)
        {
            return null;
        }
    }

    private static readonly string[] ReservedMemberNames = ["PSObject", "psbase", "PSAdapted", "PSExtended", "PSTypeNames"];

    internal static string[] ColumnNames(AequorReader reader)
    {
        var names = new string[reader.FieldCount];
        // PowerShell refuses a note property with one of its own members' names: such a column is renamed like
        // a duplicate of it (PSObject_2).
        var seen = new HashSet<string>(ReservedMemberNames, StringComparer.OrdinalIgnoreCase);
        for (var i = 0; i < names.Length; i++)
        {
            var name = reader.GetName(i);
            if (string.IsNullOrEmpty(name))
            {
                name = $"Column{i + 1}";
            }

            // PowerShell property names are case-insensitive and unique: SELECT 1, 1 gives ?column? and ?column?_2.
            var unique = name;
            for (var n = 2; !seen.Add(unique); n++)
            {
                unique = $"{name}_{n}";
            }

            names[i] = unique;
        }

        return names;
    }

    private static string Describe(string text)
    {
        var oneLine = string.Join(' ', text.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries));
        return oneLine.Length <= 80 ? $"'{oneLine}'" : $"'{oneLine[..77]}...'";
    }
}
