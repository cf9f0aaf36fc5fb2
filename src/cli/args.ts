import { parseArgs, type ParseArgsConfig } from "node:util";

/** A mistake in how the command was called: exit code 2 and the verb's usage. */
export class UsageError extends Error {
  override readonly name = "UsageError";
}

type Options = NonNullable<ParseArgsConfig["options"]>;

/**
 * Parses a verb's flags strictly: unknown flags, missing values and stray
 * positionals are usage errors that name the offender.
 */
export function parseVerbArgs<O extends Options>(argv: string[], options: O, positionals: number, names = "") {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: { ...options, help: { type: "boolean", short: "h" } }, allowPositionals: true, strict: true });
  } catch (error) {
    throw new UsageError(flagError(error as Error & { code?: string }, Object.keys(options)));
  }
  const help = (parsed.values as { help?: boolean }).help === true;
  if (!help && parsed.positionals.length > positionals) {
    throw new UsageError(`unexpected argument \`${parsed.positionals[positionals]}\``);
  }
  if (!help && parsed.positionals.length < positionals) throw new UsageError(`missing ${names}`);
  return parsed;
}

/** Node's parseArgs messages suggest `--` for positionals, which never helps here; name the flags instead. */
function flagError(error: Error & { code?: string }, known: string[]): string {
  const flag = /'(-[^' ]+)/.exec(error.message)?.[1];
  const flags = known.map((name) => `--${name}`).join(", ");
  if (error.code === "ERR_PARSE_ARGS_UNKNOWN_OPTION" && flag) return `unknown flag \`${flag}\`; this command takes ${flags}`;
  if (error.code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE" && flag) {
    // parseArgs also lands here for a value that starts with "-", which it takes for a flag.
    return error.message.includes("ambiguous") ? `${flag} needs a value; one that starts with \`-\` is written ${flag}=VALUE` : `${flag} needs a value`;
  }
  return error.message;
}

/** The value of a required flag. */
export function required(values: Record<string, unknown>, name: string): string {
  const value = values[name];
  if (typeof value !== "string" || value === "") throw new UsageError(`missing --${name}`);
  return value;
}

const DURATION_UNITS_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Parses a duration like `90s`, `15m`, `24h` or `7d` into milliseconds. */
export function parseDuration(flag: string, text: string, options: { allowZero?: boolean } = {}): number {
  const match = /^(\d{1,6})([smhd])$/.exec(text);
  const ms = match ? Number(match[1]) * DURATION_UNITS_MS[match[2]!]! : NaN;
  if (!(ms > 0 || (ms === 0 && options.allowZero))) throw new UsageError(`expected --${flag} like 24h (s, m, h or d), got \`${text}\``);
  return ms;
}

/**
 * Parses an ISO 8601 date (00:00 UTC) or date-time with `Z` or an offset (`2026-12-03`,
 * `2026-12-03T10:00:00+05:00`) into Unix milliseconds. A date-time without a zone is refused:
 * it would be read in whatever zone the shell runs in, and policy files refuse it too.
 */
export function parseTime(flag: string, text: string): number {
  const date = /^(\d{4})-(\d{2})-(\d{2})([T ][\d:.]+(Z|[+-]\d{2}:?\d{2}))?$/.exec(text);
  const ms = date && isCalendarDate(Number(date[1]), Number(date[2]), Number(date[3])) ? Date.parse(text) : NaN;
  // 0 would read as "no bound" on the admin API; no audit entry is that old anyway.
  if (!(ms > 0)) throw new UsageError(`expected --${flag} like 2026-12-03 or 2026-12-03T10:00:00Z (a date-time needs Z or an offset), got \`${text}\``);
  return ms;
}

/** Date.parse rolls 2026-02-30 over into March; a typo must not silently move the bound. */
function isCalendarDate(year: number, month: number, day: number): boolean {
  const date = new Date(Date.UTC(year, month - 1, day));
  return date.getUTCMonth() === month - 1 && date.getUTCDate() === day;
}

/** Parses a positive whole number. */
export function parseCount(flag: string, text: string): number {
  const n = /^\d{1,9}$/.test(text) ? Number(text) : NaN;
  if (!(n > 0)) throw new UsageError(`expected --${flag} to be a positive whole number, got \`${text}\``);
  return n;
}
