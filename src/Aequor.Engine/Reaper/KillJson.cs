using System.Buffers;
using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Aequor.Engine.Reaper;

/// <summary>
/// The kill statement's parameters as JSON text (<see cref="ReaperSql.Kill"/> says why not typed arrays).
/// The state_change goes back to the server exactly as it came: timestamptz keeps microseconds, which a UTC
/// ISO 8601 string with six fractional digits carries without loss.
/// </summary>
internal static class KillJson
{
    public static string Candidates(IReadOnlyList<ReapCandidate> candidates)
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartArray();
            foreach (var c in candidates)
            {
                json.WriteStartObject();
                json.WriteNumber("pid", c.Pid);
                json.WriteString("app", c.ApplicationName);
                json.WriteString("since", Timestamp(c.StateChange));
                json.WriteEndObject();
            }

            json.WriteEndArray();
        }

        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    public static string States(IReadOnlyList<string> states)
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartArray();
            foreach (var state in states)
            {
                json.WriteStringValue(state);
            }

            json.WriteEndArray();
        }

        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    /// <summary>Npgsql reads timestamptz as UTC; a Local value (legacy timestamp behaviour) is converted first.</summary>
    private static string Timestamp(DateTime value) =>
        (value.Kind == DateTimeKind.Local ? value.ToUniversalTime() : value)
            .ToString("yyyy'-'MM'-'dd'T'HH':'mm':'ss'.'ffffff'Z'", CultureInfo.InvariantCulture);
}
