using System.Globalization;
using Npgsql;

namespace Aequor.Engine;

/// <summary>
/// Turns what users paste — an Npgsql keyword string or a libpq <c>postgres://</c> URI — into the
/// keyword string <see cref="AequorClientOptions.ConnectionString"/> expects. Messages never echo
/// the input: a URI carries its password inline.
/// </summary>
public static class ConnectionStrings
{
    // libpq URI query parameters (https://www.postgresql.org/docs/current/libpq-connect.html) and the
    // Npgsql keyword each one means.
    private static readonly Dictionary<string, string> UriKeywords = new(StringComparer.OrdinalIgnoreCase)
    {
        ["host"] = "Host",
        ["hostaddr"] = "Host",
        ["port"] = "Port",
        ["dbname"] = "Database",
        ["user"] = "Username",
        ["password"] = "Password",
        ["passfile"] = "Passfile",
        ["connect_timeout"] = "Timeout",
        ["application_name"] = "Application Name",
        ["options"] = "Options",
        ["sslmode"] = "SSL Mode",
        ["sslcert"] = "SSL Certificate",
        ["sslkey"] = "SSL Key",
        ["sslpassword"] = "SSL Password",
        ["sslrootcert"] = "Root Certificate",
        ["sslnegotiation"] = "SSL Negotiation",
        ["target_session_attrs"] = "Target Session Attributes",
        ["channel_binding"] = "Channel Binding",
        ["gssencmode"] = "GSS Encryption Mode",
        ["krbsrvname"] = "Kerberos Service Name",
        ["client_encoding"] = "Client Encoding",
        ["keepalives_idle"] = "Tcp Keepalive Time",
        ["keepalives_interval"] = "Tcp Keepalive Interval",
    };

    public static bool IsUri(string connectionString)
    {
        ArgumentNullException.ThrowIfNull(connectionString);
        var text = connectionString.TrimStart();
        return text.StartsWith("postgres://", StringComparison.OrdinalIgnoreCase)
            || text.StartsWith("postgresql://", StringComparison.OrdinalIgnoreCase);
    }

    /// <summary>A keyword string for either form; throws <see cref="AequorConfigurationException"/> naming what is wrong, never the value.</summary>
    public static string Normalize(string connectionString)
    {
        if (string.IsNullOrWhiteSpace(connectionString))
        {
            throw new AequorConfigurationException("The connection string is empty.");
        }

        var builder = Parse(IsUri(connectionString) ? FromUri(connectionString.Trim()) : connectionString);
        // What Npgsql would only report at the first connect, as an ArgumentException that names no setting.
        if (string.IsNullOrWhiteSpace(builder.Host))
        {
            throw new AequorConfigurationException("The connection string names no server: give Host=... (or a host in the postgres:// URI).");
        }

        if (builder.Port is < 1 or > 65535)
        {
            throw new AequorConfigurationException($"The port {builder.Port.ToString(CultureInfo.InvariantCulture)} is not between 1 and 65535.");
        }

        if (builder.CommandTimeout > AequorClientOptions.MaxCommandTimeoutSeconds)
        {
            throw new AequorConfigurationException(
                $"The connection string's Command Timeout is {builder.CommandTimeout.ToString(CultureInfo.InvariantCulture)} s; it can be at most {AequorClientOptions.MaxCommandTimeoutSeconds.ToString(CultureInfo.InvariantCulture)} s (about 49 days): give 0 for no limit.");
        }

        if (builder.Multiplexing)
        {
            throw new AequorConfigurationException("Multiplexing is not supported: each Aequor session owns one connection, whose backend its lease names. Remove Multiplexing from the connection string.");
        }

        return builder.ConnectionString;
    }

    /// <summary>Replaces the user and password (a PSCredential wins over what the string says).</summary>
    public static string WithCredential(string connectionString, string userName, string? password)
    {
        var builder = Parse(Normalize(connectionString));
        RefuseNul(userName, "user name");
        RefuseNul(password, "password");
        builder.Username = userName;
        builder.Password = string.IsNullOrEmpty(password) ? null : password;
        return builder.ConnectionString;
    }

