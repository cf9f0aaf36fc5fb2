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
    if (entry.details.length > MAX_DETAILS || !isJsonObject(entry.details)) invalid("details", `${entry.details.slice(0, 32)}…`);
    if (!HASH.test(entry.hash)) invalid("hash", entry.hash.slice(0, 80));
    if (!HASH.test(entry.prev_hash)) invalid("prev_hash", entry.prev_hash.slice(0, 80));
  }
}

/** Every ancestor prints `details` as an object, so anything else would break its listings. */
function isJsonObject(text: string): boolean {
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === "object" && value !== null && !Array.isArray(value);
  } catch {
    return false;
  }
}

function invalid(field: string, value: unknown): never {
  throw new VmtreeError("invalid_argument", `invalid audit entry ${field}: ${JSON.stringify(String(value))}`);
}
