import type { AuditEntry, AuditHead } from "../gen/vmtree/v1/audit.ts";
import { GENESIS_HASH, hashEntry } from "./audit-hash.ts";
import type { ChainBase, ChainReport } from "./audit-log.ts";

/** Where and why a chain stops being provably intact. */
export interface ChainBreak {
  seq: number;
  reason: string;
}

/** An entry as stored: where its key puts it, and its value, or why the value cannot be read. */
export type StoredEntry = { origin: string; epoch: number; seq: number } & (
  | { entry: AuditEntry; problem?: undefined }
  | { entry?: undefined; problem: string }
);

/** What a chain is checked against besides itself. */
export interface ChainContext {
  /** A recorded restart point (pruned prefix, resolved break) at this position, if any. */
  base(at: { origin: string; epoch: number; seq: number }): ChainBase | undefined;
  /** Whether the node's own log records how `base` came about. */
  trusted(base: ChainBase): boolean;
  /** The head record this node keeps for the chain's origin and epoch. */
  head: AuditHead | undefined;
  /** The head the parent acknowledged for the origin. */
  anchor: AuditHead | undefined;
  /** Why the origin is quarantined, if it is. */
  quarantine: string | undefined;
}

/**
 * Checks one origin's entries of one epoch, in key order: each entry's own hash, the
 * sequence without gaps, each previous hash, that each entry says what its key says,
 * then that the chain ends at the head record and agrees with the head the parent
 * acknowledged. Reports the first break.
 */
export function checkChain(entries: readonly StoredEntry[], context: ChainContext): ChainReport {
  const first = entries[0]!;
  const last = entries.at(-1)!;
  const report: ChainReport = {
    origin: first.origin,
    epoch: first.epoch,
    entries: entries.length,
    firstSeq: first.entry?.seq ?? first.seq,
    lastSeq: last.entry?.seq ?? last.seq,
    headHash: last.entry?.hash ?? "",
    ok: true,
    ...(context.quarantine ? { quarantined: context.quarantine } : {}),
  };
  const broken = firstBreak(entries, context);
  return broken ? { ...report, ok: false, badSeq: broken.seq, reason: broken.reason } : report;
}

function firstBreak(entries: readonly StoredEntry[], context: ChainContext): ChainBreak | undefined {
  let previous: StoredEntry | undefined;
  for (const entry of entries) {
    const broken = entryBreak(entry, previous, context);
    if (broken) return broken;
    previous = entry;
  }
  return endBreak(previous!.entry!, context);
}

function entryBreak(stored: StoredEntry, before: StoredEntry | undefined, context: ChainContext): ChainBreak | undefined {
  const { entry } = stored;
  if (!entry) return { seq: stored.seq, reason: `entry ${stored.seq} cannot be read: ${stored.problem}` };
  const previous = before?.entry;
  // A value under a key it does not belong to. Where the keys run on without a gap, the
  // entries were moved among themselves and the checks below say how (missing, twice,
  // reordered); elsewhere the key itself is the finding.
  const elsewhere = entry.origin !== stored.origin || entry.epoch !== stored.epoch || entry.seq !== stored.seq;
  const misplaced = { seq: stored.seq, reason: misplacedReason(stored) };
  if (elsewhere && (entry.origin !== stored.origin || entry.epoch !== stored.epoch || !before || stored.seq !== before.seq + 1)) return misplaced;
  const at = (reason: string) => ({ seq: entry.seq, reason });
  const base = context.base(stored);
  if (hashEntry(entry) !== entry.hash && !acceptedEdit(entry, base, context)) return at("the entry was changed: its hash does not match its content");
  if (base && !context.trusted(base)) {
    return at(`a restart point is recorded here that this node's own log does not account for: entries before it may have been removed`);
  }
  let expectedPrev: string;
  if (base) {
    expectedPrev = base.prev_hash;
  } else if (!previous) {
    if (entry.seq !== 1) return at(missingRange(1, entry.seq - 1));
    expectedPrev = GENESIS_HASH;
  } else {
    if (entry.seq === previous.seq) return at(`entry ${entry.seq} appears twice: an entry was inserted`);
    if (entry.seq < previous.seq) return at(`reordered: entry ${entry.seq} stands after entry ${previous.seq}`);
    if (entry.seq !== previous.seq + 1) return at(missingRange(previous.seq + 1, entry.seq - 1));
    expectedPrev = previous.hash;
  }
  if (entry.prev_hash !== expectedPrev) {
    return at("its previous hash does not match the entry before it: an entry was inserted, removed or changed");
  }
  const anchor = context.anchor;
  if (anchor?.epoch === entry.epoch && anchor.seq === entry.seq && anchor.hash !== entry.hash) {
    return at("it differs from the head the parent acknowledged: the history was rewritten");
  }
  return elsewhere ? misplaced : undefined;
}

function misplacedReason(stored: StoredEntry & { entry: AuditEntry }): string {
  const { entry } = stored;
  return entry.origin === stored.origin && entry.epoch === stored.epoch
    ? `entry stored at seq ${stored.seq} says seq ${entry.seq}`
    : `entry stored at ${stored.origin} epoch ${stored.epoch} seq ${stored.seq} says ${entry.origin} epoch ${entry.epoch} seq ${entry.seq}`;
}

/**
 * Whether `entry`, whose hash does not match its content, is the very edited entry an
 * administrator accepted: a resolved base at its position names its claimed hash and the
 * hash of its content, and the node's own log records that resolution.
 */
function acceptedEdit(entry: AuditEntry, base: ChainBase | undefined, context: ChainContext): boolean {
  return base !== undefined && base.why === "resolved" && base.hash === entry.hash && base.contentHash === hashEntry(entry) && context.trusted(base);
}

function endBreak(last: AuditEntry, context: ChainContext): ChainBreak | undefined {
  const { head, anchor } = context;
  if (head && head.seq > last.seq) {
    return { seq: last.seq + 1, reason: `${missingRange(last.seq + 1, head.seq)} (the head record is at ${head.seq})` };
  }
  if (head && head.seq < last.seq) {
    return { seq: head.seq + 1, reason: `entries after the head record (${head.seq}) were added outside the log` };
  }
  if (head && head.seq === last.seq && head.hash !== last.hash) {
    return { seq: last.seq, reason: "the last entry differs from the head record" };
  }
  if (anchor?.epoch === last.epoch && anchor.seq > last.seq) {
    return { seq: last.seq + 1, reason: `entries up to ${anchor.seq}, acknowledged by the parent, are missing` };
  }
  return undefined;
}

function missingRange(first: number, last: number): string {
  return first === last ? `entry ${first} is missing` : `entries ${first} to ${last} are missing`;
}
