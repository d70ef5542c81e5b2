using Npgsql;
using NpgsqlTypes;

namespace Aequor.Engine;

/// <summary>
/// Streams rows of one or more result sets as plain .NET values (no Npgsql types leave the engine):
/// DBNull becomes null; Postgres types without a natural .NET type are read as their text.
/// </summary>
/// <remarks>
/// The retry rule for streams: <see cref="AequorClient.ExecuteReaderAsync"/> returns only once the first row
/// (or the end of the first result set) has arrived, and everything up to that point may be retried under
/// the client's write-safety rules. From the moment this reader exists, rows can be handed out, so nothing is
/// ever retried: a connection lost mid-stream surfaces as <see cref="AequorOutcomeUnknownException"/>.
/// </remarks>
public sealed class AequorReader : IAsyncDisposable
{
    private readonly NpgsqlDataReader _reader;
    private readonly Func<ValueTask>? _onDispose;
    private readonly ReaderCompletion? _completion;
    private bool _firstReadPending;
    private bool _firstReadResult;
    private bool _disposed;
    private Exception? _failure;

    // Per column of the current result set: how its values are read (see Readings).
    private ColumnReading[]? _readings;

    private enum ColumnReading : byte
    {
        General,
        Plain,
        Timestamp,
        TimestampUtc,
        Inet,
        InetArray,
    }

    internal AequorReader(NpgsqlDataReader reader, Func<ValueTask>? onDispose)
    {
        _reader = reader;
        _onDispose = onDispose;
    }

    internal AequorReader(NpgsqlDataReader reader, bool firstReadResult, ReaderCompletion completion)
    {
        _reader = reader;
        _completion = completion;
        _firstReadPending = true;
        _firstReadResult = firstReadResult;
    }

    public int FieldCount => _reader.FieldCount;

    /// <summary>
    /// Whether the reader stands on a result set, which may have no columns (SELECT FROM t gives rows of none),
    /// rather than past statements that return none (INSERT, CREATE TABLE): both have a FieldCount of 0.
    /// </summary>
    public bool HasResultSet
    {
        get
        {
            if (_reader.FieldCount > 0)
            {
                return true;
            }

            // Npgsql says which only through a column lookup: no such column in a result set (any name is missing
            // from one of no columns), but no result set at all when its statements returned none.
            try
            {
                _ = _reader.GetOrdinal("?");
                return true;
            }
            catch (IndexOutOfRangeException)
            {
                return true;
            }
            catch (InvalidOperationException)
            {
                return false;
            }
        }
    }

    /// <summary>Rows changed by the statements read so far; -1 for a pure select.</summary>
    public int RecordsAffected => _reader.RecordsAffected;

    /// <summary>Rows handed out so far, over all result sets.</summary>
    public long RowsRead { get; private set; }

    public string GetName(int ordinal) => _reader.GetName(ordinal);

    public string GetDataTypeName(int ordinal) => _reader.GetDataTypeName(ordinal);

    public Type GetFieldType(int ordinal) => _reader.GetFieldType(ordinal);

    public Task<bool> ReadAsync(CancellationToken cancellationToken)
    {
        if (_firstReadPending)
        {
            // The client read the first row before handing this reader out (see remarks).
            _firstReadPending = false;
            return Counted(_firstReadResult);
        }

        Task<bool> read;
        try
        {
            read = _reader.ReadAsync(cancellationToken);
        }
        catch (Exception ex)
        {
            return Task.FromException<bool>(Fail(ex));
        }

        // Rows already buffered complete synchronously: no state machine per row on the hot path.
        return read.IsCompletedSuccessfully ? Counted(read.Result) : ReadSlowAsync(read);
    }

    private async Task<bool> ReadSlowAsync(Task<bool> read)
    {
        try
        {
            return Counted(await read.ConfigureAwait(false)).Result;
        }
        catch (Exception ex)
        {
            throw Fail(ex);
        }
    }

    private Task<bool> Counted(bool row)
    {
        if (row)
        {
            RowsRead++;
            return TrueTask;
        }

        return FalseTask;
    }

