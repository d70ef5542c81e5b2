using System.Globalization;
using System.Text;

namespace Aequor.Engine.Tests;

/// <summary>Values to COPY text format, and table names to quoted SQL: no server needed.</summary>
public sealed class CopyRowTextTests
{
    private static string Row(params object?[] values)
    {
        var line = new StringBuilder();
        CopyRowText.Append(line, values, values.Select((_, i) => "c" + i).ToList(), 1);
        return line.ToString();
    }

    [Fact]
    public void Escapes_what_the_text_format_gives_meaning_and_writes_null_as_backslash_N()
    {
        Assert.Equal("a\\tb\\nc\\rd\\\\e\t\\N\t\n", Row("a\tb\nc\rd\\e", null, string.Empty));
    }

    [Fact]
    public void Writes_values_in_the_invariant_culture_whatever_the_current_one()
    {
        var before = CultureInfo.CurrentCulture;
        CultureInfo.CurrentCulture = CultureInfo.GetCultureInfo("de-DE");
        try
        {
            Assert.Equal("1.5\t0.1\t1234567.891\ttrue\tfalse\n", Row(1.5, 0.1, 1234567.891m, true, false));
            Assert.Equal("2020-05-06T07:08:09.5\t2020-05-06T07:08:09+02:00\t2020-05-06T07:08:09+00:00\n", Row(
                new DateTime(2020, 5, 6, 7, 8, 9, 500, DateTimeKind.Unspecified),
                new DateTimeOffset(2020, 5, 6, 7, 8, 9, TimeSpan.FromHours(2)),
                new DateTime(2020, 5, 6, 7, 8, 9, DateTimeKind.Utc)));
        }
        finally
        {
            CultureInfo.CurrentCulture = before;
        }
    }

    [Fact]
    public void Writes_times_to_the_microsecond_the_server_keeps_cut_not_rounded_and_DateTime_s_ends_as_infinity()
    {
        // The server rounds a 7th digit: 23:59:59.9999999 became 24:00:00, and DateTime.MaxValue the year 10000.
        Assert.Equal("infinity\t-infinity\tinfinity\t-infinity\n", Row(
            DateTime.MaxValue, DateTime.SpecifyKind(DateTime.MinValue, DateTimeKind.Utc), DateTimeOffset.MaxValue, DateTimeOffset.MinValue));
        Assert.Equal("2024-04-29T15:06:40.000001\t2024-04-29T15:06:40.000999+00:00\t23:59:59.999999\t9999-12-31T23:59:59.999999+05:00\n", Row(
            new DateTime(638500000000000016),
            new DateTime(638500000000009999, DateTimeKind.Utc),
            TimeOnly.MaxValue,
            new DateTimeOffset(DateTime.MaxValue, TimeSpan.FromHours(5))));
    }

    [Fact]
    public void Writes_bytes_guids_and_arrays_with_every_element_quoted()
    {
        var id = Guid.Parse("0f8fad5b-d9cb-469f-a165-70867728950e");
        Assert.Equal("\\\\x00ff\t0f8fad5b-d9cb-469f-a165-70867728950e\t{\"a,b\",\"q\\\\\"u\",\"back\\\\\\\\\",NULL,\"NULL\",\"\"}\t{{\"1\",\"2\"},{\"3\",\"4\"}}\n",
            Row(new byte[] { 0, 255 }, id, new object?[] { "a,b", "q\"u", "back\\", null, "NULL", string.Empty }, new[] { new[] { 1, 2 }, new[] { 3, 4 } }));
    }

    [Fact]
    public void Writes_an_array_of_more_dimensions_in_its_shape_not_flattened()
    {
        Assert.Equal("{{\"1\",\"2\",\"3\"},{\"4\",\"5\",\"6\"}}\t{{{\"a\"},{NULL}}}\t{}\n", Row(
            new[,] { { 1, 2, 3 }, { 4, 5, 6 } },
            new[,,] { { { "a" }, { null } } },
            new int[0, 3]));
    }

