using System.Text.Json;
using Aequor.Engine.Reaper;

namespace Aequor.Engine.Tests.Reaper;

/// <summary>The kill's JSON parameters: the state_change must come back to the server to the microsecond.</summary>
public sealed class KillJsonTests
{
    [Fact]
    public void Candidates_carry_pid_app_and_state_change_to_the_microsecond_in_utc()
    {
        var since = new DateTime(2026, 11, 27, 15, 21, 7, DateTimeKind.Utc).AddTicks(1_234_560);
        var local = since.ToLocalTime();
        var json = KillJson.Candidates(
        [
            new ReapCandidate(41, "svc", "i", 0, 60, "idle", "s=svc;i=a\"b;e=1;g=x", null, false) { StateChange = since },
            new ReapCandidate(42, "svc", "i", 0, 60, "idle", "s=svc;i=c;e=1;g=y", null, false) { StateChange = local },
        ]);

        var rows = JsonDocument.Parse(json).RootElement.EnumerateArray().ToList();
        Assert.Equal(41, rows[0].GetProperty("pid").GetInt32());
        Assert.Equal("s=svc;i=a\"b;e=1;g=x", rows[0].GetProperty("app").GetString());
        Assert.Equal("2026-11-27T15:21:07.123456Z", rows[0].GetProperty("since").GetString());
        Assert.Equal("2026-11-27T15:21:07.123456Z", rows[1].GetProperty("since").GetString());
        Assert.Equal("[\"idle\",\"idle in transaction (aborted)\"]", KillJson.States(["idle", "idle in transaction (aborted)"]));
    }
}
