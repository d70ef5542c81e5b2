using System.Diagnostics;
using System.Net.Sockets;
using Npgsql;

namespace Aequor.Engine.Tests;

/// <summary>Backoff, budget and classification: pure logic, no database.</summary>
public sealed class ClientRetryPolicyTests
{
    private static AequorClientOptions Options(int retries = 3, int min = 100, int max = 2000, int connectMs = 15_000, int queryMs = 15_000) => new()
    {
        ConnectionString = "Host=localhost",
        LeaseMode = LeaseMode.Optional,
        Retries = retries,
        MinBackoff = min,
        MaxBackoff = max,
        MaxConnectRetryTimeMs = connectMs,
        MaxQueryRetryTimeMs = queryMs,
    };

    [Fact]
    public void Jitter_stays_within_bounds_and_never_jumps_more_than_three_times_the_previous_delay()
    {
        for (var seed = 0; seed < 500; seed++)
        {
            var backoff = new Backoff(100, 2000, new Random(seed));
            var previous = 100.0;
            for (var i = 0; i < 20; i++)
            {
                var delay = backoff.Next().TotalMilliseconds;
                Assert.InRange(delay, 100, 2000);
                Assert.True(delay <= Math.Max(100, previous * 3), $"seed {seed} step {i}: {delay} after {previous}");
                previous = delay;
            }
        }
    }

    [Fact]
    public void Jitter_grows_on_average_until_the_cap()
    {
        const int runs = 2000;
        var sums = new double[6];
        var random = new Random(7);
        for (var r = 0; r < runs; r++)
        {
            var backoff = new Backoff(100, 2000, random);
            for (var i = 0; i < sums.Length; i++)
            {
                sums[i] += backoff.Next().TotalMilliseconds;
            }
        }

        var means = sums.Select(s => s / runs).ToArray();
        Assert.InRange(means[0], 150, 250); // uniform on [100, 300]
        for (var i = 1; i < 4; i++)
        {
            Assert.True(means[i] > means[i - 1], $"mean delay {i} ({means[i]:0}) should exceed delay {i - 1} ({means[i - 1]:0})");
        }

        Assert.True(means[^1] <= 2000);
    }

    [Fact]
    public void Jitter_differs_across_clients()
    {
        // Two clients get their own random source: a crowd that failed together does not retry together.
        var sequences = Enumerable.Range(0, 20)
            .Select(_ => string.Join(',', Enumerable.Range(0, 4).Select(_ => 0).Aggregate(
                (Backoff: new Backoff(100, 2000, new Random()), List: new List<double>()),
                (acc, _) => { acc.List.Add(acc.Backoff.Next().TotalMilliseconds); return acc; }).List))
            .ToHashSet();
        Assert.True(sequences.Count >= 19, $"only {sequences.Count} distinct delay sequences out of 20");
    }

    [Fact]
    public void Jitter_with_equal_bounds_is_constant()
    {
        var backoff = new Backoff(250, 250, new Random(1));
        Assert.All(Enumerable.Range(0, 5), _ => Assert.Equal(250, backoff.Next().TotalMilliseconds));
    }

    [Fact]
    public void One_budget_allows_at_most_Retries_retries_in_all_phases()
    {
        var budget = new RetryBudget(Options(retries: 3, min: 1, max: 1), new Random(1), Stopwatch.GetTimestamp());
        Assert.True(budget.TryTake(RetryPhase.Connect, out _));
        Assert.True(budget.TryTake(RetryPhase.Statement, out _));
        Assert.True(budget.TryTake(RetryPhase.Connect, out _));
        Assert.False(budget.TryTake(RetryPhase.Connect, out _));
        Assert.False(budget.TryTake(RetryPhase.Statement, out _));
        Assert.Equal(3, budget.RetriesUsed);
    }

    [Fact]
    public void The_time_budget_of_each_phase_refuses_a_delay_that_would_end_past_it()
    {
        var started = Stopwatch.GetTimestamp() - Stopwatch.Frequency; // the call began a second ago
        var budget = new RetryBudget(Options(retries: 10, min: 500, max: 500, connectMs: 1200, queryMs: 5000), new Random(1), started);
        Assert.False(budget.TryTake(RetryPhase.Connect, out _));
        Assert.True(budget.TryTake(RetryPhase.Statement, out var delay));
        Assert.Equal(500, delay.TotalMilliseconds);
    }

