using Npgsql;

namespace Aequor.Engine;

/// <summary>
/// The Npgsql data sources the process's physical connections come from: one per connection string, service,
/// secret and lease TTL, shared by every client with those options, so Npgsql loads the server's type catalogue
/// and builds its type resolvers once, not on every connect.
/// </summary>
/// <remarks>
/// Why: a data source per connection (each lease made the startup packet unique) cost every connect a catalogue
/// query and ≈ 25 ms of client CPU (measured: 56 ms and 26–33 ms of CPU per open + SELECT 1, against 27 ms and
/// 5 ms from one data source); in a 53300 storm the refused clients reconnect together and that CPU was the
/// critical path on a small machine.
/// A data source fixes the startup packet, so its application_name is a lease of its own: valid, signed with
/// the clients' secret, with an instance id of its own. The client replaces it with its own lease before it
/// hands the connection out (one round trip, in place of the catalogue query it no longer makes). A process
/// frozen in between leaves a backend whose lease expires and which any reaper of the service can take; a live
/// one in between holds a lease that has not expired. The data source is replaced once a tenth of the TTL has
/// gone by, so a connect starts with at least nine tenths of a TTL on its startup lease, close to what a lease
/// signed for that connect alone would give: a live client slowed between startup and replacement (a 10 s
/// connect was seen on a 2-core box running three test suites) is not taken for a frozen one (with half a TTL
/// left, the soak's 3 s leases let a reaper cut off such a connect). The catalogue is then loaded again (types
/// created meanwhile are seen by connections made after that, as with any Npgsql data source), at most once a
/// tenth of a TTL (9 s by default) in a busy process. A replaced data source is disposed once the last connect
/// that took it has finished (<see cref="Entry.Release"/>): Npgsql keeps every data source it built in a static
/// list for its metrics until it is disposed, with its type catalogue, so one let go would stay for the life of
/// the process. Its connections already open go on working: an unpooled data source only opens them and takes
/// them back. For the same reason the data source of options no connect has used for a whole TTL is disposed at
/// the next connect with other options (a script connecting to many servers kept one per server for good).
/// </remarks>
internal static class SharedDataSources
{
    private static readonly object Gate = new();
    private static readonly Dictionary<string, Entry> Entries = new(StringComparer.Ordinal);

    /// <summary>A data source, the lease in its startup packet (null without a signer), and the catalogue it holds.</summary>
    internal sealed class Entry(NpgsqlDataSource dataSource, string? startupLease, long startupLeaseExpiresAtMs)
    {
        private string? _fingerprint;

        // Both under Gate: connects that took this entry and have not finished, and whether a newer one replaced it.
        private int _users;
        private bool _replaced;

        public NpgsqlDataSource DataSource { get; } = dataSource;

        public string? StartupLease { get; } = startupLease;

        public long StartupLeaseExpiresAtMs { get; } = startupLeaseExpiresAtMs;

        /// <summary>
        /// Whether a connection from this data source should reload the types: the catalogue changed since the
        /// last connect saw it. The first connect loaded them itself, moments before it read the fingerprint.
        /// </summary>
        public bool CatalogueChanged(string fingerprint)
        {
            var previous = Interlocked.Exchange(ref _fingerprint, fingerprint);
            return previous is not null && !string.Equals(previous, fingerprint, StringComparison.Ordinal);
        }

        /// <summary>Whether the data source was disposed (replaced, and no connect still using it).</summary>
        public bool IsDisposed { get; private set; }

        /// <summary>The connect that took this entry from <see cref="For(string, string, LeaseSigner?, string, int, long)"/> is done with it.</summary>
        public void Release()
        {
            lock (Gate)
            {
                if (--_users > 0 || !_replaced || IsDisposed)
                {
                    return;
                }

                IsDisposed = true;
            }

            DataSource.Dispose();
        }

        internal void Take() => _users++;

        /// <summary>Under Gate: no connect uses it and its startup lease has expired, so no connect would take it again.</summary>
        internal bool IsStale(long nowMs) => _users == 0 && StartupLeaseExpiresAtMs < nowMs;

