namespace Aequor.TestServer;

/// <summary>A test database could not be provided; the message says how to fix it.</summary>
public sealed class TestServerException : Exception
{
    public TestServerException(string message) : base(message)
    {
    }

    public TestServerException(string message, Exception inner) : base(message, inner)
    {
    }

    public TestServerException()
    {
    }
}
