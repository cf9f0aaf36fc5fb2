import { VmtreeError } from "../errors.ts";

/**
 * Bandwidth as operators write it in the config, and back. Rates are bits per second
 * because that is how links are sold and measured; bytes are refused rather than
 * guessed, since a cap off by a factor of eight either floods a site's uplink or starves
 * the transfer.
 */

/** Powers of ten of the accepted units, case as written: `m` could be milli, so only `M` is mega. */
const UNIT_EXPONENTS: ReadonlyMap<string, number> = new Map([
  ["bit", 0],
  ["bps", 0],
  ["k", 3],
  ["kbit", 3],
  ["kbps", 3],
  ["M", 6],
  ["Mbit", 6],
  ["Mbps", 6],
  ["G", 9],
  ["Gbit", 9],
  ["Gbps", 9],
]);

const NO_CAP = new Set(["unlimited", "none"]);
const RATE_PATTERN = /^(-?)(\d+)(?:\.(\d+))?\s*([A-Za-z]*)(\/s)?$/;
const TIME_PATTERN = /^([01]\d|2[0-3]):([0-5]\d)$/;
const MINUTES_PER_DAY = 24 * 60;

const RATE_UNITS: readonly (readonly [number, string])[] = [
  [1e9, "Gbit/s"],
  [1e6, "Mbit/s"],
  [1e3, "kbit/s"],
  [1, "bit/s"],
];
const BYTE_UNITS: readonly (readonly [number, string])[] = [
  [2 ** 50, "PiB"],
  [2 ** 40, "TiB"],
  [2 ** 30, "GiB"],
  [2 ** 20, "MiB"],
  [2 ** 10, "KiB"],
];

function invalid(message: string): VmtreeError {
  return new VmtreeError("invalid_argument", message);
}

/** A config value as the operator would recognise it in an error message. */
function describe(value: unknown): string {
  if (typeof value === "string") return `\`${value}\``;
  if (value === undefined) return "nothing";
  if (typeof value === "number" || typeof value === "boolean" || value === null) return String(value);
  return JSON.stringify(value) ?? String(value);
}

/**
 * Parses a rate such as `20Mbit`, `500kbit`, `1.5Gbit`, `20Mbps` or `20 Mbit/s` into bits
 * per second; `unlimited` or `none` gives Infinity. The unit is required: a bare number
 * is as likely to be meant as bytes as bits.
 */
export function parseBandwidth(text: string, field = "bandwidth"): number {
  if (typeof text !== "string") {
    throw invalid(`${field}: expected a rate like 20Mbit, 500kbit or 1.5Gbit (bits per second), got ${describe(text)}`);
  }
  const trimmed = text.trim();
  if (NO_CAP.has(trimmed.toLowerCase())) return Infinity;
  const got = `got ${describe(text)}`;
  const match = RATE_PATTERN.exec(trimmed);
  if (!match) throw invalid(`${field}: expected a rate like 20Mbit, 500kbit or 1.5Gbit (bits per second), ${got}`);
  const [, sign, whole = "", fraction = "", unit = "", perSecond] = match;
  if (sign === "-" || /^0*$/.test(whole + fraction)) {
    throw invalid(`${field}: expected a rate greater than 0 (write "unlimited" for no cap), ${got}`);
  }
  if (unit === "") throw invalid(`${field}: a rate needs a unit: write 20Mbit, 500kbit or 1.5Gbit (bits per second), ${got}`);
  if (/B|byte/.test(unit)) throw invalid(`${field}: units are bits per second: use kbit, Mbit or Gbit (8 Mbit = 1 MB/s), ${got}`);
  if (unit.startsWith("m")) throw invalid(`${field}: "m" could mean milli or mega: write M for mega, as in 20Mbit, ${got}`);
  const exponent = UNIT_EXPONENTS.get(unit);
  if (exponent === undefined || (perSecond !== undefined && !unit.endsWith("bit"))) {
    throw invalid(`${field}: expected a rate like 20Mbit, 500kbit or 1.5Gbit (bits per second), ${got}`);
  }
  const bitsPerSecond = scaleDecimal(whole + fraction, exponent - fraction.length);
  if (!Number.isFinite(bitsPerSecond)) throw invalid(`${field}: rate too large, ${got}`);
  return bitsPerSecond;
}

