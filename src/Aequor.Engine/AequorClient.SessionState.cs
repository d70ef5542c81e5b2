using Npgsql;

namespace Aequor.Engine;

/// <summary>
/// What the caller's statements left in the backend's session, remembered so that a transparent reconnect that loses it
/// is never silent; and the lease put back after a statement that reset application_name.
/// </summary>
public sealed partial class AequorClient
{
    /// <summary>
    /// Outside a transaction block only session-level advisory locks can be held (a _xact_ lock ends with its implicit
    /// transaction), so this is exact where it is asked.
    /// </summary>
    internal const string HoldsAdvisoryLockSql = "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted)";

    private SessionStateKinds _sessionState;
    private long _sessionStateGeneration;
    private bool _advisoryLocksToCheck;
    private string? _lastScannedText;
    private SessionStatementEffect _lastScannedEffect;
    private string? _functionsKey;

    // A statement of this session redefined a function: what was learnt is forgotten again when its transaction ends,
    // since another client's load in between did not see the change before it committed.
    private bool _functionsRedefined;

    // Names a statement that died with its connection called, before anything was known of them: judged on the
    // replacement connection before the next statement (JudgeCallsLostWithConnectionAsync).
    private string[]? _unjudgedCalls;

    /// <summary>The database the lock-taking functions are learnt for (<see cref="AdvisoryLockFunctions"/>).</summary>
    private string FunctionsKey => _functionsKey ??= string.Join('\n', _baseBuilder.Host, _baseBuilder.Port, _baseBuilder.Database ?? _baseBuilder.Username);

    /// <summary>
    /// What the client believes the current connection's session holds, read from the statements' text
    /// (<see cref="SessionStateText"/>): a guess that errs towards "held". A replacement connection does not have it:
    /// the first statement on one is refused when an advisory lock may have been held
    /// (<see cref="AequorSessionStateLostException"/>), otherwise <see cref="OnSessionStateLost"/> is raised.
    /// </summary>
    public SessionStateKinds SessionState => _sessionState;

    /// <summary>
    /// The scan of a statement's text, kept for the text last scanned: a loop sends the same string again and again (a
    /// reused <see cref="AequorStatement"/>, a script's literal), and the scan runs before every statement. Calls are
    /// serialised by the client's gate.
    /// </summary>
    private SessionStatementEffect ScanSessionState(string commandText)
    {
        if (!ReferenceEquals(commandText, _lastScannedText))
        {
            _lastScannedEffect = SessionStateText.Scan(commandText);
            _lastScannedText = commandText;
        }

        return _lastScannedEffect;
    }

    /// <summary>
    /// On a connection that replaced the one a failed statement died with, just before <see cref="TakeLostSessionState"/>:
    /// whether what it called may have taken a lock, learnt from the server when nothing fresh is known. True when there
    /// was something to judge (the connection may have been found dead meanwhile).
    /// </summary>
    private async Task<bool> JudgeCallsLostWithConnectionAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        if (_unjudgedCalls is not { } called || Generation == _sessionStateGeneration)
        {
            return false;
        }

