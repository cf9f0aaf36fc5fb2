import { VmtreeError } from "../errors.ts";
import type { AuditEntry } from "../gen/vmtree/v1/audit.ts";
import { checkSiteId, isInSubtree } from "../pki/site-id.ts";

/** Most entries one batch may carry. */
export const MAX_AUDIT_BATCH = 5000;
const MAX_FIELD = 512;
const MAX_DETAILS = 16 * 1024;
const HASH = /^[0-9a-f]{64}$/;
/** The largest time a JavaScript Date holds: a later `time_ms` could not be shown anywhere. */
const MAX_TIME_MS = 8.64e15;

/**
 * Checks the shape of a batch of audit entries from `childSite`: origins inside the
 * child's subtree, sane numbers, bounded strings, well-formed hashes. Whether the chain
 * holds is the log's business: a broken chain quarantines, a malformed message is refused.
 * Throws `permission_denied` for an origin outside the subtree, `invalid_argument` otherwise.
 */
export function validateAuditBatch(entries: readonly AuditEntry[], childSite: string): void {
  if (entries.length > MAX_AUDIT_BATCH) {
    throw new VmtreeError("invalid_argument", `an audit batch carries at most ${MAX_AUDIT_BATCH} entries, got ${entries.length}`);
  }
  for (const entry of entries) {
    const origin = checkSiteId(entry.origin);
    if (!origin.ok) throw origin.error;
    if (!isInSubtree(entry.origin, childSite)) {
      throw new VmtreeError("permission_denied", `site ${childSite} may not send audit entries for ${entry.origin}`);
    }
    if (!Number.isSafeInteger(entry.epoch) || entry.epoch < 1) invalid("epoch", entry.epoch);
    if (!Number.isSafeInteger(entry.seq) || entry.seq < 1) invalid("seq", entry.seq);
    if (!Number.isSafeInteger(entry.time_ms) || entry.time_ms < 0 || entry.time_ms > MAX_TIME_MS) invalid("time_ms", entry.time_ms);
    for (const field of ["actor", "action", "target", "result"] as const) {
      if (entry[field].length > MAX_FIELD) invalid(field, `${entry[field].slice(0, 32)}…`);
    }
    if (entry.details.length > MAX_DETAILS || !isDetailsObject(entry.details)) invalid("details", `${entry.details.slice(0, 32)}…`);
    if (!HASH.test(entry.hash)) invalid("hash", entry.hash.slice(0, 80));
    if (!HASH.test(entry.prev_hash)) invalid("prev_hash", entry.prev_hash.slice(0, 80));
  }
}

/** How deeply `details` may nest: every ancestor parses it, and a deep one would overflow the stack. */
export const MAX_DETAILS_DEPTH = 32;

/**
 * Whether `text` is what every ancestor can list as an entry's details: a JSON object
 * nested at most {@link MAX_DETAILS_DEPTH} deep. The depth is counted before parsing.
 */
export function isDetailsObject(text: string): boolean {
  if (!nestsWithin(text, MAX_DETAILS_DEPTH)) return false;
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === "object" && value !== null && !Array.isArray(value);
  } catch {
    return false;
  }
}

/** Counts `{` and `[` outside strings; malformed text is left for JSON.parse to refuse. */
function nestsWithin(text: string, maxDepth: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++;
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) {
      if (++depth > maxDepth) return false;
    } else if (c === 0x7d || c === 0x5d) depth--;
  }
  return true;
}

function invalid(field: string, value: unknown): never {
  throw new VmtreeError("invalid_argument", `invalid audit entry ${field}: ${JSON.stringify(String(value))}`);
}
