namespace Aequor.Engine;

/// <summary>What one statement's text does to the session state the client remembers (<see cref="SessionStateText"/>).</summary>
/// <param name="Sets">Kinds it may leave in the session.</param>
/// <param name="Clears">Kinds it surely removes (DISCARD ALL, RESET ALL, pg_advisory_unlock_all() …).</param>
/// <param name="ChecksAdvisoryLocks">It may take a lock or release one (pg_try_advisory_lock, pg_advisory_unlock): whether
/// the session still holds any is asked of the server afterwards, so a released or never granted lock is not remembered.</param>
/// <param name="SetsApplicationName">It sets application_name (SET, SET LOCAL, set_config): in a leased session that is the lease.</param>
internal readonly record struct SessionStatementEffect(SessionStateKinds Sets, SessionStateKinds Clears, bool ChecksAdvisoryLocks, bool SetsApplicationName)
{
    public static readonly SessionStatementEffect None = default;

    /// <summary>
    /// The names it calls that could be user functions or procedures (<c>name(</c>, <c>app."Name"(</c>, <c>CALL name(</c>),
    /// unquoted ones in lower case; null when none, or once they were looked up (<see cref="CallingAdvisoryLockFunction"/>).
    /// </summary>
    public string[]? CalledNames { get; init; }

    /// <summary>It creates, replaces, alters or drops a function, procedure or extension: the known lock-taking functions may have changed.</summary>
    public bool RedefinesFunctions { get; init; }

    /// <summary>The effect once its called names are known: one of them may take or release a session advisory lock.</summary>
    public SessionStatementEffect CallingAdvisoryLockFunction(bool calls) =>
        calls
            ? this with { Sets = Sets | SessionStateKinds.AdvisoryLock, ChecksAdvisoryLocks = true, CalledNames = null }
            : this with { CalledNames = null };
}

/// <summary>
/// Reads a statement's text for what it leaves in the PostgreSQL session: the words outside quotes, comments and
/// dollar-quoted bodies (<see cref="StatementShape.SkipNonCode"/>), the first words of each ';'-separated statement
/// and the advisory-lock and set_config function names anywhere; a DO block's body the same way, since it runs now.
/// A guess from the text, by design: a called function or procedure is only named here (<see cref="SessionStatementEffect.CalledNames"/>;
/// whether its body may take an advisory lock is the server's answer, <see cref="AdvisoryLockFunctions"/>), and a state that a
/// later DROP, UNLISTEN channel or rollback removed is still remembered. Erring towards "held" costs a warning after a reconnect (for a lock, one statement refused), never a
/// silent loss.
/// </summary>
internal static class SessionStateText
{
    public static SessionStatementEffect Scan(string sql)
    {
        ArgumentNullException.ThrowIfNull(sql);
        return Scan(sql, plpgsqlBody: false);
    }

