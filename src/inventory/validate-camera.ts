import type { Result } from "../errors.ts";
import {
  CAMERA_FIELDS,
  CAMERA_TYPES,
  CODECS,
  OBJECT_CLASSES,
  PROTOCOLS,
  STATUSES,
  type Camera,
  type CameraField,
} from "./camera.ts";
import { describeValue, type InputProblem } from "./input-problem.ts";
import { stripCredentials } from "./strip-credentials.ts";

/**
 * How numbers are written in the source: JSON numbers, or text with a decimal point, or
 * (in `;`-separated spreadsheet exports, where the comma cannot be the delimiter) a decimal
 * point or comma.
 */
export type NumberFormat = "json" | "point" | "point-or-comma";

/** One camera as read from a file, before its values are checked. */
export interface RawCamera {
  /** Each field's value as written: text for CSV, any JSON value for JSON. */
  readonly values: Readonly<Record<CameraField, unknown>>;
  /** The line to name when the field is wrong. */
  readonly lineOf: (field: CameraField) => number;
}

/** The cameras of one file and how that file writes numbers. */
export interface RawInventory {
  readonly numberFormat: NumberFormat;
  readonly cameras: readonly RawCamera[];
  /** The site the file says it belongs to (the JSON export's `site`), with its line. */
  readonly site?: { readonly value: unknown; readonly line: number };
}

// Longest text value, in code points: enough for any name or address, small enough that
// one hostile cell cannot bloat every replica of the inventory.
const MAX_TEXT_CHARS = 512;
// C0 controls but tab and line breaks (an address may span lines), DEL, C1 controls, and
// the bidirectional overrides that make text read other than it is.
const CONTROL = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/;

/**
 * Checks every field of `raw` and returns the camera, or the first wrong field in
 * `CAMERA_FIELDS` order with a message saying what was expected and what was found.
 * Uniqueness of `camera_id` is a property of the whole file and is not checked here.
 */
export function validateCamera(raw: RawCamera, format: NumberFormat): Result<Camera, InputProblem> {
  const camera: Partial<Record<CameraField, unknown>> = {};
  for (const field of CAMERA_FIELDS) {
    const checked = checkField(field, raw.values[field], format);
    if (!checked.ok) return { ok: false, error: { line: raw.lineOf(field), field, message: checked.error } };
    camera[field] = checked.value;
  }
  // Every field went through its rule, whose result type is that field's type.
  return { ok: true, value: camera as Camera };
}

/**
 * Compares the names a file uses (CSV columns or JSON keys) with `CAMERA_FIELDS` and
 * describes what is missing and what is unknown; undefined when they match.
 */
export function compareFieldNames(names: readonly string[], noun: "column" | "field"): string | undefined {
  const known: readonly string[] = CAMERA_FIELDS;
  const missing = CAMERA_FIELDS.filter((field) => !names.includes(field));
  const unknown = names.filter((name) => !known.includes(name));
  const parts = [
    ...(missing.length > 0 ? [`missing ${noun}(s) ${missing.join(", ")}`] : []),
    ...(unknown.length > 0 ? [`unknown ${noun}(s) ${unknown.map((name) => JSON.stringify(name)).join(", ")}`] : []),
  ];
  return parts.length === 0 ? undefined : `${parts.join("; ")}; expected the ${noun}s ${CAMERA_FIELDS.join(", ")}`;
}

type Rule<T> = (raw: unknown, format: NumberFormat) => Result<T, string>;

const CAMERA_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const URL_SHAPE = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/\S+$/;
const DATE = /^(\d{4})-(\d{2})-(\d{2})$/;
const NUMBER_TEXT: Readonly<Record<Exclude<NumberFormat, "json">, RegExp>> = {
  point: /^-?\d+(?:\.\d+)?$/,
  "point-or-comma": /^-?\d+(?:[.,]\d+)?$/,
};

