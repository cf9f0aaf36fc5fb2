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
  const fields = [
    entry.origin,
    String(entry.epoch),
    String(entry.seq),
    String(entry.time_ms),
    entry.actor,
    entry.action,
    entry.target,
    entry.result,
    entry.details,
    entry.prev_hash,
  ];
  const parts = [Buffer.from(DOMAIN)];
  for (const field of fields) {
    const bytes = Buffer.from(field, "utf8");
    parts.push(Buffer.from(`${bytes.length}:`), bytes, Buffer.from("\n"));
  }
  return Buffer.concat(parts);
}

/** SHA-256 of the canonical encoding, lower-case hex. */
export function hashEntry(entry: Omit<AuditEntry, "hash">): string {
  return createHash("sha256").update(canonicalEncoding(entry)).digest("hex");
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