    [Theory]
    [InlineData("08006", "ConnectionLost")]
    [InlineData("08001", "ConnectionLost")]
    [InlineData("57P01", "ConnectionLost")]
    [InlineData("57P02", "ConnectionLost")]
    [InlineData("57P03", "ConnectionLost")]
    [InlineData("53300", "TooManyConnections")]
    [InlineData("40001", "SerializationFailure")]
    [InlineData("40P01", "SerializationFailure")]
    [InlineData("23505", "Permanent")]
    [InlineData("57014", "Permanent")]
    [InlineData("28P01", "Permanent")]
    public void SqlStates_are_classified_like_pg_aequor(string sqlState, string expected) =>
        Assert.Equal(expected, RetryClassifier.ClassifySqlState(sqlState).ToString());

    [Theory]
    [InlineData("08P01", "ERROR", "Permanent")] // a Bind with the wrong number of parameters: the session goes on
    [InlineData("08001", "ERROR", "Permanent")] // dblink could not reach its remote server
    [InlineData("08P01", "FATAL", "ConnectionLost")]
    [InlineData("57P01", "FATAL", "ConnectionLost")]
    [InlineData("53300", "FATAL", "TooManyConnections")]
    [InlineData("40001", "ERROR", "SerializationFailure")]
    public void A_server_error_the_session_survives_is_never_a_lost_connection(string sqlState, string severity, string expected)
    {
        var error = new PostgresException("message", severity, severity, sqlState);
        Assert.Equal(expected, RetryClassifier.Classify(error, connecting: false).ToString());
        Assert.Equal(expected, RetryClassifier.Classify(new NpgsqlException("wrapped", error), connecting: false).ToString());
    }

    [Fact]
    public void Serialization_failures_are_retryable_only_on_request()
    {
        Assert.False(RetryClassifier.IsRetryable(FailureKind.SerializationFailure, retrySerializationFailures: false));
        Assert.True(RetryClassifier.IsRetryable(FailureKind.SerializationFailure, retrySerializationFailures: true));
        Assert.True(RetryClassifier.IsRetryable(FailureKind.TooManyConnections, false));
        Assert.False(RetryClassifier.IsRetryable(FailureKind.Permanent, true));
    }

    [Fact]
    public void Transport_errors_are_retryable_but_a_command_timeout_and_a_cancellation_are_not()
    {
        Assert.Equal(FailureKind.ConnectionLost, RetryClassifier.Classify(new NpgsqlException("read", new EndOfStreamException()), connecting: false));
        Assert.Equal(FailureKind.ConnectionLost, RetryClassifier.Classify(new NpgsqlException("connect", new SocketException((int)SocketError.ConnectionRefused)), connecting: true));
        Assert.Equal(FailureKind.ConnectionLost, RetryClassifier.Classify(new NpgsqlException("connect", new TimeoutException()), connecting: true));
        Assert.Equal(FailureKind.Permanent, RetryClassifier.Classify(new NpgsqlException("command", new TimeoutException()), connecting: false));
        Assert.Equal(FailureKind.Permanent, RetryClassifier.Classify(new OperationCanceledException(), connecting: false));
        Assert.Equal(FailureKind.Permanent, RetryClassifier.Classify(new InvalidCastException(), connecting: false));
    }

    [Theory]
    [InlineData("SELECT 1", true)]
    [InlineData("  -- lead\n select * from t where a = ';' ;  ", true)]
    [InlineData("INSERT INTO t VALUES ($1, 'a;b', E'\\';x')", true)]
    [InlineData("WITH x AS (SELECT 1) SELECT * FROM x", true)]
    [InlineData("SELECT $$a;b$$, $tag$ ; $tag$", true)]
    [InlineData("/* a /* nested ; */ */ UPDATE t SET a = 1", true)]
    [InlineData("SELECT \"a;b\" FROM t", true)]
    [InlineData("SELECT 1; SELECT 2", false)]
    [InlineData("INSERT INTO t VALUES (1); SELECT pg_sleep(1)", false)]
    [InlineData("VACUUM t", false)]
    [InlineData("CREATE INDEX CONCURRENTLY i ON t (a)", false)]
    [InlineData("BEGIN", false)]
    [InlineData("CALL p()", false)]
    [InlineData("SELECT 'unterminated", false)]
    [InlineData("", false)]
    public void Only_a_single_plain_statement_shares_a_batch_with_the_renewal(string sql, bool expected) =>
        Assert.Equal(expected, StatementShape.CanShareBatch(sql));

