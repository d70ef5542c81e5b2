namespace Aequor.Engine.Tests;

/// <summary>
/// date, time and the network types read as a script expects them and never lose a value: date a DateTime at
/// midnight, time a TimeSpan, timetz, inet, cidr and the MAC addresses the server's own text (an IPAddress
/// dropped the /24 of 1.2.3.4/24), as psql shows it.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class ClientDateAndAddressTests(PostgresFixture db)
{
    private AequorClient NewClient() => new(new AequorClientOptions
    {
        ConnectionString = db.AppConnectionString,
        CoordinationSecret = ClientTestKit.Secret,
        ServiceName = "date-address-tests",
        Reaper = false,
    });

    [Fact]
    public async Task Date_is_a_datetime_at_midnight_and_time_a_timespan()
    {
        await using var client = NewClient();
        var row = await ClientTestKit.ReadRowAsync(client, """
            SELECT '2024-01-02'::date, '10:11:12.5'::time, ARRAY['2024-01-02', NULL]::date[], ARRAY['2024-01-02']::date[],
                   ARRAY['00:00:01'::time, '23:59:59.999999'], NULL::date, NULL::time, '9999-12-31'::date, '0001-01-01'::date,
                   ARRAY[['2024-01-02', '2024-01-03'], ['2024-01-04', '2024-01-05']]::date[]
            """);
        var date = Assert.IsType<DateTime>(row[0]);
        Assert.Equal(new DateTime(2024, 1, 2), date);
        Assert.Equal(DateTimeKind.Unspecified, date.Kind);
        Assert.Equal(new TimeSpan(0, 10, 11, 12, 500), Assert.IsType<TimeSpan>(row[1]));
        Assert.Equal(new DateTime?[] { new DateTime(2024, 1, 2), null }, Assert.IsType<DateTime?[]>(row[2]));
        Assert.Equal(new[] { new DateTime(2024, 1, 2) }, Assert.IsType<DateTime[]>(row[3]));
        Assert.Equal(new[] { TimeSpan.FromSeconds(1), new TimeSpan(TimeSpan.TicksPerDay - 10) }, Assert.IsType<TimeSpan[]>(row[4]));
        Assert.Null(row[5]);
        Assert.Null(row[6]);
        Assert.Equal(new DateTime(9999, 12, 31), Assert.IsType<DateTime>(row[7]));
        Assert.Equal(new DateTime(1, 1, 1), Assert.IsType<DateTime>(row[8]));
        var square = Assert.IsType<DateTime[,]>(row[9]);
        Assert.Equal(new DateTime(2024, 1, 5), square[1, 1]);
    }

    /// <summary>±infinity are DateTime's ends, as for timestamp: 9999-12-31 no longer reads the same as infinity.</summary>
    [Fact]
    public async Task Infinite_dates_are_datetimes_ends()
    {
        await using var client = NewClient();
        var row = await ClientTestKit.ReadRowAsync(client, "SELECT 'infinity'::date, '-infinity'::date, ARRAY['infinity', '2024-01-02']::date[]");
        Assert.Equal(DateTime.MaxValue, Assert.IsType<DateTime>(row[0]));
        Assert.Equal(DateTime.MinValue, Assert.IsType<DateTime>(row[1]));
        Assert.Equal(new[] { DateTime.MaxValue, new DateTime(2024, 1, 2) }, Assert.IsType<DateTime[]>(row[2]));
    }

    [Theory]
    [InlineData("'1.2.3.4/24'::inet")]
    [InlineData("'1.2.3.4'::inet")]
    [InlineData("'10.0.0.0/8'::cidr")]
    [InlineData("'10.1.2.3/32'::cidr")]
    [InlineData("'::1'::inet")]
    [InlineData("'2001:db8::1/64'::inet")]
    [InlineData("'2001:db8::/32'::cidr")]
    [InlineData("'2001:db8:0:0:1:0:0:1'::inet")]
    [InlineData("'::ffff:1.2.3.4'::inet")]
    [InlineData("'fe80::1:2:3:4/10'::inet")]
    [InlineData("'08:00:2b:01:02:03'::macaddr")]
    [InlineData("'08:00:2b:01:02:03:04:05'::macaddr8")]
    [InlineData("'10:11:12+02'::timetz")]
    [InlineData("'10:11:12.25-03:30'::timetz")]
    [InlineData("'00:00:00+00'::timetz")]
    public async Task Timetz_and_network_values_read_as_the_servers_text(string expression)
    {
        await using var client = NewClient();
        // format's %s is the type's output function, as psql shows it; inet's ::text adds a /32 the output omits.
        var row = await ClientTestKit.ReadRowAsync(client, $"SELECT {expression}, format('%s', {expression}), ARRAY[{expression}, NULL]");
        Assert.Equal(Assert.IsType<string>(row[1]), Assert.IsType<string>(row[0]));
        Assert.Equal(new[] { (string)row[1]!, null }, Assert.IsType<string?[]>(row[2]));
    }

    /// <summary>
    /// timetz values Npgsql's DateTimeOffset cannot hold, in a row, arrays of one and two dimensions and a scalar: 24:00:00
    /// came back as 00:00:00; an offset with seconds, or of more than 14 hours, failed (.NET's "Offset must be specified
    /// in whole minutes", or naming the column and the cast).
    /// </summary>
    [Theory]
    [InlineData("'24:00:00+02'::timetz")]
    [InlineData("'24:00:00-00:00:30'::timetz")]
    [InlineData("'12:00:00+05:30:15'::timetz")]
    [InlineData("'23:59:59.999999-15:59'::timetz")]
    [InlineData("'00:00:00.5+15:59:59'::timetz")]
    public async Task Timetz_beyond_DateTimeOffset_reads_as_the_servers_text(string expression)
    {
        await using var client = NewClient();
        var row = await ClientTestKit.ReadRowAsync(client, $"SELECT {expression}, format('%s', {expression}), ARRAY[{expression}, NULL], ARRAY[[{expression}], ['10:00+01'::timetz]]");
        var text = Assert.IsType<string>(row[1]);
        Assert.Equal(text, Assert.IsType<string>(row[0]));
        Assert.Equal(new[] { text, null }, Assert.IsType<string?[]>(row[2]));
        Assert.Equal(new[,] { { text }, { "10:00:00+01" } }, Assert.IsType<string[,]>(row[3]));
        Assert.Equal(text, await client.ExecuteScalarAsync(new AequorStatement($"SELECT {expression}"), CancellationToken.None));
    }

    /// <summary>
    /// inet is read once, with its prefix length: in every shape a column can take, over several rows (the reading is
    /// chosen once per result set), as the server's text for it.
    /// </summary>
    [Fact]
    public async Task Inet_in_every_shape_reads_as_the_servers_text()
    {
        await using var client = NewClient();
        await using var reader = await client.ExecuteReaderAsync(new AequorStatement("""
            SELECT i, format('%s', i), a, ARRAY(SELECT format('%s', e) FROM unnest(a) e) /* a NULL as '' */, m, format('%s', m), '10.0.0.0/8'::cidr,
                   ARRAY['10.0.0.0/8', NULL]::cidr[]
            FROM (VALUES (1, '10.0.0.1/24'::inet, ARRAY['10.0.0.1/24', '10.0.0.2', NULL, '::1/64']::inet[], '{{1.2.3.4/24,NULL},{::1,10.0.0.0/8}}'::inet[]),
                         (2, '10.0.0.2/32', ARRAY['2001:db8::1/128']::inet[], '{1.2.3.4}'),
                         (3, NULL, NULL, NULL),
                         (4, '::ffff:1.2.3.4/120', '{}', '{{1.2.3.4}}')) AS v(n, i, a, m)
            ORDER BY n
            """), CancellationToken.None);
        var rows = new List<object?[]>();
        while (await reader.ReadAsync(CancellationToken.None))
        {
            rows.Add(Enumerable.Range(0, reader.FieldCount).Select(reader.GetValue).ToArray());
        }

        Assert.Equal(4, rows.Count);
        Assert.Equal(["10.0.0.1/24", "10.0.0.2", "::ffff:1.2.3.4/120"], new[] { rows[0][0], rows[1][0], rows[3][0] });
        foreach (var row in rows.Where(r => r[0] is not null))
        {
            Assert.Equal(row[1], row[0]);
        }

        Assert.Equal(new[] { "10.0.0.1/24", "10.0.0.2", null, "::1/64" }, Assert.IsType<string?[]>(rows[0][2]));
        Assert.Equal(new[] { "2001:db8::1" }, Assert.IsType<string?[]>(rows[1][2]));
        Assert.Empty(Assert.IsType<string?[]>(rows[3][2]));
        Assert.All(rows.Where(r => r[2] is not null), r => Assert.Equal(((string?[])r[3]!).Select(t => t == string.Empty ? null : t), (string?[])r[2]!));
        Assert.All([rows[2][0], rows[2][2], rows[2][4]], Assert.Null);

        var square = Assert.IsType<string?[,]>(rows[0][4]);
        Assert.Equal(new[,] { { "1.2.3.4/24", null }, { "::1", "10.0.0.0/8" } }, square);
        Assert.Equal(new[] { "1.2.3.4" }, Assert.IsType<string?[]>(rows[1][4]));
        Assert.Equal(new[,] { { "1.2.3.4" } }, Assert.IsType<string?[,]>(rows[3][4]));
        Assert.Equal("10.0.0.0/8", rows[0][6]);
        Assert.Equal(new[] { "10.0.0.0/8", null }, Assert.IsType<string?[]>(rows[0][7]));
    }

    /// <summary>An IPAddress binds to an inet; text compares once cast (the server has no inet = text).</summary>
    [Fact]
    public async Task An_address_binds_and_text_compares_once_cast()
    {
        await using var client = NewClient();
        var statement = new AequorStatement("SELECT '1.2.3.4'::inet = $1, '1.2.3.4/24'::inet = $2::inet, '2024-01-02'::date = $3")
        {
            PositionalParameters = [System.Net.IPAddress.Parse("1.2.3.4"), "1.2.3.4/24", new DateTime(2024, 1, 2)],
        };
        await using var reader = await client.ExecuteReaderAsync(statement, CancellationToken.None);
        Assert.True(await reader.ReadAsync(CancellationToken.None));
        Assert.All(Enumerable.Range(0, 3), i => Assert.Equal(true, reader.GetValue(i)));
    }
}
