namespace Aequor.Engine;

/// <summary>
/// The names of the user functions and procedures whose body may take or release a session advisory lock, directly or
/// through other user functions it names, learnt from the server once per database and shared by every client of the
/// process: <c>SELECT take_job_lock(42)</c> is then treated like <c>SELECT pg_advisory_lock(42)</c> (the server is asked
/// afterwards whether a lock is held), and a statement calling none of them costs nothing more than a set lookup.
/// </summary>
/// <remarks>
/// Matched by name only, whatever the schema, the overload or the case: a function of the same name elsewhere makes a
/// statement look like it may take a lock, which costs one question to pg_locks; the other mistake would lose a lock in
/// silence. The bodies are read as text (<c>prosrc</c>; a SQL function's <c>BEGIN ATOMIC</c> body as
/// <c>pg_get_functiondef</c> prints it): a C or internal function cannot be read and is not seen, nor a lock function
/// named only in dynamically built text (<c>EXECUTE format('SELECT pg_%s(1)', 'advisory_lock')</c>), nor a trigger, a
/// view, a column default or an operator that calls one. A statement of the process that creates, replaces, alters or
/// drops a function, procedure or extension forgets what was learnt (the next call asks again); another process's is
/// seen once what was learnt is <see cref="MaxAgeMs"/> old, at the next statement that calls a name.
/// </remarks>
internal static class AdvisoryLockFunctions
{
    /// <summary>How long what was learnt stands for changes this process did not make itself.</summary>
    public const long MaxAgeMs = 60_000;

    /// <summary>
    /// One query, one round trip: the readable user routines whose body names an advisory lock function (not the
    /// _xact_ ones, which end with their transaction), then, to a fixed point, those naming one found so far as a word.
    /// </summary>
    public const string LoadSql = """
        WITH RECURSIVE routine AS (
            SELECT p.proname::text AS name,
                   CASE WHEN p.prosrc = '' AND l.lanname = 'sql' THEN pg_get_functiondef(p.oid) ELSE p.prosrc END AS body
            FROM pg_proc p
            JOIN pg_namespace n ON n.oid = p.pronamespace
            JOIN pg_language l ON l.oid = p.prolang
            WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND l.lanname NOT IN ('c', 'internal') AND p.prokind IN ('f', 'p')
        ), locking (name) AS (
            SELECT name FROM routine WHERE body ~* 'pg_(try_)?advisory_(un)?lock'
            UNION
            SELECT r.name FROM routine r JOIN locking k
              ON r.body ~* ('(^|[^[:alnum:]_$])' || regexp_replace(k.name, '([^[:alnum:]_])', E'\\\\\\1', 'g') || '($|[^[:alnum:]_$])')
        )
        SELECT name FROM locking
        """;

    private static readonly object Gate = new();
    private static readonly Dictionary<string, Known> ByDatabase = new(StringComparer.Ordinal);

    /// <summary>What was learnt, and when; <paramref name="Version"/> counts the forgettings, so a load that began before one is not kept.</summary>
    private sealed record Known(HashSet<string>? Names, long LoadedAtMs, long Version);

    /// <summary>
    /// Whether one of <paramref name="called"/> may take or release a lock, from what was learnt; null when nothing fresh
    /// is known (then <see cref="BeginLoad"/>, <see cref="LoadSql"/> and <see cref="Store"/>).
    /// </summary>
    public static bool? Calls(string database, string[] called, long nowMs)
    {
        HashSet<string>? names;
        lock (Gate)
        {
            if (!ByDatabase.TryGetValue(database, out var known) || known.Names is null || nowMs - known.LoadedAtMs > MaxAgeMs)
            {
                return null;
            }

            names = known.Names;
        }

        foreach (var name in called)
        {
            if (names.Contains(name))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>The version a load starting now must find unchanged to be kept.</summary>
    public static long BeginLoad(string database)
    {
        lock (Gate)
        {
            return ByDatabase.TryGetValue(database, out var known) ? known.Version : 0;
        }
    }

    public static void Store(string database, HashSet<string> names, long version, long nowMs)
    {
        lock (Gate)
        {
            var current = ByDatabase.TryGetValue(database, out var known) ? known.Version : 0;
            if (current == version)
            {
                ByDatabase[database] = new Known(names, nowMs, version);
            }
        }
    }

    /// <summary>A function may have changed: the next statement that calls a name asks the server again.</summary>
    public static void Forget(string database)
    {
        lock (Gate)
        {
            var version = ByDatabase.TryGetValue(database, out var known) ? known.Version : 0;
            ByDatabase[database] = new Known(null, 0, version + 1);
        }
    }
}
