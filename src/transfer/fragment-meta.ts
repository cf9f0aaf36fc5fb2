import { createHash } from "node:crypto";
import { basename } from "node:path";
import { VmtreeError } from "../errors.ts";
import type { Fragment } from "../gen/vmtree/v1/fragment.ts";
import { checkSiteId } from "../pki/site-id.ts";

/** A fragment id: never a path, so that it can name a file in the archive as it is. */
const FRAGMENT_ID = /^[a-z0-9][a-z0-9._-]{0,127}$/;
const CAMERA_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const SHA256 = /^[0-9a-f]{64}$/;
/** A recorder's file name: a base name of printable characters. */
const FILE_NAME = /^[^/\\\u0000-\u001f\u007f]{1,255}$/;
/** Largest fragment accepted: far above a recorder's segments, far below what breaks offsets. */
export const MAX_FRAGMENT_BYTES = 64 * 1024 ** 3;
/** How far ahead of this node's clock a recording's end may be: clocks of sites differ. */
/** How far ahead of this node's clock a recording may end: clocks of a site's machines differ. */
export const MAX_CLOCK_AHEAD_MS = 86_400_000;
/** Latest time accepted, about the year 2286: beyond it a timestamp is an error. */
const MAX_TIME_MS = 10_000_000_000_000;

export type Priority = "incident" | "requested" | "routine";
export const PRIORITIES: readonly Priority[] = ["incident", "requested", "routine"];
/** Higher goes first: in the transfer queue and at the link's limiter. */
export const PRIORITY_RANK: Readonly<Record<Priority, number>> = { incident: 3, requested: 2, routine: 1 };

/**
 * The id of a recording: derived from what identifies it (site, camera, start and content),
 * so that every node computes the same id and a peer cannot pick one of its own.
 */
export function fragmentIdFor(fragment: Pick<Fragment, "site" | "camera_id" | "start_ms" | "sha256">): string {
  const digest = createHash("sha256").update(`${fragment.site}\n${fragment.camera_id}\n${fragment.start_ms}\n${fragment.sha256}`).digest("hex");
  return `f-${digest.slice(0, 32)}`;
}

/** Whether `text` is a fragment id (and so never a path). */
export function isFragmentId(text: string): boolean {
  return FRAGMENT_ID.test(text);
}

/** Whether `text` is a camera id as inventories and fragments carry them. */
export function isCameraId(text: string): boolean {
  return CAMERA_ID.test(text);
}

export function assertFragmentId(id: string): string {
  if (!isFragmentId(id)) throw new VmtreeError("invalid_argument", `fragment id ${JSON.stringify(id.slice(0, 140))} is not a fragment id (f-… as \`vmtree fragments list\` shows)`);
  return id;
}

/** The base name a recorder gave its file, checked; never a path. */
export function recorderFileName(path: string): string {
  const name = basename(path);
  if (!FILE_NAME.test(name)) throw new VmtreeError("invalid_argument", `file name ${JSON.stringify(name.slice(0, 260))} is not a plain file name`);
  return name;
}

/**
 * Checks every field of a fragment's description received from a peer or a caller:
 * form, ranges, and that its id is the one its fields give.
 */
export function checkFragment(fragment: Fragment | undefined, where: string): Fragment {
  if (!fragment) throw new VmtreeError("invalid_argument", `${where}: no fragment`);
  const bad = (field: string, value: unknown, expected: string) => {
    throw new VmtreeError("invalid_argument", `${where}: fragment field ${field} ${JSON.stringify(String(value).slice(0, 140))} is not ${expected}`);
  };
  if (!checkSiteId(fragment.site).ok) bad("site", fragment.site, "a site id");
  if (!CAMERA_ID.test(fragment.camera_id)) bad("camera_id", fragment.camera_id, "a camera id");
  if (!isTime(fragment.start_ms)) bad("start_ms", fragment.start_ms, "a time");
  if (!isTime(fragment.end_ms) || fragment.end_ms < fragment.start_ms) bad("end_ms", fragment.end_ms, "a time at or after start_ms");
  // Retention counts from the end: a recording ending centuries ahead would never expire.
  if (fragment.end_ms > Date.now() + MAX_CLOCK_AHEAD_MS) bad("end_ms", fragment.end_ms, "a time already past (a day of clock difference allowed)");
  if (!Number.isSafeInteger(fragment.size) || fragment.size < 1 || fragment.size > MAX_FRAGMENT_BYTES) bad("size", fragment.size, `a size of 1 to ${MAX_FRAGMENT_BYTES} bytes`);
  if (!SHA256.test(fragment.sha256)) bad("sha256", fragment.sha256, "a lower-case hex SHA-256");
  if (fragment.file_name !== "" && !FILE_NAME.test(fragment.file_name)) bad("file_name", fragment.file_name, "a plain file name");
  if (!isTime(fragment.added_ms)) bad("added_ms", fragment.added_ms, "a time");
  if (fragment.id !== fragmentIdFor(fragment)) bad("id", fragment.id, `the id its fields give (${fragmentIdFor(fragment)})`);
  return fragment;
}

export function isTime(ms: number): boolean {
  return Number.isSafeInteger(ms) && ms >= 0 && ms <= MAX_TIME_MS;
}
