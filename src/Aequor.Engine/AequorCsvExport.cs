namespace Aequor.Engine;

/// <summary>
/// What <see cref="AequorClient.ExportCsv"/> sends: a table (and some of its columns) or a query, as CSV the server
/// formats and quotes itself. <see cref="Validate"/> refuses what cannot work before anything is sent.
/// </summary>
public sealed class AequorCsvExport
{
    /// <summary>table, schema.table, or with double-quoted parts ("My Table"); or null with <see cref="Query"/>.</summary>
    public string? Table { get; init; }

    /// <summary>Columns of <see cref="Table"/> by name (any case), in this order; null: all of them.</summary>
    public IReadOnlyList<string>? Columns { get; init; }

    /// <summary>One SELECT, VALUES, WITH or TABLE statement; or null with <see cref="Table"/>.</summary>
    public string? Query { get; init; }

    /// <summary>A first line with the column names.</summary>
    public bool Header { get; init; } = true;

    public char Delimiter { get; init; } = ',';

    /// <summary>Seconds for each round trip of the COPY; null or 0: none.</summary>
    public int? CommandTimeout { get; init; }

    /// <summary>An <see cref="AequorConfigurationException"/> naming the first problem; nothing is sent.</summary>
    public void Validate()
    {
        if ((Table is null) == (Query is null))
        {
            throw new AequorConfigurationException("Give a table or a query to export, not both and not neither. Nothing was exported.");
        }

        if (CsvCopyOptions.DelimiterRefusal(Delimiter, "Nothing was exported.") is { } badDelimiter)
        {
            throw new AequorConfigurationException(badDelimiter);
        }

        if (Table is { } table)
        {
            _ = TableNames.Quote(table);
            if (Columns is { Count: 0 })
            {
                throw new AequorConfigurationException($"No column of the table {table} was chosen. Nothing was exported.");
            }
        }
        else if (Query!.IndexOf('\0', StringComparison.Ordinal) is var nul and >= 0)
        {
            // The server answers a NUL in SQL text with a protocol violation and drops the connection (an open
            // transaction with it); the client sees it first.
            throw new AequorConfigurationException(
                $"The query holds a NUL character (U+0000) at character {nul + 1}: PostgreSQL takes none in SQL text, and sending one would break the connection. Nothing was exported.");
        }
        else if (AequorStatement.IndexOfUnpairedSurrogate(Query) is var lone and >= 0)
        {
            // Npgsql cannot encode it and fails half-way through the message, which breaks the connection.
            throw new AequorConfigurationException(
                $"The query holds an unpaired UTF-16 surrogate (U+{(int)Query[lone]:X4}) at character {lone + 1}, half of a character such as an emoji: it is not valid Unicode, and sending it would break the connection. Nothing was exported: remove or replace it.");
        }
        else if (ExportQueryText.Refusal(Query!) is { } refusal)
        {
            throw new AequorConfigurationException(refusal);
        }
    }
}
