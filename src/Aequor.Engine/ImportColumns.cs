namespace Aequor.Engine;

/// <summary>
/// The columns an import's fields fill, checked against the table before the COPY is sent: a COPY cannot skip a field,
/// and its own errors (42703, 42701, 428C9) would abort an open transaction over a misspelt name.
/// </summary>
internal static class ImportColumns
{
    /// <summary>
    /// The header's names, or without a header <paramref name="asked"/> (by default every column rows can fill), as
    /// the table names them. With a header, <paramref name="asked"/> must agree with it: the same columns in its order.
    /// </summary>
    public static IReadOnlyList<string> Choose(string table, IReadOnlyList<string>? header, IReadOnlyList<string>? asked, IReadOnlyList<string> writable, IReadOnlyList<string> generated)
    {
        if (header is null)
        {
            return asked is null ? writable : Match(table, asked, "-Column", writable, generated);
        }

        var chosen = Match(table, header, "the file's header", writable, generated);
        if (asked is not null)
        {
            var meant = Match(table, asked, "-Column", writable, generated);
            if (!meant.SequenceEqual(chosen, StringComparer.Ordinal))
            {
                throw new AequorConfigurationException(
                    $"-Column ({string.Join(", ", asked)}) does not agree with the file's header ({string.Join(", ", header)}): with a header the file names its columns, in its order. Leave -Column out, give the header's columns in its order, or use -NoHeader to read a file without one. Nothing was imported.");
            }
        }

        return chosen;
    }

    private static List<string> Match(string table, IReadOnlyList<string> names, string source, IReadOnlyList<string> writable, IReadOnlyList<string> generated)
    {
        var chosen = new List<string>();
        for (var i = 0; i < names.Count; i++)
        {
            var name = names[i];
            var where = source == "-Column" ? $"-Column '{name}'" : $"The column '{name}' of the file's header (field {i + 1})";
            if (name.Length == 0)
            {
                throw new AequorConfigurationException($"Field {i + 1} of {source} is empty: every field must name a column of the table {table}. Nothing was imported.");
            }

            var match = Find(writable, name);
            if (match is null)
            {
                throw Find(generated, name) is { } computed
                    ? new AequorConfigurationException(
                        $"{where} is the generated column '{computed}' of the table {table}: the server computes it, and a COPY cannot fill it. Export the file without it (Export-AequorTableData -Column), or remove it. Nothing was imported.")
                    : new AequorConfigurationException(
                        $"{where} is no column of the table {table}; its columns: {string.Join(", ", writable)}. Nothing was imported.");
            }

            if (chosen.Contains(match))
            {
                throw new AequorConfigurationException($"{where} names the column '{match}' a second time: name each column once. Nothing was imported.");
            }

            chosen.Add(match);
        }

        return chosen;
    }

    /// <summary>A table's column by name: the same case first, then any case (as Write-AequorTableData matches).</summary>
    private static string? Find(IReadOnlyList<string> columns, string name) =>
        columns.FirstOrDefault(c => string.Equals(c, name, StringComparison.Ordinal))
        ?? columns.FirstOrDefault(c => string.Equals(c, name, StringComparison.OrdinalIgnoreCase));
}
