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

    /// <summary>An oid alias the statement names (a cast, a to_reg… call) reads as its name, as psql shows it.</summary>
    [Theory]
    [InlineData("'pg_class'::regclass", "pg_class")]
    [InlineData("'int4'::regtype", "integer")]
    [InlineData("'now'::regproc", "now")]
    [InlineData("'pg_catalog'::regnamespace", "pg_catalog")]
    [InlineData("'english'::regconfig", "english")]
    [InlineData("to_regclass('pg_catalog.pg_proc')", "pg_proc")]
    [InlineData("ARRAY['int4'::regtype, 'text'::regtype]", "{integer,text}")]
    [InlineData("'a & b'::tsquery", "'a' & 'b'")]
    public async Task An_oid_alias_or_text_only_type_the_statement_names_reads_as_the_servers_text(string expression, string text)
    {
        await using var client = NewClient();
        var row = await ClientTestKit.ReadRowAsync(client, $"SELECT {expression} AS v, 1 AS n");
        Assert.Equal(text, Assert.IsType<string>(row[0]));
        Assert.Equal(1, Assert.IsType<int>(row[1]));
    }

    /// <summary>
    /// The catalogues read whole: aclitem[] (relacl, datacl), which the server cannot send in binary, regproc, pg_node_tree and
    /// anyarray come as the server's text; every other column as usual.
    /// </summary>
    [Theory]
    [InlineData("SELECT * FROM pg_class", "relacl")]
    [InlineData("SELECT * FROM pg_catalog.pg_database", "datacl")]
    [InlineData("SELECT * FROM pg_namespace", "nspacl")]
    [InlineData("SELECT * FROM pg_proc", "proacl")]
    [InlineData("SELECT * FROM pg_type", "typsubscript")]
    [InlineData("SELECT * FROM pg_constraint", "conbin")]
    [InlineData("SELECT * FROM pg_index", "indexprs")]
    [InlineData("SELECT * FROM pg_stats", "most_common_vals")]
    [InlineData("SELECT * FROM pg_attribute", "attacl")]
    [InlineData("SELECT * FROM pg_am", "amhandler")]
    public async Task A_catalogue_reads_whole_with_its_text_only_columns_as_text(string select, string column)
    {
        await using var client = NewClient();
        // Statistics of a table of its own, so pg_stats has sample values (anyarray) whatever else the server analysed.
        await ClientTestKit.RunAsync(client, "CREATE TEMP TABLE catalogue_sampled AS SELECT g % 3 AS x FROM generate_series(1, 300) g");
        await ClientTestKit.RunAsync(client, "ANALYZE catalogue_sampled");
        await using var reader = await client.ExecuteReaderAsync(new AequorStatement(select), CancellationToken.None);
        var ordinal = Enumerable.Range(0, reader.FieldCount).Single(i => reader.GetName(i) == column);
        var rows = 0;
        var texts = 0;
        while (await reader.ReadAsync(CancellationToken.None))
        {
            rows++;
            for (var i = 0; i < reader.FieldCount; i++)
            {
                _ = reader.GetValue(i);
            }

            if (reader.GetValue(ordinal) is { } value)
            {
                Assert.IsType<string>(value);
                texts++;
            }
        }

        Assert.True(rows > 0, $"{select} read no rows");
        Assert.True(texts > 0 || column is "proacl" or "attacl" or "conbin" or "indexprs", $"{select}: no {column} value read");
    }

    [Fact]
    public async Task A_relacl_reads_as_the_servers_text_and_its_row_as_usual()
    {
        await using var client = NewClient();
        var row = await ClientTestKit.ReadRowAsync(client, "SELECT relname, relacl, relnatts, relacl::text AS expected FROM pg_class WHERE relacl IS NOT NULL ORDER BY oid LIMIT 1");
        Assert.IsType<string>(row[0]);
        Assert.Equal(Assert.IsType<string>(row[3]), Assert.IsType<string>(row[1]));
        Assert.IsType<short>(row[2]);
    }

    /// <summary>
    /// A column the statement does not name (a table's regclass column): it is not described first, so an oid alias
    /// fails naming the cast (regtype reads as its oid, Npgsql's mapping); a NULL of it reads as null all the same.
    /// </summary>
    [Fact]
    public async Task An_oid_alias_in_a_column_the_statement_does_not_name_fails_naming_the_cast_and_its_null_reads_as_null()
    {
        await using var client = NewClient();
        await ClientTestKit.RunAsync(client, "CREATE TEMP TABLE alias_holder (r regclass, t regtype)");
        await ClientTestKit.RunAsync(client, "INSERT INTO alias_holder VALUES (NULL, NULL), (16, 23)");
        var nulls = await ClientTestKit.ReadRowAsync(client, "SELECT r, t FROM alias_holder WHERE r IS NULL");
        Assert.Null(nulls[0]);
        Assert.Null(nulls[1]);
        var ex = await Assert.ThrowsAsync<InvalidCastException>(() => ClientTestKit.ReadRowAsync(client, "SELECT r AS v FROM alias_holder WHERE r IS NOT NULL"));
        Assert.Contains("'v'", ex.Message, StringComparison.Ordinal);
        Assert.Contains("v::text", ex.Message, StringComparison.Ordinal);
        Assert.Equal(23u, Assert.IsType<uint>((await ClientTestKit.ReadRowAsync(client, "SELECT t FROM alias_holder WHERE t IS NOT NULL"))[0]));
    }

    /// <summary>
    /// anyarray (pg_stats' sample values) is built in, not a type created since the session loaded its types: in a text of
    /// several statements, which is not described first, the error says to cast, and no more.
    /// </summary>
    [Fact]
    public async Task An_anyarray_not_described_first_fails_naming_the_cast_not_a_new_type()
    {
        await using var client = NewClient();
        await ClientTestKit.RunAsync(client, "CREATE TEMP TABLE sampled AS SELECT g % 3 AS x FROM generate_series(1, 300) g");
        await ClientTestKit.RunAsync(client, "ANALYZE sampled");
        var ex = await Assert.ThrowsAsync<InvalidCastException>(() => ClientTestKit.ReadRowAsync(client,
            "SELECT most_common_vals AS v FROM pg_stats WHERE tablename = 'sampled'; SELECT 1"));
        Assert.Contains("v::text", ex.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("created after", ex.Message, StringComparison.Ordinal);
        Assert.Equal("{0,1,2}", (await ClientTestKit.ReadRowAsync(client, "SELECT most_common_vals FROM pg_stats WHERE tablename = 'sampled'"))[0]);
    }

    /// <summary>Values decimal[] or DateOnly cannot hold come as the server's text, exactly what ::text gives, in place of an error.</summary>
    [Theory]
    [InlineData("'[2020-01-01,infinity)'::daterange")]
    [InlineData("'[-infinity,2020-01-01]'::daterange")]
    [InlineData("'[0044-03-15 BC,2020-01-01)'::daterange")]
    [InlineData("'{[2020-01-01,infinity), [1999-01-01,1999-02-01)}'::datemultirange")]
    public async Task A_date_range_bound_DateOnly_cannot_hold_reads_as_the_servers_text(string expression)
    {
        await using var client = NewClient();
        var row = await ClientTestKit.ReadRowAsync(client, $"SELECT {expression}, ({expression})::text");
        Assert.Equal(Assert.IsType<string>(row[1]), Assert.IsType<string>(row[0]));
    }

    [Fact]
    public async Task An_array_of_date_ranges_with_infinity_reads_as_their_texts()
    {
        await using var client = NewClient();
        var row = await ClientTestKit.ReadRowAsync(client, "SELECT ARRAY['[2020-01-01,infinity)'::daterange, NULL, '[2020-01-01,2020-01-03)']");
        Assert.Equal(new[] { "[2020-01-01,infinity)", null, "[2020-01-01,2020-01-03)" }, Assert.IsType<string?[]>(row[0]));
    }

    [Theory]
    [InlineData("'{1.5,NaN,NULL}'::numeric[]", new[] { "1.5", "NaN", null })]
    [InlineData("ARRAY['Infinity'::numeric, '-Infinity', 0.10]", new[] { "Infinity", "-Infinity", "0.10" })]
    [InlineData("ARRAY[1e40::numeric, 2]", new[] { "10000000000000000000000000000000000000000", "2" })]
    public async Task A_numeric_array_decimal_cannot_hold_reads_as_the_servers_text_for_each(string expression, string?[] texts)
    {
        await using var client = NewClient();
        var row = await ClientTestKit.ReadRowAsync(client, $"SELECT {expression}, {expression}::text, '{{1.5,2}}'::numeric[]");
        Assert.Equal(texts, Assert.IsType<string?[]>(row[0]));
        Assert.Equal(Assert.IsType<string>(row[1]), "{" + string.Join(',', texts.Select(t => t ?? "NULL")) + "}");
        Assert.Equal(new[] { 1.5m, 2m }, Assert.IsType<decimal[]>(row[2]));
    }

    [Fact]
    public async Task A_numeric_array_of_two_dimensions_holding_NaN_fails_naming_the_cast()
    {
        await using var client = NewClient();
        var ex = await Assert.ThrowsAsync<InvalidCastException>(() => ClientTestKit.ReadRowAsync(client, "SELECT '{{1,NaN}}'::numeric[] AS v"));
        Assert.Contains("v::text", ex.Message, StringComparison.Ordinal);
    }
}
