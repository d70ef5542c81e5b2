using Npgsql;

namespace Aequor.Engine.Tests;

public sealed class ConnectionStringsTests
{
    private static NpgsqlConnectionStringBuilder Parse(string text) => new(ConnectionStrings.Normalize(text));

    [Fact]
    public void A_uri_becomes_keywords_with_its_parts_percent_decoded()
    {
        var b = Parse("postgres://app%40corp:p%40ss%3Aw0rd%2F@db.internal:6543/orders%20db?sslmode=require&application_name=x&connect_timeout=7");
        Assert.Equal("app@corp", b.Username);
        Assert.Equal("p@ss:w0rd/", b.Password);
        Assert.Equal("db.internal", b.Host);
        Assert.Equal(6543, b.Port);
        Assert.Equal("orders db", b.Database);
        Assert.Equal(SslMode.Require, b.SslMode);
        Assert.Equal("x", b.ApplicationName);
        Assert.Equal(7, b.Timeout);
    }

    [Theory]
    [InlineData("postgresql://h/db", "h", "db")]
    [InlineData("POSTGRES://h", "h", null)]
    [InlineData("postgres://[::1]:5433/db", "::1", "db")]
    [InlineData("postgres://[::1]:5433,h2/db", "[::1]:5433,h2", "db")]
    [InlineData("postgres://h1:5432,h2:5433/db", "h1:5432,h2:5433", "db")]
    [InlineData("postgres://%2Fvar%2Frun%2Fpostgresql/db", "/var/run/postgresql", "db")]
    public void Hosts_ipv6_multi_host_and_socket_directories(string uri, string host, string? database)
    {
        var b = Parse(uri);
        Assert.Equal(host, b.Host);
        Assert.Equal(database, b.Database);
    }

    [Fact]
    public void Libpq_ssl_modes_with_hyphens_map_to_npgsql()
    {
        Assert.Equal(SslMode.VerifyFull, Parse("postgres://h/db?sslmode=verify-full").SslMode);
        Assert.Equal(SslMode.VerifyCA, Parse("postgres://h/db?sslmode=verify-ca").SslMode);
    }

