namespace Aequor.Engine;

/// <summary>Where in the caller's whole text a server error arose: psql's "LINE 2: select 1/0" and its caret.</summary>
/// <param name="Line">1-based line of the caller's text.</param>
/// <param name="Column">1-based column (in characters, as the server counts them), or null when the server named no position.</param>
/// <param name="Statement">1-based number of the failing statement among the text's statements.</param>
/// <param name="StatementCount">How many statements the text holds.</param>
/// <param name="LineText">The line itself, without its line break.</param>
public sealed record ErrorLocation(int Line, int? Column, int Statement, int StatementCount, string LineText);
