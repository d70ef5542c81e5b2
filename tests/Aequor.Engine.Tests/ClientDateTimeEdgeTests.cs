namespace Aequor.Engine.Tests;

/// <summary>
/// Dates, times and intervals at and beyond the ends of .NET's types: never a wrong value. What .NET cannot hold
/// is the server's text (an interval) or an error naming the column and the cast; infinity is the type's end.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class ClientDateTimeEdgeTests(PostgresFixture db)
{
    private AequorClient NewClient() => new(new AequorClientOptions
    {
        ConnectionString = db.AppConnectionString,
        CoordinationSecret = ClientTestKit.Secret,
        ServiceName = "datetime-edge-tests",
        Reaper = false,
    });

    /// <summary>TimeSpan ends near 10,675,199 days; a longer interval used to wrap round to a wrong span.</summary>
    [Theory]
    [InlineData("100000000 days")]
    [InlineData("-100000000 days -00:00:01")]
    [InlineData("2147483647 days 23:59:59")]
    public async Task An_interval_beyond_TimeSpan_reads_as_the_servers_text(string literal)
    {
        await using var client = NewClient();
        var row = await ClientTestKit.ReadRowAsync(client, $"SELECT '{literal}'::interval, '{literal}'::interval::text, ARRAY['{literal}', '1 day']::interval[]");
        Assert.Equal(Assert.IsType<string>(row[1]), Assert.IsType<string>(row[0]));
        Assert.Equal(new[] { (string)row[1]!, "1 day" }, Assert.IsType<string?[]>(row[2]));
    }

    /// <summary>
    /// Beyond DateTime, DateOnly and TimeOnly: 294276 AD used to come back as a date in 1998 (the ticks wrapped),
    /// the others as .NET's own message without the column.
    /// </summary>
    [Theory]
    [InlineData("'294276-01-01'::timestamp")]
    [InlineData("'294276-01-01'::timestamptz")]
    [InlineData("'20000-01-01'::timestamp")]
    [InlineData("'4713-01-01 BC'::timestamp")]
    [InlineData("'4713-01-01 BC'::timestamptz")]
    [InlineData("ARRAY['294276-01-01'::timestamp]")]
    [InlineData("ARRAY[NULL, '294276-01-01'::timestamptz]")]
    [InlineData("'10000-01-01'::date")]
    [InlineData("'4713-01-01 BC'::date")]
    [InlineData("ARRAY['10000-01-01'::date]")]
    [InlineData("'24:00'::time")]
    public async Task A_date_or_time_beyond_dotnet_fails_naming_the_column_and_the_cast(string expression)
    {
        await using var client = NewClient();
        var ex = await Assert.ThrowsAsync<InvalidCastException>(() => ClientTestKit.ReadRowAsync(client, $"SELECT {expression} AS v"));
        Assert.Contains("Column 1 ('v'", ex.Message, StringComparison.Ordinal);
        Assert.Contains("v::text", ex.Message, StringComparison.Ordinal);
    }

    /// <summary>±infinity is DateTime.MaxValue / MinValue (for date too); a timestamptz one is UTC like every other.</summary>
    [Fact]
    public async Task Infinity_reads_as_the_end_of_the_type_and_timestamptz_stays_utc()
    {
        await using var client = NewClient();
        var row = await ClientTestKit.ReadRowAsync(client, """
            SELECT 'infinity'::timestamptz, '-infinity'::timestamptz, 'infinity'::timestamp, '-infinity'::timestamp,
                   'infinity'::date, '-infinity'::date, ARRAY['-infinity', '2024-01-02 03:04:05+00', NULL]::timestamptz[],
                   '0001-01-01 00:00:00.000001'::timestamp, '9999-12-31 23:59:59.999999+00'::timestamptz,
                   ARRAY[['infinity', '2024-01-02 03:04:05'], ['2000-01-01', '1999-12-31 23:59:59.5']]::timestamp[]
            """);
        AssertDateTime(DateTime.MaxValue, DateTimeKind.Utc, row[0]);
        AssertDateTime(DateTime.MinValue, DateTimeKind.Utc, row[1]);
        AssertDateTime(DateTime.MaxValue, DateTimeKind.Unspecified, row[2]);
        AssertDateTime(DateTime.MinValue, DateTimeKind.Unspecified, row[3]);
        AssertDateTime(DateTime.MaxValue, DateTimeKind.Unspecified, row[4]);
        AssertDateTime(DateTime.MinValue, DateTimeKind.Unspecified, row[5]);
        var array = Assert.IsType<DateTime?[]>(row[6]);
        AssertDateTime(DateTime.MinValue, DateTimeKind.Utc, array[0]);
        AssertDateTime(new DateTime(2024, 1, 2, 3, 4, 5), DateTimeKind.Utc, array[1]);
        Assert.Null(array[2]);
        AssertDateTime(DateTime.MinValue.AddTicks(10), DateTimeKind.Unspecified, row[7]);
        AssertDateTime(DateTime.MaxValue.AddTicks(-9), DateTimeKind.Utc, row[8]);
        var square = Assert.IsType<DateTime[,]>(row[9]);
        Assert.Equal(DateTime.MaxValue, square[0, 0]);
        Assert.Equal(new DateTime(2024, 1, 2, 3, 4, 5), square[0, 1]);
        Assert.Equal(new DateTime(2000, 1, 1), square[1, 0]);
        Assert.Equal(new DateTime(1999, 12, 31, 23, 59, 59, 500), square[1, 1]);
    }

    private static void AssertDateTime(DateTime expected, DateTimeKind kind, object? actual)
    {
        var value = Assert.IsType<DateTime>(actual);
        Assert.Equal(expected.Ticks, value.Ticks);
        Assert.Equal(kind, value.Kind);
    }
}