    [Fact]
    public void Errors_name_the_problem_never_the_password()
    {
        var port = Assert.Throws<AequorConfigurationException>(() => ConnectionStrings.Normalize("postgres://u:S3cret-pw@h:99999/db"));
        Assert.Contains("port", port.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("S3cret-pw", port.Message, StringComparison.Ordinal);

        var option = Assert.Throws<AequorConfigurationException>(() => ConnectionStrings.Normalize("postgres://u:S3cret-pw@h/db?no_such_option=S3cret-pw"));
        Assert.Contains("no_such_option", option.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("S3cret-pw", option.Message, StringComparison.Ordinal);

        var keywords = Assert.Throws<AequorConfigurationException>(() => ConnectionStrings.Normalize("Host=h;Password=S3cret-pw;Bogus=1"));
        Assert.DoesNotContain("S3cret-pw", keywords.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("Host=h;Port=99999;Password=S3cret-pw", "port 99999 is not between 1 and 65535")]
    [InlineData("Database=db;Username=u;Password=S3cret-pw", "names no server")]
    [InlineData("postgres://u:S3cret-pw@/db", "names no server")]
    [InlineData("Host=h;Multiplexing=true", "Multiplexing is not supported")]
    public void Settings_Npgsql_would_refuse_only_at_the_first_connect_are_refused_here_by_name(string text, string expected)
    {
        var error = Assert.Throws<AequorConfigurationException>(() => ConnectionStrings.Normalize(text));
        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("S3cret-pw", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_credential_replaces_the_user_and_password_of_either_form()
    {
        var fromUri = new NpgsqlConnectionStringBuilder(ConnectionStrings.WithCredential("postgres://old:oldpw@h/db", "new", "newpw"));
        Assert.Equal("new", fromUri.Username);
        Assert.Equal("newpw", fromUri.Password);
        Assert.Equal("db", fromUri.Database);

        var fromKeywords = new NpgsqlConnectionStringBuilder(ConnectionStrings.WithCredential("Host=h;Username=old;Password=oldpw", "new", null));
        Assert.Equal("new", fromKeywords.Username);
        Assert.Null(fromKeywords.Password);
    }

    [Fact]
    public void Parameters_build_a_keyword_string()
    {
        var b = new NpgsqlConnectionStringBuilder(ConnectionStrings.FromParameters("db1", 5544, "orders", "app", "pw"));
        Assert.Equal(("db1", 5544, "orders", "app", "pw"), (b.Host, b.Port, b.Database, b.Username, b.Password));
        Assert.Throws<AequorConfigurationException>(() => ConnectionStrings.FromParameters(" ", 5432, null, null, null));

        // A port in the server name is the port (Npgsql would connect to it but report 5432); a second one disagreeing is refused.
        var hostPort = new NpgsqlConnectionStringBuilder(ConnectionStrings.FromParameters("db1:6432", null, "orders", null, null));
        Assert.Equal(("db1", 6432), (hostPort.Host, hostPort.Port));
        Assert.Equal(6432, new NpgsqlConnectionStringBuilder(ConnectionStrings.FromParameters("db1:6432", 6432, null, null, null)).Port);
        Assert.Equal(5432, new NpgsqlConnectionStringBuilder(ConnectionStrings.FromParameters("db1", null, null, null, null)).Port);
        Assert.Contains("names port 6432 but -Port is 5544", Assert.Throws<AequorConfigurationException>(() => ConnectionStrings.FromParameters("db1:6432", 5544, null, null, null)).Message, StringComparison.Ordinal);
        Assert.Equal("::1", new NpgsqlConnectionStringBuilder(ConnectionStrings.FromParameters("::1", 5432, null, null, null)).Host);
        // Several hosts or a bracketed address go to Npgsql as given (each host keeps its own port).
        Assert.Equal(("h1,h2:5433", 5432), Pair(ConnectionStrings.FromParameters("h1,h2:5433", null, null, null, null)));
        Assert.Equal(("[::1]:6432", 5432), Pair(ConnectionStrings.FromParameters("[::1]:6432", null, null, null, null)));

        static (string?, int) Pair(string cs) => (new NpgsqlConnectionStringBuilder(cs).Host, new NpgsqlConnectionStringBuilder(cs).Port);
        Assert.Equal("pw", ConnectionStrings.GetPassword("Host=h;Password=pw"));
    }
    [Theory]
    [InlineData("Host=h;Porty=5432;Password=S3cret-pw", "'porty' is not a connection string keyword (did you mean 'Port'?)")]
    [InlineData("Host=h;Pasword=S3cret-pw", "'pasword' is not a connection string keyword (did you mean 'Password'?)")]
    [InlineData("Host=h;SSLMod=Require", "'sslmod' is not a connection string keyword (did you mean 'SSL Mode'?)")]
    [InlineData("Host=h;Frobnicate=S3cret-pw", "'frobnicate' is not a connection string keyword. The keywords: https://www.npgsql.org/")]
    [InlineData("Host=h;Port=S3cret-pw", "the value of 'Port' is not a whole number.")]
    [InlineData("Host=h;Timeout=-5;Password=S3cret-pw", "the value of 'Timeout' is out of its range.")]
    [InlineData("Host=h;SSL Mode=S3cret-pw", "the value of 'SSL Mode' is not one of: Disable, Allow, Prefer, Require, VerifyCA, VerifyFull.")]
    [InlineData("Host=h;Pooling=S3cret-pw", "the value of 'Pooling' is not true or false.")]
    [InlineData("Host=h;Password=S3cret-pw;Username", "it is not a list of Keyword=value pairs separated by ';' (from character 27 on)")]
    [InlineData("Host=h;Username;Password=S3cret-pw", "'username;password' is not a connection string keyword")]
    public void A_bad_keyword_string_names_the_keyword_and_what_it_takes_never_the_value(string text, string expected)
    {
        // Npgsql said only "Couldn't set porty (Parameter 'porty')", for a typo and for a bad value alike.
        var normalised = Assert.Throws<AequorConfigurationException>(() => ConnectionStrings.Normalize(text));
        Assert.Contains("The connection string is not valid: " + expected, normalised.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("S3cret-pw", normalised.Message, StringComparison.Ordinal);

        // The client given the string directly says the same.
        var client = Assert.Throws<AequorConfigurationException>(() => new AequorClient(new AequorClientOptions { ConnectionString = text, LeaseMode = LeaseMode.Optional }));
        Assert.Equal(normalised.Message, client.Message);
    }
}
