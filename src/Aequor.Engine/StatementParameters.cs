using System.Collections;
using System.Text;
using Npgsql;
using NpgsqlTypes;

namespace Aequor.Engine;

/// <summary>
/// A statement's values as Npgsql parameters, with the two cases Npgsql cannot write as given made writable:
/// a <see cref="DateTimeOffset"/> with an offset, and an untyped array with no value to take a type from.
/// </summary>
internal static class StatementParameters
{
    /// <summary>
    /// Refuses a text value PostgreSQL cannot store, before anything is sent: half of a surrogate pair (a string cut in
    /// the middle of an emoji), or a NUL. Npgsql finds the first only while encoding the message, with an
    /// EncoderFallbackException ("Unable to translate Unicode character \uD800 at index 1 to specified code page")
    /// naming neither the parameter nor the cause; the server answers the second with 22021 (invalid byte sequence for
    /// encoding "UTF8": 0x00), naming no parameter, and aborts an open transaction for a value the client could see.
    /// </summary>
    public static void RefuseUnstorableText(AequorStatement statement)
    {
        if (statement.PositionalParameters is { } positional)
        {
            for (var i = 0; i < positional.Count; i++)
            {
                RefuseUnstorableValue(positional[i], null, i + 1);
            }
        }
        else if (statement.NamedParameters is { } named)
        {
            foreach (var (name, value) in named)
            {
                RefuseUnstorableValue(value, name.TrimStart('@'), 0);
            }
        }
    }

    private static void RefuseUnstorableValue(object? value, string? name, int position)
    {
        switch (value)
        {
            case IEnumerable<string?> texts:
                // string[], List<string> …: typed, so no element is boxed (an int[] or a bytea never gets here).
                ElementsOf(texts, name, position);
                break;
            case object?[] items:
                for (var i = 0; i < items.Length; i++)
                {
                    RefuseText(items[i], name, position, i);
                }

                break;
            case Array { Rank: > 1 } grid when grid.GetType().GetElementType() == typeof(string):
                ElementsOf(grid.Cast<string?>(), name, position);
                break;
            default:
                RefuseText(value, name, position, element: null);
                break;
        }
    }

    /// <summary>A value Npgsql writes as text: a string, a char, a char[].</summary>
    private static void RefuseText(object? value, string? name, int position, int? element)
    {
        switch (value)
        {
            case string text:
                Refuse(text, name, position, element);
                break;
            case char single when char.IsSurrogate(single) || single == '\0':
                Refuse(single.ToString(), name, position, element);
                break;
            case char[] chars when AequorStatement.IndexOfUnpairedSurrogate(chars) >= 0 || chars.AsSpan().Contains('\0'):
                Refuse(new string(chars), name, position, element);
                break;
        }
    }

    private static void ElementsOf(IEnumerable<string?> texts, string? name, int position)
    {
        var i = 0;
        foreach (var text in texts)
        {
            Refuse(text, name, position, i++);
        }
    }

    private static void Refuse(string? text, string? name, int position, int? element)
    {
        if (text is null)
        {
            return;
        }

        var parameter = name is null ? $"Parameter ${position}" : $"Parameter '{name}'";
        if (text.IndexOf('\0', StringComparison.Ordinal) is var nul and >= 0)
        {
            var at = element is null ? $"at index {nul}" : $"at index {nul} of its element [{element}]";
            throw new AequorConfigurationException(
                $"{parameter} holds a NUL character (U+0000) {at}: PostgreSQL text cannot store it. Nothing was sent. " +
                "Remove it (-replace \"`0\", ''), or send binary data as a [byte[]] to a bytea.");
        }

        if (AequorStatement.IndexOfUnpairedSurrogate(text) is not (var index and >= 0))
        {
            return;
        }

        var where = element is null ? $"at index {index}" : $"at index {index} of its element [{element}]";
        throw new AequorConfigurationException(
            $"{parameter} holds an unpaired UTF-16 surrogate (U+{(int)text[index]:X4}) {where}: PostgreSQL text is UTF-8 and cannot store it. " +
            "Nothing was sent. Remove or replace it (a string cut in the middle of a surrogate pair, such as an emoji, leaves one).");
    }

    public static NpgsqlParameter Create(string? name, object? value)
    {
        var parameter = name is null ? new NpgsqlParameter() : new NpgsqlParameter { ParameterName = name };
        switch (value)
        {
            case null:
                parameter.Value = DBNull.Value;
                break;
            case DateTimeOffset instant:
                // Npgsql writes only offset 0, and refuses any other only once it is writing the message, which
                // breaks the connection: a statement that never ran would be reported as one whose outcome is
                // unknown. The instant is the same in UTC.
                parameter.Value = instant.ToUniversalTime();
                break;
            case DateTimeOffset[] instants:
                parameter.Value = Array.ConvertAll(instants, i => i.ToUniversalTime());
                break;
            case DateTimeOffset?[] instants:
                parameter.Value = Array.ConvertAll(instants, i => i?.ToUniversalTime());
                break;
            case object?[] items when items.GetType() == typeof(object[]) && items.All(i => i is null or DBNull):
                // Empty, or nothing but NULLs: no element to take the array's type from (Npgsql refuses object[]).
                // As an array literal of unknown type the server types it from where it is used: ANY($1), $1::int[].
                parameter.Value = UntypedArrayLiteral(items.Length);
                parameter.NpgsqlDbType = NpgsqlDbType.Unknown;
                break;
            default:
                parameter.Value = value;
                break;
        }

        return parameter;
    }

    private static string UntypedArrayLiteral(int nulls)
    {
        var text = new StringBuilder("{");
        for (var i = 0; i < nulls; i++)
        {
            text.Append(i == 0 ? "NULL" : ",NULL");
        }

        return text.Append('}').ToString();
    }
}