    /// <param name="plpgsqlBody">The text is a DO block's body: BEGIN, THEN, ELSE and LOOP also start a statement there.</param>
    private static SessionStatementEffect Scan(string sql, bool plpgsqlBody)
    {
        var sets = SessionStateKinds.None;
        var clears = SessionStateKinds.None;
        var checks = false;
        var setsName = false;
        var redefines = false;
        List<string>? called = null;
        var statementCalls = 0;

        // The first words of the current statement, and the two words before the current one (ON COMMIT DROP, WITH HOLD).
        var first = default(FirstWords);
        var count = 0;
        string? previous = null;
        string? beforePrevious = null;
        var previousEnd = -1;
        var statement = new StatementFlags();
        var i = 0;
        while (i < sql.Length)
        {
            var next = StatementShape.SkipNonCode(sql, i);
            if (next < 0)
            {
                break;
            }

            if (next != i)
            {
                if (count > 0 && first[0] == "DO" && DoBody(sql, i, next) is { } body)
                {
                    var inBody = Scan(body, plpgsqlBody: true);
                    TakeDoBody(inBody, ref sets, ref checks, ref setsName);
                    redefines |= inBody.RedefinesFunctions;
                    if (inBody.CalledNames is { } bodyCalls)
                    {
                        (called ??= []).AddRange(bodyCalls);
                    }
                }
                else if (sql[i] == '"' && IsCall(sql, next) && !NamesARelation(sql, i, previous, previousEnd, beforePrevious))
                {
                    // "TakeLock"( or app."take lock"(: the name as written, quotes undone.
                    (called ??= []).Add(sql.Substring(i + 1, next - i - 2).Replace("\"\"", "\"", StringComparison.Ordinal));
                }

                i = next;
                continue;
            }

            var c = sql[i];
            if (c == ';')
            {
                Close(first, count, statement, ref sets, ref clears, ref setsName);
                EndCalls(first, count, called, ref statementCalls, ref redefines);
                first = default;
                count = 0;
                previous = beforePrevious = null;
                statement = new StatementFlags();
                i++;
                continue;
            }

            if (!(char.IsAsciiLetter(c) || c == '_' || c > 127) || (i > 0 && (StatementShape.IsIdentifierChar(sql[i - 1]) || sql[i - 1] == '$')))
            {
                i++;
                continue;
            }

            var end = i;
            while (end < sql.Length && (StatementShape.IsIdentifierChar(sql[end]) || sql[end] == '$'))
            {
                end++;
            }

            var word = Keyword(sql.AsSpan(i, end - i));
            if (word is not ("PG_ADVISORY_LOCK" or "PG_ADVISORY_LOCK_SHARED" or "PG_TRY_ADVISORY_LOCK" or "PG_TRY_ADVISORY_LOCK_SHARED"
                    or "PG_ADVISORY_UNLOCK" or "PG_ADVISORY_UNLOCK_SHARED" or "PG_ADVISORY_UNLOCK_ALL" or "SET_CONFIG")
                && IsCall(sql, end) && !NotAUserFunction.Contains(sql.AsSpan(i, end - i))
                && !NamesARelation(sql, i, previous, previousEnd, beforePrevious))
            {
                (called ??= []).Add(sql.Substring(i, end - i).ToLowerInvariant());
            }

            if (plpgsqlBody && word is "BEGIN" or "THEN" or "ELSE" or "LOOP")
            {
                Close(first, count, statement, ref sets, ref clears, ref setsName);
                EndCalls(first, count, called, ref statementCalls, ref redefines);
                first = default;
                count = 0;
                previous = beforePrevious = null;
                statement = new StatementFlags();
                i = end;
                continue;
            }

            if (count < FirstWords.Length)
            {
                first[count] = word;
            }

            count++;
            switch (word)
            {
                case "PG_ADVISORY_LOCK" or "PG_ADVISORY_LOCK_SHARED":
                    sets |= SessionStateKinds.AdvisoryLock;
                    break;
                case "PG_TRY_ADVISORY_LOCK" or "PG_TRY_ADVISORY_LOCK_SHARED":
                    sets |= SessionStateKinds.AdvisoryLock;
                    checks = true;
                    break;
                case "PG_ADVISORY_UNLOCK" or "PG_ADVISORY_UNLOCK_SHARED":
                    checks = true;
                    break;
                case "PG_ADVISORY_UNLOCK_ALL":
                    clears |= SessionStateKinds.AdvisoryLock;
                    break;
                case "SET_CONFIG":
                    sets |= SessionStateKinds.Settings;
                    setsName |= FirstArgumentIsApplicationName(sql, end);
                    break;
                case "DROP" when previous == "COMMIT" && beforePrevious == "ON":
                    statement.OnCommitDrop = true;
                    break;
                case "HOLD" when previous == "WITH":
                    statement.WithHold = true;
                    break;
                case "TEMP" or "TEMPORARY" when previous == "INTO":
                    statement.IntoTemp = true;
                    break;
                case "UNLISTEN" when count == 1:
                    var star = StatementShape.SkipBlank(sql, end);
                    statement.UnlistenAll = star >= 0 && sql[star] == '*';
                    break;
            }

            beforePrevious = previous;
            previous = word;
            previousEnd = end;
            i = end;
        }

        Close(first, count, statement, ref sets, ref clears, ref setsName);
        EndCalls(first, count, called, ref statementCalls, ref redefines);
        return new SessionStatementEffect(sets, clears, checks, setsName)
        {
            CalledNames = called is { Count: > 0 } ? [.. called] : null,
            RedefinesFunctions = redefines,
        };
    }

