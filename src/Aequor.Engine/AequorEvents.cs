namespace Aequor.Engine;

// The payloads of pg-aequor's hooks. Statements are described by their SQL text and parameter count only:
// parameter values can carry personal data and never leave the client through an event.

/// <summary>
/// The server sent a notice while a statement ran: <c>RAISE NOTICE</c>/<c>WARNING</c>/<c>INFO</c> in a function or a
/// migration, or a warning of its own ("there is no transaction in progress"). <see cref="Severity"/> is the
/// untranslated one (WARNING, NOTICE, INFO, LOG, DEBUG).
/// </summary>
public sealed record AequorNoticeEvent(string Severity, string SqlState, string MessageText, string? Detail, string? Hint);

/// <summary>A physical connection was opened (pg-aequor <c>onConnect {gen}</c>).</summary>
public sealed record AequorConnectEvent(long Generation, int BackendPid, bool IsReconnect);

/// <summary>
/// A connection is about to be made again (pg-aequor <c>onReconnect {gen, retries, delay, err}</c>): after a
/// failed connect attempt (<see cref="Retries"/> ≥ 1, with the delay about to be waited), or because the
/// previous connection died (<see cref="Retries"/> 0, no delay).
/// </summary>
public sealed record AequorReconnectEvent(long Generation, int Retries, TimeSpan Delay, Exception? Error);

/// <summary>A statement is about to run (<c>onQueryStart {args, startedAt}</c>).</summary>
public sealed record AequorQueryStartEvent(string CommandText, int ParameterCount, DateTimeOffset StartedAt);

/// <summary>A statement completed (<c>onQueryEnd {args, res, duration}</c>). For a reader: when it is disposed.</summary>
public sealed record AequorQueryEndEvent(string CommandText, int ParameterCount, int RecordsAffected, long RowsRead, TimeSpan Duration, int Attempts);

/// <summary>An attempt failed (<c>onQueryError {args, err, duration}</c>); <see cref="WillRetry"/> says whether another follows.</summary>
public sealed record AequorQueryErrorEvent(string CommandText, int ParameterCount, Exception Error, TimeSpan Duration, int Attempt, bool WillRetry);

/// <summary>A statement is about to be tried again (<c>onQueryRetry {retries, delay, err}</c>).</summary>
public sealed record AequorQueryRetryEvent(string CommandText, int Retries, TimeSpan Delay, Exception Error);

/// <summary>The server confirmed a renewed lease (<c>onHeartbeat {gen}</c>).</summary>
public sealed record AequorHeartbeatEvent(long Generation, DateTimeOffset LeaseExpiresAt, bool SharedRoundTrip);

/// <summary>A renewal failed (<c>onHeartbeatFail {gen, err}</c>).</summary>
public sealed record AequorHeartbeatFailEvent(long Generation, Exception Error, HeartbeatErrorMode Mode);

/// <summary>
/// A reaper pass ran after a connect (<c>onReap {gen, locked, killed, durationMs}</c>). <see cref="Error"/>: the
/// pass failed and ReaperErrorMode Swallow kept it from the caller. The full result is <see cref="AequorClient.LastReap"/>.
/// </summary>
public sealed record AequorReapEvent(long Generation, bool Locked, int Killed, TimeSpan Duration, Exception? Error = null);

/// <summary>
/// The client's connection was found dead and dropped (<c>onClientDead {source, err, meta}</c>); the next
/// statement reconnects. <see cref="Source"/> names what found it: probe, statement, reader, heartbeat, commit, rollback.
/// </summary>
public sealed record AequorClientDeadEvent(long Generation, string Source, Exception? Error, int? BackendPid);

/// <summary>
/// A statement is about to run on a connection that replaced one whose session held state the new one lacks
/// (<see cref="Lost"/>: temporary tables, prepared statements, LISTEN channels, settings, cursors WITH HOLD). Raised
/// for these only: a lost advisory lock refuses the statement instead (<see cref="AequorSessionStateLostException"/>).
/// </summary>
public sealed record AequorSessionStateLostEvent(long Generation, SessionStateKinds Lost);