    [Theory]
    [InlineData("SELECT 1", 0)]
    [InlineData("SELECT $1, $2", 2)]
    [InlineData("SELECT $2 - $1", 2)]
    [InlineData("SELECT $10::int", 10)]
    [InlineData("SELECT '$3', \"$4\", $1", 1)]
    [InlineData("SELECT E'\\'$3', $1", 1)]
    [InlineData("SELECT $1 /* $3 /* nested $4 */ $5 */ -- $6\n, $2", 2)]
    [InlineData("SELECT $$ $3 $$, $fn$ $4 $fn$, $1", 1)]
    [InlineData("SELECT a$3 FROM t WHERE x = $1", 1)]
    [InlineData("SELECT 'unterminated $1", null)]
    [InlineData("SELECT $1 /* unclosed $2", null)]
    public void The_highest_placeholder_counts_only_placeholders_outside_quotes_and_comments(string sql, int? expected) =>
        Assert.Equal(expected, StatementShape.HighestPlaceholder(sql));

    [Fact]
    public void Heartbeat_thresholds_follow_the_remaining_time_on_the_database_clock()
    {
        var o = new AequorClientOptions { ConnectionString = "Host=x", LeaseMode = LeaseMode.Optional };
        Assert.Equal(RenewalNeed.None, Heartbeat.Assess(100_000, 60_000, o));
        Assert.Equal(RenewalNeed.Soft, Heartbeat.Assess(100_000, 70_000, o));
        Assert.Equal(RenewalNeed.Soft, Heartbeat.Assess(100_000, 94_999, o));
        Assert.Equal(RenewalNeed.Hard, Heartbeat.Assess(100_000, 95_000, o));
        Assert.Equal(RenewalNeed.Hard, Heartbeat.Assess(100_000, 200_000, o));
        Assert.Equal(RenewalNeed.Hard, Heartbeat.Assess(null, 0, o));
        // A lease longer than the TTL was signed on a client clock running ahead: re-signed, without waiting.
        Assert.Equal(RenewalNeed.None, Heartbeat.Assess(100_000 + 90_000, 100_000, o));
        Assert.Equal(RenewalNeed.Soft, Heartbeat.Assess(100_000 + 92_000, 100_000, o));
    }

    [Fact]
    public void The_server_clock_offset_is_taken_at_the_midpoint_of_the_round_trip()
    {
        var clock = new ServerClock();
        Assert.False(clock.IsKnown);
        clock.Observe(sentAtClientMs: 1_000, receivedAtClientMs: 1_020, databaseMs: 61_010);
        Assert.True(clock.IsKnown);
        Assert.Equal(60_000, clock.OffsetMs);
        Assert.InRange(clock.DatabaseNowMs() - clock.ClientNowMs(), 59_990, 60_010);
    }

    /// <summary>A wall clock and a monotonic one, driven by hand: NTP or a VM resume can step the first, never the second.</summary>
    private sealed class SteppedClock : TimeProvider
    {
        public long WallMs { get; set; }

        public long MonotonicMs { get; set; }

        public override DateTimeOffset GetUtcNow() => DateTimeOffset.FromUnixTimeMilliseconds(WallMs);

        public override long GetTimestamp() => MonotonicMs;

        public override long TimestampFrequency => 1_000;

        public void At(long wallMs)
        {
            MonotonicMs += wallMs - WallMs;
            WallMs = wallMs;
        }
    }

