using Npgsql;

namespace Aequor.Engine;

/// <summary>
/// Streams rows of one or more result sets as plain .NET values (no Npgsql types leave the engine):
/// DBNull becomes null; Postgres types without a natural .NET type are read as their text.
/// </summary>
public sealed class AequorReader : IAsyncDisposable
{
    private readonly NpgsqlDataReader _reader;
    private readonly Func<ValueTask>? _onDispose;
    private bool _disposed;

    internal AequorReader(NpgsqlDataReader reader, Func<ValueTask>? onDispose)
    {
        _reader = reader;
        _onDispose = onDispose;
    }

    public int FieldCount => _reader.FieldCount;

    /// <summary>Rows changed by the statements read so far; -1 for a pure select.</summary>
    public int RecordsAffected => _reader.RecordsAffected;

    public string GetName(int ordinal) => _reader.GetName(ordinal);

    public string GetDataTypeName(int ordinal) => _reader.GetDataTypeName(ordinal);

    public Type GetFieldType(int ordinal) => _reader.GetFieldType(ordinal);

    public Task<bool> ReadAsync(CancellationToken cancellationToken) => _reader.ReadAsync(cancellationToken);

    public Task<bool> NextResultAsync(CancellationToken cancellationToken) => _reader.NextResultAsync(cancellationToken);

    public object? GetValue(int ordinal)
    {
        if (_reader.IsDBNull(ordinal))
        {
            return null;
        }

        try
        {
            var value = _reader.GetValue(ordinal);
            return IsPlain(value) ? value : _reader.GetFieldValue<string>(ordinal);
        }
        catch (InvalidCastException)
        {
            // e.g. a numeric beyond decimal's range: its text loses nothing.
            return _reader.GetFieldValue<string>(ordinal);
        }
        catch (OverflowException)
        {
            return _reader.GetFieldValue<string>(ordinal);
        }
    }

    private static bool IsPlain(object value)
    {
        var type = value.GetType();
        if (type.IsArray)
        {
            var element = type.GetElementType()!;
            return element.Assembly != typeof(NpgsqlConnection).Assembly;
        }

        return type.Assembly != typeof(NpgsqlConnection).Assembly;
    }

    public async ValueTask DisposeAsync()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        await _reader.DisposeAsync().ConfigureAwait(false);
        if (_onDispose is not null)
        {
            await _onDispose().ConfigureAwait(false);
        }
    }
}
