/** How a column's cells line up. */
export type Align = "left" | "right";

/**
 * Lays out `rows` under `header` in columns two spaces apart; numbers read best with
 * `align` "right". The last column is not padded, so lines carry no trailing blanks.
 */
export function formatTable(header: readonly string[], rows: readonly (readonly string[])[], align: readonly Align[] = []): string[] {
  const widths = header.map((title, i) => Math.max(title.length, ...rows.map((row) => (row[i] ?? "").length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((cell, i) => {
        if (align[i] === "right") return cell.padStart(widths[i]!);
        return i === cells.length - 1 ? cell : cell.padEnd(widths[i]!);
      })
      .join("  ");
  return [line(header), ...rows.map(line)];
}