    private static readonly Task<bool> TrueTask = Task.FromResult(true);
    private static readonly Task<bool> FalseTask = Task.FromResult(false);

    public async Task<bool> NextResultAsync(CancellationToken cancellationToken)
    {
        _firstReadPending = false;
        _readings = null;
        try
        {
            return await _reader.NextResultAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            throw Fail(ex);
        }
    }

    public object? GetValue(int ordinal)
    {
        try
        {
            return ReadValue(ordinal);
        }
        catch (InvalidCastException) when (_completion is not null && UnknownTypes.IsUnknown(_reader, ordinal))
        {
            _completion.TypesUnknown();
            throw;
        }
    }

    private object? ReadValue(int ordinal)
    {
        var readings = _readings ??= Readings(_reader);
        var reading = (uint)ordinal < (uint)readings.Length ? readings[ordinal] : ColumnReading.General;
        if (reading is ColumnReading.Timestamp or ColumnReading.TimestampUtc)
        {
            try
            {
                return PostgresTimestamps.Read(_reader, ordinal, reading == ColumnReading.TimestampUtc ? DateTimeKind.Utc : DateTimeKind.Unspecified);
            }
            catch (OverflowException ex)
            {
                return AsText(_reader, ordinal, ex);
            }
        }

        if (reading is ColumnReading.Inet or ColumnReading.InetArray)
        {
            if (PostgresDatesAndAddresses.TryReadInet(_reader, ordinal, reading == ColumnReading.InetArray, out var inet))
            {
                ArrayBounds.Check(_reader, ordinal, inet);
                return inet;
            }

            // An array of more than one dimension: the general path reads its shape, for the rest of this result set.
            readings[ordinal] = ColumnReading.General;
        }

        if (reading == ColumnReading.Plain)
        {
            try
            {
                var value = _reader.GetValue(ordinal);
                return value is DBNull ? null : value;
            }
            catch (InvalidCastException ex)
            {
                // A numeric beyond decimal's range or precision: the server's text, as on the general path.
                return AsText(_reader, ordinal, ex);
            }
            catch (OverflowException ex)
            {
                return AsText(_reader, ordinal, ex);
            }
        }

        return ConvertValue(_reader, ordinal);
    }

    /// <summary>
    /// Columns whose declared .NET type is one every value keeps as is (a number, text, a bool, a uuid):
    /// their values skip the per-value checks of <see cref="ConvertValue"/>, which a 1,000-row read paid
    /// 3,000 times (the statement-overhead bench). Timestamps are read by <see cref="PostgresTimestamps"/>, inet
    /// and inet[] once as <see cref="NpgsqlInet"/> (the general path read each value twice: as Npgsql's IPAddress,
    /// which has no prefix length, then again with it). Anything else (intervals, arrays, Npgsql's own types, void) takes the general path.
    /// </summary>
    private static ColumnReading[] Readings(NpgsqlDataReader reader)
    {
        var readings = new ColumnReading[reader.FieldCount];
        for (var i = 0; i < readings.Length; i++)
        {
            Type type;
            try
            {
                type = reader.GetFieldType(i);
            }
            catch (Exception ex) when (ex is InvalidCastException or NotSupportedException or InvalidOperationException)
            {
                // No .NET type at all (a composite without a mapping): the general path names the column.
                continue;
            }

            readings[i] = PostgresDatesAndAddresses.IsInet(type, reader, i) is { } array
                    ? (array ? ColumnReading.InetArray : ColumnReading.Inet)
                : type == typeof(DateTime) && PostgresTimestamps.IsTimestamp(reader.GetDataTypeName(i))
                    ? (PostgresTimestamps.KindOf(reader.GetDataTypeName(i)) == DateTimeKind.Utc ? ColumnReading.TimestampUtc : ColumnReading.Timestamp)
                : type == typeof(int) || type == typeof(long) || type == typeof(short) || type == typeof(string)
                    || type == typeof(decimal) || type == typeof(double) || type == typeof(float) || type == typeof(bool)
                    || type == typeof(Guid)
                    ? ColumnReading.Plain
                : ColumnReading.General;
        }

        return readings;
    }