    /// <summary>
    /// A name before '(' that is a table, view or CTE with its column list, not a call: INSERT INTO t (a), INSERT INTO
    /// app.t (a), CREATE TABLE IF NOT EXISTS t (…), COPY t (a), REFERENCES p (id), CREATE VIEW v (a), WITH c (a) AS,
    /// AS x (a, b). Taken for a call, such a name only cost a needless look-up of the server's lock functions.
    /// </summary>
    private static bool NamesARelation(string sql, int nameAt, string? previous, int previousEnd, string? beforePrevious)
    {
        // app.t: the word that matters is the one before the schema.
        var lead = nameAt > 0 && sql[nameAt - 1] == '.' && previousEnd == nameAt - 1 ? beforePrevious : previous;
        return lead is "INTO" or "TABLE" or "REFERENCES" or "COPY" or "EXISTS" or "VIEW" or "AS" or "WITH";
    }

    /// <summary>At a word's end: a '(' follows (blanks and comments between), so the word names something called.</summary>
    private static bool IsCall(string sql, int end)
    {
        var open = end < 0 ? -1 : StatementShape.SkipBlank(sql, end);
        return open >= 0 && sql[open] == '(';
    }

    /// <summary>
    /// At a statement's end: CREATE [OR REPLACE] FUNCTION, ALTER PROCEDURE, DROP ROUTINE, CREATE EXTENSION … changes
    /// which functions may take a lock; the names in its header are definitions, not calls, so they are dropped.
    /// </summary>
    private static void EndCalls(in FirstWords first, int count, List<string>? called, ref int statementCalls, ref bool redefines)
    {
        if (first[0] is "CREATE" or "ALTER" or "DROP")
        {
            for (var k = 1; k < Math.Min(count, FirstWords.Length); k++)
            {
                if (first[k] is "FUNCTION" or "PROCEDURE" or "ROUTINE" or "EXTENSION")
                {
                    redefines = true;
                    called?.RemoveRange(statementCalls, called.Count - statementCalls);
                    break;
                }

                if (first[k] is not ("OR" or "REPLACE" or "AGGREGATE"))
                {
                    break;
                }
            }
        }

        statementCalls = called?.Count ?? 0;
    }

