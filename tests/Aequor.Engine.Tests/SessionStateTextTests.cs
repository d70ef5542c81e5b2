namespace Aequor.Engine.Tests;

/// <summary>What a statement's text leaves in the session, as the client remembers it across a reconnect.</summary>
public sealed class SessionStateTextTests
{
    private const SessionStateKinds Lock = SessionStateKinds.AdvisoryLock;
    private const SessionStateKinds Temp = SessionStateKinds.TemporaryObjects;
    private const SessionStateKinds Prepared = SessionStateKinds.PreparedStatements;
    private const SessionStateKinds Listen = SessionStateKinds.ListenChannels;
    private const SessionStateKinds Settings = SessionStateKinds.Settings;
    private const SessionStateKinds Hold = SessionStateKinds.HoldCursors;
    private const SessionStateKinds Role = SessionStateKinds.Role;

    [Theory]
    [InlineData("SELECT pg_advisory_lock(42)", Lock)]
    [InlineData("select PG_ADVISORY_LOCK_SHARED(1, 2)", Lock)]
    [InlineData("SELECT pg_catalog.pg_try_advisory_lock(42)", Lock)]
    [InlineData("SELECT pg_try_advisory_lock_shared($1)", Lock)]
    [InlineData("CREATE TEMP TABLE t (a int)", Temp)]
    [InlineData("create temporary table if not exists t (a int)", Temp)]
    [InlineData("CREATE LOCAL TEMPORARY TABLE t AS SELECT 1", Temp)]
    [InlineData("CREATE OR REPLACE TEMP VIEW v AS SELECT 1", Temp)]
    [InlineData("SELECT 1 AS a INTO TEMP t", Temp)]
    [InlineData("PREPARE q (int) AS SELECT $1", Prepared)]
    [InlineData("LISTEN jobs", Listen)]
    [InlineData("SET search_path = app", Settings)]
    [InlineData("set session statement_timeout to 5000", Settings)]
    [InlineData("SET ROLE reader", Role)]
    [InlineData("set session role reader", Role)]
    [InlineData("SET SESSION AUTHORIZATION reader", Role)]
    [InlineData("SET SESSION SESSION AUTHORIZATION 'reader'", Role)]
    [InlineData("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY", Settings)]
    [InlineData("SET TIME ZONE 'UTC'", Settings)]
    [InlineData("SELECT set_config('search_path', 'app', false)", Settings)]
    [InlineData("DECLARE c CURSOR WITH HOLD FOR SELECT 1", Hold)]
    [InlineData("-- setup\nSELECT 1; /* then */ SET work_mem = '64MB'; LISTEN x", Settings | Listen)]
    [InlineData("DO $$ BEGIN PERFORM pg_advisory_lock(1); CREATE TEMP TABLE t (a int); END $$", Lock | Temp)]
    [InlineData("do $body$ begin if not pg_try_advisory_lock(7) then raise exception 'busy'; end if; end $body$", Lock)]
    [InlineData("DO LANGUAGE plpgsql 'BEGIN SET ROLE reader; END'", Role)]
    [InlineData("DO $$ DECLARE n int; BEGIN LOOP PERFORM set_config('search_path', 'app', false); EXIT; END LOOP; END $$", Settings)]
    public void Names_what_a_statement_leaves_in_the_session(string sql, SessionStateKinds expected) =>
        Assert.Equal(expected, SessionStateText.Scan(sql).Sets);

