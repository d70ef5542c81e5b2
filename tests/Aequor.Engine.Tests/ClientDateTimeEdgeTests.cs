namespace Aequor.Engine.Tests;

/// <summary>
/// Dates, times and intervals at and beyond the ends of .NET's types: never a wrong value. What .NET cannot hold
/// is the server's text (an interval, a date or timestamp) or an error naming the column and the cast; infinity is the
/// type's end.
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
    /// Beyond DateTime and DateOnly (the server's dates go from 4713 BC to 5874897 AD): the server's text, a
    /// timestamptz in UTC. 294276 AD used to come back as a date in 1998 (the ticks wrapped); then, and for a date,
    /// the whole result failed on such a value, naming the column and the cast.
    /// </summary>
    [Theory]
    [InlineData("'294276-12-31 23:59:59.999999'::timestamp", "294276-12-31 23:59:59.999999")]
    [InlineData("'294276-01-01'::timestamptz", "294276-01-01 00:00:00+00")]
    [InlineData("'20000-01-01 01:02:03.5'::timestamp", "20000-01-01 01:02:03.5")]
    [InlineData("'10000-01-01'::timestamp", "10000-01-01 00:00:00")]
    [InlineData("'4713-01-01 BC'::timestamp", "4713-01-01 00:00:00 BC")]
    [InlineData("'0001-12-31 23:59:59.000001 BC'::timestamp", "0001-12-31 23:59:59.000001 BC")]
    [InlineData("'4713-01-01 00:00:00+00 BC'::timestamptz", "4713-01-01 00:00:00+00 BC")]
    [InlineData("'10000-01-01'::date", "10000-01-01")]
    [InlineData("'5874897-12-31'::date", "5874897-12-31")]
    [InlineData("'4713-01-01 BC'::date", "4713-01-01 BC")]
    [InlineData("'0001-01-01 BC'::date", "0001-01-01 BC")]
    [InlineData("'0005-02-29 BC'::date", "0005-02-29 BC")]
    [InlineData("'0001-02-29 BC'::date", "0001-02-29 BC")]
    public async Task A_date_or_timestamp_beyond_DateTime_reads_as_the_servers_text(string expression, string text)
    {
        await using var client = NewClient();
        var row = await ClientTestKit.ReadRowAsync(client, $"SELECT {expression} AS v, ARRAY[{expression}, NULL, 'infinity'] AS a, '2024-01-02'::date AS d");
        Assert.Equal(text, Assert.IsType<string>(row[0]));
        Assert.Equal(new[] { text, null, "infinity" }, Assert.IsType<string?[]>(row[1]));

        // Only the value (and its array) that DateTime cannot hold: the rest of the row reads as ever.
        Assert.Equal(new DateTime(2024, 1, 2), Assert.IsType<DateTime>(row[2]));

        // A scalar (-As Scalar) alike: 294276 AD came back from it as a DateTime in 1998.
        Assert.Equal(text, Assert.IsType<string>(await client.ExecuteScalarAsync(new AequorStatement($"SELECT {expression}"), CancellationToken.None)));
    }

    /// <summary>Every date the server has, a sample across its whole range, against the server's own text.</summary>
    [Fact]
    public async Task Dates_and_timestamps_across_the_servers_range_read_as_its_text_when_beyond_DateTime()
    {
        await using var client = NewClient();
        var random = new Random(20261129);

        // Days from 2000-01-01: of 4714-11-24 BC (the first date and timestamp) to 5874897-12-31 (the last date),
        // or to about 292000 AD for timestamps (the last is in 294276), plus microseconds within the day.
        var days = Enumerable.Range(0, 2000).Select(_ => random.Next(-2_451_545, 2_145_031_948 + 1)).ToArray();
        var timestampDays = Enumerable.Range(0, 2000).Select(_ => random.Next(-2_451_545, 106_000_000)).ToArray();
        var micros = Enumerable.Range(0, 2000).Select(_ => random.NextInt64(0, 86_400_000_000)).ToArray();
        await using var reader = await client.ExecuteReaderAsync(
            new AequorStatement("""
                SELECT d, t, tz, d::text, t::text, (tz AT TIME ZONE 'UTC')::text
                FROM (SELECT '2000-01-01'::date + n AS d,
                             ('2000-01-01'::date + td)::timestamp + m * interval '1 microsecond' AS t,
                             (('2000-01-01'::date + td)::timestamp + m * interval '1 microsecond') AT TIME ZONE 'UTC' AS tz
                      FROM unnest($1::int[], $2::int[], $3::int8[]) AS u(n, td, m)) AS x
                """) { PositionalParameters = [days, timestampDays, micros] },
            CancellationToken.None);
        var beyond = 0;
        while (await reader.ReadAsync(CancellationToken.None))
        {
            for (var i = 0; i < 3; i++)
            {
                var value = reader.GetValue(i);
                var expected = (string)reader.GetValue(i + 3)!;
                if (i == 2)
                {
                    // The UTC timestamp's text with the zone the server writes before " BC".
                    expected = expected.EndsWith(" BC", StringComparison.Ordinal) ? expected[..^3] + "+00 BC" : expected + "+00";
                }

                if (value is string text)
                {
                    beyond++;
                    Assert.Equal(expected, text);
                }
                else
                {
                    var date = Assert.IsType<DateTime>(value);
                    Assert.StartsWith(date.ToString("yyyy-MM-dd", System.Globalization.CultureInfo.InvariantCulture), expected, StringComparison.Ordinal);
                }
            }
        }

        // Nearly all of the sample lies beyond year 9999 or before year 1.
        Assert.True(beyond > 5000, $"{beyond} values read as text");
    }

    /// <summary>24:00:00, which TimeOnly refuses, is a day's TimeSpan; an array of more dimensions still names the cast.</summary>
    [Fact]
    public async Task Midnight_at_the_end_of_the_day_is_a_TimeSpan_and_a_deeper_array_beyond_DateTime_names_the_cast()
    {
        await using var client = NewClient();
        var row = await ClientTestKit.ReadRowAsync(client, "SELECT '24:00'::time, ARRAY['24:00'::time, '01:00']");
        Assert.Equal(TimeSpan.FromHours(24), Assert.IsType<TimeSpan>(row[0]));
        Assert.Equal(new TimeSpan?[] { TimeSpan.FromHours(24), TimeSpan.FromHours(1) }, Assert.IsType<TimeSpan?[]>(row[1]));

        var ex = await Assert.ThrowsAsync<InvalidCastException>(() => ClientTestKit.ReadRowAsync(client, "SELECT ARRAY[['10000-01-01'::date]] AS v"));
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
