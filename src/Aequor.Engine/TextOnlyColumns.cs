using System.Data;
using Npgsql;
using Npgsql.PostgresTypes;

namespace Aequor.Engine;

/// <summary>
/// Columns to ask for as text. Npgsql asks for every column in binary, and some types have no binary form the
/// client can use: aclitem has none at all (the server fails SELECT * FROM pg_class on relacl), an oid alias
/// (regclass, regproc …) arrives as a bare oid where psql shows the name, and anyarray, pg_node_tree or tsquery
/// have no reading here. The catalogues are full of them, so a single statement that names a catalogue relation
/// (pg_…), an oid alias or such a type is described first — one round trip more, for that statement only — and
/// those columns come as the server's text, as psql shows them. A statement that names none pays nothing.
/// </summary>
internal static class TextOnlyColumns
{
    /// <summary>Types whose binary value is of no use here: no binary output, an oid instead of a name, or no reading.</summary>
    private static readonly HashSet<string> Types = new(StringComparer.Ordinal)
    {
        "aclitem", "anyarray", "pg_node_tree", "pg_ndistinct", "pg_dependencies", "pg_mcv_list", "pg_snapshot", "txid_snapshot",
        "tsquery", "gtsvector", "pg_brin_bloom_summary", "pg_brin_minmax_multi_summary",
        "regclass", "regproc", "regprocedure", "regoper", "regoperator", "regtype", "regconfig", "regdictionary", "regnamespace",
        "regrole", "regcollation",
    };

    /// <summary>Words that, outside quotes and comments, make a statement worth describing: those types, and the functions returning them.</summary>
    private static readonly HashSet<string> Words = new(Types.Concat(
    [
        "to_regclass", "to_regproc", "to_regprocedure", "to_regoper", "to_regoperator", "to_regtype", "to_regnamespace", "to_regrole",
        "to_regcollation", "to_tsquery", "plainto_tsquery", "phraseto_tsquery", "websearch_to_tsquery", "pg_current_snapshot",
        "txid_current_snapshot", "pg_partition_root", "pg_partition_ancestors", "pg_partition_tree", "pg_get_object_address",
    ]), StringComparer.OrdinalIgnoreCase);

    /// <summary>
    /// True for one statement that names a catalogue relation (an identifier starting pg_ not called as a function:
    /// pg_class, pg_catalog.pg_proc, pg_stats), a type above or a function returning one. pg_sleep(1) or
    /// pg_advisory_lock(…) name no relation: such statements go as before.
    /// </summary>
    public static bool MayReturn(string sql)
    {
        ArgumentNullException.ThrowIfNull(sql);
        var named = false;
        for (var i = 0; i < sql.Length;)
        {
            var next = StatementShape.SkipNonCode(sql, i);
            if (next < 0)
            {
                return false;
            }

            if (next != i)
            {
                i = next;
                continue;
            }

            var c = sql[i];
            if (c == ';' && StatementShape.SkipBlank(sql, i + 1) is var rest && rest >= 0 && sql[rest] != ';')
            {
                return false; // More than one statement: Npgsql would apply one list of formats to each.
            }

            if (!StatementShape.IsIdentifierChar(c) || (i > 0 && (StatementShape.IsIdentifierChar(sql[i - 1]) || sql[i - 1] is '$' or '@')))
            {
                i++;
                continue;
            }

            var start = i;
            while (i < sql.Length && (StatementShape.IsIdentifierChar(sql[i]) || sql[i] == '$'))
            {
                i++;
            }

            var word = sql.AsSpan(start, i - start);
            if (word.StartsWith("pg_", StringComparison.OrdinalIgnoreCase) && !CalledAt(sql, i))
            {
                named = true;
            }
            else if (!named && word.Length >= 6 && "prtagwPRTAGW".Contains(word[0]))
            {
                // Only a word that could be one of them is made a string: this scan runs before every statement.
                named = Words.Contains(word.ToString());
            }
        }

        return named;
    }

    /// <summary>The statement's columns to ask for as text, from a description of it; null when none needs it.</summary>
    public static bool[]? Of(NpgsqlDataReader described)
    {
        bool[]? text = null;
        for (var i = 0; i < described.FieldCount; i++)
        {
            if (NeedsText(described, i))
            {
                text ??= new bool[described.FieldCount];
                text[i] = true;
            }
        }

        return text;
    }

    /// <summary>Describes <paramref name="command"/> (parse and describe only: nothing runs) and returns <see cref="Of"/> for it.</summary>
    public static async Task<bool[]?> DescribeAsync(NpgsqlCommand command, bool synchronous, CancellationToken cancellationToken)
    {
        var reader = synchronous
            ? command.ExecuteReader(CommandBehavior.SchemaOnly)
            : await command.ExecuteReaderAsync(CommandBehavior.SchemaOnly, cancellationToken).ConfigureAwait(false);
        await using (reader.ConfigureAwait(false))
        {
            return Of(reader);
        }
    }

    private static bool NeedsText(NpgsqlDataReader reader, int ordinal)
    {
        var name = reader.GetDataTypeName(ordinal);
        var element = name.EndsWith("[]", StringComparison.Ordinal) ? name[..^2] : name;
        if (Types.Contains(element))
        {
            return true;
        }

        try
        {
            _ = reader.GetFieldType(ordinal);
            return reader.GetPostgresType(ordinal) is UnknownBackendType;
        }
        catch (Exception ex) when (ex is InvalidCastException or NotSupportedException or InvalidOperationException)
        {
            return true;
        }
    }

    private static bool CalledAt(string sql, int i)
    {
        var next = StatementShape.SkipBlank(sql, i);
        return next >= 0 && sql[next] == '(';
    }
}
