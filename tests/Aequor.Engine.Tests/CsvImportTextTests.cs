using System.Text;

namespace Aequor.Engine.Tests;

/// <summary>The CSV reading an import does on its own (the header, the row count) and the columns it chooses: no server.</summary>
public sealed class CsvImportTextTests
{
    [Theory]
    [InlineData("id,name,born", ',', new[] { "id", "name", "born" })]
    [InlineData("\"My Col\",\"a,b\",\"q\"\"uote\",plain", ',', new[] { "My Col", "a,b", "q\"uote", "plain" })]
    [InlineData("a;\"b;c\";", ';', new[] { "a", "b;c", "" })]
    [InlineData("\"line\nbreak\",x", ',', new[] { "line\nbreak", "x" })]
    public void Fields_read_quotes_delimiters_and_line_breaks_as_COPY_writes_them(string record, char delimiter, string[] expected) =>
        Assert.Equal(expected, CsvRecords.Fields(record, delimiter));

    [Fact]
    public void The_header_ends_at_the_first_line_break_outside_quotes_and_the_rest_is_handed_back()
    {
        var buffer = new char[8];
        var header = CsvRecords.ReadHeader(new StringReader("\"a\nb\",c\r\n1,2\n"), ',', buffer, out var rest, out var breaks);
        Assert.Equal(["a\nb", "c"], header);
        Assert.Equal(2, breaks);
        Assert.Equal("1,2\n", new string(rest.Span));
        Assert.Null(CsvRecords.ReadHeader(new StringReader(string.Empty), ',', buffer, out _, out _));
        Assert.Equal(["x", "y"], CsvRecords.ReadHeader(new StringReader("x,y"), ',', buffer, out rest, out _));
        Assert.True(rest.IsEmpty);
    }

    [Theory]
    [InlineData("", 0)]
    [InlineData("1,a\n", 1)]
    [InlineData("1,a\n2,b", 2)]
    [InlineData("1,\"a\nb\"\r\n2,\"\"\"\"\n", 2)]
    [InlineData("\n", 1)]
    [InlineData("1,a\r2,\"b\rc\"\r3,\"d\ne\"", 3)]
    [InlineData("1,a\r\n2,b\r\n", 2)]
    public void Rows_are_counted_by_line_breaks_outside_quotes_whichever_the_file_uses(string data, long rows)
    {
        // Every split into two buffers: the quote state and a '\r' carried from one to the next.
        for (var size = 1; size <= Math.Max(1, data.Length); size++)
        {
            var records = new CsvRecords();
            Assert.Equal(data, Pumped(data, size, records));
            Assert.Equal(rows, records.Count);
        }
    }

    /// <summary>PostgreSQL 15 reads a bare <c>\.</c> record as the end of the data: it is sent quoted, a value.</summary>
    [Theory]
    [InlineData("x\n\\.\ny\n", "x\n\"\\.\"\ny\n")]
    [InlineData("\\.\r\n\\.\r\n\\.", "\"\\.\"\r\n\"\\.\"\r\n\"\\.\"")]
    [InlineData("\\.\r\\.\r", "\"\\.\"\r\"\\.\"\r")]
    [InlineData("\\.x\n\\\\.\na\\.\n\"q\n\\.\n\"\n", "\\.x\n\\\\.\na\\.\n\"q\n\\.\n\"\n")]
    [InlineData("\\", "\\")]
    public void A_record_of_only_backslash_dot_is_sent_quoted_and_nothing_else_changes(string data, string sent)
    {
        for (var size = 1; size <= data.Length; size++)
        {
            var records = new CsvRecords();
            Assert.Equal(sent, Pumped(data, size, records));
            Assert.Equal(sent.Length - data.Length, records.QuotedMarkers * 2);
        }
    }

    [Fact]
    public void The_header_ends_at_a_carriage_return_alone_too()
    {
        var buffer = new char[4];
        Assert.Equal(["id", "name"], CsvRecords.ReadHeader(new StringReader("id,name\r1,a\r"), ',', buffer, out var rest, out var breaks));
        Assert.Equal(1, breaks);
        Assert.Equal("1,a\r", new string(rest.Span));
        Assert.Equal(["a", "b"], CsvRecords.ReadHeader(new StringReader("a,b\r"), ',', buffer, out rest, out breaks));
        Assert.Equal(1, breaks);
        Assert.True(rest.IsEmpty);
    }

    private static string Pumped(string data, int bufferSize, CsvRecords records)
    {
        var sent = new StringBuilder();
        Assert.True(CsvRecords.Pump(new StringReader(data), new char[bufferSize + 3], ReadOnlyMemory<char>.Empty, records, piece =>
        {
            sent.Append(piece.Span);
            return true;
        }));
        return sent.ToString();
    }

    private static readonly string[] Writable = ["id", "name", "Born"];
    private static readonly string[] Generated = ["total"];

    [Fact]
    public void The_header_names_the_columns_in_any_case_and_minus_Column_must_agree_with_it()
    {
        Assert.Equal(["name", "id"], ImportColumns.Choose("t", ["NAME", "id"], null, Writable, Generated));
        Assert.Equal(["Born"], ImportColumns.Choose("t", ["born"], ["BORN"], Writable, Generated));
        var order = Assert.Throws<AequorConfigurationException>(() => ImportColumns.Choose("t", ["name", "id"], ["id", "name"], Writable, Generated));
        Assert.Contains("does not agree with the file's header (name, id)", order.Message, StringComparison.Ordinal);
        Assert.Throws<AequorConfigurationException>(() => ImportColumns.Choose("t", ["name", "id"], ["name"], Writable, Generated));
    }

    [Theory]
    [InlineData(new[] { "id", "nope" }, "'nope' of the file's header (field 2) is no column of the table t; its columns: id, name, Born")]
    [InlineData(new[] { "id", "TOTAL" }, "is the generated column 'total' of the table t")]
    [InlineData(new[] { "id", "ID" }, "names the column 'id' a second time")]
    [InlineData(new[] { "id", "" }, "Field 2 of the file's header is empty")]
    public void A_header_naming_an_unknown_generated_repeated_or_no_column_is_refused(string[] header, string named)
    {
        var refused = Assert.Throws<AequorConfigurationException>(() => ImportColumns.Choose("t", header, null, Writable, Generated));
        Assert.Contains(named, refused.Message, StringComparison.Ordinal);
        Assert.EndsWith("Nothing was imported.", refused.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Without_a_header_minus_Column_or_every_column_rows_can_fill()
    {
        Assert.Equal(Writable, ImportColumns.Choose("t", null, null, Writable, Generated));
        Assert.Equal(["Born", "id"], ImportColumns.Choose("t", null, ["born", "ID"], Writable, Generated));
        var generated = Assert.Throws<AequorConfigurationException>(() => ImportColumns.Choose("t", null, ["total"], Writable, Generated));
        Assert.StartsWith("-Column 'total' is the generated column", generated.Message, StringComparison.Ordinal);
    }
}
