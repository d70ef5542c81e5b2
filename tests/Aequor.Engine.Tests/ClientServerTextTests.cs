namespace Aequor.Engine.Tests;

/// <summary>
/// Types without a plain .NET equivalent (ranges, multiranges, geometric types, text search, pg_lsn) read as
/// exactly the server's text for them, what <c>::text</c> gives; those whose text the client cannot know fail
/// with an error naming the column and the cast.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class ClientServerTextTests(PostgresFixture db)
{
    private AequorClient NewClient() => new(new AequorClientOptions
    {
        ConnectionString = db.AppConnectionString,
        CoordinationSecret = ClientTestKit.Secret,
        ServiceName = "server-text-tests",
        Reaper = false,
    });

    [Theory]
    [InlineData("int4range(1, 5)")]
    [InlineData("'(,5)'::int4range")]
    [InlineData("'[-3,)'::int4range")]
    [InlineData("'empty'::int4range")]
    [InlineData("int8range(-9223372036854775807, 9223372036854775807)")]
    [InlineData("'[1.50,2.25]'::numrange")]
    [InlineData("'(-0.001,)'::numrange")]
    [InlineData("daterange('2024-01-02', '2024-03-04')")]
    [InlineData("'(,2024-01-01]'::daterange")]
    [InlineData("'{[1,3), [5,7)}'::int4multirange")]
    [InlineData("'{}'::int4multirange")]
    [InlineData("'{[2024-01-01,2024-02-01)}'::datemultirange")]
    [InlineData("point(1, 2)")]
    [InlineData("point(0.1, -1e20)")]
    [InlineData("point(1.5e-7, 123456789012345.6)")]
    [InlineData("point(1e15, 0.0001)")]
    [InlineData("point('NaN', '-Infinity')")]
    [InlineData("point(-0.0, 1e-300)")]
    [InlineData("point(123456789012345678, -0.00012345)")]
    [InlineData("point(0.00001, 99999999999999.9)")]
    [InlineData("point(1.7976931348623157e308, 5e-324)")]
    [InlineData("point(100, 1234.5e10)")]
    [InlineData("'[(1,2),(3.5,-4)]'::lseg")]
    [InlineData("'((3,4),(1,2))'::box")]
    [InlineData("'[(1,2),(3,4),(5,6)]'::path")]
    [InlineData("'((1,2),(3,4),(5,6))'::path")]
    [InlineData("'((0,0),(1,1),(1,0))'::polygon")]
    [InlineData("'{1,-1,0.5}'::line")]
    [InlineData("'<(1,2),3.25>'::circle")]
    [InlineData("'1 2'::tsvector")]
    [InlineData("$$a:1A fat:2B,4C cat:5D it's \\\\x 'a b'$$::tsvector")]
    [InlineData("'0/1'::pg_lsn")]
    [InlineData("'16/B374D848'::pg_lsn")]
    [InlineData("'(0,1)'::tid")]
    [InlineData("'(4294967295,65535)'::tid")]
    public async Task Values_without_a_dotnet_type_read_as_the_servers_text(string expression)
    {
        await using var client = NewClient();
        var row = await ClientTestKit.ReadRowAsync(client, $"SELECT {expression}, ({expression})::text");
        Assert.Equal(Assert.IsType<string>(row[1]), Assert.IsType<string>(row[0]));
    }

    [Fact]
    public async Task Arrays_of_them_read_as_arrays_of_the_servers_text_with_null_in_place()
    {
        await using var client = NewClient();
        var row = await ClientTestKit.ReadRowAsync(client, "SELECT ARRAY[int4range(1, 2), NULL, 'empty'], ARRAY[point(1, 2)]");
        Assert.Equal(new[] { "[1,2)", null, "empty" }, Assert.IsType<string?[]>(row[0]));
        Assert.Equal(new[] { "(1,2)" }, Assert.IsType<string?[]>(row[1]));
    }

    /// <summary>
    /// Timestamp ranges: the server's text with DateStyle ISO, a timestamptz bound in UTC (as a timestamptz reads),
    /// in any year the server has (Npgsql's DateTime wraps far years round); a multirange and an array too.
    /// </summary>
    [Theory]
    [InlineData("tstzrange('2024-01-01 00:00:00+00', '2024-01-02 10:30:00.25+00')", "[\"2024-01-01 00:00:00+00\",\"2024-01-02 10:30:00.25+00\")")]
    [InlineData("tsrange('2024-01-01', '2024-01-02', '(]')", "(\"2024-01-01 00:00:00\",\"2024-01-02 00:00:00\"]")]
    [InlineData("tsrange(NULL, '2024-01-02')", "(,\"2024-01-02 00:00:00\")")]
    [InlineData("tstzrange('2024-01-01 00:00:00+00', NULL, '[]')", "[\"2024-01-01 00:00:00+00\",)")]
    [InlineData("'empty'::tstzrange", "empty")]
    [InlineData("tsrange('-infinity', 'infinity')", "[-infinity,infinity)")]
    [InlineData("tsrange('4713-01-01 BC', '294276-01-01')", "[\"4713-01-01 00:00:00 BC\",\"294276-01-01 00:00:00\")")]
    [InlineData("'{[2024-01-01 00:00:00+00,2024-01-02 00:00:00+00), [2024-02-01 00:00:00+00,)}'::tstzmultirange", "{[\"2024-01-01 00:00:00+00\",\"2024-01-02 00:00:00+00\"),[\"2024-02-01 00:00:00+00\",)}")]
    [InlineData("'{}'::tsmultirange", "{}")]
    public async Task Timestamp_ranges_read_as_the_servers_text_in_utc(string expression, string text)
    {
        await using var client = NewClient();
        var multirange = expression.Contains("multirange", StringComparison.Ordinal);
        var row = await ClientTestKit.ReadRowAsync(client, $"SELECT {expression}, {(multirange ? "NULL" : $"ARRAY[{expression}, NULL]")}");
        Assert.Equal(text, Assert.IsType<string>(row[0]));
        if (!multirange)
        {
            Assert.Equal(new[] { text, null }, Assert.IsType<string?[]>(row[1]));
        }
    }

    /// <summary>regtype and regconfig are oids to Npgsql: their number, as the help says (the name needs ::text).</summary>
    [Fact]
    public async Task Regtype_and_regconfig_read_as_their_oid()
    {
        await using var client = NewClient();
        var row = await ClientTestKit.ReadRowAsync(client, "SELECT 'int4'::regtype, 'english'::regconfig, 'english'::regconfig::oid");
        Assert.Equal(23u, Assert.IsType<uint>(row[0]));
        Assert.Equal(Assert.IsType<uint>(row[2]), Assert.IsType<uint>(row[1]));
    }

    /// <summary>An oid alias prints a name the client does not have: the error says to cast.</summary>
    [Theory]
    [InlineData("'pg_class'::regclass")]
    [InlineData("'now'::regproc")]
    [InlineData("current_user::regrole")]
    [InlineData("'pg_catalog'::regnamespace")]
    public async Task Values_whose_text_the_client_cannot_know_fail_naming_the_column_and_the_cast(string expression)
    {
        await using var client = NewClient();
        var ex = await Assert.ThrowsAsync<InvalidCastException>(() => ClientTestKit.ReadRowAsync(client, $"SELECT {expression} AS v"));
        Assert.Contains("'v'", ex.Message, StringComparison.Ordinal);
        Assert.Contains("v::text", ex.Message, StringComparison.Ordinal);
    }
}
