import { VmtreeError, type Result } from "../errors.ts";
import { describeValue } from "../inventory/input-problem.ts";

// Named groups keep the range checks below readable; the fraction may be longer than
// milliseconds (ISO 8601 sets no limit) and is cut, not rounded, to stay inside the second.
const DATE = /^(?<year>\d{4})-(?<month>\d{2})-(?<day>\d{2})$/;
const DATE_TIME =
  /^(?<year>\d{4})-(?<month>\d{2})-(?<day>\d{2})T(?<hour>\d{2}):(?<minute>\d{2})(?::(?<second>\d{2})(?:\.(?<fraction>\d{1,9}))?)?(?<zone>Z|[+-]\d{2}:\d{2})$/;
const ZONE = /^(?<sign>[+-])(?<hours>\d{2}):(?<minutes>\d{2})$/;

const DATE_EXPECTED = "expected YYYY-MM-DD or an ISO 8601 date-time with Z or an offset";

/**
 * Reads a policy date: `YYYY-MM-DD` (00:00 UTC of that day) or a full ISO 8601 date-time
 * with seconds optional and `Z` or a `±HH:MM` offset, e.g. `2026-12-04T09:30:00+05:00`.
 * A date-time without a zone is refused because it would mean a different instant on every
 * node. Years before 1970 are refused: 0 ms means "no bound" in a policy binding.
 * The error is a sentence naming the value, for the caller to place in the file.
 */
export function parsePolicyInstant(text: string): Result<number, string> {
  const parts = (DATE.exec(text) ?? DATE_TIME.exec(text))?.groups;
  const ms = parts === undefined ? undefined : instantOf(parts);
  if (ms === undefined) return { ok: false, error: `${describeValue(text)} is not a date (${DATE_EXPECTED})` };
  return { ok: true, value: ms };
}

function instantOf(parts: Record<string, string | undefined>): number | undefined {
  const year = Number(parts["year"]);
  const month = Number(parts["month"]);
  const day = Number(parts["day"]);
  const hour = Number(parts["hour"] ?? 0);
  const minute = Number(parts["minute"] ?? 0);
  const second = Number(parts["second"] ?? 0);
  const offset = zoneOffsetMs(parts["zone"] ?? "Z");
  if (year < 1970 || month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month - 1)) return undefined;
  if (hour > 23 || minute > 59 || second > 59 || offset === undefined) return undefined;
  const ms = Number((parts["fraction"] ?? "").padEnd(3, "0").slice(0, 3));
  const instant = Date.UTC(year, month - 1, day, hour, minute, second, ms) - offset;
  return instant > 0 ? instant : undefined;
}

function zoneOffsetMs(zone: string): number | undefined {
  if (zone === "Z") return 0;
  const parts = ZONE.exec(zone)?.groups;
  const hours = Number(parts?.["hours"]);
  const minutes = Number(parts?.["minutes"]);
  if (parts === undefined || hours > 23 || minutes > 59) return undefined;
  return (parts["sign"] === "-" ? -1 : 1) * (hours * 60 + minutes) * 60_000;
}

function daysInMonth(year: number, monthIndex: number): number {
  return new Date(Date.UTC(year, monthIndex + 1, 0)).getUTCDate();
}

/**
 * The instant `months` calendar months after `ms`, in UTC: same day of the month and time of
 * day, the day clamped to the end of a shorter month (2028-02-29 + 12 months = 2029-02-28).
 * R-22's "at most 12 months" is counted this way, not as a fixed number of days.
 */
export function addCalendarMonths(ms: number, months: number): number {
  const start = new Date(ms);
  const monthIndex = start.getUTCMonth() + months;
  const year = start.getUTCFullYear() + Math.floor(monthIndex / 12);
  const month = ((monthIndex % 12) + 12) % 12;
  const day = Math.min(start.getUTCDate(), daysInMonth(year, month));
  const timeOfDay = ms - Date.UTC(start.getUTCFullYear(), start.getUTCMonth(), start.getUTCDate());
  return Date.UTC(year, month, day) + timeOfDay;
}

const UNIT_MS = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
const DURATION = /^(?<amount>\d+)(?<unit>[smhd])$/;
// Ten years of 365 days: a max_policy_age beyond that is a typo, not a policy.
const MAX_DURATION_MS = 3650 * UNIT_MS.d;
const DURATION_EXPECTED = "expected a whole number and one unit of s, m, h or d, like 90s, 30m, 72h or 7d";

/** {@link parseDuration} as a value: the milliseconds, or a sentence naming the value. */
export function checkDuration(text: string): Result<number, string> {
  const parts = DURATION.exec(text)?.groups;
  if (parts === undefined) return { ok: false, error: `${describeValue(text)} is not a duration (${DURATION_EXPECTED})` };
  const ms = Number(parts["amount"]) * UNIT_MS[parts["unit"] as keyof typeof UNIT_MS];
  if (ms === 0) return { ok: false, error: `${describeValue(text)} is zero; give a duration above 0` };
  if (ms > MAX_DURATION_MS) return { ok: false, error: `${describeValue(text)} is longer than 10 years (3650d)` };
  return { ok: true, value: ms };
}

/**
 * Milliseconds of a duration like `90s`, `30m`, `72h` or `7d` (one unit, whole numbers).
 * Throws `invalid_argument` for anything else, for zero and for more than 10 years (3650d).
 */
export function parseDuration(text: string): number {
  const checked = checkDuration(text);
  if (!checked.ok) throw new VmtreeError("invalid_argument", checked.error);
  return checked.value;
}

/** An instant as policy messages show it: ISO 8601 in UTC with milliseconds. */
export function formatInstant(ms: number): string {
  return new Date(ms).toISOString();
}
