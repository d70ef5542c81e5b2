using System.ComponentModel;
using System.Data.Common;
using System.Globalization;
using System.Reflection;
using System.Text.RegularExpressions;
using Npgsql;

namespace Aequor.Engine;

/// <summary>
/// Npgsql's "Couldn't set porty (Parameter 'porty')" made into what a user can act on: an unknown keyword with the
/// known one it is nearest to, or what a known keyword takes. Values are never echoed: a string may carry a password.
/// </summary>
internal static partial class ConnectionStringErrors
{
    private const string Prefix = "The connection string is not valid: ";

    // Every keyword Npgsql accepts (display names and synonyms), normalised, with the display name to suggest.
    private static readonly Lazy<IReadOnlyDictionary<string, (string Name, PropertyInfo Property)>> Keywords = new(LoadKeywords);

    public static AequorConfigurationException From(ArgumentException ex, string keywords)
    {
        if (NulIn(keywords, ex) is { } nul)
        {
            return nul;
        }

        if (FormatError().Match(ex.Message) is { Success: true } format
            && int.TryParse(format.Groups[1].ValueSpan, NumberStyles.None, CultureInfo.InvariantCulture, out var index))
        {
            return new AequorConfigurationException(
                $"{Prefix}it is not a list of Keyword=value pairs separated by ';' (from character {(index + 1).ToString(CultureInfo.InvariantCulture)} on). " +
                "A value holding ';' or '=' goes in double quotes: Password=\"a;b\".", ex);
        }

        var key = ex.ParamName;
        if (string.IsNullOrEmpty(key) || !ex.Message.StartsWith("Couldn't set", StringComparison.Ordinal))
        {
            return new AequorConfigurationException(Prefix + ex.Message, ex);
        }

        if (!Keywords.Value.TryGetValue(Normalise(key), out var known))
        {
            var nearest = Nearest(key);
            return new AequorConfigurationException(
                $"{Prefix}'{key}' is not a connection string keyword{(nearest is null ? string.Empty : $" (did you mean '{nearest}'?)")}. " +
                "The keywords: https://www.npgsql.org/doc/connection-string-parameters.html", ex);
        }

        return new AequorConfigurationException($"{Prefix}the value of '{known.Name}' {WhatIsWrong(known.Property.PropertyType, ValueOf(keywords, key))}.", ex);
    }

    /// <summary>
    /// A NUL anywhere in a keyword string fails the parse as a format error at its index, which sends the user looking
    /// for a stray ';' or quote. Named instead: the setting whose value holds it, found by parsing the string with
    /// each NUL replaced by a character it does not hold.
    /// </summary>
    private static AequorConfigurationException? NulIn(string keywords, ArgumentException ex)
    {
        if (!keywords.Contains('\0', StringComparison.Ordinal))
        {
            return null;
        }

        var what = "connection string";
        // From the private use area: no real setting holds one of these, and a string cannot hold them all.
        for (var marker = '\uE000'; marker < '\uF8FF'; marker++)
        {
            if (keywords.Contains(marker, StringComparison.Ordinal))
            {
                continue;
            }

            try
            {
                var raw = new DbConnectionStringBuilder { ConnectionString = keywords.Replace('\0', marker) };
                foreach (string key in raw.Keys)
                {
                    if (raw[key]?.ToString()?.Contains(marker, StringComparison.Ordinal) == true)
                    {
                        what = SettingName(key) + " in the connection string";
                        break;
                    }
                }
            }
            catch (ArgumentException)
            {
                // Not a keyword string even without its NULs: the string as a whole is named.
            }

            break;
        }

        return new AequorConfigurationException($"The {what} holds a NUL character (U+0000), which no connection setting can hold.", ex);
    }

    /// <summary>The words <see cref="ConnectionStrings"/> uses for a setting, so a NUL is reported alike whichever way it came.</summary>
    private static string SettingName(string key) =>
        (Keywords.Value.TryGetValue(Normalise(key), out var known) ? known.Name : key) switch
        {
            "Password" => "password",
            "Username" => "user name",
            "Database" => "database name",
            "Host" => "server name",
            var name => $"value of '{name}'",
        };

    private static string WhatIsWrong(Type type, string? value)
    {
        type = Nullable.GetUnderlyingType(type) ?? type;
        if (type == typeof(int))
        {
            return int.TryParse(value?.Trim(), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out _)
                ? "is out of its range"
                : "is not a whole number";
        }

        if (type == typeof(bool))
        {
            return "is not true or false";
        }

        if (type.IsEnum)
        {
            return $"is not one of: {string.Join(", ", Enum.GetNames(type))}";
        }

        return "cannot be used";
    }

    private static string? ValueOf(string keywords, string key)
    {
        try
        {
            var raw = new DbConnectionStringBuilder { ConnectionString = keywords };
            return raw.TryGetValue(key, out var value) ? value?.ToString() : null;
        }
        catch (ArgumentException)
        {
            return null;
        }
    }

    private static string? Nearest(string key)
    {
        var wanted = Normalise(key);
        string? best = null;
        var bestDistance = int.MaxValue;
        foreach (var (candidate, known) in Keywords.Value)
        {
            var distance = Distance(wanted, candidate);
            if (distance < bestDistance)
            {
                (best, bestDistance) = (known.Name, distance);
            }
        }

        // Within a typo or two (a third for long keywords): beyond that a guess misleads more than it helps.
        return bestDistance <= Math.Max(2, wanted.Length / 4) ? best : null;
    }

    private static int Distance(string a, string b)
    {
        var previous = new int[b.Length + 1];
        var current = new int[b.Length + 1];
        for (var j = 0; j <= b.Length; j++)
        {
            previous[j] = j;
        }

        for (var i = 1; i <= a.Length; i++)
        {
            current[0] = i;
            for (var j = 1; j <= b.Length; j++)
            {
                var cost = a[i - 1] == b[j - 1] ? 0 : 1;
                current[j] = Math.Min(Math.Min(current[j - 1] + 1, previous[j] + 1), previous[j - 1] + cost);
            }

            (previous, current) = (current, previous);
        }

        return previous[b.Length];
    }

    private static string Normalise(string keyword) => keyword.Replace(" ", string.Empty, StringComparison.Ordinal).ToUpperInvariant();

    private static IReadOnlyDictionary<string, (string Name, PropertyInfo Property)> LoadKeywords()
    {
        var map = new Dictionary<string, (string, PropertyInfo)>(StringComparer.Ordinal);
        foreach (var property in typeof(NpgsqlConnectionStringBuilder).GetProperties(BindingFlags.Public | BindingFlags.Instance))
        {
            var keyword = property.GetCustomAttributes().FirstOrDefault(a => a.GetType().Name == "NpgsqlConnectionStringPropertyAttribute");
            if (keyword is null || property.GetCustomAttribute<ObsoleteAttribute>() is not null)
            {
                continue;
            }

            var name = property.GetCustomAttribute<DisplayNameAttribute>()?.DisplayName ?? property.Name;
            map.TryAdd(Normalise(name), (name, property));
            map.TryAdd(Normalise(property.Name), (name, property));
            if (keyword.GetType().GetProperty("Synonyms")?.GetValue(keyword) is string[] synonyms)
            {
                foreach (var synonym in synonyms)
                {
                    map.TryAdd(Normalise(synonym), (name, property));
                }
            }
        }

        return map;
    }

    [GeneratedRegex(@"^Format of the initialization string does not conform to specification starting at index (\d+)")]
    private static partial Regex FormatError();
}