    /// <summary>
    /// Words before '(' that are syntax (IN (, VALUES (, numeric(10, 2)) or the most common built-in functions: no user
    /// function is looked for under these names, so a statement made only of them never asks the server. A user function
    /// that shares one of these names is not seen (documented in docs/client.md).
    /// </summary>
    private static readonly WordSet NotAUserFunction = new(
    [
        "IN", "VALUES", "EXISTS", "ANY", "ALL", "SOME", "ARRAY", "ROW", "AS", "ON", "USING", "OVER", "FILTER", "WITHIN",
        "CAST", "AND", "OR", "NOT", "WHERE", "SELECT", "FROM", "JOIN", "LATERAL", "TABLE", "BY", "KEY", "UNIQUE", "CHECK",
        "DEFAULT", "IF", "WHEN", "THEN", "ELSE", "CASE", "RETURN", "RETURNS", "SET", "INTO", "WITH", "LIKE", "ILIKE", "IS",
        "DISTINCT", "LIMIT", "OFFSET", "HAVING", "UNION", "EXCEPT", "INTERSECT", "RETURNING", "PARTITION", "INCLUDE",
        "CONFLICT", "COALESCE", "NULLIF", "GREATEST", "LEAST", "EXTRACT", "POSITION", "SUBSTRING", "TRIM", "OVERLAY", "ROLLUP", "CUBE",
        "SETS", "GROUPING", "NUMERIC", "DECIMAL", "VARCHAR", "CHAR", "CHARACTER", "VARYING", "TIMESTAMP", "TIME",
        "INTERVAL", "BIT", "FLOAT", "WHILE", "EXECUTE", "PERFORM", "RAISE", "FOREACH", "LOOP",
        "COUNT", "SUM", "MIN", "MAX", "AVG", "NOW", "LOWER", "UPPER", "LENGTH", "ROUND", "ABS", "FORMAT", "CONCAT",
        "STRING_AGG", "ARRAY_AGG", "JSON_AGG", "JSONB_AGG", "JSON_BUILD_OBJECT", "JSONB_BUILD_OBJECT", "ROW_NUMBER",
        "RANK", "UNNEST", "GENERATE_SERIES", "TO_CHAR", "TO_DATE", "TO_TIMESTAMP", "DATE_TRUNC", "PG_SLEEP",
        "PG_BACKEND_PID", "PG_ADVISORY_XACT_LOCK", "PG_TRY_ADVISORY_XACT_LOCK", "PG_ADVISORY_XACT_LOCK_SHARED",
        "PG_TRY_ADVISORY_XACT_LOCK_SHARED", "CURRENT_SETTING", "HASHTEXT", "PG_TERMINATE_BACKEND", "PG_CANCEL_BACKEND",
    ]);

    /// <summary>Words compared without regard to case and without a string per word (the scan runs before every statement).</summary>
    private sealed class WordSet(string[] words)
    {
        private readonly string[][] _byLength = Enumerable.Range(0, words.Max(w => w.Length) + 1)
            .Select(n => words.Where(w => w.Length == n).ToArray())
            .ToArray();

        public bool Contains(ReadOnlySpan<char> word)
        {
            if (word.Length >= _byLength.Length)
            {
                return false;
            }

            foreach (var known in _byLength[word.Length])
            {
                if (word.Equals(known, StringComparison.OrdinalIgnoreCase))
                {
                    return true;
                }
            }

            return false;
        }
    }

    /// <summary>
    /// The code inside a DO block's quoted body (<c>DO $$ … $$</c>, <c>DO $tag$ … $tag$</c>, <c>DO '…'</c>): it runs
    /// now, in this session, so what it takes (<c>PERFORM pg_advisory_lock(…)</c>, <c>CREATE TEMP TABLE</c>) is
    /// the session's. A function's body (CREATE FUNCTION … AS $$ … $$) only runs when called: the server is asked about
    /// it then (<see cref="AdvisoryLockFunctions"/>).
    /// </summary>
    private static string? DoBody(string sql, int start, int end)
    {
        if (sql[start] == '\'' && end - start >= 2)
        {
            return sql.Substring(start + 1, end - start - 2);
        }

        if (sql[start] != '$')
        {
            return null;
        }

        var tagEnd = sql.IndexOf('$', start + 1);
        var tagLength = tagEnd - start + 1;
        return tagEnd > start && end - start >= 2 * tagLength ? sql.Substring(tagEnd + 1, end - start - 2 * tagLength) : null;
    }

    /// <summary>
    /// What a DO body may leave: anything it names, since its control flow decides what runs. Whether it still holds an
    /// advisory lock (it may take one and release it, or take it only on a branch) is asked of the server afterwards.
    /// What it clears is not taken: a branch may skip it.
    /// </summary>
    private static void TakeDoBody(SessionStatementEffect body, ref SessionStateKinds sets, ref bool checks, ref bool setsName)
    {
        sets |= body.Sets;
        checks |= body.ChecksAdvisoryLocks || ((body.Sets | body.Clears) & SessionStateKinds.AdvisoryLock) != 0;
        setsName |= body.SetsApplicationName;
    }

