namespace Aequor.Engine;

/// <summary>
/// Calls event handlers one by one on the calling thread and contains whatever they throw: a broken
/// handler must never break the statement it observes, nor any other handler.
/// </summary>
internal static class EventDispatch
{
    public static void Raise<T>(EventHandler<T>? handlers, object sender, T payload, AequorCounters counters)
    {
        if (handlers is null)
        {
            return;
        }

        foreach (var handler in handlers.GetInvocationList())
        {
            try
            {
                ((EventHandler<T>)handler)(sender, payload);
            }
#pragma warning disable CA1031 // A handler's failure is its own; it is counted, never propagated.
            catch (Exception)
#pragma warning restore CA1031
            {
                counters.HandlerFailed();
            }
        }
    }
}
