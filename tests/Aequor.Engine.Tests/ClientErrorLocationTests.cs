namespace Aequor.Engine.Tests;

/// <summary>
/// A server error is located in the caller's whole text (line, column, which statement), not in the one statement
/// the server received: Npgsql sends each statement of a text alone, trimmed, with @name rewritten as $n.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class ClientErrorLocationTests(PostgresFixture db)
{
    private AequorClient NewClient() => new(new AequorClientOptions
    {
        ConnectionString = db.AppConnectionString,
        CoordinationSecret = ClientTestKit.Secret,
        ServiceName = "error-location-tests",
        Reaper = false,
    });

    public static TheoryData<string, int, int?, int, int> Cases => new()
    {
        // text, line, column, statement, statements
        { "select 1,\n  2,\n  3 3", 3, 5, 1, 1 },
        { "select 1;\nselect 1/0;\nselect 3", 2, null, 2, 3 },
        { "select 1;\r\n  select 2;\r\n  select 'x'::int", 3, 10, 3, 3 },
        { "select 1;\nselect @longname, 'x'::int", 2, 19, 2, 2 },
        { "select @b, @a, @b,\n  'x'::int, @a", 2, 3, 1, 1 },
        { "select 'é😀', 'x'::int", 1, 14, 1, 1 },
        { "select 'é😀';\nselect 1,\n 'é😀' || 1 + 'x'::int", 3, 14, 2, 2 },
        { "/* a; */ select $$;$$;\n-- b;\nselect 'x'::int", 3, 8, 2, 2 },
        { "select 1;\nselect E'it\\'s;', 1 +", 2, 22, 2, 2 },
        // Empty and comment-only statements: Npgsql sends them (the server answers them empty); they are not counted.
        { "select 1;; select 1/0", 1, null, 2, 2 },
        { "select 1; ;\nselect (1", 2, 10, 2, 2 },
        { "-- head\n;select 1;\nselect 1/0;", 3, null, 2, 2 },
        { "select 1/0; -- trailing", 1, null, 1, 1 },
        { "select 1/0;;", 1, null, 1, 1 },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task A_server_error_names_its_line_column_and_statement_in_the_whole_text(string text, int line, int? column, int statement, int statements)
    {
        await using var client = NewClient();
        var named = new Dictionary<string, object?> { ["longname"] = 1, ["a"] = 1, ["b"] = 2 };
        var parameters = named.Keys.Where(k => text.Contains('@' + k, StringComparison.Ordinal)).ToDictionary(k => k, k => named[k]);
        var ex = await Assert.ThrowsAnyAsync<Exception>(async () =>
        {
            await using var reader = await client.ExecuteReaderAsync(new AequorStatement(text) { NamedParameters = parameters.Count > 0 ? parameters : null }, CancellationToken.None);
            while (await reader.ReadAsync(CancellationToken.None) || await reader.NextResultAsync(CancellationToken.None))
            {
            }
        });
        var location = ErrorLocations.Of(ex);
        Assert.NotNull(location);
        Assert.Equal((line, column, statement, statements), (location.Line, location.Column, location.Statement, location.StatementCount));
        Assert.Equal(text.Split('\n')[line - 1].TrimEnd('\r'), location.LineText);
    }

    /// <summary>The same through ExecuteNonQuery, which drains every result on the engine's side.</summary>
    [Fact]
    public async Task A_runtime_error_in_a_later_statement_is_located_without_a_reader_too()
    {
        await using var client = NewClient();
        var ex = await Assert.ThrowsAnyAsync<Exception>(() => client.ExecuteNonQueryAsync(new AequorStatement("select 1;\nselect 2;\n\nselect 1/0"), CancellationToken.None));
        var location = ErrorLocations.Of(ex);
        Assert.NotNull(location);
        Assert.Equal((4, (int?)null, 3, 3), (location.Line, location.Column, location.Statement, location.StatementCount));
    }
}
