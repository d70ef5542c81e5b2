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
public sealed class InvokeAequorQueryCommand : AequorCmdlet
{
    public const string QuerySet = "Query";
    public const string FileSet = "File";
    public const string AsRows = "PSObject";
    public const string AsScalar = "Scalar";
    public const string AsNonQuery = "NonQuery";
    public const string AsDataTable = "DataTable";

    internal static readonly string[] OutputKinds = [AsRows, AsScalar, AsNonQuery, AsDataTable];

    private AequorSession _session = null!;
    private string _as = AsRows;
    private IReadOnlyList<object?>? _positional;
    private IReadOnlyDictionary<string, object?>? _named;

    [Parameter(Mandatory = true, Position = 0, ParameterSetName = QuerySet, ValueFromPipeline = true)]
    [ValidateNotNullOrEmpty]
    public string Query { get; set; } = string.Empty;

    /// <summary>A SQL file; also from the pipeline by FullName (Get-ChildItem ./migrations/*.sql | Invoke-AequorQuery).</summary>
    [Parameter(Mandatory = true, ParameterSetName = FileSet, ValueFromPipelineByPropertyName = true)]
    [Alias("FullName")]
    [ValidateNotNullOrEmpty]
    public string File { get; set; } = string.Empty;

    /// <summary>A hashtable for <c>@name</c> placeholders, an array for <c>$1</c>, <c>$2</c> ….</summary>
    /// <remarks>Positional only after a query: with -File a stray argument is refused instead of taken for parameters.</remarks>
    [Parameter(Position = 1, ParameterSetName = QuerySet)]
    [Parameter(ParameterSetName = FileSet)]
    [AllowNull]
    public object? Parameters { get; set; }

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
        (_positional, _named) = QueryParameters.From(Parameters, this);
        _session = ResolveSession(Session);
    }

    protected override void ProcessRecord()
    {
        string text;
        if (ParameterSetName == FileSet)
        {
            text = ReadFile();
        }
        else
        {
            text = Query;
        }

        var statement = new AequorStatement(text)
        {
            PositionalParameters = _positional,
            NamedParameters = _named,
            CommandTimeout = CommandTimeout,
            Idempotent = Idempotent.IsPresent,
        };

        var client = _session.Client;
        _session.CountQuery();
        WriteVerbose(_session.Redactor.Redact($"Session '{_session.Name}': running {Describe(text)}."));
        using var listening = _session.Listen(this);
        try
        {
            switch (_as)
            {
                // The engine's synchronous methods: the round trip on this thread, no hop through the thread pool.
                case AsScalar:
                    WriteObject(Blocking(client.ExecuteScalar, statement));
                    break;
                case AsNonQuery:
                    WriteObject(Blocking(client.ExecuteNonQuery, statement));
                    break;
                case AsDataTable:
                    WriteTables(Blocking(client.ExecuteReader, statement));
                    break;
                default:
                    WriteRows(Blocking(client.ExecuteReader, statement));
                    break;
            }
        }
        catch (Exception ex) when (ex is not PipelineStoppedException and not PipelineClosedException && !IsStopUpstream(ex))
        {
            WriteError(Errors.FromException(ex, ErrorIds.QueryFailed, ErrorCategory.InvalidOperation,
                $"The query on session '{_session.Name}' failed", _session.Redactor.Redact(text), _session.Redactor, Advice(ex)));
        }
    }

    /// <summary>What to do about the two parameter mistakes whose server error does not say it.</summary>
    private string? Advice(Exception ex)
    {
        var serverText = Aequor.Engine.ServerErrors.MessageTextOf(ex) ?? string.Empty;
        if (_positional is null && _named is null && MyInvocation.BoundParameters.ContainsKey(nameof(Parameters))
            && serverText.Contains("bind message supplies 0 parameters", StringComparison.Ordinal))
        {
            return "-Parameters was $null, which passes no parameters: to bind NULL to $1, pass -Parameters @($null).";
        }

        if (_positional is not null && serverText.Contains("cannot insert multiple commands into a prepared statement", StringComparison.Ordinal))
        {
            return "Several statements cannot share $1-style parameters in one call: use @name parameters with a hashtable (each statement is then sent on its own), or one call per statement.";
        }

        return null;
    }

    private string ReadFile()
    {
        string path;
        try
        {
            path = GetResolvedProviderPathFromPSPath(File, out var provider).FirstOrDefault() ?? File;
            if (provider.Name != "FileSystem")
            {
                ThrowTerminatingError(Errors.Create(ErrorIds.FileNotFound, ErrorCategory.InvalidArgument, $"-File '{File}' is not a file-system path.", File));
            }
        }
        catch (ItemNotFoundException)
        {
            path = string.Empty;
        }

        if (path.Length == 0 || !System.IO.File.Exists(path))
        {
            ThrowTerminatingError(Errors.Create(ErrorIds.FileNotFound, ErrorCategory.ObjectNotFound, $"The SQL file '{File}' does not exist.", File));
        }

        return System.IO.File.ReadAllText(path);
    }

    private void WriteRows(AequorReader reader)
    {
        var completed = false;
        try
        {
            do
            {
                if (reader.FieldCount == 0)
                {
                    continue;
                }

                var names = ColumnNames(reader);
                while (Await(reader.ReadAsync(StopToken)))
                {
                    var row = new PSObject();
                    for (var i = 0; i < names.Length; i++)
                    {
                        row.Properties.Add(new PSNoteProperty(names[i], ValueOf(reader, i)));
                    }

                    WriteObject(row);
                }
            }
            while (Await(reader.NextResultAsync(StopToken)));

            completed = true;
            if (reader.RecordsAffected >= 0)
            {
                WriteVerbose($"{reader.RecordsAffected} row(s) affected.");
            }
        }
        finally
        {
            Close(reader, completed);
        }
    }

    private void WriteTables(AequorReader reader)
    {
        var completed = false;
        try
        {
            do
            {
                if (reader.FieldCount == 0)
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

                WriteObject(ToTable(names, fieldTypes, rows), enumerateCollection: false);
            }
            while (Await(reader.NextResultAsync(StopToken)));

            completed = true;
        }
        finally
        {
            Close(reader, completed);
        }
    }

    /// <summary>
    /// A column is typed when all its values share one type (the engine gives text for types with no
    /// plain .NET equivalent, or a numeric beyond decimal's range); otherwise it holds objects.
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
            table.Columns.Add(names[i], type);
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
    private void Close(AequorReader reader, bool completed)
    {
        if (!completed)
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

    private static bool IsStopUpstream(Exception ex) =>
        ex.GetType().Name == "StopUpstreamCommandsException";

    private static string Describe(string text)
    {
        var oneLine = string.Join(' ', text.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries));
        return oneLine.Length <= 80 ? $"'{oneLine}'" : $"'{oneLine[..77]}...'";
    }
}

