using System.Net;

namespace Aequor.Engine.Tests;

/// <summary>
/// What a row reads as through <see cref="AequorReader"/>, and what binds as a parameter, for builtin, array and
/// user-defined types. The process's connections share Npgsql's type catalogue (<see cref="SharedDataSources"/>);
/// a connect that finds the catalogue changed reloads it, which the last test proves.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class ClientTypeTests(PostgresFixture db)
{
    private const string Uuid = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11";

    private AequorClient NewClient() => new(new AequorClientOptions
    {
        ConnectionString = db.AppConnectionString,
        CoordinationSecret = ClientTestKit.Secret,
        ServiceName = "type-tests",
        Reaper = false,
    });

    private Task CreateUserTypesAsync() => db.ScalarAsync<int>("""
        DROP TYPE IF EXISTS typetest_mood, typetest_pair, typetest_posint, typetest_label CASCADE;
        CREATE TYPE typetest_mood AS ENUM ('sad', 'happy');
        CREATE TYPE typetest_pair AS (n int, s text);
        CREATE DOMAIN typetest_posint AS int CHECK (VALUE > 0);
        CREATE DOMAIN typetest_label AS text;
        SELECT 1
        """);

    private static async Task<object?[]> ReadRowAsync(AequorClient client, string select, params object?[] parameters)
    {
        await using var reader = await client.ExecuteReaderAsync(new AequorStatement(select) { PositionalParameters = parameters }, CancellationToken.None);
        Assert.True(await reader.ReadAsync(CancellationToken.None));
        var row = new object?[reader.FieldCount];
        for (var i = 0; i < row.Length; i++)
        {
            row[i] = reader.GetValue(i);
        }

        return row;
    }

    [Fact]
    public async Task Builtin_array_and_user_defined_types_read_as_plain_values_or_text()
    {
        await CreateUserTypesAsync();
        await using var client = NewClient();
        var row = await ReadRowAsync(client, $"""
            SELECT 1::int, 2::bigint, true, 2.5::float8, 't'::text, '\x0102'::bytea, 12.34::numeric,
                   '{"{"}"a":1{"}"}'::json, '{"{"}"a":1{"}"}'::jsonb, '{Uuid}'::uuid,
                   '2024-01-02 03:04:05'::timestamp, '2024-01-02 03:04:05+00'::timestamptz, '2024-01-02'::date,
                   '1 day 2 hours'::interval, '10.0.0.1'::inet, 12.5::money,
                   ARRAY[1, 2], ARRAY['a', 'b'], ARRAY['{"{"}{"}"}'::jsonb], ARRAY['{Uuid}'::uuid],
                   'happy'::typetest_mood, ARRAY['sad', 'happy']::typetest_mood[],
                   5::typetest_posint, 'lbl'::typetest_label, ARRAY[5::typetest_posint], '<a/>'::xml
            """);

        object?[] expected =
        [
            1, 2L, true, 2.5d, "t", new byte[] { 1, 2 }, 12.34m,
            """{"a":1}""", """{"a": 1}""", Guid.Parse(Uuid),
            new DateTime(2024, 1, 2, 3, 4, 5, DateTimeKind.Unspecified), new DateTime(2024, 1, 2, 3, 4, 5, DateTimeKind.Utc), new DateTime(2024, 1, 2),
            new TimeSpan(1, 2, 0, 0), "10.0.0.1", 12.5m,
            new[] { 1, 2 }, new[] { "a", "b" }, new[] { "{}" }, new[] { Guid.Parse(Uuid) },
            "happy", new[] { "sad", "happy" },
            5, "lbl", new[] { 5 }, "<a/>",
        ];
        Assert.Equal(expected.Length, row.Length);
        for (var i = 0; i < expected.Length; i++)
        {
            Assert.Equal(expected[i]!.GetType(), row[i]?.GetType());
            Assert.Equal(expected[i], row[i]);
        }

        Assert.Equal(DateTimeKind.Utc, ((DateTime)row[11]!).Kind);
    }

    /// <summary>
    /// A numeric beyond decimal's range or precision and an interval with months have no .NET reading: they come
    /// back as the server's own text for them (rendered by the engine, since they arrived in binary).
    /// </summary>
    [Theory]
    [InlineData("numeric", new[] { "1e40", "-1e40", "123456789012345678901234567890.123456789", "0.000000000000000000000000000000123", "-0.5e-35", "NaN", "10000", "0.0001000" })]
    [InlineData("interval", new[] { "1 mon", "1 year 2 mons 3 days 04:05:06.789", "-1 year -2 mons +3 days -04:05:06", "1 mon -1 days", "-1 mon", "2 years", "1 mon 00:00:00.000001", "6 mons 5 days -00:00:01", "-3 mons -00:00:00.5" })]
    public async Task Values_without_a_dotnet_reading_read_as_the_servers_text(string type, string[] literals)
    {
        await using var client = NewClient();
        foreach (var literal in literals)
        {
            var row = await ReadRowAsync(client, $"SELECT '{literal}'::{type}, '{literal}'::{type}::text");
            if (type == "numeric" && row[0] is not string)
            {
                // Within decimal's range (10000, 0.0001000): a plain value, equal to the server's.
                Assert.Equal(decimal.Parse((string)row[1]!, System.Globalization.CultureInfo.InvariantCulture), Assert.IsType<decimal>(row[0]));
                continue;
            }

            var text = Assert.IsType<string>(row[0]);

            Assert.Equal(row[1], text);
        }
    }

    [Fact]
    public async Task The_text_rendering_is_used_only_where_there_is_no_dotnet_reading()
    {
        await using var client = NewClient();
        var row = await ReadRowAsync(client, """
            SELECT 1e40::numeric, 12.5::numeric, '1 mon'::interval, '1 day 2 hours'::interval, '-1 mon'::interval,
                   '-1 day -00:00:01.5'::interval, ARRAY['1 day', '-2 hours']::interval[], ARRAY['1 mon', '-1 mon 2 days']::interval[]
            """);
        Assert.Equal("10000000000000000000000000000000000000000", row[0]);
        Assert.Equal(12.5m, row[1]);
        Assert.Equal("1 mon", row[2]);
        Assert.Equal(new TimeSpan(1, 2, 0, 0), row[3]);
        Assert.Equal("-1 mons", row[4]); // Npgsql alone reads it as TimeSpan.Zero: the month is not lost here
        Assert.Equal(-new TimeSpan(0, 24, 0, 1, 500), row[5]);
        Assert.Equal(new[] { TimeSpan.FromDays(1), TimeSpan.FromHours(-2) }, row[6]);
        Assert.Equal(new[] { "1 mon", "-1 mons +2 days" }, row[7]);
    }

    /// <summary>
    /// Npgsql refuses a NULL in an array of a value type (int[], bool[] ...) unless told otherwise: such an array
    /// reads as an array of nullables with the NULL in place, one without NULL as before.
    /// </summary>
    [Fact]
    public async Task Arrays_with_null_elements_read_with_null_in_place()
    {
        await using var client = NewClient();
        var row = await ReadRowAsync(client, $"""
            SELECT * FROM (SELECT array_agg(x) AS xs FROM (VALUES (1), (NULL)) v(x)) agg
            CROSS JOIN (SELECT ARRAY[true, NULL], ARRAY['{Uuid}'::uuid, NULL], ARRAY[1.5, NULL]::numeric[],
                               ARRAY['1 day', NULL]::interval[], ARRAY[NULL, '1 mon']::interval[], ARRAY[1, 2], ARRAY[[1, NULL], [3, 4]]) a
            """);
        Assert.Equal(new int?[] { 1, null }, Assert.IsType<int?[]>(row[0]));
        Assert.Equal(new bool?[] { true, null }, Assert.IsType<bool?[]>(row[1]));
        Assert.Equal(new Guid?[] { Guid.Parse(Uuid), null }, Assert.IsType<Guid?[]>(row[2]));
        Assert.Equal(new decimal?[] { 1.5m, null }, Assert.IsType<decimal?[]>(row[3]));
        Assert.Equal(new TimeSpan?[] { TimeSpan.FromDays(1), null }, Assert.IsType<TimeSpan?[]>(row[4]));
        Assert.Equal(new[] { null, "1 mon" }, Assert.IsType<string?[]>(row[5]));
        Assert.Equal(new[] { 1, 2 }, Assert.IsType<int[]>(row[6]));
        Assert.Equal(new int?[,] { { 1, null }, { 3, 4 } }, Assert.IsType<int?[,]>(row[7]));
    }

    /// <summary>What remains without a reading fails with an error that names the column and the way out.</summary>
    [Theory]
    [InlineData("ARRAY[[1e40::numeric]] AS big")]
    [InlineData("ROW(1, 'x')::typetest_pair AS big")]
    public async Task Values_still_without_a_reading_fail_with_an_error_naming_the_column_and_the_cast(string expression)
    {
        await CreateUserTypesAsync();
        await using var client = NewClient();
        var ex = await Assert.ThrowsAsync<InvalidCastException>(() => ReadRowAsync(client, $"SELECT {expression}"));
        Assert.Contains("'big'", ex.Message, StringComparison.Ordinal);
        Assert.Contains("big::text", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Parameters_of_builtin_and_user_defined_types_bind()
    {
        await CreateUserTypesAsync();
        await using var client = NewClient();
        var utc = new DateTime(2024, 1, 2, 3, 4, 5, DateTimeKind.Utc);
        var row = await ReadRowAsync(client, """
            SELECT $1::inet = '10.0.0.1', $2 = '1 day 2 hours'::interval, $3::money = 12.5::money, $4 = '2024-01-02 03:04:05+00'::timestamptz,
                   $5::jsonb = '{"a": 1}', $6 = 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid, $7::numeric = 1e40,
                   $8::typetest_mood = 'happy', $9::typetest_mood[] = ARRAY['sad', 'happy']::typetest_mood[],
                   $10::typetest_posint = 5, $11::typetest_pair = ROW(1, 'x')::typetest_pair, $12 = ARRAY[1, 2]
            """,
            IPAddress.Parse("10.0.0.1"), new TimeSpan(1, 2, 0, 0), 12.5m, utc,
            """{"a":1}""", Guid.Parse(Uuid), "1e40",
            "happy", new[] { "sad", "happy" },
            5, "(1,x)", new[] { 1, 2 });
        Assert.All(row, v => Assert.Equal(true, v));
    }

    /// <summary>The shared catalogue was loaded before this type existed: the next connect sees it changed and reloads it.</summary>
    [Fact]
    public async Task A_type_created_after_this_process_loaded_the_catalogue_reads_on_the_next_connect()
    {
        await using (var first = NewClient())
        {
            Assert.Equal(1, await first.ExecuteScalarAsync(new AequorStatement("SELECT 1"), CancellationToken.None));
        }

        var name = $"typetest_late_{Guid.NewGuid():N}"[..30];
        await db.ScalarAsync<int>($"CREATE TYPE {name} AS ENUM ('early', 'late'); SELECT 1");
        try
        {
            await using var next = NewClient();
            var row = await ReadRowAsync(next, $"SELECT 'late'::{name}, ARRAY['early', 'late']::{name}[]");
            Assert.Equal("late", row[0]);
            Assert.Equal(new[] { "early", "late" }, row[1]);

            // The reload was the shared data source's, not that connection's alone: the next client, which finds
            // the fingerprint already seen, reads the type too.
            await using var after = NewClient();
            row = await ReadRowAsync(after, $"SELECT 'early'::{name}");
            Assert.Equal("early", row[0]);
        }
        finally
        {
            await db.ScalarAsync<int>($"DROP TYPE {name}; SELECT 1");
        }
    }

    /// <summary>
    /// An array not indexed from 1 ('[0:2]={1,2,3}') read exactly as one that is, every element's index silently off:
    /// refused, in rows and as a scalar, naming the column and the renumbering; renumbered it reads, and arrays from 1
    /// (empty, NULL, of many dimensions) read as ever.
    /// </summary>
    [Theory]
    [InlineData("'[0:2]={1,2,3}'::int[]", "v[:]")]
    [InlineData("'[2:3]={a,b}'::text[]", "v[:]")]
    [InlineData("'[1:2][0:1]={{1,2},{3,4}}'::int[]", "v[:][:]")]
    [InlineData("'[0:0]={10.0.0.1/8}'::inet[]", "v[:]")]
    [InlineData("'[-1:-1]={2020-01-01}'::timestamp[]", "v[:]")]
    [InlineData("'[0:0]={\"1 mon\"}'::interval[]", "v[:]")]
    public async Task An_array_not_indexed_from_1_is_refused_naming_the_column(string expression, string renumbered)
    {
        await using var client = NewClient();
        var select = $"SELECT {expression} AS v";
        var read = await Assert.ThrowsAnyAsync<Exception>(() => ClientTestKit.ReadRowAsync(client, select));
        Assert.Contains("Column 1 ('v'", read.Message, StringComparison.Ordinal);
        Assert.Contains($"({renumbered})", read.Message, StringComparison.Ordinal);
        var scalar = await Assert.ThrowsAnyAsync<Exception>(() => client.ExecuteScalarAsync(new AequorStatement(select), CancellationToken.None));
        Assert.Contains($"({renumbered})", scalar.Message, StringComparison.Ordinal);

        var row = await ClientTestKit.ReadRowAsync(client, $"SELECT {renumbered}, '{{}}'::int[], NULL::int[], '{{{{1}},{{2}}}}'::int[] FROM ({select}) AS x");
        Assert.NotEmpty(Assert.IsAssignableFrom<Array>(row[0]));
        Assert.Empty(Assert.IsType<int[]>(row[1]));
        Assert.Null(row[2]);
        Assert.Equal(new[,] { { 1 }, { 2 } }, Assert.IsType<int[,]>(row[3]));
    }

    /// <summary>
    /// An anonymous record's fields were read by Npgsql without the engine's care for a column: 294276 AD came back in
    /// 1998, -1 month as a zero TimeSpan, a timetz of 24:00 in year 1, an inet without its prefix. Refused naming the
    /// column; a record of plain fields (numbers, text, NULL, nested) reads as before, as object[].
    /// </summary>
    [Theory]
    [InlineData("ROW('294276-01-01'::timestamp)")]
    [InlineData("ROW(1, '-1 mon'::interval)")]
    [InlineData("ROW('24:00+02'::timetz)")]
    [InlineData("ROW(ROW('1.2.3.4/24'::inet))")]
    [InlineData("ARRAY[ROW(1), ROW('[1,2)'::int4range)]")]
    public async Task A_record_with_a_field_it_cannot_carry_is_refused_naming_the_column(string expression)
    {
        await using var client = NewClient();
        var select = $"SELECT {expression} AS v";
        var read = await Assert.ThrowsAnyAsync<Exception>(() => ClientTestKit.ReadRowAsync(client, select));
        Assert.Contains("Column 1 ('v', type record", read.Message, StringComparison.Ordinal);
        Assert.Contains("(v::text)", read.Message, StringComparison.Ordinal);
        var scalar = await Assert.ThrowsAnyAsync<Exception>(() => client.ExecuteScalarAsync(new AequorStatement(select), CancellationToken.None));
        Assert.Contains("(v::text)", scalar.Message, StringComparison.Ordinal);

        var row = await ClientTestKit.ReadRowAsync(client, "SELECT ROW(1, 'a', NULL::int, 2.5::numeric, ROW(true, 3::bigint))");
        Assert.Equal(new object?[] { 1, "a", null, 2.5m, new object?[] { true, 3L } }, Assert.IsType<object[]>(row[0]));
    }
}
