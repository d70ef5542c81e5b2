using System.Diagnostics;
using System.Text;

namespace Aequor.Engine.Tests;

/// <summary>
/// One million generated strings against the parser and verifier: none may throw, and none may
/// verify unless it is a lease really signed with the secret. Seeded, so a failure replays.
/// </summary>
public sealed class LeaseFuzzTests
{
    private const string Secret = "fuzz-coordination-secret-0123456789";
    private const int Total = 1_000_000;

    [Fact]
    public void A_million_generated_strings_never_throw_and_never_verify_without_the_right_signature()
    {
        var signer = new LeaseSigner(Secret);
        var other = new LeaseSigner(Secret + "!");
        var rng = new Random(20261127);
        var valid = Enumerable.Range(0, 64)
            .Select(i => signer.Sign(i % 3 == 0 ? "orders-api" : "svc" + i, InstanceIds.Generate(), 1_700_000_000_000 + (i * 7919L)))
            .ToArray();
        var sw = Stopwatch.StartNew();
        var kinds = new int[6];
        var falselyValid = new List<string>();

        for (var i = 0; i < Total; i++)
        {
            var kind = i % kinds.Length;
            kinds[kind]++;
            var text = kind switch
            {
                0 => RandomChars(rng, rng.Next(0, 90)),
                1 => NearMiss(rng, valid[rng.Next(valid.Length)]),
                2 => OneCharChanged(rng, valid[rng.Next(valid.Length)]),
                3 => SwappedFields(rng, valid[rng.Next(valid.Length)]),
                4 => valid[rng.Next(valid.Length)] + RandomChars(rng, rng.Next(1, 200)),
                _ => RandomLeaseShape(rng),
            };

            // Must not throw (an exception fails the test with its input in the message).
            bool ok;
            try
            {
                if (Lease.TryParse(text, out var lease))
                {
                    // What a lease listing reads of every row, forged ones included.
                    _ = (lease.ExpiresAt, lease.IsExpiredAt(1_700_000_000_000), lease.ServiceName, lease.InstanceId, lease.Signature);
                }

                ok = signer.Verify(text);
                if (other.Verify(text))
                {
                    falselyValid.Add("(other secret) " + Escape(text));
                }
            }
            catch (Exception ex)
            {
                throw new Xunit.Sdk.XunitException($"Input #{i} threw {ex.GetType().Name}: {Escape(text)}");
            }

            if (ok && !valid.Contains(text, StringComparer.Ordinal))
            {
                falselyValid.Add(Escape(text));
            }
        }

        Assert.True(falselyValid.Count == 0, "Verified without being a signed lease: " + string.Join(", ", falselyValid.Take(5)));
        Assert.All(valid, v => Assert.True(signer.Verify(v)));
        Assert.All(valid, v => Assert.False(other.Verify(v)));
        Assert.True(sw.Elapsed < TimeSpan.FromMinutes(2), $"The fuzz run took {sw.Elapsed}; it must stay bounded.");
    }

    private static string RandomChars(Random rng, int length)
    {
        var sb = new StringBuilder(length);
        for (var i = 0; i < length; i++)
        {
            sb.Append(rng.Next(4) switch
            {
                0 => (char)rng.Next(0, 0x20),          // controls, NUL included
                1 => (char)rng.Next(0x80, 0x10000),     // non-ASCII, lone surrogates included
                _ => (char)rng.Next(0x20, 0x7F),
            });
        }

        return sb.ToString();
    }

    private static string OneCharChanged(Random rng, string lease)
    {
        var chars = lease.ToCharArray();
        var at = rng.Next(chars.Length);
        char c;
        do
        {
            c = (char)rng.Next(0x20, 0x7F);
        }
        while (c == chars[at]);
        chars[at] = c;
        return new string(chars);
    }

    private static string NearMiss(Random rng, string lease) => rng.Next(8) switch
    {
        0 => lease.Replace(";e=", ";e=0", StringComparison.Ordinal),           // same number, other text
        1 => lease.Replace(";e=", ";e=+", StringComparison.Ordinal),
        2 => lease[..^1],                                                      // short signature
        3 => lease + "A",                                                      // long signature
        4 => lease.Replace(";", ";;", StringComparison.Ordinal),
        5 => lease.Replace("s=", "S=", StringComparison.Ordinal),
        6 => lease.Insert(rng.Next(lease.Length), "\0"),
        _ => lease.Replace(";g=", $";x={rng.Next()};g=", StringComparison.Ordinal),
    };

    private static string SwappedFields(Random rng, string lease)
    {
        var parts = lease.Split(';');
        var a = rng.Next(parts.Length);
        var b = (a + 1 + rng.Next(parts.Length - 1)) % parts.Length;
        (parts[a], parts[b]) = (parts[b], parts[a]);
        return string.Join(';', parts);
    }

    private static string RandomLeaseShape(Random rng) =>
        $"s={Token(rng, 1, 25)};i={Token(rng, 1, 12)};e={rng.NextInt64(0, 9_999_999_999_999_999)};g={Token(rng, 9, 13)}";

    private static string Token(Random rng, int min, int max)
    {
        const string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_:";
        var n = rng.Next(min, max);
        return string.Create(n, rng, (span, r) =>
        {
            for (var i = 0; i < span.Length; i++)
            {
                span[i] = alphabet[r.Next(alphabet.Length)];
            }
        });
    }

    private static string Escape(string s) =>
        string.Concat(s.Select(c => c is < ' ' or > '~' ? $"\\u{(int)c:x4}" : c.ToString()));
}
