using System.Net;
using System.Net.Sockets;

namespace Aequor.Engine.Tests;

/// <summary>
/// A password holding a NUL, however it reaches the engine (a keyword string, quoted or not, a postgres:// URI, a
/// credential, separate settings), is refused naming the password, never echoing it, before any connect: Npgsql
/// reports a keyword string's NUL as a format error at some index, and a URI's as a bare ArgumentException.
/// </summary>
public sealed class PasswordNulTests : IDisposable
{
    private const string Password = "hunter2\0nul";

    // A server that never answers: a connect attempt would be left pending here.
    private readonly TcpListener _server = new(IPAddress.Loopback, 0);

    public PasswordNulTests() => _server.Start();

    private int Port => ((IPEndPoint)_server.LocalEndpoint).Port;

    public void Dispose() => _server.Stop();

    [Theory]
    [InlineData("Password=hunter2\0nul")]
    [InlineData("Password=\"hunter2\0nul\"")]
    [InlineData("Password='hunter2\0nul'")]
    [InlineData("pwd=hunter2\0nul")]
    public void In_a_keyword_connection_string_it_is_refused_naming_the_password_by_the_options_and_by_Normalize(string setting)
    {
        var cs = $"Host=127.0.0.1;Port={Port};Username=u;{setting};Timeout=2";
        AssertRefused(Assert.Throws<AequorConfigurationException>(() => ConnectionStrings.Normalize(cs)), "password in the connection string");
        var options = new AequorClientOptions { ConnectionString = cs, LeaseMode = LeaseMode.Optional, Reaper = false };
        AssertRefused(Assert.Throws<AequorConfigurationException>(() => new AequorClient(options)), "password in the connection string");
        Assert.False(_server.Pending(), "a connection was attempted");
    }

    [Fact]
    public void In_another_setting_of_a_keyword_string_it_is_refused_naming_that_setting()
    {
        var error = Assert.Throws<AequorConfigurationException>(() => ConnectionStrings.Normalize($"Host=127.0.0.1;Port={Port};Database=d\0b;Password=hunter2"));
        AssertRefused(error, "database name in the connection string");
    }

    [Theory]
    [InlineData("postgres://u:hunter2%00nul@127.0.0.1:{0}/db", "password")]
    [InlineData("postgresql://u@127.0.0.1:{0}/db?password=hunter2%00nul", "'password' option's value")]
    public void In_a_postgres_URI_it_is_refused_naming_where_it_is(string uri, string named)
    {
        var error = Assert.Throws<AequorConfigurationException>(() => ConnectionStrings.Normalize(string.Format(System.Globalization.CultureInfo.InvariantCulture, uri, Port)));
        AssertRefused(error, named);
        Assert.False(_server.Pending(), "a connection was attempted");
    }

    [Fact]
    public void Given_apart_as_a_credential_or_a_setting_it_is_refused_naming_the_password()
    {
        var cs = $"Host=127.0.0.1;Port={Port};Username=u;Timeout=2";
        AssertRefused(Assert.Throws<AequorConfigurationException>(() => ConnectionStrings.WithCredential(cs, "u", Password)), "password");
        AssertRefused(Assert.Throws<AequorConfigurationException>(() => ConnectionStrings.FromParameters("127.0.0.1", Port, "db", "u", Password)), "password");
        Assert.False(_server.Pending(), "a connection was attempted");
    }

    private static void AssertRefused(AequorConfigurationException error, string named)
    {
        Assert.Equal($"The {named} holds a NUL character (U+0000), which no connection setting can hold.", error.Message);
        // Nor in what it wraps: a stack trace or a -Debug dump shows that too.
        Assert.DoesNotContain("hunter2", error.ToString(), StringComparison.Ordinal);
    }
}
