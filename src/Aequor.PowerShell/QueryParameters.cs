using System.Collections;
using System.Data;
using System.Management.Automation;
using Aequor.Engine;

namespace Aequor.PowerShell;

/// <summary>-Parameters as the engine wants them: positional from a list, named from a dictionary.</summary>
internal static partial class QueryParameters
{
    /// <summary>What the messages of <see cref="ParameterValueException"/> call the values' holder by default.</summary>
    public const string ParametersSubject = "-Parameters";

    /// <summary>The subject for a piped row: its messages name the property (never its value), as "its property 'x'".</summary>
    public const string RowSubject = "";

    private static string Its(string subject) => subject == RowSubject ? "its" : $"{subject}: its";

    private static string Holder(string subject, string name) =>
        subject == RowSubject ? $"its property '{name}'" : subject;

    public static (IReadOnlyList<object?>? Positional, IReadOnlyDictionary<string, object?>? Named) From(object? value, string subject = ParametersSubject)
    {
        value = Unwrap(value);
        switch (value)
        {
            case null:
                return (null, null);
            case PSCustomObject or DataRow:
                // A row: its properties (a DataRow's columns) are bound per statement (FromRow), once the text is known.
                return (null, null);
            case IDictionary dictionary:
                var named = new Dictionary<string, object?>(StringComparer.Ordinal);
                foreach (DictionaryEntry entry in dictionary)
                {
                    var key = Convert.ToString(Unwrap(entry.Key), System.Globalization.CultureInfo.InvariantCulture)?.TrimStart('@');
                    if (string.IsNullOrEmpty(key))
                    {
                        throw new ParameterValueException($"{(subject == RowSubject ? "it" : subject)} has an empty name; use @{{ name = value }} for @name placeholders.");
                    }

                    named[key!] = Value(entry.Value, Holder(subject, key!));
                }

                return (null, named);
            case string or byte[]:
                return ([value], null);
            case IEnumerable list:
                return (list.Cast<object?>().Select(v => Value(v, subject)).ToList(), null);
            default:
                return ([Value(value, subject)], null);
        }
    }

    /// <summary>
    /// A row given as -Parameters (Import-Csv, ConvertFrom-Json, Select-Object, a row of Invoke-AequorQuery; a DataRow
    /// of -As DataTable or of SqlServer's Invoke-Sqlcmd): its properties or columns bind the @name placeholders of that
    /// name; null for any other -Parameters.
    /// </summary>
    public static object? RowOf(object? value) =>
        ReferenceEquals(value, System.Management.Automation.Internal.AutomationNull.Value) ? null
        : value is PSObject { BaseObject: PSCustomObject } row ? row
        : (value is PSObject wrapped ? wrapped.BaseObject : value) as DataRow;

    /// <summary>
    /// The row's properties that <paramref name="text"/> names as @placeholders (as Npgsql matches them: ignoring
    /// case). Only those are read and converted: a CSV or JSON row carries columns the statement does not use, and one
    /// holding a value without a PostgreSQL type must not refuse a statement that never reads it.
    /// </summary>
    public static IReadOnlyDictionary<string, object?> FromRow(object row, string text, string subject = ParametersSubject)
    {
        var used = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        foreach (System.Text.RegularExpressions.Match placeholder in Placeholder().Matches(text))
        {
            used.Add(placeholder.Groups[1].Value);
        }

        var named = new Dictionary<string, object?>(StringComparer.Ordinal);
        foreach (var name in Names(row))
        {
            if (!used.Contains(name))
            {
                continue;
            }

            object? value;
            try
            {
                value = row is DataRow dataRow ? dataRow[name] : ((PSObject)row).Properties[name].Value;
            }
            catch (Exception ex) when (ex is GetValueException or DataException)
            {
                throw new ParameterValueException($"{Its(subject)} property '{name}' could not be read: {ex.Message}", ex);
            }

            if (Unwrap(value) is PSCustomObject)
            {
                throw new ParameterValueException($"{Its(subject)} property '{name}' is itself an object (nested JSON?), which has no PostgreSQL type: pass it as text (ConvertTo-Json -Compress) or pick the field it means.");
            }

            named[name] = Value(value, Holder(subject, name));
        }

        return named;
    }