/// <summary>-Parameters as the engine wants them: positional from a list, named from a dictionary.</summary>
internal static class QueryParameters
{
    public static (IReadOnlyList<object?>? Positional, IReadOnlyDictionary<string, object?>? Named) From(object? value, AequorCmdlet cmdlet)
    {
        value = Unwrap(value);
        switch (value)
        {
            case null:
                return (null, null);
            case IDictionary dictionary:
                var named = new Dictionary<string, object?>(StringComparer.Ordinal);
                foreach (DictionaryEntry entry in dictionary)
                {
                    var key = Convert.ToString(Unwrap(entry.Key), System.Globalization.CultureInfo.InvariantCulture)?.TrimStart('@');
                    if (string.IsNullOrEmpty(key))
                    {
                        cmdlet.ThrowInvalidParameter("-Parameters has an empty name; use @{ name = value } for @name placeholders.");
                    }

                    named[key!] = Value(entry.Value, cmdlet);
                }

                return (null, named);
            case string or byte[]:
                return ([value], null);
            case IEnumerable list:
                return (list.Cast<object?>().Select(v => Value(v, cmdlet)).ToList(), null);
            default:
                return ([Value(value, cmdlet)], null);
        }
    }

    private static object? Unwrap(object? value) => value is PSObject wrapped ? wrapped.BaseObject : value;