const RULES: { readonly [K in CameraField]: Rule<Camera[K]> } = {
  camera_id: textWhere(
    (text) => CAMERA_ID.test(text),
    "1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit",
  ),
  name: readText,
  object_class: oneOf(OBJECT_CLASSES),
  camera_type: oneOf(CAMERA_TYPES),
  vendor: readText,
  model: readText,
  firmware: readText,
  protocol: oneOf(PROTOCOLS),
  stream_url: streamUrl,
  codec: oneOf(CODECS),
  width: numberWhere(isPositiveInteger, "a positive integer"),
  height: numberWhere(isPositiveInteger, "a positive integer"),
  fps: numberWhere(isPositiveInteger, "a positive integer"),
  bitrate_kbps: numberWhere(isPositiveInteger, "a positive integer"),
  ir_range_m: numberWhere((n) => n >= 0, "a number of at least 0"),
  mount_height_m: numberWhere((n) => n >= 0, "a number of at least 0"),
  latitude: numberWhere((n) => n >= -90 && n <= 90, "a number from -90 to 90"),
  longitude: numberWhere((n) => n >= -180 && n <= 180, "a number from -180 to 180"),
  address: readText,
  installed_at: textWhere(isCalendarDate, "a calendar date YYYY-MM-DD"),
  status: oneOf(STATUSES),
};

// A blank cell is the most common mistake, so it gets the same message for every type.
function checkField(field: CameraField, raw: unknown, format: NumberFormat): Result<unknown, string> {
  if (typeof raw === "string" && raw.trim() === "") return fail(`expected a value, got ${describeValue(raw)}`);
  return RULES[field](raw, format);
}

function readText(raw: unknown): Result<string, string> {
  if (typeof raw !== "string") return fail(`expected a string, got ${describeValue(raw)}`);
  const chars = [...raw].length;
  if (chars > MAX_TEXT_CHARS) return fail(`expected at most ${MAX_TEXT_CHARS} characters, got ${chars}`);
  // Every ancestor prints these values in its operators' terminals: no escape sequences.
  if (CONTROL.test(raw)) return fail(`expected text without control characters, got ${describeValue(stripCredentials(raw))}`);
  return { ok: true, value: raw };
}

function oneOf<T extends string>(allowed: readonly T[]): Rule<T> {
  const isAllowed = (text: string): text is T => (allowed as readonly string[]).includes(text);
  return (raw) => {
    const text = readText(raw);
    if (!text.ok) return text;
    if (isAllowed(text.value)) return { ok: true, value: text.value };
    return fail(`expected one of ${allowed.join(", ")}, got ${describeValue(raw)}`);
  };
}

function textWhere(accept: (text: string) => boolean, expected: string): Rule<string> {
  return (raw) => {
    const text = readText(raw);
    if (!text.ok || accept(text.value)) return text;
    return fail(`expected ${expected}, got ${describeValue(raw)}`);
  };
}

// The message shows the URL without credentials: errors end up in logs and audit records.
function streamUrl(raw: unknown): Result<string, string> {
  const text = readText(raw);
  if (!text.ok || URL_SHAPE.test(text.value)) return text;
  return fail(`expected a URL like rtsp://host/path, got ${describeValue(stripCredentials(text.value))}`);
}

function numberWhere(accept: (n: number) => boolean, expected: string): Rule<number> {
  return (raw, format) => {
    const number = readNumber(raw, format);
    if (!number.ok || accept(number.value)) return number;
    return fail(`expected ${expected}, got ${describeValue(raw)}`);
  };
}

function readNumber(raw: unknown, format: NumberFormat): Result<number, string> {
  const number =
    typeof raw === "number"
      ? raw
      : typeof raw === "string" && format !== "json" && NUMBER_TEXT[format].test(raw)
        ? Number(raw.replace(",", "."))
        : undefined;
  if (number === undefined) return fail(`expected a number, got ${describeValue(raw)}`);
  if (!Number.isFinite(number)) return fail(`expected a finite number, got ${describeValue(raw)}`);
  return { ok: true, value: number };
}

function isPositiveInteger(n: number): boolean {
  return Number.isSafeInteger(n) && n > 0;
}

function isCalendarDate(text: string): boolean {
  const [, year, month, day] = (DATE.exec(text) ?? []).map(Number);
  if (year === undefined || month === undefined || day === undefined) return false;
  const date = new Date(0);
  // setUTCFullYear, unlike Date.UTC, does not map years 0-99 to the 1900s.
  date.setUTCFullYear(year, month - 1, day);
  return date.getUTCFullYear() === year && date.getUTCMonth() === month - 1 && date.getUTCDate() === day;
}

function fail(message: string): { ok: false; error: string } {
  return { ok: false, error: message };
}