    internal static object? ConvertValue(NpgsqlDataReader reader, int ordinal)
    {
        var value = Converted(reader, ordinal);
        ArrayBounds.Check(reader, ordinal, value);
        RecordFields.Check(reader, ordinal, value);
        return value;
    }

    private static object? Converted(NpgsqlDataReader reader, int ordinal)
    {
        try
        {
            // One column lookup, not two: GetValue says DBNull itself (no IsDBNull first).
            var value = reader.GetValue(ordinal);
            if (value is null or DBNull)
            {
                // NULL, or a void column (SELECT pg_sleep(1), pg_advisory_lock(…)), which has no value at all.
                return null;
            }

            if (value is string || value.GetType().IsPrimitive)
            {
                // Text, integers, floats and booleans are as Npgsql reads them: what most columns are, spared the checks below.
                return value;
            }

            if (value is DateTime && PostgresTimestamps.IsTimestamp(reader.GetDataTypeName(ordinal)))
            {
                // A scalar takes this path, not the reader's per-column one: Npgsql's DateTime wraps far years round.
                return PostgresTimestamps.Read(reader, ordinal, PostgresTimestamps.KindOf(reader.GetDataTypeName(ordinal)));
            }

            if (value is TimeSpan or TimeSpan[] or TimeSpan?[] && IsInterval(reader, ordinal))
            {
                // Npgsql reads an interval with negative months as a TimeSpan without them: read it whole.
                return ReadInterval(reader, ordinal);
            }

            if (value is Array array && PostgresTimestamps.IsTimestampArray(array) && PostgresTimestamps.IsTimestamp(reader.GetDataTypeName(ordinal)))
            {
                return PostgresTimestamps.ReadArray(reader, ordinal, array);
            }

            if (PostgresDatesAndAddresses.Read(reader, ordinal, value) is { } plain)
            {
                return plain;
            }

            return IsPlain(value) ? value : NpgsqlTypeText.Of(value, reader.GetDataTypeName(ordinal)) ?? reader.GetFieldValue<string>(ordinal);
        }
        catch (InvalidCastException ex)
        {
            return AsText(reader, ordinal, ex);
        }
        catch (OverflowException ex)
        {
            return AsText(reader, ordinal, ex);
        }
        catch (ArgumentException ex)
        {
            // Npgsql's DateOnly and TimeOnly refuse a date past 9999 or BC, and 24:00:00, its DateTimeOffset a timetz
            // offset with seconds, with .NET's own message.
            return AsText(reader, ordinal, ex);
        }
    }

    /// <summary>
    /// A value with no .NET reading comes back as the server's text for it: a numeric beyond decimal's range or
    /// precision, an interval with months, a date or timestamp beyond DateTime (rendered here: they arrived in
    /// binary), or whatever Npgsql can give as text. Otherwise the error names the column and the way out.
    /// </summary>
    private static object? AsText(NpgsqlDataReader reader, int ordinal, Exception cause)
    {
        try
        {
            if (reader.IsDBNull(ordinal))
            {
                // Npgsql refuses even a NULL of a type it has no reading for (a relacl of NULL): NULL is NULL.
                return null;
            }

            if (IsInterval(reader, ordinal))
            {
                return ReadInterval(reader, ordinal);
            }

            if (reader.GetFieldType(ordinal) == typeof(decimal))
            {
                var bytes = BinaryValue.Of(reader, ordinal);
                return PostgresText.Numeric(bytes);
            }

            if (reader.GetDataTypeName(ordinal) == "numeric[]")
            {
                var bytes = BinaryValue.Of(reader, ordinal);
                if (PostgresText.NumericArray(bytes) is { } numbers)
                {
                    return numbers;
                }
            }

            if ((PostgresDateText.Read(reader, ordinal) ?? PostgresTimeWithZone.Read(reader, ordinal)) is { } date)
            {
                return date;
            }

            return reader.GetFieldValue<string>(ordinal);
        }
        catch (Exception ex) when (ex is InvalidCastException or NotSupportedException or InvalidOperationException)
        {
            if (UnknownTypes.IsUnknown(reader, ordinal))
            {
                throw UnknownTypes.Error(reader, ordinal, cause);
            }

            var name = reader.GetName(ordinal);
            throw new InvalidCastException(
                $"Column {ordinal + 1} ('{name}', type {reader.GetDataTypeName(ordinal)}) has no .NET reading here and did not arrive as text: cast it to text in the query ({name}::text).",
                cause);
        }
    }