    /// <summary>The first words of a statement, without an array per scan (the scan runs before every statement).</summary>
    [System.Runtime.CompilerServices.InlineArray(Length)]
    private struct FirstWords
    {
        public const int Length = 5;
        private string? _word;
    }

    /// <summary>Every word the scan compares, upper case; any other word reads as <see cref="OtherWord"/>.</summary>
    private static readonly string[] Keywords =
    [
        "PG_ADVISORY_LOCK", "PG_ADVISORY_LOCK_SHARED", "PG_TRY_ADVISORY_LOCK", "PG_TRY_ADVISORY_LOCK_SHARED",
        "PG_ADVISORY_UNLOCK", "PG_ADVISORY_UNLOCK_SHARED", "PG_ADVISORY_UNLOCK_ALL", "SET_CONFIG",
        "DROP", "COMMIT", "ON", "HOLD", "WITH", "TEMP", "TEMPORARY", "INTO", "UNLISTEN", "SET", "LOCAL", "TRANSACTION",
        "CONSTRAINTS", "APPLICATION_NAME", "SESSION", "RESET", "ALL", "DISCARD", "LISTEN", "PREPARE", "DEALLOCATE",
        "CREATE", "SELECT", "DECLARE", "CLOSE", "OR", "REPLACE", "GLOBAL", "ROLE", "AUTHORIZATION", "NONE", "DEFAULT",
        "DO", "BEGIN", "THEN", "ELSE", "LOOP", "ALTER", "FUNCTION", "PROCEDURE", "ROUTINE", "EXTENSION", "AGGREGATE",
        "TABLE", "REFERENCES", "COPY", "EXISTS", "VIEW", "AS",
    ];

    /// <summary>A word that is none of <see cref="Keywords"/>: it still counts as a word of the statement.</summary>
    private const string OtherWord = "";

    private static readonly string[][] KeywordsByLength = Enumerable.Range(0, Keywords.Max(k => k.Length) + 1)
        .Select(n => Keywords.Where(k => k.Length == n).ToArray())
        .ToArray();

    /// <summary>The keyword the word is (as ToUpperInvariant would have spelled it), without allocating a string per word.</summary>
    private static string Keyword(ReadOnlySpan<char> word)
    {
        if (word.Length >= KeywordsByLength.Length)
        {
            return OtherWord;
        }

        foreach (var keyword in KeywordsByLength[word.Length])
        {
            if (word.Equals(keyword, StringComparison.OrdinalIgnoreCase))
            {
                return keyword;
            }
        }

        return OtherWord;
    }

    private struct StatementFlags
    {
        public bool OnCommitDrop;
        public bool WithHold;
        public bool IntoTemp;
        public bool UnlistenAll;
    }