    [Theory]
    [InlineData("SELECT 1")]
    [InlineData("SELECT pg_advisory_xact_lock(42)")]
    [InlineData("SELECT pg_try_advisory_xact_lock(1346847057, hashtext('svc'))")]
    [InlineData("SET LOCAL search_path = app")]
    [InlineData("SET LOCAL ROLE reader")]
    [InlineData("SET ROLE NONE")]
    [InlineData("SET SESSION AUTHORIZATION DEFAULT")]
    [InlineData("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE")]
    [InlineData("SET CONSTRAINTS ALL DEFERRED")]
    [InlineData("UPDATE t SET a = 1")]
    [InlineData("INSERT INTO temp VALUES (1)")]
    [InlineData("CREATE TABLE temp (a int)")]
    [InlineData("CREATE TEMP TABLE t (a int) ON COMMIT DROP")]
    [InlineData("PREPARE TRANSACTION 'tx1'")]
    [InlineData("DECLARE c CURSOR FOR SELECT 1")]
    [InlineData("DECLARE c CURSOR WITHOUT HOLD FOR SELECT 1")]
    [InlineData("SELECT 'pg_advisory_lock(1)', \"listen\" FROM t -- SET x = 1\n")]
    [InlineData("CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_advisory_lock(1); END $$")]
    [InlineData("DO $$ BEGIN PERFORM pg_advisory_xact_lock(1); RAISE NOTICE 'SET x = 1'; END $$")]
    [InlineData("SELECT my_pg_advisory_lock_wrapper(1)")]
    [InlineData("")]
    public void Leaves_nothing_when_the_state_ends_with_the_transaction_or_is_not_code(string sql) =>
        Assert.Equal(SessionStateKinds.None, SessionStateText.Scan(sql).Sets);

    [Theory]
    [InlineData("DISCARD ALL", SessionStateKinds.All)]
    [InlineData("discard temp", Temp)]
    [InlineData("RESET ALL", Settings)]
    [InlineData("SELECT pg_advisory_unlock_all()", Lock)]
    [InlineData("UNLISTEN *", Listen)]
    [InlineData("DEALLOCATE ALL", Prepared)]
    [InlineData("DEALLOCATE PREPARE ALL", Prepared)]
    [InlineData("CLOSE ALL", Hold)]
    [InlineData("UNLISTEN jobs", SessionStateKinds.None)]
    [InlineData("DEALLOCATE q", SessionStateKinds.None)]
    [InlineData("RESET search_path", SessionStateKinds.None)]
    [InlineData("RESET ROLE", Role)]
    [InlineData("reset session authorization", Role)]
    [InlineData("SET ROLE NONE", Role)]
    [InlineData("SET SESSION AUTHORIZATION DEFAULT", Role)]
    [InlineData("SELECT pg_advisory_unlock(42)", SessionStateKinds.None)]
    public void Names_what_a_statement_surely_clears(string sql, SessionStateKinds expected) =>
        Assert.Equal(expected, SessionStateText.Scan(sql).Clears);

    [Theory]
    [InlineData("SELECT pg_try_advisory_lock(1)", true)]
    [InlineData("SELECT pg_advisory_unlock(1)", true)]
    [InlineData("SELECT pg_advisory_unlock_shared(1)", true)]
    [InlineData("SELECT pg_advisory_lock(1)", false)]
    [InlineData("SELECT pg_advisory_unlock_all()", false)]
    [InlineData("DO $$ BEGIN PERFORM pg_advisory_lock(1); END $$", true)]
    [InlineData("DO $$ BEGIN PERFORM pg_advisory_unlock_all(); END $$", true)]
    [InlineData("DO $$ BEGIN PERFORM 1; END $$", false)]
    public void Asks_the_server_when_the_text_cannot_tell_whether_a_lock_is_held(string sql, bool expected) =>
        Assert.Equal(expected, SessionStateText.Scan(sql).ChecksAdvisoryLocks);