    private static object? Value(object? value, AequorCmdlet cmdlet)
    {
        value = Unwrap(value);
        switch (value)
        {
            case null or DBNull:
                return null;
            case PSCustomObject:
                cmdlet.ThrowInvalidParameter("-Parameters holds a PSCustomObject; pass plain values (convert it with ConvertTo-Json for a json parameter).");
                return null;
            case SwitchParameter flag:
                return flag.IsPresent;
            case string or byte[]:
                return value;
            case DateTime { Kind: DateTimeKind.Local } local:
                // Get-Date is local time: the instant it names, as timestamptz. Sent as it is, Npgsql would make it
                // a timestamp without time zone, read in the server's TimeZone, off by the difference.
                return local.ToUniversalTime();
            case IDictionary:
                cmdlet.ThrowInvalidParameter("-Parameters holds a nested hashtable; pass plain values (ConvertTo-Json for a json parameter).");
                return null;
            case Array typed when typed.Rank == 1 && typed.GetType().GetElementType() is { } element && KeepsItsType(element):
                // [int[]]@() or [guid[]]: already what Npgsql needs, even empty.
                return typed;
            case IEnumerable items:
                return TypedArray(items.Cast<object?>().Select(v => Value(v, cmdlet)).ToList(), cmdlet);
            default:
                return value;
        }
    }

    private static bool KeepsItsType(Type element) =>
        element != typeof(object) && element != typeof(PSObject) && element != typeof(DateTime) && element != typeof(DateTime?);

    private static readonly Type[] Integers = [typeof(byte), typeof(sbyte), typeof(short), typeof(ushort), typeof(int), typeof(uint), typeof(long)];
    private static readonly Type[] Fractions = [typeof(float), typeof(double)];

    /// <summary>
    /// PowerShell arrays are object[]: make them int[], string[] … so Npgsql knows the array type. Numbers of
    /// several types widen (1, 5000000000 is a bigint[]); other mixes are an error naming them. Empty or all-null
    /// stays object[]: the engine sends it untyped, for the server to type from its use.
    /// </summary>
    private static Array TypedArray(List<object?> items, AequorCmdlet cmdlet)
    {
        var types = items.Where(i => i is not null).Select(i => i!.GetType()).Distinct().ToList();
        if (types.Count == 0)
        {
            return items.ToArray();
        }

        var element = types.Count == 1 ? types[0] : Widest(types);
        if (element is null)
        {
            cmdlet.ThrowInvalidParameter($"-Parameters holds an array mixing {string.Join(", ", types.Select(t => t.Name))}: a PostgreSQL array has one element type. Make it one type, e.g. [string[]] or [long[]].");
            return items.ToArray();
        }

        if (types.Count > 1)
        {
            // A double holds integers exactly only up to 2^53: past that, with fractions beside, decimal or nothing.
            if (element == typeof(double) && items.Any(i => i is long l && (l > 1L << 53 || l < -(1L << 53))))
            {
                element = typeof(decimal);
            }

            try
            {
                for (var i = 0; i < items.Count; i++)
                {
                    var before = items[i];
                    items[i] = before is { } item ? Convert.ChangeType(item, element, System.Globalization.CultureInfo.InvariantCulture) : null;
                    // decimal keeps 28 digits, not every double (1e-30, 17 significant digits): refuse rather than round.
                    if (element == typeof(decimal) && before is double d && (double)(decimal)items[i]! != d)
                    {
                        throw new OverflowException();
                    }
                }
            }
            catch (OverflowException)
            {
                cmdlet.ThrowInvalidParameter($"-Parameters holds an array mixing {string.Join(", ", types.Select(t => t.Name))} that no one number type holds exactly. Make it one type, e.g. [decimal[]] or [double[]].");
            }
        }

        if (element.IsValueType && items.Contains(null))
        {
            element = typeof(Nullable<>).MakeGenericType(element);
        }

        var array = Array.CreateInstance(element, items.Count);
        for (var i = 0; i < items.Count; i++)
        {
            array.SetValue(items[i], i);
        }

        return array;
    }

    /// <summary>The one number type every value fits, or null when the values are not all numbers.</summary>
    private static Type? Widest(List<Type> types)
    {
        if (types.Any(t => t == typeof(decimal)) && types.All(t => t == typeof(decimal) || Integers.Contains(t)))
        {
            return typeof(decimal);
        }

        if (types.All(t => Integers.Contains(t)))
        {
            return typeof(long);
        }

        return types.All(t => Integers.Contains(t) || Fractions.Contains(t)) ? typeof(double) : null;
    }
}
