using Aequor.Engine.Reaper;

namespace Aequor.Engine.Tests.Reaper;

/// <summary>The selection rules on hand-made rows: ordering ties, states, thresholds, the clock.</summary>
public sealed class ReapPlannerTests
{
    private const string Service = "svc";
    private const long Now = 1_800_000_000_000;
    private static readonly LeaseSigner Signer = new(ReaperKit.Secret);
    private static readonly LeaseVerifier Verifier = new(ReaperKit.Secret);
    private static readonly DateTime Since = new(2026, 1, 1, 0, 0, 0, DateTimeKind.Utc);

    private static ReapSettings Settings(int maxKills = 10, bool iit = false) =>
        new(Service, false, maxKills, 180, iit, 60, 0.8);

    private static ScannedBackend Row(int pid, long expiry, double idle, string? state = "idle", bool canSignal = true) =>
        new(pid, Signer.Sign(Service, "inst" + pid.ToString("D4", System.Globalization.CultureInfo.InvariantCulture), expiry), state, "app", state is null ? null : Since, state is null ? null : idle, canSignal);

    [Fact]
    public void Near_the_limit_the_cap_is_the_near_limit_cap_unless_a_request_named_one()
    {
        var rows = Enumerable.Range(1, 30).Select(pid => Row(pid, Now - 10, 200)).ToList();
        var settings = Settings(maxKills: 10) with { NearLimitMaxKills = 25 };

        Assert.Equal(10, ReapPlanner.Select(rows, Now, settings, Verifier).Candidates.Count);
        var near = ReapPlanner.Select(rows, Now, settings, Verifier, nearLimit: true);
        Assert.Equal(25, near.Candidates.Count);
        Assert.Equal(5, near.Skipped[ReapReasons.OverLimit]);

        // Never below the normal cap; a manual request's own cap holds in a storm too.
        Assert.Equal(10, ReapPlanner.Select(rows, Now, settings with { NearLimitMaxKills = 3 }, Verifier, nearLimit: true).Candidates.Count);
        var options = new ReaperOptions { ServiceName = Service, CoordinationSecret = ReaperKit.Secret };
        Assert.Equal(ReaperOptions.DefaultNearLimitMaxIdleConnectionsToKill, ReapSettings.From(options, null).NearLimitMaxKills);
        Assert.Equal(4, ReapSettings.From(options, new ReapRequest { MaxIdleConnectionsToKill = 4 }).NearLimitMaxKills);
    }

    [Fact]
    public void Ties_on_expiry_go_to_the_longest_idle_then_the_lowest_pid()
    {
        var plan = ReapPlanner.Select(
            [Row(30, Now - 10, 200), Row(20, Now - 10, 500), Row(10, Now - 10, 200), Row(40, Now - 99, 181)],
            Now, Settings(maxKills: 3), Verifier);

        Assert.Equal([40, 20, 10], plan.Candidates.Select(c => c.Pid));
        Assert.Equal(1, plan.Skipped[ReapReasons.OverLimit]);
    }

    [Fact]
    public void Expiry_is_compared_with_the_given_database_clock_not_the_local_one()
    {
        // Expires "now" on the database clock: not yet expired (pg-aequor: expired means now > e).
        var atNow = ReapPlanner.Select([Row(1, Now, 999)], Now, Settings(), Verifier);
        var past = ReapPlanner.Select([Row(1, Now, 999)], Now + 1, Settings(), Verifier);

        Assert.Empty(atNow.Candidates);
        Assert.Equal(1, atNow.Skipped[ReapReasons.NotExpired]);
        Assert.Single(past.Candidates);
    }

    [Theory]
    [InlineData("active", false, ReapReasons.NotIdle)]
    [InlineData("idle in transaction", false, ReapReasons.InTransaction)]
    [InlineData("idle in transaction (aborted)", false, ReapReasons.InTransaction)]
    [InlineData("idle in transaction", true, null)]
    [InlineData("idle in transaction (aborted)", true, null)]
    [InlineData(null, true, ReapReasons.StateHidden)]
    public void States(string? state, bool includeIdleInTransaction, string? reason)
    {
        var plan = ReapPlanner.Select([Row(1, Now - 1, 999, state)], Now, Settings(iit: includeIdleInTransaction), Verifier);

        if (reason is null)
        {
            Assert.Single(plan.Candidates);
        }
        else
        {
            Assert.Empty(plan.Candidates);
            Assert.Equal(1, plan.Skipped[reason]);
        }
    }

    [Fact]
    public void Idle_in_transaction_has_its_own_threshold()
    {
        var young = ReapPlanner.Select([Row(1, Now - 1, 59, "idle in transaction")], Now, Settings(iit: true), Verifier);
        var old = ReapPlanner.Select([Row(1, Now - 1, 60, "idle in transaction")], Now, Settings(iit: true), Verifier);

        Assert.Equal(1, young.Skipped[ReapReasons.TooYoung]);
        Assert.Single(old.Candidates);
    }

    [Fact]
    public void A_backend_we_may_not_signal_is_reported_by_pid_and_not_selected()
    {
        var plan = ReapPlanner.Select([Row(7, Now - 1, 999, state: null, canSignal: false)], Now, Settings(), Verifier);

        Assert.Empty(plan.Candidates);
        Assert.Equal((7, ReapReasons.NotPermitted), (plan.NotPermitted[0].Pid, plan.NotPermitted[0].Reason));
    }

    [Fact]
    public void Each_row_gets_its_reason_in_row_order_and_a_candidate_past_the_cap_says_over_limit()
    {
        var plan = ReapPlanner.Select(
            [Row(1, Now - 10, 200), Row(2, Now + 10, 200), Row(3, Now - 99, 200), Row(4, Now - 10, 100)],
            Now, Settings(maxKills: 1), Verifier);

        Assert.Equal([ReapReasons.OverLimit, ReapReasons.NotExpired, null, ReapReasons.TooYoung], plan.Reasons);
        Assert.Equal([3], plan.Candidates.Select(c => c.Pid));
    }

    [Fact]
    public void A_listing_judges_its_own_session_current_session_before_the_cap_and_without_a_secret_no_lease_verifies()
    {
        var self = Row(1, Now - 99, 999) with { IsSelf = true };
        var plan = ReapPlanner.Select([self, Row(2, Now - 10, 200)], Now, Settings(maxKills: 1), Verifier);

        Assert.Equal([ReapReasons.CurrentSession, null], plan.Reasons);
        Assert.Equal([2], plan.Candidates.Select(c => c.Pid));
        Assert.Equal([ReapReasons.BadSignature], ReapPlanner.Select([Row(2, Now - 10, 200)], Now, Settings(), verifier: null).Reasons);
    }
}