    private static bool IsInterval(NpgsqlDataReader reader, int ordinal) =>
        reader.GetDataTypeName(ordinal).StartsWith("interval", StringComparison.Ordinal);

    /// <summary>
    /// An interval (or an array of them) whole: TimeSpan when every value has no months (TimeSpan has none) and
    /// fits (TimeSpan ends near 10.7 million days, an interval's days go to 2^31), else the server's text for each.
    /// </summary>
    private static object ReadInterval(NpgsqlDataReader reader, int ordinal)
    {
        if (reader.GetFieldType(ordinal) == typeof(TimeSpan))
        {
            var value = reader.GetFieldValue<NpgsqlInterval>(ordinal);
            return ToTimeSpan(value) is { } span ? span : PostgresText.Interval(value);
        }

        var values = reader.GetFieldValue<NpgsqlInterval?[]>(ordinal);
        if (values.Any(v => v is { } interval && ToTimeSpan(interval) is null))
        {
            return values.Select(v => v is { } interval ? PostgresText.Interval(interval) : null).ToArray();
        }

        return values.Contains(null)
            ? values.Select(v => v is { } interval ? ToTimeSpan(interval) : null).ToArray()
            : values.Select(v => ToTimeSpan(v!.Value)!.Value).ToArray();
    }

    /// <summary>The interval as a TimeSpan, or null when it has months or lies beyond TimeSpan.</summary>
    private static TimeSpan? ToTimeSpan(NpgsqlInterval value)
    {
        var ticks = ((Int128)value.Days * TimeSpan.TicksPerDay) + ((Int128)value.Time * 10);
        return value.Months == 0 && ticks >= TimeSpan.MinValue.Ticks && ticks <= TimeSpan.MaxValue.Ticks
            ? TimeSpan.FromTicks((long)ticks)
            : null;
    }

    private static bool IsPlain(object value)
    {
        // Text and primitives never get here (ConvertValue hands them out first).
        var type = value.GetType();
        if (type == typeof(decimal) || type == typeof(DateTime))
        {
            return true;
        }

        // Asking a type for its assembly costs more than the rest of a value's read: remember the answer.
        // An array with a NULL in it is of nullables (NpgsqlRange<int>?[]): the element's own type decides.
        return PlainTypes.TryGetValue(type, out var plain) ? plain : PlainTypes.GetOrAdd(type, static t =>
        {
            var element = t.IsArray ? t.GetElementType()! : t;
            return (Nullable.GetUnderlyingType(element) ?? element).Assembly != typeof(NpgsqlConnection).Assembly;
        });
    }

    private static readonly System.Collections.Concurrent.ConcurrentDictionary<Type, bool> PlainTypes = new();

    private Exception Fail(Exception ex)
    {
        if (_completion?.CommandText is { } text)
        {
            ErrorLocations.Remember(ex, text, _reader, null);
        }

        var translated = _completion is null ? ex : _completion.Translate(ex, RowsRead);
        _failure ??= translated;
        return translated;
    }

    public async ValueTask DisposeAsync()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        Exception? disposeFailure = null;
        try
        {
            await _reader.DisposeAsync().ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            // Npgsql reports an error of a later statement when the rest of the results are skipped.
            disposeFailure = Fail(ex);
        }

        var recordsAffected = -1;
        try
        {
            recordsAffected = _reader.RecordsAffected;
        }
        catch (InvalidOperationException)
        {
        }

        if (_completion is not null)
        {
            await _completion.CompleteAsync(_failure, RowsRead, recordsAffected).ConfigureAwait(false);
        }

        if (_onDispose is not null)
        {
            await _onDispose().ConfigureAwait(false);
        }

        if (disposeFailure is not null)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(disposeFailure);
        }
    }
}