    /// <summary>The names a row lacks for placeholders the text uses, for the error that follows them.</summary>
    public static string PropertyNames(object row) => string.Join(", ", Names(row));

    private static IEnumerable<string> Names(object row) => row is DataRow dataRow
        ? dataRow.Table.Columns.Cast<DataColumn>().Select(c => c.ColumnName)
        : ((PSObject)row).Properties.Where(p => p.IsGettable).Select(p => p.Name);

    // @name as Npgsql reads a named placeholder: not after a word character or another @ (@@ operators, e-mail
    // addresses in a literal still match: an extra parameter is ignored by Npgsql, so erring that way costs nothing).
    [System.Text.RegularExpressions.GeneratedRegex(@"(?<![\w@])@([\p{L}_][\p{L}\p{N}_$]*)")]
    private static partial System.Text.RegularExpressions.Regex Placeholder();

    /// <summary>
    /// The value itself. AutomationNull is what a variable holds after a command that wrote nothing ($id = Get-Thing
    /// finding none); it stays so in a hashtable literal and would read as an empty PSCustomObject: it is NULL.
    /// </summary>
    private static object? Unwrap(object? value) =>
        ReferenceEquals(value, System.Management.Automation.Internal.AutomationNull.Value) ? null
        : value is PSObject wrapped ? wrapped.BaseObject
        : value;

    private static object? Value(object? value, string subject)
    {
        value = Unwrap(value);
        switch (value)
        {
            case null or DBNull:
                return null;
            case PSCustomObject:
                throw new ParameterValueException($"{subject} holds a PSCustomObject; pass plain values (convert it with ConvertTo-Json for a json parameter).");
            case SwitchParameter flag:
                return flag.IsPresent;
            case System.Security.SecureString or PSCredential:
                // Npgsql would refuse it with advice to set an NpgsqlDbType; a secret must never be decrypted into SQL by accident.
                throw new ParameterValueException($"{subject} holds a SecureString or PSCredential: Aequor never sends a secret's plain text by itself. If it belongs in the database, convert it yourself (ConvertFrom-SecureString -AsPlainText).");
            case Enum named:
                // Neither reading is obvious (a text column wants the name, an int column the number), and Npgsql refuses both.
                // A piped row's values stay out of messages: its enum is named by type only.
                var which = subject == ParametersSubject ? $"the enum value [{named.GetType().Name}]::{named}" : $"a value of the enum [{named.GetType().Name}]";
                throw new ParameterValueException($"{subject} holds {which}, which has no PostgreSQL type: pass [string] for its name or [int] for its number.");
            // PostgreSQL has no unsigned types and Npgsql refuses these; CIM/WMI properties (disk sizes, counters) are
            // full of them. Each widens to the signed type that holds all its values.
            case ushort small:
                return (int)small;
            case uint medium:
                return (long)medium;
            case ulong large:
                return (decimal)large;
            case string or byte[]:
                return value;
            case DateTime { Kind: DateTimeKind.Local } local:
                // Get-Date is local time: the instant it names, as timestamptz. Sent as it is, Npgsql would make it
                // a timestamp without time zone, read in the server's TimeZone, off by the difference.
                return local.ToUniversalTime();
            case IDictionary:
                throw new ParameterValueException($"{subject} holds a nested hashtable; pass plain values (ConvertTo-Json for a json parameter).");
            case System.Xml.XmlNode node:
                // [xml] and its elements are enumerable (their child nodes): unrolled, they became arrays of arrays that
                // no PostgreSQL type takes ("Object[][]"). Their markup is what an xml or text column wants.
                return node.OuterXml;
            case Array typed when typed.GetType().GetElementType() is { } element && KeepsItsType(element):
                // [int[]]@() or [guid[]], or [int[,]]: already what Npgsql needs, even empty.
                return typed;
            case Array { Rank: > 1 } grid:
                return TypedGrid(grid, subject);
            case IEnumerable items:
                return TypedArray(items.Cast<object?>().Select(v => Value(v, subject)).ToList(), subject);
            default:
                return value;
        }
    }

