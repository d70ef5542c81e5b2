namespace Aequor.Engine;

/// <summary>
/// What <see cref="AequorClient.ImportCsv"/> loads: a CSV (as <see cref="AequorClient.ExportCsv"/> writes it) into a
/// table. <see cref="Validate"/> refuses what cannot work before anything is read or sent.
/// </summary>
public sealed class AequorCsvImport
{
    /// <summary>table, schema.table, or with double-quoted parts ("My Table").</summary>
    public required string Table { get; init; }

    /// <summary>
    /// The table's columns the fields fill, by name (any case), in the file's order. With a header they must agree
    /// with it (the same columns, in its order); without one, null takes every column rows can fill, in the table's order.
    /// </summary>
    public IReadOnlyList<string>? Columns { get; init; }

    /// <summary>The first line names the columns.</summary>
    public bool Header { get; init; } = true;

    public char Delimiter { get; init; } = ',';

    /// <summary>Seconds for each round trip of the COPY; null or 0: none.</summary>
    public int? CommandTimeout { get; init; }

    /// <summary>An <see cref="AequorConfigurationException"/> naming the first problem; nothing is read or sent.</summary>
    public void Validate()
    {
        _ = TableNames.Quote(Table);
        if (CsvCopyOptions.DelimiterRefusal(Delimiter, "Nothing was imported.") is { } badDelimiter)
        {
            throw new AequorConfigurationException(badDelimiter);
        }

        if (Columns is { Count: 0 })
        {
            throw new AequorConfigurationException($"No column of the table {Table} was chosen. Nothing was imported.");
        }
    }
}