        /// <summary>Marks it replaced; true when no connect uses it, so the caller disposes it now.</summary>
        internal bool Replace()
        {
            _replaced = true;
            IsDisposed = _users == 0;
            return IsDisposed;
        }
    }

    /// <summary>
    /// The data source for these options, built (or replaced) when there is none or its lease has less than
    /// nine tenths of <paramref name="leaseTtlMs"/> left at <paramref name="nowMs"/>. The caller calls
    /// <see cref="Entry.Release"/> once its connect is done (opened and set up, or failed).
    /// </summary>
    /// <param name="baseConnectionString">The connection string without the lease (pooling off).</param>
    public static Entry For(string baseConnectionString, LeaseSigner? signer, string serviceName, int leaseTtlMs, long nowMs) =>
        For(KeyFor(baseConnectionString, signer, serviceName, leaseTtlMs), baseConnectionString, signer, serviceName, leaseTtlMs, nowMs);

    /// <summary>What tells these options' data source from others'; a client computes it once, not per connect.</summary>
    public static string KeyFor(string baseConnectionString, LeaseSigner? signer, string serviceName, int leaseTtlMs) =>
        signer is null
            ? baseConnectionString
            // The secret is named by a signature, never by itself.
            : string.Join('\n', baseConnectionString, serviceName, leaseTtlMs, signer.Sign(serviceName, "keyAAAAA", 0));

    /// <summary><see cref="For(string, LeaseSigner?, string, int, long)"/> with the key from <see cref="KeyFor"/>.</summary>
    public static Entry For(string key, string baseConnectionString, LeaseSigner? signer, string serviceName, int leaseTtlMs, long nowMs)
    {
        var disposeNow = new List<Entry>();
        try
        {
            lock (Gate)
            {
                EvictStale(key, nowMs, disposeNow);
                if (Entries.TryGetValue(key, out var current) && (signer is null || current.StartupLeaseExpiresAtMs - nowMs >= leaseTtlMs - (leaseTtlMs / 10)))
                {
                    current.Take();
                    return current;
                }

                // Npgsql's default refuses to read an int[] (bool[], uuid[] ...) holding a NULL; per instance, such an
                // array reads as int?[] and one without NULL as int[].
                var builder = new NpgsqlConnectionStringBuilder(baseConnectionString) { ArrayNullabilityMode = ArrayNullabilityMode.PerInstance };
                string? lease = null;
                var expiresAtMs = long.MaxValue;
                if (signer is not null)
                {
                    expiresAtMs = nowMs + leaseTtlMs;
                    lease = signer.Sign(serviceName, InstanceIds.Generate(), expiresAtMs);
                    builder.ApplicationName = lease;
                }

                var entry = new Entry(new NpgsqlDataSourceBuilder(builder.ConnectionString).Build(), lease, expiresAtMs);
                entry.Take();
                Entries[key] = entry;
                if (current is not null && current.Replace())
                {
                    disposeNow.Add(current);
                }

                return entry;
            }
        }
        finally
        {
            foreach (var done in disposeNow)
            {
                done.DataSource.Dispose();
            }
        }
    }

    /// <summary>
    /// Under Gate: drops the entries of other options that no connect uses and whose startup lease has expired. A
    /// connect with those options would replace such an entry anyway; kept, each held a data source and its type
    /// catalogue for the life of the process (a script that connects to many servers or under many service names).
    /// </summary>
    private static void EvictStale(string key, long nowMs, List<Entry> disposeNow)
    {
        List<string>? stale = null;
        foreach (var (otherKey, other) in Entries)
        {
            if (!string.Equals(otherKey, key, StringComparison.Ordinal) && other.IsStale(nowMs))
            {
                (stale ??= []).Add(otherKey);
            }
        }

        foreach (var staleKey in stale ?? [])
        {
            if (Entries.Remove(staleKey, out var entry) && entry.Replace())
            {
                disposeNow.Add(entry);
            }
        }
    }
}
