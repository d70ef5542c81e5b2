namespace Aequor.Engine.Tests;

/// <summary>Which statements are described first, so their text-only columns come as text: the rest pay nothing.</summary>
public sealed class TextOnlyColumnsTests
{
    [Theory]
    [InlineData("SELECT * FROM pg_class")]
    [InlineData("select relname, relacl from pg_catalog.pg_class where relname = @n")]
    [InlineData("SELECT * FROM PG_DATABASE;")]
    [InlineData("SELECT * FROM pg_stats WHERE tablename = $1;  -- done")]
    [InlineData("SELECT 'x'::regclass")]
    [InlineData("SELECT CAST(oid AS RegProc) FROM t")]
    [InlineData("SELECT to_regclass('t')")]
    [InlineData("SELECT websearch_to_tsquery('a b')")]
    [InlineData("SELECT a.x::aclitem[] FROM t a")]
    [InlineData("WITH s AS (SELECT * FROM pg_stat_activity) SELECT * FROM s")]
    public void A_statement_naming_a_catalogue_or_a_text_only_type_is_described_first(string sql) =>
        Assert.True(TextOnlyColumns.MayReturn(sql));

    [Theory]
    [InlineData("SELECT 1")]
    [InlineData("SELECT pg_sleep(0)")]
    [InlineData("SELECT pg_advisory_xact_lock (42)")]
    [InlineData("SELECT pg_backend_pid(), now()")]
    [InlineData("SELECT 'pg_class', 'x::regclass' FROM t")]
    [InlineData("SELECT 1 -- FROM pg_class")]
    [InlineData("SELECT 1 /* ::regclass */")]
    [InlineData("SELECT $$ pg_class $$")]
    [InlineData("SELECT \"pg_class\".x FROM t AS \"pg_class\"")]
    [InlineData("SELECT mypg_class, my_regclass FROM t")]
    [InlineData("SELECT * FROM pg_class; SELECT 1")]
    [InlineData("INSERT INTO t VALUES (@regclass)")]
    [InlineData("")]
    public void A_statement_naming_none_or_several_statements_go_as_before(string sql) =>
        Assert.False(TextOnlyColumns.MayReturn(sql));
}
