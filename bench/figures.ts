/** Small helpers the benchmarks share for flags and figures. */

/** A flag's value as a positive whole number. */
export function positive(flag: string, text: string): number {
  const n = /^\d{1,9}$/.test(text) ? Number(text) : NaN;
  if (!(n > 0)) throw new Error(`expected --${flag} to be a positive whole number, got \`${text}\``);
  return n;
}

/** The median, rounded to hundredths when it falls between two values. */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : round((sorted[mid - 1]! + sorted[mid]!) / 2);
}

/** Rounded to hundredths, for printing and JSON. */
export function round(n: number): number {
  return Math.round(n * 100) / 100;
}
