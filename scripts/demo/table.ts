/** How a column's cells line up. */
export type Align = "left" | "right";

/**
 * Lays out `rows` under `header` in columns two spaces apart; numbers read best with
 * `align` "right". Lines carry no trailing blanks.
 */
export function formatTable(header: readonly string[], rows: readonly (readonly string[])[], align: readonly Align[] = []): string[] {
  const widths = header.map((title, i) => Math.max(title.length, ...rows.map((row) => (row[i] ?? "").length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((cell, i) => {
        return align[i] === "right" ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!);
      })
      .join("  ")
      .trimEnd();
  return [line(header), ...rows.map(line)];
}
