using System.Buffers.Binary;

namespace Aequor.Engine.Tests.Faults;

/// <summary>
/// Follows what a client sends on a PostgreSQL connection, message by message, to find where its first statement
/// starts: the first message after the startup packet that is not part of the password exchange. Up to there the
/// server has authenticated the client and made its backend; from there on the client is connected but has not yet
/// said anything of its own. Plain protocol only: the connection must not be encrypted (SSL Mode=Disable).
/// </summary>
internal sealed class FirstStatementCut
{
    // Untyped packets that come before the startup packet, each answered by one byte ('N' on a server without them).
    private const int SslRequestCode = 80877103;
    private const int GssEncRequestCode = 80877104;

    private readonly byte[] _header = new byte[8];
    private int _headerRead;
    private long _bodyLeft;
    private bool _startupDone;

    /// <summary>The first statement has begun: nothing from it on is forwarded.</summary>
    public bool Reached { get; private set; }

    /// <summary>How many bytes at the start of <paramref name="chunk"/> come before the first statement.</summary>
    public int Forwardable(ReadOnlySpan<byte> chunk)
    {
        var i = 0;
        while (i < chunk.Length && !Reached)
        {
            if (_bodyLeft > 0)
            {
                var take = (int)Math.Min(_bodyLeft, chunk.Length - i);
                i += take;
                _bodyLeft -= take;
                continue;
            }

            // A typed message starts with its type byte: 'p' is the password (or SASL) exchange, anything else is
            // the client's own (a Parse, a Query).
            if (_startupDone && _headerRead == 0 && chunk[i] != (byte)'p')
            {
                Reached = true;
                break;
            }

            _header[_headerRead++] = chunk[i++];
            var headerLength = _startupDone ? 5 : 8;
            if (_headerRead < headerLength)
            {
                continue;
            }

            _headerRead = 0;
            if (_startupDone)
            {
                // The length counts itself, not the type byte.
                _bodyLeft = BinaryPrimitives.ReadInt32BigEndian(_header.AsSpan(1)) - 4;
            }
            else
            {
                _bodyLeft = BinaryPrimitives.ReadInt32BigEndian(_header) - 8;
                var code = BinaryPrimitives.ReadInt32BigEndian(_header.AsSpan(4));
                _startupDone = code is not (SslRequestCode or GssEncRequestCode);
            }
        }

        return i;
    }
}