    [Fact]
    public void A_clock_reading_with_a_long_round_trip_does_not_replace_a_better_one()
    {
        var time = new SteppedClock();
        var clock = new ServerClock(time);
        time.At(1_004);
        clock.Observe(sentAtClientMs: 1_000, receivedAtClientMs: 1_004, databaseMs: 61_002, fresh: true);
        Assert.Equal(60_000, clock.OffsetMs);

        // A probe ahead of a 3-minute statement: the server answered when the statement was done.
        time.At(182_000);
        Assert.False(clock.Observe(sentAtClientMs: 2_000, receivedAtClientMs: 182_000, databaseMs: 62_000));
        Assert.Equal(60_000, clock.OffsetMs);

        // A short one replaces it, and so does a somewhat longer one once the held reading has aged.
        time.At(183_002);
        Assert.True(clock.Observe(sentAtClientMs: 183_000, receivedAtClientMs: 183_002, databaseMs: 243_006));
        Assert.Equal(60_005, clock.OffsetMs);
        time.At(183_300);
        Assert.False(clock.Observe(sentAtClientMs: 183_100, receivedAtClientMs: 183_300, databaseMs: 243_200));
        time.At(400_200);
        Assert.True(clock.Observe(sentAtClientMs: 400_000, receivedAtClientMs: 400_200, databaseMs: 460_110));
        Assert.Equal(60_010, clock.OffsetMs);

        // A new connection (maybe to another host) starts afresh, however long its reading took.
        time.At(502_000);
        Assert.True(clock.Observe(sentAtClientMs: 500_000, receivedAtClientMs: 502_000, databaseMs: 1_000, fresh: true));
        Assert.Equal(-500_000, clock.OffsetMs);
    }

    [Fact]
    public void A_reading_after_the_client_clock_stepped_back_replaces_the_held_one_though_its_round_trip_is_longer()
    {
        var time = new SteppedClock();
        var clock = new ServerClock(time);
        time.At(1_002);
        clock.Observe(sentAtClientMs: 1_000, receivedAtClientMs: 1_002, databaseMs: 1_001, fresh: true);
        Assert.Equal(0, clock.OffsetMs);

        // NTP steps the client's clock back 10 minutes; the monotonic clock goes on. Renewals 25 s apart, each with a
        // 10 ms round trip (a worse reading than the connect's 2 ms), must correct the offset: every lease is signed
        // on it, and one 10 minutes early is expired at birth for a 10-minute lease.
        time.WallMs -= 600_000;
        for (var i = 1; i <= 3; i++)
        {
            time.MonotonicMs += 25_000;
            time.WallMs += 25_000;
            var sent = time.WallMs - 10;
            clock.Observe(sentAtClientMs: sent, receivedAtClientMs: time.WallMs, databaseMs: sent + 5 + 600_000);
            Assert.Equal(600_000, clock.OffsetMs);
        }
    }
}

public sealed class ClientOptionsTests
{
    [Theory]
    [InlineData(90_000, 30_000, 40_000, "HeartbeatHardWaitRemainingMs")]
    [InlineData(30_000, 30_000, 5_000, "HeartbeatSoftRemainingMs")]
    public void Heartbeat_thresholds_that_cannot_work_are_refused(int ttl, int soft, int hard, string named)
    {
        var ex = Assert.Throws<AequorConfigurationException>(() => new AequorClientOptions
        {
            ConnectionString = "Host=x",
            LeaseMode = LeaseMode.Optional,
            LeaseTtlMs = ttl,
            HeartbeatSoftRemainingMs = soft,
            HeartbeatHardWaitRemainingMs = hard,
        }.Validate());
        Assert.Contains(named, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_zero_MinBackoff_is_refused_because_every_retry_would_be_immediate()
    {
        var ex = Assert.Throws<AequorConfigurationException>(() => new AequorClientOptions
        {
            ConnectionString = "Host=x",
            LeaseMode = LeaseMode.Optional,
            MinBackoff = 0,
            MaxBackoff = 2_000,
        }.Validate());
        Assert.Contains("MinBackoff", ex.Message, StringComparison.Ordinal);
        Assert.Contains("immediate", ex.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentOutOfRangeException>(() => new Backoff(0, 2_000, new Random(7)));

        // The smallest accepted floor still backs off: the delays grow towards MaxBackoff.
        var backoff = new Backoff(1, 2_000, new Random(7));
        var delays = Enumerable.Range(0, 50).Select(_ => backoff.Next().TotalMilliseconds).ToList();
        Assert.Contains(delays, d => d >= 100);
    }
}
