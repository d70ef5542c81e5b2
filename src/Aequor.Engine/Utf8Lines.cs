using System.Buffers;
using System.Text;

namespace Aequor.Engine;

/// <summary>Where a text that should be UTF-8 is not: a decoder fails a whole buffer at once, which names no line.</summary>
internal static class Utf8Lines
{
    /// <summary>The 1-based line and the value of the first byte that is no UTF-8; null when there is none.</summary>
    public static (long Line, byte Byte)? FirstInvalid(Stream stream)
    {
        var buffer = new byte[64 * 1024];
        var kept = 0;
        long line = 1;
        var first = true;
        int read;
        while ((read = stream.Read(buffer, kept, buffer.Length - kept)) > 0 || kept > 0)
        {
            var span = buffer.AsSpan(0, kept + read);
            if (first && span.StartsWith(Encoding.UTF8.Preamble))
            {
                span = span[Encoding.UTF8.Preamble.Length..];
            }

            first = false;
            while (!span.IsEmpty)
            {
                var status = Rune.DecodeFromUtf8(span, out var rune, out var consumed);
                if (status == OperationStatus.NeedMoreData && read > 0)
                {
                    break;
                }

                if (status != OperationStatus.Done)
                {
                    return (line, span[0]);
                }

                if (rune.Value == '\n')
                {
                    line++;
                }

                span = span[consumed..];
            }

            span.CopyTo(buffer);
            kept = span.Length;
            if (read == 0)
            {
                break;
            }
        }

        return null;
    }
}