/**
 * `digits` × 10^exponent with one rounding, so that `1.1Mbit` is exactly 1 100 000 and
 * not 1.1 × 1e6 = 1 100 000.0000000002.
 */
function scaleDecimal(digits: string, exponent: number): number {
  const mantissa = Number(digits);
  return exponent >= 0 ? mantissa * 10 ** exponent : mantissa / 10 ** -exponent;
}

/**
 * Picks the largest unit the value reaches, moving up one more when rounding makes it
 * reach the next (999 999 bit/s is `1 Mbit/s`, not `1000 kbit/s`).
 */
function scale(value: number, units: readonly (readonly [number, string])[], digits: number): [string, string] {
  let index = units.findIndex(([size]) => value >= size);
  if (index < 0) index = units.length - 1;
  const [size, name] = units[index] ?? [1, ""];
  const text = (value / size).toFixed(digits);
  const larger = units[index - 1];
  if (larger !== undefined && Number(text) * size >= larger[0]) return [(value / larger[0]).toFixed(digits), larger[1]];
  return [text, name];
}

/** `20 Mbit/s`, `500 kbit/s`, `1.5 Gbit/s`, `unlimited`; at most two decimals. The output parses back. */
export function formatBandwidth(bitsPerSecond: number): string {
  if (bitsPerSecond === Infinity) return "unlimited";
  if (typeof bitsPerSecond !== "number" || !(bitsPerSecond >= 0) || !Number.isFinite(bitsPerSecond)) {
    throw invalid(`bitsPerSecond: expected a number >= 0 or Infinity, got ${describe(bitsPerSecond)}`);
  }
  const [text, unit] = scale(bitsPerSecond, RATE_UNITS, 2);
  // Trailing zeros say nothing: 20.00 Mbit/s is 20 Mbit/s.
  return `${text.replace(/\.?0+$/, "")} ${unit}`;
}

/** The exact count first, so that nothing is lost to rounding: `67108864 bytes (64.0 MiB)`. */
export function formatBytes(bytes: number): string {
  if (!Number.isSafeInteger(bytes) || bytes < 0) {
    throw invalid(`bytes: expected a non-negative safe integer, got ${describe(bytes)}`);
  }
  if (bytes === 1) return "1 byte";
  if (bytes < 1024) return `${bytes} bytes`;
  const [text, unit] = scale(bytes, BYTE_UNITS, 1);
  return `${bytes} bytes (${text} ${unit})`;
}

/** One window of a schedule, in minutes since local midnight; `to` <= `from` wraps past midnight. */
export interface BandwidthWindow {
  readonly from: number;
  readonly to: number;
  readonly bitsPerSecond: number;
}

/** Caps by time of day on the node's local clock, as in the config; windows do not overlap. */
export interface BandwidthSchedule {
  readonly windows: readonly BandwidthWindow[];
}

const WINDOW_FIELDS = new Set(["from", "to", "bandwidth"]);

/**
 * Validates a schedule from the config, e.g.
 * `[{ from: "08:00", to: "20:00", bandwidth: "20Mbit" }, { from: "20:00", to: "08:00", bandwidth: "200Mbit" }]`.
 * `where` names the setting in errors (`links.uplink.schedule`), with the entry's index.
 */
export function parseSchedule(entries: unknown, where: string): BandwidthSchedule {
  if (!Array.isArray(entries)) {
    throw invalid(`${where}: expected a list of { from, to, bandwidth } windows, got ${describe(entries)}`);
  }
  const windows = entries.map((entry: unknown, index) => parseWindow(entry, `${where}[${index}]`));
  checkNoOverlap(windows, where);
  return { windows };
}

