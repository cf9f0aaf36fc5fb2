import { createHash } from "node:crypto";
import type { AuditEntry } from "../gen/vmtree/v1/audit.ts";

/** `prev_hash` of the first entry of an epoch. */
export const GENESIS_HASH = "0".repeat(64);

const DOMAIN = "vmtree-audit-v1\n";

/**
 * The canonical encoding an entry's hash covers: the domain line, then each field in
 * a fixed order as `<byte length>:<UTF-8 bytes>\n`, numbers in decimal. Length
 * prefixes make it unambiguous and easy to reproduce in any language (docs/AUDIT.md).
 */
export function canonicalEncoding(entry: Omit<AuditEntry, "hash">): Buffer {
  return Buffer.from(canonicalText(entry), "utf8");
}

/**
 * The canonical encoding as one string: its UTF-8 bytes are the encoding, since every
 * field is encoded whole and separators are ASCII. One string to hash instead of thirty
 * buffers makes verifying a million relayed entries several times cheaper.
 */
function canonicalText(entry: Omit<AuditEntry, "hash">): string {
  let text = DOMAIN;
  for (const field of [entry.origin, String(entry.epoch), String(entry.seq), String(entry.time_ms), entry.actor, entry.action, entry.target, entry.result, entry.details, entry.prev_hash]) {
    text += `${Buffer.byteLength(field, "utf8")}:${field}\n`;
  }
  return text;
}

/** SHA-256 of the canonical encoding, lower-case hex. */
export function hashEntry(entry: Omit<AuditEntry, "hash">): string {
  return createHash("sha256").update(canonicalText(entry), "utf8").digest("hex");
}

/** JSON with keys sorted at every level and no spaces, for the `details` field. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(sortKeys(value));
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(
      Object.keys(value)
        .sort()
        .map((key) => [key, sortKeys((value as Record<string, unknown>)[key])]),
    );
  }
  return value;
}
