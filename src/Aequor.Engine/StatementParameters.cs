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