function parseWindow(entry: unknown, where: string): BandwidthWindow {
  if (typeof entry !== "object" || entry === null || Array.isArray(entry)) {
    throw invalid(`${where}: expected { from, to, bandwidth }, got ${describe(entry)}`);
  }
  const fields = entry as Record<string, unknown>;
  // A misspelt key would otherwise be a window that silently never applies its intent.
  const unknown = Object.keys(fields).find((key) => !WINDOW_FIELDS.has(key));
  if (unknown !== undefined) throw invalid(`${where}: unknown field \`${unknown}\` (expected from, to, bandwidth)`);
  const from = parseTime(fields["from"], `${where}.from`);
  const to = parseTime(fields["to"], `${where}.to`);
  const bitsPerSecond = parseBandwidth(fields["bandwidth"] as string, `${where}.bandwidth`);
  if (from === to) {
    throw invalid(
      `${where}: from and to are both ${formatTime(from)}; a window needs a length (a cap for the whole day is the link's bandwidth, not a schedule)`,
    );
  }
  return { from, to, bitsPerSecond };
}

function parseTime(value: unknown, field: string): number {
  const match = typeof value === "string" ? TIME_PATTERN.exec(value) : null;
  if (!match) throw invalid(`${field}: expected a local time HH:MM from 00:00 to 23:59, got ${describe(value)}`);
  return Number(match[1]) * 60 + Number(match[2]);
}

function formatTime(minute: number): string {
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${pad(Math.floor(minute / 60))}:${pad(minute % 60)}`;
}

/** The half-open minute ranges a window covers within one day; a wrapping window has two. */
function segments(window: BandwidthWindow): [number, number][] {
  if (window.from < window.to) return [[window.from, window.to]];
  const parts: [number, number][] = [[window.from, MINUTES_PER_DAY]];
  if (window.to > 0) parts.push([0, window.to]);
  return parts;
}

function checkNoOverlap(windows: readonly BandwidthWindow[], where: string): void {
  windows.forEach((window, index) => {
    const earlier = windows.slice(0, index).findIndex((other) =>
      segments(window).some(([start, end]) => segments(other).some(([otherStart, otherEnd]) => start < otherEnd && otherStart < end)),
    );
    const other = windows[earlier];
    if (other !== undefined) {
      throw invalid(`${where}[${index}] (${span(window)}) overlaps ${where}[${earlier}] (${span(other)})`);
    }
  });
}

function span(window: BandwidthWindow): string {
  return `${formatTime(window.from)}–${formatTime(window.to)}`;
}

function contains(window: BandwidthWindow, minute: number): boolean {
  return window.from < window.to ? window.from <= minute && minute < window.to : minute >= window.from || minute < window.to;
}

function checkDate(date: Date): void {
  if (!(date instanceof Date) || Number.isNaN(date.getTime())) throw invalid(`date: expected a valid Date, got ${String(date)}`);
}

/** The cap in bits per second at `date` (local time), or undefined when no window applies. */
export function scheduledCap(schedule: BandwidthSchedule, date: Date): number | undefined {
  checkDate(date);
  const minute = date.getHours() * 60 + date.getMinutes();
  return schedule.windows.find((window) => contains(window, minute))?.bitsPerSecond;
}

/**
 * The first instant after `date` at which `scheduledCap` gives another value, so that one
 * timer can apply the next cap on time; undefined when it never changes. Adjacent windows
 * with the same cap are no change.
 */
export function nextChange(schedule: BandwidthSchedule, date: Date): Date | undefined {
  checkDate(date);
  const current = scheduledCap(schedule, date);
  const boundaries = new Set(schedule.windows.flatMap((window) => [window.from, window.to]));
  // Every boundary recurs within a day, so today's and tomorrow's cover the next 24 hours.
  // Local-time construction keeps them on the wall clock across daylight saving changes.
  const candidates = [0, 1]
    .flatMap((day) =>
      [...boundaries].map(
        (minute) => new Date(date.getFullYear(), date.getMonth(), date.getDate() + day, Math.floor(minute / 60), minute % 60),
      ),
    )
    .filter((candidate) => candidate.getTime() > date.getTime())
    .sort((a, b) => a.getTime() - b.getTime());
  return candidates.find((candidate) => scheduledCap(schedule, candidate) !== current);
}
