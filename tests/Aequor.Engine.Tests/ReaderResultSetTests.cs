namespace Aequor.Engine.Tests;

/// <summary>
/// A result set of no columns (SELECT FROM t) is told apart from statements that return none (INSERT): both have a
/// FieldCount of 0, and only the first has rows to write.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class ReaderResultSetTests(PostgresFixture db)
{
    private AequorClient NewClient() => new(new AequorClientOptions
    {
        ConnectionString = db.AppConnectionString,
        CoordinationSecret = ClientTestKit.Secret,
        ServiceName = "reader-result-set-tests",
        Reaper = false,
    });

    [Theory]
    [InlineData("SELECT FROM generate_series(1, 3)", true, 3)]
    [InlineData("SELECT FROM generate_series(1, 3) WHERE false", true, 0)]
    [InlineData("CREATE TEMP TABLE rs_t (id int); INSERT INTO rs_t VALUES (1); SELECT FROM rs_t", true, 1)]
    [InlineData("CREATE TEMP TABLE rs_t (id int); SELECT FROM rs_t", true, 0)]
    [InlineData("CREATE TEMP TABLE rs_t (id int)", false, 0)]
    [InlineData("CREATE TEMP TABLE rs_t (id int); INSERT INTO rs_t VALUES (1)", false, 0)]
    public async Task A_result_set_of_no_columns_is_one(string sql, bool hasResultSet, int rows)
    {
        await using var client = NewClient();
        await using var reader = await client.ExecuteReaderAsync(new AequorStatement(sql), CancellationToken.None);
        Assert.Equal(0, reader.FieldCount);
        Assert.Equal(hasResultSet, reader.HasResultSet);
        var read = 0;
        while (await reader.ReadAsync(CancellationToken.None))
        {
            read++;
        }

        Assert.Equal(rows, read);
        Assert.False(await reader.NextResultAsync(CancellationToken.None));
    }

    [Fact]
    public async Task Every_result_set_is_one_and_statements_without_are_skipped()
    {
        await using var client = NewClient();
        await using var reader = await client.ExecuteReaderAsync(
            new AequorStatement("CREATE TEMP TABLE rs_m (id int); SELECT 1 AS a; INSERT INTO rs_m VALUES (1); SELECT FROM rs_m; SELECT FROM rs_m WHERE false"),
            CancellationToken.None);
        var seen = new List<(int Fields, bool HasResultSet, int Rows)>();
        do
        {
            var (fields, has, rows) = (reader.FieldCount, reader.HasResultSet, 0);
            while (await reader.ReadAsync(CancellationToken.None))
            {
                rows++;
            }

            seen.Add((fields, has, rows));
        }
        while (await reader.NextResultAsync(CancellationToken.None));

        Assert.Equal([(1, true, 1), (0, true, 1), (0, true, 0)], seen);
    }
}