    [Theory]
    [InlineData("SET application_name = 'nightly'", true)]
    [InlineData("set Application_Name to 'x'", true)]
    [InlineData("SET SESSION application_name = 'x'", true)]
    [InlineData("SET LOCAL application_name = 'x'", true)]
    [InlineData("SELECT set_config('application_name', 'x', false)", true)]
    [InlineData("SELECT set_config ( 'APPLICATION_NAME' , $1, true)", true)]
    [InlineData("SELECT 1; SET application_name = 'x'", true)]
    [InlineData("DO $$ BEGIN PERFORM set_config('application_name', 'x', false); END $$", true)]
    [InlineData("SELECT set_config('search_path', 'application_name', false)", false)]
    [InlineData("RESET application_name", false)]
    [InlineData("RESET ALL", false)]
    [InlineData("SELECT 'SET application_name = x'", false)]
    [InlineData("SELECT current_setting('application_name')", false)]
    public void Sees_a_statement_that_sets_application_name(string sql, bool expected) =>
        Assert.Equal(expected, SessionStateText.Scan(sql).SetsApplicationName);

    [Theory]
    [InlineData("SELECT take_job_lock(42)", "take_job_lock")]
    [InlineData("select * from App.Take_Lock ($1)", "take_lock")]
    [InlineData("SELECT app.\"TakeLock\"(1), \"odd\"\"name\" /* c */ (2)", "TakeLock|odd\"name")]
    [InlineData("CALL jobs.claim(1)", "claim")]
    [InlineData("DO $$ BEGIN PERFORM take_lock(1); END $$", "take_lock")]
    [InlineData("CREATE OR REPLACE FUNCTION f(a int) RETURNS int LANGUAGE sql AS $$ SELECT g(a) $$; SELECT f(1)", "f")]
    [InlineData("SELECT count(*), coalesce(max(a), 0) FROM t WHERE a IN (1, 2) AND b = ANY($1) AND c::numeric(10, 2) > 0", "")]
    [InlineData("SELECT pg_advisory_lock(1), pg_advisory_xact_lock(2), set_config('a.b', 'c', false)", "")]
    [InlineData("SELECT 'f(1)', \"col\" -- g(2)\n", "")]
    [InlineData("DROP FUNCTION f(int)", "")]
    [InlineData("INSERT INTO t (a, b) VALUES (1, 2) ON CONFLICT (a) DO NOTHING", "")]
    [InlineData("insert into app.orders (id) values ($1); insert into \"Orders\" (id) values (1)", "")]
    [InlineData("CREATE TABLE IF NOT EXISTS t (a int REFERENCES p (id)); CREATE VIEW v (a) AS SELECT 1", "")]
    [InlineData("COPY t (a) FROM STDIN", "")]
    [InlineData("WITH c (a) AS (SELECT 1) SELECT * FROM c, unnest($1) AS u (x)", "")]
    [InlineData("INSERT INTO t (a) SELECT take_lock(1)", "take_lock")]
    [InlineData("INSERT INTO jobs (id) VALUES (app.claim(1))", "claim")]
    public void Names_what_a_statement_calls_that_could_be_a_user_function(string sql, string expected)
    {
        var called = SessionStateText.Scan(sql).CalledNames;
        Assert.Equal(expected, called is null ? string.Empty : string.Join('|', called));
    }

    [Theory]
    [InlineData("CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'", true)]
    [InlineData("create or replace procedure p() language plpgsql as $$ begin end $$", true)]
    [InlineData("ALTER FUNCTION f() RENAME TO g", true)]
    [InlineData("DROP ROUTINE IF EXISTS f", true)]
    [InlineData("CREATE EXTENSION pgcrypto", true)]
    [InlineData("DO $$ BEGIN CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'; END $$", true)]
    [InlineData("CREATE TABLE function (a int)", false)]
    [InlineData("SELECT 'CREATE FUNCTION'", false)]
    public void Sees_a_statement_that_redefines_functions(string sql, bool expected) =>
        Assert.Equal(expected, SessionStateText.Scan(sql).RedefinesFunctions);

    [Fact]
    public void Describes_the_kinds_in_words()
    {
        Assert.Equal("temporary tables", SessionStateNames.Describe(Temp));
        Assert.Equal("session advisory locks (pg_advisory_lock), LISTEN channels and session settings (SET, set_config)", SessionStateNames.Describe(Lock | Listen | Settings));
    }
}
