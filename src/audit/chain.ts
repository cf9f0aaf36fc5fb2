import type { AuditEntry, AuditHead } from "../gen/vmtree/v1/audit.ts";
import { GENESIS_HASH, hashEntry } from "./audit-hash.ts";
import type { ChainBase, ChainReport } from "./audit-log.ts";

/** Where and why a chain stops being provably intact. */
export interface ChainBreak {
  seq: number;
  reason: string;
}

/** What a chain is checked against besides itself. */
export interface ChainContext {
  /** A recorded restart point (pruned prefix, resolved break) at this entry, if any. */
  base(entry: AuditEntry): ChainBase | undefined;
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
 * sequence without gaps, each previous hash, then that the chain ends at the head
 * record and agrees with the head the parent acknowledged. Reports the first break.
 */
export function checkChain(entries: readonly AuditEntry[], context: ChainContext): ChainReport {
  const first = entries[0]!;
  const last = entries.at(-1)!;
  const report: ChainReport = {
    origin: first.origin,
    epoch: first.epoch,
    entries: entries.length,
    firstSeq: first.seq,
    lastSeq: last.seq,
    headHash: last.hash,
    ok: true,
    ...(context.quarantine ? { quarantined: context.quarantine } : {}),
  };
  const broken = firstBreak(entries, context);
  return broken ? { ...report, ok: false, badSeq: broken.seq, reason: broken.reason } : report;
}

function firstBreak(entries: readonly AuditEntry[], context: ChainContext): ChainBreak | undefined {
  let previous: AuditEntry | undefined;
  for (const entry of entries) {
    const broken = entryBreak(entry, previous, context);
    if (broken) return broken;
    previous = entry;
  }
  return endBreak(previous!, context);
}

function entryBreak(entry: AuditEntry, previous: AuditEntry | undefined, context: ChainContext): ChainBreak | undefined {
  const at = (reason: string) => ({ seq: entry.seq, reason });
  if (hashEntry(entry) !== entry.hash) return at("the entry was changed: its hash does not match its content");
  const base = context.base(entry);
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
  return undefined;
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
