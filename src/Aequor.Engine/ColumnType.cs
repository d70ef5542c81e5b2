namespace Aequor.Engine;

/// <summary>A column's type as the server names it (format_type), and whether it is an array type.</summary>
public sealed record ColumnType(string Name, bool IsArray);