    [Fact]
    public void Writes_a_char_array_as_its_text_as_a_parameter_binds_it_not_as_an_array_of_letters()
    {
        Assert.Equal("a\\tb\t{\"x\",\"y\"}\n", Row("a\tb".ToCharArray(), new object[] { 'x', 'y' }));
        var nul = Assert.Throws<AequorConfigurationException>(() => Row(new[] { 'a', '\0' }));
        Assert.Contains("Row 1, column 'c0'", nul.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Writes_a_uri_as_it_was_given_not_unescaped()
    {
        // Uri.ToString() unescapes: %20 became a space and %E2%82%AC a euro sign, another string than the one given.
        Assert.Equal("https://example.com/a%20b?x=%E2%82%AC\t../rel%20ative\n",
            Row(new Uri("https://example.com/a%20b?x=%E2%82%AC"), new Uri("../rel%20ative", UriKind.Relative)));
    }

    [Fact]
    public void Writes_an_object_array_of_bytes_as_bytea_as_a_parameter_binds_it()
    {
        // Get-Content -AsByteStream gives object[], not byte[]: as an array literal a bytea stored its 15 characters.
        Assert.Equal("\\\\x0102ff\t{\"1\",\"2\"}\n", Row(new object[] { (byte)1, (byte)2, (byte)255 }, new object[] { (byte)1, 2 }));
    }

    [Fact]
    public void Refuses_a_nested_object_and_a_NUL_naming_row_and_column()
    {
        var line = new StringBuilder("kept");
        var nested = Assert.Throws<AequorConfigurationException>(() => CopyRowText.Append(line, [1, new object()], ["id", "name"], 7));
        Assert.Contains("Row 7, column 'name'", nested.Message, StringComparison.Ordinal);
        Assert.Equal("kept", line.ToString());
        var nul = Assert.Throws<AequorConfigurationException>(() => CopyRowText.Append(line, ["a\0b"], ["name"], 2));
        Assert.Contains("NUL", nul.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Refuses_an_unpaired_surrogate_which_UTF_8_would_silently_turn_into_a_replacement_character()
    {
        var line = new StringBuilder();
        var lone = Assert.Throws<AequorConfigurationException>(() => CopyRowText.Append(line, ["ok \ud83d"], ["name"], 3));
        Assert.Contains("Row 3, column 'name'", lone.Message, StringComparison.Ordinal);
        Assert.Contains("unpaired UTF-16 surrogate (U+D83D) at character 4", lone.Message, StringComparison.Ordinal);
        var inArray = Assert.Throws<AequorConfigurationException>(() => CopyRowText.Append(line, [new[] { "a", "\udc00" }], ["tags"], 4));
        Assert.Contains("U+DC00", inArray.Message, StringComparison.Ordinal);
        Assert.Equal(string.Empty, line.ToString());

        CopyRowText.Append(line, ["emoji \ud83d\ude00"], ["name"], 5);
        Assert.Equal("emoji \ud83d\ude00\n", line.ToString());
    }

    [Theory]
    [InlineData("people", "\"people\"")]
    [InlineData("App.People", "\"app\".\"people\"")]
    [InlineData("\"My Table\"", "\"My Table\"")]
    [InlineData("app.\"Or\"\"der\"", "\"app\".\"Or\"\"der\"")]
    // A UTF-8 server folds only A-Z: ÜBER names "Über", never "über" (another table, or none).
    [InlineData("ÜBER.Straße", "\"Über\".\"straße\"")]
    [InlineData("ÉTÉ_İ", "\"ÉtÉ_İ\"")]
    public void Quotes_table_names_as_the_server_folds_them(string name, string quoted) =>
        Assert.Equal(quoted, TableNames.Quote(name));

    [Theory]
    [InlineData("people; DROP TABLE x")]
    [InlineData("\"open")]
    [InlineData("a..b")]
    [InlineData("\"a\"b")]
    [InlineData("a.b.c.d")]
    public void Refuses_a_table_name_it_cannot_parse(string name) =>
        Assert.Throws<AequorConfigurationException>(() => TableNames.Quote(name));
}