        _unjudgedCalls = null;
        var judged = await ResolveCallsAsync(connection, SessionStatementEffect.None with { CalledNames = called }, Generation, cancellationToken).ConfigureAwait(false);
        _sessionState |= judged.Sets & SessionStateKinds.AdvisoryLock;
        return true;
    }

    /// <summary>
    /// The called names judged from what is already known, without a round trip: before the statement is sent, so that
    /// one calling a lock-taking function right after a reconnect runs (it takes the lock again). Left for
    /// <see cref="ResolveCallsAsync"/> when nothing fresh is known.
    /// </summary>
    private SessionStatementEffect ResolveKnownCalls(SessionStatementEffect effect) =>
        effect.CalledNames is { } called && AdvisoryLockFunctions.Calls(FunctionsKey, called, Environment.TickCount64) is { } calls
            ? effect.CallingAdvisoryLockFunction(calls)
            : effect;

    /// <summary>
    /// After the statement ran: the called names still unjudged are judged now, learning the lock-taking functions from
    /// the server first (one round trip, once per <see cref="AdvisoryLockFunctions.MaxAgeMs"/> and database). Not inside
    /// a transaction block (a failed query would abort it): there, and when the server does not answer, a call counts
    /// as one that may take a lock, and pg_locks is asked when the block ends.
    /// </summary>
    private async Task<SessionStatementEffect> ResolveCallsAsync(NpgsqlConnection connection, SessionStatementEffect effect, long generation, CancellationToken cancellationToken)
    {
        effect = ResolveKnownCalls(effect);
        if (effect.CalledNames is not { } called)
        {
            return effect;
        }

        if (InTransaction)
        {
            return effect.CallingAdvisoryLockFunction(true);
        }

        var version = AdvisoryLockFunctions.BeginLoad(FunctionsKey);
        try
        {
            var names = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
            var command = new NpgsqlCommand(AdvisoryLockFunctions.LoadSql, connection);
            await using (command.ConfigureAwait(false))
            {
                var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
                await using (reader.ConfigureAwait(false))
                {
                    while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                    {
                        names.Add(reader.GetString(0));
                    }
                }
            }

            Touch();
            AdvisoryLockFunctions.Store(FunctionsKey, names, version, Environment.TickCount64);
            return effect.CallingAdvisoryLockFunction(called.Any(names.Contains));
        }
#pragma warning disable CA1031 // Unanswered, the call counts as one that may take a lock: the safe side. A dead connection is dropped as usual.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            if (!IsAlive(connection))
            {
                await MarkDeadAsync(generation, "probe", ex).ConfigureAwait(false);
            }

            return effect.CallingAdvisoryLockFunction(true);
        }
    }

    /// <summary>
    /// A statement that would overwrite the lease. Refused rather than run and then overwritten by a fresh lease: the
    /// caller asked for a value that cannot stay, and a session whose application_name is not its lease is invisible to
    /// every reaper, the very zombie the lease exists to end.
    /// </summary>
    private void RefuseApplicationName(SessionStatementEffect effect)
    {
        if (effect.SetsApplicationName && _signer is not null)
        {
            throw new AequorConfigurationException(
                "The statement sets application_name, which holds this session's lease (how reapers tell a live session from a frozen worker's): " +
                "it cannot be given another value. Nothing was sent. Label the work another way (a comment in the SQL, or a setting of your own such as SET myapp.job = '…'), " +
                "or connect without a coordination secret (LeaseMode Optional) for a session whose application_name is yours.");
        }
    }

    /// <summary>
    /// Just before something is sent on the current connection: when it replaced the one the remembered state belongs
    /// to, that state is gone. A lost advisory lock is returned as the caller's error (<paramref name="what"/>: "The statement
    /// was not run"); anything else is reported through <see cref="OnSessionStateLost"/> and the call goes on. Either way the
    /// memory now belongs to the new connection, so the next statement runs.
    /// </summary>
    private AequorSessionStateLostException? TakeLostSessionState(SessionStatementEffect effect, string what)
    {
        var generation = Generation;
        if (generation == _sessionStateGeneration)
        {
            return null;
        }

        // What this very statement clears (DISCARD ALL, pg_advisory_unlock_all()) is not missed.
        var lost = _sessionState & ~effect.Clears;
        _sessionState = SessionStateKinds.None;
        _advisoryLocksToCheck = false;
        _sessionStateGeneration = generation;
        if (lost == SessionStateKinds.None)
        {
            return null;
        }

        // A statement that takes a lock (or a role) again is what the script does about the loss, not work that relies on
        // the old one: it runs, and the loss is reported like the rest.
        if ((lost & (SessionStateKinds.AdvisoryLock | SessionStateKinds.Role) & ~effect.Sets) != 0)
        {
            var relied = lost.HasFlag(SessionStateKinds.AdvisoryLock) && lost.HasFlag(SessionStateKinds.Role)
                ? "without an advisory lock it may rely on, and as the login role instead of the role it took"
                : lost.HasFlag(SessionStateKinds.AdvisoryLock)
                    ? "without an advisory lock it may rely on"
                    : "as the login role instead of the role it took (SET ROLE, SET SESSION AUTHORIZATION), with other privileges";
            var again = lost.HasFlag(SessionStateKinds.AdvisoryLock) && lost.HasFlag(SessionStateKinds.Role)
                ? "Take the role and the lock again"
                : lost.HasFlag(SessionStateKinds.AdvisoryLock) ? "Take the lock again (or give up the work it guarded)" : "Set the role again";
            return new AequorSessionStateLostException(
                "The connection was replaced: its backend ended between statements (an idle timeout, a reaper, an administrator, a restart), " +
                $"and with it what its session held: {SessionStateNames.Describe(lost)}. {what}, so that it does not run {relied}. " +
                $"{again}; the session works for the next statement.",
                _lastDeath)
            {
                Lost = lost,
            };
        }

        if (OnSessionStateLost is { } handlers)
        {
            EventDispatch.Raise(handlers, this, new AequorSessionStateLostEvent(generation, lost), Counters);
        }

        return null;
    }

    /// <summary>
    /// After a statement of the caller's completed: remember what it left in the session; then, outside a transaction,
    /// ask the server whether an advisory lock is still held when the text could not tell, and put a fresh lease back
    /// when the statement reset application_name (RESET ALL, DISCARD ALL, RESET application_name, a function): the
    /// startup value it returns to is the data source's old lease, which expires and, idle, gets this session reaped.
    /// Best effort: the statement succeeded, and nothing here may turn that into an error.
    /// </summary>
    private Task AfterSessionStatementAsync(SessionStatementEffect effect, long generation, CancellationToken cancellationToken) =>
        NothingToSettle(effect, generation) ? Task.CompletedTask : AfterSessionStatementCoreAsync(effect, generation, cancellationToken);

    /// <summary>
    /// What <see cref="AfterSessionStatementCoreAsync"/> and <see cref="SettleSessionAsync"/> would find with nothing to
    /// do — a statement that left nothing in the session (most do), nothing pending, the lease in place — decided
    /// without their three asynchronous calls: timed in place, those cost ~4 µs of a 100 µs SELECT 1 with client and
    /// server on one core, where the same code takes well under 1 µs in a warm loop. Keep it in step with them.
    /// </summary>
    private bool NothingToSettle(SessionStatementEffect effect, long generation) =>
        effect == SessionStatementEffect.None
        && _unjudgedCalls is null
        && !_functionsRedefined
        && !_advisoryLocksToCheck
        && (InTransaction || LeaseToPutBack(generation) is null);

    /// <summary>
    /// The connection whose lease a statement reset (RESET ALL, DISCARD ALL, a function setting application_name) and
    /// <see cref="SettleSessionAsync"/> puts back; null when the lease is in place or nothing can be done about it.
    /// </summary>
    private NpgsqlConnection? LeaseToPutBack(long generation) =>
        _signer is not null && generation == Generation && _connection is { } connection && IsAlive(connection) && ReadServerLease(connection) is null
            ? connection
            : null;

    private async Task AfterSessionStatementCoreAsync(SessionStatementEffect effect, long generation, CancellationToken cancellationToken)
    {
        if (effect.RedefinesFunctions)
        {
            AdvisoryLockFunctions.Forget(FunctionsKey);
            _functionsRedefined = true;
        }

        if (generation != Generation || _connection is not { } connection || !IsAlive(connection))
        {
            return;
        }

        effect = await ResolveCallsAsync(connection, effect, generation, cancellationToken).ConfigureAwait(false);
        if (generation != Generation)
        {
            return;
        }

        if (generation == _sessionStateGeneration)
        {
            _unjudgedCalls = null;
            _sessionState = (_sessionState & ~effect.Clears) | effect.Sets;
            _advisoryLocksToCheck = (_advisoryLocksToCheck && !effect.Clears.HasFlag(SessionStateKinds.AdvisoryLock)) || effect.ChecksAdvisoryLocks;
        }

        if (InTransaction)
        {
            // A renewal would be undone by a rollback, and pg_locks would show the transaction's own locks: both wait
            // for the end of the block (AfterTransactionEndedAsync) or the first statement outside it.
            return;
        }

        await SettleSessionAsync(connection, generation, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// After <see cref="CommitAsync"/> or <see cref="RollbackAsync"/>: what the block's statements left to ask (an
    /// advisory lock released inside it — advisory locks ignore the rollback) or to put back (RESET ALL inside it, now
    /// committed) is done now, not at the next statement: the session may idle, or lose its backend, in between.
    /// </summary>
    private async Task AfterTransactionEndedAsync(long generation, CancellationToken cancellationToken)
    {
        if (generation == Generation && _connection is { } connection && IsAlive(connection))
        {
            await SettleSessionAsync(connection, generation, cancellationToken).ConfigureAwait(false);
        }
    }

    private async Task SettleSessionAsync(NpgsqlConnection connection, long generation, CancellationToken cancellationToken)
    {
        if (_functionsRedefined)
        {
            _functionsRedefined = false;
            AdvisoryLockFunctions.Forget(FunctionsKey);
        }

        if (_advisoryLocksToCheck && generation == _sessionStateGeneration)
        {
            await CheckAdvisoryLocksAsync(connection, generation, cancellationToken).ConfigureAwait(false);
        }

        if (LeaseToPutBack(generation) is { } current)
        {
            try
            {
                _ = await RunStandalonePrefixAsync(current, new PrefixPlan(PrefixKind.Renew, Standalone: true), cancellationToken).ConfigureAwait(false);
            }
#pragma warning disable CA1031 // A failed renewal is handled as any other (HeartbeatErrorMode); the statement's result stands.
            catch (Exception)
#pragma warning restore CA1031
            {
            }
        }
    }

    /// <summary>A statement that failed after it was sent may still have taken a lock: a rollback does not release one.</summary>
    private void RememberAfterFailure(SessionStatementEffect effect, long generation)
    {
        if (generation != _sessionStateGeneration)
        {
            return;
        }

        // What a failed statement called is judged from what is known (a function may raise after pg_advisory_lock, and
        // the lock outlives the rollback). Unknown on a live connection: as one that may have taken a lock, which the next
        // statement asks pg_locks about. On a dead one the server is asked about the names on the next connection, so a
        // plain INSERT INTO t (a) lost with its connection does not read as a lost lock.
        effect = ResolveKnownCalls(effect);
        if (effect.CalledNames is { } called)
        {
            if (_connection is { } connection && generation == Generation && IsAlive(connection))
            {
                effect = effect.CallingAdvisoryLockFunction(true);
            }
            else
            {
                _unjudgedCalls = called;
                effect = effect.CallingAdvisoryLockFunction(false);
            }
        }

        var locks = effect.Sets & SessionStateKinds.AdvisoryLock;
        _sessionState |= locks;
        _advisoryLocksToCheck |= locks != SessionStateKinds.None || effect.ChecksAdvisoryLocks;
    }

    private async Task CheckAdvisoryLocksAsync(NpgsqlConnection connection, long generation, CancellationToken cancellationToken)
    {
        try
        {
            var command = new NpgsqlCommand(HoldsAdvisoryLockSql, connection);
            await using (command.ConfigureAwait(false))
            {
                var held = await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) is true;
                _advisoryLocksToCheck = false;
                _sessionState = held ? _sessionState | SessionStateKinds.AdvisoryLock : _sessionState & ~SessionStateKinds.AdvisoryLock;
            }

            Touch();
        }
#pragma warning disable CA1031 // Unanswered, the lock stays remembered as held: the safe side. A dead connection is dropped as usual.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            if (!IsAlive(connection))
            {
                await MarkDeadAsync(generation, "probe", ex).ConfigureAwait(false);
            }
        }
    }
}
