namespace Aequor.Engine.Tests;

/// <summary>
/// Text PostgreSQL cannot take (a NUL, half a surrogate pair) in a parameter, an export's query or a table name:
/// refused before anything is sent, naming where it is, so an open transaction and the connection go on.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class BadInputTests(PostgresFixture db)
{
    private AequorClient NewClient() => new(new AequorClientOptions
    {
        ConnectionString = db.AppConnectionString,
        LeaseMode = LeaseMode.Optional,
        Reaper = false,
    });

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_NUL_in_a_text_parameter_is_refused_naming_it_and_the_transaction_goes_on(bool named)
    {
        await using var client = NewClient();
        await client.ExecuteNonQueryAsync(new AequorStatement("CREATE TEMP TABLE kept (v text)"), default);
        var pid = await client.ExecuteScalarAsync(new AequorStatement("SELECT pg_backend_pid()"), default);
        await client.BeginTransactionAsync(default);
        await client.ExecuteNonQueryAsync(new AequorStatement("INSERT INTO kept VALUES ('row')"), default);

        var bad = named
            ? new AequorStatement("SELECT @v::text[]") { NamedParameters = new Dictionary<string, object?> { ["v"] = new[] { "ok", "a\0b" } } }
            : new AequorStatement("SELECT $1::text") { PositionalParameters = ["a\0b"] };
        var error = await Assert.ThrowsAsync<AequorConfigurationException>(() => client.ExecuteScalarAsync(bad, default));
        Assert.Contains(named ? "Parameter 'v' holds a NUL character (U+0000) at index 1 of its element [1]" : "Parameter $1 holds a NUL character (U+0000) at index 1", error.Message, StringComparison.Ordinal);
        Assert.Contains("Nothing was sent", error.Message, StringComparison.Ordinal);

        await client.CommitAsync(default);
        Assert.Equal(pid, await client.ExecuteScalarAsync(new AequorStatement("SELECT pg_backend_pid()"), default));
        Assert.Equal(1L, await client.ExecuteScalarAsync(new AequorStatement("SELECT count(*) FROM kept"), default));
    }

    [Theory]
    [InlineData("SELECT 'a", 0, "NUL character (U+0000) at character 10")]
    [InlineData("SELECT '", 0xD800, "unpaired UTF-16 surrogate (U+D800) at character 9")]
    public void An_export_query_PostgreSQL_cannot_take_is_refused_before_sending(string before, int character, string named)
    {
        // Built here: xUnit's theory data cannot carry a lone surrogate intact.
        var query = before + (char)character + "'";
        var error = Assert.Throws<AequorConfigurationException>(() => new AequorCsvExport { Query = query }.Validate());
        Assert.Contains("The query holds " + (named.StartsWith('N') ? "a " : "an ") + named, error.Message, StringComparison.Ordinal);
        Assert.Contains("Nothing was exported", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("people", "", 0, "NUL character (U+0000)")]
    [InlineData("\"peo", "ple\"", 0, "NUL character (U+0000)")]
    [InlineData("\"people", "\"", 0xDC00, "unpaired UTF-16 surrogate (U+DC00)")]
    public void A_table_name_PostgreSQL_cannot_take_is_refused_and_the_message_holds_no_NUL(string before, string after, int character, string named)
    {
        var table = before + (char)character + after;
        var error = Assert.Throws<AequorConfigurationException>(() => TableNames.Quote(table));
        Assert.Contains(named, error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain('\0', error.Message);
    }

    [Theory]
    [InlineData("db\0x", null, "database name")]
    [InlineData(null, "u\0x", "user name")]
    public void A_NUL_in_a_connection_setting_is_refused_naming_the_setting_never_the_value(string? database, string? user, string named)
    {
        var error = Assert.Throws<AequorConfigurationException>(() => ConnectionStrings.FromParameters("127.0.0.1", 5432, database, user, "hunter2-nul"));
        Assert.Equal($"The {named} holds a NUL character (U+0000), which no connection setting can hold.", error.Message);
        error = Assert.Throws<AequorConfigurationException>(() => ConnectionStrings.WithCredential(db.AppConnectionString, "u\0x", "hunter2-nul"));
        Assert.Contains("user name holds a NUL", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_export_naming_a_column_twice_is_refused_before_the_COPY_and_the_transaction_goes_on()
    {
        await using var client = NewClient();
        await client.ExecuteNonQueryAsync(new AequorStatement("CREATE TEMP TABLE twice (id int, name text)"), default);
        await client.BeginTransactionAsync(default);
        await client.ExecuteNonQueryAsync(new AequorStatement("INSERT INTO twice VALUES (1, 'row')"), default);
        using var text = new StringWriter();
        var error = Assert.Throws<AequorConfigurationException>(() => client.ExportCsv(new AequorCsvExport { Table = "twice", Columns = ["id", "name", "ID"] }, text, default));
        Assert.Contains("The column 'id' is chosen twice ('ID')", error.Message, StringComparison.Ordinal);
        Assert.Equal(string.Empty, text.ToString());
        await client.CommitAsync(default);
        Assert.Equal(1L, await client.ExecuteScalarAsync(new AequorStatement("SELECT count(*) FROM twice"), default));
    }

    [Fact]
    public async Task A_command_timeout_Npgsql_cannot_arm_is_refused_up_front_and_the_longest_one_connects()
    {
        var options = new AequorClientOptions { ConnectionString = db.AppConnectionString, LeaseMode = LeaseMode.Optional, Reaper = false, CommandTimeout = 4_294_968 };
        var error = Assert.Throws<AequorConfigurationException>(options.Validate);
        Assert.Contains("it can be at most 4294967 s", error.Message, StringComparison.Ordinal);
        error = Assert.Throws<AequorConfigurationException>(() => ConnectionStrings.Normalize(db.AppConnectionString + ";Command Timeout=4294968"));
        Assert.Contains("Command Timeout is 4294968 s", error.Message, StringComparison.Ordinal);

        await using var longest = new AequorClient(new AequorClientOptions { ConnectionString = db.AppConnectionString, LeaseMode = LeaseMode.Optional, Reaper = false, CommandTimeout = AequorClientOptions.MaxCommandTimeoutSeconds });
        Assert.Equal(1, await longest.ExecuteScalarAsync(new AequorStatement("SELECT 1"), default));
    }

    [Theory]
    [InlineData("positional")]
    [InlineData("empty")]
    [InlineData("named")]
    public async Task Values_too_few_for_the_placeholders_are_refused_before_sending_and_the_transaction_goes_on(string given)
    {
        await using var client = NewClient();
        await client.ExecuteNonQueryAsync(new AequorStatement("CREATE TEMP TABLE kept_few (v int)"), default);
        var pid = await client.ExecuteScalarAsync(new AequorStatement("SELECT pg_backend_pid()"), default);
        await client.BeginTransactionAsync(default);
        await client.ExecuteNonQueryAsync(new AequorStatement("INSERT INTO kept_few VALUES (1)"), default);

        var bad = given switch
        {
            "positional" => new AequorStatement("INSERT INTO kept_few VALUES ($1), ($2)") { PositionalParameters = [2] },
            "empty" => new AequorStatement("INSERT INTO kept_few VALUES ($1), ($2)") { PositionalParameters = [] },
            _ => new AequorStatement("INSERT INTO kept_few VALUES ($1), ($2)") { NamedParameters = new Dictionary<string, object?> { ["v"] = 2 } },
        };
        var error = await Assert.ThrowsAsync<AequorConfigurationException>(() => client.ExecuteNonQueryAsync(bad, default));
        Assert.Contains("placeholders up to $2", error.Message, StringComparison.Ordinal);
        Assert.Contains(given == "named" ? "its values are named" : given == "empty" ? "but 0 positional values were given" : "but 1 positional value was given", error.Message, StringComparison.Ordinal);
        Assert.Contains("Nothing was sent", error.Message, StringComparison.Ordinal);

        await client.CommitAsync(default);
        Assert.Equal(pid, await client.ExecuteScalarAsync(new AequorStatement("SELECT pg_backend_pid()"), default));
        Assert.Equal(1L, await client.ExecuteScalarAsync(new AequorStatement("SELECT count(*) FROM kept_few"), default));
    }

    [Fact]
    public async Task A_statement_that_numbers_its_own_parameters_is_not_judged_by_its_placeholders()
    {
        await using var client = NewClient();
        await client.ExecuteNonQueryAsync(new AequorStatement("PREPARE own_params(int, int) AS SELECT $1 + $2") { PositionalParameters = [] }, default);
        Assert.Equal(5, await client.ExecuteScalarAsync(new AequorStatement("EXECUTE own_params(2, 3)"), default));
        Assert.Equal(7, await client.ExecuteScalarAsync(new AequorStatement("SELECT $1::int + $2::int") { PositionalParameters = [3, 4] }, default));
    }
}