    /// <summary>
    /// An [object[,]] (any rank above 1) typed as a one-dimensional one is, kept in its shape: enumerated, it gives
    /// its elements one after the other, and was sent as a flat array, {{1,2},{3,4}} as {1,2,3,4}.
    /// </summary>
    private static Array TypedGrid(Array grid, string subject)
    {
        var flat = TypedArray(grid.Cast<object?>().Select(v => Value(v, subject)).ToList(), subject);
        var element = flat.GetType().GetElementType()!;
        if (element == typeof(object))
        {
            throw new ParameterValueException($"{subject} holds an array of more dimensions ({grid.Rank}) with no value to take its type from (empty, or only NULLs): give it a type, e.g. New-Object 'int[,]' 2, 3.");
        }

        return ArrayShapes.Shaped(element, Enumerable.Range(0, grid.Rank).Select(grid.GetLength).ToArray(), flat.Cast<object?>());
    }

    private static bool KeepsItsType(Type element) =>
        element != typeof(object) && element != typeof(PSObject) && element != typeof(DateTime) && element != typeof(DateTime?)
        && (Nullable.GetUnderlyingType(element) ?? element) is var plain
        && !plain.IsEnum && plain != typeof(ushort) && plain != typeof(uint) && plain != typeof(ulong)
        && plain != typeof(System.Security.SecureString) && plain != typeof(PSCredential);

    private static readonly Type[] Integers = [typeof(byte), typeof(sbyte), typeof(short), typeof(ushort), typeof(int), typeof(uint), typeof(long)];
    private static readonly Type[] Fractions = [typeof(float), typeof(double)];

    /// <summary>
    /// PowerShell arrays are object[]: make them int[], string[] … so Npgsql knows the array type. Numbers of
    /// several types widen (1, 5000000000 is a bigint[]); other mixes are an error naming them. Empty or all-null
    /// stays object[]: the engine sends it untyped, for the server to type from its use.
    /// </summary>
    private static Array TypedArray(List<object?> items, string subject)
    {
        var types = items.Where(i => i is not null).Select(i => i!.GetType()).Distinct().ToList();
        if (types.Count == 0)
        {
            return items.ToArray();
        }

        if (types.Count == 1 && types[0] == typeof(DateTime) && items.OfType<DateTime>().Select(d => d.Kind).Distinct().Count() > 1)
        {
            // Local ones are UTC by now. Npgsql sends a mix as timestamp without time zone when an Unspecified one
            // comes first (the UTC ones by their UTC wall clock, shifted by the client's offset), and refuses it otherwise.
            throw new ParameterValueException($"{subject} holds an array of [datetime] values of different kinds: instants (Get-Date, UTC) beside dates and times without a zone ([datetime]'2024-01-31'). A PostgreSQL array is timestamptz or timestamp, not both: make them one kind, e.g. each .ToUniversalTime() for timestamptz.");
        }

        var element = types.Count == 1 ? types[0] : Widest(types);
        if (element is null)
        {
            throw new ParameterValueException($"{subject} holds an array mixing {string.Join(", ", types.Select(t => t.Name))}: a PostgreSQL array has one element type. Make it one type, e.g. [string[]] or [long[]].");
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
                    items[i] = before switch
                    {
                        null => null,
                        // Not IConvertible; every integer fits in one.
                        System.Numerics.BigInteger => before,
                        _ when element == typeof(System.Numerics.BigInteger) => new System.Numerics.BigInteger(Convert.ToInt64(before, System.Globalization.CultureInfo.InvariantCulture)),
                        _ => Convert.ChangeType(before, element, System.Globalization.CultureInfo.InvariantCulture),
                    };
                    // decimal keeps 28 digits, not every double (1e-30, 17 significant digits): refuse rather than round.
                    if (element == typeof(decimal) && before is double d && (double)(decimal)items[i]! != d)
                    {
                        throw new OverflowException();
                    }
                }
            }
            catch (OverflowException)
            {
                throw new ParameterValueException($"{subject} holds an array mixing {string.Join(", ", types.Select(t => t.Name))} that no one number type holds exactly. Make it one type, e.g. [decimal[]] or [double[]].");
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
        // ConvertFrom-Json reads a number past long as a BigInteger: [1, 99999999999999999999] is Int64 and BigInteger.
        if (types.Contains(typeof(System.Numerics.BigInteger)) && types.All(t => t == typeof(System.Numerics.BigInteger) || Integers.Contains(t)))
        {
            return typeof(System.Numerics.BigInteger);
        }

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