    /// <summary>The statement-level kinds, judged from a statement's first words once its end is reached.</summary>
    private static void Close(in FirstWords first, int count, StatementFlags statement, ref SessionStateKinds sets, ref SessionStateKinds clears, ref bool setsName)
    {
        if (count == 0)
        {
            return;
        }

        var (w1, w2) = (first[1], first[2]);
        switch (first[0])
        {
            case "SET":
                if (w1 is "LOCAL")
                {
                    // Ends with the transaction; only the lease matters here.
                    setsName |= w2 == "APPLICATION_NAME";
                }
                else if (w1 is "TRANSACTION" or "CONSTRAINTS")
                {
                    // Transaction-scoped.
                }
                else if (w1 == "APPLICATION_NAME" || (w1 == "SESSION" && w2 == "APPLICATION_NAME"))
                {
                    setsName = true;
                }
                else if (RoleWords(w1, w2, first[3]) is { } role)
                {
                    // SET [SESSION] ROLE r | SET [SESSION] SESSION AUTHORIZATION u; NONE and DEFAULT go back to the login role.
                    if (role is "NONE" or "DEFAULT")
                    {
                        clears |= SessionStateKinds.Role;
                    }
                    else
                    {
                        sets |= SessionStateKinds.Role;
                    }
                }
                else
                {
                    sets |= SessionStateKinds.Settings;
                }

                break;
            case "RESET" when w1 == "ALL":
                // role and session_authorization are not reset by RESET ALL (GUC_NO_RESET_ALL).
                clears |= SessionStateKinds.Settings;
                break;
            case "RESET" when w1 == "ROLE" || (w1 == "SESSION" && w2 == "AUTHORIZATION"):
                clears |= SessionStateKinds.Role;
                break;
            case "DISCARD" when w1 == "ALL":
                clears |= SessionStateKinds.All;
                break;
            case "DISCARD" when w1 is "TEMP" or "TEMPORARY":
                clears |= SessionStateKinds.TemporaryObjects;
                break;
            case "LISTEN":
                sets |= SessionStateKinds.ListenChannels;
                break;
            case "UNLISTEN" when statement.UnlistenAll:
                clears |= SessionStateKinds.ListenChannels;
                break;
            case "PREPARE" when w1 != "TRANSACTION":
                sets |= SessionStateKinds.PreparedStatements;
                break;
            case "DEALLOCATE" when w1 == "ALL" || (w1 == "PREPARE" && w2 == "ALL"):
                clears |= SessionStateKinds.PreparedStatements;
                break;
            case "CREATE" when !statement.OnCommitDrop && IsTemporaryCreate(first, count):
                sets |= SessionStateKinds.TemporaryObjects;
                break;
            case "SELECT" or "WITH" when statement.IntoTemp:
                sets |= SessionStateKinds.TemporaryObjects;
                break;
            case "DECLARE" when statement.WithHold:
                sets |= SessionStateKinds.HoldCursors;
                break;
            case "CLOSE" when w1 == "ALL":
                clears |= SessionStateKinds.HoldCursors;
                break;
        }
    }

    /// <summary>
    /// The word after SET's role clause (SET [SESSION] ROLE x, SET [SESSION] SESSION AUTHORIZATION x), as far as the
    /// first words show it: <see cref="OtherWord"/> for a role name, NONE or DEFAULT when those were written; null when
    /// the statement sets no role. SET LOCAL ROLE ends with the transaction and never gets here.
    /// </summary>
    private static string? RoleWords(string? w1, string? w2, string? w3) =>
        w1 == "ROLE" ? w2 ?? OtherWord
        : w1 == "SESSION" && w2 == "ROLE" ? w3 ?? OtherWord
        : w1 == "SESSION" && w2 == "AUTHORIZATION" ? w3 ?? OtherWord
        : w1 == "SESSION" && w2 == "SESSION" ? OtherWord
        : null;

    /// <summary>CREATE [OR REPLACE] [GLOBAL | LOCAL] TEMP[ORARY] … (TEMP further in: a table named temp).</summary>
    private static bool IsTemporaryCreate(in FirstWords first, int count)
    {
        for (var k = 1; k < Math.Min(count, FirstWords.Length); k++)
        {
            switch (first[k])
            {
                case "TEMP" or "TEMPORARY":
                    return true;
                case "OR" or "REPLACE" or "GLOBAL" or "LOCAL":
                    continue;
                default:
                    return false;
            }
        }

        return false;
    }

    /// <summary>set_config('application_name', …): the first argument, when it is a plain string literal.</summary>
    private static bool FirstArgumentIsApplicationName(string sql, int afterName)
    {
        var open = StatementShape.SkipBlank(sql, afterName);
        if (open < 0 || sql[open] != '(')
        {
            return false;
        }

        var quote = StatementShape.SkipBlank(sql, open + 1);
        if (quote < 0 || sql[quote] != '\'')
        {
            return false;
        }

        var end = StatementShape.SkipQuoted(sql, quote, '\'', backslashEscapes: false);
        return end > quote && sql.AsSpan(quote + 1, end - quote - 2).Trim().Equals("application_name", StringComparison.OrdinalIgnoreCase);
    }
}
