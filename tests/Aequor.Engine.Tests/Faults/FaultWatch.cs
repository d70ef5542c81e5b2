namespace Aequor.Engine.Tests.Faults;

/// <summary>
/// What every fault-matrix case checks besides its own outcome: nothing reached the process's unhandled or
/// unobserved exception events (the crash Aequor exists to prevent), and the fault ended instead of hanging.
/// </summary>
internal sealed class FaultWatch : IDisposable
{
    private readonly List<object> _escaped = [];
    private readonly UnhandledExceptionEventHandler _unhandled;
    private readonly EventHandler<UnobservedTaskExceptionEventArgs> _unobserved;

    public FaultWatch()
    {
        _unhandled = (_, e) => Add(e.ExceptionObject);
        _unobserved = (_, e) => Add(e.Exception);
        AppDomain.CurrentDomain.UnhandledException += _unhandled;
        TaskScheduler.UnobservedTaskException += _unobserved;
    }

    /// <summary>Runs the faulted call; its exception is what the user saw, null for a success.</summary>
    public static async Task<Exception?> CaptureAsync(Task work)
    {
        try
        {
            await work.WaitAsync(TimeSpan.FromSeconds(30));
            return null;
        }
        catch (TimeoutException)
        {
            throw new Xunit.Sdk.XunitException("The fault hung the client for 30 s: it must end in an outcome.");
        }
        catch (Exception ex)
        {
            return ex;
        }
    }

    /// <summary>The outcome in the user's words, for assertion messages and the test log.</summary>
    public static string Describe(Exception? seen) =>
        seen is null ? "success" : $"{seen.GetType().Name}: {seen.Message}";

    public void AssertNothingEscaped()
    {
        // A task dropped with an exception only reports it when the finalizer runs.
        GC.Collect();
        GC.WaitForPendingFinalizers();
        lock (_escaped)
        {
            Assert.Empty(_escaped);
        }
    }

    private void Add(object exception)
    {
        lock (_escaped)
        {
            _escaped.Add(exception);
        }
    }

    public void Dispose()
    {
        AppDomain.CurrentDomain.UnhandledException -= _unhandled;
        TaskScheduler.UnobservedTaskException -= _unobserved;
    }
}
