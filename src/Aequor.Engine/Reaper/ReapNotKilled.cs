namespace Aequor.Engine.Reaper;

/// <summary>An expired lease of ours that a pass did not kill, and why (see <see cref="ReapReasons"/>).</summary>
public sealed record ReapNotKilled(int Pid, string Reason, string? ApplicationName, string? UserName);