    /// <param name="port">Null: the port in <paramref name="host"/> ("db:6432"), else 5432.</param>
    public static string FromParameters(string host, int? port, string? database, string? userName, string? password)
    {
        if (string.IsNullOrWhiteSpace(host))
        {
            throw new AequorConfigurationException("The server name is empty.");
        }

        // "db:6432" names its port; Npgsql would connect to it but report 5432. An IPv6 address has more colons.
        var colonAt = host.LastIndexOf(':');
        // Several hosts ("h1,h2:5433") or a bracketed address go to Npgsql as given.
        if (colonAt > 0 && host.IndexOf(':', StringComparison.Ordinal) == colonAt && !host.Contains(',', StringComparison.Ordinal) && !host.Contains('[', StringComparison.Ordinal)
            && int.TryParse(host.AsSpan(colonAt + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var hostPort))
        {
            if (port is { } given && given != hostPort)
            {
                throw new AequorConfigurationException($"The server '{host}' names port {hostPort.ToString(CultureInfo.InvariantCulture)} but -Port is {given.ToString(CultureInfo.InvariantCulture)}: give one.");
            }

            host = host[..colonAt];
            port = hostPort;
        }

        return FromHostAndPort(host, port ?? 5432, database, userName, password);
    }

    private static string FromHostAndPort(string host, int port, string? database, string? userName, string? password)
    {
        RefuseNul(host, "server name");
        RefuseNul(database, "database name");
        RefuseNul(userName, "user name");
        RefuseNul(password, "password");
        if (port is < 1 or > 65535)
        {
            throw new AequorConfigurationException($"The port {port.ToString(CultureInfo.InvariantCulture)} is not between 1 and 65535.");
        }

        var builder = new NpgsqlConnectionStringBuilder { Host = host, Port = port };
        if (!string.IsNullOrEmpty(database))
        {
            builder.Database = database;
        }

        if (!string.IsNullOrEmpty(userName))
        {
            builder.Username = userName;
        }

        if (!string.IsNullOrEmpty(password))
        {
            builder.Password = password;
        }

        return builder.ConnectionString;
    }

    /// <summary>
    /// Npgsql refuses a NUL in a setting with an ArgumentException ("The value contains embedded nulls") naming its
    /// property, which reaches the user as a bare .NET error. The value itself stays out of the message: it may be a password.
    /// </summary>
    private static void RefuseNul(string? value, string what)
    {
        if (value is not null && value.Contains('\0', StringComparison.Ordinal))
        {
            throw new AequorConfigurationException($"The {what} holds a NUL character (U+0000), which no connection setting can hold.");
        }
    }

    /// <summary>The Application Name the string carries, if any: a leased connection replaces it with its lease.</summary>
    public static string? GetApplicationName(string keywordConnectionString)
    {
        try
        {
            return new NpgsqlConnectionStringBuilder(keywordConnectionString).ApplicationName is { Length: > 0 } name ? name : null;
        }
        catch (ArgumentException)
        {
            return null;
        }
    }

    /// <summary>The password the string carries, if any: callers use it to keep it out of messages.</summary>
    public static string? GetPassword(string keywordConnectionString)
    {
        try
        {
            return new NpgsqlConnectionStringBuilder(keywordConnectionString).Password;
        }
        catch (ArgumentException)
        {
            return null;
        }
    }

    private static NpgsqlConnectionStringBuilder Parse(string keywords)
    {
        try
        {
            return new NpgsqlConnectionStringBuilder(keywords);
        }
        catch (ArgumentException ex)
        {
            throw ConnectionStringErrors.From(ex, keywords);
        }
    }

    private static string FromUri(string uri)
    {
        var rest = uri[(uri.IndexOf("://", StringComparison.Ordinal) + 3)..];
        var hashAt = rest.IndexOf('#', StringComparison.Ordinal);
        if (hashAt >= 0)
        {
            rest = rest[..hashAt];
        }

        string? query = null;
        var queryAt = rest.IndexOf('?', StringComparison.Ordinal);
        if (queryAt >= 0)
        {
            query = rest[(queryAt + 1)..];
            rest = rest[..queryAt];
        }

        string? path = null;
        var slashAt = rest.IndexOf('/', StringComparison.Ordinal);
        if (slashAt >= 0)
        {
            path = rest[(slashAt + 1)..];
            rest = rest[..slashAt];
        }

        var builder = new NpgsqlConnectionStringBuilder();
        // The password may contain '@' only percent-encoded, but be lenient: the last '@' ends the user info.
        var atAt = rest.LastIndexOf('@');
        if (atAt >= 0)
        {
            var userInfo = rest[..atAt];
            rest = rest[(atAt + 1)..];
            var colonAt = userInfo.IndexOf(':', StringComparison.Ordinal);
            var user = Decode(colonAt >= 0 ? userInfo[..colonAt] : userInfo, "user name");
            if (user.Length > 0)
            {
                builder.Username = user;
            }

            if (colonAt >= 0)
            {
                var password = Decode(userInfo[(colonAt + 1)..], "password");
                if (password.Length > 0)
                {
                    builder.Password = password;
                }
            }
        }

        if (rest.Length > 0)
        {
            var hosts = rest.Split(',').Select(HostSpec).ToList();
            if (hosts.Count == 1)
            {
                // One host: Host and Port apart, so the session shows them as given.
                builder.Host = hosts[0].Host.StartsWith('[') ? hosts[0].Host[1..^1] : hosts[0].Host;
                if (hosts[0].Port is { } port)
                {
                    builder.Port = port;
                }
            }
            else
            {
                builder.Host = string.Join(',', hosts.Select(h => h.Port is { } p ? $"{h.Host}:{p.ToString(CultureInfo.InvariantCulture)}" : h.Host));
            }
        }

        if (!string.IsNullOrEmpty(path))
        {
            builder.Database = Decode(path, "database name");
        }

        if (!string.IsNullOrEmpty(query))
        {
            foreach (var pair in query.Split('&', StringSplitOptions.RemoveEmptyEntries))
            {
                var eqAt = pair.IndexOf('=', StringComparison.Ordinal);
                var name = Decode(eqAt >= 0 ? pair[..eqAt] : pair, "option name");
                var value = eqAt >= 0 ? Decode(pair[(eqAt + 1)..], $"'{name}' option's value") : string.Empty;
                SetOption(builder, name, value);
            }
        }

        return builder.ConnectionString;
    }

    private static (string Host, int? Port) HostSpec(string spec)
    {
        // [v6]:port, host:port, host, or a percent-encoded Unix-socket directory.
        if (spec.StartsWith('['))
        {
            var close = spec.IndexOf(']', StringComparison.Ordinal);
            if (close < 0)
            {
                throw new AequorConfigurationException("The URI has an IPv6 host without its closing ']'.");
            }

            var after = spec[(close + 1)..];
            return (spec[..(close + 1)], after.StartsWith(':') ? Port(after[1..]) : null);
        }

        var colonAt = spec.LastIndexOf(':');
        return colonAt >= 0
            ? (Decode(spec[..colonAt], "host"), Port(spec[(colonAt + 1)..]))
            : (Decode(spec, "host"), null);
    }

    private static int? Port(string text)
    {
        if (text.Length == 0)
        {
            return null;
        }

        if (!int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var port) || port is < 1 or > 65535)
        {
            throw new AequorConfigurationException("The URI's port is not a number between 1 and 65535.");
        }

        return port;
    }

    private static void SetOption(NpgsqlConnectionStringBuilder builder, string name, string value)
    {
        var keyword = UriKeywords.TryGetValue(name, out var known) ? known : name.Replace('_', ' ');
        if (keyword == "SSL Mode")
        {
            // libpq spells the modes in lower case with hyphens; Npgsql's enum has none.
            value = value.ToLowerInvariant() switch
            {
                "verify-ca" => "VerifyCA",
                "verify-full" => "VerifyFull",
                _ => value,
            };
        }

        try
        {
            builder[keyword] = value;
        }
        catch (Exception ex) when (ex is ArgumentException or FormatException or InvalidCastException or OverflowException)
        {
            // Name the option; its value may be a password.
            throw new AequorConfigurationException($"The URI option '{name}' is not supported or its value is not valid.", ex);
        }
    }

    private static string Decode(string text, string what)
    {
        string decoded;
        try
        {
            decoded = Uri.UnescapeDataString(text);
        }
        catch (UriFormatException ex)
        {
            throw new AequorConfigurationException($"The URI's {what} is not valid percent-encoding.", ex);
        }

        // A %00 decodes to a NUL, which Npgsql's setters refuse with a bare ArgumentException.
        RefuseNul(decoded, what);
        return decoded;
    }
}
