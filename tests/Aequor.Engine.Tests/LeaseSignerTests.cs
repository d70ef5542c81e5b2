using System.Text.Json;

namespace Aequor.Engine.Tests;

public sealed class LeaseSignerTests
{
    public sealed record Vector(string ServiceName, string InstanceId, string Secret, long ExpiresAtMs, string NormalizedService, string ApplicationName);

    public static TheoryData<string> VectorNames()
    {
        var data = new TheoryData<string>();
        foreach (var v in LoadVectors())
        {
            data.Add(v.ServiceName);
        }

        return data;
    }

    private static List<Vector> LoadVectors()
    {
        var json = File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "TestData", "lease-vectors.json"));
        return JsonSerializer.Deserialize<List<Vector>>(json, new JsonSerializerOptions { PropertyNameCaseInsensitive = true })!;
    }

    private static Vector Get(string service) => LoadVectors().Single(v => v.ServiceName == service);

    [Theory]
    [MemberData(nameof(VectorNames))]
    public void Signs_each_reference_vector_byte_for_byte(string service)
    {
        var v = Get(service);
        Assert.Equal(v.NormalizedService, LeaseFormat.NormalizeServiceName(v.ServiceName));
        Assert.Equal(v.ApplicationName, new LeaseSigner(v.Secret).Sign(v.ServiceName, v.InstanceId, v.ExpiresAtMs));
    }

    [Theory]
    [MemberData(nameof(VectorNames))]
    public void Verifies_each_reference_vector_and_reads_its_fields(string service)
    {
        var v = Get(service);
        Assert.True(Lease.TryParse(v.ApplicationName, out var lease));
        Assert.Equal(v.NormalizedService, lease.ServiceName);
        Assert.Equal(v.InstanceId, lease.InstanceId);
        Assert.Equal(v.ExpiresAtMs, lease.ExpiresAtMs);
        Assert.True(new LeaseSigner(v.Secret).IsSignatureValid(lease));
        Assert.True(new LeaseSigner(v.Secret).Verify(v.ApplicationName));
    }

    [Theory]
    [InlineData("s=svc;i=x;e=9999999999999999;g=AAAAAAAAAAA", 9_999_999_999_999_999L)]
    [InlineData("s=svc;i=x;e=253402300800000;g=AAAAAAAAAAA", 253_402_300_800_000L)]
    public void An_expiry_past_year_9999_reads_as_the_last_instant_never_an_exception(string applicationName, long expiresAtMs)
    {
        Assert.True(Lease.TryParse(applicationName, out var lease));
        Assert.Equal(expiresAtMs, lease.ExpiresAtMs);
        Assert.Equal(DateTimeOffset.MaxValue, lease.ExpiresAt);
        Assert.False(lease.IsExpiredAt(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds()));
        Assert.Equal(DateTimeOffset.MaxValue, new Aequor.Engine.Reaper.ReapCandidate(1, "svc", "x", expiresAtMs, 0, "idle", applicationName, null, false).ExpiresAt);
        Assert.Equal(DateTimeOffset.FromUnixTimeMilliseconds(1_700_000_000_000), Lease.InstantOf(1_700_000_000_000));
    }

    [Theory]
    [MemberData(nameof(VectorNames))]
    public void A_reference_vector_does_not_verify_with_another_secret(string service)
    {
        var v = Get(service);
        Assert.False(new LeaseSigner(v.Secret + "-other").Verify(v.ApplicationName));
    }

    [Theory]
    [InlineData("")]
    [InlineData("short")]
    [InlineData("fifteen-bytes!!")]
    public void A_secret_under_16_bytes_is_refused_with_a_clear_message(string secret)
    {
        var ex = Assert.Throws<AequorConfigurationException>(() => new LeaseSigner(secret));
        Assert.Contains("16 bytes", ex.Message, StringComparison.Ordinal);
        if (secret.Length > 0)
        {
            Assert.DoesNotContain(secret, ex.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void A_secret_is_measured_in_utf8_bytes()
    {
        // 8 characters, 16 bytes: accepted, as pg-aequor measures Buffer.byteLength.
        _ = new LeaseSigner("éééééééé");
        Assert.Throws<AequorConfigurationException>(() => new LeaseSigner("ééééééé"));
    }

    [Fact]
    public void ToString_never_shows_the_secret()
    {
        var signer = new LeaseSigner("correct-horse-battery-staple-42");
        Assert.DoesNotContain("horse", signer.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void Every_lease_fits_in_63_bytes_even_for_a_long_service_name()
    {
        var signer = new LeaseSigner("xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
        var name = new string('a', 200);
        var app = signer.Sign(name, "abcdefgh", 1_700_000_000_000);
        Assert.True(app.Length <= LeaseFormat.MaxLength);
        Assert.True(signer.Verify(app));
        Assert.Matches("^s=a{11}-[0-9a-f]{8};", app);
    }

    [Fact]
    public void Distinct_long_service_names_stay_distinct()
    {
        var a = LeaseFormat.NormalizeServiceName(new string('a', 40) + "1");
        var b = LeaseFormat.NormalizeServiceName(new string('a', 40) + "2");
        Assert.NotEqual(a, b);
        Assert.Equal(20, a.Length);
    }

    [Fact]
    public void A_name_that_fits_and_is_clean_is_kept_as_is()
    {
        Assert.Equal("orders-api:v2_x", LeaseFormat.NormalizeServiceName("orders-api:v2_x"));
        Assert.Equal(new string('b', 20), LeaseFormat.NormalizeServiceName(new string('b', 20)));
    }

    [Fact]
    public void A_long_instance_id_leaves_only_the_hash_and_a_lease_that_cannot_fit_is_refused()
    {
        // instance of 24 chars: max service = 63 - (24 + 24 + 11) = 4 → first 4 hex chars.
        Assert.Equal(4, LeaseFormat.NormalizeServiceName("orders", 24).Length);
        var signer = new LeaseSigner("xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
        var ex = Assert.Throws<AequorConfigurationException>(() => signer.Sign("orders", new string('i', 40), 1_700_000_000_000));
        Assert.Contains("63 bytes", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void An_empty_service_name_is_refused()
    {
        var ex = Assert.Throws<ArgumentException>(() => LeaseFormat.NormalizeServiceName(""));
        Assert.Contains("service name is empty", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Instance_ids_are_8_random_base64url_characters()
    {
        var ids = Enumerable.Range(0, 1000).Select(_ => InstanceIds.Generate()).ToList();
        Assert.All(ids, id => Assert.Matches("^[A-Za-z0-9_-]{8}$", id));
        Assert.Equal(1000, ids.Distinct().Count());
    }

    [Fact]
    public void A_fresh_lease_verifies_and_its_sanitised_instance_is_kept()
    {
        var signer = new LeaseSigner("correct-horse-battery-staple-42");
        var app = signer.Sign("orders", "a b/c.d!", 1_767_225_600_000);
        Assert.StartsWith("s=orders;i=a_b_c_d_;e=1767225600000;g=", app, StringComparison.Ordinal);
        Assert.True(signer.Verify(app));
    }

    [Fact]
    public void A_zero_padded_expiry_is_not_a_lease_even_when_its_signature_matches_the_padded_text()
    {
        const string secret = "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";
        const string payload = "s=svc;i=abcdefgh;e=01700000000000";
        var mac = System.Security.Cryptography.HMACSHA256.HashData(System.Text.Encoding.UTF8.GetBytes(secret), System.Text.Encoding.UTF8.GetBytes(payload))[..8];
        var padded = payload + ";g=" + Convert.ToBase64String(mac).TrimEnd('=').Replace('+', '-').Replace('/', '_');

        Assert.False(Lease.TryParse(padded, out _));
        Assert.False(new LeaseSigner(secret).Verify(padded));
        // The canonical texts still parse, the single digit 0 among them.
        Assert.True(Lease.TryParse("s=svc;i=abcdefgh;e=1700000000000;g=2lcnadn3BBU", out var canonical));
        Assert.Equal(1_700_000_000_000, canonical.ExpiresAtMs);
        Assert.True(Lease.TryParse("s=svc;i=abcdefgh;e=0;g=2lcnadn3BBU", out var zero));
        Assert.Equal(0, zero.ExpiresAtMs);
    }

    public static TheoryData<string?> Untrusted() => new()
    {
        null,
        "",
        "psql",
        "s=svc;i=abcdefgh;e=1700000000000",
        "s=svc;i=abcdefgh;e=1700000000000;g=",
        "s=svc;i=abcdefgh;e=1700000000000;g=2lcnadn3BBU;x=1",
        "s=svc;i=abcdefgh;e=1700000000001;g=2lcnadn3BBU",
        "s=svc;i=abcdefgh;e=1700000000000;g=2lcnadn3BBV",
        "s=svc;i=abcdefgi;e=1700000000000;g=2lcnadn3BBU",
        "s=svd;i=abcdefgh;e=1700000000000;g=2lcnadn3BBU",
        "i=abcdefgh;s=svc;e=1700000000000;g=2lcnadn3BBU",
        "s=svc;i=abcdefgh;e=+1700000000000;g=2lcnadn3BBU",
        "s=svc;i=abcdefgh;e=01700000000000;g=2lcnadn3BBU",
        "s=svc;i=abcdefgh;e=1.7e12;g=2lcnadn3BBU",
        "s=svc;i=abcdefgh;e=-1;g=2lcnadn3BBU",
        "s=svc;i=abcdefgh;e=99999999999999999999;g=2lcnadn3BBU",
        "s=svc;i=abcdefgh;e=1700000000000;g=2lcnadn3BBU ",
        " s=svc;i=abcdefgh;e=1700000000000;g=2lcnadn3BBU",
        "s=svc;i=abcdefgh;e=1700000000000;g=2lcnadn3BB\0",
        "s=svc;i=abcdéfgh;e=1700000000000;g=2lcnadn3BBU",
        "s=svc;i=abcdefgh;e=1700000000000;g=2lcnadn3BBU" + new string('x', 100),
        "s=svc;i=abcdefgh;e=1700000000000;g=2lcnadn3BBUU",
        "s=svc;i=abcdefgh;e=1700000000000;g=2lcnadn3BB",
        "s=svc;;i=abcdefgh;e=1700000000000;g=2lcnadn3BBU",
        new string(';', 40),
        "s=;i=;e=;g=",
    };

    [Theory]
    [MemberData(nameof(Untrusted))]
    public void Untrusted_strings_never_throw_and_never_verify(string? applicationName)
    {
        var signer = new LeaseSigner("xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
        Assert.False(signer.Verify(applicationName));
    }

    [Fact]
    public void Random_bytes_never_throw_and_never_verify()
    {
        var signer = new LeaseSigner("xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
        var rng = new Random(4242);
        var buffer = new char[80];
        for (var i = 0; i < 20_000; i++)
        {
            var n = rng.Next(buffer.Length);
            for (var j = 0; j < n; j++)
            {
                buffer[j] = (char)rng.Next(0, 0x10000);
            }

            Assert.False(signer.Verify(new string(buffer, 0, n)));
        }
    }
}
